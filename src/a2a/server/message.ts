/**
 * An A2A message (`message/send`, `message/stream`) → what it does to the queue, before any
 * event is streamed, so a refused message creates nothing:
 * - without `taskId`: a new task. Its prompt is the message's text parts (joined by a blank
 *   line); its task fields come from `message.metadata` (`priority`, `agent`, `model`,
 *   `timeout`, `max_cost_usd`, `name`, `callback_url`, every field of POST /v1/tasks but
 *   `prompt`), validated by the same zod schema and task-file rules (`taskRequestFromBody`);
 *   it is created through direct intake (`resolveDirect`, `enqueueRequest`) like a POST.
 * - with `taskId`: the answer to the question of that `input-required` (blocked) task,
 *   which queues it again (the agent resumes its session with the answer).
 * Either way `messageId` is the idempotency key (`a2a:message:ID`, in the store's
 * Idempotency-Key table): a retried message (same id, same content) does nothing again and
 * names the same task; the same id with other content is refused.
 */
import { randomUUID } from 'node:crypto';
import type { MessageSendParams } from '@a2a-js/sdk';
import { z } from 'zod';
import { projectOrigin, type Config, type ProjectPaths } from '../../config/config.ts';
import { AgentQueueError, NotFoundError } from '../../core/errors.ts';
import type { Task } from '../../core/types.ts';
import type { DispatcherEvents } from '../../events/events.ts';
import { resolveDirect } from '../../intake/direct.ts';
import { bodySha256, taskRequestFromBody } from '../../server/task-body.ts';
import type { Store } from '../../store/store.ts';
import { invalidParams, invalidRequest, specError, taskNotFound } from './errors.ts';
import { pushConfigFor, pushRequestFrom, savePushConfig, type PushRequest } from './push.ts';
import { A2A_STATES, CONTEXT_FIELD, taskIdOf } from './task-view.ts';

/** What taking a message in needs. */
export interface IntakeDeps {
  store: Store;
  config: Config;
  /** This checkout: the origin of the tasks created here (their result files are written here). */
  paths: Pick<ProjectPaths, 'root'>;
  /** The dispatcher's events: a created or answered task is reported there (`task.created`, `task.requeued`). */
  events: DispatcherEvents;
  /** Called after a task was created or queued again, so the dispatcher claims it now. */
  wake: () => void;
  /** Called after a push config was saved. */
  onPushSaved: () => void;
  now: () => number;
}

/** The idempotency key of an A2A message id. */
export const messageKey = (messageId: string) => `a2a:message:${messageId}`;

const text = (max: number) =>
  z
    .string({ error: (iss) => (iss.input === undefined ? 'required' : `${JSON.stringify(iss.input)} is not a string`) })
    .min(1, { error: 'empty' })
    .max(max, { error: `longer than ${max} characters` });

/** The parts of a message agentq reads; anything else a message carries is ignored. */
const MESSAGE = z.looseObject({
  kind: z.literal('message', { error: (iss) => (iss.input === undefined ? 'required' : `${JSON.stringify(iss.input)} is not "message"`) }),
  messageId: text(255),
  role: z.literal('user', { error: (iss) => (iss.input === undefined ? 'required' : `${JSON.stringify(iss.input)} is not "user" (a message to an agent is the user's)`) }),
  parts: z.array(z.unknown(), { error: 'not a list of parts' }).min(1, { error: 'empty: the message needs a text part (the prompt)' }),
  metadata: z.record(z.string(), z.unknown(), { error: 'not an object of task fields' }).optional(),
  taskId: text(32).optional(),
  contextId: text(255).optional(),
});

type ValidMessage = z.output<typeof MESSAGE>;

/** The message's text: its text parts, joined by a blank line. @throws A2AError naming a part that is not text */
function messageText(parts: unknown[]): string {
  return parts
    .map((p, i) => {
      const part = p as { kind?: unknown; text?: unknown } | null;
      if (typeof part !== 'object' || part === null) throw invalidParams(`message.parts.${i}`, 'not a part object');
      if (part.kind !== 'text') throw invalidParams(`message.parts.${i}`, `a ${JSON.stringify(part.kind)} part: agentq takes text parts only (the prompt, or the answer)`);
      if (typeof part.text !== 'string') throw invalidParams(`message.parts.${i}.text`, 'not a string');
      return part.text;
    })
    .join('\n\n');
}

