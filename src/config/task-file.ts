/**
 * Task files: `NAME.md` with optional YAML frontmatter; the body is the prompt.
 * Parsing is strict and explained: every refusal is an InvalidTaskError naming the field
 * and the value, so the task can end `invalid` with a reason a person can act on.
 */
import YAML from 'yaml';
import { z } from 'zod';
import { InvalidTaskError } from '../core/errors.ts';
import { A2A_AGENT, AUTO_AGENT, KNOWN_AGENTS, PRIORITIES, type TaskSpec } from '../core/types.ts';
import type { Config } from './config.ts';
import { parseDuration } from './duration.ts';
import { controlChar, hex, isHttpUrl, REMOTE_NAME, splitFrontmatter, TASK_LIMITS, TASK_NAME, TEXT_CONTROLS } from './task-text.ts';

export { baseSpec, decodeTaskFile, isHttpUrl, REMOTE_NAME, splitFrontmatter, TASK_LIMITS, TASK_NAME, taskNameFrom } from './task-text.ts';

/**
 * Checks a task name (a task's own, a `depends_on` entry, a `parent`) against
 * {@link TASK_NAME_SCHEMA}.
 * @param name the value as given
 * @param field the field to name in the refusal (`name`, `depends_on`, `parent`)
 * @returns the name, unchanged
 * @throws InvalidTaskError naming `field`: not a string, a character other than letters,
 *   digits, `.`, `_`, `-`, not starting with a letter or digit, or longer than 100 characters
 */
export function checkTaskName(name: unknown, field: string): string {
  // A valid name passes TASK_NAME_SCHEMA exactly when it matches TASK_NAME (whose length bound is
  // the schema's): such a name skips zod (~2 µs); any other gets the schema's refusal.
  if (typeof name === 'string' && TASK_NAME.test(name)) return name;
  let schema = nameSchemas.get(field);
  if (!schema) nameSchemas.set(field, (schema = z.object({ [field]: TASK_NAME_SCHEMA })));
  return validateFields(schema, { [field]: name })[field] as string;
}
/** {@link checkTaskName}'s schema per field, built once: zod compiles each object schema on its first use (~0.2 ms). */
const nameSchemas = new Map<string, z.ZodObject>();

/**
 * A value for a message: JSON (numbers as JS writes them: `Infinity`, `NaN`), cut to about
 * 80 characters; a cut string says its full length.
 */
function show(v: unknown): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return v.length <= 78 ? JSON.stringify(v) : `${JSON.stringify(`${v.slice(0, 77)}…`)} (${v.length} characters)`;
  let text: string;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch {
    text = String(v);
  }
  return text.length <= 80 ? text : `${text.slice(0, 79)}…`;
}

function fail(field: string, value: unknown, expected: string): never {
  throw new InvalidTaskError(field, `${field}: ${show(value)} is not ${expected}`);
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null);

/** How deep lists and mappings may nest in a field's value. */
const MAX_NESTING = 100;

/**
 * Task fields hold plain data only, as JSON has it: strings, finite numbers, booleans, null,
 * lists and mappings, nested at most {@link MAX_NESTING} deep, without cycles (a YAML alias
 * can make one). The values are stored as JSON, where `.inf`/`.nan` would become null and a
 * cycle would not be written at all.
 */
function checkPlainData(value: unknown, field: string, depth = 0, seen = new Set<object>(), done = new WeakSet<object>()): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) fail(field, value, 'a finite number');
    return;
  }
  if (typeof value !== 'object' || !(Array.isArray(value) || isPlainObject(value))) fail(field, String(value), 'plain data (text, numbers, true/false, lists, mappings)');
  if (done.has(value)) return;
  if (seen.has(value)) fail(field, '*alias', 'plain data (a YAML alias makes it contain itself)');
  if (depth >= MAX_NESTING) fail(field, `${MAX_NESTING + 1} levels`, `plain data nested at most ${MAX_NESTING} levels deep`);
  seen.add(value);
  for (const v of Array.isArray(value) ? value : Object.values(value)) checkPlainData(v, field, depth + 1, seen, done);
  seen.delete(value);
  done.add(value);
}

