/**
 * Issue #12's proofs with the real Claude Code CLI against the scripted Messages API:
 * - the verification gate: an agent that "fixes" nothing fails its `verify`, is resumed in
 *   the same session (`--resume`) with the failing command, its exit code and output, fixes
 *   it with a Bash tool call, and completes with two verifications recorded; an `agent: auto`
 *   task whose verification keeps failing on claude completes on the next fallback agent;
 * - the stall watchdog: a Bash tool call running `sleep 3600` without output is stopped after
 *   `stall_timeout`, its whole tree gone, and the retry resumes the session; a tool command
 *   that prints every second for 20 s is not stalled.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { claudeEnv, makeClaudeSandbox } from '../fixtures/claude-env.ts';
import { startFakeAnthropic } from '../fixtures/fake-anthropic.ts';
import { AGENTQ, agentq as run, agentqJson, dropTask, listDir, makeProject, readResult } from '../fixtures/project.ts';
import { pidsWithEnv, waitFor } from '../fixtures/procs.ts';

type Fake = Awaited<ReturnType<typeof startFakeAnthropic>>;
type Shown = { attemptHistory: Array<{ id: string; number: number; agent: string; outcome: string; reason: string | null; startedAt: number; finishedAt: number | null; stats: { sessionId: string | null } }> };

/** The session id of the `system/init` line of an attempt's stdout log. */
function initSession(paths: { logs: string }, taskId: unknown, name: string, number: number): string | null {
  const log = fs.readFileSync(path.join(paths.logs, `${String(taskId)}-${name}`, `${number}.stdout.log`), 'utf8');
  return /"subtype":"init"[^\n]*"session_id":"([^"]+)"/.exec(log)?.[1] ?? null;
}

