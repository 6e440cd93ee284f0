/**
 * Reading an attempt's log from any machine (`agentq logs`, GET /v1/tasks/:id/logs): the
 * log file when this checkout holds it (the attempt ran here), else the tail the store kept
 * when the attempt ended (the last 64 KiB), else word of where it runs.
 */
import fs from 'node:fs';
import type { ProjectPaths } from '../config/config.ts';
import { OUTPUT_TAIL_BYTES, type Attempt, type AttemptOutput, type OutputTail, type Task } from '../core/types.ts';
import { attemptLogFile, tailIsCut, tailLog } from '../results/logs.ts';
import type { Store } from '../store/store.ts';

/** One of an attempt's two logs. */
export type LogStream = 'stdout' | 'stderr';

/**
 * Where one log of an attempt is read from:
 * - `file`: this checkout holds it (`file`, the path);
 * - `stored`: it is not here and the attempt has ended: the store's `tail`, from `host`;
 * - `elsewhere`: it is not here and the attempt still runs, on `host` (or in another
 *   checkout; or here, its agent not started yet);
 * - `none`: it is not here and the store kept nothing (the attempt ended before agentq
 *   kept tails, or was ended by a dispatcher that did not hold its logs).
 */
export type LogSource =
  | { kind: 'file'; file: string }
  | { kind: 'stored'; host: string | null; tail: OutputTail }
  | { kind: 'elsewhere'; host: string | null }
  | { kind: 'none'; host: string | null };

/**
 * Where to read `stream` of `attempt` from (see {@link LogSource}). `output`, when given,
 * stands for `store.attemptOutput(attempt.id)` (one read for both streams).
 */
export async function locateLog(
  store: Store,
  paths: ProjectPaths,
  task: Pick<Task, 'id' | 'name'>,
  attempt: Attempt,
  stream: LogStream,
  output?: () => Promise<AttemptOutput | null>,
): Promise<LogSource> {
  const file = attemptLogFile(paths, task, attempt.number, stream);
  if (fs.existsSync(file)) return { kind: 'file', file };
  if (attempt.outcome === 'running') return { kind: 'elsewhere', host: attempt.host };
  const stored = await (output ? output() : store.attemptOutput(attempt.id));
  return stored ? { kind: 'stored', host: attempt.host, tail: stored[stream] } : { kind: 'none', host: attempt.host };
}

/**
 * Streams `stream` of attempt `number` of `task` from where {@link locateLog} finds it:
 * the file (with `follow`, what is appended too, until the attempt ends), or the stored
 * tail. With `follow`, an attempt that runs without its log here is waited for (polling the
 * store every `pollMs`, default 250): its file once it appears here, else its stored tail
 * once it ends. `onSource` hears each source as it is chosen (`elsewhere` first, while
 * waiting). Ends at once when `signal` is aborted; yields nothing for an unknown attempt.
 */
export async function* streamAttemptLog(
  store: Store,
  paths: ProjectPaths,
  task: Pick<Task, 'id' | 'name'>,
  number: number,
  stream: LogStream,
  o: { follow: boolean; pollMs?: number; signal?: AbortSignal; onSource?: (source: LogSource) => void },
): AsyncGenerator<Buffer> {
  const current = async () => (await store.listAttempts(task.id)).find((a) => a.number === number);
  let waiting = false;
  for (;;) {
    const attempt = await current();
    if (!attempt) return;
    const source = await locateLog(store, paths, task, attempt, stream);
    if (source.kind === 'file') {
      o.onSource?.(source);
      yield* tailLog(source.file, { follow: o.follow, pollMs: o.pollMs, signal: o.signal, ended: async () => (await current())?.outcome !== 'running' });
      return;
    }
    if (source.kind !== 'elsewhere' || !o.follow) {
      o.onSource?.(source);
      if (source.kind === 'stored' && source.tail.text) yield Buffer.from(source.tail.text);
      return;
    }
    if (!waiting) o.onSource?.(source);
    waiting = true;
    if (o.signal?.aborted) return;
    await pause(o.pollMs ?? 250, o.signal);
  }
}

/** Waits `ms`, or less when `signal` is aborted. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', wake);
      resolve();
    };
    const timer = setTimeout(wake, ms);
    signal?.addEventListener('abort', wake, { once: true });
  });
}

/** A byte count for people: `512 B`, `12 KiB`, `1.2 MiB`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const [value, unit] = bytes < 1024 * 1024 ? [bytes / 1024, 'KiB'] : [bytes / (1024 * 1024), 'MiB'];
  return `${value < 10 && !Number.isInteger(value) ? value.toFixed(1) : Math.round(value)} ${unit}`;
}

/** Where a host is, seen from `here` (this machine's host name). */
function hostLabel(host: string | null, here: string): string {
  return host === null ? 'an unknown host' : host === here ? `this host (${here})` : `host ${host}`;
}

/**
 * What a stored tail holds, for a header: `the store's copy: the last 64 KiB of 1.2 MiB
 * (truncated), from host build-1`, or `the store's copy: all 12 KiB, from host build-1`.
 * `here`: this machine's host name.
 */
export function storedLabel(source: Extract<LogSource, { kind: 'stored' }>, here: string): string {
  const { tail } = source;
  const what = tailIsCut(tail) ? `the last ${formatBytes(OUTPUT_TAIL_BYTES)} of ${formatBytes(tail.bytes)} (truncated)` : `all ${formatBytes(tail.bytes)}`;
  return `the store's copy: ${what}, from ${hostLabel(source.host, here)}`;
}

/**
 * One line saying what a source other than a file holds, for stderr; `what` names the log
 * (`attempt 2's stdout`), `here` is this machine's host name.
 */
export function describeSource(source: Exclude<LogSource, { kind: 'file' }>, what: string, here: string): string {
  switch (source.kind) {
    case 'stored':
      return `${what} is not on this machine; printing ${storedLabel(source, here)}`;
    case 'elsewhere':
      return source.host === here
        ? `${what} is not in this checkout: the attempt runs in another checkout on this host (or its agent has not started yet); the store keeps its last ${formatBytes(OUTPUT_TAIL_BYTES)} once it ends`
        : `${what} is not on this machine: the attempt runs on ${hostLabel(source.host, here)}, whose live log is there; the store keeps its last ${formatBytes(OUTPUT_TAIL_BYTES)} once it ends`;
    case 'none':
      return `${what} is not on this machine and the store kept none of it (it ran on ${hostLabel(source.host, here)})`;
  }
}
