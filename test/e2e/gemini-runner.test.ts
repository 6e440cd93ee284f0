/**
 * GeminiRunner with the REAL Gemini CLI (node_modules/.bin/gemini, @google/gemini-cli 0.61)
 * against the fake Gemini API (test/fixtures/fake-gemini.ts): what is particular to Gemini
 * CLI. What every runner promises (completes, events, env tag, cancel, deadline, 429 with
 * "retry in Ns", 401, 5xx, spawn failure) is in the runner contract,
 * test/contract/gemini-runner.test.ts. Here: the request on the wire and token mapping, a
 * shell tool call that really runs, resume, exit 41, and a timeout that leaves no process
 * of the self-relaunching CLI (its launcher ignores SIGTERM) behind.
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
import { killWithEnv } from '../fixtures/procs.ts';
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
      {
        match: P('tool'),
        turns: [
          { shell: 'echo made-by-gemini > made.txt && echo wrote', usage: { promptTokenCount: 120, candidatesTokenCount: 7 } },
          { text: 'Created made.txt, a file written by the scripted shell call.' },
        ],
      },
      { match: P('resume'), turns: [{ text: 'first answer' }, { text: 'second answer' }] },
      { match: P('timeout'), turns: [{ shell: 'sleep 300' }, { text: 'slept' }] },
    ],
  });
});

after(async () => {
  killWithEnv('AGENTQ_ATTEMPT_ID', ...attemptIds);
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
    signal: new AbortController().signal,
    onEvent: (e) => events.push(e),
  };
  const timer = options.whileRunning ? setInterval(() => options.whileRunning!(attemptId), 100) : null;
  const start = Date.now();
  try {
    const outcome = await runner.run(request);
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
  it('shell tool call really runs in cwd; final text after the tool result; model, key and tokens as sent', async () => {
    const r = await run(P('tool'));
    console.log(`  tool call: ${r.elapsedMs} ms`);
    assert.equal(r.outcome.kind, 'completed', explain(r));
    assert.equal(r.outcome.kind === 'completed' && r.outcome.result, 'Created made.txt, a file written by the scripted shell call.');
    assert.equal(readFileSync(join(r.sandbox.project, 'made.txt'), 'utf8'), 'made-by-gemini\n');
    assert.ok(r.events.some((e) => e.type === 'progress' && e.text.startsWith('run_shell_command: echo made-by-gemini')));
    assert.equal(r.outcome.stats.model, MODEL);
    // Two turns: 120+100 prompt tokens, 7+10 output tokens (the fake's default is 100/10).
    assert.deepEqual([r.outcome.stats.inputTokens, r.outcome.stats.outputTokens, r.outcome.stats.costUsd, r.outcome.stats.numTurns], [220, 17, null, 2]);
    const [first, second] = fake.turnRequests(P('tool'));
    assert.match(first?.url ?? '', new RegExp(`/v1beta/models/${MODEL}:streamGenerateContent\\?alt=sse`));
    assert.equal(first?.headers['x-goog-api-key'], 'test');
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

  it('no GEMINI_API_KEY → exit 41 → auth_failed', async () => {
    const r = await run(P('nokey'), { env: { GEMINI_API_KEY: undefined } });
    assert.equal(r.outcome.kind, 'auth_failed', explain(r));
    assert.equal(r.outcome.exitCode, 41);
    assert.match(r.outcome.kind === 'auth_failed' ? r.outcome.reason : '', /exit 41.*GEMINI_API_KEY/);
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
