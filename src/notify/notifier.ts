/**
 * Notifications (`notify:` in config) of one dispatcher (`agentq run` and `agentq serve`
 * alike). The store row is the source of truth: an event is recorded as one row per
 * target, keyed so that recording it again records nothing, and delivered from the rows.
 *
 * - A task's end (`completed`, `failed`, `budget_exceeded`) is recorded by the dispatcher's
 *   reporter before it writes the task's result file ({@link Notifier.taskEnded}): a crash in
 *   between leaves the task unreported, so it is reported, and recorded, again (once).
 * - `blocked`, `agent_paused` and `queue_empty` are found in the store by a sweep
 *   ({@link Notifier.sweep}) on the `poll_interval` cadence and at once after the dispatcher's
 *   own events: blocked tasks (one notification per question), pauses in force (one per
 *   account and end; not the start buckets' own pacing), the queue with nothing queued,
 *   running or waiting (one per empty spell: {@link QueueMark}). What happened while no
 *   dispatcher ran is found by the next one's first sweep.
 * - Deliveries go through the one durable deliverer ({@link HttpDeliverer}, shared with
 *   callbacks and A2A pushes): leased, retried with backoff (the target's `tries`, `backoff`,
 *   `timeout`), never in the queue's way, resumed after a restart (by any dispatcher with that
 *   target). Webhook, ntfy and Slack targets are its POSTs; a `command:` target's hook is a run.
 */
import path from 'node:path';
import { commandArgv } from '../agents/command/command-runner.ts';
import type { Config, NotifyTarget, ProjectPaths } from '../config/config.ts';
import type { Task } from '../core/types.ts';
import type { DispatcherEvents } from '../events/events.ts';
import { HttpDeliverer, type DeliveryRequest, type DeliveryRun, type RetryPolicy } from '../server/callbacks.ts';
import { Periodic } from '../scheduler/periodic.ts';
import { isStartBucketPause } from '../scheduler/rate-limit.ts';
import type { NewNotification, Notification, Store } from '../store/store.ts';
import { answerTokenSha256, answerUrl, newAnswerToken, publicBaseUrl } from './answer-link.ts';
import { pauseEvent, queueEmptyEvent, taskEvent, type NotifyEvent, type NotifyEventName } from './events.ts';
import { hookEnv, runHook } from './hook.ts';
import { commandInput, ntfyRequest, slackBody, webhookBody, type AnswerLink } from './payloads.ts';
import { targetId, targetKind, targetLabel } from './targets.ts';

export interface NotifierOptions {
  /** Where events are recorded: the dispatcher's store (its calls retried through outages). */
  store: Store;
  /** The store deliveries are claimed and recorded on (a failed call waits for the next poll). Default `store`. */
  deliveryStore?: Store;
  config: Config;
  paths: ProjectPaths;
  /** The dispatcher's events: its own blocks, pauses and ends start a sweep at once; a delivery given up is reported as an `error`. */
  events: DispatcherEvents;
  /** Environment hooks start from (less agentq's own variables). Default `process.env`. */
  env?: Record<string, string | undefined>;
  /** How often due deliveries are looked for, ms. Default 1000. */
  deliveryPollMs?: number;
  now?: () => number;
}

/** A configured target with what it is stored under and shown as. */
interface Target {
  target: NotifyTarget;
  id: string;
  label: string;
  /** The events it wants, with those of later targets of the same destination. */
  on: Set<NotifyEventName>;
  policy: RetryPolicy;
}

export class Notifier {
  private readonly targets = new Map<string, Target>();
  private readonly wanted = new Set<NotifyEventName>();
  private readonly deliverer: HttpDeliverer<Notification> | null;
  private readonly deliveryStore: Store;
  private readonly project: string;
  private readonly now: () => number;
  private sweeper: Periodic | null = null;
  private sweeping: Promise<void> | null = null;
  private sweepAgain = false;
  private readonly detach: Array<() => void> = [];