/** `<value> is not <expected>`: the wording of every refusal of a field's value (after `field: `). */
function notA(value: unknown, expected: string): string {
  return `${show(value)} is not ${expected}`;
}

/**
 * Zod error params for a check or type: the message is `<value> is not <expected>`.
 * @param expected what the value should be, or a function of the refused value giving it
 * @param shown the value to show, from the refused one (default: as given)
 */
function refused<T = unknown>(expected: string | ((input: T) => string), shown: (input: T) => unknown = (v) => v): { error: (iss: { input?: unknown }) => string } {
  return {
    error: (iss) => {
      const input = iss.input as T;
      return notA(shown(input), typeof expected === 'string' ? expected : expected(input));
    },
  };
}

/** The same, for a check after which no other check of the value runs. */
const refusedFinal = (expected: string) => ({ ...refused(expected), abort: true });

const nonBlank = (s: string) => s.trim() !== '';

/** What a task name is; the message of every name refused for its characters. */
const NAME_TEXT = 'a task name (letters, digits, ".", "_", "-", starting with a letter or digit)';

/** The checks of a task name after the type, in order: length, then characters. */
const nameChecks = (s: z.ZodString) =>
  s.max(TASK_LIMITS.nameChars, refused(`a task name of at most ${TASK_LIMITS.nameChars} characters`)).regex(TASK_NAME, refused(NAME_TEXT));

/**
 * A task name ({@link TASK_NAME}), as given: the file name, `--name`, POST /v1/tasks `name`.
 * Refusals: `a task name of at most 100 characters`, else `a task name (letters, …)`.
 */
export const TASK_NAME_SCHEMA = nameChecks(z.string(refused(NAME_TEXT)));

/** A task name written in a field (`depends_on`, `parent`): trimmed first. */
const fieldTaskName = nameChecks(z.string(refused(NAME_TEXT)).trim());

/**
 * One line of text: a non-empty string (trimmed), at most `max` characters, no control
 * characters (they would break lists and can drive a terminal).
 */
function singleLine(max: number) {
  return z
    .string(refused('a non-empty string'))
    .refine(nonBlank, refusedFinal('a non-empty string'))
    .trim()
    .max(max, refused(`a string of at most ${max} characters`))
    .refine(
      (s) => controlChar(s, '') === null,
      refused((s: string) => {
        const bad = controlChar(s, '');
        return `a single line of text (control character U+${hex(bad?.code ?? 0, 4)} at index ${bad?.index ?? 0})`;
      }),
    );
}

/**
 * One entry, or a list of at most `maxItems` entries (one string counts as a list of one),
 * each checked by `entry`; gives the list.
 */
function list(entry: z.ZodString, maxItems: number) {
  return z
    .union([entry, z.array(entry).max(maxItems, refused(`a list of at most ${maxItems} entries`, (v: unknown[]) => `${v.length} entries`))], refused('a list of strings'))
    .transform((v) => (typeof v === 'string' ? [v] : v));
}

/** A number, finite, within [min, max] (`positive`: above 0), whole when `whole`; `expected` says so in every refusal. */
function bounded(o: { min: number; max: number; positive?: boolean; whole: boolean; expected: string }) {
  const e = refused(o.expected);
  const n = o.whole ? z.number(e).int(e) : z.number(e);
  return (o.positive ? n.positive(e) : n.min(o.min, e)).max(o.max, e);
}

const DURATION_TEXT = 'a duration from 1ms to 7d, such as 90s or 30m (a number is seconds)';
/** A duration (`timeout`, `retry_backoff`) → ms: 1 ms to {@link TASK_LIMITS}.durationMs, see {@link parseDuration}. */
const duration = z.union([z.string(), z.number()], refused(DURATION_TEXT)).transform((v, ctx) => {
  const parsed = parseDuration(v, TASK_LIMITS.durationMs);
  if (parsed !== null) return parsed;
  ctx.issues.push({ code: 'custom', input: v, message: notA(v, DURATION_TEXT) });
  return z.NEVER;
});

