/**
 * OpenAIRunner (src/agents/openai/openai-runner.ts) against the scripted chat-completions
 * API (test/fixtures/fake-openai-chat.ts) over real HTTP: streamed text, usage, session id,
 * the key from the environment; 429 with each kind of reset header, 401, 500, 400; cancel
 * and deadline mid-stream (the server sees the connection close); a refused connection; a
 * broken stream. Then one task through the real `agentq run`. Cases run concurrently.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OpenAIRunner } from '../../src/agents/openai/openai-runner.ts';
import { createRunners } from '../../src/agents/registry.ts';
import type { AgentEvent, RunOutcome, RunRequest } from '../../src/agents/runner.ts';
import { parseConfig, projectPaths } from '../../src/config/config.ts';
import { startFakeOpenAIChat, type FakeOpenAIChat, type RecordedChatRequest } from '../fixtures/fake-openai-chat.ts';
import { agentq, dropTask, makeProject, readResult } from '../fixtures/project.ts';
import { waitFor } from '../fixtures/procs.ts';
import { makeTask } from '../fixtures/specs.ts';

const RUN = randomUUID().slice(0, 8);
const P = (name: string) => `openai-${name}-${RUN}: answer me`;
const KEY_ENV = 'FAKE_CHAT_KEY';
const SLOW = { text: 'one two three four five six', chunkDelayMs: 3000 };

let fake: FakeOpenAIChat;
let runner: OpenAIRunner;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-openai-'));

before(async () => {
  fake = await startFakeOpenAIChat({
    models: ['gpt-test', 'llama3.2'],
    rules: [
      { match: P('text'), turns: [{ text: 'Hello from {{model}}.\nSecond line\nthird', usage: { prompt_tokens: 40, cached_tokens: 8, completion_tokens: 9 } }] },
      { match: P('every-chunk-usage'), turns: [{ text: 'a b c d', usageOnEveryChunk: true, usage: { prompt_tokens: 10, completion_tokens: 4 } }] },
      { match: P('length'), turns: [{ text: 'cut sho', finishReason: 'length' }] },
      { match: P('filter'), turns: [{ text: 'nope', finishReason: 'content_filter' }] },
      { match: P('429-seconds'), turns: [{ error: { status: 429, headers: { 'retry-after': '7' } }, times: 'always' }] },
      { match: P('429-date'), turns: [{ error: { status: 429, headers: { 'retry-after': new Date(Date.now() + 3_600_000).toUTCString() } }, times: 'always' }] },
      {
        match: P('429-ratelimit'),
        turns: [
          {
            error: {
              status: 429,
              message: 'Rate limit reached for gpt-test on tokens per min (TPM)',
              headers: { 'x-ratelimit-remaining-requests': '99', 'x-ratelimit-reset-requests': '1s', 'x-ratelimit-remaining-tokens': '0', 'x-ratelimit-reset-tokens': '6m0s' },
            },
            times: 'always',
          },
        ],
      },
      { match: P('429-bare'), turns: [{ error: { status: 429 }, times: 'always' }] },
      { match: P('401'), turns: [{ error: { status: 401 }, times: 'always' }] },
      { match: P('403'), turns: [{ error: { status: 403 }, times: 'always' }] },
      { match: P('500'), turns: [{ error: { status: 500 }, times: 'always' }] },
      { match: P('422'), turns: [{ error: { status: 422, message: 'messages: too long' }, times: 'always' }] },
      { match: P('plain-503'), turns: [{ error: { status: 503, body: 'upstream connect error' }, times: 'always' }] },
      { match: P('cancel'), turns: [SLOW] },
      { match: P('deadline'), turns: [SLOW] },
      { match: P('drop'), turns: [{ text: 'half an answer and', dropAfterChunks: 2 }] },
      { match: P('no-finish'), turns: [{ text: 'no end', omitFinish: true }] },
      { match: P('stream-error'), turns: [{ text: 'x y z', streamError: { afterChunks: 1, message: 'model crashed mid-answer' } }] },
      { match: P('stream-429'), turns: [{ text: 'x y z', streamError: { afterChunks: 1, message: 'too many requests', code: 429 } }] },
    ],
  });
  runner = new OpenAIRunner({ baseUrl: `${fake.baseUrl}/`, apiKeyEnv: KEY_ENV });
});

after(async () => {
  await fake?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

interface Run {
  outcome: RunOutcome;
  events: AgentEvent[];
  elapsedMs: number;
  request: RunRequest;
  served: RecordedChatRequest | undefined;
}

function makeRequest(prompt: string, o: { model?: string | null; timeoutMs?: number; env?: Record<string, string | undefined>; signal?: AbortSignal; system?: string | null } = {}): RunRequest {
  const timeoutMs = o.timeoutMs ?? 20_000;
  const attemptId = randomUUID();
  const model = o.model === undefined ? 'gpt-test' : o.model;
  return {
    task: makeTask({ agent: 'openai', prompt, model, timeoutMs }),
    attemptId,
    prompt,
    systemPromptAppend: o.system ?? null,
    model,
    cwd: tmp,
    env: o.env ?? { [KEY_ENV]: 'sk-test-123' },
    deadline: Date.now() + timeoutMs,
    stdoutLog: path.join(tmp, attemptId, 'stdout.log'),
    stderrLog: path.join(tmp, attemptId, 'stderr.log'),
    signal: o.signal ?? new AbortController().signal,
  };
}

async function run(prompt: string, o: Parameters<typeof makeRequest>[1] & { on?: (e: AgentEvent) => void; runner?: OpenAIRunner } = {}): Promise<Run> {
  const events: AgentEvent[] = [];
  const request = { ...makeRequest(prompt, o), onEvent: (e: AgentEvent) => (events.push(e), o.on?.(e)) };
  const t0 = Date.now();
  const outcome = await (o.runner ?? runner).run(request);
  return { outcome, events, elapsedMs: Date.now() - t0, request, served: fake.chatRequests(prompt)[0] };
}

function failed(o: RunOutcome): { reason: string; retryable: boolean } {
  assert.equal(o.kind, 'failed', JSON.stringify(o));
  return o as { reason: string; retryable: boolean };
}

describe('OpenAIRunner against the scripted chat-completions API', { concurrency: true }, () => {
  it('completes with the streamed text, usage, session id and the key from the env var', async () => {
    const r = await run(P('text'), { system: 'You run unattended.' });
    assert.equal(r.outcome.kind, 'completed', JSON.stringify(r.outcome));
    assert.ok(r.outcome.kind === 'completed');
    assert.equal(r.outcome.result, 'Hello from gpt-test.\nSecond line\nthird');
    const s = r.outcome.stats;
    assert.match(s.sessionId ?? '', /^chatcmpl-fake\d+$/);
    assert.equal(s.model, 'gpt-test');
    assert.equal(s.inputTokens, 40);
    assert.equal(s.outputTokens, 9);
    assert.equal(s.numTurns, 1);
    assert.equal(s.costUsd, null);
    assert.equal(r.outcome.exitCode, null);

    const q = r.served!;
    assert.equal(q.headers.authorization, 'Bearer sk-test-123');
    assert.equal(q.model, 'gpt-test');
    assert.equal(q.stream, true);
    assert.equal(q.includeUsage, true);
    assert.equal(q.system, 'You run unattended.');
    assert.deepEqual((q.body as { messages: unknown[] }).messages, [
      { role: 'system', content: 'You run unattended.' },
      { role: 'user', content: P('text') },
    ]);
    assert.equal(fake.chatRequests(P('text')).length, 1, 'no retries by the SDK');

    assert.deepEqual(r.events.filter((e) => e.type === 'session'), [{ type: 'session', sessionId: s.sessionId, model: 'gpt-test' }]);
    assert.deepEqual(
      r.events.filter((e) => e.type === 'progress').map((e) => (e as { text: string }).text),
      ['Hello from gpt-test.', 'Second line', 'third'],
      'one progress event per line of text',
    );
    assert.deepEqual(r.events.filter((e) => e.type === 'turn'), [{ type: 'turn', model: 'gpt-test', usage: { inputTokens: 32, cachedInputTokens: 8, outputTokens: 9 } }]);
    const usage = r.events.filter((e) => e.type === 'usage');
    assert.equal(usage.length, 1);
    assert.deepEqual((usage[0] as { stats: { inputTokens: number } }).stats.inputTokens, 40);

    const lines = fs.readFileSync(r.request.stdoutLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; choices: unknown[]; usage?: unknown });
    assert.ok(lines.length >= 4, 'one JSON line per chunk');
    assert.ok(lines.every((l) => l.id === s.sessionId));
    assert.deepEqual(lines.at(-1)!.choices, [], 'the usage chunk comes last');
    assert.equal(fs.readFileSync(r.request.stderrLog, 'utf8'), '');
  });

  it('no key in the environment: sends the placeholder (local servers need none); no system message without systemPromptAppend', async () => {
    const prompt = P('no-key');
    const r = await run(prompt, { env: {}, model: 'llama3.2' });
    assert.equal(r.outcome.kind, 'completed', JSON.stringify(r.outcome));
    assert.equal(r.served!.headers.authorization, 'Bearer none');
    assert.equal(r.served!.system, null);
  });

  it('usage repeated on every chunk is counted once', async () => {
    const r = await run(P('every-chunk-usage'));
    assert.equal(r.outcome.kind, 'completed', JSON.stringify(r.outcome));
    assert.equal(r.outcome.stats.outputTokens, 4);
    assert.equal(r.events.filter((e) => e.type === 'turn').length, 1);
  });

  it('finish_reason length completes with the text so far; content_filter fails for good', async () => {
    const cut = await run(P('length'));
    assert.equal(cut.outcome.kind, 'completed', JSON.stringify(cut.outcome));
    assert.equal((cut.outcome as { result: string }).result, 'cut sho');
    const filtered = failed((await run(P('filter'))).outcome);
    assert.equal(filtered.retryable, false);
    assert.match(filtered.reason, /content filter/);
  });

  it('429 with Retry-After: 7 → rate_limited, resetAt about now + 7 s', async () => {
    const r = await run(P('429-seconds'));
    assert.equal(r.outcome.kind, 'rate_limited', JSON.stringify(r.outcome));
    assert.ok(r.outcome.kind === 'rate_limited');
    const expected = r.served!.time + 7000;
    assert.ok(Math.abs((r.outcome.resetAt ?? 0) - expected) < 5000, `resetAt ${r.outcome.resetAt} vs ${expected}`);
    assert.match(r.outcome.reason, /429/);
    assert.match(r.outcome.reason, /Rate limit reached for requests/);
    assert.equal(fake.chatRequests(P('429-seconds')).length, 1, 'the SDK does not retry');
    assert.match(fs.readFileSync(r.request.stderrLog, 'utf8'), /HTTP 429 .*retry-after: 7/);
  });

  it('429 with an HTTP-date Retry-After → resetAt that date', async () => {
    const r = await run(P('429-date'));
    assert.equal(r.outcome.kind, 'rate_limited', JSON.stringify(r.outcome));
    const expected = r.served!.time + 3_600_000;
    const resetAt = (r.outcome as { resetAt: number | null }).resetAt ?? 0;
    assert.ok(Math.abs(resetAt - expected) < 5000, `resetAt ${resetAt} vs ${expected}`);
  });

  it('429 with x-ratelimit-reset-* → resetAt from the empty bucket (tokens, 6m0s)', async () => {
    const r = await run(P('429-ratelimit'));
    assert.equal(r.outcome.kind, 'rate_limited', JSON.stringify(r.outcome));
    const expected = r.served!.time + 360_000;
    const resetAt = (r.outcome as { resetAt: number | null }).resetAt ?? 0;
    assert.ok(Math.abs(resetAt - expected) < 5000, `resetAt ${resetAt} vs ${expected}`);
    assert.match((r.outcome as { reason: string }).reason, /tokens per min/);
  });

  it('429 without reset headers → resetAt null', async () => {
    const r = await run(P('429-bare'));
    assert.equal(r.outcome.kind, 'rate_limited', JSON.stringify(r.outcome));
    assert.equal((r.outcome as { resetAt: number | null }).resetAt, null);
  });

  it('401 and 403 → auth_failed naming the key variable', async () => {
    for (const status of ['401', '403']) {
      const r = await run(P(status));
      assert.equal(r.outcome.kind, 'auth_failed', JSON.stringify(r.outcome));
      assert.match((r.outcome as { reason: string }).reason, new RegExp(`HTTP ${status}.*\\$${KEY_ENV}|\\$${KEY_ENV}.*HTTP ${status}`));
    }
  });

  it('500 and a text/plain 503 → failed, retryable', async () => {
    const r = failed((await run(P('500'))).outcome);
    assert.equal(r.retryable, true);
    assert.match(r.reason, /HTTP 500 .*The server had an error/);
    const plain = failed((await run(P('plain-503'))).outcome);
    assert.equal(plain.retryable, true);
    assert.match(plain.reason, /HTTP 503 .*upstream connect error/);
  });

  it('400 unknown model and 422 → failed, not retryable, with the server message', async () => {
    const r = await run(P('unknown-model'), { model: 'no-such-model' });
    const f = failed(r.outcome);
    assert.equal(f.retryable, false);
    assert.match(f.reason, /HTTP 400 .*The model `no-such-model` does not exist/);
    assert.equal(r.served!.answer, 'unknown_model');
    const unprocessable = failed((await run(P('422'))).outcome);
    assert.equal(unprocessable.retryable, false);
    assert.match(unprocessable.reason, /messages: too long/);
  });

  it('no model → failed, not retryable, naming `model`; nothing is sent', async () => {
    const r = await run(P('no-model'), { model: null });
    const f = failed(r.outcome);
    assert.equal(f.retryable, false);
    assert.match(f.reason, /`model`/);
    assert.equal(fake.chatRequests(P('no-model')).length, 0);
  });

  it('cancel mid-stream → cancelled at once, and the server sees the connection close', async () => {
    const ac = new AbortController();
    const r = await run(P('cancel'), { signal: ac.signal, on: (e) => e.type === 'session' && setTimeout(() => ac.abort('cancel'), 100) });
    assert.equal(r.outcome.kind, 'cancelled', JSON.stringify(r.outcome));
    assert.match((r.outcome as { reason: string }).reason, /cancelled \(cancel\)/);
    assert.match(r.outcome.stats.sessionId ?? '', /^chatcmpl-/, 'what was known is kept');
    await waitFor(() => r.served?.connection !== 'open', 10_000, 'the server to see the connection end');
    assert.equal(r.served!.connection, 'closed_early');
    console.log(`cancel: outcome ${r.elapsedMs} ms after the start (the stream had ${6 * 3} s to go)`);
  });

  it('already cancelled → cancelled without a request', async () => {
    const ac = new AbortController();
    ac.abort('shutdown');
    const r = await run(P('pre-cancelled'), { signal: ac.signal });
    assert.equal(r.outcome.kind, 'cancelled', JSON.stringify(r.outcome));
    assert.equal(fake.chatRequests(P('pre-cancelled')).length, 0);
  });

  it('deadline mid-stream → timed_out, and the connection is closed', async () => {
    const r = await run(P('deadline'), { timeoutMs: 3000 }); // room for the request to reach the server on a loaded machine
    assert.equal(r.outcome.kind, 'timed_out', JSON.stringify(r.outcome));
    await waitFor(() => r.served?.connection !== 'open', 10_000, 'the server to see the connection end');
    assert.equal(r.served!.connection, 'closed_early');
  });

  it('connection refused → failed, retryable, naming the URL', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const r = await run(P('refused'), { runner: new OpenAIRunner({ baseUrl: `http://127.0.0.1:${port}/v1` }) });
    const f = failed(r.outcome);
    assert.equal(f.retryable, true);
    assert.match(f.reason, new RegExp(`cannot reach http://127\\.0\\.0\\.1:${port}/v1/chat/completions: .*ECONNREFUSED`));
  });

  it('a dropped stream, a stream without finish_reason, and an error event in the stream → failed, retryable', async () => {
    const dropped = failed((await run(P('drop'))).outcome);
    assert.equal(dropped.retryable, true);
    assert.match(dropped.reason, /broke off/);
    const noFinish = failed((await run(P('no-finish'))).outcome);
    assert.equal(noFinish.retryable, true);
    assert.match(noFinish.reason, /without a finish_reason/);
    const streamError = failed((await run(P('stream-error'))).outcome);
    assert.equal(streamError.retryable, true);
    assert.match(streamError.reason, /model crashed mid-answer/);
  });

  it('a rate-limit error event inside the stream → rate_limited, resetAt null', async () => {
    const r = await run(P('stream-429'));
    assert.equal(r.outcome.kind, 'rate_limited', JSON.stringify(r.outcome));
    assert.equal((r.outcome as { resetAt: number | null }).resetAt, null);
  });

  it('without agents.openai.base_url the registry runner fails the attempt, naming the key', async () => {
    const runners = createRunners(parseConfig({ agents: { openai: { model: 'gpt-test' } } }), projectPaths(tmp), {});
    const r = await runners.get('openai')!.run(makeRequest(P('no-url')));
    const f = failed(r);
    assert.equal(f.retryable, false);
    assert.match(f.reason, /agents\.openai\.base_url/);
    assert.throws(() => new OpenAIRunner({ baseUrl: 'ftp://x' }), /agents\.openai\.base_url: not an http\(s\) URL/);
  });
});

describe('agent: openai through agentq run', () => {
  it('completes the task: text in the done file, session id, model and tokens recorded; agents.openai.model routes', async () => {
    const paths = makeProject({ agents: { openai: { base_url: fake.baseUrl, api_key_env: 'AGENTQ_TEST_CHAT_KEY', model: 'llama3.2' } } });
    fake.setRules([{ match: `summarize-${RUN}`, turns: [{ text: 'Summary by {{model}}: all good.', usage: { prompt_tokens: 300, completion_tokens: 12 } }] }]);
    dropTask(paths, 'summary', { agent: 'openai' }, `Please summarize-${RUN} the notes.`);
    const r = await agentq(['run', '--once', '--project', paths.root], { AGENTQ_TEST_CHAT_KEY: 'sk-cli' });
    assert.equal(r.code, 0, r.stderr);
    const { fm, body } = readResult(path.join(paths.done, 'summary.md'));
    assert.equal(body, 'Summary by llama3.2: all good.');
    assert.equal(fm.agent, 'openai');
    assert.equal(fm.model, 'llama3.2');
    assert.match(String(fm.session_id), /^chatcmpl-fake\d+$/);
    assert.equal(fm.input_tokens, 300);
    assert.equal(fm.output_tokens, 12);
    const served = fake.chatRequests(`summarize-${RUN}`);
    assert.equal(served.length, 1);
    assert.equal(served[0]!.headers.authorization, 'Bearer sk-cli');
    assert.match(served[0]!.system ?? '', /<<question>>/, 'the question instructions go in as the system message');
    const log = fs.readFileSync(path.join(paths.logs, `${fm.task_id}-summary`, '1.stdout.log'), 'utf8');
    assert.match(log, /"object":"chat.completion.chunk"/, 'the chunks are kept per attempt');
  });
});
