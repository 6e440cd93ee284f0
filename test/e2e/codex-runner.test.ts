/**
 * CodexRunner with the REAL Codex CLI (node_modules/.bin/codex, 0.169) against the fake
 * OpenAI Responses API: what is particular to Codex. What every runner promises (completes,
 * events, env tag, cancel, deadline, 429 usage limit, 401, 5xx, spawn failure) is in the
 * runner contract, test/contract/codex-runner.test.ts. Here: thread ids and token sums over
 * a resumed thread, a command that really runs, and a 429 with `Retry-After` cut short.
 * Cases run concurrently.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CodexRunner } from '../../src/agents/codex/codex-runner.ts';
import { CODEX, resolveAgentCommand } from '../../src/agents/resolve-command.ts';
import type { AgentEvent, RunOutcome } from '../../src/agents/runner.ts';
import { makeClaudeSandbox, makeRunRequest, processesWithEnv, type ClaudeSandbox } from '../fixtures/claude-env.ts';
import { killWithEnv } from '../fixtures/procs.ts';
import { codexProviderArgs, startFakeOpenAI, type FakeOpenAI } from '../fixtures/fake-openai.ts';

const RUN = randomUUID().slice(0, 8);
const P = (name: string) => `codex-${name}-${RUN}: do the thing`;
const CODEX_BIN = resolveAgentCommand(CODEX, { env: {}, projectDir: process.cwd() });

let fake: FakeOpenAI;
let runner: CodexRunner;
const sandboxes: ClaudeSandbox[] = [];
const attemptIds: string[] = [];

before(async () => {
  fake = await startFakeOpenAI({
    rules: [
      { match: P('text'), turns: [{ text: 'Hello from {{model}}', usage: { input_tokens: 150, cached_tokens: 50, output_tokens: 12 } }, { text: 'resumed ok' }] },
      { match: P('exec'), turns: [{ exec: 'echo made-by-codex > made.txt && echo wrote' }, { text: 'Created made.txt' }] },
      { match: P('rate'), turns: [{ error: { status: 429, headers: { 'retry-after': '20' } }, times: 'always' }] },
    ],
  });
  // The provider goes in through extraArgs; the key env var just has to be set.
  runner = new CodexRunner({ command: CODEX_BIN, graceMs: 1000, extraArgs: codexProviderArgs(fake.baseUrl) });
});

after(async () => {
  killWithEnv('AGENTQ_ATTEMPT_ID', ...attemptIds);
  await fake?.close();
  for (const s of sandboxes) s.cleanup();
});

interface Run { outcome: RunOutcome; events: AgentEvent[]; elapsedMs: number; attemptId: string; sandbox: ClaudeSandbox }

async function run(prompt: string, opts: { model?: string | null; timeoutMs?: number; resume?: string; sandbox?: ClaudeSandbox } = {}): Promise<Run> {
  const sandbox = opts.sandbox ?? makeClaudeSandbox('agentq-codex-');
  if (!opts.sandbox) sandboxes.push(sandbox);
  const codexHome = join(sandbox.root, 'codex-home');
  mkdirSync(codexHome, { recursive: true });
  const events: AgentEvent[] = [];
  const request = makeRunRequest({
    sandbox,
    baseUrl: fake.baseUrl,
    prompt,
    model: opts.model === undefined ? 'gpt-5.5' : opts.model,
    timeoutMs: opts.timeoutMs ?? 20_000,
    env: { CODEX_HOME: codexHome, FAKE_OPENAI_API_KEY: 'test-key' },
    onEvent: (e) => events.push(e),
  });
  request.resumeSessionId = opts.resume ?? null;
  attemptIds.push(request.attemptId);
  const t0 = Date.now();
  const outcome = await runner.run(request);
  return { outcome, events, elapsedMs: Date.now() - t0, attemptId: request.attemptId, sandbox };
}

describe('CodexRunner with the real codex CLI', { concurrency: true }, () => {
  it('text answer: completed, thread id, tokens, model; then resume the thread', async () => {
    const r = await run(P('text'));
    assert.equal(r.outcome.kind, 'completed', JSON.stringify(r.outcome));
    assert.ok(r.outcome.kind === 'completed');
    assert.equal(r.outcome.result, 'Hello from gpt-5.5');
    assert.match(r.outcome.stats.sessionId ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(r.outcome.stats.inputTokens, 150);
    assert.equal(r.outcome.stats.outputTokens, 12);
    assert.equal(r.outcome.stats.costUsd, null);
    assert.equal(r.outcome.stats.model, 'gpt-5.5');
    assert.equal(r.outcome.exitCode, 0);
    assert.ok(r.events.some((e) => e.type === 'session' && e.sessionId === r.outcome.stats.sessionId));
    const again = await run('and now?', { resume: r.outcome.stats.sessionId!, sandbox: r.sandbox });
    assert.equal(again.outcome.kind, 'completed', JSON.stringify(again.outcome));
    assert.ok(again.outcome.kind === 'completed');
    assert.equal(again.outcome.result, 'resumed ok');
    assert.equal(again.outcome.stats.sessionId, r.outcome.stats.sessionId);
    assert.equal(again.outcome.stats.inputTokens, 150 + 120, 'codex sums usage over the thread');
    console.log(`text ${r.elapsedMs} ms, resume ${again.elapsedMs} ms`);
  });

  it('an exec_command tool call really creates the file in the cwd', async () => {
    const r = await run(P('exec'));
    assert.equal(r.outcome.kind, 'completed', JSON.stringify(r.outcome));
    assert.ok(r.outcome.kind === 'completed');
    assert.equal(r.outcome.result, 'Created made.txt');
    const file = join(r.sandbox.project, 'made.txt');
    assert.ok(existsSync(file));
    assert.equal(readFileSync(file, 'utf8'), 'made-by-codex\n');
    assert.ok(r.events.some((e) => e.type === 'progress' && e.text.includes('echo made-by-codex')));
    assert.equal(r.outcome.stats.inputTokens, 240);
    console.log(`exec ${r.elapsedMs} ms`);
  });

  it('429 with Retry-After: 20 → rate_limited at the first "Reconnecting..." (codex alone: 5 × 20 s)', async () => {
    const r = await run(P('rate'));
    console.log(`rate_limited after ${r.elapsedMs} ms; requests: ${fake.responseRequests(P('rate')).length}`);
    assert.equal(r.outcome.kind, 'rate_limited', JSON.stringify(r.outcome));
    assert.match((r.outcome as { reason: string }).reason, /429/);
    // Stopped at the first retry: codex makes its second request only after Retry-After (20 s).
    assert.equal(fake.responseRequests(P('rate')).length, 1);
    assert.deepEqual(processesWithEnv('AGENTQ_ATTEMPT_ID', r.attemptId), []);
  });
});
