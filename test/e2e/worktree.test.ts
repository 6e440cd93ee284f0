/**
 * Workspaces end to end: in a git repository each task runs in its own worktree on
 * `agentq/<name>`; the result file names the branch and commits; `merge: auto` merges back.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { agentq, dropTask, listDir, makeProject, readResult } from '../fixtures/project.ts';

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@localhost', ...args], { cwd, encoding: 'utf8' }).trim();

function gitProject(config: Record<string, unknown> = {}) {
  const paths = makeProject({ concurrency: 2, ...config });
  git(paths.root, 'init', '-q', '-b', 'main');
  fs.writeFileSync(path.join(paths.root, 'shared.txt'), 'base\n');
  git(paths.root, 'add', 'shared.txt');
  git(paths.root, 'commit', '-q', '-m', 'base');
  return paths;
}

describe('worktree workspaces', () => {
  it('runs parallel tasks in separate worktrees, keeps their branches, and merges with merge: auto', async () => {
    const paths = gitProject();
    const write = (file: string, text: string) => `sleep 0.3; pwd > where-${file}; echo "${text}" > ${file}; echo wrote ${file}`;
    dropTask(paths, 'alpha', { agent: 'command', command: write('a.txt', 'from alpha') }, 'x');
    dropTask(paths, 'beta', { agent: 'command', command: write('b.txt', 'from beta'), merge: 'auto' }, 'x');
    const r = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(r.code, 0, r.stderr);

    const alpha = readResult(path.join(paths.done, 'alpha.md')).fm;
    assert.equal(alpha.branch, 'agentq/alpha');
    assert.match(String((alpha.commits as string[])[0]), /^[0-9a-f]{12} agentq: alpha$/);
    assert.equal(git(paths.root, 'show', 'agentq/alpha:a.txt'), 'from alpha');
    assert.match(git(paths.root, 'show', 'agentq/alpha:where-a.txt'), /\.agent-queue\/worktrees\/\d+-alpha$/);
    assert.ok(!fs.existsSync(path.join(paths.root, 'a.txt')), 'manual merge: the project checkout is untouched');

    assert.equal(readResult(path.join(paths.done, 'beta.md')).fm.branch, 'agentq/beta');
    assert.equal(fs.readFileSync(path.join(paths.root, 'b.txt'), 'utf8'), 'from beta\n', 'merge: auto brought beta into main');
    assert.deepEqual(listDir(path.join(paths.dir, 'worktrees')), [], 'worktrees are removed');
    assert.equal(git(paths.root, 'status', '--porcelain'), '', 'the checkout is clean (.agent-queue is excluded)');
  });

  it('fails a task whose auto merge conflicts, naming the file, and keeps the branch', async () => {
    const paths = gitProject();
    const go = path.join(paths.root, '.git', 'go');
    const started = path.join(paths.root, '.git', 'started');
    const agent = `touch ${started}; while [ ! -f ${go} ]; do sleep 0.05; done; echo "from agent" > shared.txt`;
    dropTask(paths, 'edit', { agent: 'command', command: agent, merge: 'auto' }, 'x');
    const run = agentq(['run', '--once', '--project', paths.root]);
    // While the agent works in its worktree, main moves on and changes the same line.
    const { waitFor } = await import('../fixtures/procs.ts');
    await waitFor(() => fs.existsSync(started), 30_000, 'the agent to start');
    fs.writeFileSync(path.join(paths.root, 'shared.txt'), 'from main\n');
    git(paths.root, 'commit', '-q', '-am', 'main edit');
    fs.writeFileSync(go, '');
    const r = await run;
    assert.equal(r.code, 1);
    const { fm } = readResult(path.join(paths.failed, 'edit.md'));
    assert.equal(fm.status, 'failed');
    assert.match(String(fm.failed_reason), /merge of agentq\/edit into main conflicts in: shared\.txt/);
    assert.equal(fm.branch, 'agentq/edit');
    assert.equal(git(paths.root, 'show', 'agentq/edit:shared.txt'), 'from agent');
    assert.equal(fs.readFileSync(path.join(paths.root, 'shared.txt'), 'utf8'), 'from main\n');
    assert.equal(git(paths.root, 'status', '--porcelain'), '');
  });
});