/** Validates `params.message`. @throws A2AError -32602 naming the field */
function validMessage(params: unknown): ValidMessage {
  const message = (params as { message?: unknown } | null)?.message;
  const parsed = MESSAGE.safeParse(message);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  if (message === undefined) throw invalidParams('message', 'required');
  if (issue?.path.length === 0) throw invalidParams('message', 'not a message object');
  throw invalidParams(`message.${issue?.path.join('.') ?? ''}`, issue?.message ?? 'invalid');
}

/** A message's push config (`configuration.pushNotificationConfig`), validated before anything is created. */
function messagePush(params: MessageSendParams): PushRequest | null {
  const raw = (params.configuration as { pushNotificationConfig?: unknown } | undefined)?.pushNotificationConfig;
  return raw === undefined || raw === null ? null : pushRequestFrom(raw, 'configuration.pushNotificationConfig');
}

/** Saves a message's push config for its task. */
async function savePush(d: IntakeDeps, push: PushRequest | null, task: Task): Promise<void> {
  if (!push) return;
  await savePushConfig(d.store, pushConfigFor(push, task.id), d.now(), 'configuration.pushNotificationConfig');
  d.onPushSaved();
}

/**
 * Takes a message in (see the module doc) and returns its task as it is now. The push
 * config of `configuration.pushNotificationConfig` is validated first and saved for the
 * task afterwards.
 * @throws A2AError: -32602 naming the field (`message.parts`, `message.metadata.priority`,
 *   `message.messageId` used for another message…), -32001 for an unknown `taskId`, -32600
 *   for a `taskId` whose task asks nothing, {@link QUEUE_FULL} past `max_queue_depth`
 */
export async function takeMessage(params: MessageSendParams, d: IntakeDeps): Promise<Task> {
  const message = validMessage(params);
  const prompt = messageText(message.parts);
  const key = messageKey(message.messageId);
  const conflict = (taskId: number) => invalidParams('message.messageId', `${JSON.stringify(message.messageId)} was used for another message (task ${taskId})`);
  let task: Task;
  if (message.taskId !== undefined) {
    const id = taskIdOf(message.taskId);
    if (id === null || !(await d.store.getTask(id))) throw taskNotFound(message.taskId);
    if (message.metadata && Object.keys(message.metadata).length > 0) {
      throw invalidParams('message.metadata', 'a message to an existing task is the answer to its question; its task fields were set by the first message');
    }
    if (prompt.trim() === '') throw invalidParams('message.parts', 'empty: the answer is the text parts');
    const push = messagePush(params);
    let result;
    try {
      result = await d.store.answerRequest(id, prompt, { key, bodySha256: bodySha256({ taskId: id, answer: prompt }) }, d.now());
    } catch (err) {
      if (err instanceof NotFoundError) throw taskNotFound(message.taskId);
      if (err instanceof AgentQueueError && err.code === 'not_blocked') {
        const t = await d.store.getTask(id);
        const state = t ? `${A2A_STATES[t.state]} (agentq: ${t.state})` : 'gone';
        throw invalidRequest('message.taskId', `task ${id} is ${state}, not input-required: a message to an existing task answers its question`);
      }
      throw err;
    }
    if (result.kind === 'conflict' || result.task.id !== id) throw conflict(result.task.id);
    task = result.task;
    if (result.kind === 'answered') {
      d.events.emit('task.requeued', task, 'answered');
      d.wake();
    }
    await savePush(d, push, task);
    return task;
  }
  const metadata = message.metadata ?? {};
  if ('prompt' in metadata) throw invalidParams('message.metadata.prompt', "the prompt is the message's text parts, not a field");
  const body = { ...metadata, prompt };
  const idempotency = { key, bodySha256: bodySha256(body) };
  let created;
  try {
    const { spec, callbackUrl } = taskRequestFromBody(body, d.config);
    const push = messagePush(params);
    // A repeat is answered before anything else (even with the queue full since).
    const known = await d.store.findIdempotencyKey(key);
    if (known) {
      if (known.bodySha256 !== idempotency.bodySha256) throw conflict(known.taskId);
      task = (await d.store.getTask(known.taskId))!;
    } else {
      const contextId = message.contextId ?? randomUUID();
      const newTask = await resolveDirect(d.store, d.config, { ...spec, source: 'a2a', extra: { ...spec.extra, [CONTEXT_FIELD]: contextId } }, projectOrigin(d.paths));
      created = await d.store.enqueueRequest(newTask, { idempotency, callbackUrl }, d.now());
      if (created.kind === 'conflict') throw conflict(created.task.id);
      task = created.task;
    }
    if (created?.kind === 'created') {
      d.events.emit('task.created', task);
      d.wake();
    }
    await savePush(d, push, task);
  } catch (err) {
    throw specError(err);
  }
  return task;
}
