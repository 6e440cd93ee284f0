/**
 * How an attempt continues the work of one that failed its verification or stalled: the
 * same agent session is resumed with what went wrong, where the runner can resume it and the
 * attempt runs on the same agent; otherwise the attempt starts afresh and the failure
 * history of its prompt (`withFailureSummary`) tells it the same. Pure.
 */
import type { Attempt, Verification } from '../core/types.ts';
import { stallNote } from './stall.ts';
import { failedVerificationOf, verifyFailureNote } from './verify.ts';

/** What {@link handBack} decides: resume `sessionId` with `prompt`, or start afresh (the failure history says it). */
export type HandBack = { kind: 'resume'; sessionId: string; prompt: string } | { kind: 'afresh' };

/**
 * The hand-back after the task's last attempt of its agent's own (interrupted and
 * rate-limited ones are skipped), when that one ended `verify_failed` or `stalled`; null
 * otherwise (the usual retry or answer rules apply).
 * @param earlier the task's attempts before the one starting, by number
 * @param verifications the task's verify runs (for the failed one's command, exit code, output)
 * @param next the starting attempt's agent and whether its runner can resume a session
 */
export function handBack(earlier: readonly Attempt[], verifications: readonly Verification[], next: { agent: string; canResume: boolean }): HandBack | null {
  const previous = earlier.filter((a) => a.outcome !== 'interrupted' && a.outcome !== 'rate_limited').at(-1);
  if (!previous || (previous.outcome !== 'verify_failed' && previous.outcome !== 'stalled')) return null;
  const failed = previous.outcome === 'verify_failed' ? failedVerificationOf(previous, verifications) : null;
  const sessionId = previous.stats.sessionId;
  if (!next.canResume || previous.agent !== next.agent || !sessionId || (previous.outcome === 'verify_failed' && !failed)) return { kind: 'afresh' };
  return { kind: 'resume', sessionId, prompt: failed ? verifyFailureNote(failed) : stallNote(previous) };
}