  constructor(private readonly o: NotifierOptions) {
    this.now = o.now ?? Date.now;
    this.deliveryStore = o.deliveryStore ?? o.store;
    this.project = path.basename(o.paths.root);
    o.config.notify.forEach((target, index) => {
      const id = targetId(target);
      const known = this.targets.get(id);
      for (const e of target.on) this.wanted.add(e);
      if (known) {
        for (const e of target.on) known.on.add(e);
        return;
      }
      const policy = { maxTries: target.tries, backoffMs: target.backoff, timeoutMs: target.timeout };
      this.targets.set(id, { target, id, label: targetLabel(target, index), on: new Set(target.on), policy });
    });
    if (this.targets.size === 0) {
      this.deliverer = null;
      return;
    }
    const longest = Math.max(...[...this.targets.values()].map((t) => t.policy.timeoutMs));
    this.deliverer = new HttpDeliverer<Notification>(
      {
        claimDue: (now, leaseMs, limit) => this.deliveryStore.claimDueNotifications([...this.targets.keys()], now, leaseMs, limit),
        attempts: (n) => n.attempts,
        policy: (n) => this.targets.get(n.target)!.policy,
        prepare: (n) => this.prepare(n),
        record: (n, t) => this.recordTry(n, t),
      },
      { leaseMs: longest + 5000, ...(o.deliveryPollMs === undefined ? {} : { pollMs: o.deliveryPollMs }), now: this.now },
    );
  }

  /** Whether some target lists `event` in its `on:`. */
  wants(event: NotifyEventName): boolean {
    return this.wanted.has(event);
  }

  /**
   * Starts the sweep (every `poll_interval`, and at once after the dispatcher's blocks,
   * pauses and ends) and the deliveries (pending ones of earlier runs resume). Nothing runs
   * without targets.
   */
  start(): void {
    if (!this.deliverer) return;
    const every = this.o.config.poll_interval;
    this.sweeper = new Periodic('notifier', every, () => this.sweep(), (err) => this.o.events.emit('error', err instanceof Error ? err : new Error(String(err))));
    this.sweeper.start();
    const soon = () => void this.sweepSoon();
    for (const name of ['task.blocked', 'agent.paused', 'task.finished'] as const) {
      this.o.events.on(name, soon);
      this.detach.push(() => this.o.events.off(name, soon));
    }
    this.deliverer.start();
    void this.sweepSoon();
  }

  /**
   * Records the notifications of a task's end (`completed`, `failed` — also `timed_out` and
   * `invalid` —, `budget_exceeded`; nothing for `cancelled` or `duplicate`), one per target
   * that wants it; recording it again records nothing. The dispatcher's reporter calls it
   * before the task's result file is written.
   * @throws what the store throws (the reporter then reports the task again later)
   */
  async taskEnded(task: Task): Promise<void> {
    if (!this.deliverer) return;
    const found = taskEvent(task, this.project, this.now());
    if (found && found.event.event !== 'blocked') await this.record([found]);
  }

  /** Records what the store shows now: blocked tasks, pauses in force, an empty queue (see the module comment). */
  async sweep(): Promise<void> {
    if (!this.deliverer) return;
    const store = this.o.store;
    const now = this.now();
    const found: Array<{ key: string; event: NotifyEvent }> = [];
    if (this.wants('blocked')) {
      for (const t of await store.listTasks({ state: 'blocked' })) {
        const e = taskEvent(t, this.project, now);
        if (e) found.push(e);
      }
    }
    if (this.wants('agent_paused')) {
      for (const p of await store.listPauses(now)) if (!isStartBucketPause(p)) found.push(pauseEvent(p, this.project, now));
    }
    if (this.wants('queue_empty')) {
      const q = await store.queueMark();
      if (q.active === 0 && q.mark !== '0:0') found.push(queueEmptyEvent(q.mark, this.project, now));
    }
    await this.record(found);
  }

