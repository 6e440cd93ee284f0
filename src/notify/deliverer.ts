/**
 * Deliveries with backoff, one design for `callback_url` POSTs (src/server/callbacks.ts) and
 * notifications (src/notify/notifier.ts). The store keeps every delivery (pending until
 * delivered or given up) and finds the due ones; a due one is leased (its next try moved
 * past the try's time limit) before it is tried, and every try is recorded, so deliveries
 * survive a restart, resume in any process on the store, and are never tried by two at
 * once. A try that fails for a reason that may pass (a 5xx, 429 or 408, a timeout, a
 * connection error, a hook that failed) is tried again after `backoffMs` doubling per try,
 * until `maxTries`; any other failure (another 4xx) is final. Tries run beside the caller's
 * work, never in its way.
 */
import type { CallbackTry } from '../store/store.ts';

/** How one delivery is retried. Durations in ms. */
export interface RetryPolicy {
  /** Tries in all (the first and its retries), ≥ 1. */
  maxTries: number;
  /** Wait before the second try, ms, doubled for each further one. */
  backoffMs: number;
  /** Time limit of one try, ms. */
  timeoutMs: number;
}

/** What one try came to: delivered, or an error that is `retryable` (may pass) or final. */
export type SendResult = { ok: true } | { ok: false; error: string; retryable: boolean };

/** Where a {@link Deliverer}'s deliveries come from, how one is tried and how a try is recorded. */
export interface DeliverySource<T> {
  /** Due deliveries, at most `limit`, each leased until `now + leaseMs` (the store's claim). */
  claimDue(now: number, leaseMs: number, limit: number): Promise<T[]>;
  /** Tries already made of this delivery (recorded ones). */
  triesOf(item: T): number;
  policyOf(item: T): RetryPolicy;
  /**
   * Makes one try. `signal` aborts it (time limit, stop): the try should end soon after.
   * Should not throw; a throw counts as a retryable error.
   */
  send(item: T, signal: AbortSignal): Promise<SendResult>;
  /** Records a try in the store (see {@link CallbackTry}). */
  record(item: T, t: CallbackTry): Promise<void>;
}

export interface DelivererOptions {
  /**
   * How long a claimed delivery is leased, ms: past it another process may try it. At least
   * the longest try's time limit; callbacks and notifications use the time limit + 5 s.
   */
  leaseMs: number;
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
 * POSTs `body` (JSON) to `url` with `headers`, redirects not followed. A 2xx is delivered;
 * else the error is `HTTP STATUS TEXT`, retryable per {@link retryableStatus}; a connection
 * error is retryable. The answer's body is not read.
 */
export async function postJson(url: string, body: unknown, headers: Record<string, string>, signal: AbortSignal): Promise<SendResult> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'agent-queue', ...headers },
      body: JSON.stringify(body),
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

/** Tries due deliveries on a timer and on {@link kick}; {@link stop} ends it. */
export class Deliverer<T> {
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
    private readonly source: DeliverySource<T>,
    private readonly o: DelivererOptions,
  ) {
    this.pollMs = o.pollMs ?? 1000;
    this.batch = o.batch ?? 50;
    this.now = o.now ?? Date.now;
  }

  /** Starts polling the store (pending deliveries of earlier runs resume at once). */
  start(): void {
    this.started = true;
    this.timer = setInterval(() => this.kick(), this.pollMs);
    this.timer.unref();
    this.kick();
  }

  /** Looks for due deliveries now (e.g. one was just recorded); nothing before {@link start}. */
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
          const due = await this.source.claimDue(this.now(), this.o.leaseMs, this.batch);
          // Not awaited together: a slow receiver must not hold up the others' next look.
          for (const item of due) {
            const p = this.deliver(item);
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

  private async deliver(item: T): Promise<void> {
    const policy = this.source.policyOf(item);
    if (this.stopped) {
      await this.source.record(item, { outcome: 'released', nextTryAt: this.now(), now: this.now() }).catch(() => {});
      return;
    }
    const controller = new AbortController();
    this.inFlight.add(controller);
    let timedOut = false;
    const timeout = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error(`no answer within ${policy.timeoutMs} ms`));
    }, policy.timeoutMs);
    let result: SendResult;
    try {
      result = await this.source.send(item, controller.signal);
    } catch (err) {
      result = { ok: false, error: (err as Error).message, retryable: true };
    } finally {
      clearTimeout(timeout);
      this.inFlight.delete(controller);
    }
    if (!result.ok && timedOut) result = { ok: false, error: `timeout: no answer within ${policy.timeoutMs} ms`, retryable: true };
    const now = this.now();
    const tries = this.source.triesOf(item) + 1;
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
    await this.source.record(item, outcome).catch(() => {});
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
