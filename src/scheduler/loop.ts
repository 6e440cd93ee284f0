/**
 * The dispatch loop of `agentq run` and `agentq serve`: a dispatcher tick, then a wait of
 * `poll_interval` (shorter while an inbox file may still settle) that a new inbox file
 * (`watchInbox`: inotify, which also tells intake which files are complete, else chokidar),
 * work committed by another process (the store's `watchWork`: PostgreSQL's
 * `LISTEN`/`NOTIFY`) or `wake()` cuts short, until `stop()`, or with `once` until nothing is
 * left (or nothing left can run within `maxWaitMs`). A tick woken by the store claims first
 * (`Dispatcher.tick`'s `claimFirst`): the work is already in the store.
 */
import type { Config, ProjectPaths } from '../config/config.ts';
import { watchInbox, type InboxWatch } from '../intake/inbox-watch.ts';
import type { Dispatcher } from './dispatcher.ts';
import type { QueuedWait } from './waiting.ts';

export interface DispatchLoopOptions {
  /**
   * Return once the store holds nothing queued or running and the inbox holds nothing to take
   * in (`run --once`), or once nothing queued can run within `maxWaitMs`; no inbox watcher.
   */
  once?: boolean;
  /** With `once`: the longest wait for queued tasks that cannot run yet, ms. Default {@link DEFAULT_MAX_WAIT} (1 h). */
  maxWaitMs?: number;
}

/** `run --once`'s default `--max-wait`, ms (1 h). */
export const DEFAULT_MAX_WAIT = 3_600_000;

/** Waits shorter than this are not stated by `run --once` (a retry backoff of a few seconds), ms. */
const STATED_WAIT = 2_000;

export class DispatchLoop {
  private stopped = false;
  /** A wake-up that came while a tick ran: the next wait is skipped. */
  private woken = false;
  /** The wake-up was the store's (`watchWork`: work another process committed): the next tick claims first. */
  private workWoken = false;
  private wakeWait: () => void = () => {};
  /** With `once`: the queued tasks left because none could run within `maxWaitMs` (empty otherwise). */
  unrunnable: QueuedWait[] = [];
  /** Waits already stated (`task id:until`). */
  private readonly stated = new Set<string>();

  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly paths: ProjectPaths,
    private readonly config: Pick<Config, 'poll_interval' | 'inbox_settle'>,
    private readonly o: DispatchLoopOptions = {},
  ) {}

  /** Ends the current wait at once: the next tick runs now. */
  wake(): void {
    this.woken = true;
    this.wakeWait();
  }

  /** Makes `run()` return after the tick in progress (the dispatcher itself is stopped by its owner). */
  stop(): void {
    this.stopped = true;
    this.wake();
  }

  /**
   * Ticks until `stop()` (or, with `once`, until idle). Call `dispatcher.start()` first;
   * afterwards the caller drains or stops the dispatcher. Rejects when a tick throws.
   */
  async run(): Promise<void> {
    const watcher: InboxWatch | null = this.o.once ? null : watchInbox(this.paths.inbox, () => this.wake());
    if (watcher) {
      this.dispatcher.inboxComplete = (file, identity) => watcher.complete(file, identity);
      // A file dropped after the first tick's scan but before the watch was set up sent no
      // event: the inbox is looked at once more when the watch is ready, not at the next poll.
      void watcher.ready.then(() => this.wake(), () => {});
    }
    // `once`: the last attempt's end is looked at now, not at the next poll.
    if (this.o.once) this.dispatcher.onAllEnded = () => this.wake();
    let unwatch: (() => Promise<void>) | null = null;
    try {
      // Work another process commits (another host's dispatcher, submit, POST) wakes the loop;
      // the poll stays the backup. A watch that fails is reported, never fatal.
      if (!this.o.once) {
        unwatch = await this.dispatcher.watchWork(() => {
          this.workWoken = true;
          this.wake();
        }).catch((err: unknown) => {
          this.dispatcher.events.emit('error', err instanceof Error ? err : new Error(String(err)));
          return null;
        });
      }
      for (;;) {
        if (this.stopped) return;
        this.woken = false;
        const claimFirst = this.workWoken;
        this.workWoken = false;
        await this.dispatcher.tick({ claimFirst });
        if (this.o.once && ((await this.dispatcher.idle()) ? !this.dispatcher.inboxHasWork() : await this.stalled())) return;
        if (this.woken || this.stopped) continue;
        await new Promise<void>((resolve) => {
          // A file still being written is looked at again once it may have settled.
          const wait = Math.min(
            this.config.poll_interval,
            this.o.once ? 250 : Infinity,
            this.dispatcher.unsettledFiles.length ? this.config.inbox_settle : Infinity,
          );
          const t = setTimeout(resolve, wait);
          this.wakeWait = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wakeWait = () => {};
      }
    } finally {
      await unwatch?.().catch(() => {});
      this.dispatcher.inboxComplete = undefined;
      this.dispatcher.onAllEnded = undefined;
      await watcher?.close();
    }
  }

  /**
   * `once`: whether nothing runs and no queued task can run within `maxWaitMs` (then
   * `unrunnable` says why each waits). A wait it sits out is stated once per task (`task.delayed`).
   */
  private async stalled(): Promise<boolean> {
    if (this.dispatcher.unsettledFiles.length || this.dispatcher.inboxHasWork() || this.dispatcher.detectorsRunning) return false;
    const waits = await this.dispatcher.queueWaits();
    if (waits === null) return false;
    const now = Date.now();
    const horizon = now + (this.o.maxWaitMs ?? DEFAULT_MAX_WAIT);
    const near = waits.filter((w) => w.until !== null && w.until <= horizon);
    if (near.length === 0) {
      this.unrunnable = waits;
      return true;
    }
    const next = near.reduce((a, b) => (b.until! < a.until! ? b : a));
    const key = `${next.task.id}:${next.until}`;
    if (next.until! - now >= STATED_WAIT && !this.stated.has(key)) {
      this.stated.add(key);
      this.dispatcher.events.emit('task.delayed', next.task, next.until!, next.reason);
    }
    return false;
  }
}
