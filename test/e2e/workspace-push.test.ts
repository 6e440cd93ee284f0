/**
 * `workspace_push` end to end, with real git and the real `bin/agentq`: a bare repository is
 * the shared remote, two clones of it are two machines ("A" files the task, "B" runs it),
 * each with its own `.agent-queue/`, on one SQLite store outside both. B pushes the task's
 * branch instead of merging it; A fetches it. A push the remote refuses (not a fast-forward,
 * a hook) is final and never forced; a remote that is unreachable is tried again; either way
 * the task keeps its end and the result file says what happened.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { projectPaths, type ProjectPaths } from '../../src/config/config.ts';
import { AGENTQ, agentq, dropTask, readResult } from '../fixtures/project.ts';
import { waitFor } from '../fixtures/procs.ts';

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@localhost', ...args], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

/** A command agent that commits one file itself and leaves another for agentq to commit. */
const AGENT = [
  "printf 'from B\\n' > feature.txt",
  'git add feature.txt',
  "git -c user.name=agent -c user.email=agent@localhost -c commit.gpgSign=false commit -q --no-verify -m 'agent: add feature.txt'",
  "printf 'left\\n' > leftover.txt",
  'echo shipped',
].join(' && ');

interface Machines {
  remote: string;
  a: ProjectPaths;
  b: ProjectPaths;
}

/** The bare remote (one commit on main), machines A and B cloned from it, one shared store; B pushes to origin. */
function machines(configB: Record<string, unknown> = {}): Machines {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-push-'));
  const remote = path.join(dir, 'remote.git');
  git(dir, 'init', '-q', '--bare', '-b', 'main', remote);
  const seed = path.join(dir, 'seed');
  git(dir, 'clone', '-q', remote, seed);
  fs.writeFileSync(path.join(seed, 'shared.txt'), 'base\n');
  git(seed, 'add', 'shared.txt');
  git(seed, 'commit', '-q', '-m', 'base');
  git(seed, 'push', '-q', 'origin', 'main');
  const store = `sqlite:${path.join(dir, 'shared.db')}`;
  const machine = (name: string, config: Record<string, unknown>): ProjectPaths => {
    const root = path.join(dir, name);
    git(dir, 'clone', '-q', remote, root);
    const paths = projectPaths(root);
    fs.mkdirSync(paths.inbox, { recursive: true });
    fs.writeFileSync(paths.config, YAML.stringify({ store, default_retries: 0, poll_interval: '100ms', workspace: 'worktree', ...config }));
    return paths;
  };
  return { remote, a: machine('A', {}), b: machine('B', { workspace_push: 'origin', ...configB }) };
}

/** The result file of `name` in whichever checkout's done/ or failed/ holds it (exactly one). */
function resultOf(m: Machines, name: string): Record<string, unknown> {
  const found = [m.a, m.b].flatMap((p) => [p.done, p.failed]).map((d) => path.join(d, `${name}.md`)).filter((f) => fs.existsSync(f));
  assert.equal(found.length, 1, `one result file for ${name}: ${found.join(', ')}`);
  return readResult(found[0]!).fm;
}

/** The full hash of `ref` in the bare remote, or null when it has no such ref. */
function remoteRef(remote: string, ref: string): string | null {
  try {
    return git(remote, 'rev-parse', '--verify', '-q', ref);
  } catch {
    return null;
  }
}

