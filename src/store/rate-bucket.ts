/**
 * The token-bucket arithmetic of {@link Store.takeRateToken}, shared by every backend: a
 * backend reads the bucket's row, calls {@link takeToken} and writes the row back, all in
 * one transaction of its own.
 */
import { AgentQueueError } from '../core/errors.ts';
import type { RateBucket, RateToken } from './store.ts';

/** How far below a whole token still counts as one (float rounding of the refill). */
const TOKEN_EPSILON = 1e-9;

/**
 * Refuses a bucket that cannot work.
 * @throws AgentQueueError `invalid_bucket` unless capacity ≥ 1 and refillPerMs > 0 (both finite).
 */
export function checkBucket(agent: string, { capacity, refillPerMs }: RateBucket): void {
  if (!(capacity >= 1) || !(refillPerMs > 0) || !Number.isFinite(capacity) || !Number.isFinite(refillPerMs)) {
    throw new AgentQueueError('invalid_bucket', `rate bucket of ${agent}: capacity must be ≥ 1 and refillPerMs > 0 (got ${capacity}, ${refillPerMs})`);
  }
}

/**
 * One take from a bucket stored as `stored` (null: never used, so full): refill since its
 * last update (capped at capacity; a clock behind the last update adds nothing), then take a
 * token if there is one. Returns the answer and the row to store (`token.tokens` at `updatedAt`).
 */
export function takeToken(
  stored: { tokens: number; updatedAt: number } | null,
  { capacity, refillPerMs }: RateBucket,
  now: number,
): { token: RateToken; updatedAt: number } {
  const updatedAt = stored ? stored.updatedAt : now;
  const before = stored ? Math.min(capacity, stored.tokens + Math.max(0, now - updatedAt) * refillPerMs) : capacity;
  // Within float rounding of a whole token counts as one, so the bucket is never short at `nextTokenAt`.
  const taken = before >= 1 - TOKEN_EPSILON;
  const tokens = taken ? Math.max(0, before - 1) : before;
  // A clock behind the last update (another host's) neither refills nor moves the bucket back.
  const at = Math.max(now, updatedAt);
  if (tokens >= 1 - TOKEN_EPSILON) return { token: { taken, tokens, nextTokenAt: now }, updatedAt: at };
  // A whole ms at which the same refill sum as above reaches a token (at most 1 ms past the exact time).
  let wait = Math.max(1, Math.round((1 - tokens) / refillPerMs));
  if (tokens + wait * refillPerMs < 1 - TOKEN_EPSILON) wait = Math.ceil((1 - tokens) / refillPerMs);
  return { token: { taken, tokens, nextTokenAt: at + wait }, updatedAt: at };
}
