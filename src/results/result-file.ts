/**
 * The durable outcome files: `done/NAME.md` for completed tasks, `failed/NAME.md` for every
 * other end. Written atomically (temp file, fsync, then a hard link that fails instead of
 * overwriting, then an fsync of the folder), never over an existing file: a name taken by another task becomes
 * `NAME.<task id>.md` (then `NAME.<task id>.N.md`, e.g. for a retried task's new outcome).
 * Writing the same content again is a no-op, so a crash between the write and the store
 * update is repaired by writing again.
 */
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ProjectPaths } from '../config/project.ts';
import { TASK_LIMITS } from '../config/task-text.ts';
import type { Delegation } from '../core/delegation.ts';
import { A2A_AGENT, type Task, type Verification } from '../core/types.ts';
import type { Store } from '../store/store.ts';
import { syncPath } from './group-sync.ts';

/**
 * The part of a task's result file and log folder names that comes from its name: the name,
 * cut to `TASK_LIMITS.nameChars` (100; names are limited at intake, older tasks may have longer ones), so
 * that `.NAME.PID.MS.tmp` and `NAME.ID.N.md` always fit in a file name (255 bytes).
 */
export function fileStem(task: Pick<Task, 'name'>): string {
  return task.name.slice(0, TASK_LIMITS.nameChars);
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/**
 * The `verifications` field of a result file: every verify command run, by attempt, each with
 * its command, exit code (null: killed), duration (ms) and the path of its output log (on
 * the host that ran it); null when none ran.
 */
export function verificationFields(verifications: readonly Verification[]): Array<Record<string, unknown>> | null {
  if (verifications.length === 0) return null;
  return verifications.map((v) => ({
    attempt: v.attemptNumber,
    command: v.command,
    exit_code: v.exitCode,
    ...(v.timedOut ? { timed_out: true } : {}),
    duration_ms: v.durationMs,
    output: v.outputPath,
  }));
}

/** What a result file shows besides the task's own fields ({@link resultExtras} loads it from the store). */
export interface ResultExtras {
  /** The task's latest delegation when it was delegated (`a2a`, `a2a:NAME`); absent or null: none. */
  delegation?: Pick<Delegation, 'remote' | 'remoteTaskId'> | null;
  /** The task's verify runs (`Store.listVerifications`), listed as `verifications`; absent or empty: none. */
  verifications?: readonly Verification[];
}

/**
 * The frontmatter fields of a result file, in order. Null fields are left out. A delegated
 * task (`extras.delegation`, when it ran on `a2a` or `a2a:NAME`) shows `agent: a2a`, its
 * `remote` (as the task named it) and the `remote_task_id`; `extras.verifications` are
 * listed as `verifications` ({@link verificationFields}).
 */
export function resultFields(task: Task, extras: ResultExtras = {}): Record<string, unknown> {
  const delegation = extras.delegation ?? null;
  const fields: Record<string, unknown> = {
    status: task.state,
    task_id: task.id,
    title: task.title,
    priority: task.priority,
    failed_reason: task.state === 'completed' ? null : task.failedReason,
    agent: delegation ? A2A_AGENT : (task.runAgent ?? task.agent),
    remote: delegation?.remote ?? null,
    remote_task_id: delegation?.remoteTaskId ?? null,
    model: task.stats.model ?? task.model,
    session_id: task.stats.sessionId,
    cost_usd: task.stats.costUsd,
    input_tokens: task.stats.inputTokens,
    output_tokens: task.stats.outputTokens,
    num_turns: task.stats.numTurns,
    duration_ms: task.durationMs,
    attempts: task.claims,
    started_at: iso(task.startedAt),
    finished_at: iso(task.finishedAt),
    ran_on: task.ranOn,
    branch: task.branch,
    commits: task.commits.length ? task.commits.map((c) => `${c.hash.slice(0, 12)} ${c.subject}`) : null,
    pushed_to: task.pushedTo,
    push_error: task.pushError,
    verifications: verificationFields(extras.verifications ?? []),
    depends_on: task.dependsOn.length ? task.dependsOn : null,
    parent: task.parent,
    tags: task.tags.length ? task.tags : null,
    ...task.extra,
  };
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== null && v !== undefined));
}

const loadYaml = async () => (await import('yaml')).default;
/** The YAML library, loaded by the first {@link renderResultFile} (a dispatcher loads it once a task ends). */
let yaml: Awaited<ReturnType<typeof loadYaml>> | null = null;

/**
 * The whole file: YAML frontmatter, then the result text (done) or the original prompt. The
 * YAML library is loaded by the first call (a dispatcher loads it once a task ends).
 */
export async function renderResultFile(task: Task, extras: ResultExtras = {}): Promise<string> {
  const YAML = (yaml ??= await loadYaml());
  const body = task.state === 'completed' ? (task.result ?? '') : task.prompt;
  return `---\n${YAML.stringify(resultFields(task, extras))}---\n\n${body.trimEnd()}\n`;
}

