/**
 * Lifecycle rules that depend on other tasks, as pure functions over task values: what a
 * parent's subtasks make of it, and what a dependency that ended badly makes of its
 * dependents. Every store backend applies them inside its own transaction; none restates them.
 */
import { isTerminal, TERMINAL_STATES, type Task, type TaskState } from './types.ts';

/** Terminal states other than `completed`: a dependency in one fails its dependents. */
export const UNSUCCESSFUL_STATES: readonly TaskState[] = TERMINAL_STATES.filter((s) => s !== 'completed');

/** The fields of another task a rule reads. */
export type TaskRef = Pick<Task, 'id' | 'name' | 'state'>;

/**
 * What a task whose own run completed becomes, given its subtasks (in arrival order):
 * `waiting` while one has not ended; `failed`, naming the first that ended otherwise than
 * completed (`subtask "b" (task 7) ended timed_out`); else `completed`.
 */
export function parentVerdict(subtasks: readonly TaskRef[]): { state: 'waiting' | 'completed' } | { state: 'failed'; reason: string } {
  if (subtasks.some((s) => !isTerminal(s.state))) return { state: 'waiting' };
  const bad = subtasks.find((s) => s.state !== 'completed');
  return bad ? { state: 'failed', reason: `subtask "${bad.name}" (task ${bad.id}) ended ${bad.state}` } : { state: 'completed' };
}

/**
 * The end a task records when its attempt ends in `state`: a `completed` run becomes what its
 * subtasks make of it ({@link parentVerdict}; pass them only then, `[]` otherwise); any other
 * end stands with its reason.
 */
export function taskEnd(state: string, reason: string | null, subtasks: readonly TaskRef[]): { state: string; reason: string | null } {
  if (state !== 'completed') return { state, reason };
  const verdict = parentVerdict(subtasks);
  return verdict.state === 'failed' ? verdict : { state: verdict.state, reason };
}

/**
 * Why a queued task fails because of its dependency `dep`, or null when `dep` does not fail
 * it (it completed, or has not ended): `dependency "build" (task 3) ended failed`.
 */
export function dependencyFailure(dep: TaskRef): string | null {
  return UNSUCCESSFUL_STATES.includes(dep.state) ? `dependency "${dep.name}" (task ${dep.id}) ended ${dep.state}` : null;
}
