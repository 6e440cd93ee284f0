/**
 * What task files' text and names obey without the schema (no zod, no yaml): the limits of
 * task fields, task names, decoding a file's bytes, splitting its frontmatter, the spec a file
 * without fields gives, and remote names and URLs. What the dispatcher needs while it takes
 * nothing in; task-file.ts (the schema, the YAML) re-exports all of it.
 */
import { InvalidTaskError } from '../core/errors.ts';
import type { TaskSpec } from '../core/types.ts';

/**
 * Limits on task fields: a value past one is refused (the task ends `invalid`), never cut.
 * Lengths are in characters (UTF-16 code units) unless the name says bytes.
 */
export const TASK_LIMITS = {
  /** `name` (the file name without `.md`), each `depends_on` entry, `parent`. */
  nameChars: 100,
  /** `title`. */
  titleChars: 500,
  /** `agent`, `model`, `concurrency_group`, `dedup_key`, each tag, each `runs_on` label, each `allowed_tools` rule. */
  textChars: 200,
  /** Entries of `tags`. */
  tags: 50,
  /** Entries of `runs_on`. */
  runsOn: 50,
  /** Entries of `allowed_tools`. */
  allowedTools: 100,
  /** Entries of `depends_on`. */
  dependsOn: 1000,
  /** `command` as one string, or each argv entry (Linux refuses one argument past 128 KiB). */
  commandChars: 65_536,
  /** Entries of `command` as an argv list. */
  commandArgs: 1000,
  /** `remote` (a name of config `remotes`, or the A2A agent's URL). */
  remoteChars: 2000,
  /** Commands of `workspace_setup` (each at most `commandChars`). */
  setupCommands: 100,
  /** `remote_metadata`, as JSON, UTF-8 bytes (it may carry a `command`). */
  remoteMetadataBytes: 131_072,
  /** The prompt (the body), UTF-8 bytes: 1 MiB. */
  promptBytes: 1_048_576,
  /** `timeout`, `retry_backoff`, `verify_timeout` and `stall_timeout`, ms: 7 days. */
  durationMs: 7 * 86_400_000,
  /** `max_cost_usd`, USD. */
  maxCostUsd: 10_000,
  /** `retries`. */
  retries: 100,
  /** `max_turns`. */
  maxTurns: 10_000,
  /** Entries of `verify`. */
  verifyCommands: 20,
  /** `verify_retries`. */
  verifyRetries: 100,
} as const;

/**
 * A task name: the file name without `.md`. Letters, digits, `.`, `_`, `-`, starting with a
 * letter or digit (so never `.`, `..` or a hidden file), at most {@link TASK_LIMITS}.nameChars
 * characters: it always makes a file and directory name.
 */
export const TASK_NAME = new RegExp(`^[A-Za-z0-9][A-Za-z0-9._-]{0,${TASK_LIMITS.nameChars - 1}}$`);

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
export function controlChar(text: string, allow: string): { index: number; code: number } | null {
  const re = /[\u0000-\u001f\u007f-\u009f]/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (!allow.includes(m[0])) return { index: m.index, code: m[0].charCodeAt(0) };
  }
  return null;
}

/** Control characters a text file (and a prompt) may hold: tab, line feed, carriage return, form feed. */
export const TEXT_CONTROLS = '\t\n\r\f';

/** `code` in upper-case hex, zero-padded to `width` digits (`hex(10, 4)` → `000A`). */
export const hex = (code: number, width: number) => code.toString(16).toUpperCase().padStart(width, '0');

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
    workspaceSetup: null,
    tags: [],
    runsOn: [],
    dedupKey: null,
    command: null,
    remote: null,
    remoteMetadata: null,
    maxTurns: null,
    allowedTools: null,
    verify: null,
    verifyTimeoutMs: null,
    verifyRetries: null,
    stallTimeoutMs: null,
    extra: {},
    prompt,
    source,
  };
}

/**
 * The name of a remote A2A agent in config `remotes` (and in `a2a:NAME` of a `fallback`
 * list): letters, digits, `.`, `_`, `-`, starting with a letter or digit, at most 100 characters.
 */
export const REMOTE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** Whether `text` is an absolute http(s) URL (the `remote` of a task that names its agent by URL). */
export function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'http:' || url.protocol === 'https:') && /^https?:\/\//i.test(text);
  } catch {
    return false;
  }
}