function sameContent(file: string, content: string): boolean {
  try {
    return fs.readFileSync(file, 'utf8') === content;
  } catch {
    return false;
  }
}

/** open(2) on the thread pool (see {@link writeResultFile}). */
const openOnPool = promisify(fs.open);

/**
 * Writes the result file of a terminal task and resolves with its path, durable: the temp
 * file's content is fsynced before it is linked (a file under its name is never torn), and
 * the folder after (the name itself survives a crash). Idempotent per task.
 * @param extras its delegation and verify runs (see {@link resultFields}, {@link resultExtras})
 * @param sync makes the temp file (its descriptor) and then the folder (its path) durable (fsync); default {@link syncPath} at once, the reporter's
 *   a {@link GroupSync} so the files of tasks ending together share their fsyncs
 * @throws Error from the file system (ENOSPC, EACCES, EIO…) — the caller retries later; the
 *   temp file is removed in every case
 */
export async function writeResultFile(
  paths: ProjectPaths,
  task: Task,
  extras: ResultExtras = {},
  sync: (target: string | number) => Promise<void> = syncPath,
): Promise<string> {
  const dir = task.state === 'completed' ? paths.done : paths.failed;
  const stem = fileStem(task);
  const tmp = path.join(dir, `.${stem}.${process.pid}.${tempStamp()}.tmp`);
  const content = await renderResultFile(task, extras);
  // The temp file is created on the thread pool, off the event loop: creating a file can cost
  // more than the rest of a task's end (ext4 without a journal skips every inode freed in the
  // last minute, one by one: 0.1–0.5 ms of kernel time a file under churn). The write, close,
  // link and unlink of a few hundred bytes cost less than a round trip to the pool each.
  let fd: number;
  try {
    fd = await openOnPool(tmp, 'wx');
  } catch (err) {
    // The folder is made once, when the first file finds it missing.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    fs.mkdirSync(dir, { recursive: true });
    fd = await openOnPool(tmp, 'wx');
  }
  // The temp file goes in every case, also when the write fails (a full disk: tried again next tick).
  try {
    try {
      fs.writeFileSync(fd, content);
      await sync(fd);
    } finally {
      fs.closeSync(fd);
    }
    const target = linkNew(dir, stem, task.id, tmp, content);
    await sync(dir);
    return target;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

let lastStamp = 0;

/**
 * The `MS` of a temp file's name: the time in ms, made unique in this process (the next ms when
 * taken), since temp files of tasks with the same name may exist at once while they are synced.
 */
function tempStamp(): number {
  lastStamp = Math.max(Date.now(), lastStamp + 1);
  return lastStamp;
}

/**
 * Links `tmp` under the first free name of `NAME.md`, `NAME.<id>.md`, `NAME.<id>.N.md`
 * (N counting up), or returns the name that already holds the same content. Never overwrites.
 */
function linkNew(dir: string, stem: string, id: number, tmp: string, content: string): string {
  const candidates = [`${stem}.md`, `${stem}.${id}.md`];
  for (let n = 2; ; n++) {
    const target = path.join(dir, candidates.shift() ?? `${stem}.${id}.${n}.md`);
    try {
      fs.linkSync(tmp, target);
      return target;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (sameContent(target, content)) return target;
    }
  }
}

/**
 * Removes temp files that a killed writer left in `done/` and `failed/` (a crash between
 * the hard link and the unlink). Only files of processes that are gone are touched.
 */
export function removeStaleTempFiles(paths: ProjectPaths, isAlive: (pid: number) => boolean): string[] {
  const removed: string[] = [];
  for (const dir of [paths.done, paths.failed]) {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      const m = /^\..*\.(\d+)\.\d+\.tmp$/.exec(name);
      if (!m || isAlive(Number(m[1]))) continue;
      fs.rmSync(path.join(dir, name), { force: true });
      removed.push(path.join(dir, name));
    }
  }
  return removed;
}

/** The latest delegation of a task that ran on `a2a` (or `a2a:NAME`), for its result file; null for other tasks. */
async function resultDelegation(store: Pick<Store, 'listDelegations'>, task: Task): Promise<Delegation | null> {
  const agent = task.runAgent ?? task.agent;
  if (agent !== A2A_AGENT && !agent.startsWith(`${A2A_AGENT}:`)) return null;
  return (await store.listDelegations({ taskId: task.id, limit: 1 }))[0] ?? null;
}

/** What a task's result file shows besides the task ({@link ResultExtras}): its latest delegation ({@link resultDelegation}) and its verify runs. */
export async function resultExtras(store: Pick<Store, 'listDelegations' | 'listVerifications'>, task: Task): Promise<ResultExtras> {
  return { delegation: await resultDelegation(store, task), verifications: await store.listVerifications(task.id) };
}
