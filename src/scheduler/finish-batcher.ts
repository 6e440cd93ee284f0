/**
 * The dispatcher's completer: attempts' ends recorded in batches (`Store.finishMany`) by group
 * commit, as River's batch completer does. A finish asked while none is under way goes to the
 * store at once (in the same turn of the event loop, with whatever else was asked in it);
 * finishes asked while a batch is under way wait for it and go together in the next one. No
 * timer, so no wait is added when the store is idle; under load one round trip (and, on
 * PostgreSQL, one work notification) ends many tasks.
 */
import type { Task } from '../core/types.ts';
import type { FinishItem, FinishOutcome, Store } from '../store/store.ts';

/** Most ends sent in one `finishMany` call; more wait for the next batch. */
export const FINISH_BATCH_MAX = 100;

interface Pending {
  item: FinishItem;
  resolve: (task: Task | null) => void;
  reject: (err: unknown) => void;
}

/**
 * Groups `finish` calls into `finishMany` calls, at most one under way at a time. Each caller
 * gets its own result (its task, or null when its attempt lost the lease). A batch call that
 * throws changed nothing (store methods are all-or-nothing): its ends are then sent one by
 * one, each caller rejected only by the error of its own call.
 */
export class FinishBatcher {
  private queue: Pending[] = [];
  /** A batch is being sent, or one is due in this turn of the event loop. */
  private busy = false;

  /**
   * @param store where the ends are recorded (the dispatcher's store, its calls retried through outages)
   * @param maxBatch most ends in one call (default {@link FINISH_BATCH_MAX})
   */
  constructor(
    private readonly store: Pick<Store, 'finishMany'>,
    private readonly maxBatch = FINISH_BATCH_MAX,
  ) {}

  /** Ends the task of `attemptId` as `Store.finish` does, in the next batch; resolves with its result. */
  finish(attemptId: string, outcome: FinishOutcome): Promise<Task | null> {
    return new Promise<Task | null>((resolve, reject) => {
      this.queue.push({ item: { attemptId, outcome }, resolve, reject });
      if (this.busy) return;
      this.busy = true;
      // After the current turn's other finishes were asked (a microtask: no timer, no wait).
      queueMicrotask(() => void this.drain());
    });
  }

  /**
   * After a batch call failed (the store changed nothing): each end alone, so an end the
   * store refuses (text PostgreSQL cannot hold) fails only its own caller; a store that
   * fails every call rejects each caller with its error.
   */
  private async oneByOne(batch: readonly Pending[]): Promise<void> {
    for (const p of batch) {
      try {
        p.resolve((await this.store.finishMany([p.item]))[0] ?? null);
      } catch (err) {
        p.reject(err);
      }
    }
  }

  /** Sends batches until none is waiting. */
  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      try {
        const results = await this.store.finishMany(batch.map((p) => p.item));
        batch.forEach((p, i) => p.resolve(results[i] ?? null));
      } catch (err) {
        if (batch.length === 1) batch[0]!.reject(err);
        else await this.oneByOne(batch);
      }
    }
    this.busy = false;
  }
}
