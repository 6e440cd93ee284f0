/**
 * Worktrees ready to work in, with real git and real processes: `.worktreeinclude` copies
 * the checkout's git-ignored files into each new worktree and they are never committed;
 * `workspace_setup` commands run with their output logged, a failure named with its exit
 * code and last output, a time limit that stops the whole tree.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { closeWorkspace, openWorkspace } from '../../src/workspace/workspace.ts';
import { recordSetup, runWorkspaceSetup, setupSucceeded } from '../../src/workspace/setup.ts';
import { isAlive } from '../../src/process/process-tree.ts';

const tmpRoot = mkdtempSync(join(tmpdir(), 'agentq-setup-'));

before(() => {
  const emptyConfig = join(tmpRoot, 'gitconfig');
  writeFileSync(emptyConfig, '');
  process.env.GIT_CONFIG_GLOBAL = emptyConfig;
  process.env.GIT_CONFIG_NOSYSTEM = '1';
});
after(() => rmSync(tmpRoot, { recursive: true, force: true }));

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-C', cwd, '-c', 'user.name=Test', '-c', 'user.email=test@localhost', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

let count = 0;
/** A repository whose .gitignore ignores `.env`, `secrets/`, `*.local`; `files` written after the commit. */
function makeRepo(include: string | null, files: Record<string, string> = {}): string {
  const dir = join(tmpRoot, `repo-${++count}`);
  mkdirSync(dir);
  git(dir, 'init', '-q', '-b', 'main');
  writeFileSync(join(dir, '.gitignore'), '.env\nsecrets/\n*.local\n');
  writeFileSync(join(dir, 'tracked.txt'), 'tracked\n');
  if (include !== null) writeFileSync(join(dir, '.worktreeinclude'), include);
  git(dir, 'add', '.');
  git(dir, 'commit', '-q', '-m', 'initial');
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(join(dir, file, '..'), { recursive: true });
    writeFileSync(join(dir, file), text);
  }
  return dir;
}

describe('.worktreeinclude', () => {
  it('copies the git-ignored files it names into a new worktree, and the leftover commit never holds them', async () => {
    const repo = makeRepo('.env\nsecrets/\nnotes.txt\ntracked.txt\n.agent-queue/\n', {
      '.env': 'TOKEN=abc\n',
      'secrets/key.pem': 'KEY\n',
      'secrets/deep/more.pem': 'MORE\n',
      'other.local': 'not named\n',
      'notes.txt': 'untracked, not ignored\n',
      '.agent-queue/state.txt': 'agentq state\n',
    });
    writeFileSync(join(repo, 'tracked.txt'), 'changed in the checkout\n');
    const ws = await openWorkspace({ projectRoot: repo, taskId: 1, taskName: 'inc', mode: 'worktree' });
    const wt = ws.worktree!;
    assert.equal(readFileSync(join(wt, '.env'), 'utf8'), 'TOKEN=abc\n');
    assert.equal(readFileSync(join(wt, 'secrets/key.pem'), 'utf8'), 'KEY\n');
    assert.equal(readFileSync(join(wt, 'secrets/deep/more.pem'), 'utf8'), 'MORE\n');
    assert.ok(!existsSync(join(wt, 'other.local')), 'ignored but not named');
    assert.ok(!existsSync(join(wt, 'notes.txt')), 'named but not ignored: it would be committed');
    assert.equal(readFileSync(join(wt, 'tracked.txt'), 'utf8'), 'tracked\n', 'a tracked file comes from the branch, never from the checkout');
    assert.ok(!existsSync(join(wt, '.agent-queue', 'state.txt')), "agentq's own folder is never copied");

    // The agent un-ignores them and edits another file: only its edit is committed.
    writeFileSync(join(wt, '.gitignore'), '');
    writeFileSync(join(wt, 'work.txt'), 'done\n');
    const result = await closeWorkspace(ws, { projectRoot: repo, success: true, title: 'inc', merge: 'manual' });
    assert.equal(result.commits.length, 1);
    const files = git(repo, 'ls-tree', '-r', '--name-only', 'agentq/inc').split('\n');
    assert.deepEqual(files.sort(), ['.gitignore', '.worktreeinclude', 'tracked.txt', 'work.txt']);
    assert.equal(git(repo, 'show', 'agentq/inc:.gitignore'), '', "the agent's own change is kept");
  });

  it('copies nothing without the file, never over a file the worktree has, never through a symlinked folder', async () => {
    const plain = makeRepo(null, { '.env': 'x\n' });
    const ws1 = await openWorkspace({ projectRoot: plain, taskId: 1, taskName: 'none', mode: 'worktree' });
    assert.ok(!existsSync(join(ws1.worktree!, '.env')));

    const repo = makeRepo('conf/\n.env\n', { '.env': 'x\n' });
    writeFileSync(join(repo, '.gitignore'), '.env\nsecrets/\n*.local\nconf/\n');
    git(repo, 'commit', '-q', '-am', 'ignore conf/');
    mkdirSync(join(repo, 'conf'));
    writeFileSync(join(repo, 'conf', 'x.local'), 'secret\n');
    // An earlier attempt committed a symlink `conf` to a folder outside the worktree (`conf/` ignores folders only).
    const outside = join(tmpRoot, `outside-${count}`);
    mkdirSync(outside);
    const first = await openWorkspace({ projectRoot: repo, taskId: 2, taskName: 'link', mode: 'worktree' });
    rmSync(join(first.worktree!, 'conf'), { recursive: true, force: true });
    symlinkSync(outside, join(first.worktree!, 'conf'));
    await closeWorkspace(first, { projectRoot: repo, success: false, title: 'link', merge: 'manual' });
    assert.equal(git(repo, 'ls-tree', '--name-only', 'agentq/link', 'conf'), 'conf');
    const ws = await openWorkspace({ projectRoot: repo, taskId: 2, taskName: 'link', mode: 'worktree' });
    assert.equal(ws.reused, false);
    assert.ok(!existsSync(join(outside, 'x.local')), 'nothing written outside the worktree');
    assert.equal(readFileSync(join(ws.worktree!, '.env'), 'utf8'), 'x\n', 'the other files are copied');
  });
});

