/**
 * Taking a task over by hand (`agentq attach`) and handing it back (`agentq release`): the
 * words every store backend and the dispatcher share, and the prompt of the attempt that
 * resumes after a release.
 */
import { AgentQueueError } from './errors.ts';
import type { Task } from './types.ts';

/** The reason recorded on an attempt stopped because a person took its task over. */
export const TAKEN_OVER = 'taken over';

/** The note a released task resumes with when `agentq release` is given none. */
export const DEFAULT_RELEASE_NOTE =
  'A person took this task over by hand in this session and has now handed it back to you. ' +
  'Look at the workspace as it is now (they may have changed files or committed), then continue the task from there.';

/**
 * The error of `release` on a task that is not taken over by hand (code `not_taken_over`).
 * @param state the task's state; `question` whether it is blocked on a question
 */
export function notTakenOver(taskId: number, state: string, question = false): AgentQueueError {
  const what = state === 'blocked' && question ? 'blocked on a question (agentq answer answers it)' : state;
  return new AgentQueueError('not_taken_over', `task ${taskId} is ${what}, not taken over by hand (agentq attach takes a running or blocked task over)`);
}

/** The error of `answer` on a task taken over by hand (code `not_blocked`, as for any task that asks nothing). */
export function takenOverNotBlocked(taskId: number): AgentQueueError {
  return new AgentQueueError('not_blocked', `task ${taskId} is taken over by hand, not blocked on a question: agentq release hands it back`);
}

/**
 * What an attempt that follows an answer or a release (`task.answer` set) is told: `kind`
 * `answer` (the task asked `question`) or `release` (the person's note, no question);
 * `resumed` for the agent's resumed session (`The answer to your question: …`, or the note
 * alone), `restated` to follow the task's prompt in a new session. Null when `task.answer` is null.
 */
export function followUpWords(task: Pick<Task, 'answer' | 'question'>): { kind: 'answer' | 'release'; resumed: string; restated: string } | null {
  if (task.answer === null) return null;
  return task.question === null
    ? { kind: 'release', resumed: task.answer, restated: `Note from the person who worked on this task by hand: ${task.answer}` }
    : { kind: 'answer', resumed: `The answer to your question:\n\n${task.answer}`, restated: `You asked: ${task.question}\nThe answer: ${task.answer}` };
}

/**
 * The prompt of an attempt that follows an answer or a release (`task.answer` set), and
 * whether it resumes the agent's session: with a runner that can resume and a session
 * recorded, the answer (`The answer to your question: …`) or the release note alone, the
 * session resumed; otherwise the task's prompt (`prompt`, with its failure history) with the
 * question and answer, or the note, restated after it ({@link followUpWords}). Null when
 * `task.answer` is null.
 */
export function followUpPrompt(
  task: Pick<Task, 'answer' | 'question' | 'stats'>,
  prompt: string,
  canResume: boolean,
): { prompt: string; resumeSessionId: string | null } | null {
  const words = followUpWords(task);
  if (words === null) return null;
  if (canResume && task.stats.sessionId) return { prompt: words.resumed, resumeSessionId: task.stats.sessionId };
  return { prompt: `${prompt}\n\n---\n${words.restated}\n`, resumeSessionId: null };
}
