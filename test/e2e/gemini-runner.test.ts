/**
 * GeminiRunner with the REAL Gemini CLI (node_modules/.bin/gemini, @google/gemini-cli 0.61)
 * against the fake Gemini API (test/fixtures/fake-gemini.ts): text answers, a shell tool call
 * that really runs, resume, auth failures and rate limits cut short, and a timeout that
 * leaves no process of the (self-relaunching) CLI behind.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GeminiRunner } from '../../src/agents/gemini/gemini-runner.ts';
import { GEMINI, resolveAgentCommandWithSource } from '../../src/agents/resolve-command.ts';
import type { AgentEvent, RunOutcome, RunRequest } from '../../src/agents/runner.ts';
import { makeClaudeSandbox, makeTask, processesWithEnv, type ClaudeSandbox } from '../fixtures/claude-env.ts';
import { geminiEnv, startFakeGemini, type FakeGemini } from '../fixtures/fake-gemini.ts';

const GEMINI_BIN = join(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'gemini');
const RUN = randomUUID().slice(0, 8);
const P = (name: string) => `gemini-e2e-${name}-${RUN}: do the thing`;
const MODEL = 'gemini-2.5-flash';

let fake: FakeGemini;
const sandboxes: ClaudeSandbox[] = [];
const attemptIds: string[] = [];
const runner = new GeminiRunner({ command: [GEMINI_BIN], graceMs: 1500 });

before(async () => {
  fake = await startFakeGemini({
    rules: [
      { match: P('text'), turns: [{ text: 'Hello from {{model}}', usage: { promptTokenCount: 120, candidatesTokenCount: 7 } }] },
      { match: P('tool'), turns: [{ shell: 'echo made-by-gemini > made.txt && echo wrote' }, { text: 'Created made.txt, a file written by the scripted shell call.' }] },
      { match: P('resume'), turns: [{ text: 'first answer' }, { text: 'second answer' }] },
      { match: P('auth'), turns: [{ error: { status: 401 }, times: 'always' }] },
      { match: P('rate'), turns: [{ error: { status: 429, message: 'Quota exceeded for metric requests per minute. Please retry in 30s.' }, times: 'always' }] },
      { match: P('timeout'), turns: [{ shell: 'sleep 300' }, { text: 'slept' }] },
      { match: P('cancel'), turns: [{ shell: 'sleep 300' }, { text: 'slept' }] },
    ],
  });
});

after(async () => {
  for (const id of attemptIds) {
    for (const p of processesWithEnv('AGENTQ_ATTEMPT_ID', id)) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  await fake?.close();
  for (const s of sandboxes) s.cleanup();
});

interface Run {
  outcome: RunOutcome;
  events: AgentEvent[];
  elapsedMs: number;
  attemptId: string;
  sandbox: ClaudeSandbox;
}

interface RunOptions {
  timeoutMs?: number;
  sandbox?: ClaudeSandbox;
  resumeSessionId?: string;
  env?: Record<string, string | undefined>;
  runner?: GeminiRunner;
  signal?: AbortSignal;
  onEvent?: (e: AgentEvent) => void;
  /** Called every 100 ms while the run is going (e.g. /proc scans). */
  whileRunning?: (attemptId: string) => void;
}

async function run(prompt: string, options: RunOptions = {}): Promise<Run> {
  const sandbox = options.sandbox ?? makeClaudeSandbox('agentq-gemini-');
  if (!options.sandbox) sandboxes.push(sandbox);
  const attemptId = `agentq-gemini-test-${randomUUID()}`;
  attemptIds.push(attemptId);
  const timeoutMs = options.timeoutMs ?? 30_000;
  const events: AgentEvent[] = [];
  const request: RunRequest = {
    task: makeTask({ agent: 'gemini', prompt, model: MODEL, timeoutMs }),
    attemptId,
    prompt,
    resumeSessionId: options.resumeSessionId ?? null,
    model: MODEL,
    cwd: sandbox.project,
    // TMPDIR: the CLI writes a report file per API error to os.tmpdir(); keep them in the sandbox.
    env: { ...geminiEnv(fake.url, sandbox.config), TMPDIR: sandbox.root, ...options.env },
    deadline: Date.now() + timeoutMs,
    stdoutLog: join(sandbox.logs, `${attemptId}.stdout.log`),
    stderrLog: join(sandbox.logs, `${attemptId}.stderr.log`),
    signal: options.signal ?? new AbortController().signal,
    onEvent: (e) => {
      events.push(e);
      options.onEvent?.(e);
    },
  };
  const timer = options.whileRunning ? setInterval(() => options.whileRunning!(attemptId), 100) : null;
  const start = Date.now();
  try {
    const outcome = await (options.runner ?? runner).run(request);
    return { outcome, events, elapsedMs: Date.now() - start, attemptId, sandbox };
  } finally {
    if (timer) clearInterval(timer);
  }
}