describe('Claude Code: verify and stall_timeout', { concurrency: false }, () => {
  let fake: Fake;
  let env: Record<string, string>;
  before(async () => {
    fake = await startFakeAnthropic();
    env = claudeEnv(fake.url, makeClaudeSandbox().config);
  });
  after(async () => fake.close());

  it('a verify failure resumes the same session with the command, exit code and output; the fix passes; two verifications recorded', async () => {
    const paths = makeProject();
    fake.setRules([{ match: 'write the greeting', turns: [{ text: 'Done, I think.' }, { bash: 'echo hello > greeting.txt' }, { text: 'Wrote greeting.txt' }] }]);
    const check = 'test "$(cat greeting.txt 2>&1)" = hello || { echo "greeting.txt does not say hello"; exit 7; }';
    dropTask(paths, 'greet', { retries: 2, verify: check }, 'Please write the greeting file.');
    const r = await run(['run', '--once', '--project', paths.root], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(fs.readFileSync(path.join(paths.root, 'greeting.txt'), 'utf8'), 'hello\n');

    const { fm, body } = readResult(path.join(paths.done, 'greet.md'));
    assert.equal(body, 'Wrote greeting.txt');
    assert.equal(fm.attempts, 2);
    assert.deepEqual((fm.verifications as Array<{ attempt: number; command: string; exit_code: number }>).map((v) => [v.attempt, v.command, v.exit_code]), [
      [1, check, 7],
      [2, check, 0],
    ]);

    const turns = fake.turnRequests('write the greeting');
    const session = turns[0]!.sessionId;
    assert.ok(session);
    const resumed = turns.find((q) => q.assistantMessages === 1)!;
    assert.equal(resumed.sessionId, session, 'the resumed request belongs to the first session');
    const sent = JSON.stringify(resumed.body);
    assert.match(sent, /you reported the task done, but its verification failed/);
    assert.match(sent, /exited with code 7/);
    assert.match(sent, /greeting\.txt does not say hello/, 'the output of the failing command');
    assert.ok(!sent.includes('Note from agent-queue: this task was tried before'), 'a resumed session gets the failure, not the whole prompt again');

    const show = await agentqJson<Shown>(['show', 'greet', '--json', '--project', paths.root], env);
    assert.deepEqual(show.attemptHistory.map((a) => [a.outcome, a.stats.sessionId]), [['verify_failed', session], ['completed', session]]);
    assert.equal(initSession(paths, fm.task_id, 'greet', 2), session, 'attempt 2 ran claude --resume on the session');
  });

  it('agent: auto: after verify_retries failed verifications on claude, the next fallback agent takes the task and completes it', async () => {
    const paths = makeProject({ fallback: { default: ['claude', 'command'] }, agents: { command: { command: 'touch stamp.txt; echo stamped by command' } } });
    fake.setRules([{ match: 'stamp the file', turns: [{ text: 'Stamped it.' }] }]);
    dropTask(paths, 'stamp', { agent: 'auto', retries: 3, verify: 'test -f stamp.txt', verify_retries: 2, max_cost_usd: 1 }, 'Please stamp the file.');
    const r = await run(['run', '--once', '--project', paths.root], env);
    assert.equal(r.code, 0, r.stderr);
    const { fm, body } = readResult(path.join(paths.done, 'stamp.md'));
    assert.equal(fm.agent, 'command');
    assert.equal(body, 'stamped by command');
    const show = await agentqJson<Shown>(['show', 'stamp', '--json', '--project', paths.root], env);
    assert.deepEqual(show.attemptHistory.map((a) => [a.agent, a.outcome]), [
      ['claude', 'verify_failed'],
      ['claude', 'verify_failed'],
      ['command', 'completed'],
    ]);
    const [first, second] = show.attemptHistory;
    assert.equal(second!.stats.sessionId, first!.stats.sessionId, 'the second claude attempt resumed the first session');
    assert.deepEqual((fm.verifications as Array<{ attempt: number; exit_code: number }>).map((v) => [v.attempt, v.exit_code]), [[1, 1], [2, 1], [3, 0]]);
  });

  it('stall_timeout: a silent `sleep 3600` tool call is stopped, its tree gone, and the retry resumes the session', async (t) => {
    const paths = makeProject({ poll_interval: '200ms' });
    // Stopped with SIGTERM, the CLI may still send the killed command's result and get one more
    // answer before the SIGKILL: the turn after the stall is scripted twice, for that run and the resumed one.
    const carried = { text: 'Carried on after the stall.' };
    fake.setRules([{ match: 'wait for the thing', turns: [{ bash: 'sleep 3600', timeoutMs: 600_000 }, carried, carried] }]);
    dropTask(paths, 'waits', { retries: 1, retry_backoff: '1s', stall_timeout: '5s' }, 'Please wait for the thing.');
    const child = spawn(AGENTQ, ['run', '--project', paths.root], { env, stdio: 'ignore' });
    let show: Shown = { attemptHistory: [] };
    try {
      await waitFor(async () => {
        const r = await run(['show', 'waits', '--json', '--project', paths.root], env);
        if (r.code !== 0) return false; // not taken in yet
        show = JSON.parse(r.stdout) as Shown;
        return show.attemptHistory[0]?.outcome === 'stalled';
      }, 120_000, 'the first attempt to stall');
      const stalled = show.attemptHistory[0]!;
      assert.deepEqual(pidsWithEnv('AGENTQ_ATTEMPT_ID', stalled.id), [], 'no process of the stalled attempt is left (claude, its shell, sleep)');
      const quiet = Number(/no activity for ([\d.]+)s/.exec(stalled.reason ?? '')?.[1]) * 1000;
      assert.ok(quiet >= 5000, stalled.reason ?? '');
      const toolCall = fake.turnRequests('wait for the thing').find((q) => q.answer === 'tool_use')!;
      t.diagnostic(
        `stall called ${Math.round(quiet - 5000)} ms after the stall time (quiet ${stalled.reason?.match(/no activity for \S+/)?.[0]}); ` +
          `the attempt ended ${stalled.finishedAt! - toolCall.time} ms after the tool call was served (the CLI's last line comes ~3 s into the command)`,
      );
      assert.ok(stalled.finishedAt! - stalled.startedAt < 60_000, 'stopped long before the sleep would end');
      await waitFor(() => listDir(paths.done).includes('waits.md'), 120_000, 'the resumed attempt to complete');
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    const { fm, body } = readResult(path.join(paths.done, 'waits.md'));
    assert.equal(body, 'Carried on after the stall.');
    show = await agentqJson<Shown>(['show', 'waits', '--json', '--project', paths.root], env);
    const session = show.attemptHistory[0]!.stats.sessionId;
    assert.ok(session);
    assert.deepEqual(show.attemptHistory.map((a) => [a.outcome, a.stats.sessionId]), [['stalled', session], ['completed', session]]);
    assert.equal(initSession(paths, fm.task_id, 'waits', 2), session, 'attempt 2 ran claude --resume on the session');
    const resumed = fake.turnRequests('wait for the thing').filter((q) => q.sessionId === session).at(-1)!;
    assert.match(JSON.stringify(resumed.body), /your previous run \(attempt 1\) stopped responding/);
  });

  it('stall_timeout: a tool command that prints every second for 20 s is not stalled', async () => {
    const paths = makeProject();
    fake.setRules([{ match: 'count slowly', turns: [{ bash: 'for i in $(seq 20); do echo $i; sleep 1; done', timeoutMs: 600_000 }, { text: 'Counted to 20.' }] }]);
    dropTask(paths, 'counts', { retries: 0, stall_timeout: '5s' }, 'Please count slowly.');
    const r = await run(['run', '--once', '--project', paths.root], env, 180_000);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readResult(path.join(paths.done, 'counts.md')).body, 'Counted to 20.');
    const show = await agentqJson<Shown>(['show', 'counts', '--json', '--project', paths.root], env);
    assert.deepEqual(show.attemptHistory.map((a) => a.outcome), ['completed']);
    assert.ok(show.attemptHistory[0]!.finishedAt! - show.attemptHistory[0]!.startedAt >= 20_000, 'the command ran its 20 s');
  });
});
