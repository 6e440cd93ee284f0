/**
 * The body of POST /v1/tasks: the task fields (snake_case, {@link TASK_FIELDS}) plus
 * `prompt`, `name` and `callback_url`. One zod schema validates it and gives its JSON Schema
 * (/openapi.json); the task fields are then checked by the rules of task files
 * (`taskSpecFromFields`, src/config/task-file.ts), so a field is refused with the same
 * message either way. Unknown fields are refused (a file keeps them in `extra`).
 */
import crypto from 'node:crypto';
import { z } from 'zod';
import type { Config } from '../config/config.ts';
import { REMOTE_SCHEMA, TASK_FIELDS, TASK_NAME_SCHEMA, taskNameFrom, taskSpecFromFields, validateFields } from '../config/task-file.ts';
import { InvalidTaskError } from '../core/errors.ts';
import type { TaskSpec } from '../core/types.ts';

/** An http or https URL (`callback_url`, A2A push notification URLs) → its normalized href. */
export const HTTP_URL = z
  .string({ error: (iss) => `${JSON.stringify(iss.input)} is not an http or https URL` })
  .meta({ format: 'uri' })
  .transform((text, ctx) => {
    let url: URL | null = null;
    try {
      url = new URL(text);
    } catch {
      url = null;
    }
    if (url && (url.protocol === 'http:' || url.protocol === 'https:')) return url.href;
    ctx.issues.push({ code: 'custom', input: text, message: `${JSON.stringify(text)} is not an http or https URL` });
    return z.NEVER;
  });

/**
 * The body of POST /v1/tasks: `prompt` (required), `name`, `callback_url`, then the task
 * fields; no other field. Its `io: 'input'` JSON Schema is the route's body schema.
 */
export const TASK_BODY = z.strictObject({
  prompt: z
    .string({ error: (iss) => (iss.input === undefined ? 'required' : `${JSON.stringify(iss.input)} is not a string`) })
    .min(1, { error: 'empty' })
    .refine((p) => p.trim() !== '', { error: 'empty', abort: true })
    .meta({ description: 'the task (the Markdown body of a task file); data only, never a path or shell' }),
  name: TASK_NAME_SCHEMA.nullish().meta({ description: 'task name (letters, digits, ".", "_", "-"); default: made from the title or prompt' }),
  callback_url: HTTP_URL.nullish().meta({ description: 'http(s) URL POSTed once the task ends' }),
  ...TASK_FIELDS.shape,
});

/**
 * A task given as data without a callback: `prompt`, `name`, then the task fields ({@link
 * TASK_BODY} less `callback_url`). The input of the MCP tool `submit_task` (src/mcp/), whose
 * JSON Schema is generated from it as the body's is.
 */
export const TASK_INPUT = TASK_BODY.omit({ callback_url: true });

/**
 * The input of the MCP tool `delegate_task`: {@link TASK_INPUT} less `agent` (it is `a2a`),
 * with `remote` required.
 */
export const DELEGATE_INPUT = TASK_INPUT.omit({ agent: true }).extend({
  remote: z
    .string({ error: (iss) => (iss.input === undefined || iss.input === null ? 'required' : `${JSON.stringify(iss.input)} is not a non-empty string`) })
    .pipe(REMOTE_SCHEMA)
    .meta({ description: 'where to delegate: a name of config remotes, or the http(s) URL of an A2A agent (another agentq serve, or any A2A agent)' }),
});

/** Every field a body may carry: `prompt`, `name`, `callback_url`, then the task fields. */
export function bodyFields(): string[] {
  return Object.keys(TASK_BODY.shape);
}

/** The JSON Schema of the body (OpenAPI), generated from {@link TASK_BODY}: what a client may send. */
export function taskBodySchema(): Record<string, unknown> {
  const { $schema: _dialect, ...schema } = z.toJSONSchema(TASK_BODY, { io: 'input' });
  return schema;
}

/** A body validated into a spec, and the callback URL it asked for. */
export interface TaskRequest {
  spec: TaskSpec;
  callbackUrl: string | null;
}

/**
 * Validates a body into a TaskSpec (source `api`).
 * @param body the parsed JSON body
 * @param defaults `default_timeout` (ms) and `default_retries`, for a task that sets none
 * @throws InvalidTaskError naming the field: `body` (not an object), an unknown field,
 *   `prompt` (`required`, not a string, `empty`), `name`, `callback_url`, and every task
 *   field by the task-file rules
 */
export function taskRequestFromBody(body: unknown, defaults: Pick<Config, 'default_timeout' | 'default_retries'>): TaskRequest {
  return requestFrom(TASK_BODY, 'body', body, defaults, 'api');
}

/**
 * Validates the input of the MCP tool `submit_task` ({@link TASK_INPUT}) into a TaskSpec, as
 * {@link taskRequestFromBody} does a body (same rules, same messages).
 * @param input the tool's arguments
 * @param defaults `default_timeout` (ms) and `default_retries`, for a task that sets none
 * @param source the spec's `source` (default `mcp`)
 * @throws InvalidTaskError naming the field: `arguments` (not an object), an unknown field
 *   (`callback_url` included), `prompt`, `name`, and every task field by the task-file rules
 */
export function taskSpecFromInput(input: unknown, defaults: Pick<Config, 'default_timeout' | 'default_retries'>, source = 'mcp'): TaskSpec {
  return requestFrom(TASK_INPUT, 'arguments', input, defaults, source).spec;
}

/** {@link taskRequestFromBody} and {@link taskSpecFromInput}: `what` names the whole value in a refusal. */
function requestFrom(
  schema: typeof TASK_BODY | typeof TASK_INPUT,
  what: string,
  input: unknown,
  defaults: Pick<Config, 'default_timeout' | 'default_retries'>,
  source: string,
): TaskRequest {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new InvalidTaskError(what, `${what}: not a JSON object of task fields`);
  const valid: z.output<typeof TASK_BODY> = validateFields<z.ZodObject>(schema, input as Record<string, unknown>) as z.output<typeof TASK_BODY>;
  const { prompt: _prompt, name: _name, callback_url: _callback, ...fm } = input as Record<string, unknown>;
  const title = valid.title ?? null;
  const taskName = valid.name ?? taskNameFrom(title ?? valid.prompt);
  return { spec: taskSpecFromFields(taskName, fm, valid.prompt, defaults, source), callbackUrl: valid.callback_url ?? null };
}

/** JSON with object keys sorted at every level: equal bodies give equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** sha256 (hex) of a body's canonical JSON: the idempotency fingerprint. */
export function bodySha256(body: unknown): string {
  return crypto.createHash('sha256').update(canonicalJson(body)).digest('hex');
}