function explain(r: Run): string {
  const log = (kind: string) => {
    try {
      return readFileSync(join(r.sandbox.logs, `${r.attemptId}.${kind}.log`), 'utf8').slice(-1500);
    } catch {
      return '';
    }
  };
  return `${JSON.stringify(r.outcome)}\nstdout:\n${log('stdout')}\nstderr:\n${log('stderr')}`;
}

describe('GeminiRunner with the real CLI', { concurrency: 4 }, () => {
  it('text answer → completed with session id, model and tokens', async () => {
    const r = await run(P('text'));
    console.log(`  text answer: ${r.elapsedMs} ms`);
    assert.equal(r.outcome.kind, 'completed', explain(r));
    assert.equal(r.outcome.kind === 'completed' && r.outcome.result, `Hello from ${MODEL}`);
    assert.match(r.outcome.stats.sessionId ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(r.outcome.stats.model, MODEL);
    assert.deepEqual([r.outcome.stats.inputTokens, r.outcome.stats.outputTokens, r.outcome.stats.costUsd, r.outcome.stats.numTurns], [120, 7, null, 1]);
    assert.equal(r.outcome.exitCode, 0);
    assert.ok(r.events.some((e) => e.type === 'session' && e.sessionId === r.outcome.stats.sessionId));
    const req = fake.turnRequests(P('text'))[0];
    assert.match(req?.url ?? '', new RegExp(`/v1beta/models/${MODEL}:streamGenerateContent\\?alt=sse`));
    assert.equal(req?.headers['x-goog-api-key'], 'test');
  });

  it('shell tool call really runs in cwd; final text after the tool result', async () => {
    const r = await run(P('tool'));
    console.log(`  tool call: ${r.elapsedMs} ms`);
    assert.equal(r.outcome.kind, 'completed', explain(r));
    assert.equal(r.outcome.kind === 'completed' && r.outcome.result, 'Created made.txt, a file written by the scripted shell call.');
    assert.equal(readFileSync(join(r.sandbox.project, 'made.txt'), 'utf8'), 'made-by-gemini\n');
    assert.ok(r.events.some((e) => e.type === 'progress' && e.text.startsWith('run_shell_command: echo made-by-gemini')));
    assert.equal(r.outcome.stats.numTurns, 2);
    const second = fake.turnRequests(P('tool'))[1];
    assert.match(JSON.stringify(second?.body), /functionResponse.*wrote/);
  });

  it('resume: same session id, earlier conversation sent again', async () => {
    const first = await run(P('resume'));
    assert.equal(first.outcome.kind, 'completed', explain(first));
    const id = first.outcome.stats.sessionId!;
    const second = await run('and again', { sandbox: first.sandbox, resumeSessionId: id });
    assert.equal(second.outcome.kind, 'completed', explain(second));
    assert.equal(second.outcome.kind === 'completed' && second.outcome.result, 'second answer');
    assert.equal(second.outcome.stats.sessionId, id);
    assert.equal(fake.turnRequests(P('resume')).at(-1)?.modelTurns, 1);
  });

  it('401 → auth_failed fast', async () => {
    const r = await run(P('auth'));
    const sinceRequest = Date.now() - fake.turnRequests(P('auth'))[0]!.time;
    console.log(`  401: ${r.outcome.kind} after ${r.elapsedMs} ms (${sinceRequest} ms after the API request)`);
    assert.equal(r.outcome.kind, 'auth_failed', explain(r));
    assert.match(r.outcome.kind === 'auth_failed' ? r.outcome.reason : '', /HTTP 401.*API key not valid/);
    assert.ok(sinceRequest < 5_000, 'not retried');
  });

  it('429 → rate_limited at the first failed attempt (stderr), resetAt from "retry in 30s"', async () => {
    const before = Date.now();
    const r = await run(P('rate'));
    const sinceRequest = Date.now() - fake.turnRequests(P('rate'))[0]!.time;
    console.log(`  429: ${r.outcome.kind} after ${r.elapsedMs} ms (${sinceRequest} ms after the first API request), ${fake.turnRequests(P('rate')).length} request(s)`);
    assert.equal(r.outcome.kind, 'rate_limited', explain(r));
    const resetAt = r.outcome.kind === 'rate_limited' ? r.outcome.resetAt : null;
    assert.ok(resetAt !== null && resetAt >= before + 30_000 && resetAt <= Date.now() + 30_000, `resetAt ${resetAt}`);
    assert.ok(sinceRequest < 5_000, 'seconds, not the CLI retry schedule (~3.5 min)');
    assert.equal(fake.turnRequests(P('rate')).length, 1);
    assert.deepEqual(processesWithEnv('AGENTQ_ATTEMPT_ID', r.attemptId), []);
  });

  it('no GEMINI_API_KEY → exit 41 → auth_failed', async () => {
    const r = await run(P('nokey'), { env: { GEMINI_API_KEY: undefined } });
    assert.equal(r.outcome.kind, 'auth_failed', explain(r));
    assert.equal(r.outcome.exitCode, 41);
    assert.match(r.outcome.kind === 'auth_failed' ? r.outcome.reason : '', /exit 41.*GEMINI_API_KEY/);
  });

  it('missing command → failed, not retryable', async () => {
    const r = await run(P('missing'), { runner: new GeminiRunner({ command: ['/nonexistent/gemini'] }) });
    assert.equal(r.outcome.kind, 'failed');
    assert.equal(r.outcome.kind === 'failed' && r.outcome.retryable, false);
  });
});

describe('GeminiRunner timeout (alone: timing matters)', () => {
  it('timeout while "sleep 300" runs → timed_out; launcher, relaunched child and sleep all gone', async () => {
    const seen = new Map<number, string>();
    const r = await run(P('timeout'), {
      timeoutMs: 7_000,
      whileRunning: (id) => {
        for (const p of processesWithEnv('AGENTQ_ATTEMPT_ID', id)) seen.set(p.pid, p.cmdline);
      },
    });
    const kinds = [...seen.values()].map((c) => (c.includes('sleep 300') ? 'sleep' : c.includes('gemini') ? 'gemini' : 'other'));
    console.log(`  timeout: ${r.outcome.kind} after ${r.elapsedMs} ms; tagged processes seen: ${seen.size} (${kinds.join(', ')})`);
    assert.equal(r.outcome.kind, 'timed_out', explain(r));
    assert.ok(kinds.filter((k) => k === 'gemini').length >= 2, 'launcher and relaunched child were both seen');
    assert.ok(kinds.includes('sleep'), 'the sleep command ran');
    assert.deepEqual(processesWithEnv('AGENTQ_ATTEMPT_ID', r.attemptId), [], 'nothing tagged with the attempt id is left');
    assert.ok(r.elapsedMs < 7_000 + 4_000);
  });

  it('cancel while the shell command runs → cancelled within ~1 s, nothing left', async () => {
    const controller = new AbortController();
    let abortedAt = 0;
    const r = await run(P('cancel'), {
      timeoutMs: 15_000,
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'progress')
          setTimeout(() => {
            abortedAt = Date.now();
            controller.abort('cancel');
          }, 300);
      },
    });
    const stopMs = Date.now() - abortedAt;
    console.log(`  cancel: ${r.outcome.kind}, ${stopMs} ms from abort to outcome`);
    assert.equal(r.outcome.kind, 'cancelled', explain(r));
    assert.equal(r.outcome.kind === 'cancelled' && r.outcome.reason, 'cancelled (cancel)');
    assert.deepEqual(processesWithEnv('AGENTQ_ATTEMPT_ID', r.attemptId), []);
    assert.ok(stopMs < 3_000);
  });
});

describe('resolveAgentCommand (gemini)', () => {
  it('env wins, then PATH, then node_modules/.bin', () => {
    const s = makeClaudeSandbox('agentq-gemini-resolve-');
    sandboxes.push(s);
    assert.deepEqual(resolveAgentCommandWithSource(GEMINI, { env: { AGENTQ_GEMINI_COMMAND: 'node /x/gemini.js' }, projectDir: s.project }), {
      command: ['node', '/x/gemini.js'],
      source: 'env',
    });
    const found = resolveAgentCommandWithSource(GEMINI, { env: { PATH: '/nonexistent' }, projectDir: s.project });
    assert.equal(found.source, 'package');
    assert.ok(existsSync(found.command[0]!) && found.command[0]!.endsWith('/node_modules/.bin/gemini'));
  });
});
