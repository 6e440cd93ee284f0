/**
 * Task files: `NAME.md` with optional YAML frontmatter; the body is the prompt.
 * Parsing is strict and explained: every refusal is an InvalidTaskError naming the field
 * and the value, so the task can end `invalid` with a reason a person can act on.
 */
import YAML from 'yaml';
import { z } from 'zod';
import { InvalidTaskError } from '../core/errors.ts';
import { AUTO_AGENT, KNOWN_AGENTS, PRIORITIES, type CommandSpec, type Priority, type TaskSpec } from '../core/types.ts';
import type { Config } from './config.ts';
import { parseDuration } from './duration.ts';

/** The frontmatter fields agent-queue reads; any other field is kept in `extra`. */
export const KNOWN_FIELDS = [
  'title',
  'priority',
  'agent',
  'model',
  'depends_on',
  'timeout',
  'max_cost_usd',
  'retries',
  'tags',
  'dedup_key',
  'command',
  'retry_backoff',
  'retry_on_timeout',
  'concurrency_group',
  'run_at',
  'workspace',
  'merge',
  'parent',
  'max_turns',
  'allowed_tools',
] as const;

/**
 * Limits on task fields: a value past one is refused (the task ends `invalid`), never cut.
 * Lengths are in characters (UTF-16 code units) unless the name says bytes.
 */
export const TASK_LIMITS = {
  /** `name` (the file name without `.md`), each `depends_on` entry, `parent`. */
  nameChars: 100,
  /** `title`. */
  titleChars: 500,
  /** `agent`, `model`, `concurrency_group`, `dedup_key`, each tag, each `allowed_tools` rule. */
  textChars: 200,
  /** Entries of `tags`. */
  tags: 50,
  /** Entries of `allowed_tools`. */
  allowedTools: 100,
  /** Entries of `depends_on`. */
  dependsOn: 1000,
  /** `command` as one string, or each argv entry (Linux refuses one argument past 128 KiB). */
  commandChars: 65_536,
  /** Entries of `command` as an argv list. */
  commandArgs: 1000,
  /** The prompt (the body), UTF-8 bytes: 1 MiB. */
  promptBytes: 1_048_576,
  /** `timeout` and `retry_backoff`, ms: 7 days. */
  durationMs: 7 * 86_400_000,
  /** `max_cost_usd`, USD. */
  maxCostUsd: 10_000,
  /** `retries`. */
  retries: 100,
  /** `max_turns`. */
  maxTurns: 10_000,
} as const;

/**
 * A task name: the file name without `.md`. Letters, digits, `.`, `_`, `-`, starting with a
 * letter or digit (so never `.`, `..` or a hidden file), at most {@link TASK_LIMITS}.nameChars
 * characters: it always makes a file and directory name.
 */
export const TASK_NAME = new RegExp(`^[A-Za-z0-9][A-Za-z0-9._-]{0,${TASK_LIMITS.nameChars - 1}}$`);

/**
 * Checks a task name (a task's own, a `depends_on` entry, a `parent`) against {@link TASK_NAME}.
 * @param name the value as given
 * @param field the field to name in the refusal (`name`, `depends_on`, `parent`)
 * @returns the name, unchanged
 * @throws InvalidTaskError naming `field`: not a string, a character other than letters,
 *   digits, `.`, `_`, `-`, not starting with a letter or digit, or longer than 100 characters
 */
export function checkTaskName(name: unknown, field: string): string {
  if (typeof name === 'string' && name.length > TASK_LIMITS.nameChars) {
    fail(field, name, `a task name of at most ${TASK_LIMITS.nameChars} characters`);
  }
  if (typeof name !== 'string' || !TASK_NAME.test(name)) {
    fail(field, name, 'a task name (letters, digits, ".", "_", "-", starting with a letter or digit)');
  }
  return name;
}

/**
 * A task name made from free text (a title or prompt): lower case, runs of other characters
 * as `-`, at most 40 characters; `task` when nothing is left. Used by `agentq submit --prompt`
 * and POST /v1/tasks without a `name`.
 */
export function taskNameFrom(text: string): string {
  return (
    text
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 40)
      .replace(/-+$/, '') || 'task'
  );
}

/** Control characters: C0 (but for those named in `allow`), DEL and C1. */
function controlChar(text: string, allow: string): { index: number; code: number } | null {
  const re = /[\u0000-\u001f\u007f-\u009f]/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (!allow.includes(m[0])) return { index: m.index, code: m[0].charCodeAt(0) };
  }
  return null;
}

/** Control characters a text file (and a prompt) may hold: tab, line feed, carriage return, form feed. */
const TEXT_CONTROLS = '\t\n\r\f';

