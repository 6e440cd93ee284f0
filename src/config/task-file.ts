/**
 * Task files: `NAME.md` with optional YAML frontmatter; the body is the prompt.
 * Parsing is strict and explained: every refusal is an InvalidTaskError naming the field
 * and the value, so the task can end `invalid` with a reason a person can act on.
 */
import YAML from 'yaml';
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

/** A task name: the file name without `.md`. Letters, digits, `.`, `_`, `-`. */
export const TASK_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

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

/** Splits `---\nYAML\n---\nbody` into its parts. No frontmatter → `yaml` is null. */
export function splitFrontmatter(text: string): { yaml: string | null; body: string } {
  const src = text.replace(/^\uFEFF/, '');
  const m = /^---[ \t]*\r?\n([\s\S]*?)\r?\n?^---[ \t]*(?:\r?\n|$)/m.exec(src);
  if (!m || m.index !== 0) return { yaml: null, body: src };
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

const show = (v: unknown) => JSON.stringify(v);

function fail(field: string, value: unknown, expected: string): never {
  throw new InvalidTaskError(field, `${field}: ${show(value)} is not ${expected}`);
}

function optString(fm: Record<string, unknown>, field: string): string | null {
  const v = fm[field];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || v.trim() === '') fail(field, v, 'a non-empty string');
  return v.trim();
}

function stringList(fm: Record<string, unknown>, field: string): string[] {
  const v = fm[field];
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.some((x) => typeof x !== 'string' || x.trim() === '')) {
    fail(field, v, 'a list of strings');
  }
  return (list as string[]).map((x) => x.trim());
}

/**
 * Parses one task file into a TaskSpec.
 * @param name file name without `.md`
 * @param text the whole file
 * @param defaults `default_timeout` (ms) and `default_retries` from config
 * @throws InvalidTaskError naming the field (`yaml`, `prompt`, or a frontmatter field)
 */
export function parseTaskFile(
  name: string,
  text: string,
  defaults: Pick<Config, 'default_timeout' | 'default_retries'>,
  source = 'inbox',
): TaskSpec {
  if (!TASK_NAME.test(name)) fail('name', name, 'a valid task name (letters, digits, ".", "_", "-")');
  const { yaml, body } = splitFrontmatter(text);
  let fm: Record<string, unknown> = {};
  if (yaml !== null) {
    let parsed: unknown;
    try {
      parsed = YAML.parse(yaml);
    } catch (err) {
      const first = (err as Error).message.split('\n')[0];
      throw new InvalidTaskError('yaml', `frontmatter: malformed YAML: ${first}`);
    }
    if (parsed !== null && parsed !== undefined) {
      if (typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw new InvalidTaskError('yaml', `frontmatter: ${show(parsed)} is not a mapping of fields`);
      }
      fm = parsed as Record<string, unknown>;
    }
  }
  return taskSpecFromFields(name, fm, body, defaults, source);
}

/**
 * Validates task fields (the frontmatter's, already parsed: YAML, or the JSON body of
 * POST /v1/tasks) and the prompt into a TaskSpec: the rules and messages of task files.
 * Fields it does not know go to `extra`.
 * @param name task name (checked against {@link TASK_NAME})
 * @param fm the fields by their frontmatter names (`depends_on`, `max_cost_usd`, …)
 * @param body the prompt; trimmed, must not be empty
 * @throws InvalidTaskError naming the field
 */
