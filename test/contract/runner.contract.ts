/**
 * The AgentRunner contract: one suite, run against every runner (claude, codex, gemini,
 * command, …). A {@link RunnerHarness} per runner starts its scripted fake API (if any),
 * builds a runner and expresses the contract's scripted {@link Behaviour}s in its own terms
 * (a fake-API rule, an environment knob, a shell command). What a runner cannot do it
 * declares in {@link RunnerCapabilities}; those cases are skipped with a reason.
 *
 * Wiring a runner in is one file, e.g. `test/contract/codex-runner.test.ts`:
 * `runnerContract('codex', harness)`. See the existing ones for harness examples.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import type { AgentEvent, AgentRunner, RunOutcome, RunRequest } from '../../src/agents/runner.ts';
import { makeClaudeSandbox, type ClaudeSandbox } from '../fixtures/claude-env.ts';
import { killWithEnv, pidsWithEnv } from '../fixtures/procs.ts';
import { makeTask } from '../fixtures/specs.ts';

/** What a runner can report or do; cases that need a capability it lacks are skipped. */
export interface RunnerCapabilities {
  /**
   * The runner starts a local process (through `runAgentProcess`): it emits `spawned`, tags
   * the process with `AGENTQ_ATTEMPT_ID`, and reports a command that cannot start.
   */
  process: boolean;
  /** `stats.sessionId` is set on completion, and a `session` event carries the same id. */
  reportsSession: boolean;
  /** `stats.inputTokens` / `outputTokens` are set (> 0) on completion; else both null. */
  reportsTokens: boolean;
  /** `stats.costUsd` is set (> 0, USD) on completion; else null. */
  reportsCost: boolean;
  /** The agent has a rate-limit signal the runner turns into `rate_limited`. */
  rateLimits: boolean;
  /** The runner turns a reset time stated by the rate limit into `resetAt` (needs `rateLimits`). */
  parsesResetAt: boolean;
  /** The agent has an authentication-failure signal the runner turns into `auth_failed`. */
  authFailures: boolean;
  /** `retryable` of the outcome of the `failure` behaviour, as the runner documents it. */
  failureRetryable: boolean;
}

/**
 * A scripted behaviour, expressed by each harness in its own terms:
 * - `answer`: the agent completes with `text` as its final answer;
 * - `slow`: the agent answers `text` only after `delayMs` ms (long: for cancel and timeout);
 * - `rate_limit`: the API answers HTTP 429; `resetAt` (epoch ms) is the reset time the
 *   script states when the harness can state one (null: none);
 * - `auth_failure`: the API answers HTTP 401;
 * - `failure`: a retryable failure: HTTP 500 with the agent's own retries turned off, or a
 *   non-zero exit for `command`;
 * - `missing_command`: the agent's command is `command`, which does not exist.
 */
export type Behaviour =
  | { kind: 'answer'; text: string }
  | { kind: 'slow'; text: string; delayMs: number }
  | { kind: 'rate_limit'; resetAt: number | null }
  | { kind: 'auth_failure' }
  | { kind: 'failure' }
  | { kind: 'missing_command'; command: string };

/** What a harness hands the contract for one attempt. */
export interface PreparedAttempt {
  runner: AgentRunner;
  /** The request to run: the contract's base request with this runner's env, model, task fields. */
  request: RunRequest;
}

/** An attempt while it runs, for {@link RunnerHarness.isMidRun}. */
export interface LiveAttempt {
  request: RunRequest;
  /** Events so far. */
  events: readonly AgentEvent[];
}

/** One runner's side of the contract. */
export interface RunnerHarness {
  readonly capabilities: RunnerCapabilities;
  /** Called once before the cases (e.g. start the scripted fake API). */
  start?(): Promise<void>;
  /** Called once after the cases (e.g. close the fake API). */
  stop?(): Promise<void>;
  /**
   * The runner and request for one attempt with `behaviour`. `base` is complete and runnable
   * as is (unique prompt, attempt id, sandbox cwd and log paths, deadline, signal, onEvent,
   * `model: null`, the parent env without `AGENTQ_*`); the harness adds what its agent needs
   * (fake-API env, model, `task.command`, …) and scripts the behaviour for `base.prompt`.
   * `sandbox.config` is free for the agent's HOME / config directory. The contract keeps
   * its own `attemptId`, `signal`, `deadline` and `onEvent` on the returned request.
   */
  prepare(behaviour: Behaviour, base: RunRequest, sandbox: ClaudeSandbox): PreparedAttempt | Promise<PreparedAttempt>;
  /**
   * Whether a `slow` attempt has got into its run far enough to be stopped mid-run (e.g. the
   * agent reported its session, or a `command` printed its first line). Polled every 50 ms.
   */
  isMidRun(attempt: LiveAttempt): boolean;
  /** How many cases run at once. Default 4. */
  concurrency?: number;
}

