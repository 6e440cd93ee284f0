/**
 * The verification gate and the stall watchdog through `agentq run` with `agent: command`
 * (no model API needed): a verify failure is retried with the failure in the prompt, every
 * verification is recorded (result file, `agentq show`, logs), a verify command that hangs
 * is stopped at `verify_timeout`, and a silent command stalls while one that prints does not.
 * The real Claude Code proofs (resume with `--resume`) are in claude-verify.test.ts.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { agentq, agentqJson, dropTask, makeProject, readResult } from '../fixtures/project.ts';
import { pidsWithEnv } from '../fixtures/procs.ts';

describe('verify and stall_timeout with agent: command', { concurrency: false }, () => {
  it('a failed verification is retried with its command, exit code and output in the prompt; two verifications recorded', async () => {
    const paths = makeProject({ verify_timeout: '30s' });
    // The agent "fixes" nothing the first time; the second time (its prompt names the failure) it writes the file.
    const agent = 'n=$(ls prompt-*.txt 2>/dev/null | wc -l); cat > prompt-$((n+1)).txt; if [ "$n" -ge 1 ]; then echo fixed > fixed.txt; fi; echo "did my best"';
    dropTask(paths, 'fix', { agent: 'command', command: agent, retries: 2, workspace: 'inplace', verify: ['echo checking; test -f fixed.txt || { echo "fixed.txt is missing" >&2; exit 3; }', 'grep -q fixed fixed.txt'] }, 'Please write fixed.txt.');
    const r = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /requeued\s+#1 fix: verify failed: `echo checking; test -f fixed\.txt .*` exited with code 3/);

    const second = fs.readFileSync(path.join(paths.root, 'prompt-2.txt'), 'utf8');
    assert.match(second, /^Please write fixed\.txt\./);
    assert.match(second, /- attempt 1 failed its verification: verify failed: `echo checking; test -f fixed\.txt/);
    assert.match(second, /The command `echo checking; test -f fixed\.txt .*` \(run by sh -c in the workspace\) exited with code 3\./);
    assert.match(second, /```\nchecking\nfixed\.txt is missing\n```/, 'the output, stdout and stderr together');

    const { fm, body } = readResult(path.join(paths.done, 'fix.md'));
    assert.equal(body, 'did my best');
    assert.equal(fm.attempts, 2);
    const verifications = fm.verifications as Array<Record<string, unknown>>;
    assert.deepEqual(
      verifications.map((v) => [v.attempt, v.exit_code]),
      [[1, 3], [2, 0], [2, 0]],
      'attempt 1 stopped at its first failing command; attempt 2 ran both',
    );
    const log = path.join(paths.logs, `${fm.task_id}-fix`, '1.verify-1.log');
    assert.equal(verifications[0]!.output, log);
    assert.equal(fs.readFileSync(log, 'utf8'), 'checking\nfixed.txt is missing\n');
    assert.ok(verifications.every((v) => typeof v.duration_ms === 'number'));

    const show = await agentqJson(['show', 'fix', '--json', '--project', paths.root]);
    assert.deepEqual(show.attemptHistory.map((a: { outcome: string }) => a.outcome), ['verify_failed', 'completed']);
    assert.deepEqual(show.verifications.map((v: { attemptNumber: number; number: number; exitCode: number }) => [v.attemptNumber, v.number, v.exitCode]), [[1, 1, 3], [2, 1, 0], [2, 2, 0]]);
    assert.match(show.verifications[0].outputTail, /fixed\.txt is missing/);
    const text = await agentq(['show', 'fix', '--project', paths.root]);
    assert.match(text.stdout, /verifications:\n.*#\s+VERIFY\s+EXIT/);
    assert.match(text.stdout, /\n1\s+1\s+3\s+\S+\s+echo checking/);
    const logs = await agentq(['logs', 'fix', '--project', paths.root]);
    assert.match(logs.stdout, /==> attempt 1 verify 1 \(.*1\.verify-1\.log\) <==\nchecking\nfixed\.txt is missing\n/);
  });

  it('a verify command past verify_timeout is stopped (its tree too) and fails the task once no retries are left', async () => {
    const paths = makeProject();
    const marker = crypto.randomUUID();
    dropTask(paths, 'hang', { agent: 'command', command: 'echo ok', workspace: 'inplace', verify: `AGENTQ_TEST_MARK=${marker} sh -c 'sleep 60'`, verify_timeout: '1s' }, 'Hang in verification.');
    const r = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(r.code, 1, r.stderr);
    const { fm } = readResult(path.join(paths.failed, 'hang.md'));
    assert.equal(fm.status, 'failed');
    assert.match(String(fm.failed_reason), /^verify failed: `.*sleep 60'` timed out after 1\.0s and was stopped$/);
    assert.deepEqual((fm.verifications as Array<Record<string, unknown>>).map((v) => [v.exit_code, v.timed_out]), [[null, true]]);
    assert.deepEqual(pidsWithEnv('AGENTQ_TEST_MARK', marker), [], 'the verify command is gone');
    const show = await agentqJson(['show', 'hang', '--json', '--project', paths.root]);
    assert.deepEqual(show.attemptHistory.map((a: { outcome: string }) => a.outcome), ['verify_failed']);
  });

  it('a task with verify: [] is not verified even when config sets verify; a failed agent is not verified', async () => {
    const paths = makeProject({ verify: 'exit 1' });
    dropTask(paths, 'unchecked', { agent: 'command', command: 'echo fine', workspace: 'inplace', verify: [] }, 'No checks.');
    dropTask(paths, 'broken', { agent: 'command', command: 'exit 4', workspace: 'inplace' }, 'Fails by itself.');
    const r = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(readResult(path.join(paths.done, 'unchecked.md')).fm.verifications, undefined);
    const broken = readResult(path.join(paths.failed, 'broken.md')).fm;
    assert.equal(broken.verifications, undefined, 'nothing to verify after a failure');
    assert.match(String(broken.failed_reason), /exit/);
  });

  it('agent: auto: when every agent of the fallback list has failed verify_retries verifications, the task fails, retries left or not', async () => {
    const paths = makeProject({ fallback: { default: ['command'] }, agents: { command: { command: 'echo tried' } } });
    dropTask(paths, 'never', { agent: 'auto', retries: 5, verify: 'echo "still wrong"; exit 1', verify_retries: 2, workspace: 'inplace' }, 'Never passes.');
    const r = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(r.code, 1, r.stderr);
    const { fm } = readResult(path.join(paths.failed, 'never.md'));
    assert.equal(fm.status, 'failed');
    assert.match(String(fm.failed_reason), /^verify failed 2 times on every agent of the fallback list \(command\); the last: verify failed: `echo "still wrong"; exit 1` exited with code 1$/);
    const show = await agentqJson(['show', 'never', '--json', '--project', paths.root]);
    assert.deepEqual(show.attemptHistory.map((a: { agent: string; outcome: string }) => [a.agent, a.outcome]), [
      ['command', 'verify_failed'],
      ['command', 'verify_failed'],
      ['auto', 'failed'],
    ]);
  });

  it('stall_timeout: a silent agent is stopped and the attempt ends stalled; one that keeps printing is not', async () => {
    const paths = makeProject({ stall_timeout: '2s' });
    const marker = crypto.randomUUID();
    dropTask(paths, 'silent', { agent: 'command', command: `AGENTQ_TEST_MARK=${marker} sleep 60`, workspace: 'inplace' }, 'Say nothing.');
    dropTask(paths, 'chatty', { agent: 'command', command: 'for i in 1 2 3 4 5 6 7 8; do echo $i; sleep 0.5; done', workspace: 'inplace' }, 'Keep talking.');
    const t0 = Date.now();
    const r = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(r.code, 1, r.stderr);
    const silent = readResult(path.join(paths.failed, 'silent.md')).fm;
    assert.match(String(silent.failed_reason), /^stalled: no activity for \d+(\.\d)?s \(stall_timeout 2\.0s: no output, stream event or work in its tool commands\); the agent was stopped$/);
    assert.deepEqual(pidsWithEnv('AGENTQ_TEST_MARK', marker), [], 'the silent command is gone');
    const show = await agentqJson(['show', 'silent', '--json', '--project', paths.root]);
    assert.deepEqual(show.attemptHistory.map((a: { outcome: string }) => a.outcome), ['stalled']);
    assert.ok(Date.now() - t0 < 50_000, 'stopped long before its 60 s sleep ended');
    assert.equal(readResult(path.join(paths.done, 'chatty.md')).body, '1\n2\n3\n4\n5\n6\n7\n8');
  });
});