describe('workspace_push', () => {
  it('machine B runs a task filed on A, pushes its branch instead of merging it, and A fetches it', async () => {
    const m = machines();
    const baseB = git(m.b.root, 'rev-parse', 'HEAD');
    dropTask(m.a, 'ship', { agent: 'command', command: AGENT, runs_on: ['machine-b'], merge: 'auto' }, 'Add the feature.');
    const onA = await agentq(['run', '--once', '--project', m.a.root], {}, 60_000);
    assert.equal(onA.code, 1, 'A takes the task in and leaves it to B');
    assert.match(onA.stderr, /ship left queued: .*runs_on \[machine-b\]/);

    const onB = await agentq(['run', '--once', '--label', 'machine-b', '--project', m.b.root], {}, 60_000);
    assert.equal(onB.code, 0, onB.stderr);
    assert.match(onB.stderr, /pushed +#\d+ ship → origin\/agentq\/ship \(2 commits\)/);
    assert.ok(!fs.existsSync(path.join(m.b.done, 'ship.md')), 'B writes no result file for a task filed on A');

    const sync = await agentq(['sync', '--project', m.a.root], {}, 60_000);
    assert.equal(sync.code, 0, sync.stderr);
    assert.ok(fs.existsSync(path.join(m.a.done, 'ship.md')), 'the result file lands in A, where the task was filed');
    const fm = resultOf(m, 'ship');
    assert.equal(fm.status, 'completed');
    assert.equal(fm.ran_on, os.hostname());
    assert.equal(fm.branch, 'agentq/ship');
    assert.equal(fm.pushed_to, 'origin/agentq/ship');
    assert.equal(fm.push_error, undefined);
    const commits = fm.commits as string[];
    assert.equal(commits.length, 2);
    assert.match(commits[0]!, /^[0-9a-f]{12} agent: add feature\.txt$/);
    assert.match(commits[1]!, /^[0-9a-f]{12} agentq: ship$/);

    const pushed = remoteRef(m.remote, 'refs/heads/agentq/ship');
    assert.ok(pushed?.startsWith(commits[1]!.slice(0, 12)), `the remote's agentq/ship (${pushed}) is the last commit`);
    assert.equal(git(m.b.root, 'rev-parse', 'HEAD'), baseB, "B's own branch is untouched: pushing replaces merge: auto");
    assert.ok(!fs.existsSync(path.join(m.b.root, 'feature.txt')));
    assert.equal(git(m.b.root, 'rev-parse', 'refs/remotes/origin/agentq/ship'), pushed, "B's remote-tracking branch follows the push");

    git(m.a.root, 'fetch', '-q', 'origin');
    assert.equal(git(m.a.root, 'show', 'origin/agentq/ship:feature.txt'), 'from B');
    assert.equal(git(m.a.root, 'show', 'origin/agentq/ship:leftover.txt'), 'left', 'what the agent left uncommitted was committed and pushed too');

    const show = await agentq(['show', 'ship', '--project', m.a.root]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /pushed_to: +origin\/agentq\/ship/, 'the shared store tells A where to fetch from');
  });

  it('a refusal is final and never forced: a branch of that name on the remote (not a fast-forward), a hook that declines; the task still completes with push_error', async () => {
    const m = machines();
    // Another machine's branch of the same name is already on the remote.
    git(m.a.root, 'switch', '-q', '-c', 'agentq/clash');
    git(m.a.root, 'commit', '-q', '--allow-empty', '-m', "A's own work");
    git(m.a.root, 'push', '-q', 'origin', 'agentq/clash');
    const theirs = remoteRef(m.remote, 'refs/heads/agentq/clash');
    dropTask(m.b, 'clash', { agent: 'command', command: AGENT }, 'x');
    const first = await agentq(['run', '--once', '--project', m.b.root], {}, 60_000);
    assert.equal(first.code, 0, first.stderr);
    const clash = resultOf(m, 'clash');
    assert.equal(clash.status, 'completed');
    assert.equal(clash.pushed_to, undefined);
    assert.match(String(clash.push_error), /^git push origin agentq\/clash: \[rejected\] \((non-fast-forward|fetch first)\) — the remote branch of that name has commits this one lacks .*; not forced$/);
    assert.equal(remoteRef(m.remote, 'refs/heads/agentq/clash'), theirs, "the remote keeps A's branch");
    assert.match(git(m.b.root, 'log', '--format=%s', 'agentq/clash'), /agentq: clash\nagent: add feature\.txt/, "B's branch keeps the work");
    assert.match(first.stderr, /push +#\d+ clash failed: git push origin agentq\/clash: \[rejected\]/);
    assert.doesNotMatch(first.stderr, /trying again/, 'a refusal is not tried again');

    const hook = path.join(m.remote, 'hooks', 'pre-receive');
    fs.writeFileSync(hook, '#!/bin/sh\necho "no pushes today" >&2\nexit 1\n');
    fs.chmodSync(hook, 0o755);
    dropTask(m.b, 'declined', { agent: 'command', command: AGENT }, 'x');
    const second = await agentq(['run', '--once', '--project', m.b.root], {}, 60_000);
    assert.equal(second.code, 0, second.stderr);
    const declined = resultOf(m, 'declined');
    assert.equal(declined.status, 'completed');
    assert.equal(declined.branch, 'agentq/declined');
    assert.equal(declined.push_error, 'git push origin agentq/declined: [remote rejected] (pre-receive hook declined) (remote: no pushes today)');
    assert.equal(remoteRef(m.remote, 'refs/heads/agentq/declined'), null);
    assert.equal(git(m.b.root, 'show', 'agentq/declined:feature.txt'), 'from B', 'the branch stays in B');
  });

  it('tries an unreachable remote again (1 s, 2 s, 4 s): pushed once it is back, or push_error after the last try', async () => {
    const m = machines();
    const away = `${m.remote}.away`;
    fs.renameSync(m.remote, away);
    dropTask(m.b, 'later', { agent: 'command', command: AGENT }, 'x');
    const child = spawn(AGENTQ, ['run', '--once', '--project', m.b.root], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    try {
      await waitFor(() => /push +#\d+ later failed, trying again in 1\.0s: git push origin agentq\/later: .*does not appear to be a git repository/.test(stderr), 60_000, 'a failed push tried again');
      fs.renameSync(away, m.remote);
      assert.equal(await exited, 0, stderr);
    } finally {
      child.kill('SIGKILL');
    }
    const later = resultOf(m, 'later');
    assert.equal(later.pushed_to, 'origin/agentq/later');
    assert.equal(later.push_error, undefined);
    assert.ok(remoteRef(m.remote, 'refs/heads/agentq/later'));

    fs.rmSync(m.remote, { recursive: true });
    dropTask(m.b, 'gone', { agent: 'command', command: AGENT }, 'x');
    const r = await agentq(['run', '--once', '--project', m.b.root], {}, 60_000);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr.match(/push +#\d+ gone failed, trying again/g)?.length, 3, 'four tries in all');
    const gone = resultOf(m, 'gone');
    assert.equal(gone.status, 'completed');
    assert.match(String(gone.push_error), /^git push origin agentq\/gone: fatal: '.*remote\.git' does not appear to be a git repository; fatal: Could not read from remote repository\.$/);
    assert.equal(git(m.b.root, 'show', 'agentq/gone:leftover.txt'), 'left');
  });

  it('a remote name this checkout lacks is recorded at once; a URL in workspace_push is refused (exit 2)', async () => {
    const m = machines({ workspace_push: 'upstream' });
    dropTask(m.b, 'nowhere', { agent: 'command', command: AGENT }, 'x');
    const r = await agentq(['run', '--once', '--project', m.b.root], {}, 60_000);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(resultOf(m, 'nowhere').push_error, 'git push upstream agentq/nowhere: this checkout has no remote named "upstream" (workspace_push; see git remote -v)');

    fs.writeFileSync(m.b.config, YAML.stringify({ workspace_push: 'https://example.com/x.git' }));
    const bad = await agentq(['run', '--once', '--project', m.b.root]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /workspace_push: not a git remote name \(e\.g\. origin; a URL is not accepted/);
  });
});
