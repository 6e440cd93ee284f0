/**
 * The verification gate's parts: running verify commands (real `sh`, logs, timeouts, a stop),
 * the tail and the note handed back to the agent, the retry window, the agents an
 * `agent: auto` task passes over, and the budget a verify loop shares.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { emptyStats } from '../../src/agents/runner.ts';
import type { Attempt, AttemptOutcome } from '../../src/core/types.ts';
import type { NewVerification } from '../../src/store/store.ts';
import { followUp, handBack } from '../../src/scheduler/follow-up.ts';
import { agentsOutOfVerifyRetries, currentRun, lastLines, remainingBudget, runVerifications, verifyFailureNote, verifyFailureReason } from '../../src/scheduler/verify.ts';

const attempt = (outcome: AttemptOutcome, agent = 'claude', costUsd: number | null = null): Pick<Attempt, 'agent' | 'outcome' | 'stats'> => ({ agent, outcome, stats: { ...emptyStats(), costUsd } });

function verifyIn(dir: string, commands: string[], over: { timeoutMs?: number; signal?: AbortSignal } = {}) {
  const recorded: NewVerification[] = [];
  const run = runVerifications({
    commands,
    attemptId: crypto.randomUUID(),
    cwd: dir,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    timeoutMs: over.timeoutMs ?? 30_000,
    graceMs: 200,
    logFile: (k) => path.join(dir, 'logs', `1.verify-${k}.log`),
    signal: over.signal ?? new AbortController().signal,
    record: async (v) => recorded.push(v),
  });
  return { run, recorded };
}

describe('runVerifications', () => {
  it('runs the commands in order in the workspace until one fails, logging stdout and stderr together and recording each', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-verify-'));
    fs.writeFileSync(path.join(dir, 'a.txt'), 'A\n');
    const { run, recorded } = verifyIn(dir, ['cat a.txt', 'echo out; echo err >&2; exit 5', 'touch never-run']);
    const result = await run;
    assert.equal(result.kind, 'failed');
    assert.deepEqual(recorded.map((v) => [v.number, v.command, v.exitCode, v.timedOut]), [
      [1, 'cat a.txt', 0, false],
      [2, 'echo out; echo err >&2; exit 5', 5, false],
    ]);
    assert.equal(recorded[1]!.outputTail, 'out\nerr\n');
    assert.equal(fs.readFileSync(recorded[1]!.outputPath!, 'utf8'), 'out\nerr\n');
    assert.equal(recorded[0]!.outputTail, 'A\n');
    assert.ok(!fs.existsSync(path.join(dir, 'never-run')), 'the commands after the failing one are not run');
    assert.equal(result.kind === 'failed' && verifyFailureReason(result.failed), 'verify failed: `echo out; echo err >&2; exit 5` exited with code 5');
  });

  it('passes with every command at 0 (and with none); a command past its time limit fails, timed out; a stop is not judged', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-verify-'));
    assert.equal((await verifyIn(dir, ['true', 'exit 0']).run).kind, 'passed');
    assert.equal((await verifyIn(dir, []).run).kind, 'passed');
    const slow = verifyIn(dir, ['echo started; sleep 30'], { timeoutMs: 300 });
    const timed = await slow.run;
    assert.equal(timed.kind, 'failed');
    assert.deepEqual(slow.recorded.map((v) => [v.exitCode, v.timedOut, v.outputTail]), [[null, true, 'started\n']]);
    assert.equal(timed.kind === 'failed' && verifyFailureReason(timed.failed, 300), 'verify failed: `echo started; sleep 30` timed out after 300ms and was stopped');
    const controller = new AbortController();
    const stopped = verifyIn(dir, ['sleep 30', 'true'], { signal: controller.signal });
    setTimeout(() => controller.abort('cancel'), 200);
    assert.deepEqual(await stopped.run, { kind: 'stopped', runs: [] });
    assert.deepEqual(stopped.recorded, [], 'a stopped command is not recorded');
  });
});

describe('what the agent is told', () => {
  it('keeps the last 200 lines of the output', () => {
    const text = Array.from({ length: 250 }, (_, i) => `line ${i + 1}`).join('\n') + '\n';
    const tail = lastLines(text);
    assert.equal(tail.split('\n').filter(Boolean).length, 200);
    assert.ok(tail.startsWith('line 51\n') && tail.endsWith('line 250\n'));
    assert.equal(lastLines('a\nb\n', 5), 'a\nb\n');
  });

  it('names the command, its exit code and output, and asks for a fix, not a change of the check', () => {
    const note = verifyFailureNote({ command: 'npm test', exitCode: 1, timedOut: false, outputTail: '1 failing\n' });
    assert.match(note, /The command `npm test` \(run by sh -c in the workspace\) exited with code 1\./);
    assert.match(note, /```\n1 failing\n```/);
    assert.match(note, /do not change the check itself/);
    assert.match(verifyFailureNote({ command: 'x', exitCode: 2, timedOut: false, outputTail: '' }), /It printed nothing\./);
  });
});

describe('hand-back after a failed verification or a stall', () => {
  const row = (number: number, outcome: AttemptOutcome, agent = 'claude', sessionId: string | null = 's1'): Attempt => ({
    id: `a${number}`,
    taskId: 1,
    number,
    workerId: 'w',
    host: null,
    agent,
    model: null,
    outcome,
    reason: outcome === 'stalled' ? 'stalled: no activity for 5.0s' : 'x',
    exitCode: 0,
    startedAt: 0,
    finishedAt: 1,
    logPath: null,
    durationMs: 1,
    stats: { ...emptyStats(), sessionId },
  });
  const failedRun = { attemptId: 'a1', taskId: 1, attemptNumber: 1, number: 1, command: 'npm test', exitCode: 1, timedOut: false, durationMs: 5, outputPath: null, outputTail: 'boom\n', startedAt: 0 };
  const claude = { agent: 'claude', canResume: true };

  it('resumes the session of a verify_failed attempt with the failure, skipping interrupted and rate-limited ones', () => {
    const back = handBack([row(1, 'verify_failed'), row(2, 'rate_limited'), row(3, 'interrupted')], [failedRun], claude);
    assert.equal(back?.kind, 'resume');
    assert.equal(back?.kind === 'resume' && back.sessionId, 's1');
    assert.match(back?.kind === 'resume' ? back.prompt : '', /The command `npm test` .* exited with code 1\.[\s\S]*boom/);
  });

  it('resumes a stalled session with the stall note', () => {
    const back = handBack([row(1, 'stalled')], [], claude);
    assert.match(back?.kind === 'resume' ? back.prompt : '', /your previous run \(attempt 1\) stopped responding/);
  });

  it('starts afresh on another agent, a runner that cannot resume, no session, or no recorded verification', () => {
    assert.deepEqual(handBack([row(1, 'verify_failed')], [failedRun], { agent: 'command', canResume: false }), { kind: 'afresh' });
    assert.deepEqual(handBack([row(1, 'verify_failed', 'claude')], [failedRun], { agent: 'codex', canResume: true }), { kind: 'afresh' });
    assert.deepEqual(handBack([row(1, 'stalled', 'claude', null)], [], claude), { kind: 'afresh' });
    assert.deepEqual(handBack([row(1, 'verify_failed')], [], claude), { kind: 'afresh' });
  });

  it('leaves other ends to the usual rules', () => {
    assert.equal(handBack([], [], claude), null);
    assert.equal(handBack([row(1, 'verify_failed'), row(2, 'failed')], [failedRun], claude), null);
    assert.equal(handBack([row(1, 'blocked')], [], claude), null);
  });

  it('an attempt stopped for a takeover is not skipped: the release after it comes later', () => {
    assert.equal(handBack([row(1, 'verify_failed'), { ...row(2, 'interrupted'), reason: 'taken over' }], [failedRun], claude), null);
  });
});

describe('followUp: one prompt rule for a failed verification, a stall, an answer and a release', () => {
  const row = (number: number, outcome: AttemptOutcome, reason = 'x'): Attempt => ({
    id: `a${number}`,
    taskId: 1,
    number,
    workerId: 'w',
    host: null,
    agent: 'claude',
    model: null,
    outcome,
    reason,
    exitCode: 0,
    startedAt: 0,
    finishedAt: 1,
    logPath: null,
    durationMs: 1,
    stats: { ...emptyStats(), sessionId: `s${number}` },
  });
  const failedRun = { attemptId: 'a1', taskId: 1, attemptNumber: 1, number: 1, command: 'npm test', exitCode: 1, timedOut: false, durationMs: 5, outputPath: null, outputTail: 'boom\n', startedAt: 0 };
  const task = (answer: string | null = null, question: string | null = null) => ({ agent: 'claude', answer, question, stats: { ...emptyStats(), sessionId: 'sT' } });

  it('a failed verification resumes its attempt\'s session with the command and output', () => {
    const f = followUp(task(), 'P', [row(1, 'verify_failed')], [failedRun], true);
    assert.equal(f.resumeSessionId, 's1');
    assert.match(f.prompt, /^Note from agent-queue: you reported the task done, but its verification failed\.[\s\S]*boom/);
  });

  it('a stall resumes its attempt\'s session with the stall note', () => {
    const f = followUp(task(), 'P', [row(1, 'stalled', 'stalled: no activity for 5.0s')], [], true);
    assert.equal(f.resumeSessionId, 's1');
    assert.match(f.prompt, /^Note from agent-queue: your previous run \(attempt 1\) stopped responding/);
  });

  it('an answer resumes the task\'s session with it; a verify failure after the answer wins (the session has the answer)', () => {
    assert.deepEqual(followUp(task('Blue', 'Which colour?'), 'P', [row(1, 'blocked')], [], true), { prompt: 'The answer to your question:\n\nBlue', resumeSessionId: 'sT' });
    const f = followUp(task('Blue', 'Which colour?'), 'P', [row(1, 'blocked'), { ...row(2, 'verify_failed'), id: 'a1' }], [failedRun], true);
    assert.doesNotMatch(f.prompt, /Blue/);
    assert.match(f.prompt, /verification failed/);
  });

  it('a release after an attempt stopped for the takeover resumes with the note, not an older verify failure', () => {
    const earlier = [row(1, 'verify_failed'), row(2, 'interrupted', 'taken over')];
    assert.deepEqual(followUp(task('Finish the parser.'), 'P', earlier, [failedRun], true), { prompt: 'Finish the parser.', resumeSessionId: 'sT' });
  });

  it('a release note pending beside a newer-looking verify failure (a takeover while queued leaves no attempt) follows the failure note', () => {
    const f = followUp(task('I fixed the config.'), 'P', [row(1, 'verify_failed')], [failedRun], true);
    assert.equal(f.resumeSessionId, 's1');
    assert.match(f.prompt, /verification failed[\s\S]*\n\n---\nI fixed the config\.$/);
  });

  it('afresh (a runner that cannot resume): the prompt with its failure history, the answer or note restated', () => {
    assert.deepEqual(followUp(task(), 'P', [row(1, 'verify_failed')], [failedRun], false), { prompt: 'P', resumeSessionId: null });
    assert.deepEqual(followUp(task('Blue', 'Which colour?'), 'P', [row(1, 'stalled')], [], false), {
      prompt: 'P\n\n---\nYou asked: Which colour?\nThe answer: Blue\n',
      resumeSessionId: null,
    });
    assert.deepEqual(followUp(task(), 'P', [row(1, 'failed')], [], true), { prompt: 'P', resumeSessionId: null });
  });
});

describe('retries, fallback and budget', () => {
  it('the current run of retries starts after the last agentq retry', () => {
    const history = [attempt('verify_failed'), attempt('failed'), attempt('rate_limited'), attempt('verify_failed'), attempt('interrupted')];
    assert.deepEqual(currentRun(history, 2).map((a) => a.outcome), ['failed', 'rate_limited', 'verify_failed', 'interrupted']);
    assert.deepEqual(currentRun(history, 0), []);
    assert.equal(currentRun(history, 9).length, 5);
  });

  it('passes over the agents with verify_retries failed verifications', () => {
    const history = [attempt('verify_failed'), attempt('verify_failed'), attempt('verify_failed', 'codex'), attempt('failed', 'codex')];
    assert.deepEqual([...agentsOutOfVerifyRetries(history, 2)], ['claude']);
    assert.deepEqual([...agentsOutOfVerifyRetries(history, 1)].sort(), ['claude', 'codex']);
    assert.deepEqual([...agentsOutOfVerifyRetries(history, 3)], []);
  });

  it('with verify, max_cost_usd covers every attempt: what earlier ones spent is gone', () => {
    const history = [attempt('verify_failed', 'claude', 0.3), attempt('rate_limited', 'claude', 0.05), attempt('stalled', 'claude', null)];
    assert.ok(Math.abs(remainingBudget(1, true, history)! - 0.65) < 1e-9);
    assert.equal(remainingBudget(1, false, history), 1, 'without verify: each attempt has the whole budget');
    assert.equal(remainingBudget(null, true, history), null);
    assert.ok(remainingBudget(0.2, true, history)! < 0, 'spent');
  });
});
