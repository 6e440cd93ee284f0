/**
 * The proactive per-agent limiter (issue #5, `agents.<name>.rate_limit`): a token bucket of
 * attempt starts, kept in the store (`Store.takeRateToken`) so every dispatcher on it
 * shares one. The dispatcher takes a token when an attempt is about to start on an agent;
 * when the bucket is empty it pauses the agent until the next token (no strike, a longer
 * pause kept), so claims and `agent: auto` routing skip it without trying.
 */
import type { AgentConfig } from '../config/config.ts';
import type { AgentPause } from '../core/types.ts';
import type { RateBucket, RateToken, Store } from '../store/store.ts';

/**
 * The bucket of an agent's `rate_limit: N/WINDOW`: capacity `rate_limit_burst` (default N,
 * a full window's worth of starts at once), refilled at N tokens per window. Null when the
 * agent has no `rate_limit`.
 */
export function agentBucket(agent: Pick<AgentConfig, 'rate_limit' | 'rate_limit_burst'>): RateBucket | null {
  const rate = agent.rate_limit;
  if (!rate) return null;
  return { capacity: agent.rate_limit_burst ?? rate.count, refillPerMs: rate.count / rate.windowMs };
}

/**
 * Why an agent waits for its bucket: `rate_limit 60/h: bucket empty, next start at
 * HH:MM:SS UTC` (UTC, as `agentq status` prints times).
 */
export function rateLimitReason(agent: Pick<AgentConfig, 'rate_limit'>, nextTokenAt: number): string {
  return `rate_limit ${agent.rate_limit?.text ?? '?'}: bucket empty, next start at ${new Date(nextTokenAt).toISOString().slice(11, 19)} UTC`;
}

/** The result of {@link takeStart}. */
export interface StartToken extends RateToken {
  /** The pause set because the bucket is now empty, if it was set (a longer one is kept). */
  pause: AgentPause | null;
}

/**
 * Takes a start token from the bucket of `account` (`accountOf` the agent whose settings
 * `config` are) if the agent has a `rate_limit` (else returns taken, no pause).
 * When the bucket is left without a whole token, whether one was taken or not, pauses the
 * account until the next token, with {@link rateLimitReason}, through `Store.extendPause`
 * (strikes untouched, a longer pause kept).
 */
export async function takeStart(store: Store, account: string, config: Pick<AgentConfig, 'rate_limit' | 'rate_limit_burst'>, now: number): Promise<StartToken> {
  const bucket = agentBucket(config);
  if (!bucket) return { taken: true, tokens: Infinity, nextTokenAt: now, pause: null };
  const token = await store.takeRateToken(account, bucket, now);
  if (token.nextTokenAt <= now) return { ...token, pause: null };
  const pause = { agent: account, until: token.nextTokenAt, reason: rateLimitReason(config, token.nextTokenAt) };
  return { ...token, pause: (await store.extendPause(pause)) ? pause : null };
}

/**
 * Whether a pause is a start bucket's (set by {@link takeStart} with {@link rateLimitReason}),
 * agentq's own pacing rather than a limit or budget the agent ran into.
 */
export function isStartBucketPause(pause: Pick<AgentPause, 'reason'>): boolean {
  return /^rate_limit \S+: bucket empty, next start at /.test(pause.reason);
}
