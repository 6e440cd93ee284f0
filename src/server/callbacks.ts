/**
 * `callback_url` deliveries: once a task created over HTTP is terminal, its outcome is
 * POSTed as JSON to the URL it gave. A 2xx is delivered; a 5xx, a 429, a timeout or a
 * connection error is tried again after `backoffMs` doubling per try (1 s, 2 s, 4 s, 8 s,
 * 16 s by default: six tries within about half a minute); any other 4xx is final. Every try is
 * recorded in the store, which also finds the due deliveries, so deliveries survive a
 * restart and tasks ended by other dispatchers on the store are reported too. The
 * deliverer ({@link HttpDeliverer}) takes its work from a {@link DeliverySource}; A2A push
 * notifications are its other source (src/a2a/server/push.ts).
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

/** One POST a deliverer makes: JSON `body` to `url`, with `headers` besides the content type. */
export interface DeliveryRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
}

/**
 * What an {@link HttpDeliverer} delivers: due deliveries leased from the store, the request
 * of each, and how a try is recorded. `callback_url` deliveries (below) and A2A push
 * notifications (src/a2a/server/push.ts) are two sources of one deliverer.
 */
export interface DeliverySource<D> {
  /** Due deliveries, at most `limit`, each leased for `leaseMs` (another process does not take it meanwhile). */
  claimDue(now: number, leaseMs: number, limit: number): Promise<D[]>;
  /** Names a delivery while its request is in flight. */
  key(d: D): string;
  /** Tries already made (of this delivery), before the one about to be made. */
  attempts(d: D): number;
  request(d: D): DeliveryRequest;
  /** Records the result of a try. */
  record(d: D, t: CallbackTry): Promise<void>;
}

/** Timing of an {@link HttpDeliverer}. */
export interface DelivererOptions {
  /** Wait before the second try, ms, doubled for each further one. Default 1000 (config `serve.callback_backoff`). */
  backoffMs?: number;
  /** Tries in all. Default 6 (config `serve.callback_tries`). */
  maxTries?: number;
  /** Time limit of one request, ms. Default 10,000 (config `serve.callback_timeout`). */
  timeoutMs?: number;
  /** How often the store is asked for due deliveries, ms. Default 1000. */
  pollMs?: number;
  now?: () => number;
}

/**
 * Sends due deliveries of a {@link DeliverySource} on a timer and on `kick()`; `stop()` ends
 * it. A 2xx is `delivered`; a 5xx, 408, 429, timeout or connection error is tried again
 * after `backoffMs` doubling per try, up to `maxTries` in all; anything else is final
 * (`failed`). Redirects are not followed.
 */
export class HttpDeliverer<D> {
  private readonly o: Required<DelivererOptions>;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private readonly inFlight = new Map<string, AbortController>();
  private readonly deliveries = new Set<Promise<void>>();

  constructor(
    private readonly source: DeliverySource<D>,
    options: DelivererOptions = {},
  ) {
    const { backoffMs = 1000, maxTries = 6, timeoutMs = 10_000, pollMs = 1000, now = Date.now } = options;
    this.o = { backoffMs, maxTries, timeoutMs, pollMs, now };
  }

  /** Starts polling the store (pending deliveries of earlier runs resume at once). */
  start(): void {
    this.timer = setInterval(() => this.kick(), this.o.pollMs);
    this.timer.unref();
    this.kick();
  }

  /** Looks for due deliveries now (e.g. a task just ended). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          const due = await this.source.claimDue(this.o.now(), this.o.timeoutMs + 5000, 50);
          // Not awaited together: a slow endpoint must not hold up the others' next look.
          for (const d of due) {
            const p = this.deliver(d);
            this.deliveries.add(p);
            void p.finally(() => this.deliveries.delete(p));
          }
          if (due.length === 50) this.again = true;
        } while (this.again && !this.stopped);
      } catch {
        // The store is busy or closed: the next poll tries again.
      } finally {
        this.running = null;
      }
    })();
  }

  private async deliver(d: D): Promise<void> {
    if (this.stopped) {
      await this.source.record(d, { outcome: 'released', nextTryAt: this.o.now(), now: this.o.now() }).catch(() => {});
      return;
    }
    const key = this.source.key(d);
    const request = this.source.request(d);
    const controller = new AbortController();
    this.inFlight.set(key, controller);
    const timeout = setTimeout(() => controller.abort(new Error(`no answer within ${this.o.timeoutMs} ms`)), this.o.timeoutMs);
    let status: number | null = null;
    let error: string | null = null;
    try {
      const res = await fetch(request.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'agent-queue', ...request.headers },
        body: request.body,
        signal: controller.signal,
        redirect: 'manual',
      });
      status = res.status;
      await res.body?.cancel().catch(() => {});
      if (status < 200 || status >= 300) error = `HTTP ${status} ${res.statusText}`.trim();
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      if (this.stopped) error = 'stopped';
      else if (controller.signal.aborted) error = `timeout: no answer within ${this.o.timeoutMs} ms`;
      else error = [cause?.code, cause?.message ?? (err as Error).message].filter(Boolean).join(': ');
    } finally {
      clearTimeout(timeout);
      this.inFlight.delete(key);
    }
    const now = this.o.now();
    const tries = this.source.attempts(d) + 1;
    const retryable = status === null || status >= 500 || status === 429 || status === 408;
    try {
      if (this.stopped && status === null) {
        await this.source.record(d, { outcome: 'released', nextTryAt: now, now });
      } else if (error === null) {
        await this.source.record(d, { outcome: 'delivered', now });
      } else if (retryable && tries < this.o.maxTries) {
        const nextTryAt = now + this.o.backoffMs * 2 ** (tries - 1);
        await this.source.record(d, { outcome: 'retry', error, nextTryAt, now });
        const t = setTimeout(() => this.kick(), nextTryAt - now + 5);
        t.unref();
      } else {
        const why = retryable ? `${error} (gave up after ${tries} tries)` : error;
        await this.source.record(d, { outcome: 'failed', error: why, now });
      }
    } catch {
      // The store closed under us: the lease runs out and a later run tries again.
    }
  }

  /** Stops polling; requests in flight are aborted and their deliveries left due (not counted). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (const c of this.inFlight.values()) c.abort(new Error('stopped'));
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
    key: ({ task }) => String(task.id),
    attempts: ({ delivery }) => delivery.attempts,
    request: ({ delivery, task }) => ({ url: delivery.url, headers: { 'x-agentq-task-id': String(task.id) }, body: JSON.stringify(callbackPayload(task)) }),
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
