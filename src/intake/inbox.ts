/**
 * Inbox intake: `.agent-queue/inbox/NAME.md` → a task in the store, then the file leaves
 * the inbox. Exactly once, however many dispatchers watch the inbox, and crash-safe in both
 * orders: the intake key (content hash + file instance + name, see {@link intakeKey}) is
 * recorded in the same transaction as the task, the file is removed after, and a file whose
 * key is recorded already is removed, never taken in twice. A file is read once it is known
 * complete (closed by its writer or renamed in: `inbox-watch.ts`), else once it has been
 * unchanged for `inbox_settle` ms; only regular files of the inbox's own are read.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/config.ts';
import { projectOrigin, type ProjectPaths } from '../config/project.ts';
import { baseSpec, decodeTaskFile } from '../config/task-text.ts';
import { InvalidTaskError } from '../core/errors.ts';
import type { Task, TaskOrigin, TaskSpec } from '../core/types.ts';
import type { NewTask, Store } from '../store/store.ts';
import type { InboxWatch } from './inbox-watch.ts';

export interface IntakeResult {
  /** Tasks created (queued or invalid), in intake order. */
  created: Task[];
  /** Inbox files not read yet because they are still changing. */
  unsettled: string[];
  /** Inbox files left in the inbox because the queue is full (`max_queue_depth`). */
  deferred: string[];
  /** Inbox entries that can never be taken in as they are (symlinks, FIFOs, …), left in place, with the reason. */
  refused: RefusedEntry[];
}

/** An inbox entry intake will not read, and why (e.g. `is a symbolic link …`). */
export interface RefusedEntry {
  file: string;
  reason: string;
}

/** Largest task file taken in, bytes (1 MiB); a larger one is refused and left in the inbox. */
export const MAX_TASK_FILE_BYTES = 1024 * 1024;

interface Candidate {
  file: string;
  /** The file's path. */
  full: string;
  key: string;
  /** The file instance read (see {@link fileIdentity}). */
  identity: string;
  name: string;
  spec: TaskSpec | null;
  invalid: string | null;
  /** Set when another queued or running task has the same `dedup_key`. */
  duplicate: string | null;
  depIds: number[];
  depBatchNames: string[];
  /** The parent, stored (id) or in this batch (name). */
  parentId: number | null;
  parentBatchName: string | null;
  /** The origin of the stored parent, if it has one (a subtask inherits it). */
  parentOrigin: TaskOrigin | null;
}

/** Why a task naming an unknown dependency is invalid (inbox and POST /v1/tasks alike). */
export function unknownDependencyReason(dep: string): string {
  return `depends_on: ${JSON.stringify(dep)} names no task in this project`;
}

/** Why a task naming an unknown parent is invalid. */
export function unknownParentReason(parent: string): string {
  return `parent: ${JSON.stringify(parent)} names no task in this project`;
}

/** Why a task ends `duplicate`: `first` says which task holds the `dedup_key`. */
export function duplicateReason(key: string, first: string): string {
  return `dedup_key: ${JSON.stringify(key)}: ${first}`;
}

/**
 * The origin of a task created in checkout `here` (inbox, `agentq serve`): a subtask inherits
 * its parent's, so every result file of a task tree lands where its root was filed, whichever
 * checkout's agent filed the subtask; any other task (or a subtask of a task stored before
 * origins were recorded) comes from `here`.
 */
export function subtaskOrigin(parentOrigin: TaskOrigin | null, here: TaskOrigin): TaskOrigin {
  return parentOrigin ?? here;
}

/** How {@link duplicateReason} names a stored task that holds the key. */
export function activeHolder(task: Task): string {
  return `task ${task.id} "${task.name}" is already ${task.state}`;
}

/**
 * Intake key: `SHA256:IDENTITY:FILE` — the content hash, the file instance (see
 * {@link fileIdentity}) and the file name. Two dispatchers reading the same file get the same
 * key (so it is taken in once, whoever records it first); the same content dropped again
 * later is a new file instance, so a new key and a new task.
 */
export function intakeKey(fileName: string, content: string | Buffer, identity: string): string {
  return `${contentHash(content)}:${identity}:${fileName}`;
}

/** The sha256 of a file's content, hex: an {@link intakeKey}'s first part. */
function contentHash(content: string | Buffer): string {
  return crypto.createHash('sha256').update(content).digest('hex');
}