const DURATION_OR_OFF_TEXT = 'a duration from 1ms to 7d, such as 90s or 30m (a number is seconds), or 0 for off';
/** A duration that may be turned off (`stall_timeout`) → ms, 0 for `0` / `"0"` / `"0s"`; else as {@link duration}. */
const durationOrOff = z.union([z.string(), z.number()], refused(DURATION_OR_OFF_TEXT)).transform((v, ctx) => {
  if (v === 0 || (typeof v === 'string' && /^\s*0+(\.0+)?\s*(ms|s|m|h|d)?\s*$/.test(v))) return 0;
  const parsed = parseDuration(v, TASK_LIMITS.durationMs);
  if (parsed !== null) return parsed;
  ctx.issues.push({ code: 'custom', input: v, message: notA(v, DURATION_OR_OFF_TEXT) });
  return z.NEVER;
});

/** `run_at`: an ISO 8601 date (`2026-12-01`, UTC midnight) or time, on a real calendar day. */
const ISO_TIME = z.union([z.iso.date(), z.iso.datetime({ offset: true, local: true })]);
const TIME_TEXT = 'an ISO 8601 time such as 2026-12-01T09:00:00Z or a date such as 2026-12-01 (a real calendar day)';
/** `run_at` → epoch ms. */
const time = z.string(refused(TIME_TEXT)).transform((v, ctx) => {
  // YAML timestamps may separate date and time with a space.
  const text = v.trim().replace(/^(\d{4}-\d{2}-\d{2}) +(?=\d)/, '$1T');
  const t = ISO_TIME.safeParse(text).success ? Date.parse(text) : Number.NaN;
  if (Number.isFinite(t)) return t;
  ctx.issues.push({ code: 'custom', input: v, message: notA(v, TIME_TEXT) });
  return z.NEVER;
});

const COMMAND_TEXT = 'a command string or a list of argv strings (the first one naming the program)';
/** The checks of one argv entry (or the command string) after its type. */
const argChecks = (s: z.ZodString) =>
  s
    .max(TASK_LIMITS.commandChars, refused(`a string of at most ${TASK_LIMITS.commandChars} characters`))
    .refine((a) => !a.includes('\0'), refused('text without NUL characters (a process argument cannot hold one)'));
/** `command`: one string run by `sh -c`, or an argv list whose first entry names the program. */
const command = z.union(
  [
    argChecks(z.string(refused(COMMAND_TEXT)).refine(nonBlank, refusedFinal(COMMAND_TEXT))),
    z
      .array(argChecks(z.string(refused(COMMAND_TEXT))))
      .max(TASK_LIMITS.commandArgs, refused(`a list of at most ${TASK_LIMITS.commandArgs} argv strings`, (v: unknown[]) => `${v.length} entries`))
      .refine((c) => typeof c[0] === 'string' && nonBlank(c[0]), refusedFinal(COMMAND_TEXT)),
  ],
  refused(COMMAND_TEXT),
);

const textField = singleLine(TASK_LIMITS.textChars);

/**
 * A list of commands run by `sh -c`: one command string (the limits of a `command` string,
 * not blank) or a list of at most `max` of them (an empty list: none); `text` says what is
 * expected in errors. Always a list after parsing.
 */
const commandList = (text: string, max: number) => {
  const one = argChecks(z.string(refused(text)).refine(nonBlank, refusedFinal(text)));
  return z
    .union([one, z.array(one).max(max, refused(`a list of at most ${max} commands`, (v: unknown[]) => `${v.length} entries`))], refused(text))
    .transform((v) => (typeof v === 'string' ? [v] : v));
};

/** `workspace_setup`: one command string, or a list of them (empty: none), each run by `sh -c`. */
const setupCommands = commandList('a command string or a list of them (each run by sh -c)', TASK_LIMITS.setupCommands);

/** `verify`: one command or a list of them (an empty list: none, even when config sets some). */
const verify = commandList('a command string (run by sh -c) or a list of them', TASK_LIMITS.verifyCommands);

