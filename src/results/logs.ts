/**
 * Where an attempt's raw agent output goes, `.agent-queue/logs/<id>-<name>/<n>.stdout.log`
 * (and `.stderr.log`), and reading it while it grows. Written by the dispatcher; read by
 * `agentq logs` and GET /v1/tasks/:id/logs.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ProjectPaths } from '../config/config.ts';
import type { Task } from '../core/types.ts';
import { fileStem } from './result-file.ts';

/** The folder of a task's attempt logs. */
export function taskLogDir(paths: ProjectPaths, task: Pick<Task, 'id' | 'name'>): string {
  return path.join(paths.logs, `${task.id}-${fileStem(task)}`);
}

/** The log file of one attempt (`number` is the attempt's 1-based claim number). */
export function attemptLogFile(paths: ProjectPaths, task: Pick<Task, 'id' | 'name'>, number: number, stream: 'stdout' | 'stderr'): string {
  return path.join(taskLogDir(paths, task), `${number}.${stream}.log`);
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
