/**
 * The dispatch loop of `agentq run` and `agentq serve`: a dispatcher tick, then a wait of
 * `poll_interval` (shorter while an inbox file may still settle) that a new inbox file
 * (chokidar) or `wake()` cuts short, until `stop()`, or with `once` until nothing is left.
 */
import chokidar, { type FSWatcher } from 'chokidar';
import type { Config, ProjectPaths } from '../config/config.ts';
import { inboxHasFiles, type Dispatcher } from './dispatcher.ts';

export interface DispatchLoopOptions {
  /** Return once the store holds nothing queued or running and the inbox is empty (`run --once`); no inbox watcher. */
  once?: boolean;
}

export class DispatchLoop {
  private stopped = false;
  /** A wake-up that came while a tick ran: the next wait is skipped. */
  private woken = false;
  private wakeWait: () => void = () => {};

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
    const watcher: FSWatcher | null = this.o.once ? null : chokidar.watch(this.paths.inbox, { ignoreInitial: true, depth: 0 });
    watcher?.on('all', () => this.wake());
    try {
      for (;;) {
        if (this.stopped) return;
        this.woken = false;
        await this.dispatcher.tick();
        if (this.o.once && (await this.dispatcher.idle()) && !inboxHasFiles(this.paths)) return;
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
      await watcher?.close();
    }
  }
}
