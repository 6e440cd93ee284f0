/**
 * `callback_url` deliveries: once a task created over HTTP is terminal, its outcome is
 * POSTed as JSON to the URL it gave. A 2xx is delivered; a 5xx, a 429, a timeout or a
 * connection error is tried again after `backoffMs` doubling per try (1 s, 2 s, 4 s, 8 s,
 * 16 s by default: six tries within about half a minute); any other 4xx is final. Every try is
 * recorded in the store, which also finds the due deliveries, so deliveries survive a
 * restart and tasks ended by other dispatchers on the store are reported too.
 *
 * The deliverer ({@link HttpDeliverer}) is the one durable deliverer of agentq: it takes its
 * work from a {@link DeliverySource}. Callbacks are one source; A2A push notifications
 * (src/a2a/server/push.ts) and `notify:` targets (src/notify/notifier.ts: webhook, ntfy and
 * Slack POSTs; a `command:` target's hook is a {@link DeliveryRun}) are the others.
 */
import type { Task } from '../core/types.ts';
import type { CallbackDelivery, CallbackTry, DueCallback, Store } from '../store/store.ts';

/** The JSON POSTed to a task's `callback_url`. Money USD, times epoch ms. */
export interface CallbackPayload {
  taskId: number;
  name: string;
  state: Task['state'];
  /** The agent's final result text (completed), else null. */
  result: string | null;
  failedReason: string | null;
  costUsd: number | null;
  inputTokens: number | null;
  outputTokens: number | null;
  finishedAt: number | null;
}

export function callbackPayload(task: Task): CallbackPayload {
  return {
    taskId: task.id,
    name: task.name,
    state: task.state,
    result: task.result,
    failedReason: task.failedReason,
    costUsd: task.stats.costUsd,
    inputTokens: task.stats.inputTokens,
    outputTokens: task.stats.outputTokens,
    finishedAt: task.finishedAt,
  };
}

/** One POST a deliverer makes: JSON text `body` to `url`, with `headers` besides the content type and user agent. */
export interface DeliveryRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** What one try came to: delivered, or an error that is `retryable` (may pass) or final. */
export type SendResult = { ok: true } | { ok: false; error: string; retryable: boolean };

/**
 * A try that is not a POST (a `command:` notification target's hook): `run` makes it and says
 * what it came to; `signal` aborts it (time limit, stop), and it should end soon after. A throw
 * counts as a retryable error.
 */
export interface DeliveryRun {
  run(signal: AbortSignal): Promise<SendResult>;
}

/** How one delivery is retried. Durations in ms. */
export interface RetryPolicy {
  /** Tries in all (the first and its retries), ≥ 1. */
  maxTries: number;
  /** Wait before the second try, ms, doubled for each further one. */
  backoffMs: number;
  /** Time limit of one try, ms. */
  timeoutMs: number;
}

/**
 * What an {@link HttpDeliverer} delivers: due deliveries leased from the store, what a try of
 * each is, and how a try is recorded. `callback_url` deliveries (below), A2A push
 * notifications (src/a2a/server/push.ts) and notifications (src/notify/notifier.ts) are
 * sources of the one deliverer.
 */
export interface DeliverySource<D> {
  /** Due deliveries, at most `limit`, each leased until `now + leaseMs` (another process does not take it meanwhile). */
  claimDue(now: number, leaseMs: number, limit: number): Promise<D[]>;
  /** Tries already made (recorded) of this delivery, before the one about to be made. */
  attempts(d: D): number;
  /**
   * What the next try of `d` is, made just before it: a POST ({@link DeliveryRequest}), or a
   * {@link DeliveryRun}. A throw (e.g. the store is unreachable) counts as a retryable error.
   */
  prepare(d: D): DeliveryRequest | DeliveryRun | Promise<DeliveryRequest | DeliveryRun>;
  /** Its retry policy; default the deliverer's (`backoffMs`, `maxTries`, `timeoutMs` of its options). */
  policy?(d: D): RetryPolicy;
  /** Records the result of a try (see {@link CallbackTry}); a throw is ignored (the lease runs out, a later look tries again). */
  record(d: D, t: CallbackTry): Promise<void>;
}

