/**
 * Riding out store outages: another process holding the SQLite write lock past the busy
 * timeout, a full disk, an I/O error. A dispatcher's store calls that fail for such a
 * reason (`isTransientStoreError`) are tried again with backoff until they go through, so
 * the dispatch loop never dies of them and the outcome of an agent that ended meanwhile is
 * recorded once the store is back. An outage is reported once when it starts and once when
 * it ends.
 */
import { isTransientStoreError, type Store } from '../store/store.ts';
import { backoffMs } from './backoff.ts';

/** First wait before trying a failed store call again, in ms; it doubles per try (with jitter). */
export const STORE_RETRY_FIRST_MS = 100;
/** Longest wait between two tries during a store outage, in ms. */
export const STORE_RETRY_MAX_MS = 5_000;
/**
 * The SQLite busy timeout of a dispatcher's store connection (`agentq run`, `serve`), in ms:
 * short, since better-sqlite3 waits with the event loop blocked; a longer lock is waited
 * out by {@link StoreRetry} with the loop free (agents' output read, timers firing).
 */
export const DISPATCHER_BUSY_TIMEOUT_MS = 2_000;

export interface StoreOutageListener {
  /** An outage began: `error` is the first failure, the next try is in `retryInMs` ms. */
  unavailable(error: Error, retryInMs: number): void;
  /** The outage that began at `since` (epoch ms) ended; it lasted `outageMs` ms. */
  back(outageMs: number, since: number): void;
}

/**
 * Runs store calls, trying those that fail transiently again after a backoff of
 * {@link STORE_RETRY_FIRST_MS} doubling up to {@link STORE_RETRY_MAX_MS} (full jitter),
 * forever. While an outage lasts, calls go one at a time, each after the backoff, so a
 * locked database is not hit (and the event loop not blocked for a busy timeout) by every
 * waiting caller at once. The outage ends when a call that had failed goes through (a read
 * may succeed while writes still fail, so a fresh call's success does not count).
 */
export class StoreRetry {
  private outage: { since: number; tries: number } | null = null;
  /** Serialises tries during an outage: each caller waits for the previous one's try (and backoff). */
  private gate: Promise<void> = Promise.resolve();
  /** When the last outage ended (epoch ms); null before any. */
  lastBackAt: number | null = null;

  /**
   * @param listener told when an outage starts and ends
   * @param now clock, epoch ms (default Date.now)
   * @param sleep waits `ms` ms (default setTimeout)
   */
  constructor(
    private readonly listener: StoreOutageListener,
    private readonly now: () => number = Date.now,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {}

  /** Epoch ms when the current outage began, or null when the store answers. */
  get unavailableSince(): number | null {
    return this.outage?.since ?? null;
  }

  /**
   * Runs `call` until it does not fail transiently; resolves with its value.
   * @throws whatever `call` throws that is not a transient store error
   */
  async run<T>(call: () => Promise<T>): Promise<T> {
    let failedBefore = false;
    for (;;) {
      let release = () => {};
      if (this.outage) {
        const previous = this.gate;
        this.gate = new Promise<void>((r) => (release = r));
        await previous;
      }
      const startedAt = this.now();
      try {
        const value = await call();
        if (failedBefore) this.ended();
        return value;
      } catch (err) {
        if (!isTransientStoreError(err)) {
          if (failedBefore) this.ended(); // the store answered
          throw err;
        }
        failedBefore = true;
        await this.sleep(this.failed(err as Error, startedAt));
      } finally {
        release();
      }
    }
  }

  /** `store` with every method run through {@link run} (`close` as is). */
  wrap(store: Store): Store {
    return new Proxy(store, {
      get: (target, prop) => {
        const value: unknown = Reflect.get(target, prop, target);
        if (typeof value !== 'function' || prop === 'close') return value;
        return (...args: unknown[]) => this.run(async () => (value as (...a: unknown[]) => Promise<unknown>).apply(target, args));
      },
    });
  }

  /** Records a failed try (starting the outage at `startedAt` if none is on); returns the wait before the next. */
  private failed(error: Error, startedAt: number): number {
    const first = this.outage === null;
    const outage = (this.outage ??= { since: startedAt, tries: 0 });
    const wait = backoffMs(++outage.tries, STORE_RETRY_FIRST_MS, STORE_RETRY_MAX_MS);
    if (first) this.listener.unavailable(error, wait);
    return wait;
  }

  private ended(): void {
    if (!this.outage) return;
    const { since } = this.outage;
    this.outage = null;
    this.lastBackAt = this.now();
    this.listener.back(this.lastBackAt - since, since);
  }
}
