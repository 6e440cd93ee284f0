/**
 * Making files durable in groups: the fsyncs asked for in one turn of the event loop, or
 * while the previous group is being synced, run together on the thread pool, so the event
 * loop never waits on the disk and the file system commits a group in one journal commit
 * instead of one per file (a group commit).
 */
import fs from 'node:fs';
import { promisify } from 'node:util';

const fsync = promisify(fs.fsync);
const openFd = promisify(fs.open);
const closeFd = promisify(fs.close);
const fstat = promisify(fs.fstat);

/** Errors of an fsync on a directory that a file system does not support: taken as done. */
const DIR_SYNC_UNSUPPORTED = new Set(['EINVAL', 'EISDIR', 'ENOTSUP', 'EPERM']);

/**
 * fsyncs `target`: an open descriptor, or a path (a file or a directory) through its own
 * descriptor, opened read-only. A directory whose file system refuses fsync on it (EINVAL,
 * EISDIR, ENOTSUP, EPERM) counts as synced. Callback-style fs calls: one thread-pool job each.
 * @throws the open's or the fsync's error (ENOENT, EIO…)
 */
export async function syncPath(target: string | number): Promise<void> {
  if (typeof target === 'number') return fsync(target);
  const fd = await openFd(target, 'r');
  try {
    await fsync(fd);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (!DIR_SYNC_UNSUPPORTED.has(code) || !(await fstat(fd)).isDirectory()) throw err;
  } finally {
    await closeFd(fd);
  }
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * A group commit of fsyncs ({@link sync}). Each path is synced once per group however many
 * callers asked for it (the folder of several files written together, for one).
 */
export class GroupSync {
  /** Groups synced so far. */
  groups = 0;
  /** fsyncs made so far (one per distinct path of a group). */
  fsyncs = 0;
  private waiting = new Map<string | number, Waiter[]>();
  private running: Promise<void> | null = null;

  /**
   * Resolves once `target` (a path, or an open descriptor the caller keeps open until then) was fsynced after this call: in the next group, which starts on the
   * next turn of the event loop or when the group being synced ends.
   * @throws (rejects with) that fsync's error (see {@link syncPath}); the other paths of the group are not affected
   */
  sync(target: string | number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiters = this.waiting.get(target);
      if (waiters) waiters.push({ resolve, reject });
      else this.waiting.set(target, [{ resolve, reject }]);
      this.running ??= this.drain();
    });
  }

  private async drain(): Promise<void> {
    // Callers in this turn join the first group.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.waiting.size > 0) {
      const group = this.waiting;
      this.waiting = new Map();
      this.groups++;
      this.fsyncs += group.size;
      await Promise.all(
        [...group].map(([path, waiters]) =>
          syncPath(path).then(
            () => waiters.forEach((w) => w.resolve()),
            (err: unknown) => waiters.forEach((w) => w.reject(err)),
          ),
        ),
      );
    }
    this.running = null;
  }
}