/** Timing of an {@link HttpDeliverer}. */
export interface DelivererOptions {
  /** Wait before the second try, ms, doubled for each further one. Default 1000 (config `serve.callback_backoff`). */
  backoffMs?: number;
  /** Tries in all. Default 6 (config `serve.callback_tries`). */
  maxTries?: number;
  /** Time limit of one try, ms. Default 10,000 (config `serve.callback_timeout`). */
  timeoutMs?: number;
  /**
   * How long a claimed delivery is leased, ms: past it another process may try it. At least
   * the longest try's time limit. Default `timeoutMs` + 5000.
   */
  leaseMs?: number;
  /** How often the store is asked for due deliveries, ms. Default 1000. */
  pollMs?: number;
  /** Deliveries claimed per look. Default 50. */
  batch?: number;
  now?: () => number;
}

/** What a fetch error says: `ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:9` (the cause's code and message). */
export function fetchErrorText(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return [cause?.code, cause?.message ?? (err as Error).message].filter(Boolean).join(': ');
}

/** Whether an HTTP status may pass if tried later: 5xx, 429 (too many requests), 408 (timeout). */
export function retryableStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

/**
 * Makes one POST: `request.body` as JSON, redirects not followed, the answer's body not read. A
 * 2xx is delivered; else the error is `HTTP STATUS TEXT`, retryable per {@link retryableStatus};
 * a connection error is retryable.
 */
export async function post(request: DeliveryRequest, signal: AbortSignal): Promise<SendResult> {
  try {
    const res = await fetch(request.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'agent-queue', ...request.headers },
      body: request.body,
      signal,
      redirect: 'manual',
    });
    await res.body?.cancel().catch(() => {});
    if (res.status >= 200 && res.status < 300) return { ok: true };
    return { ok: false, error: `HTTP ${res.status} ${res.statusText}`.trim(), retryable: retryableStatus(res.status) };
  } catch (err) {
    return { ok: false, error: fetchErrorText(err), retryable: true };
  }
}

/**
 * Sends due deliveries of a {@link DeliverySource} on a timer and on `kick()` (nothing before
 * `start()`); `stop()` ends it. A due delivery is leased before it is tried and every try is
 * recorded, so deliveries survive a restart, resume in any process on the store, and are
 * never tried by two at once. A POST's 2xx (a run's success) is `delivered`; a 5xx, 408, 429,
 * timeout or connection error (a run's retryable error) is tried again after `backoffMs`
 * doubling per try, up to `maxTries` in all; anything else is final (`failed`). Tries run
 * beside the caller's work, never in its way.
 */
export class HttpDeliverer<D> {
  private readonly policy: RetryPolicy;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly batch: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private started = false;
  private stopped = false;
  private readonly inFlight = new Set<AbortController>();
  private readonly deliveries = new Set<Promise<void>>();

  constructor(
    private readonly source: DeliverySource<D>,
    options: DelivererOptions = {},
  ) {
    const { backoffMs = 1000, maxTries = 6, timeoutMs = 10_000, pollMs = 1000, batch = 50, now = Date.now } = options;
    this.policy = { backoffMs, maxTries, timeoutMs };
    this.leaseMs = options.leaseMs ?? timeoutMs + 5000;
    this.pollMs = pollMs;
    this.batch = batch;
    this.now = now;
  }

  /** Starts polling the store (pending deliveries of earlier runs resume at once). */
  start(): void {
    this.started = true;
    this.timer = setInterval(() => this.kick(), this.pollMs);
    this.timer.unref();
    this.kick();
  }