const REMOTE_TEXT = 'a remote: a name of config remotes (letters, digits, ".", "_", "-") or the http(s) URL of an A2A agent';
/** `remote`: a {@link REMOTE_NAME} or an http(s) URL. */
export const REMOTE_SCHEMA = singleLine(TASK_LIMITS.remoteChars).refine((r) => REMOTE_NAME.test(r) || isHttpUrl(r), refused(REMOTE_TEXT));

const REMOTE_METADATA_TEXT = 'an object of fields for the remote (the metadata of its A2A message, e.g. {agent: command, command: make test})';
/**
 * `remote_metadata`: an object (string keys, plain data values) of at most
 * {@link TASK_LIMITS}.remoteMetadataBytes bytes as JSON.
 */
const remoteMetadata = z
  .record(z.string(), z.unknown(), refused(REMOTE_METADATA_TEXT))
  .refine(
    (m) => Buffer.byteLength(JSON.stringify(m)) <= TASK_LIMITS.remoteMetadataBytes,
    refused(`an object of at most ${TASK_LIMITS.remoteMetadataBytes} bytes as JSON`, (m: Record<string, unknown>) => `${Buffer.byteLength(JSON.stringify(m))} bytes of JSON`),
  );

/**
 * A worker label (`agentq run --label`, config `labels`, each `runs_on` entry): the text
 * rules of a tag, a non-empty single line of at most {@link TASK_LIMITS}.textChars characters (trimmed).
 */
export const LABEL_SCHEMA = textField;

/** A field that may be left out or null (both: not set), described for the OpenAPI document. */
const field = <T extends z.ZodType>(schema: T, description: string) => schema.nullish().meta({ description });

/**
 * The task fields, by their frontmatter names: the one description of them. Task files
 * (frontmatter) and POST /v1/tasks are validated by it, and the body's JSON Schema in
 * /openapi.json is generated from it (`z.toJSONSchema`, `io: 'input'`). Every field may be
 * left out or null (not set); the parsed values are TaskSpec's (durations and `run_at` in
 * ms, lists as arrays, text trimmed); defaults are applied by {@link taskSpecFromFields}.
 * Limits are {@link TASK_LIMITS}. A refusal's message is `<value> is not <expected>`.
 */