const hex = (code: number, width: number) => code.toString(16).toUpperCase().padStart(width, '0');

/**
 * Decodes the bytes of a task file into its text, refusing what is not text.
 * @param content the file's bytes
 * @returns the text, without a leading byte order mark
 * @throws InvalidTaskError with field `encoding`: invalid UTF-8 (`encoding: the file is not
 *   UTF-8 text (invalid byte 0xFF at offset 3)`), or binary content: a NUL byte or another
 *   control character than tab, LF, CR and form feed, named with its byte offset
 */
export function decodeTaskFile(content: Buffer): string {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(content);
  } catch {
    // The lenient decoding agrees with the bytes up to the first invalid sequence, which it
    // replaces with U+FFFD; a U+FFFD written in the file (EF BF BD) is skipped.
    const lenient = content.toString('utf8');
    let offset = 0;
    for (let i = lenient.indexOf('\uFFFD'); i !== -1; i = lenient.indexOf('\uFFFD', i + 1)) {
      offset = Buffer.byteLength(lenient.slice(0, i));
      if (!(content[offset] === 0xef && content[offset + 1] === 0xbf && content[offset + 2] === 0xbd)) break;
    }
    throw new InvalidTaskError('encoding', `encoding: the file is not UTF-8 text (invalid byte 0x${hex(content[offset] ?? 0, 2)} at offset ${offset})`);
  }
  const bad = controlChar(text, TEXT_CONTROLS);
  if (bad) {
    const offset = Buffer.byteLength(text.slice(0, bad.index));
    const what = bad.code === 0 ? 'NUL byte' : `control character U+${hex(bad.code, 4)}`;
    throw new InvalidTaskError('encoding', `encoding: binary content (${what} at offset ${offset})`);
  }
  return text.replace(/^\uFEFF/, '');
}

/** `---` alone on the first line opens frontmatter. */
const FRONTMATTER_OPEN = /^---[ \t]*(?:\r?\n|$)/;
/** The whole block: opening line, YAML, closing `---` line. Sticky: only at the start. */
const FRONTMATTER = /^---[ \t]*\r?\n([\s\S]*?)\r?\n?^---[ \t]*(?:\r?\n|$)/my;

/**
 * Splits `---\nYAML\n---\nbody` into its parts (a leading byte order mark is dropped).
 * No frontmatter (the first line is not `---`) → `yaml` is null and the body is the whole text.
 * @throws InvalidTaskError with field `frontmatter` when the first line opens frontmatter
 *   and no `---` line closes it (the fields would otherwise run as the prompt)
 */
export function splitFrontmatter(text: string): { yaml: string | null; body: string } {
  const src = text.replace(/^\uFEFF/, '');
  if (!FRONTMATTER_OPEN.test(src)) return { yaml: null, body: src };
  FRONTMATTER.lastIndex = 0;
  const m = FRONTMATTER.exec(src);
  if (!m) throw new InvalidTaskError('frontmatter', 'frontmatter: opened with --- on line 1 but never closed (end the fields with a line ---)');
  return { yaml: m[1] ?? '', body: src.slice(m[0].length) };
}

/** A spec with every default filled in: the shape a file without frontmatter gives. */
export function baseSpec(name: string, prompt: string, source = 'inbox'): TaskSpec {
  return {
    name,
    title: name,
    priority: 'default',
    agent: 'claude',
    model: null,
    dependsOn: [],
    parent: null,
    timeoutMs: 0,
    maxCostUsd: null,
    retries: 0,
    retryBackoffMs: null,
    retryOnTimeout: false,
    concurrencyGroup: null,
    runAt: null,
    workspace: null,
    merge: null,
    tags: [],
    dedupKey: null,
    command: null,
    maxTurns: null,
    allowedTools: null,
    extra: {},
    prompt,
    source,
  };
}

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

/**
 * One line of text: a non-empty string (trimmed), at most `max` characters, no control
 * characters (they would break lists and can drive a terminal).
 */
function singleLine(v: unknown, field: string, max: number): string {
  if (typeof v !== 'string' || v.trim() === '') fail(field, v, 'a non-empty string');
  const text = v.trim();
  if (text.length > max) fail(field, text, `a string of at most ${max} characters`);
  const bad = controlChar(text, '');
  if (bad) fail(field, text, `a single line of text (control character U+${hex(bad.code, 4)} at index ${bad.index})`);
  return text;
}

function optText(fm: Record<string, unknown>, field: string, max: number): string | null {
  const v = fm[field];
  return v === undefined || v === null ? null : singleLine(v, field, max);
}

