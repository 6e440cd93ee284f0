/**
 * `callback_url` deliveries: once a task created over HTTP is terminal, its outcome is
 * POSTed as JSON to the URL it gave. A 2xx is delivered; a 5xx, a 429, a timeout or a
 * connection error is tried again after `backoffMs` doubling per try (1 s, 2 s, 4 s, 8 s,
 * 16 s by default: six tries within about half a minute); any other 4xx is final. Every try is
 * recorded in the store, which also finds the due deliveries, so deliveries survive a
 * restart and tasks ended by other dispatchers on the store are reported too. The delivery
 * rules are src/notify/deliverer.ts's, shared with notifications.
 */
import type { Task } from '../core/types.ts';
import { Deliverer, postJson, type DeliverySource, type RetryPolicy } from '../notify/deliverer.ts';
import type { CallbackDelivery, DueCallback, Store } from '../store/store.ts';

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

export interface CallbackOptions {
  store: Store;
  /** Wait before the second try, ms, doubled for each further one. Default 1000 (config `serve.callback_backoff`). */
  backoffMs?: number;
  /** Tries in all. Default 6 (config `serve.callback_tries`). */
  maxTries?: number;
  /** Time limit of one request, ms. Default 10,000 (config `serve.callback_timeout`). */
  timeoutMs?: number;
  /** How often the store is asked for due deliveries, ms. Default 1000. */
  pollMs?: number;
  /** Called after each recorded try (for logs and tests). */
  onTry?: (delivery: CallbackDelivery, task: Task) => void;
  now?: () => number;
}

/**
 * Sends due callbacks on a timer and on `kick()`; `stop()` ends it. The retry, lease and
 * shutdown rules are the shared {@link Deliverer}'s; this says where callbacks are kept and
 * what is POSTed.
 */
export class CallbackDeliverer {
  private readonly deliverer: Deliverer<DueCallback>;

  constructor(options: CallbackOptions) {
    const policy: RetryPolicy = { backoffMs: options.backoffMs ?? 1000, maxTries: options.maxTries ?? 6, timeoutMs: options.timeoutMs ?? 10_000 };
    const store = options.store;
    const source: DeliverySource<DueCallback> = {
      claimDue: (now, leaseMs, limit) => store.claimDueCallbacks(now, leaseMs, limit),
      triesOf: ({ delivery }) => delivery.attempts,
      policyOf: () => policy,
      send: ({ delivery, task }, signal) => postJson(delivery.url, callbackPayload(task), { 'x-agentq-task-id': String(task.id) }, signal),
      record: async ({ task }, t) => {
        const recorded = await store.recordCallbackTry(task.id, t);
        if (recorded) options.onTry?.(recorded, task);
      },
    };
    this.deliverer = new Deliverer(source, {
      leaseMs: policy.timeoutMs + 5000,
      ...(options.pollMs === undefined ? {} : { pollMs: options.pollMs }),
      ...(options.now === undefined ? {} : { now: options.now }),
    });
  }

  /** Starts polling the store (pending deliveries of earlier runs resume at once). */
  start(): void {
    this.deliverer.start();
  }

  /** Looks for due deliveries now (e.g. a task just ended). */
  kick(): void {
    this.deliverer.kick();
  }

  /** Stops polling; requests in flight are aborted and their deliveries left due (not counted). */
  stop(): Promise<void> {
    return this.deliverer.stop();
  }
}