export function taskSpecFromFields(
  name: string,
  fm: Record<string, unknown>,
  body: string,
  defaults: Pick<Config, 'default_timeout' | 'default_retries'>,
  source = 'inbox',
): TaskSpec {
  if (!TASK_NAME.test(name)) fail('name', name, 'a valid task name (letters, digits, ".", "_", "-")');
  const prompt = body.trim();
  if (prompt === '') throw new InvalidTaskError('prompt', 'prompt: the task body is empty (write the prompt below the frontmatter)');

  const priority = fm.priority ?? 'default';
  if (typeof priority !== 'string' || !(PRIORITIES as readonly string[]).includes(priority)) {
    fail('priority', priority, `one of ${PRIORITIES.join(', ')}`);
  }

  let timeoutMs = defaults.default_timeout;
  if (fm.timeout !== undefined && fm.timeout !== null) {
    const parsed = parseDuration(fm.timeout);
    if (parsed === null) fail('timeout', fm.timeout, 'a duration such as 90s or 30m');
    timeoutMs = parsed;
  }

  let maxCostUsd: number | null = null;
  if (fm.max_cost_usd !== undefined && fm.max_cost_usd !== null) {
    if (typeof fm.max_cost_usd !== 'number' || !(fm.max_cost_usd > 0)) fail('max_cost_usd', fm.max_cost_usd, 'a positive number (USD)');
    maxCostUsd = fm.max_cost_usd;
  }

  let retries = defaults.default_retries;
  if (fm.retries !== undefined && fm.retries !== null) {
    if (typeof fm.retries !== 'number' || !Number.isInteger(fm.retries) || fm.retries < 0) fail('retries', fm.retries, 'a whole number ≥ 0');
    retries = fm.retries;
  }

  let command: CommandSpec | null = null;
  if (fm.command !== undefined && fm.command !== null) {
    const c = fm.command;
    const ok = (typeof c === 'string' && c.trim() !== '') || (Array.isArray(c) && c.length > 0 && c.every((x) => typeof x === 'string'));
    if (!ok) fail('command', c, 'a command string or a list of argv strings');
    command = c as CommandSpec;
  }

  const dedup = fm.dedup_key;
  if (dedup !== undefined && dedup !== null && typeof dedup !== 'string' && typeof dedup !== 'number') fail('dedup_key', dedup, 'a string');

  let retryBackoffMs: number | null = null;
  if (fm.retry_backoff !== undefined && fm.retry_backoff !== null) {
    retryBackoffMs = parseDuration(fm.retry_backoff);
    if (retryBackoffMs === null) fail('retry_backoff', fm.retry_backoff, 'a duration such as 30s or 5m');
  }
  const retryOnTimeout = fm.retry_on_timeout ?? false;
  if (typeof retryOnTimeout !== 'boolean') fail('retry_on_timeout', retryOnTimeout, 'true or false');

  let runAt: number | null = null;
  if (fm.run_at !== undefined && fm.run_at !== null) {
    // YAML reads an unquoted ISO timestamp as a Date.
    const v = fm.run_at;
    runAt = v instanceof Date ? v.getTime() : typeof v === 'string' && /^\d{4}-\d{2}-\d{2}/.test(v) ? Date.parse(v) : Number.NaN;
    if (!Number.isFinite(runAt)) fail('run_at', v instanceof Date ? String(v) : v, 'an ISO 8601 time such as 2026-12-01T09:00:00Z');
  }
  const workspace = fm.workspace ?? null;
  if (workspace !== null && workspace !== 'inplace' && workspace !== 'worktree') fail('workspace', workspace, 'inplace or worktree');
  const merge = fm.merge ?? null;
  if (merge !== null && merge !== 'manual' && merge !== 'auto') fail('merge', merge, 'manual or auto');

  const title = optString(fm, 'title') ?? name;
  const agent = optString(fm, 'agent') ?? 'claude';
  if (agent !== AUTO_AGENT && !(KNOWN_AGENTS as readonly string[]).includes(agent)) fail('agent', agent, `a known agent (${KNOWN_AGENTS.join(', ')}) or auto`);
  const dependsOn = stringList(fm, 'depends_on');
  for (const dep of dependsOn) if (!TASK_NAME.test(dep)) fail('depends_on', dep, 'a task name');
  if (dependsOn.includes(name)) fail('depends_on', name, 'another task (a task cannot depend on itself)');
  const parent = optString(fm, 'parent');
  if (parent !== null && (!TASK_NAME.test(parent) || parent === name)) fail('parent', parent, 'the name of another task');

  let maxTurns: number | null = null;
  if (fm.max_turns !== undefined && fm.max_turns !== null) {
    if (typeof fm.max_turns !== 'number' || !Number.isInteger(fm.max_turns) || fm.max_turns < 1) fail('max_turns', fm.max_turns, 'a whole number of turns ≥ 1');
    maxTurns = fm.max_turns;
  }
  const allowedTools = fm.allowed_tools === undefined || fm.allowed_tools === null ? null : stringList(fm, 'allowed_tools');

  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fm)) if (!(KNOWN_FIELDS as readonly string[]).includes(k)) extra[k] = v;

  return {
    name,
    title,
    priority: priority as Priority,
    agent,
    model: optString(fm, 'model'),
    dependsOn: [...new Set(dependsOn)],
    parent,
    timeoutMs,
    maxCostUsd,
    retries,
    retryBackoffMs,
    retryOnTimeout,
    concurrencyGroup: optString(fm, 'concurrency_group'),
    runAt,
    workspace,
    merge,
    tags: stringList(fm, 'tags'),
    dedupKey: dedup === undefined || dedup === null ? null : String(dedup),
    command,
    maxTurns,
    allowedTools,
    extra,
    prompt,
    source,
  };
}

/** TEMP (replaced by the task-file change): the text of a task file, or InvalidTaskError. */
export function decodeTaskFile(content: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(content);
  } catch {
    throw new InvalidTaskError('encoding', 'encoding: the file is not UTF-8 text');
  }
}
