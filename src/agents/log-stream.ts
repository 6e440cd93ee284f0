/**
 * An attempt's log files: {@link LogFile}, the appender `agent-process.ts` writes a child's
 * output with; {@link openLog}/{@link closeLog}, the streams of runners that start no process
 * (`openai`, `a2a`) and write an attempt's stdout/stderr logs themselves, appending.
 */
import { closeSync, createWriteStream, mkdirSync, openSync, writeSync, type WriteStream } from 'node:fs';
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

/**
 * A log file appended to with synchronous writes (to the page cache: cheaper than a stream's
 * thread-pool round trips for the small chunks of an agent's output). Its folder is made only
 * when the open finds it missing (one `open` in the usual case, where the dispatcher made it).
 * Write errors (a full disk) are swallowed: a failing log must not crash the process or the attempt.
 */
export class LogFile {
  private fd: number | null;

  /**
   * Opens `path` for appending (created with its folder when missing).
   * @throws the open's error (EACCES, ENOSPC, ENOTDIR…)
   */
  constructor(readonly path: string) {
    try {
      this.fd = openSync(path, 'a');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      mkdirSync(dirname(path), { recursive: true });
      this.fd = openSync(path, 'a');
    }
  }

  /** Appends `data` (all of it, or nothing more after an error); a no-op once closed. Never throws. */
  write(data: Buffer | string): void {
    if (this.fd === null) return;
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    try {
      for (let off = 0; off < buf.length; ) off += writeSync(this.fd, buf, off, buf.length - off);
    } catch {
      // A full disk: the output is lost from the log, the attempt goes on.
    }
  }

  /** Closes the file; later writes are dropped. Idempotent, never throws. */
  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    try {
      closeSync(fd);
    } catch {
      // Nothing to do: the data is in the page cache already.
    }
  }
}
