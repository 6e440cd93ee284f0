/**
 * Watching the inbox: wake-ups for the dispatch loop, and which files are known complete.
 *
 * On Linux with the optional binding `agentq-inotify` (native/inotify, built at install; a
 * failed build only leaves it out) the inbox is watched through inotify itself: a file is
 * complete once its writer closed it (`IN_CLOSE_WRITE`) or once it was renamed in
 * (`IN_MOVED_TO`, the atomic-write idiom), and stays so until a later event says it changed
 * (`IN_CREATE`, `IN_MODIFY`, `IN_MOVED_FROM`, `IN_DELETE`) or its file instance (inode +
 * ctime, {@link fileIdentity}) is no longer the one seen at that event. Intake reads a complete
 * file at once; any other file still waits `inbox_settle` unchanged (a writer that keeps the
 * file open). Elsewhere (no binding, another platform, an inbox that cannot be watched) the
 * watch is chokidar's, which only wakes the loop: every file waits `inbox_settle`.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import chokidar, { type FSWatcher } from 'chokidar';
import { fileIdentity } from './inbox.ts';

/** What `agentq-inotify` exports (native/inotify/inotify.c). */
interface InotifyBinding {
  open(onEvents: (events: [wd: number, mask: number, cookie: number, name: string | null][]) => void): unknown;
  addWatch(handle: unknown, path: string, mask: number): number;
  close(handle: unknown): void;
  constants: Record<'IN_CLOSE_WRITE' | 'IN_MOVED_TO' | 'IN_CREATE' | 'IN_MODIFY' | 'IN_MOVED_FROM' | 'IN_DELETE' | 'IN_Q_OVERFLOW' | 'IN_IGNORED' | 'IN_ONLYDIR', number>;
}

let binding: InotifyBinding | null | undefined;

/** The inotify binding, loaded on first use; null when it is not installed or not on Linux. */
export function inotifyBinding(): InotifyBinding | null {
  if (binding === undefined) {
    binding = null;
    if (process.platform === 'linux') {
      try {
        binding = createRequire(import.meta.url)('agentq-inotify') as InotifyBinding;
      } catch {
        binding = null;
      }
    }
  }
  return binding;
}

/** A watch of the inbox (see {@link watchInbox}). */
export interface InboxWatch {
  /** `inotify`: completeness known from the kernel's events; `settle`: every file waits `inbox_settle`. */
  readonly mode: 'inotify' | 'settle';
  /**
   * Whether inbox file `file` (a name in the inbox), as the instance `identity`
   * ({@link fileIdentity}), is known complete from the events read so far: closed by its
   * writer or renamed in, unchanged since. Always false in `settle` mode.
   */
  complete(file: string, identity: string): boolean;
  /** Ends the watch. */
  close(): Promise<void>;
}

/** Task files: `*.md`, hidden ones left alone (as intake does). */
const isTaskFile = (name: string) => name.endsWith('.md') && !name.startsWith('.');

/**
 * Watches `inbox` (a directory). `onChange` is called when a task file may be ready to take in
 * (inotify: a `*.md` file created, closed after writing, or renamed in; chokidar: any event).
 * `native: false` leaves inotify out (the `settle` mode, as without the binding).
 * @throws never: an inbox inotify cannot watch (missing, …) falls back to the `settle` mode
 */
export function watchInbox(inbox: string, onChange: () => void, o: { native?: boolean } = {}): InboxWatch {
  const native = o.native === false ? null : inotifyBinding();
  if (native) {
    const watch = inotifyWatch(native, inbox, onChange);
    if (watch) return watch;
  }
  return settleWatch(inbox, onChange);
}

/** chokidar: wake-ups only. */
function settleWatch(inbox: string, onChange: () => void): InboxWatch {
  const watcher: FSWatcher = chokidar.watch(inbox, { ignoreInitial: true, depth: 0 });
  watcher.on('all', onChange);
  return { mode: 'settle', complete: () => false, close: () => watcher.close() };
}

/** inotify; null when the inbox cannot be watched. */
function inotifyWatch(native: InotifyBinding, inbox: string, onChange: () => void): InboxWatch | null {
  const C = native.constants;
  /** Complete files: name → the file instance seen just after the event that said so. */
  const marks = new Map<string, string>();
  const changed = C.IN_CREATE | C.IN_MODIFY | C.IN_MOVED_FROM | C.IN_DELETE;
  const done = C.IN_CLOSE_WRITE | C.IN_MOVED_TO;
  let fallback: InboxWatch | null = null;
  let closed = false;
  let handle: unknown;
  const onEvents = (events: [wd: number, mask: number, cookie: number, name: string | null][]) => {
    let wake = false;
    for (const [, mask, , name] of events) {
      if (mask & (C.IN_Q_OVERFLOW | C.IN_IGNORED)) {
        // Events were lost (queue overflow) or the watch ended (inbox removed or moved):
        // nothing is known complete any more.
        marks.clear();
        wake = true;
        if (mask & C.IN_IGNORED && !closed && !fallback) fallback = settleWatch(inbox, onChange);
        continue;
      }
      if (name === null || !isTaskFile(name)) continue;
      if (mask & changed) marks.delete(name);
      if (mask & done) {
        // The instance now: a write after this lstat changes its ctime (the kernel gives a
        // changed file a ctime past the one a stat has read), so a reopened file is not complete.
        try {
          marks.set(name, fileIdentity(fs.lstatSync(path.join(inbox, name), { bigint: true })));
        } catch {
          marks.delete(name); // gone again already
        }
      }
      if (mask & (done | C.IN_CREATE)) wake = true;
    }
    if (wake) onChange();
  };
  try {
    handle = native.open(onEvents); // EMFILE past the user's inotify instances
  } catch {
    return null;
  }
  try {
    native.addWatch(handle, inbox, changed | done | C.IN_ONLYDIR);
  } catch {
    native.close(handle); // ENOENT (no inbox yet), ENOSPC past the user's watches, …
    return null;
  }
  return {
    get mode() {
      return fallback ? fallback.mode : ('inotify' as const);
    },
    complete: (file, identity) => !fallback && marks.get(file) === identity,
    close: async () => {
      closed = true;
      native.close(handle);
      await fallback?.close();
    },
  };
}