export const TASK_FIELDS = z.object({
  title: field(singleLine(TASK_LIMITS.titleChars), 'shown in lists and results; default: the name'),
  priority: field(z.enum(PRIORITIES, refused(`one of ${PRIORITIES.join(', ')}`)), 'ready tasks run by priority, then arrival; default: default'),
  agent: field(
    textField.refine((a) => a === AUTO_AGENT || (KNOWN_AGENTS as readonly string[]).includes(a), refused(`a known agent (${KNOWN_AGENTS.join(', ')}) or auto`)),
    `${KNOWN_AGENTS.join(', ')} or ${AUTO_AGENT}; default: claude`,
  ),
  model: field(textField, 'overrides routing'),
  depends_on: field(list(fieldTaskName, TASK_LIMITS.dependsOn), 'names of stored tasks that must complete first'),
  timeout: field(duration, 'per attempt: a duration such as 90s, 30m, 2h (a number is seconds), 1ms to 7d; default: config default_timeout'),
  max_cost_usd: field(
    bounded({ min: 0, positive: true, max: TASK_LIMITS.maxCostUsd, whole: false, expected: `a positive number (USD) of at most ${TASK_LIMITS.maxCostUsd}` }),
    'budget of each attempt, USD',
  ),
  retries: field(
    bounded({ min: 0, max: TASK_LIMITS.retries, whole: true, expected: `a whole number from 0 to ${TASK_LIMITS.retries}` }),
    'extra attempts after a retryable failure; default: config default_retries',
  ),
  tags: field(list(textField, TASK_LIMITS.tags), 'kept and shown'),
  runs_on: field(list(LABEL_SCHEMA, TASK_LIMITS.runsOn), 'labels a dispatcher must all hold to run it (agentq run --label); default: any dispatcher'),
  dedup_key: field(
    z.union([z.string(), z.number()], refused('a string')).transform(String).pipe(textField),
    'while a task with this key is queued or running, another one ends duplicate',
  ),
  command: field(command, 'for agent: command — argv list, or one string run by sh -c'),
  retry_backoff: field(duration, 'base of the exponential retry backoff, as timeout'),
  retry_on_timeout: field(z.boolean(refused('true or false')), 'retry after a timeout too; default: false'),
  concurrency_group: field(textField, 'at most group_concurrency tasks of a group run at once'),
  run_at: field(time, 'do not start before: ISO 8601 time, e.g. 2026-12-01T09:00:00Z, or date (UTC midnight)'),
  workspace: field(z.enum(['inplace', 'worktree'], refused('inplace or worktree')), 'default: config'),
  merge: field(z.enum(['manual', 'auto'], refused('manual or auto')), 'auto merges a worktree branch back after success; default: config'),
  workspace_setup: field(
    setupCommands,
    'commands run by sh -c in a fresh worktree before the agent starts (e.g. npm ci); a failure ends the attempt setup_failed; [] runs none; default: config workspace_setup',
  ),
  parent: field(fieldTaskName, 'name of the stored task this is a subtask of'),
  max_turns: field(
    bounded({ min: 1, max: TASK_LIMITS.maxTurns, whole: true, expected: `a whole number of turns from 1 to ${TASK_LIMITS.maxTurns}` }),
    'Claude Code --max-turns',
  ),
  allowed_tools: field(list(textField, TASK_LIMITS.allowedTools), 'Claude Code --allowedTools rules'),
  remote: field(REMOTE_SCHEMA, 'for agent: a2a (required there) — a name of config remotes, or the http(s) URL of an A2A agent'),
  remote_metadata: field(
    remoteMetadata,
    'when delegated (agent: a2a): fields for the remote, sent as its A2A message metadata over the ones agentq sends (for an agentq remote, task fields: agent, command, model, …)',
  ),
  verify: field(verify, 'commands run by sh -c in the workspace after the agent reports success; all must exit 0 to complete, else the attempt ends verify_failed and is retried (resuming the session where the agent can); [] for none; default: config verify'),
  verify_timeout: field(duration, 'time limit of each verify command, as timeout; default: config verify_timeout (10m)'),
  verify_retries: field(
    bounded({ min: 0, max: TASK_LIMITS.verifyRetries, whole: true, expected: `a whole number from 0 to ${TASK_LIMITS.verifyRetries}` }),
    'agent: auto — failed verifications on one agent before the next agent of the fallback list takes over; default: config verify_retries (2)',
  ),
  stall_timeout: field(durationOrOff, 'stop an attempt whose agent shows no activity this long (ends stalled, retried by resuming its session); 0: off; default: config stall_timeout (10m)'),
});

/** The task fields as parsed by {@link TASK_FIELDS}; a field not set is null or undefined. */
export type TaskFields = z.output<typeof TASK_FIELDS>;

/** The frontmatter fields agent-queue reads (the keys of {@link TASK_FIELDS}); any other field is kept in `extra`. */
export const KNOWN_FIELDS = Object.keys(TASK_FIELDS.shape) as ReadonlyArray<keyof TaskFields>;

/**
 * The issue a refusal names: unknown keys first; else the first field with an issue, its own
 * issue before its entries'. A union (one string or a list, say) whose value had the type of
 * exactly one of its options reports that option's issue rather than "not one of them".
 */
function chosenIssue(issues: readonly z.core.$ZodIssue[]): z.core.$ZodIssue | undefined {
  const unknown = issues.find((i) => i.code === 'unrecognized_keys');
  if (unknown) return unknown;
  const first = issues[0];
  if (!first) return undefined;
  const shortest = (list: readonly z.core.$ZodIssue[]) => list.reduce((a, b) => (b.path.length < a.path.length ? b : a));
  let issue = shortest(issues.filter((i) => i.path[0] === first.path[0]));
  while (issue.code === 'invalid_union') {
    const typed = issue.errors.filter((errs) => !errs.some((e) => e.code === 'invalid_type' && e.path.length === 0));
    const [only] = typed;
    if (typed.length !== 1 || !only || only.length === 0) break;
    const inner = shortest(only);
    issue = { ...inner, path: [...issue.path, ...inner.path] };
  }
  return issue;
}