/** A list of entries (one string counts as a list of one), at most `maxItems`, each checked by `entry`. */
function list(fm: Record<string, unknown>, field: string, maxItems: number, entry: (v: unknown) => string): string[] {
  const v = fm[field];
  if (v === undefined || v === null) return [];
  const items = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(items) || items.some((x) => typeof x !== 'string' || x.trim() === '')) fail(field, v, 'a list of strings');
  if (items.length > maxItems) fail(field, `${items.length} entries`, `a list of at most ${maxItems} entries`);
  return items.map(entry);
}

/** A number field: finite, within [min, max], whole when `whole`; `expected` says so in the refusal. */
function optNumber(fm: Record<string, unknown>, field: string, range: { min: number; max: number; whole: boolean; expected: string }): number | null {
  const v = fm[field];
  if (v === undefined || v === null) return null;
  const ok = typeof v === 'number' && Number.isFinite(v) && (!range.whole || Number.isInteger(v)) && v >= range.min && v <= range.max;
  if (!ok) fail(field, v, range.expected);
  return v as number;
}

/** A duration field (`timeout`, `retry_backoff`): 1 ms to {@link TASK_LIMITS}.durationMs, see {@link parseDuration}. */
function optDuration(fm: Record<string, unknown>, field: string): number | null {
  const v = fm[field];
  if (v === undefined || v === null) return null;
  const parsed = parseDuration(v, TASK_LIMITS.durationMs);
  if (parsed === null) fail(field, v, 'a duration from 1ms to 7d, such as 90s or 30m (a number is seconds)');
  return parsed;
}

/** `run_at`: an ISO 8601 date (`2026-12-01`, UTC midnight) or time, on a real calendar day. */
const ISO_TIME = z.union([z.iso.date(), z.iso.datetime({ offset: true, local: true })]);

function optTime(fm: Record<string, unknown>, field: string): number | null {
  const v = fm[field];
  if (v === undefined || v === null) return null;
  // YAML timestamps may separate date and time with a space.
  const text = typeof v === 'string' ? v.trim().replace(/^(\d{4}-\d{2}-\d{2}) +(?=\d)/, '$1T') : null;
  const t = text !== null && ISO_TIME.safeParse(text).success ? Date.parse(text) : Number.NaN;
  if (!Number.isFinite(t)) fail(field, v, 'an ISO 8601 time such as 2026-12-01T09:00:00Z or a date such as 2026-12-01 (a real calendar day)');
  return t;
}

/**
 * Parses a frontmatter block's YAML into its fields: the core schema of YAML 1.2 only (no
 * timestamps, no `!!binary`/`!!set`/custom tags), so the fields are plain data as in JSON.
 * @throws InvalidTaskError with field `frontmatter`: malformed YAML (including more than
 *   100 alias expansions, a "billion laughs"), an unsupported tag, or not a mapping
 */
function parseFrontmatter(yaml: string): Record<string, unknown> {
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
  const fm = yaml === null ? {} : parseFrontmatter(yaml);
  return taskSpecFromFields(name, fm, body, defaults, source);
}

