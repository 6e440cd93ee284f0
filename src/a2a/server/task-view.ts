/**
 * An agentq task as an A2A task (protocol 0.3): its id (the agentq id as text), its context,
 * its state (the mapping below), its status message (the question, the failure reason), the
 * result as an artifact, and the fields of its done/failed file (`resultFields`: cost,
 * tokens, agent, model…) as `metadata.agentq`. Pure: the A2A server builds every task, event
 * and push notification it sends from the store's task with these functions.
 */
import { randomUUID } from 'node:crypto';
import type { Artifact, Message, Task as A2aTask, TaskArtifactUpdateEvent, TaskState as A2aState, TaskStatus, TaskStatusUpdateEvent } from '@a2a-js/sdk';
import { isTerminal, type Task, type TaskState } from '../../core/types.ts';
import { resultFields } from '../../results/result-file.ts';

/** The A2A state of each agentq state. `waiting` (its run completed, its subtasks have not) is still `working`. */
export const A2A_STATES: Readonly<Record<TaskState, A2aState>> = {
  queued: 'submitted',
  running: 'working',
  waiting: 'working',
  blocked: 'input-required',
  completed: 'completed',
  failed: 'failed',
  timed_out: 'failed',
  budget_exceeded: 'failed',
  cancelled: 'canceled',
  invalid: 'rejected',
  duplicate: 'rejected',
};

/** The field of a task's `extra` that holds its A2A context id (tasks created over A2A). */
export const CONTEXT_FIELD = 'a2a_context_id';

/** The artifact id of a completed task's result text. */
export const RESULT_ARTIFACT_ID = 'result';

/** The A2A task id of an agentq task: its id as text. */
export function a2aTaskId(id: number): string {
  return String(id);
}

/** The agentq task id an A2A task id names, or null when it names none (not a positive integer in canonical form). */
export function taskIdOf(a2aId: unknown): number | null {
  if (typeof a2aId !== 'string' || !/^[1-9][0-9]{0,14}$/.test(a2aId)) return null;
  return Number(a2aId);
}

/** The task's A2A context id: the one it was created with over A2A, else `agentq-task-ID`. */
export function contextIdOf(task: Pick<Task, 'id' | 'extra'>): string {
  const given = task.extra[CONTEXT_FIELD];
  return typeof given === 'string' && given !== '' ? given : `agentq-task-${task.id}`;
}

/** Whether an A2A stream of the task ends here: a terminal state, or a question waiting for its answer. */
export function isFinal(state: TaskState): boolean {
  return isTerminal(state) || state === 'blocked';
}

/** A text message from the agent (status messages: progress, the question, the failure). */
export function agentMessage(task: Pick<Task, 'id' | 'extra'>, text: string, messageId: string = randomUUID()): Message {
  return { kind: 'message', role: 'agent', messageId, parts: [{ kind: 'text', text }], taskId: a2aTaskId(task.id), contextId: contextIdOf(task) };
}

const iso = (ms: number) => new Date(ms).toISOString();

/** What a status says beside its state: the question (blocked), the reason (failed, cancelled, rejected). */
function statusText(task: Task): string | null {
  if (task.state === 'blocked') return task.question;
  if (isTerminal(task.state) && task.state !== 'completed') return task.failedReason ?? (task.state === 'cancelled' ? 'cancelled' : task.state);
  return null;
}

/**
 * The task's A2A status. The message ids of the question and of the end are stable (one
 * per attempt), so a client that sees them twice knows them for the same message.
 */
export function a2aStatus(task: Task): TaskStatus {
  const text = statusText(task);
  return {
    state: A2A_STATES[task.state],
    timestamp: iso(task.finishedAt ?? task.startedAt ?? task.createdAt),
    ...(text === null ? {} : { message: agentMessage(task, text, `agentq-${task.id}-${task.claims}-${task.state}`) }),
  };
}

/** The result of a completed task as an artifact (`result`, one text part). */
export function resultArtifact(task: Task): Artifact {
  return { artifactId: RESULT_ARTIFACT_ID, name: 'result', parts: [{ kind: 'text', text: task.result ?? '' }] };
}

/**
 * The history agentq can tell: the prompt (user), and the question asked and the answer
 * given (the latest of each). Message ids are stable per task.
 */
export function a2aHistory(task: Task): Message[] {
  const history: Message[] = [{ ...agentMessage(task, task.prompt, `agentq-${task.id}-prompt`), role: 'user' }];
  if (task.question !== null && (task.state === 'blocked' || task.answer !== null)) history.push(agentMessage(task, task.question, `agentq-${task.id}-question`));
  if (task.answer !== null) history.push({ ...agentMessage(task, task.answer, `agentq-${task.id}-answer`), role: 'user' });
  return history;
}

/**
 * The A2A task of an agentq task. `metadata.agentq` holds the fields of its done/failed file
 * (`status` is the agentq state; `cost_usd`, `input_tokens`, `output_tokens`, `agent`,
 * `model`, `attempts`, `failed_reason`…; see README "Results"); `artifacts` the result of a
 * completed task; `history` (when `withHistory`) {@link a2aHistory}.
 */
export function toA2aTask(task: Task, o: { withHistory?: boolean } = {}): A2aTask {
  return {
    kind: 'task',
    id: a2aTaskId(task.id),
    contextId: contextIdOf(task),
    status: a2aStatus(task),
    ...(task.state === 'completed' ? { artifacts: [resultArtifact(task)] } : {}),
    ...(o.withHistory ? { history: a2aHistory(task) } : {}),
    metadata: { agentq: resultFields(task) },
  };
}

/** A status-update event of the task as it is now, with `text` as its message when given (progress, a requeue's reason). */
export function statusEvent(task: Task, o: { text?: string | null; final?: boolean } = {}): TaskStatusUpdateEvent {
  const status = a2aStatus(task);
  const message = o.text ? { message: agentMessage(task, o.text) } : {};
  return { kind: 'status-update', taskId: a2aTaskId(task.id), contextId: contextIdOf(task), status: { ...status, ...message }, final: o.final ?? false };
}

/** The artifact-update event of a completed task's result. */
export function resultEvent(task: Task): TaskArtifactUpdateEvent {
  return { kind: 'artifact-update', taskId: a2aTaskId(task.id), contextId: contextIdOf(task), artifact: resultArtifact(task), lastChunk: true };
}
