/**
 * Where an attempt's raw agent output goes, `.agent-queue/logs/<id>-<name>/<n>.stdout.log`
 * (and `.stderr.log`), and reading it while it grows. Written by the dispatcher; read by
 * `agentq logs` and GET /v1/tasks/:id/logs.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ProjectPaths } from '../config/config.ts';
import { OUTPUT_TAIL_BYTES, type OutputTail, type Task } from '../core/types.ts';
import { fileStem } from './result-file.ts';

/** The folder of a task's attempt logs. */
export function taskLogDir(paths: ProjectPaths, task: Pick<Task, 'id' | 'name'>): string {
  return path.join(paths.logs, `${task.id}-${fileStem(task)}`);
}

/** The log file of one attempt (`number` is the attempt's 1-based claim number). */
export function attemptLogFile(paths: ProjectPaths, task: Pick<Task, 'id' | 'name'>, number: number, stream: 'stdout' | 'stderr'): string {
  return path.join(taskLogDir(paths, task), attemptLogName(number, stream));
}

/** The name of an attempt's log file in its task's log folder: `<number>.<stream>.log`. */
export function attemptLogName(number: number, stream: 'stdout' | 'stderr'): string {
  return `${number}.${stream}.log`;
}

/**
 * The log of one `verify` command of an attempt: `<number>.verify-<k>.log` beside its agent
 * logs, stdout and stderr together (`k` is the command's 1-based position in the task's `verify` list).
 */
export function verifyLogFile(paths: ProjectPaths, task: Pick<Task, 'id' | 'name'>, number: number, k: number): string {
  return path.join(taskLogDir(paths, task), `${number}.verify-${k}.log`);
}

/**
 * The bytes of `file` from `offset` to its current end (empty when it does not exist or
 * has not grown). The caller adds the returned length to its offset.
 */
export function readLogFrom(file: string, offset: number): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return Buffer.alloc(0);
    throw err;
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size <= offset) return Buffer.alloc(0);
    const buf = Buffer.alloc(size - offset);
    const n = fs.readSync(fd, buf, 0, buf.length, offset);
    return n === buf.length ? buf : buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The text of the last `maxBytes` bytes of `buf`, cut where a code point starts: the
 * continuation bytes (`10xxxxxx`, at most 3) of a code point begun before the cut are
 * dropped, so the text never starts with half a character. Bytes that are not UTF-8 and
 * NUL read as U+FFFD (3 bytes each, so the text's UTF-8 may then be longer than `maxBytes`).
 * @param maxBytes bytes kept, ≥ 0
 * @throws RangeError when `maxBytes` is negative or not an integer
 */
export function utf8Tail(buf: Buffer, maxBytes: number): string {
  if (!Number.isInteger(maxBytes) || maxBytes < 0) throw new RangeError(`maxBytes: ${maxBytes} is not a whole number of bytes ≥ 0`);
  let start = Math.max(0, buf.length - maxBytes);
  for (let skipped = 0; start > 0 && start < buf.length && skipped < 3 && (buf[start]! & 0xc0) === 0x80; skipped++) start++;
  return buf.subarray(start).toString('utf8').replaceAll('\0', '\uFFFD');
}

/**
 * The end of a log file as the store keeps it ({@link OutputTail}): its last `maxBytes`
 * bytes (see {@link utf8Tail}) and its size. A file that does not exist reads as empty.
 * Reads once, from the end: the cost does not grow with the log.
 * @param maxBytes default {@link OUTPUT_TAIL_BYTES} (64 KiB)
 * @throws the file system's error other than ENOENT (EACCES, EIO…)
 */
export function readOutputTail(file: string, maxBytes = OUTPUT_TAIL_BYTES): OutputTail {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { text: '', bytes: 0 };
    throw err;
  }
  try {
    const size = fs.fstatSync(fd).size;
    // One byte more than kept when the log is longer: utf8Tail then sees where the cut falls.
    const length = Math.min(size, maxBytes + 1);
    const buf = Buffer.alloc(length);
    const n = length === 0 ? 0 : fs.readSync(fd, buf, 0, length, size - length);
    return { text: utf8Tail(buf.subarray(0, n), maxBytes), bytes: size };
  } finally {
    fs.closeSync(fd);
  }
}

/** Whether a stored tail is only the end of its log (the log was longer than {@link OUTPUT_TAIL_BYTES}). */
export function tailIsCut(tail: OutputTail): boolean {
  return tail.bytes > OUTPUT_TAIL_BYTES;
}

/**
 * Streams a log file: what it holds now, then (with `follow`) what is appended, polling
 * every `pollMs` until `ended()` says the writer is done (one last read follows) or
 * `signal` is aborted.
 */
export async function* tailLog(
  file: string,
  o: { follow: boolean; ended: () => Promise<boolean>; pollMs?: number; signal?: AbortSignal },
): AsyncGenerator<Buffer> {
  let offset = 0;
  for (;;) {
    // Ask before reading: whatever was written before the writer ended is read after.
    const done = !o.follow || (await o.ended());
    const chunk = readLogFrom(file, offset);
    if (chunk.length) {
      offset += chunk.length;
      yield chunk;
    }
    if (done || o.signal?.aborted) return;
    await new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        o.signal?.removeEventListener('abort', wake);
        resolve();
      };
      const timer = setTimeout(wake, o.pollMs ?? 250);
      o.signal?.addEventListener('abort', wake, { once: true });
    });
  }
}