/** The file name in an intake key (keys of agentq ≤ 0.1 have no identity part). */
export function intakeFileName(key: string): string {
  return key.replace(/^[0-9a-f]{64}:(?:\d+-\d+:)?/, '');
}

/**
 * The identity of one file instance: `INODE-CTIMENS`. The kernel sets ctime (ns) whenever a
 * file is created, written, renamed or linked, so a file written anew (even with the same
 * content, even on a reused inode) has another identity.
 */
export function fileIdentity(stat: fs.BigIntStats): string {
  return `${stat.ino}-${stat.ctimeNs}`;
}

const refuse = (reason: string) => ({ kind: 'refused' as const, reason });
const notRegular = (kind: string) => refuse(`is ${kind}; only regular files inside the project are taken in (copy the file in instead)`);

/** What kind of thing a non-regular inbox entry is, for a refusal's reason. */
function entryKind(st: fs.BigIntStats): string {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a named pipe (FIFO)';
  if (st.isSocket()) return 'a socket';
  return 'a device file';
}

/**
 * The inbox's `*.md` entries (hidden ones left alone), sorted; those the directory lists as
 * regular files (its entry type: no lstat needed before opening them); and those refused by
 * their name alone (not valid UTF-8). Null when there is no inbox.
 */
function listInbox(inbox: string): { names: string[]; regular: Set<string>; refused: RefusedEntry[] } | null {
  let raw: fs.Dirent[];
  try {
    // Names as strings (half the cost of Buffers); only when one holds U+FFFD (bytes that are not
    // UTF-8, or that character itself) is the directory listed again as bytes, to tell which.
    raw = fs.readdirSync(inbox, { withFileTypes: true });
    if (raw.some((e) => e.name.includes('\uFFFD'))) raw = fs.readdirSync(inbox, { encoding: 'buffer', withFileTypes: true }) as unknown as fs.Dirent[];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const names: string[] = [];
  const regular = new Set<string>();
  const refused: RefusedEntry[] = [];
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  for (const entry of raw) {
    const b = entry.name as string | Buffer;
    const lossy = typeof b === 'string' ? b : b.toString('utf8');
    if (!lossy.endsWith('.md') || lossy.startsWith('.')) continue;
    let name = lossy; // bytes that are not UTF-8 decode to U+FFFD: only then is the strict decoding needed
    if (lossy.includes('\uFFFD')) {
      try {
        name = utf8.decode(b as Buffer); // listed as bytes: a name with U+FFFD was in the listing
      } catch {
        refused.push({ file: lossy, reason: 'its file name is not valid UTF-8; rename it' });
        continue;
      }
    }
    names.push(name);
    if (entry.isFile()) regular.add(name);
  }
  return { names: names.sort(), regular, refused };
}

/** Options of {@link readTaskFileEntry}. */
export interface ReadEntryOptions {
  /** Read only if last changed no later than this, epoch ms (default: any time)… */
  settledBefore?: number;
  /** …or if this says the file instance ({@link fileIdentity}) is known complete. */
  complete?: (identity: string) => boolean;
  /** The directory listed the entry as a regular file (its entry type), so it is opened without an lstat first. */
  listedRegular?: boolean;
}

/** Bytes of a task file read before its fstat (64 KiB): a file this small is read with one read, one fstat. */
const FIRST_READ_BYTES = 64 * 1024;

/** The buffer of every first read (see {@link FIRST_READ_BYTES}); the content is copied out of it. */
let firstRead: Buffer | null = null;

/**
 * Reads one task file entry (inbox or `recurring/`), if it may be taken in: a regular file
 * (no symlink, no other hard link, so nothing outside the project), at most
 * {@link MAX_TASK_FILE_BYTES}, settled (see {@link ReadEntryOptions}). Only an entry listed
 * or lstat'ed as a regular file is opened, without following links and without blocking (a
 * FIFO swapped in after the check cannot hang intake), then checked again on the open file.
 * A file of at most {@link FIRST_READ_BYTES} is read first and checked after, by one fstat of
 * the open file (the bytes read are the file's whole content, written no later than that fstat
 * says: a write during the read changes its size, mtime or ctime); a larger one is checked
 * before it is read whole and again after (two fstats). The identity returned is the one
 * fstat after the read gave.
 * @throws Error from the file system other than the entry's vanishing or being refused
 */
export function readTaskFileEntry(
  full: string,
  o: ReadEntryOptions = {},
): { kind: 'file'; content: Buffer; identity: string } | { kind: 'refused'; reason: string } | { kind: 'unsettled' } | { kind: 'gone' } {
  const check = (st: fs.BigIntStats) => {
    if (!st.isFile()) return notRegular(entryKind(st));
    if (st.nlink > 1n) return refuse('has other hard links; only files of the inbox\'s own are taken in (copy it instead of linking it)');
    if (st.size > MAX_TASK_FILE_BYTES) return refuse(`is ${st.size} bytes; a task file is at most ${MAX_TASK_FILE_BYTES} bytes (1 MiB)`);
    return null;
  };
  let fd: number;
  try {
    const first = o.listedRegular ? null : check(fs.lstatSync(full, { bigint: true }));
    if (first) return first;
    fd = fs.openSync(full, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'gone' };
    if (code === 'ELOOP') return notRegular('a symbolic link'); // swapped in after the listing
    if (code === 'EACCES' || code === 'EPERM') return refuse('cannot be read: permission denied');
    throw err;
  }
  try {
    const buffer = (firstRead ??= Buffer.allocUnsafe(FIRST_READ_BYTES));
    let head = -1;
    let readError: unknown = null;
    try {
      head = fs.readSync(fd, buffer, 0, FIRST_READ_BYTES, 0);
    } catch (err) {
      readError = err; // not a regular file after all (a directory or a FIFO swapped in after the listing)? The fstat says.
    }
    const stat = fs.fstatSync(fd, { bigint: true });
    // Unlinked meanwhile (taken in by another dispatcher): the unlink changed its ctime, so the
    // identity read now would not be the one that dispatcher recorded.
    if (stat.nlink === 0n) return { kind: 'gone' };
    const refused = check(stat);
    if (refused) return refused;
    if (readError) throw readError;
    const identity = fileIdentity(stat);
    if (Number(stat.mtimeMs) > (o.settledBefore ?? Infinity) && !o.complete?.(identity)) return { kind: 'unsettled' };
    const size = Number(stat.size);
    if (head < FIRST_READ_BYTES) {
      // The whole file in one read, unless it changed size since (or the read came back short): read next time.
      if (head !== size) return { kind: 'unsettled' };
      const content = Buffer.allocUnsafe(size);
      buffer.copy(content, 0, 0, size);
      return { kind: 'file', content, identity };
    }
    // A larger file: the rest read up to the size fstat gave (the check below sees a file that grew or shrank).
    const content = Buffer.allocUnsafe(size);
    let got = buffer.copy(content, 0, 0, Math.min(head, size));
    for (let n = -1; got < size && n !== 0; got += n) n = fs.readSync(fd, content, got, size - got, got);
    const after = fs.fstatSync(fd, { bigint: true });
    if (after.nlink === 0n) return { kind: 'gone' };
    if (after.size !== stat.size || after.mtimeNs !== stat.mtimeNs || got !== size) return { kind: 'unsettled' };
    return { kind: 'file', content, identity: fileIdentity(after) };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Removes an inbox file if it is still the instance that was read (`identity`), or the same
 * file (inode) holding the same bytes (`key`'s content hash, {@link intakeKey}): only its
 * metadata changed since (times or mode set just after its writer closed it, e.g. `touch`),
 * which does not make it a new submission. A file whose content changed stays, for the next scan.
 */
function removeIfUnchanged(full: string, identity: string, key: string): void {
  try {
    const now = fs.lstatSync(full, { bigint: true });
    const same =
      fileIdentity(now) === identity ||
      (now.isFile() && identity.startsWith(`${now.ino}-`) && key.startsWith(`${contentHash(fs.readFileSync(full))}:`));
    if (same) fs.unlinkSync(full);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** Finds the dependency cycles among a batch's internal edges; returns the cycle per member. */
function findCycles(edges: Map<string, string[]>): Map<string, string[]> {
  const inCycle = new Map<string, string[]>();
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string) => {
    if (state.get(n) === 'done') return;
    if (state.get(n) === 'visiting') {
      const cycle = [...stack.slice(stack.indexOf(n)), n];
      for (const m of cycle) if (!inCycle.has(m)) inCycle.set(m, cycle);
      return;
    }
    state.set(n, 'visiting');
    stack.push(n);
    for (const d of edges.get(n) ?? []) visit(d);
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of edges.keys()) visit(n);
  return inCycle;
}

/** `parseTaskFile` (config/task-file.ts), once loaded. */
let parseTaskFile: (typeof import('../config/task-file.ts'))['parseTaskFile'] | undefined;

/**
 * Takes in every settled `*.md` file of the inbox (hidden files and other names are left
 * alone). Bad files become `invalid` tasks; one never stops the others. Entries that are not
 * regular files of the inbox's own are refused and left in place (`refused`). `now`: epoch
 * ms; `complete(file, identity)`: whether that inbox file instance is known complete (the
 * inbox watch's {@link InboxWatch.complete}), read then without waiting `inbox_settle`.
 */
export async function takeInInbox(
  paths: ProjectPaths,
  store: Store,
  config: Config,
  now = Date.now(),
  complete?: (file: string, identity: string) => boolean,
): Promise<IntakeResult> {
  const listing = listInbox(paths.inbox);
  if (listing === null) return { created: [], unsettled: [], deferred: [], refused: [] };
  const { names, regular, refused } = listing;

  // Keys recorded whose file is not marked removed. Those whose file is gone: the crash fell
  // after the unlink; close them (with the others, in one call at the end).
  const pending = new Set(await store.listPendingIntake());
  const listed = new Set(names);
  const removed = [...pending].filter((key) => !listed.has(intakeFileName(key)));

  const unsettled: string[] = [];
  let candidates: Candidate[] = [];
  for (const file of names) {
    const full = path.join(paths.inbox, file);
    const entry = readTaskFileEntry(full, {
      settledBefore: now - config.inbox_settle,
      complete: complete && ((identity) => complete(file, identity)),
      listedRegular: regular.has(file),
    });
    if (entry.kind === 'gone') continue;
    if (entry.kind === 'unsettled') {
      unsettled.push(file);
      continue;
    }
    if (entry.kind === 'refused') {
      refused.push({ file, reason: entry.reason });
      continue;
    }
    const key = intakeKey(file, entry.content, entry.identity);
    if (pending.has(key)) {
      // This very file was recorded (by a dispatcher that crashed before removing it, or by
      // another one taking it in now): finish the move, never take it in twice. (A key
      // recorded since the listing is found by `enqueue`, which creates nothing for it.)
      removeIfUnchanged(full, entry.identity, key);
      removed.push(key);
      continue;
    }
    const name = file.slice(0, -3);
    const c: Candidate = {
      file,
      full,
      key,
      identity: entry.identity,
      name,
      spec: null,
      invalid: null,
      duplicate: null,
      depIds: [],
      depBatchNames: [],
      parentId: null,
      parentBatchName: null,
      parentOrigin: null,
    };
    let text: string | null = null;
    // The task-file schema (zod, yaml: ~12 MiB) is loaded by the first file taken in, not by an idle dispatcher.
    parseTaskFile ??= (await import('../config/task-file.ts')).parseTaskFile;
    try {
      text = decodeTaskFile(entry.content);
      c.spec = parseTaskFile(name, text, config, 'inbox');
    } catch (err) {
      if (!(err instanceof InvalidTaskError)) throw err;
      c.invalid = err.message;
      // Recorded `invalid`, with the file's text as its body (every byte kept, as latin1, if it is not text).
      c.spec = baseSpec(name, text ?? entry.content.toString('latin1'));
    }
    candidates.push(c);
  }

  const deferred = config.max_queue_depth === undefined ? [] : await deferPastQueueDepth(candidates, store, config.max_queue_depth);
  if (deferred.length) candidates = candidates.filter((c) => !deferred.includes(c));

  // Resolve depends_on: first within this batch, then the newest stored task of that name.
  const byName = new Map(candidates.map((c) => [c.name, c]));
  for (const c of candidates) {
    if (c.invalid || !c.spec) continue;
    for (const dep of c.spec.dependsOn) {
      if (byName.has(dep)) {
        c.depBatchNames.push(dep);
        continue;
      }
      const existing = await store.findByName(dep);
      if (existing) c.depIds.push(existing.id);
      else {
        c.invalid = unknownDependencyReason(dep);
        break;
      }
    }
  }
  for (const c of candidates) {
    const parent = c.spec?.parent;
    if (c.invalid || !parent) continue;
    if (byName.has(parent)) c.parentBatchName = parent;
    else {
      const existing = await store.findByName(parent);
      if (existing) {
        c.parentId = existing.id;
        c.parentOrigin = existing.origin;
      } else c.invalid = unknownParentReason(parent);
    }
  }
  const cycles = findCycles(new Map(candidates.filter((c) => !c.invalid).map((c) => [c.name, c.depBatchNames])));
  for (const [name, cycle] of cycles) {
    const c = byName.get(name);
    if (c) c.invalid = `depends_on: dependency cycle ${cycle.join(' → ')}`;
  }

  // dedup_key: a second task with the key of a queued or running one is not created.
  const keysInBatch = new Map<string, string>();
  for (const c of candidates) {
    const key = c.spec?.dedupKey;
    if (c.invalid || !key) continue;
    const active = await store.findActiveByDedupKey(key);
    const first = active ? activeHolder(active) : keysInBatch.has(key) ? `task "${keysInBatch.get(key)}" taken in with it comes first` : null;
    if (first) c.duplicate = duplicateReason(key, first);
    else keysInBatch.set(key, c.name);
  }

  // Order the batch so that every in-batch dependency is created before its dependents.
  const ordered: Candidate[] = [];
  const placed = new Set<string>();
  const place = (c: Candidate) => {
    if (placed.has(c.name)) return;
    placed.add(c.name);
    if (!c.invalid) for (const d of [...c.depBatchNames, ...(c.parentBatchName ? [c.parentBatchName] : [])]) place(byName.get(d)!);
    ordered.push(c);
  };
  candidates.forEach(place);
  const index = new Map(ordered.map((c, i) => [c.name, i]));
  // Where each task's result file goes: this checkout, but a subtask's beside its parent's
  // (see subtaskOrigin); an in-batch parent comes first in `ordered`, its origin known.
  const here = projectOrigin(paths);
  const origins: TaskOrigin[] = [];
  for (const c of ordered) {
    const parentBatch = c.invalid || !c.parentBatchName ? undefined : index.get(c.parentBatchName);
    const parentOrigin = parentBatch === undefined ? (c.invalid ? null : c.parentOrigin) : (origins[parentBatch] ?? null);
    origins.push(subtaskOrigin(parentOrigin, here));
  }
  const batch: NewTask[] = ordered.map((c, i) => ({
    spec: c.spec!,
    dependsOnIds: c.invalid ? [] : c.depIds,
    dependsOnBatch: c.invalid ? [] : c.depBatchNames.map((n) => index.get(n)!),
    parentId: c.invalid ? null : c.parentId,
    parentBatch: c.invalid || !c.parentBatchName ? null : (index.get(c.parentBatchName) ?? null),
    ...(c.invalid ? { invalidReason: c.invalid } : c.duplicate ? { invalidReason: c.duplicate, terminalState: 'duplicate' as const } : {}),
    intakeKey: c.key,
    origin: origins[i] ?? here,
  }));
  const created = batch.length ? await store.enqueue(batch, now) : [];

  for (const c of ordered) {
    // A file whose content changed since it was read is a new submission for the next scan (its key differs).
    removeIfUnchanged(c.full, c.identity, c.key);
    removed.push(c.key);
  }
  await store.markIntakeRemoved(removed);
  return { created, unsettled, deferred: deferred.map((c) => c.file), refused };
}

/**
 * Backpressure: with `max_queue_depth` set, takes in only as many valid tasks as fit beside
 * the queued and running ones (a task whose in-batch dependency does not fit waits with
 * it); the rest stay in the inbox until there is room. Invalid files are always taken in.
 */
async function deferPastQueueDepth(candidates: Candidate[], store: Store, maxDepth: number): Promise<Candidate[]> {
  const counts = await store.countByState();
  let room = maxDepth - counts.queued - counts.running;
  const valid = candidates.filter((c) => !c.invalid);
  if (valid.length <= room) return [];
  const names = new Set(valid.map((c) => c.name));
  const taken = new Set<string>();
  for (let progress = true; progress && room > 0; ) {
    progress = false;
    for (const c of valid) {
      if (room <= 0 || taken.has(c.name)) continue;
      if (c.spec!.dependsOn.every((d) => !names.has(d) || taken.has(d))) {
        taken.add(c.name);
        room--;
        progress = true;
      }
    }
  }
  return valid.filter((c) => !taken.has(c.name));
}