/**
 * Validates fields by an object schema of them ({@link TASK_FIELDS}, the body of
 * POST /v1/tasks) into its output.
 * @param schema a zod object schema whose checks word their refusals (see `refused`)
 * @param fields the fields by name
 * @returns the parsed fields
 * @throws InvalidTaskError naming the field: `field: <message>`; an unknown field (a strict
 *   schema) as `field: unknown field (known: a, b, …)`
 */
export function validateFields<S extends z.ZodObject>(schema: S, fields: Record<string, unknown>): z.output<S> {
  // Valid fields take zod's compiled path (an error map turns it off); refused ones are
  // parsed again with the fallback wording, for a check without its own.
  const valid = schema.safeParse(fields);
  if (valid.success) return valid.data;
  const parsed = schema.safeParse(fields, { error: (iss) => notA(iss.input, `valid (${iss.message ?? iss.code})`) });
  if (parsed.success) return parsed.data;
  const issue = chosenIssue(parsed.error.issues);
  if (issue?.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    throw new InvalidTaskError(key, `${key}: unknown field (known: ${Object.keys(schema.shape).join(', ')})`);
  }
  const name = issue?.path[0] === undefined ? 'fields' : String(issue.path[0]);
  throw new InvalidTaskError(name, `${name}: ${issue?.message ?? 'invalid'}`);
}
/**
 * Parses a frontmatter block's YAML into its fields: the core schema of YAML 1.2 only (no
 * timestamps, no `!!binary`/`!!set`/custom tags), so the fields are plain data as in JSON.
 * @throws InvalidTaskError with field `frontmatter`: malformed YAML (including more than
 *   100 alias expansions, a "billion laughs"), an unsupported tag, or not a mapping
 */
export function parseFrontmatter(yaml: string): Record<string, unknown> {
  return structuredClone(frontmatterEntry(yaml).fields);
}

/**
 * What a frontmatter text gave: its fields (never handed out: callers get copies), and once
 * a task file was made of them, their check ({@link checkFields}: the fields or the refusal).
 */
interface FrontmatterEntry {
  fields: Record<string, unknown>;
  checked?: CheckedFields | { field: string; message: string };
}

/** Frontmatter texts (up to 4 Ki characters) parsed lately, at most {@link FRONTMATTER_CACHE_SIZE}, oldest dropped first, and what they gave. */
const frontmatterCache = new Map<string, FrontmatterEntry | { error: string }>();
/** How many frontmatter texts {@link parseFrontmatter} remembers. */
const FRONTMATTER_CACHE_SIZE = 64;

/**
 * The entry of a frontmatter text: files dropped together often share their frontmatter, so
 * the same text is parsed (and its fields checked) once.
 * @throws InvalidTaskError as {@link parseFrontmatter}
 */
function frontmatterEntry(yaml: string): FrontmatterEntry {
  const seen = frontmatterCache.get(yaml);
  if (seen) {
    if ('error' in seen) throw new InvalidTaskError('frontmatter', seen.error);
    return seen;
  }
  try {
    const entry = { fields: parseFrontmatterText(yaml) };
    rememberFrontmatter(yaml, entry);
    return entry;
  } catch (err) {
    if (err instanceof InvalidTaskError) rememberFrontmatter(yaml, { error: err.message });
    throw err;
  }
}

function rememberFrontmatter(yaml: string, result: FrontmatterEntry | { error: string }): void {
  if (yaml.length > 4096) return; // a large one is rarely repeated; the cache stays small
  if (frontmatterCache.size >= FRONTMATTER_CACHE_SIZE) frontmatterCache.delete(frontmatterCache.keys().next().value!);
  frontmatterCache.set(yaml, result);
}