  /** Looks for due deliveries now (e.g. a task just ended); nothing before {@link start}. */
  kick(): void {
    if (!this.started || this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          const due = await this.source.claimDue(this.now(), this.leaseMs, this.batch);
          // Not awaited together: a slow receiver must not hold up the others' next look.
          for (const d of due) {
            const p = this.deliver(d);
            this.deliveries.add(p);
            void p.finally(() => this.deliveries.delete(p));
          }
          if (due.length === this.batch) this.again = true;
        } while (this.again && !this.stopped);
      } catch {
        // The store is busy or closed: the next poll tries again.
      } finally {
        this.running = null;
      }
    })();
  }

  /** Looks for due deliveries once more and waits until they and those in flight are tried. */
  async flush(): Promise<void> {
    if (this.stopped) return;
    this.kick();
    while (this.running || this.deliveries.size > 0) {
      await this.running;
      await Promise.all([...this.deliveries]);
    }
  }

  private async deliver(d: D): Promise<void> {
    if (this.stopped) {
      await this.source.record(d, { outcome: 'released', nextTryAt: this.now(), now: this.now() }).catch(() => {});
      return;
    }
    const policy = this.source.policy?.(d) ?? this.policy;
    const controller = new AbortController();
    this.inFlight.add(controller);
    let timedOut = false;
    const timeout = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error(`no answer within ${policy.timeoutMs} ms`));
    }, policy.timeoutMs);
    let result: SendResult;
    try {
      const attempt = await this.source.prepare(d);
      result = 'run' in attempt ? await attempt.run(controller.signal) : await post(attempt, controller.signal);
    } catch (err) {
      result = { ok: false, error: err instanceof Error ? err.message : String(err), retryable: true };
    } finally {
      clearTimeout(timeout);
      this.inFlight.delete(controller);
    }
    if (!result.ok && timedOut) result = { ok: false, error: `timeout: no answer within ${policy.timeoutMs} ms`, retryable: true };
    const now = this.now();
    const tries = this.source.attempts(d) + 1;
    let outcome: CallbackTry;
    if (!result.ok && this.stopped && controller.signal.aborted) {
      outcome = { outcome: 'released', nextTryAt: now, now }; // cut short by stop(): not counted, due again
    } else if (result.ok) {
      outcome = { outcome: 'delivered', now };
    } else if (result.retryable && tries < policy.maxTries) {
      const nextTryAt = now + policy.backoffMs * 2 ** (tries - 1);
      outcome = { outcome: 'retry', error: result.error, nextTryAt, now };
      const t = setTimeout(() => this.kick(), nextTryAt - now + 5);
      t.unref();
    } else {
      outcome = { outcome: 'failed', error: result.retryable ? `${result.error} (gave up after ${tries} tries)` : result.error, now };
    }
    // The store closed under us: the lease runs out and a later run tries again.
    await this.source.record(d, outcome).catch(() => {});
  }

  /** Stops polling; tries in flight are aborted and their deliveries left due (not counted). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (const c of this.inFlight) c.abort(new Error('stopped'));
    await this.running;
    await Promise.all([...this.deliveries]);
  }
}

export interface CallbackOptions extends DelivererOptions {
  store: Store;
  /** Called after each recorded try (for logs and tests). */
  onTry?: (delivery: CallbackDelivery, task: Task) => void;
}

/** The `callback_url` deliveries of the store (`claimDueCallbacks`, `recordCallbackTry`), each POSTing {@link callbackPayload}. */
export function callbackSource(store: Store, onTry?: CallbackOptions['onTry']): DeliverySource<DueCallback> {
  return {
    claimDue: (now, leaseMs, limit) => store.claimDueCallbacks(now, leaseMs, limit),
    attempts: ({ delivery }) => delivery.attempts,
    prepare: ({ delivery, task }) => ({ url: delivery.url, headers: { 'x-agentq-task-id': String(task.id) }, body: JSON.stringify(callbackPayload(task)) }),
    record: async ({ task }, t) => {
      const recorded = await store.recordCallbackTry(task.id, t);
      if (recorded) onTry?.(recorded, task);
    },
  };
}

/** Sends due `callback_url` deliveries on a timer and on `kick()`; `stop()` ends it. */
export class CallbackDeliverer extends HttpDeliverer<DueCallback> {
  constructor(options: CallbackOptions) {
    super(callbackSource(options.store, options.onTry), options);
  }
}
