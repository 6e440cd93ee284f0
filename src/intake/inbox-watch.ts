/**
 * Watching the inbox: wake-ups for the dispatch loop, and which files are known complete.
 *
 * On Linux with `inotifywait` (Debian's inotify-tools) on the PATH, the inbox is watched
 * through inotify itself, by one `inotifywait -m` child per watch: a file is complete once its
 * writer closed it (`CLOSE_WRITE`) or once it was renamed in (`MOVED_TO`, the atomic-write
 * idiom), and stays so until a later event says it changed (`CREATE`, `MODIFY`, `MOVED_FROM`,
 * `DELETE`) or its file instance (inode + ctime, {@link fileIdentity}) is no longer the one seen
 * at that event. Intake reads a complete file at once; any other file still waits
 * `inbox_settle` unchanged (a writer that keeps the file open). Elsewhere (no `inotifywait`,
 * another platform, an inbox that cannot be watched, the child gone) the watch is chokidar's,
 * which only wakes the loop: every file waits `inbox_settle`. Node's `fs.watch` cannot tell a
 * close from a write (libuv folds inotify's masks into `rename`/`change`), hence the child.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { findOnPath } from '../agents/resolve-command.ts';
import { fileIdentity } from './inbox.ts';

/** A watch of the inbox (see {@link watchInbox}). */
export interface InboxWatch {
  /** `inotify`: completeness known from the kernel's events; `settle`: every file waits `inbox_settle`. */
  readonly mode: 'inotify' | 'settle';
  /** Settles once the watch is in place (`inotifywait` said "Watches established", or the fallback took over); never rejects. */
  readonly ready: Promise<void>;
  /**
   * Whether inbox file `file` (a name in the inbox), as the instance `identity`
   * ({@link fileIdentity}), is known complete from the events read so far: closed by its
   * writer or renamed in, unchanged since. Always false in `settle` mode.
   */
  complete(file: string, identity: string): boolean;
  /** Ends the watch (and its `inotifywait`). */
  close(): Promise<void>;
}

/** Task files: `*.md`, hidden ones left alone (as intake does). */
const isTaskFile = (name: string) => name.endsWith('.md') && !name.startsWith('.');

/** The events asked of `inotifywait`: those that make a file complete, and those that undo it. */
const DONE = new Set(['CLOSE_WRITE', 'MOVED_TO']);
const CHANGED = new Set(['CREATE', 'MODIFY', 'MOVED_FROM', 'DELETE']);

/**
 * Watches `inbox` (a directory). `onChange` is called when a task file may be ready to take in
 * (inotify: a `*.md` file created, closed after writing, or renamed in; chokidar: any event).
 * `native: false` leaves inotify out (the `settle` mode). `inotifywait`: the command (default
 * `inotifywait` on the PATH; tests name a missing one to see the fallback).
 * @throws never: an inbox inotify cannot watch falls back to the `settle` mode
 */
export function watchInbox(inbox: string, onChange: () => void, o: { native?: boolean; inotifywait?: string } = {}): InboxWatch {
  if (o.native === false || process.platform !== 'linux') return settleWatch(inbox, onChange);
  return inotifyWatch(o.inotifywait ?? 'inotifywait', inbox, onChange);
}

/** chokidar (loaded by the first settle watch: not with inotify): wake-ups only. */
function settleWatch(inbox: string, onChange: () => void): InboxWatch {
  const watcher = import('chokidar').then(({ default: chokidar }) => chokidar.watch(inbox, { ignoreInitial: true, depth: 0 }).on('all', onChange));
  return {
    mode: 'settle',
    ready: watcher.then((w) => new Promise<void>((resolve) => w.once('ready', () => resolve()))),
    complete: () => false,
    close: async () => (await watcher).close(),
  };
}

/**
 * `inotifywait -m` on the inbox, one NUL-ended record `EVENTS NAME` per event (names may hold
 * any byte but NUL and `/`). Until the child says its watch is in place, and after it is gone
 * (the inbox removed, the command missing, killed), every file waits `inbox_settle` under
 * chokidar, as without it.
 */
function inotifyWatch(command: string, inbox: string, onChange: () => void): InboxWatch {
  /** Complete files: name → the file instance seen just after the event that said so. */
  const marks = new Map<string, string>();
  let established = false;
  let fallback: InboxWatch | null = null;
  let closed = false;
  let ready = () => {};
  const readyP = new Promise<void>((resolve) => (ready = resolve));
  const fallBack = () => {
    marks.clear();
    established = false;
    if (closed || fallback) return;
    fallback = settleWatch(inbox, onChange);
    void fallback.ready.then(ready);
    onChange(); // what arrived meanwhile is found by the next intake pass
  };
  const events = [...DONE, ...CHANGED].map((e) => e.toLowerCase()).join(',');
  const argv = [command, '-m', '-e', events, '--format', '%e %f%0', '--no-newline', inbox];
  // No shell; stdin ignored. The child ends with its watch when the inbox goes (IGNORED ends -m),
  // and, through util-linux's setpriv (PR_SET_PDEATHSIG), with this process even when it is
  // SIGKILLed: a crashed dispatcher leaves no watcher behind.
  const setpriv = findOnPath('setpriv', process.env.PATH ?? '');
  if (setpriv) argv.unshift(setpriv, '--pdeathsig', 'KILL');
  // Its environment: PATH alone (to find inotifywait); none of agentq's settings or secrets.
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } });
  child.on('error', fallBack); // ENOENT: not installed
  child.on('exit', fallBack);
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    if (established) return;
    err += chunk;
    if (err.includes('Watches established')) {
      established = true;
      ready();
    }
  });
  let pending: Buffer = Buffer.alloc(0);
  child.stdout.on('data', (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let wake = false;
    for (let end = pending.indexOf(0); end >= 0; end = pending.indexOf(0)) {
      const record = pending.subarray(0, end).toString('utf8');
      pending = pending.subarray(end + 1);
      const space = record.indexOf(' ');
      const names = record.slice(0, space).split(',');
      const name = record.slice(space + 1);
      if (names.includes('Q_OVERFLOW')) {
        marks.clear(); // events were lost: nothing is known complete any more
        wake = true;
      }
      if (!isTaskFile(name)) continue;
      if (names.some((e) => CHANGED.has(e))) marks.delete(name);
      if (names.some((e) => DONE.has(e))) {
        // The instance now: a write after this lstat changes its ctime, so a reopened file is not complete.
        try {
          marks.set(name, fileIdentity(fs.lstatSync(path.join(inbox, name), { bigint: true })));
        } catch {
          marks.delete(name); // gone again already
        }
      }
      if (names.some((e) => DONE.has(e) || e === 'CREATE')) wake = true;
    }
    if (wake) onChange();
  });
  return {
    get mode() {
      return established && !fallback ? ('inotify' as const) : 'settle';
    },
    ready: readyP,
    complete: (file, identity) => established && !fallback && marks.get(file) === identity,
    close: async () => {
      closed = true;
      const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((resolve) => child.once('close', () => resolve()));
      child.kill();
      await exited;
      await (fallback as InboxWatch | null)?.close();
    },
  };
}