/** The contract's result of one attempt. */
interface Run {
  outcome: RunOutcome;
  events: AgentEvent[];
  request: RunRequest;
  sandbox: ClaudeSandbox;
  /** Attempt-tagged pids seen mid-run, just before the abort (`cancelMidRun` only). */
  taggedMidRun: number[];
}

const ATTEMPT_TAG = 'AGENTQ_ATTEMPT_ID';
/** Delay of `slow` answers, ms: far beyond any case's timeout, so only a stop ends them. */
const SLOW_MS = 120_000;
/** Deadline of the timeout case, ms from the start of the attempt. */
const SHORT_DEADLINE_MS = 1_500;
/** Per-case limit, ms: a runner that waits out an agent's own retries (minutes) fails here. */
const CASE_TIMEOUT_MS = 60_000;

/**
 * Registers the contract suite for one runner: `describe('AgentRunner contract: <name>')`
 * with one case per promise the runner makes (completes, events, env tag, cancel, deadline,
 * rate limit, auth failure, retryable failure, spawn failure).
 */
export function runnerContract(name: string, harness: RunnerHarness): void {
  const caps = harness.capabilities;
  const run = randomUUID().slice(0, 8);
  const sandboxes: ClaudeSandbox[] = [];
  const attemptIds: string[] = [];
  let counter = 0;

  /**
   * Runs one attempt in a fresh sandbox. `deadlineMs`: deadline from the start, default
   * 50 s (inside the case limit, so a hang ends as a readable `timed_out`). `cancelMidRun`:
   * once the harness says the attempt is mid-run, note the tagged pids and abort with reason `cancel`.
   */
  async function attempt(behaviour: Behaviour, options: { deadlineMs?: number; cancelMidRun?: boolean } = {}): Promise<Run> {
    const sandbox = makeClaudeSandbox(`agentq-contract-${name}-`);
    sandboxes.push(sandbox);
    const attemptId = `agentq-contract-${randomUUID()}`;
    attemptIds.push(attemptId);
    const prompt = `contract-${name}-${behaviour.kind}-${++counter}-${run}: do the thing`;
    const timeoutMs = options.deadlineMs ?? 50_000;
    const controller = new AbortController();
    const events: AgentEvent[] = [];
    const env: Record<string, string | undefined> = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AGENTQ_')) env[k] = v;
    const base: RunRequest = {
      task: makeTask({ name: `contract-${behaviour.kind}`, prompt, timeoutMs }),
      attemptId,
      prompt,
      resumeSessionId: null,
      systemPromptAppend: null,
      model: null,
      cwd: sandbox.project,
      env,
      deadline: Date.now() + timeoutMs,
      stdoutLog: join(sandbox.logs, `${attemptId}.stdout.log`),
      stderrLog: join(sandbox.logs, `${attemptId}.stderr.log`),
      signal: controller.signal,
      onEvent: (e) => events.push(e),
    };
    const { runner, request } = await harness.prepare(behaviour, base, sandbox);
    // These stay the contract's, whatever the harness did; the deadline counts from now.
    request.attemptId = attemptId;
    request.onEvent = base.onEvent;
    request.signal = controller.signal;
    request.deadline = Date.now() + timeoutMs;

    const taggedMidRun: number[] = [];
    let poll: NodeJS.Timeout | null = null;
    if (options.cancelMidRun) {
      poll = setInterval(() => {
        if (!harness.isMidRun({ request, events })) return;
        clearInterval(poll!);
        poll = null;
        taggedMidRun.push(...pidsWithEnv(ATTEMPT_TAG, attemptId));
        controller.abort('cancel');
      }, 50);
    }
    const started = Date.now();
    try {
      const outcome = await runner.run(request);
      const detail = 'reason' in outcome ? `: ${outcome.reason.slice(0, 160)}` : '';
      console.log(`  ${name} ${behaviour.kind} → ${outcome.kind} in ${Date.now() - started} ms${detail}`);
      return { outcome, events, request, sandbox, taggedMidRun };
    } finally {
      if (poll) clearInterval(poll);
    }
  }

  /** The outcome and the tail of the attempt's logs, for assertion messages. */
  function explain(r: Run): string {
    const tail = (path: string) => {
      try {
        return readFileSync(path, 'utf8').slice(-1500);
      } catch {
        return '(none)';
      }
    };
    return `outcome: ${JSON.stringify(r.outcome)}\nevents: ${JSON.stringify(r.events.map((e) => e.type))}\nstdout: ${tail(r.request.stdoutLog)}\nstderr: ${tail(r.request.stderrLog)}`;
  }

  function assertNoSurvivors(r: Run): void {
    assert.deepEqual(pidsWithEnv(ATTEMPT_TAG, r.request.attemptId), [], `no process tagged ${ATTEMPT_TAG}=${r.request.attemptId} may survive`);
  }

  function skipUnless(t: TestContext, capability: boolean, reason: string): boolean {
    if (capability) return false;
    t.skip(`${name}: ${reason}`);
    return true;
  }

  // Shared runs: several cases check different promises of the same attempt.
  const memo = <T>(f: () => Promise<T>): (() => Promise<T>) => {
    let p: Promise<T> | null = null;
    return () => (p ??= f());
  };
  const answerText = `contract answer ${run}`;
  const completedRun = memo(() => attempt({ kind: 'answer', text: answerText }));
  const cancelledRun = memo(() => attempt({ kind: 'slow', text: 'too late', delayMs: SLOW_MS }, { cancelMidRun: true }));

  describe(`AgentRunner contract: ${name}`, { concurrency: harness.concurrency ?? 4 }, () => {
    before(async () => {
      await harness.start?.();
    });
    after(async () => {
      // Belt and braces: a failed case must not leave agents running.
      killWithEnv(ATTEMPT_TAG, ...attemptIds);
      await harness.stop?.();
      for (const s of sandboxes) s.cleanup();
    });

    it('completes: result holds the answer, stdout logged, stats as reported', { timeout: CASE_TIMEOUT_MS }, async () => {
      const r = await completedRun();
      assert.equal(r.outcome.kind, 'completed', explain(r));
      assert.ok(r.outcome.kind === 'completed' && r.outcome.result.includes(answerText), explain(r));
      assert.ok(statSync(r.request.stdoutLog).size > 0, 'the stdout log is not empty');
      const { stats } = r.outcome;
      if (caps.reportsSession) assert.ok(typeof stats.sessionId === 'string' && stats.sessionId.length > 0, `sessionId ${stats.sessionId}`);
      else assert.equal(stats.sessionId, null);
      if (caps.reportsTokens) {
        assert.ok((stats.inputTokens ?? 0) > 0, `inputTokens ${stats.inputTokens}`);
        assert.ok((stats.outputTokens ?? 0) > 0, `outputTokens ${stats.outputTokens}`);
      } else {
        assert.deepEqual([stats.inputTokens, stats.outputTokens], [null, null]);
      }
      if (caps.reportsCost) assert.ok((stats.costUsd ?? 0) > 0, `costUsd ${stats.costUsd}`);
      else assert.equal(stats.costUsd, null);
    });

    it('events: spawned first (process runners), session with the reported id', { timeout: CASE_TIMEOUT_MS }, async () => {
      const r = await completedRun();
      assert.equal(r.outcome.kind, 'completed', explain(r));
      const spawned = r.events.filter((e) => e.type === 'spawned');
      if (caps.process) {
        assert.equal(spawned.length, 1, explain(r));
        assert.equal(r.events[0]?.type, 'spawned', 'spawned comes before any other event');
        assert.ok(r.events[0]?.type === 'spawned' && r.events[0].pid > 0);
      } else {
        assert.equal(spawned.length, 0, 'a runner without a process emits no spawned event');
      }
      const sessions = r.events.filter((e) => e.type === 'session');
      if (caps.reportsSession) {
        assert.ok(sessions.length > 0, explain(r));
        assert.ok(sessions.every((e) => e.type === 'session' && e.sessionId === r.outcome.stats.sessionId), JSON.stringify(sessions));
      } else {
        assert.equal(sessions.length, 0);
      }
    });

    it(`env tag: the agent process carries ${ATTEMPT_TAG}`, { timeout: CASE_TIMEOUT_MS }, async (t) => {
      if (skipUnless(t, caps.process, 'starts no process (capabilities.process false), nothing to tag')) return;
      const r = await cancelledRun();
      const spawned = r.events.find((e) => e.type === 'spawned');
      assert.ok(spawned?.type === 'spawned', explain(r));
      assert.ok(r.taggedMidRun.includes(spawned.pid), `pid ${spawned.pid} tagged; tagged mid-run: ${JSON.stringify(r.taggedMidRun)}\n${explain(r)}`);
    });

    it('cancel: aborting the signal mid-run → cancelled, nothing left running', { timeout: CASE_TIMEOUT_MS }, async () => {
      const r = await cancelledRun();
      assert.equal(r.outcome.kind, 'cancelled', explain(r));
      assert.match(r.outcome.kind === 'cancelled' ? r.outcome.reason : '', /cancel/);
      assertNoSurvivors(r);
    });

    it('deadline: a short deadline → timed_out, nothing left running', { timeout: CASE_TIMEOUT_MS }, async () => {
      const r = await attempt({ kind: 'slow', text: 'too late', delayMs: SLOW_MS }, { deadlineMs: SHORT_DEADLINE_MS });
      assert.equal(r.outcome.kind, 'timed_out', explain(r));
      assert.match(r.outcome.kind === 'timed_out' ? r.outcome.reason : '', /timed out/);
      if (caps.process) assert.ok(r.events.some((e) => e.type === 'spawned'), 'the process was started before the deadline');
      assertNoSurvivors(r);
    });

    it('rate limit: HTTP 429 → rate_limited (resetAt from the stated reset when parsed)', { timeout: CASE_TIMEOUT_MS }, async (t) => {
      if (skipUnless(t, caps.rateLimits, 'declares no rate-limit signal (capabilities.rateLimits false)')) return;
      const stated = caps.parsesResetAt ? Date.now() + 3_600_000 : null;
      const r = await attempt({ kind: 'rate_limit', resetAt: stated });
      assert.equal(r.outcome.kind, 'rate_limited', explain(r));
      assert.ok(r.outcome.kind === 'rate_limited' && r.outcome.reason.length > 0);
      if (stated !== null) {
        const resetAt = r.outcome.kind === 'rate_limited' ? r.outcome.resetAt : null;
        // Agents may print the reset to the minute (codex: "try again at 8:21 PM").
        assert.ok(resetAt !== null && Math.abs(resetAt - stated) <= 120_000, `resetAt ${resetAt}, stated ${stated}\n${explain(r)}`);
      }
      assertNoSurvivors(r);
    });

    it('auth: HTTP 401 → auth_failed', { timeout: CASE_TIMEOUT_MS }, async (t) => {
      if (skipUnless(t, caps.authFailures, 'declares no authentication signal (capabilities.authFailures false)')) return;
      const r = await attempt({ kind: 'auth_failure' });
      assert.equal(r.outcome.kind, 'auth_failed', explain(r));
      assert.ok(r.outcome.kind === 'auth_failed' && r.outcome.reason.length > 0);
      assertNoSurvivors(r);
    });

    it(`failure: a server error / non-zero exit → failed, retryable: ${caps.failureRetryable}`, { timeout: CASE_TIMEOUT_MS }, async () => {
      const r = await attempt({ kind: 'failure' });
      assert.equal(r.outcome.kind, 'failed', explain(r));
      assert.equal(r.outcome.kind === 'failed' && r.outcome.retryable, caps.failureRetryable, explain(r));
      assert.ok(r.outcome.kind === 'failed' && r.outcome.reason.length > 0);
    });

    it('spawn failure: a command that does not exist → failed, not retryable, naming it', { timeout: CASE_TIMEOUT_MS }, async (t) => {
      if (skipUnless(t, caps.process, 'starts no process (capabilities.process false)')) return;
      const command = `/nonexistent/agentq-contract-${name}-${run}`;
      const r = await attempt({ kind: 'missing_command', command });
      assert.equal(r.outcome.kind, 'failed', explain(r));
      assert.equal(r.outcome.kind === 'failed' && r.outcome.retryable, false);
      assert.ok(r.outcome.kind === 'failed' && r.outcome.reason.includes(command), explain(r));
      assert.ok(!r.events.some((e) => e.type === 'spawned'), 'nothing was spawned');
    });
  });
}
