/**
 * Worktrees ready to work in, end to end with real `agentq run` processes and real git:
 * `workspace_setup` runs in the fresh worktree before the agent, with the files
 * `.worktreeinclude` copies from the checkout (never committed on the task's branch); a setup
 * that fails ends the attempt `setup_failed` and is retried; a worktree whose setup succeeded
 * is not set up again when a retry reuses it; the output is in the attempt's log.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { agentq, agentqJson, dropTask, makeProject, readResult } from '../fixtures/project.ts';

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@localhost', ...args], { cwd, encoding: 'utf8' }).trim();

/** A project in a git repository whose .gitignore ignores `.env` and `secrets/`, listed in `.worktreeinclude`. */
function gitProject(config: Record<string, unknown>) {
  const paths = makeProject(config);
  git(paths.root, 'init', '-q', '-b', 'main');
  fs.writeFileSync(path.join(paths.root, '.gitignore'), '.env\nsecrets/\n');
  fs.writeFileSync(path.join(paths.root, '.worktreeinclude'), '# copied into every worktree\n.env\nsecrets/\n');
  fs.writeFileSync(path.join(paths.root, 'README.md'), 'demo\n');
  git(paths.root, 'add', '.gitignore', '.worktreeinclude', 'README.md');
  git(paths.root, 'commit', '-q', '-m', 'base');
  fs.writeFileSync(path.join(paths.root, '.env'), 'API_KEY=local-secret\n');
  fs.mkdirSync(path.join(paths.root, 'secrets'));
  fs.writeFileSync(path.join(paths.root, 'secrets', 'db.txt'), 'db-password\n');
  return paths;
}

/** A shell snippet: increments the number in `file` (from 0) and leaves the old one in `$n`. */
const count = (file: string) => `n=$(cat ${file} 2>/dev/null || echo 0); echo $((n + 1)) > ${file}`;

describe('workspace_setup and .worktreeinclude', () => {
  it('sets up the fresh worktree before the agent, with the included files there and never committed', async () => {
    const paths = gitProject({
      workspace_setup: ['echo setup >> order.log; echo installing dependencies', 'test -f .env && echo "env: $(cat .env)" >> order.log'],
    });
    // The agent un-ignores everything, so only agentq's own care keeps .env and secrets/ out of the commit.
    const agent = 'echo agent >> order.log; cp secrets/db.txt seen-secret.txt; : > .gitignore; echo "setup env: $AGENTQ_TASK_NAME"';
    dropTask(paths, 'fix', { agent: 'command', command: agent }, 'x');
    const r = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(r.code, 0, r.stderr);

    const { fm } = readResult(path.join(paths.done, 'fix.md'));
    assert.equal(fm.branch, 'agentq/fix');
    assert.equal(git(paths.root, 'show', 'agentq/fix:order.log'), 'setup\nenv: API_KEY=local-secret\nagent', 'setup ran first, in the worktree, with .env there');
    assert.equal(git(paths.root, 'show', 'agentq/fix:seen-secret.txt'), 'db-password', 'the agent found secrets/ in its worktree');
    const tree = git(paths.root, 'ls-tree', '-r', '--name-only', 'agentq/fix').split('\n').sort();
    assert.deepEqual(tree, ['.gitignore', '.worktreeinclude', 'README.md', 'order.log', 'seen-secret.txt'], 'neither .env nor secrets/ is on the branch');
    assert.equal(git(paths.root, 'status', '--porcelain'), '', 'the checkout is untouched');

    const logs = await agentq(['logs', 'fix', '--project', paths.root]);
    assert.match(logs.stdout, /agentq: workspace_setup 1\/2: \$ echo setup >> order\.log; echo installing dependencies\ninstalling dependencies\nagentq: workspace_setup 1\/2: exit 0 after/);
    assert.match(logs.stdout, /agentq: workspace_setup 2\/2: exit 0 after [\d.]+s\nsetup env: fix\n/, 'the agent output follows the setup in the same log');
  });

  it('ends an attempt whose setup fails setup_failed and retries it; a worktree set up once is not set up again', async () => {
    const paths = gitProject({ retry_backoff: '10ms', retry_backoff_max: '10ms' });
    const setupCount = path.join(paths.dir, 'setup-count');
    const agentCount = path.join(paths.dir, 'agent-count');
    // Setup fails on its first run only; the agent fails on its first run only.
    const setup = `${count(setupCount)}; echo "setup run $n"; echo "npm ERR! network" >&2; [ "$n" -ge 1 ]`;
    const agent = `${count(agentCount)}; echo "agent run $n"; [ "$n" -ge 1 ]`;
    dropTask(paths, 'flaky', { agent: 'command', command: agent, workspace_setup: setup, retries: 2 }, 'x');
    dropTask(paths, 'broken', { agent: 'command', command: 'echo never', workspace_setup: ['true', 'echo "cannot build"; exit 7'], retries: 0 }, 'x');
    const r = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(r.code, 1, 'broken fails');
    assert.match(r.stderr, /requeued  #\d+ flaky: workspace_setup: "n=\$\(cat .*" exited with code 1 after [\d.]+s; last output:\n {4}/);

    const flaky = await agentqJson(['show', 'flaky', '--json', '--project', paths.root]);
    assert.equal(flaky.state, 'completed');
    type A = { outcome: string; exitCode: number | null; reason: string | null };
    const history = (flaky.attemptHistory as A[]).map((a) => [a.outcome, a.exitCode]);
    assert.deepEqual(history, [['setup_failed', 1], ['failed', 1], ['completed', 0]]);
    const reason = (flaky.attemptHistory as A[])[0]!.reason!;
    assert.match(reason, /exited with code 1 after [\d.]+s; last output:\n(setup run 0\nnpm ERR! network|npm ERR! network\nsetup run 0)$/);
    assert.equal(fs.readFileSync(setupCount, 'utf8'), '2\n', 'setup ran again after it failed, not after the agent failed');
    assert.equal(fs.readFileSync(agentCount, 'utf8'), '2\n');

    const { fm } = readResult(path.join(paths.failed, 'broken.md'));
    assert.match(String(fm.failed_reason), /^workspace_setup: "echo \\"cannot build\\"; exit 7" exited with code 7 after [\d.]+s; last output:\ncannot build$/);
    const broken = await agentqJson(['show', 'broken', '--json', '--project', paths.root]);
    assert.deepEqual((broken.attemptHistory as A[]).map((a) => [a.outcome, a.exitCode]), [['setup_failed', 7]]);

    const logs = await agentq(['logs', 'flaky', '--project', paths.root]);
    assert.match(logs.stdout, /==> attempt 1 stdout .*\nagentq: workspace_setup 1\/1: \$ .*\nsetup run 0\nagentq: workspace_setup 1\/1: exited with code 1/);
    assert.match(logs.stdout, /==> attempt 1 stderr .*\nnpm ERR! network\n/);
    assert.match(logs.stdout, /==> attempt 2 stdout .*\nagentq: workspace_setup 1\/1: \$ .*\nsetup run 1\nagentq: workspace_setup 1\/1: exit 0 after [\d.]+s\nagent run 0\n/);
    assert.match(logs.stdout, /==> attempt 3 stdout .*\nagent run 1\n/, 'attempt 3 reused the worktree set up by attempt 2');
  });
});
