/**
 * Workspaces with real git in temporary repositories: default mode, worktree per task,
 * leftovers committed on the task's branch, manual and auto merges (fast-forward, merge
 * commit, conflict, dirty checkout), failures, branch-name clashes, retries, crash cleanup.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentQueueError } from '../../src/core/errors.ts';
import {
  MergeError,
  branchSlug,
  closeWorkspace,
  defaultWorkspaceMode,
  openWorkspace,
  pruneWorktrees,
  type Workspace,
} from '../../src/workspace/workspace.ts';
import { git as runGit } from '../../src/workspace/git.ts';

const tmpRoot = mkdtempSync(join(tmpdir(), 'agentq-workspace-'));

// Hermetic git: no user/system config (so no identity either: agentq must bring its own).
before(() => {
  const emptyConfig = join(tmpRoot, 'gitconfig');
  writeFileSync(emptyConfig, '');
  process.env.GIT_CONFIG_GLOBAL = emptyConfig;
  process.env.GIT_CONFIG_NOSYSTEM = '1';
  delete process.env.GIT_AUTHOR_NAME;
  delete process.env.GIT_AUTHOR_EMAIL;
  delete process.env.GIT_COMMITTER_NAME;
  delete process.env.GIT_COMMITTER_EMAIL;
  delete process.env.EMAIL;
});

after(() => rmSync(tmpRoot, { recursive: true, force: true }));

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-C', cwd, '-c', 'user.name=Test', '-c', 'user.email=test@localhost', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

let repoCount = 0;
/** A repository on `main` with README.md and shared.txt committed. */
function makeRepo(): string {
  const dir = join(tmpRoot, `repo-${++repoCount}`);
  mkdirSync(dir);
  git(dir, 'init', '-q', '-b', 'main');
  writeFileSync(join(dir, 'README.md'), '# demo\n');
  writeFileSync(join(dir, 'shared.txt'), 'one\ntwo\nthree\n');
  git(dir, 'add', '.');
  git(dir, 'commit', '-q', '-m', 'initial');
  return dir;
}

function commitIn(dir: string, file: string, content: string, message: string): void {
  writeFileSync(join(dir, file), content);
  git(dir, 'add', file);
  git(dir, 'commit', '-q', '-m', message);
}

function status(dir: string): string {
  return git(dir, 'status', '--porcelain');
}

const open = (projectRoot: string, taskId: number, taskName: string): Promise<Workspace> =>
  openWorkspace({ projectRoot, taskId, taskName, mode: 'worktree' });

describe('defaultWorkspaceMode', () => {
  it('is worktree in a git repository with a commit, inplace elsewhere', async () => {
    const repo = makeRepo();
    assert.equal(await defaultWorkspaceMode(repo), 'worktree');
    const plain = mkdtempSync(join(tmpRoot, 'plain-'));
    assert.equal(await defaultWorkspaceMode(plain), 'inplace');
    const empty = mkdtempSync(join(tmpRoot, 'empty-'));
    git(empty, 'init', '-q', '-b', 'main');
    assert.equal(await defaultWorkspaceMode(empty), 'inplace', 'no commit yet');
    mkdirSync(join(repo, 'untracked-project'));
    assert.equal(await defaultWorkspaceMode(join(repo, 'untracked-project')), 'inplace', 'directory not in the commit');
  });
});

describe('branchSlug', () => {
  it('makes valid branch names', () => {
    assert.equal(branchSlug('fix-login_bug.v2'), 'fix-login_bug.v2');
    assert.equal(branchSlug('a..b'), 'a.b');
    assert.equal(branchSlug('x.lock'), 'x-lock');
    assert.equal(branchSlug('trailing.'), 'trailing');
    assert.equal(branchSlug('we ird:name~^'), 'we-ird-name-');
    assert.equal(branchSlug('...'), 'task');
    for (const n of ['a..b', 'x.lock', 'trailing.', 'we ird:name~^', '-x']) {
      execFileSync('git', ['check-ref-format', '--branch', `agentq/${branchSlug(n)}`]);
    }
  });
});