describe('workspace_setup', () => {
  const logs = () => {
    const dir = mkdtempSync(join(tmpRoot, 'logs-'));
    return { stdoutLog: join(dir, '1.stdout.log'), stderrLog: join(dir, '1.stderr.log') };
  };
  const base = { attemptId: 'setup-test', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, signal: new AbortController().signal, timeoutMs: 30_000 };

  it('runs the commands in order in the directory, logging their output between agentq lines', async () => {
    const dir = mkdtempSync(join(tmpRoot, 'cwd-'));
    const log = logs();
    const r = await runWorkspaceSetup({ ...base, ...log, cwd: dir, commands: ['echo one > a.txt; echo first', 'cat a.txt; echo oops >&2'] });
    assert.equal(r.kind, 'done');
    const out = readFileSync(log.stdoutLog, 'utf8');
    assert.match(out, /^agentq: workspace_setup 1\/2: \$ echo one > a\.txt; echo first\nfirst\nagentq: workspace_setup 1\/2: exit 0 after [\d.]+s\nagentq: workspace_setup 2\/2: \$ cat a\.txt; echo oops >&2\none\nagentq: workspace_setup 2\/2: exit 0 after/);
    assert.equal(readFileSync(log.stderrLog, 'utf8'), 'oops\n');
  });

  it('stops at the first failure, naming the command, its exit code and its last lines', async () => {
    const dir = mkdtempSync(join(tmpRoot, 'cwd-'));
    const r = await runWorkspaceSetup({ ...base, ...logs(), cwd: dir, commands: ['seq 1 30; echo broken >&2; exit 3', 'touch never'] });
    assert.equal(r.kind, 'failed');
    assert.ok(r.kind === 'failed');
    assert.equal(r.exitCode, 3);
    assert.match(r.reason, /^workspace_setup: "seq 1 30; echo broken >&2; exit 3" exited with code 3 after [\d.]+s; last output:\n12\n13\n[\s\S]*\n30\nbroken$/);
    assert.ok(!existsSync(join(dir, 'never')));
  });

  it('stops a command past its time limit with the processes it started', async () => {
    const dir = mkdtempSync(join(tmpRoot, 'cwd-'));
    const r = await runWorkspaceSetup({ ...base, ...logs(), cwd: dir, timeoutMs: 500, graceMs: 200, commands: ['sleep 60 & echo $! > child.pid; wait'] });
    assert.equal(r.kind, 'failed');
    assert.match(r.kind === 'failed' ? r.reason : '', /timed out after [\d.]+s \(workspace_setup_timeout 0\.5s\)/);
    const child = Number(readFileSync(join(dir, 'child.pid'), 'utf8'));
    assert.equal(isAlive(child), false, 'the background child is gone');
  });

  it('is noted as done per worktree and per command list', async () => {
    const repo = makeRepo(null);
    const ws = await openWorkspace({ projectRoot: repo, taskId: 3, taskName: 'noted', mode: 'worktree' });
    assert.equal(await setupSucceeded(ws.worktree!, ['npm ci']), false);
    await recordSetup(ws.worktree!, ['npm ci']);
    assert.equal(await setupSucceeded(ws.worktree!, ['npm ci']), true);
    assert.equal(await setupSucceeded(ws.worktree!, ['npm ci', 'npm run build']), false, 'other commands: set up again');
    const again = await openWorkspace({ projectRoot: repo, taskId: 3, taskName: 'noted', mode: 'worktree' });
    assert.equal(again.reused, true);
    assert.equal(await setupSucceeded(again.worktree!, ['npm ci']), true, 'a reused worktree keeps the note');
    await closeWorkspace(again, { projectRoot: repo, success: false, title: 'noted', merge: 'manual' });
    const fresh = await openWorkspace({ projectRoot: repo, taskId: 3, taskName: 'noted', mode: 'worktree' });
    assert.equal(fresh.reused, false);
    assert.equal(await setupSucceeded(fresh.worktree!, ['npm ci']), false, 'a fresh worktree of the same branch is set up again');
  });
});