  /** A sweep now, or right after the one running. */
  private sweepSoon(): Promise<void> {
    if (this.sweeping) {
      this.sweepAgain = true;
      return this.sweeping;
    }
    this.sweeping = (async () => {
      try {
        do {
          this.sweepAgain = false;
          await this.sweep();
        } while (this.sweepAgain);
      } catch (err) {
        this.o.events.emit('error', err instanceof Error ? err : new Error(String(err)));
      } finally {
        this.sweeping = null;
      }
    })();
    return this.sweeping;
  }

  /** One row per event and target that wants it; new rows are tried at once. */
  private async record(found: Array<{ key: string; event: NotifyEvent }>): Promise<void> {
    const rows: NewNotification[] = [];
    for (const { key, event } of found) {
      const payload = JSON.stringify(event);
      for (const t of this.targets.values()) {
        if (t.on.has(event.event)) rows.push({ key, target: t.id, event: event.event, taskId: event.task?.taskId ?? null, payload });
      }
    }
    if (rows.length === 0) return;
    const created = await this.o.store.recordNotifications(rows, this.now());
    if (created.length > 0) this.deliverer?.kick();
  }

  /** One try of one notification: the answer link (blocked) is made now, then the target's POST, or its command's run. */
  private async prepare(n: Notification): Promise<DeliveryRequest | DeliveryRun> {
    const t = this.targets.get(n.target)!;
    const event = JSON.parse(n.payload) as NotifyEvent;
    let link: AnswerLink | null = null;
    if (event.event === 'blocked' && event.task && event.claims !== null) {
      const token = newAnswerToken();
      const now = this.now();
      const expiresAt = now + this.o.config.serve.answer_link_ttl;
      await this.deliveryStore.addAnswerToken({ tokenSha256: answerTokenSha256(token), taskId: event.task.taskId, claims: event.claims, expiresAt }, now);
      link = { url: answerUrl(publicBaseUrl(this.o.config), event.task.taskId, token), expiresAt };
    }
    const target = t.target;
    switch (targetKind(target)) {
      case 'webhook':
        return { url: target.webhook!, headers: { 'x-agentq-event': event.event }, body: JSON.stringify(webhookBody(event, n.key, link)) };
      case 'ntfy': {
        const req = ntfyRequest(target.ntfy!, event, link, target.answers);
        return { url: req.url, headers: {}, body: JSON.stringify(req.body) };
      }
      case 'slack':
        return { url: target.slack!, headers: {}, body: JSON.stringify(slackBody(event, link)) };
      case 'command': {
        const argv = commandArgv(target.command);
        const input = commandInput(event, n.key, link);
        return {
          run: async (signal) =>
            argv
              ? runHook(argv, { stdin: input.stdin, env: hookEnv(this.o.env ?? process.env, input.env), cwd: this.o.paths.root, signal })
              : { ok: false, error: 'empty command', retryable: false },
        };
      }
    }
  }

  private async recordTry(n: Notification, t: Parameters<Store['recordNotificationTry']>[1]): Promise<void> {
    await this.deliveryStore.recordNotificationTry(n.id, t);
    if (t.outcome === 'failed') {
      const target = this.targets.get(n.target);
      this.o.events.emit('error', new Error(`${target?.label ?? n.target}: gave up on "${n.key}": ${t.error ?? 'failed'}`));
    }
  }

  /**
   * Sweeps once more and tries what is due now, waiting for those tries (the end of
   * `agentq run --once`: its last events go out before it exits; one that fails is left to
   * the next dispatcher).
   */
  async flush(): Promise<void> {
    if (!this.deliverer) return;
    await this.sweepSoon();
    await this.deliverer.flush();
  }

  /** Stops the sweep and the deliveries (tries in flight are cut and left due). */
  async stop(): Promise<void> {
    for (const off of this.detach.splice(0)) off();
    await this.sweeper?.stop();
    await this.sweeping;
    await this.deliverer?.stop();
  }
}
