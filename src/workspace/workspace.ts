/**
 * Workspaces (issue #4): where an attempt's agent runs.
 *
 * - `inplace`: the project directory itself.
 * - `worktree`: a `git worktree` of its own under `.agent-queue/worktrees/<taskId>-<name>`
 *   on the branch `agentq/<name>`, started from the project's HEAD, so agents running in
 *   parallel never edit the same checkout. When the attempt ends, whatever the agent left
 *   uncommitted is committed, the worktree is removed and the branch stays (or, with
 *   `merge: auto`, is merged into the branch checked out in the project directory; with
 *   `workspace_push`, the dispatcher pushes it instead: see push.ts).
 *
 * Branch ownership is recorded in the repository's config (`branch.<b>.agentq-task`,
 * `agentq-project`, `agentq-base`), so a retry of a task finds its branch (and earlier
 * commits) again, and a task never takes over a branch that belongs to another.
 *
 * Every git operation that changes the repository runs under a per-repository lock (see
 * withRepoLock), so parallel attempts and several dispatcher processes take turns.
 */
import { realpathSync } from 'node:fs';
import { appendFile, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { AgentQueueError } from '../core/errors.ts';
import { git, gitMessage, gitOut, withRepoLock } from './git.ts';
import { copyIncluded, unstageIncluded } from './setup.ts';

export type WorkspaceMode = 'inplace' | 'worktree';
export type MergeMode = 'manual' | 'auto';

/** Prefix of every branch agentq creates. */
export const BRANCH_PREFIX = 'agentq/';

/** The workspace of one attempt, as openWorkspace made it. */
export interface Workspace {
  mode: WorkspaceMode;
  /** Directory the agent runs in: the project directory (inplace), or the same directory inside the worktree. */
  cwd: string;
  /** Branch of a worktree workspace (`agentq/<name>` or `agentq/<name>-<taskId>`); null inplace. */
  branch: string | null;
  /** Top directory of the worktree; null inplace. Equals `cwd` unless the project is a subdirectory of its repository. */
  worktree: string | null;
  /** Commit the branch started from (full hash); null inplace. */
  base: string | null;
  /** True when the worktree of an interrupted earlier attempt of this task was found and reused as it was (uncommitted edits included). */
  reused: boolean;
}

/** One commit: full hash and subject line. */
export interface WorkspaceCommit {
  hash: string;
  subject: string;
}

/** What closeWorkspace did. */
export interface WorkspaceResult {
  /** The task's branch (kept); null inplace. */
  branch: string | null;
  /** Commit the branch started from; null inplace. */
  base: string | null;
  /** Commits on the branch since `base`, oldest first (the agent's own and agentq's). */
  commits: WorkspaceCommit[];
  /** `merge: auto` only: how the branch went into the project's checked-out branch; null when not merged (manual, no commits, or already contained). */
  merged: 'fast-forward' | 'merge' | null;
}

/**
 * An auto merge that did not happen. `code` is `merge_conflict` (the merge was tried and
 * aborted; `files` lists the conflicting paths) or `merge_blocked` (not tried: detached
 * HEAD, uncommitted changes in the project checkout, untracked files in the way …).
 * Either way the branch is kept, the worktree is already removed, and `result` holds the
 * branch and commits (with `merged: null`) for the failed file.
 */
export class MergeError extends AgentQueueError {
  readonly result: WorkspaceResult;
  readonly files: string[];
  constructor(code: 'merge_conflict' | 'merge_blocked', message: string, result: WorkspaceResult, files: string[] = []) {
    super(code, message);
    this.result = result;
    this.files = files;
  }
}

/** What pruneWorktrees did. */
export interface PruneResult {
  /** Directories under `.agent-queue/worktrees/` that git did not know (any more), deleted. */
  removed: string[];
  /** Worktrees of tasks `keepTask` refused: leftovers committed, worktree removed, branch kept. */
  closed: Array<{ taskId: number; branch: string; commits: WorkspaceCommit[] }>;
  /** Worktrees that should have been closed but were left in place, with the reason. */
  kept: Array<{ dir: string; reason: string }>;
}

// ---------------------------------------------------------------------------------------
// Repository facts

interface RepoInfo {
  /** The project directory, real path. */
  projectRoot: string;
  /** Top of the work tree that contains the project directory. */
  top: string;
  /** Project directory relative to `top`, `''` or ending in `/`. */
  prefix: string;
  /** Real path of the repository's common git dir (shared by all its worktrees). */
  commonDir: string;
}

function realpathOr(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

function samePath(a: string, b: string): boolean {
  return realpathOr(a) === realpathOr(b);
}

/** Facts about the git work tree holding `projectRoot`, or null if it is not in one. */
async function findRepo(projectRoot: string): Promise<RepoInfo | null> {
  const root = realpathOr(projectRoot);
  const inside = await git(root, ['rev-parse', '--is-inside-work-tree'], { allowFail: true });
  if (inside.code !== 0 || inside.stdout.trim() !== 'true') return null;
  const [top = '', prefix = '', common = ''] = (await gitOut(root, ['rev-parse', '--show-toplevel', '--show-prefix', '--git-common-dir'])).split('\n');
  return { projectRoot: root, top: realpathOr(top), prefix, commonDir: realpathOr(path.resolve(root, common)) };
}

async function requireRepo(projectRoot: string): Promise<RepoInfo> {
  const repo = await findRepo(projectRoot);
  if (!repo) {
    throw new AgentQueueError('workspace', `workspace: worktree needs a git repository, and ${projectRoot} is not in one (use workspace: inplace, or run "git init" and commit)`);
  }
  return repo;
}

async function headCommit(cwd: string): Promise<string | null> {
  const r = await git(cwd, ['rev-parse', '--verify', '-q', 'HEAD^{commit}'], { allowFail: true });
  return r.code === 0 ? r.stdout.trim() : null;
}

async function refExists(cwd: string, ref: string): Promise<boolean> {
  return (await git(cwd, ['rev-parse', '--verify', '-q', `${ref}^{commit}`], { allowFail: true })).code === 0;
}

async function getConfig(cwd: string, key: string): Promise<string | null> {
  const r = await git(cwd, ['config', '--get', key], { allowFail: true });
  return r.code === 0 ? r.stdout.trim() : null;
}

interface WorktreeEntry {
  path: string;
  /** `refs/heads/…`, or null when detached / bare. */
  branch: string | null;
}

async function listWorktrees(cwd: string): Promise<WorktreeEntry[]> {
  const out = await gitOut(cwd, ['worktree', 'list', '--porcelain']);
  const entries: WorktreeEntry[] = [];
  for (const block of out.split(/\n\n+/)) {
    let p: string | null = null;
    let branch: string | null = null;
    for (const line of block.split('\n')) {
      if (line.startsWith('worktree ')) p = line.slice('worktree '.length);
      else if (line.startsWith('branch ')) branch = line.slice('branch '.length);
    }
    if (p !== null) entries.push({ path: p, branch });
  }
  return entries;
}

/** Paths in `git status`/`git diff -z` style NUL-separated output. */
function splitZ(out: string): string[] {
  return out.split('\0').filter(Boolean);
}

// ---------------------------------------------------------------------------------------
// Names and places

/**
 * The branch-safe form of a task name: characters other than letters, digits, `.`, `_`,
 * `-` become `-`; runs of dots become one; no leading `.`/`-`, no trailing `.`, no
 * `.lock` ending; at most 80 characters; `task` if nothing is left.
 * `agentq/<branchSlug(name)>` is always a valid branch name.
 */
export function branchSlug(name: string): string {
  let s = name
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/\.{2,}/g, '.')
    .replace(/^[.-]+/, '')
    .slice(0, 80)
    .replace(/\.+$/, '');
  if (/\.lock$/i.test(s)) s = `${s.slice(0, -5)}-lock`;
  return s || 'task';
}

/** The directory holding a project's task worktrees: `<projectRoot>/.agent-queue/worktrees`. */
export function worktreesDir(projectRoot: string): string {
  return path.join(realpathOr(projectRoot), '.agent-queue', 'worktrees');
}

function worktreePath(projectRoot: string, taskId: number, taskName: string): string {
  return path.join(worktreesDir(projectRoot), `${taskId}-${branchSlug(taskName)}`);
}

/** `<taskId>-…` → taskId, else null. */
function taskIdOfDir(dir: string): number | null {
  const m = /^(\d+)-/.exec(path.basename(dir));
  return m ? Number(m[1]) : null;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim() || 'task';
}

/** Adds `/<prefix>.agent-queue/` to the repository's `info/exclude` (once). */
async function ensureExcluded(repo: RepoInfo): Promise<void> {
  const file = path.join(repo.commonDir, 'info', 'exclude');
  const escaped = repo.prefix.replace(/([\\*?[\]!# ])/g, '\\$1');
  const line = `/${escaped}.agent-queue/`;
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text.split(/\r?\n/).some((l) => l.trim() === line)) return;
  await mkdir(path.dirname(file), { recursive: true });
  const sep = text && !text.endsWith('\n') ? '\n' : '';
  await appendFile(file, `${sep}# agent-queue: its state and task worktrees are never committed\n${line}\n`);
}

// ---------------------------------------------------------------------------------------
// Public API

/**
 * Default workspace mode of a project: `'worktree'` when `projectRoot` is inside a git
 * work tree whose HEAD has a commit (and, for a project in a subdirectory, that directory
 * is in the commit); otherwise `'inplace'` (also when git is not installed). Never throws
 * for a missing repository.
 */
export async function defaultWorkspaceMode(projectRoot: string): Promise<WorkspaceMode> {
  let repo: RepoInfo | null;
  try {
    repo = await findRepo(projectRoot);
  } catch {
    return 'inplace'; // git missing or unusable
  }
  if (!repo || !(await headCommit(repo.projectRoot))) return 'inplace';
  if (repo.prefix) {
    const r = await git(repo.projectRoot, ['cat-file', '-e', `HEAD:${repo.prefix}`], { allowFail: true });
    if (r.code !== 0) return 'inplace'; // the project directory is not in the commit (untracked or ignored)
  }
  return 'worktree';
}

/**
 * Creates the workspace of one attempt.
 *
 * - `inplace`: `{ cwd: projectRoot, branch: null }`; when the project is in a git
 *   repository, `.agent-queue/` is added to its `info/exclude` (best effort).
 * - `worktree`: a `git worktree` at `<projectRoot>/.agent-queue/worktrees/<taskId>-<name>`
 *   on the branch `agentq/<name>` started from the project's current HEAD. When that branch
 *   exists and belongs to another task (or to no agentq task), `agentq/<name>-<taskId>` is
 *   used (then `-2`, `-3` … should that be taken too). A retry of the same task (same
 *   `taskId`, same project) finds its own branch again and continues from its tip, earlier
 *   commits kept; if the previous attempt's worktree is still there (a crash), it is reused
 *   as it is, uncommitted edits included (`reused: true`). A new worktree gets a copy of the
 *   git-ignored files of the checkout that `.worktreeinclude` names (see `copyIncluded` in
 *   setup.ts). `.agent-queue/` is added to the repository's `info/exclude` so neither
 *   agents nor agentq commit it. When the project is
 *   a subdirectory of its repository, `cwd` is that subdirectory inside the worktree.
 *
 * Throws AgentQueueError('workspace', reason) when the project is not in a git repository,
 * the repository has no commit, the branch is checked out elsewhere, or git fails (its
 * message included).
 */
export async function openWorkspace(opts: { projectRoot: string; taskId: number; taskName: string; mode: WorkspaceMode }): Promise<Workspace> {
  const projectRoot = realpathOr(opts.projectRoot);
  if (opts.mode === 'inplace') {
    try {
      const repo = await findRepo(projectRoot);
      if (repo) await withRepoLock(repo.commonDir, () => ensureExcluded(repo));
    } catch {
      // best effort: inplace works without git
    }
    return { mode: 'inplace', cwd: projectRoot, branch: null, worktree: null, base: null, reused: false };
  }
  const repo = await requireRepo(projectRoot);
  return withRepoLock(repo.commonDir, async () => {
    const head = await headCommit(repo.projectRoot);
    if (!head) {
      throw new AgentQueueError('workspace', `workspace: worktree needs a commit to start from, and the git repository at ${repo.top} has none yet (commit once, or use workspace: inplace)`);
    }
    await ensureExcluded(repo);
    await git(repo.top, ['worktree', 'prune']);
    const dir = worktreePath(projectRoot, opts.taskId, opts.taskName);
    const { branch, exists } = await chooseBranch(repo, opts.taskId, opts.taskName);
    const ref = `refs/heads/${branch}`;
    const worktrees = await listWorktrees(repo.top);
    const cwdOf = async (top: string): Promise<string> => {
      const cwd = path.resolve(top, repo.prefix);
      await mkdir(cwd, { recursive: true });
      return cwd;
    };

    const here = worktrees.find((w) => samePath(w.path, dir));
    if (here && exists && here.branch === ref) {
      const base = (await getConfig(repo.top, `branch.${branch}.agentq-base`)) ?? (await gitOut(repo.top, ['merge-base', head, branch]));
      return { mode: 'worktree', cwd: await cwdOf(dir), branch, worktree: dir, base, reused: true };
    }
    if (here) await git(repo.top, ['worktree', 'remove', '--force', dir]);
    const elsewhere = worktrees.find((w) => w.branch === ref && !samePath(w.path, dir));
    if (elsewhere) {
      throw new AgentQueueError('workspace', `branch ${branch} is checked out at ${elsewhere.path}; switch that checkout to another branch so the task can use it`);
    }
    await rm(dir, { recursive: true, force: true });
    await mkdir(path.dirname(dir), { recursive: true });

    let base: string;
    if (exists) {
      base = (await getConfig(repo.top, `branch.${branch}.agentq-base`)) ?? (await gitOut(repo.top, ['merge-base', head, branch]));
      await git(repo.top, ['worktree', 'add', dir, branch]);
    } else {
      base = head;
      // Ownership first: a crash between the two leaves config for a branch that does not exist, which is ignored.
      await git(repo.top, ['config', `branch.${branch}.agentq-task`, String(opts.taskId)]);
      await git(repo.top, ['config', `branch.${branch}.agentq-project`, projectRoot]);
      await git(repo.top, ['config', `branch.${branch}.agentq-base`, base]);
      await git(repo.top, ['worktree', 'add', '-b', branch, dir, base]);
    }
    await copyIncluded(repo.top, dir);
    return { mode: 'worktree', cwd: await cwdOf(dir), branch, worktree: dir, base, reused: false };
  });
}

/** The task's own branch if it has one, else the first free candidate name. */
async function chooseBranch(repo: RepoInfo, taskId: number, taskName: string): Promise<{ branch: string; exists: boolean }> {
  const owned = await git(repo.top, ['config', '--get-regexp', '^branch\\..*\\.agentq-task$'], { allowFail: true });
  for (const line of owned.stdout.split('\n')) {
    const m = /^branch\.(.+)\.agentq-task (\d+)$/.exec(line.trim());
    if (!m || Number(m[2]) !== taskId) continue;
    const branch = m[1]!;
    if (!branch.startsWith(BRANCH_PREFIX)) continue;
    if ((await getConfig(repo.top, `branch.${branch}.agentq-project`)) !== repo.projectRoot) continue;
    if (await refExists(repo.top, `refs/heads/${branch}`)) return { branch, exists: true };
  }
  const slug = branchSlug(taskName);
  for (let i = 0; ; i++) {
    const branch = `${BRANCH_PREFIX}${slug}${i === 0 ? '' : i === 1 ? `-${taskId}` : `-${taskId}-${i}`}`;
    if (!(await refExists(repo.top, `refs/heads/${branch}`))) return { branch, exists: false };
  }
}

/**
 * Ends the workspace of an attempt after the agent finished.
 *
 * Worktree: commits whatever the agent left uncommitted (`git add -A`, so ignored files
 * stay out, and so do the files `.worktreeinclude` copied in) as `agentq: <title>` —
 * `agentq: <title> (unfinished: the attempt failed)` when `success` is false — authored by `agentq <agentq@localhost>`, without hooks or
 * signing; lists the branch's commits since its base; removes the worktree (`git worktree
 * remove --force`) and keeps the branch. Then, only when `success` and `merge: 'auto'`
 * and there are commits, merges the branch into the branch checked out in `projectRoot`:
 * a fast-forward when possible, else a merge commit (`agentq: merge <branch>: <title>`).
 * Idempotent: a worktree already removed is not an error.
 *
 * Inplace: no-op, `{ branch: null, base: null, commits: [], merged: null }`.
 *
 * Throws MergeError('merge_conflict') when the merge conflicts (the merge is aborted, the
 * project checkout left as it was; the message names the files), MergeError('merge_blocked')
 * when it cannot be tried (detached HEAD, uncommitted changes in the project checkout,
 * untracked files in the way); both carry `result`. Throws AgentQueueError('workspace')
 * when the worktree cannot be closed safely — the agent left a merge/rebase/cherry-pick in
 * progress or switched the worktree to another branch — in which case the worktree is
 * kept for inspection; and when git fails.
 */
export async function closeWorkspace(
  ws: Workspace,
  opts: { projectRoot: string; success: boolean; title: string; merge: MergeMode },
): Promise<WorkspaceResult> {
  if (ws.mode === 'inplace' || !ws.branch || !ws.worktree) return { branch: null, base: null, commits: [], merged: null };
  const branch = ws.branch;
  const worktree = ws.worktree;
  const repo = await requireRepo(opts.projectRoot);
  return withRepoLock(repo.commonDir, async () => {
    const title = oneLine(opts.title);
    const message = opts.success ? `agentq: ${title}` : `agentq: ${title} (unfinished: the attempt failed)`;
    await saveAndRemove(repo, worktree, branch, message);
    const base = (await getConfig(repo.top, `branch.${branch}.agentq-base`)) ?? ws.base;
    const result: WorkspaceResult = { branch, base, commits: await listCommits(repo.top, base, branch), merged: null };
    if (opts.success && opts.merge === 'auto' && result.commits.length > 0) {
      result.merged = await mergeBranch(repo, branch, title, result);
    }
    return result;
  });
}

/** Commits leftovers in a worktree and removes it (branch kept). Caller holds the lock. */
async function saveAndRemove(repo: RepoInfo, dir: string, branch: string, message: string): Promise<void> {
  await git(repo.top, ['worktree', 'prune']);
  const entry = (await listWorktrees(repo.top)).find((w) => samePath(w.path, dir));
  if (!entry) {
    if (await exists(dir)) {
      throw new AgentQueueError('workspace', `${dir} is no longer a registered git worktree; it is left in place (agentq prune removes it)`);
    }
    return; // already closed
  }
  const gitDir = path.resolve(dir, await gitOut(dir, ['rev-parse', '--git-dir']));
  const inProgress: Array<[string, string]> = [
    ['MERGE_HEAD', 'a merge'],
    ['rebase-merge', 'a rebase'],
    ['rebase-apply', 'a rebase or git am'],
    ['CHERRY_PICK_HEAD', 'a cherry-pick'],
    ['REVERT_HEAD', 'a revert'],
  ];
  for (const [file, what] of inProgress) {
    if (await exists(path.join(gitDir, file))) {
      throw new AgentQueueError('workspace', `the agent left ${what} in progress in ${dir}; the worktree is kept for inspection (branch ${branch})`);
    }
  }
  if (entry.branch !== `refs/heads/${branch}`) {
    const where = entry.branch ? `on ${entry.branch.replace(/^refs\/heads\//, '')}` : 'on a detached HEAD';
    throw new AgentQueueError('workspace', `the agent left the worktree ${dir} ${where} instead of ${branch}; the worktree is kept for inspection`);
  }
  await git(dir, ['add', '-A']);
  await unstageIncluded(dir); // files copied by .worktreeinclude (.env …) are never committed
  const staged = await git(dir, ['diff', '--cached', '--quiet'], { allowFail: true });
  if (staged.code === 1) {
    await git(dir, ['-c', 'commit.gpgSign=false', 'commit', '--no-verify', '-q', '-m', message], { identity: true });
  } else if (staged.code !== 0) {
    throw new AgentQueueError('workspace', `git diff --cached failed in ${dir}: ${gitMessage(staged)}`);
  }
  await git(repo.top, ['worktree', 'remove', '--force', dir]);
  await rm(dir, { recursive: true, force: true });
}

async function listCommits(cwd: string, base: string | null, branch: string): Promise<WorkspaceCommit[]> {
  const range = base ? `${base}..refs/heads/${branch}` : `refs/heads/${branch}`;
  const out = await gitOut(cwd, ['log', '--reverse', '--format=%H%x09%s', range, '--']);
  return out
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const tab = line.indexOf('\t');
      return { hash: line.slice(0, tab), subject: line.slice(tab + 1) };
    });
}

/** Merges `branch` into the branch checked out in the project directory. Caller holds the lock. */
async function mergeBranch(repo: RepoInfo, branch: string, title: string, result: WorkspaceResult): Promise<'fast-forward' | 'merge' | null> {
  const cwd = repo.projectRoot;
  const kept = 'the branch is kept for a manual merge';
  const target = await git(cwd, ['symbolic-ref', '-q', '--short', 'HEAD'], { allowFail: true });
  if (target.code !== 0) {
    throw new MergeError('merge_blocked', `cannot merge ${branch}: the project checkout is on a detached HEAD; ${kept}`, result);
  }
  const into = target.stdout.trim();
  const dirty = splitZ((await git(cwd, ['status', '--porcelain=v1', '-z', '--untracked-files=no'])).stdout)
    .filter((e) => /^[ MADRCUT?!]{2} /.test(e))
    .map((e) => e.slice(3));
  if (dirty.length > 0) {
    throw new MergeError('merge_blocked', `cannot merge ${branch} into ${into}: the project checkout has uncommitted changes (${listFiles(dirty)}); ${kept}`, result, dirty);
  }
  const isAncestor = async (a: string, b: string): Promise<boolean> => (await git(cwd, ['merge-base', '--is-ancestor', a, b], { allowFail: true })).code === 0;
  const ref = `refs/heads/${branch}`;
  if (await isAncestor(ref, 'HEAD')) return null; // already contained
  if (await isAncestor('HEAD', ref)) {
    const ff = await git(cwd, ['merge', '--ff-only', '-q', ref], { allowFail: true });
    if (ff.code !== 0) throw new MergeError('merge_blocked', `cannot fast-forward ${into} to ${branch}: ${gitMessage(ff)}; ${kept}`, result);
    return 'fast-forward';
  }
  const merge = await git(
    cwd,
    ['-c', 'commit.gpgSign=false', '-c', 'rerere.enabled=false', 'merge', '--no-ff', '--no-verify', '--no-edit', '-q', '-m', `agentq: merge ${branch}: ${title}`, ref],
    { allowFail: true, identity: true },
  );
  if (merge.code === 0) return 'merge';
  const conflicts = splitZ((await git(cwd, ['diff', '--name-only', '-z', '--diff-filter=U'], { allowFail: true })).stdout);
  if (await refExists(cwd, 'MERGE_HEAD')) await git(cwd, ['merge', '--abort']);
  if (conflicts.length > 0) {
    throw new MergeError('merge_conflict', `merge of ${branch} into ${into} conflicts in: ${listFiles(conflicts)}; ${kept}`, result, conflicts);
  }
  throw new MergeError('merge_blocked', `cannot merge ${branch} into ${into}: ${gitMessage(merge)}; ${kept}`, result);
}

function listFiles(files: string[]): string {
  const shown = files.slice(0, 10).join(', ');
  return files.length > 10 ? `${shown} and ${files.length - 10} more` : shown;
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Cleans up after a crash. In a git repository: `git worktree prune` (forgets worktrees
 * whose directory is gone), then deletes every directory under
 * `<projectRoot>/.agent-queue/worktrees/` that git does not know as a worktree. Registered
 * task worktrees are left alone (a retry of their task reuses them), unless `keepTask` is
 * given and returns false for the task id in the directory name (`<taskId>-<name>`): those
 * are closed as failed attempts — leftovers committed to the branch, worktree removed,
 * branch kept. Pass a `keepTask` that answers true for queued, running and blocked tasks (of
 * any dispatcher), since another process, or a person who took the task over, may be using
 * the worktree.
 *
 * Does nothing outside a git repository. Worktrees that cannot be closed safely are listed
 * in `kept`; other git failures throw AgentQueueError('workspace').
 */
export async function pruneWorktrees(
  projectRoot: string,
  opts: { keepTask?: (taskId: number) => boolean | Promise<boolean> } = {},
): Promise<PruneResult> {
  const result: PruneResult = { removed: [], closed: [], kept: [] };
  const repo = await findRepo(projectRoot).catch(() => null);
  if (!repo) return result;
  const root = worktreesDir(projectRoot);
  return withRepoLock(repo.commonDir, async () => {
    await git(repo.top, ['worktree', 'prune']);
    let names: string[];
    try {
      names = await readdir(root);
    } catch {
      return result;
    }
    const worktrees = await listWorktrees(repo.top);
    for (const name of names.sort()) {
      const dir = path.join(root, name);
      const entry = worktrees.find((w) => samePath(w.path, dir));
      if (!entry) {
        await rm(dir, { recursive: true, force: true });
        result.removed.push(dir);
        continue;
      }
      const taskId = taskIdOfDir(dir);
      if (taskId === null || !opts.keepTask || (await opts.keepTask(taskId))) continue;
      const branch = entry.branch?.replace(/^refs\/heads\//, '') ?? null;
      if (!branch) {
        result.kept.push({ dir, reason: 'the worktree is on a detached HEAD' });
        continue;
      }
      try {
        await saveAndRemove(repo, dir, branch, `agentq: work left by an interrupted attempt of task ${taskId}`);
        const base = await getConfig(repo.top, `branch.${branch}.agentq-base`);
        result.closed.push({ taskId, branch, commits: await listCommits(repo.top, base, branch) });
      } catch (err) {
        if (!(err instanceof AgentQueueError)) throw err;
        result.kept.push({ dir, reason: err.message });
      }
    }
    return result;
  });
}