describe('inplace', () => {
  it('runs in the project directory; closing is a no-op', async () => {
    const dir = mkdtempSync(join(tmpRoot, 'inplace-'));
    const ws = await openWorkspace({ projectRoot: dir, taskId: 1, taskName: 'x', mode: 'inplace' });
    assert.equal(ws.cwd, dir);
    assert.equal(ws.branch, null);
    assert.deepEqual(await closeWorkspace(ws, { projectRoot: dir, success: true, title: 'X', merge: 'auto' }), { branch: null, base: null, commits: [], merged: null });
  });

  it('worktree mode outside a git repository is a workspace error', async () => {
    const dir = mkdtempSync(join(tmpRoot, 'nogit-'));
    await assert.rejects(open(dir, 1, 'x'), (err: unknown) => err instanceof AgentQueueError && err.code === 'workspace' && /not in one/.test(err.message));
  });
});

describe('worktree', () => {
  it('parallel tasks get their own worktrees and branches; edits do not collide; manual merge leaves the checkout alone', async () => {
    const repo = makeRepo();
    const mainHead = git(repo, 'rev-parse', 'HEAD');
    const [a, b] = await Promise.all([open(repo, 1, 'alpha'), open(repo, 2, 'beta')]);
    assert.equal(a.branch, 'agentq/alpha');
    assert.equal(b.branch, 'agentq/beta');
    assert.notEqual(a.cwd, b.cwd);
    assert.ok(a.cwd.includes(join('.agent-queue', 'worktrees', '1-alpha')));
    assert.equal(a.base, mainHead);
    assert.equal(status(repo), '', '.agent-queue/ is excluded, so the project checkout stays clean');

    writeFileSync(join(a.cwd, 'shared.txt'), 'alpha edit\n');
    writeFileSync(join(a.cwd, 'alpha.txt'), 'new file\n');
    writeFileSync(join(b.cwd, 'shared.txt'), 'beta edit\n');
    commitIn(b.cwd, 'beta.txt', 'b\n', 'beta: own commit');

    const [ra, rb] = await Promise.all([
      closeWorkspace(a, { projectRoot: repo, success: true, title: 'Alpha task', merge: 'manual' }),
      closeWorkspace(b, { projectRoot: repo, success: true, title: 'Beta\ntask', merge: 'manual' }),
    ]);
    assert.equal(ra.branch, 'agentq/alpha');
    assert.deepEqual(ra.commits.map((c) => c.subject), ['agentq: Alpha task']);
    assert.deepEqual(rb.commits.map((c) => c.subject), ['beta: own commit', 'agentq: Beta task'], 'oldest first');
    assert.equal(ra.merged, null);
    assert.equal(ra.commits[0]!.hash, git(repo, 'rev-parse', 'agentq/alpha'));
    assert.equal(git(repo, 'show', 'agentq/alpha:shared.txt'), 'alpha edit');
    assert.equal(git(repo, 'show', 'agentq/alpha:alpha.txt'), 'new file');
    assert.equal(git(repo, 'show', 'agentq/beta:shared.txt'), 'beta edit');
    assert.equal(git(repo, 'log', '-1', '--format=%an <%ae>', 'agentq/alpha'), 'agentq <agentq@localhost>');

    assert.ok(!existsSync(a.cwd) && !existsSync(b.cwd), 'worktrees removed');
    assert.equal(git(repo, 'worktree', 'list').split('\n').length, 1);
    assert.equal(git(repo, 'rev-parse', 'HEAD'), mainHead, 'project checkout untouched');
    assert.equal(readFileSync(join(repo, 'shared.txt'), 'utf8'), 'one\ntwo\nthree\n');
    assert.equal(status(repo), '');
    assert.equal(git(repo, 'ls-tree', '-r', '--name-only', 'agentq/alpha').includes('.agent-queue'), false);
  });

  it('merge auto fast-forwards when main has not moved', async () => {
    const repo = makeRepo();
    const ws = await open(repo, 1, 'ff');
    writeFileSync(join(ws.cwd, 'feature.txt'), 'feature\n');
    const r = await closeWorkspace(ws, { projectRoot: repo, success: true, title: 'Feature', merge: 'auto' });
    assert.equal(r.merged, 'fast-forward');
    assert.equal(git(repo, 'rev-parse', 'HEAD'), git(repo, 'rev-parse', 'agentq/ff'));
    assert.equal(readFileSync(join(repo, 'feature.txt'), 'utf8'), 'feature\n');
    assert.equal(status(repo), '');
    assert.equal(git(repo, 'branch', '--list', 'agentq/ff'), 'agentq/ff', 'branch kept');
  });

  it('merge auto makes a merge commit when main has diverged', async () => {
    const repo = makeRepo();
    const ws = await open(repo, 1, 'diverged');
    writeFileSync(join(ws.cwd, 'feature.txt'), 'feature\n');
    commitIn(repo, 'other.txt', 'other\n', 'meanwhile on main');
    const r = await closeWorkspace(ws, { projectRoot: repo, success: true, title: 'Diverged', merge: 'auto' });
    assert.equal(r.merged, 'merge');
    assert.equal(git(repo, 'log', '-1', '--format=%P').split(' ').length, 2, 'a merge commit');
    assert.match(git(repo, 'log', '-1', '--format=%s'), /^agentq: merge agentq\/diverged: Diverged$/);
    assert.ok(existsSync(join(repo, 'feature.txt')) && existsSync(join(repo, 'other.txt')));
    assert.equal(status(repo), '');
  });

  it('merge auto conflict: merge_conflict naming the file, merge aborted, branch kept', async () => {
    const repo = makeRepo();
    const ws = await open(repo, 1, 'clash');
    writeFileSync(join(ws.cwd, 'shared.txt'), 'one\nTWO from agent\nthree\n');
    commitIn(repo, 'shared.txt', 'one\nTWO from main\nthree\n', 'main edits shared');
    const mainHead = git(repo, 'rev-parse', 'HEAD');
    const err = await closeWorkspace(ws, { projectRoot: repo, success: true, title: 'Clash', merge: 'auto' }).then(
      () => assert.fail('expected a merge conflict'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof MergeError);
    assert.equal(err.code, 'merge_conflict');
    assert.equal(err.message, 'merge of agentq/clash into main conflicts in: shared.txt; the branch is kept for a manual merge');
    assert.deepEqual(err.files, ['shared.txt']);
    assert.equal(err.result.branch, 'agentq/clash');
    assert.equal(err.result.commits.length, 1);
    assert.equal(status(repo), '', 'merge aborted');
    assert.equal(git(repo, 'rev-parse', 'HEAD'), mainHead);
    assert.ok(!existsSync(join(repo, '.git', 'MERGE_HEAD')));
    assert.equal(git(repo, 'show', 'agentq/clash:shared.txt'), 'one\nTWO from agent\nthree');
    assert.ok(!existsSync(ws.cwd), 'worktree removed');
  });

  it('merge auto into a dirty checkout is refused (merge_blocked), nothing touched', async () => {
    const repo = makeRepo();
    const ws = await open(repo, 1, 'blocked');
    writeFileSync(join(ws.cwd, 'feature.txt'), 'feature\n');
    writeFileSync(join(repo, 'README.md'), '# user is editing\n');
    await assert.rejects(
      closeWorkspace(ws, { projectRoot: repo, success: true, title: 'Blocked', merge: 'auto' }),
      (e: unknown) => e instanceof MergeError && e.code === 'merge_blocked' && /uncommitted changes \(README\.md\)/.test(e.message) && e.result.commits.length === 1,
    );
    assert.equal(readFileSync(join(repo, 'README.md'), 'utf8'), '# user is editing\n');
    assert.ok(!existsSync(join(repo, 'feature.txt')));
  });

  it('parallel auto merges of several tasks all land on main', async () => {
    const repo = makeRepo();
    const names = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6'];
    const results = await Promise.all(
      names.map(async (name, i) => {
        const ws = await open(repo, i + 1, name);
        writeFileSync(join(ws.cwd, `${name}.txt`), `${name}\n`);
        return closeWorkspace(ws, { projectRoot: repo, success: true, title: name, merge: 'auto' });
      }),
    );
    assert.equal(results.filter((r) => r.merged === 'fast-forward').length >= 1, true);
    assert.ok(results.every((r) => r.merged !== null));
    for (const name of names) assert.equal(readFileSync(join(repo, `${name}.txt`), 'utf8'), `${name}\n`);
    assert.equal(status(repo), '');
  });

  it('takes over the lock file of a dead agentq process', async () => {
    const repo = makeRepo();
    const dead = spawnSync('true').pid!;
    writeFileSync(join(repo, '.git', 'agentq-workspace.lock'), `${dead} ${hostname()}\n`);
    const ws = await open(repo, 1, 'locked');
    await closeWorkspace(ws, { projectRoot: repo, success: true, title: 'Locked', merge: 'manual' });
    assert.ok(!existsSync(join(repo, '.git', 'agentq-workspace.lock')), 'released');
  });

  it('failure keeps the branch with the leftovers; a retry continues from it', async () => {
    const repo = makeRepo();
    const ws = await open(repo, 7, 'flaky');
    writeFileSync(join(ws.cwd, 'half.txt'), 'half done\n');
    const r = await closeWorkspace(ws, { projectRoot: repo, success: false, title: 'Flaky', merge: 'auto' });
    assert.equal(r.merged, null, 'never merged on failure');
    assert.deepEqual(r.commits.map((c) => c.subject), ['agentq: Flaky (unfinished: the attempt failed)']);
    assert.ok(!existsSync(ws.cwd));
    assert.ok(!existsSync(join(repo, 'half.txt')));

    const retry = await open(repo, 7, 'flaky');
    assert.equal(retry.branch, 'agentq/flaky');
    assert.equal(retry.base, ws.base, 'same base as the first attempt');
    assert.equal(readFileSync(join(retry.cwd, 'half.txt'), 'utf8'), 'half done\n', 'earlier work is there');
    writeFileSync(join(retry.cwd, 'rest.txt'), 'rest\n');
    const r2 = await closeWorkspace(retry, { projectRoot: repo, success: true, title: 'Flaky', merge: 'manual' });
    assert.deepEqual(r2.commits.map((c) => c.subject), ['agentq: Flaky (unfinished: the attempt failed)', 'agentq: Flaky']);
  });

  it('a branch name taken by another task (or the user) gets the task id as suffix', async () => {
    const repo = makeRepo();
    const first = await open(repo, 1, 'dup');
    const second = await open(repo, 2, 'dup');
    assert.equal(first.branch, 'agentq/dup');
    assert.equal(second.branch, 'agentq/dup-2');
    await closeWorkspace(second, { projectRoot: repo, success: false, title: 'Dup', merge: 'manual' });
    const again = await open(repo, 2, 'dup');
    assert.equal(again.branch, 'agentq/dup-2', 'the retry finds its own branch');
    await closeWorkspace(again, { projectRoot: repo, success: true, title: 'Dup', merge: 'manual' });
    await closeWorkspace(first, { projectRoot: repo, success: true, title: 'Dup', merge: 'manual' });

    git(repo, 'branch', 'agentq/mine');
    const third = await open(repo, 3, 'mine');
    assert.equal(third.branch, 'agentq/mine-3', "a branch agentq did not make is not taken over");
    await closeWorkspace(third, { projectRoot: repo, success: true, title: 'Mine', merge: 'manual' });
  });

  it('a project in a subdirectory runs in that subdirectory of the worktree', async () => {
    const repo = makeRepo();
    mkdirSync(join(repo, 'app'));
    commitIn(repo, 'app/index.js', '1\n', 'app');
    const project = join(repo, 'app');
    assert.equal(await defaultWorkspaceMode(project), 'worktree');
    const ws = await open(project, 1, 'sub');
    assert.equal(ws.cwd, join(ws.worktree!, 'app'));
    assert.ok(existsSync(join(ws.cwd, 'index.js')));
    assert.ok(ws.worktree!.startsWith(join(project, '.agent-queue', 'worktrees')));
    writeFileSync(join(ws.cwd, 'index.js'), '2\n');
    assert.equal(status(repo), '');
    const r = await closeWorkspace(ws, { projectRoot: project, success: true, title: 'Sub', merge: 'auto' });
    assert.equal(r.merged, 'fast-forward');
    assert.equal(readFileSync(join(project, 'index.js'), 'utf8'), '2\n');
  });
});

describe('crash recovery', () => {
  it('a retry after a crash reuses the worktree with its uncommitted edits', async () => {
    const repo = makeRepo();
    const ws = await open(repo, 4, 'crashy');
    writeFileSync(join(ws.cwd, 'wip.txt'), 'wip\n');
    // crash: closeWorkspace never runs
    assert.deepEqual(await pruneWorktrees(repo), { removed: [], closed: [], kept: [] }, 'registered worktrees are left for the retry');
    const again = await open(repo, 4, 'crashy');
    assert.equal(again.reused, true);
    assert.equal(again.cwd, ws.cwd);
    assert.equal(readFileSync(join(again.cwd, 'wip.txt'), 'utf8'), 'wip\n');
    await closeWorkspace(again, { projectRoot: repo, success: true, title: 'Crashy', merge: 'manual' });
  });

  it('pruneWorktrees removes directories git no longer knows and forgets missing ones', async () => {
    const repo = makeRepo();
    const orphan = await open(repo, 1, 'orphan');
    const missing = await open(repo, 2, 'missing');
    // The registration of one is lost, the directory of the other is gone.
    const adminName = git(orphan.cwd, 'rev-parse', '--git-dir').split('/').pop()!;
    rmSync(join(repo, '.git', 'worktrees', adminName), { recursive: true, force: true });
    rmSync(missing.cwd, { recursive: true, force: true });
    const stray = join(repo, '.agent-queue', 'worktrees', '99-stray');
    mkdirSync(stray, { recursive: true });

    const r = await pruneWorktrees(repo);
    assert.deepEqual(r.removed.sort(), [orphan.cwd, stray].sort());
    assert.ok(!existsSync(orphan.cwd) && !existsSync(stray));
    assert.equal(git(repo, 'worktree', 'list').split('\n').length, 1, 'missing worktree forgotten');
    // Both tasks can open again (their branches are still theirs).
    const again = await open(repo, 2, 'missing');
    assert.equal(again.branch, 'agentq/missing');
    await closeWorkspace(again, { projectRoot: repo, success: true, title: 'Missing', merge: 'manual' });
  });

  it('pruneWorktrees with keepTask closes worktrees of tasks that will not run again', async () => {
    const repo = makeRepo();
    const live = await open(repo, 1, 'live');
    const dead = await open(repo, 2, 'dead');
    writeFileSync(join(dead.cwd, 'left.txt'), 'left behind\n');
    const r = await pruneWorktrees(repo, { keepTask: (id) => id === 1 });
    assert.deepEqual(r.removed, []);
    assert.equal(r.closed.length, 1);
    assert.equal(r.closed[0]!.branch, 'agentq/dead');
    assert.deepEqual(r.closed[0]!.commits.map((c) => c.subject), ['agentq: work left by an interrupted attempt of task 2']);
    assert.equal(git(repo, 'show', 'agentq/dead:left.txt'), 'left behind');
    assert.ok(existsSync(live.cwd) && !existsSync(dead.cwd));
    await closeWorkspace(live, { projectRoot: repo, success: true, title: 'Live', merge: 'manual' });
  });

  it('a worktree the agent left mid-merge is kept, not committed over', async () => {
    const repo = makeRepo();
    const ws = await open(repo, 1, 'midmerge');
    commitIn(repo, 'shared.txt', 'main\n', 'main side');
    commitIn(ws.cwd, 'shared.txt', 'agent\n', 'agent side');
    assert.throws(() => git(ws.cwd, 'merge', 'main'));
    await assert.rejects(
      closeWorkspace(ws, { projectRoot: repo, success: true, title: 'Mid', merge: 'manual' }),
      (e: unknown) => e instanceof AgentQueueError && e.code === 'workspace' && /a merge in progress/.test(e.message),
    );
    assert.ok(existsSync(ws.cwd));
  });
});

describe('git environment', () => {
  it("the repository's hooks never see agentq's own secrets", async () => {
    const repo = mkdtempSync(join(tmpdir(), 'agentq-hook-'));
    execFileSync('git', ['init', '-q', repo]);
    const seen = join(repo, 'hook-env.txt');
    writeFileSync(join(repo, '.git', 'hooks', 'pre-commit'), `#!/bin/sh\nenv > ${seen}\n`, { mode: 0o755 });
    process.env.AGENTQ_TOKEN = 'sekrit-hook-token';
    try {
      await runGit(repo, ['commit', '-q', '--allow-empty', '-m', 'x'], { identity: true });
    } finally {
      delete process.env.AGENTQ_TOKEN;
    }
    const env = readFileSync(seen, 'utf8');
    assert.match(env, /^GIT_AUTHOR_NAME=agentq$/m, 'the hook ran with git’s environment');
    assert.doesNotMatch(env, /sekrit-hook-token/);
  });
});
