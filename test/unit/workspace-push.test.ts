/**
 * pushBranch with real git: the tries and their waits on a transient failure, and the time
 * limit of one try, which kills everything the push started (here a pre-push hook).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pushBranch } from '../../src/workspace/push.ts';
import { waitFor } from '../fixtures/procs.ts';

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@localhost', ...args], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

/** A checkout on branch agentq/x with one commit, whose origin is `remote` (not created). */
function checkout(): { dir: string; remote: string } {
  const root = mkdtempSync(join(tmpdir(), 'agentq-push-unit-'));
  const dir = join(root, 'work');
  const remote = join(root, 'remote.git');
  git(root, 'init', '-q', '-b', 'agentq/x', dir);
  git(dir, 'commit', '-q', '--allow-empty', '-m', 'one');
  git(dir, 'remote', 'add', 'origin', remote);
  return { dir, remote };
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
};

describe('pushBranch', () => {
  it('tries a transient failure once per wait plus once, reporting each retry, then gives up without throwing', async () => {
    const { dir } = checkout();
    const retries: Array<[string, number]> = [];
    const r = await pushBranch({ cwd: dir, branch: 'agentq/x', remote: 'origin', retryDelaysMs: [5, 10], onRetry: (e, ms) => retries.push([e, ms]) });
    assert.equal(r.ok, false);
    assert.equal(r.tries, 3);
    assert.deepEqual(retries.map(([, ms]) => ms), [5, 10]);
    assert.match(retries[0]![0], /^git push origin agentq\/x: fatal: '.*remote\.git' does not appear to be a git repository/);
    assert.equal(!r.ok && r.final, false);
  });

  it('pushes once the remote exists: pushedTo is REMOTE/BRANCH', async () => {
    const { dir, remote } = checkout();
    git(dir, 'init', '-q', '--bare', remote);
    const r = await pushBranch({ cwd: dir, branch: 'agentq/x', remote: 'origin' });
    assert.deepEqual(r, { ok: true, pushedTo: 'origin/agentq/x', tries: 1 });
    assert.equal(git(remote, 'rev-parse', 'refs/heads/agentq/x'), git(dir, 'rev-parse', 'HEAD'));
  });

  it('kills a try past its time limit with what it started (a hanging pre-push hook), and says so', async () => {
    const { dir, remote } = checkout();
    git(dir, 'init', '-q', '--bare', remote);
    const pidFile = join(dir, '.git', 'hook.pid');
    const hook = join(dir, '.git', 'hooks', 'pre-push');
    writeFileSync(hook, `#!/bin/sh\necho $$ > '${pidFile}'\nexec sleep 60\n`);
    chmodSync(hook, 0o755);
    const r = await pushBranch({ cwd: dir, branch: 'agentq/x', remote: 'origin', retryDelaysMs: [], timeoutMs: 500 });
    assert.equal(r.ok, false);
    assert.match(!r.ok ? r.error : '', /^git push origin agentq\/x: fatal: timed out after 500 ms$/);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    await waitFor(() => !alive(pid), 10_000, 'the hook to be gone');
    assert.throws(() => git(remote, 'rev-parse', '--verify', '-q', 'refs/heads/agentq/x'), 'nothing was pushed');
  });
});
