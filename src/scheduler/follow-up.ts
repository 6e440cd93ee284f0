/**
 * The prompt and session of an attempt that follows up an earlier one, as one pure rule
 * ({@link followUp}): after a failed verification or a stall the same agent session is
 * resumed with what went wrong ({@link handBack}); after an answer or a release (`agentq
 * answer`, `agentq release`) with the answer or the person's note (`followUpPrompt`); where
 * the runner cannot resume, or the attempt runs on another agent, it starts afresh from the
 * task's prompt with its failure history (`withFailureSummary`) and the answer or note
 * restated after it.
 */
import { followUpPrompt, followUpWords, TAKEN_OVER } from '../core/takeover.ts';
import type { Attempt, Task, Verification } from '../core/types.ts';
import { stallNote } from './stall.ts';
import { failedVerificationOf, verifyFailureNote } from './verify.ts';

/** What {@link handBack} decides: resume `sessionId` with `prompt`, or start afresh (the failure history says it). */
export type HandBack = { kind: 'resume'; sessionId: string; prompt: string } | { kind: 'afresh' };

/**
 * The task's newest attempt that ended by the agent's own doing or by a takeover: rate-limited
 * and interrupted attempts are skipped, but not one interrupted because a person took the
 * task over (reason `taken over`: a release follows it). Undefined when there is none.
 */
function lastOwnAttempt(earlier: readonly Attempt[]): Attempt | undefined {
  return earlier.filter((a) => a.outcome !== 'rate_limited' && (a.outcome !== 'interrupted' || a.reason === TAKEN_OVER)).at(-1);
}

/**
 * The hand-back after the task's newest attempt of its agent's own ({@link lastOwnAttempt}),
 * when that one ended `verify_failed` or `stalled`; null otherwise (an answer, a release or
 * the usual retry apply).
 * @param earlier the task's attempts before the one starting, by number
 * @param verifications the task's verify runs (for the failed one's command, exit code, output)
 * @param next the starting attempt's agent and whether its runner can resume a session
 */
export function handBack(earlier: readonly Attempt[], verifications: readonly Verification[], next: { agent: string; canResume: boolean }): HandBack | null {
  const previous = lastOwnAttempt(earlier);
  if (!previous || (previous.outcome !== 'verify_failed' && previous.outcome !== 'stalled')) return null;
  const failed = previous.outcome === 'verify_failed' ? failedVerificationOf(previous, verifications) : null;
  const sessionId = previous.stats.sessionId;
  if (!next.canResume || previous.agent !== next.agent || !sessionId || (previous.outcome === 'verify_failed' && !failed)) return { kind: 'afresh' };
  return { kind: 'resume', sessionId, prompt: failed ? verifyFailureNote(failed) : stallNote(previous) };
}

/** The prompt an attempt starts with, and the agent session it resumes (null: a new one). */
export interface FollowUp {
  prompt: string;
  resumeSessionId: string | null;
}

/**
 * The prompt and session of the attempt starting now:
 * - the newest attempt of the agent's own ended `verify_failed` or `stalled` ({@link handBack}):
 *   its session resumed with the failed command and its output, or the stall note; a pending
 *   release note (a takeover of the task while it was queued leaves no attempt, so it may be
 *   the newer) follows that note. Afresh: `prompt` (whose failure history holds the failure),
 *   with a pending answer or release note restated;
 * - else an answer or a release note pending (`task.answer`): `followUpPrompt`;
 * - else `prompt` in a new session.
 * @param task the claimed task (`agent`: the agent the attempt runs on)
 * @param prompt the task's prompt with the failure history of its earlier attempts
 * @param earlier the task's attempts before the one starting, by number
 * @param verifications the task's verify runs (needed when an earlier attempt ended `verify_failed`)
 * @param canResume whether the attempt's runner can resume a session
 */
export function followUp(
  task: Pick<Task, 'agent' | 'answer' | 'question' | 'stats'>,
  prompt: string,
  earlier: readonly Attempt[],
  verifications: readonly Verification[],
  canResume: boolean,
): FollowUp {
  const back = handBack(earlier, verifications, { agent: task.agent, canResume });
  if (back === null) return followUpPrompt(task, prompt, canResume) ?? { prompt, resumeSessionId: null };
  if (back.kind === 'afresh') return followUpPrompt(task, prompt, false) ?? { prompt, resumeSessionId: null };
  // An answer pending here was given before the failed attempt (an answer follows a `blocked` one): that session has it.
  const pending = followUpWords(task);
  return { prompt: pending?.kind === 'release' ? `${back.prompt}\n\n---\n${pending.resumed}` : back.prompt, resumeSessionId: back.sessionId };
}