/**
 * Validates task fields (the frontmatter's, already parsed: YAML, or the JSON body of
 * POST /v1/tasks) and the prompt into a TaskSpec: the rules and messages of task files.
 * Fields it does not know go to `extra`. Every value must be plain data with finite numbers;
 * strings, lists and numbers have the limits of {@link TASK_LIMITS}.
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
  checkTaskName(name, 'name');
  const prompt = body.trim();
  if (prompt === '') throw new InvalidTaskError('prompt', 'prompt: the task body is empty (write the prompt below the frontmatter)');
  const promptBytes = Buffer.byteLength(prompt);
  if (promptBytes > TASK_LIMITS.promptBytes) {
    throw new InvalidTaskError('prompt', `prompt: ${promptBytes} bytes is not at most ${TASK_LIMITS.promptBytes} bytes (1 MiB)`);
  }
  const badChar = controlChar(prompt, TEXT_CONTROLS);
  if (badChar) throw new InvalidTaskError('prompt', `prompt: control character U+${hex(badChar.code, 4)} at index ${badChar.index} is not text`);
  for (const [field, value] of Object.entries(fm)) checkPlainData(value, field);

  const priority = fm.priority ?? 'default';
  if (typeof priority !== 'string' || !(PRIORITIES as readonly string[]).includes(priority)) {
    fail('priority', priority, `one of ${PRIORITIES.join(', ')}`);
  }

  const timeoutMs = optDuration(fm, 'timeout') ?? defaults.default_timeout;
  const maxCostUsd = optNumber(fm, 'max_cost_usd', {
    min: Number.MIN_VALUE,
    max: TASK_LIMITS.maxCostUsd,
    whole: false,
    expected: `a positive number (USD) of at most ${TASK_LIMITS.maxCostUsd}`,
  });
  const retries =
    optNumber(fm, 'retries', { min: 0, max: TASK_LIMITS.retries, whole: true, expected: `a whole number from 0 to ${TASK_LIMITS.retries}` }) ??
    defaults.default_retries;

  let command: CommandSpec | null = null;
  if (fm.command !== undefined && fm.command !== null) {
    const c = fm.command;
    const ok = (typeof c === 'string' && c.trim() !== '') || (Array.isArray(c) && typeof c[0] === 'string' && c[0].trim() !== '' && c.every((x) => typeof x === 'string'));
    if (!ok) fail('command', c, 'a command string or a list of argv strings (the first one naming the program)');
    const args = typeof c === 'string' ? [c] : (c as string[]);
    if (args.length > TASK_LIMITS.commandArgs) fail('command', `${args.length} entries`, `a list of at most ${TASK_LIMITS.commandArgs} argv strings`);
    for (const arg of args) {
      if (arg.length > TASK_LIMITS.commandChars) fail('command', arg, `a string of at most ${TASK_LIMITS.commandChars} characters`);
      if (arg.includes('\0')) fail('command', arg, 'text without NUL characters (a process argument cannot hold one)');
    }
    command = c as CommandSpec;
  }

  const dedup = fm.dedup_key;
  if (dedup !== undefined && dedup !== null && typeof dedup !== 'string' && typeof dedup !== 'number') fail('dedup_key', dedup, 'a string');
  const dedupKey = dedup === undefined || dedup === null ? null : singleLine(String(dedup), 'dedup_key', TASK_LIMITS.textChars);

  const retryBackoffMs = optDuration(fm, 'retry_backoff');
  const retryOnTimeout = fm.retry_on_timeout ?? false;
  if (typeof retryOnTimeout !== 'boolean') fail('retry_on_timeout', retryOnTimeout, 'true or false');

  const runAt = optTime(fm, 'run_at');
  const workspace = fm.workspace ?? null;
  if (workspace !== null && workspace !== 'inplace' && workspace !== 'worktree') fail('workspace', workspace, 'inplace or worktree');
  const merge = fm.merge ?? null;
  if (merge !== null && merge !== 'manual' && merge !== 'auto') fail('merge', merge, 'manual or auto');

  const title = optText(fm, 'title', TASK_LIMITS.titleChars) ?? name;
  const agent = optText(fm, 'agent', TASK_LIMITS.textChars) ?? 'claude';
  if (agent !== AUTO_AGENT && !(KNOWN_AGENTS as readonly string[]).includes(agent)) fail('agent', agent, `a known agent (${KNOWN_AGENTS.join(', ')}) or auto`);
  const dependsOn = list(fm, 'depends_on', TASK_LIMITS.dependsOn, (dep) => checkTaskName((dep as string).trim(), 'depends_on'));
  if (dependsOn.includes(name)) fail('depends_on', name, 'another task (a task cannot depend on itself)');
  const parent = fm.parent === undefined || fm.parent === null ? null : checkTaskName(typeof fm.parent === 'string' ? fm.parent.trim() : fm.parent, 'parent');
  if (parent === name) fail('parent', parent, 'the name of another task');

  const maxTurns = optNumber(fm, 'max_turns', { min: 1, max: TASK_LIMITS.maxTurns, whole: true, expected: `a whole number of turns from 1 to ${TASK_LIMITS.maxTurns}` });
  const textEntry = (field: string) => (v: unknown) => singleLine(v, field, TASK_LIMITS.textChars);
  const allowedTools = fm.allowed_tools === undefined || fm.allowed_tools === null ? null : list(fm, 'allowed_tools', TASK_LIMITS.allowedTools, textEntry('allowed_tools'));

  // fromEntries: a `__proto__` field stays a field of its own.
  const extra: Record<string, unknown> = Object.fromEntries(Object.entries(fm).filter(([k]) => !(KNOWN_FIELDS as readonly string[]).includes(k)));

  return {
    name,
    title,
    priority: priority as Priority,
    agent,
    model: optText(fm, 'model', TASK_LIMITS.textChars),
    dependsOn: [...new Set(dependsOn)],
    parent,
    timeoutMs,
    maxCostUsd,
    retries,
    retryBackoffMs,
    retryOnTimeout,
    concurrencyGroup: optText(fm, 'concurrency_group', TASK_LIMITS.textChars),
    runAt,
    workspace,
    merge,
    tags: list(fm, 'tags', TASK_LIMITS.tags, textEntry('tags')),
    dedupKey,
    command,
    maxTurns,
    allowedTools,
    extra,
    prompt,
    source,
  };
}
