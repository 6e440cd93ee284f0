/**
 * Inbox intake: `.agent-queue/inbox/NAME.md` → a task in the store, then the file leaves
 * the inbox. Crash-safe in both orders: the intake key (sha256 of the content + file name)
 * is recorded in the same transaction as the task, the file is removed after, and a file
 * whose key is recorded but not marked removed is a leftover of a crash (removed, not taken
 * in twice). A file is read only once it has been unchanged for `inbox_settle` ms.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Config, ProjectPaths } from '../config/config.ts';
import { baseSpec, parseTaskFile } from '../config/task-file.ts';
import { InvalidTaskError } from '../core/errors.ts';
import type { Task, TaskSpec } from '../core/types.ts';
import type { NewTask, Store } from '../store/store.ts';

export interface IntakeResult {
  /** Tasks created (queued or invalid), in intake order. */
  created: Task[];
  /** Inbox files not read yet because they are still changing. */
  unsettled: string[];
  /** Inbox files left in the inbox because the queue is full (`max_queue_depth`). */
  deferred: string[];
}

interface Candidate {
  file: string;
  key: string;
  size: number;
  mtimeMs: number;
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

/** How {@link duplicateReason} names a stored task that holds the key. */
export function activeHolder(task: Task): string {
  return `task ${task.id} "${task.name}" is already ${task.state}`;
}

/** Intake key: content hash first (fixed length), then the file name. */
export function intakeKey(fileName: string, content: string | Buffer): string {
  return `${crypto.createHash('sha256').update(content).digest('hex')}:${fileName}`;
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

/**
 * Takes in every settled `*.md` file of the inbox (hidden files and other names are left
 * alone). Bad files become `invalid` tasks; one never stops the others.
 */
export async function takeInInbox(paths: ProjectPaths, store: Store, config: Config, now = Date.now()): Promise<IntakeResult> {
  let names: string[];
  try {
    names = fs.readdirSync(paths.inbox).filter((f) => f.endsWith('.md') && !f.startsWith('.')).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { created: [], unsettled: [], deferred: [] };
    throw err;
  }

  // Keys recorded whose file is gone: the crash fell after the unlink; close them.
  for (const key of await store.listPendingIntake()) {
    if (!names.includes(key.slice(65))) await store.markIntakeRemoved(key);
  }

  const unsettled: string[] = [];
  let candidates: Candidate[] = [];
  for (const file of names) {
    const full = path.join(paths.inbox, file);
    let stat: fs.Stats;
    let content: Buffer;
    try {
      stat = fs.statSync(full);
      if (!stat.isFile()) continue;
      if (now - stat.mtimeMs < config.inbox_settle) {
        unsettled.push(file);
        continue;
      }
      content = fs.readFileSync(full);
      const after = fs.statSync(full);
      if (after.size !== stat.size || after.mtimeMs !== stat.mtimeMs || content.length !== stat.size) {
        unsettled.push(file);
        continue;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    const key = intakeKey(file, content);
    const known = await store.getIntake(key);
    if (known && !known.fileRemoved) {
      // Recorded before a crash, not yet removed: finish the move, do not take it in twice.
      fs.rmSync(full, { force: true });
      await store.markIntakeRemoved(key);
      continue;
    }
    const name = file.slice(0, -3);
    const text = content.toString('utf8');
    const c: Candidate = {
      file,
      key,
      size: stat.size,
      mtimeMs: stat.mtimeMs,
      name,
      spec: null,
      invalid: null,
      duplicate: null,
      depIds: [],
      depBatchNames: [],
      parentId: null,
      parentBatchName: null,
    };
    try {
      c.spec = parseTaskFile(name, text, config, 'inbox');
    } catch (err) {
      if (!(err instanceof InvalidTaskError)) throw err;
      c.invalid = err.message;
      c.spec = baseSpec(name, text); // recorded `invalid`, with the file's text as its body
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
      if (existing) c.parentId = existing.id;
      else c.invalid = unknownParentReason(parent);
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
  const batch: NewTask[] = ordered.map((c) => ({
    spec: c.spec!,
    dependsOnIds: c.invalid ? [] : c.depIds,
    dependsOnBatch: c.invalid ? [] : c.depBatchNames.map((n) => index.get(n)!),
    parentId: c.invalid ? null : c.parentId,
    parentBatch: c.invalid || !c.parentBatchName ? null : (index.get(c.parentBatchName) ?? null),
    ...(c.invalid ? { invalidReason: c.invalid } : c.duplicate ? { invalidReason: c.duplicate, terminalState: 'duplicate' as const } : {}),
    intakeKey: c.key,
  }));
  const created = batch.length ? await store.enqueue(batch, now) : [];

  for (const c of ordered) {
    const full = path.join(paths.inbox, c.file);
    try {
      const stat = fs.statSync(full);
      // Changed since it was read: leave it; it is a new submission for the next scan.
      if (stat.size !== c.size || stat.mtimeMs !== c.mtimeMs) continue;
      fs.rmSync(full);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await store.markIntakeRemoved(c.key);
  }
  return { created, unsettled, deferred: deferred.map((c) => c.file) };
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