/**
 * {@link checkFields} of an entry's fields, done once per entry: a copy the caller owns.
 * @throws InvalidTaskError as {@link checkFields}, the same each time
 */
function checkedFields(entry: FrontmatterEntry): CheckedFields {
  if (!entry.checked) {
    try {
      entry.checked = checkFields(entry.fields);
    } catch (err) {
      if (!(err instanceof InvalidTaskError)) throw err;
      entry.checked = { field: err.field, message: err.message };
    }
  }
  const checked = entry.checked;
  if ('message' in checked) throw new InvalidTaskError(checked.field, checked.message);
  return { f: ownCopy(checked.f), extra: ownCopy(checked.extra) };
}

/** A copy of an object of plain data: its primitive values shared, its lists and objects copied. */
function ownCopy<T extends object>(o: T): T {
  const copy = { ...o };
  for (const [k, v] of Object.entries(copy)) if (typeof v === 'object' && v !== null) (copy as Record<string, unknown>)[k] = structuredClone(v);
  return copy;
}

/** {@link parseFrontmatter} without the cache. */
function parseFrontmatterText(yaml: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    const doc = YAML.parseDocument(yaml, { schema: 'core', resolveKnownTags: false, uniqueKeys: true, logLevel: 'silent' });
    const [error] = doc.errors;
    if (error) throw error;
    const [warning] = doc.warnings;
    if (warning) throw new Error(`unsupported YAML: ${warning.message}`);
    parsed = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    const first = (err instanceof Error ? err.message : String(err)).split('\n')[0]?.replace(/:$/, '');
    const message = first?.startsWith('unsupported YAML') ? first : `malformed YAML: ${first}`;
    throw new InvalidTaskError('frontmatter', `frontmatter: ${message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (!isPlainObject(parsed)) throw new InvalidTaskError('frontmatter', `frontmatter: ${show(parsed)} is not a mapping of fields`);
  return parsed;
}

/**
 * Parses one task file into a TaskSpec.
 * @param name file name without `.md` (see {@link checkTaskName})
 * @param text the whole file, decoded (see {@link decodeTaskFile})
 * @param defaults `default_timeout` (ms) and `default_retries` from config
 * @throws InvalidTaskError naming the field: `frontmatter` (never closed, malformed YAML,
 *   not a mapping), `name`, `prompt`, or a frontmatter field (see {@link taskSpecFromFields})
 */
export function parseTaskFile(
  name: string,
  text: string,
  defaults: Pick<Config, 'default_timeout' | 'default_retries'>,
  source = 'inbox',
): TaskSpec {
  const { yaml, body } = splitFrontmatter(text);
  if (yaml === null) return taskSpecFromFields(name, {}, body, defaults, source);
  const entry = frontmatterEntry(yaml); // malformed YAML is refused before the name and the prompt
  return specOf(name, body, () => checkedFields(entry), defaults, source);
}

/**
 * Validates task fields (the frontmatter's, already parsed: YAML, or the JSON body of
 * POST /v1/tasks) and the prompt into a TaskSpec: the rules and messages of task files.
 * Every value must be plain data with finite numbers; the known fields are then validated by
 * {@link TASK_FIELDS} (with the limits of {@link TASK_LIMITS}), the first field refused in its
 * order is named; fields it does not know go to `extra`. Unset fields get their defaults.
 * @param name task name (see {@link checkTaskName})
 * @param fm the fields by their frontmatter names (`depends_on`, `max_cost_usd`, …)
 * @param body the prompt; trimmed, must not be empty, at most 1 MiB of UTF-8, no control
 *   characters but tab, LF, CR, form feed
 * @param defaults `default_timeout` (ms) and `default_retries`, for a task that sets none
 * @throws InvalidTaskError naming the field; the message starts with `field: `
 */
export function taskSpecFromFields(
  name: string,
  fm: Record<string, unknown>,
  body: string,
  defaults: Pick<Config, 'default_timeout' | 'default_retries'>,
  source = 'inbox',
): TaskSpec {
  return specOf(name, body, () => checkFields(fm), defaults, source);
}

/** Task fields checked: {@link TASK_FIELDS}'s output (`f`), and the fields it does not know (`extra`). */
interface CheckedFields {
  f: TaskFields;
  extra: Record<string, unknown>;
}

/**
 * Checks task fields: plain data with finite numbers, then {@link TASK_FIELDS}; the fields it
 * does not know go to `extra`.
 * @throws InvalidTaskError naming the first field refused in its order
 */
function checkFields(fm: Record<string, unknown>): CheckedFields {
  for (const [field, value] of Object.entries(fm)) checkPlainData(value, field);
  // Plain data as JSON has it: -0 becomes 0, so the spec is the same after the store's JSON.
  fm = JSON.parse(JSON.stringify(fm)) as Record<string, unknown>;
  const f = validateFields(TASK_FIELDS, fm);
  // fromEntries: a `__proto__` field stays a field of its own.
  const extra: Record<string, unknown> = Object.fromEntries(Object.entries(fm).filter(([k]) => !(KNOWN_FIELDS as readonly string[]).includes(k)));
  return { f, extra };
}

/** {@link taskSpecFromFields} with the fields checked by `fields`, called after the name and the prompt are. */
function specOf(
  name: string,
  body: string,
  fields: () => CheckedFields,
  defaults: Pick<Config, 'default_timeout' | 'default_retries'>,
  source: string,
): TaskSpec {
  checkTaskName(name, 'name');
  const prompt = body.trim();
  if (prompt === '') throw new InvalidTaskError('prompt', 'prompt: the task body is empty (write the prompt below the frontmatter)');
  const promptBytes = Buffer.byteLength(prompt);
  if (promptBytes > TASK_LIMITS.promptBytes) {
    throw new InvalidTaskError('prompt', `prompt: ${promptBytes} bytes is not at most ${TASK_LIMITS.promptBytes} bytes (1 MiB)`);
  }
  const badChar = controlChar(prompt, TEXT_CONTROLS);
  if (badChar) throw new InvalidTaskError('prompt', `prompt: control character U+${hex(badChar.code, 4)} at index ${badChar.index} is not text`);
  const { f, extra } = fields();

  const dependsOn = f.depends_on ?? [];
  if (dependsOn.includes(name)) fail('depends_on', name, 'another task (a task cannot depend on itself)');
  const parent = f.parent ?? null;
  if (parent === name) fail('parent', parent, 'the name of another task');
  const agent = f.agent ?? 'claude';
  if (agent === A2A_AGENT && !f.remote) {
    throw new InvalidTaskError('remote', 'remote: not set: agent: a2a delegates to another A2A agent, named by remote: NAME (a key of remotes in config.yaml) or remote: URL');
  }

  return {
    name,
    title: f.title ?? name,
    priority: f.priority ?? 'default',
    agent,
    model: f.model ?? null,
    dependsOn: [...new Set(dependsOn)],
    parent,
    timeoutMs: f.timeout ?? defaults.default_timeout,
    maxCostUsd: f.max_cost_usd ?? null,
    retries: f.retries ?? defaults.default_retries,
    retryBackoffMs: f.retry_backoff ?? null,
    retryOnTimeout: f.retry_on_timeout ?? false,
    concurrencyGroup: f.concurrency_group ?? null,
    runAt: f.run_at ?? null,
    workspace: f.workspace ?? null,
    merge: f.merge ?? null,
    workspaceSetup: f.workspace_setup ?? null,
    tags: f.tags ?? [],
    runsOn: [...new Set(f.runs_on ?? [])],
    dedupKey: f.dedup_key ?? null,
    command: f.command ?? null,
    remote: f.remote ?? null,
    remoteMetadata: f.remote_metadata ?? null,
    maxTurns: f.max_turns ?? null,
    allowedTools: f.allowed_tools ?? null,
    verify: f.verify ?? null,
    verifyTimeoutMs: f.verify_timeout ?? null,
    verifyRetries: f.verify_retries ?? null,
    stallTimeoutMs: f.stall_timeout ?? null,
    extra,
    prompt,
    source,
  };
}
