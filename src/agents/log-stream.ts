/**
 * The log files of runners that start no process (`openai`, `a2a`): they write an attempt's
 * stdout/stderr logs themselves, appending, as `agent-process.ts` does for a child's output.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Opens `path` for appending (its folder made first) and resolves once it is open.
 * Later write errors (a full disk) are swallowed: a failing log must not crash the process or the attempt.
 * @throws the open's error (EACCES, ENOSPC…)
 */
export async function openLog(path: string): Promise<WriteStream> {
  await mkdir(dirname(path), { recursive: true });
  const stream = createWriteStream(path, { flags: 'a' });
  await new Promise<void>((resolve, reject) => {
    stream.once('open', () => resolve());
    stream.once('error', reject);
  });
  stream.on('error', () => {});
  return stream;
}

/** Ends `stream` and resolves once it is closed (at once if it already is). Never rejects. */
export function closeLog(stream: WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.closed || stream.destroyed) return resolve();
    stream.once('close', () => resolve());
    stream.end();
  });
}
