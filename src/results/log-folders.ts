/**
 * A task's log folder made ahead of time: creating a folder and two files costs 0.3–1.5 ms on
 * ext4 when other processes write to the same file system (the creations wait on its journal),
 * on the way from a claim to the agent's start; renaming a folder made beforehand into place
 * costs one `rename` (~0.05 ms), and the log files found in it are opened, not created.
 */
import fs from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { attemptLogName } from './logs.ts';

/** The prefix of spare folders in the logs folder: `.spare-<pid>-<n>` (never a task's folder, `<id>-<name>`). */
const SPARE_PREFIX = '.spare-';

/**
 * The log folders of one dispatcher's attempts ({@link prepare}), with one spare folder made
 * ahead in the background: `<logs>/.spare-<pid>-<n>/`, holding the empty logs of a first
 * attempt (`1.stdout.log`, `1.stderr.log`). Spares of processes that are gone (a crash) are
 * removed by {@link start}; this process's own by {@link close}.
 */
export class LogFolders {
  private spare: string | null = null;
  private making: Promise<void> | null = null;
  private seq = 0;
  private closed = false;

  /** @param logsDir the project's logs folder (`ProjectPaths.logs`) */
  constructor(private readonly logsDir: string) {}

  /**
   * Removes the spare folders of processes that `isAlive` says are gone, then makes this
   * process's first spare; in the background (never rejects; a failure leaves no spare, and
   * {@link prepare} makes folders as they are needed).
   */
  start(isAlive: (pid: number) => boolean): void {
    this.making = (async () => {
      let names: string[] = [];
      try {
        names = await fs.promises.readdir(this.logsDir);
      } catch {
        // No logs folder yet: nothing stale.
      }
      for (const name of names) {
        const pid = Number(/^\.spare-(\d+)-\d+$/.exec(name)?.[1]);
        if (pid > 0 && pid !== process.pid && !isAlive(pid)) await rm(path.join(this.logsDir, name), { recursive: true, force: true }).catch(() => {});
      }
      await this.makeSpare();
    })().finally(() => (this.making = null));
  }

  /**
   * Makes `dir`, the log folder of attempt `number` of a task, when it is missing: for a first
   * attempt by renaming the spare into place (its empty `1.stdout.log` and `1.stderr.log` in
   * it), else by `mkdir` (with its parents). Synchronous: it is one step of planning an
   * attempt. Starts making the next spare once the spare was used.
   * @throws mkdir's error (ENOTDIR, EACCES…) when the folder cannot be made
   */
  prepare(dir: string, number: number): void {
    const spare = this.spare;
    if (number === 1 && spare !== null) {
      try {
        // Fails when `dir` exists with files in it (ENOTEMPTY, EEXIST) or is a file (ENOTDIR): then made, or refused, below.
        fs.renameSync(spare, dir);
        this.spare = null;
        this.replenish();
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOTDIR') {
          // The spare is gone (ENOENT: it, or the logs folder holding it) or cannot be moved: another one.
          this.spare = null;
          if (code !== 'ENOENT') void rm(spare, { recursive: true, force: true }).catch(() => {});
          this.replenish();
        }
      }
    }
    fs.mkdirSync(dir, { recursive: true });
  }

  /** Resolves once the spare being made, if one is, is made (or failed): true when there is a spare. Never rejects. */
  async ready(): Promise<boolean> {
    await this.making;
    return this.spare !== null;
  }

  /** Waits for a spare being made and removes this process's spare; later {@link prepare} calls make folders without one. Never rejects. */
  async close(): Promise<void> {
    this.closed = true;
    await this.making;
    const spare = this.spare;
    this.spare = null;
    if (spare !== null) await rm(spare, { recursive: true, force: true }).catch(() => {});
  }

  private replenish(): void {
    if (this.making !== null || this.closed) return;
    this.making = this.makeSpare().finally(() => (this.making = null));
  }

  /** Makes a spare (its files before it counts as one); a failure leaves none. Never rejects. */
  private async makeSpare(): Promise<void> {
    if (this.closed) return;
    const dir = path.join(this.logsDir, `${SPARE_PREFIX}${process.pid}-${++this.seq}`);
    try {
      await mkdir(dir, { recursive: true });
      await Promise.all([writeFile(path.join(dir, attemptLogName(1, 'stdout')), '', { flag: 'a' }), writeFile(path.join(dir, attemptLogName(1, 'stderr')), '', { flag: 'a' })]);
      if (this.closed) await rm(dir, { recursive: true, force: true });
      else this.spare = dir;
    } catch {
      await rm(dir, { recursive: true, force: true }).catch(() => {});
    }
  }
}
