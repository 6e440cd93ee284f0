/**
 * The JSON-RPC errors of agentq's A2A server. Every refused request names what is wrong:
 * the message reads `FIELD: why`, and `data.field` holds FIELD (a path in the request's
 * `params`, e.g. `message.metadata.priority`). Codes are JSON-RPC's and A2A's (-32700 parse,
 * -32600 invalid request, -32601 method, -32602 params, -32001 task not found, -32002 not
 * cancelable), plus {@link QUEUE_FULL}.
 */
import { A2AError } from '@a2a-js/sdk/server';
import { QueueFullError } from '../../intake/direct.ts';
import { InvalidTaskError } from '../../core/errors.ts';

/** `max_queue_depth` reached: nothing was created; try again later (`data.retryable: true`). */
export const QUEUE_FULL = -32000;

/** -32602 (invalid params) naming `field`. */
export function invalidParams(field: string, why: string): A2AError {
  return A2AError.invalidParams(`${field}: ${why}`, { field });
}

/** -32600 (invalid request) naming `field`: a well-formed request the task's state refuses. */
export function invalidRequest(field: string, why: string): A2AError {
  return A2AError.invalidRequest(`${field}: ${why}`, { field });
}

/** -32001 (task not found) for an A2A task id. */
export function taskNotFound(id: unknown): A2AError {
  return A2AError.taskNotFound(typeof id === 'string' ? id : JSON.stringify(id));
}

/**
 * A task spec's refusal (the task-file rules, `InvalidTaskError`) or a full queue as the
 * JSON-RPC error of a message: the field is under `message.metadata` (`prompt`: the
 * message's text parts). Anything else is returned unchanged.
 */
export function specError(err: unknown): unknown {
  if (err instanceof QueueFullError) return new A2AError(QUEUE_FULL, err.message, { code: err.code, retryable: true });
  if (!(err instanceof InvalidTaskError)) return err;
  const why = err.message.startsWith(`${err.field}: `) ? err.message.slice(err.field.length + 2) : err.message;
  if (err.field === 'prompt') return invalidParams('message.parts', `the prompt (the text parts): ${why}`);
  if (err.field === 'body') return invalidParams('message.metadata', why);
  return invalidParams(`message.metadata.${err.field}`, why);
}
