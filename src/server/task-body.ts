/**
 * The body of POST /v1/tasks: the task-file frontmatter fields (snake_case) plus `prompt`,
 * `name` and `callback_url`, validated by the rules of task files
 * (`taskSpecFromFields`, src/config/task-file.ts) so that a field is refused with the same
 * message either way; unknown fields are refused (a file keeps them in `extra`).
 */
import crypto from 'node:crypto';
import type { Config } from '../config/config.ts';
import { KNOWN_FIELDS, TASK_NAME, taskNameFrom, taskSpecFromFields } from '../config/task-file.ts';
import { InvalidTaskError } from '../core/errors.ts';
import { PRIORITIES, type TaskSpec } from '../core/types.ts';

/** Fields of the body besides the frontmatter ones. */
export const BODY_ONLY_FIELDS = ['prompt', 'name', 'callback_url'] as const;

/** Every field a body may carry. */
export function bodyFields(): string[] {
  return [...BODY_ONLY_FIELDS, ...KNOWN_FIELDS];
}

type JsonSchema = Record<string, unknown>;
const nullable = (schema: JsonSchema): JsonSchema => ({ anyOf: [schema, { type: 'null' }] });
const str: JsonSchema = { type: 'string' };
const strOrList: JsonSchema = { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] };
const duration: JsonSchema = { anyOf: [{ type: 'string' }, { type: 'number' }], description: 'a duration such as 90s, 30m, 2h; a number is seconds' };

/** JSON schemas of the frontmatter fields this module knows; a field added to KNOWN_FIELDS later gets an open schema. */
const FIELD_SCHEMAS: Record<string, JsonSchema> = {
  title: { ...str, description: 'shown in lists and results; default: the name' },
  priority: { enum: [...PRIORITIES], description: 'default: default' },
  agent: { ...str, description: 'claude, codex, gemini, command or auto; default: claude' },
  model: { ...str, description: 'overrides routing' },
  depends_on: { ...strOrList, description: 'names of stored tasks that must complete first' },
  parent: { ...str, description: 'name of the stored task this is a subtask of' },
  timeout: duration,
  max_cost_usd: { type: 'number', description: 'USD' },
  retries: { type: 'integer', minimum: 0 },
  retry_backoff: duration,
  retry_on_timeout: { type: 'boolean' },
  tags: strOrList,
  dedup_key: { anyOf: [{ type: 'string' }, { type: 'number' }] },
  run_at: { ...str, description: 'ISO 8601 time, e.g. 2026-12-01T09:00:00Z' },
  workspace: { enum: ['inplace', 'worktree'] },
  merge: { enum: ['manual', 'auto'] },
  concurrency_group: str,
  command: { ...strOrList, description: 'for agent: command — argv list, or one string run by sh -c' },
  max_turns: { type: 'integer', minimum: 1 },
  allowed_tools: strOrList,
};

/** The JSON schema of the body (OpenAPI and a second check after the task-file rules). */
export function taskBodySchema(): JsonSchema {
  const properties: Record<string, JsonSchema> = {
    prompt: { type: 'string', minLength: 1, description: 'the task (the Markdown body of a task file); data only, never a path or shell' },
    name: { type: 'string', pattern: TASK_NAME.source, description: 'task name (letters, digits, ".", "_", "-"); default: made from the title or prompt' },
    callback_url: { type: 'string', description: 'http(s) URL POSTed once the task ends' },
  };
  for (const f of KNOWN_FIELDS) properties[f] = nullable(FIELD_SCHEMAS[f] ?? {});
  return { type: 'object', required: ['prompt'], additionalProperties: false, properties };
}

/** A body validated into a spec, and the callback URL it asked for. */
export interface TaskRequest {
  spec: TaskSpec;
  callbackUrl: string | null;
}

/**
 * Validates a body into a TaskSpec (source `api`).
 * @throws InvalidTaskError naming the field: unknown fields, `prompt`, `name`,
 *   `callback_url`, and every frontmatter field by the task-file rules
 */
export function taskRequestFromBody(body: unknown, defaults: Pick<Config, 'default_timeout' | 'default_retries'>): TaskRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidTaskError('body', 'body: not a JSON object of task fields');
  const fields = body as Record<string, unknown>;
  const known = bodyFields();
  for (const k of Object.keys(fields)) {
    if (!known.includes(k)) throw new InvalidTaskError(k, `${k}: unknown field (known: ${known.join(', ')})`);
  }
  const { prompt, name, callback_url: callbackUrl, ...fm } = fields;
  if (typeof prompt !== 'string') throw new InvalidTaskError('prompt', `prompt: ${prompt === undefined ? 'required' : `${JSON.stringify(prompt)} is not a string`}`);
  if (prompt.trim() === '') throw new InvalidTaskError('prompt', 'prompt: empty');
  if (name !== undefined && name !== null && typeof name !== 'string') throw new InvalidTaskError('name', `name: ${JSON.stringify(name)} is not a valid task name (letters, digits, ".", "_", "-")`);
  let callback: string | null = null;
  if (callbackUrl !== undefined && callbackUrl !== null) {
    let url: URL | null = null;
    try {
      url = typeof callbackUrl === 'string' ? new URL(callbackUrl) : null;
    } catch {
      url = null;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw new InvalidTaskError('callback_url', `callback_url: ${JSON.stringify(callbackUrl)} is not an http or https URL`);
    }
    callback = url.href;
  }
  const title = typeof fm.title === 'string' && fm.title.trim() !== '' ? fm.title : null;
  const taskName = typeof name === 'string' ? name : taskNameFrom(title ?? prompt);
  return { spec: taskSpecFromFields(taskName, fm, prompt, defaults, 'api'), callbackUrl: callback };
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
