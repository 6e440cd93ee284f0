/**
 * What every part of the Store contract shares: the factory a backend provides, the clock
 * origin and claim options of the cases, and the task builder.
 */
import type { ClaimOptions, Store } from '../../../src/store/store.ts';

export { newTask } from '../../fixtures/specs.ts';

/**
 * How the contract gets stores of one backend. `open()` must return a fresh, empty store;
 * `openSecond()` a second handle on the same data (another process's view), used for
 * cross-handle claims and rate tokens.
 */
export interface StoreFactory {
  open(): Promise<{ store: Store; openSecond: () => Promise<Store> }>;
}

/** One part of the contract: registers its `describe` block for a backend's factory. */
export type StoreContractPart = (factory: StoreFactory) => void;

/** The cases' clock origin, epoch ms. */
export const T0 = 1_700_000_000_000;

/** Claim options of worker `w1` at `now` (default {@link T0}): 30 s lease, concurrency 10, agents `command` and `claude`, no labels; `over` replaces any. */
export const claimOpts = (now = T0, over: Partial<ClaimOptions> = {}): ClaimOptions => ({
  workerId: 'w1',
  now,
  leaseMs: 30_000,
  concurrency: 10,
  agents: ['command', 'claude'],
  labels: [],
  ...over,
});
