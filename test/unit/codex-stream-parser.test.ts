import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CodexStreamParser, classifyCodexError, parseCodexRetryTime } from '../../src/agents/codex/stream-parser.ts';
import { CodexRunner } from '../../src/agents/codex/codex-runner.ts';

const NOW = Date.UTC(2026, 10, 23, 19, 0, 0);
const j = (o: unknown) => JSON.stringify(o);

describe('CodexStreamParser (codex exec --json, 0.169)', () => {
  it('success: thread id → session, command progress, final message, usage', () => {
    const p = new CodexStreamParser({ now: () => NOW });
    const a = p.push(j({ type: 'thread.started', thread_id: 'th-1' }));
    assert.deepEqual(a.events, [{ type: 'session', sessionId: 'th-1', model: null }]);
    p.push(j({ type: 'turn.started' }));
    const cmd = { id: 'item_0', type: 'command_execution', command: "/bin/bash -lc 'echo hi'", aggregated_output: '', exit_code: null, status: 'in_progress' };
    assert.deepEqual(p.push(j({ type: 'item.started', item: cmd })).events, [{ type: 'progress', text: "exec: /bin/bash -lc 'echo hi'" }]);
    assert.deepEqual(p.push(j({ type: 'item.completed', item: { ...cmd, status: 'completed', exit_code: 0 } })).events, []);
    p.push(j({ type: 'item.completed', item: { id: 'item_1', type: 'error', message: 'Model metadata for `x` not found.' } }));
    p.push(j({ type: 'item.completed', item: { id: 'item_2', type: 'agent_message', text: 'Line one\nLine two' } }));
    const done = p.push(j({ type: 'turn.completed', usage: { input_tokens: 240, cached_input_tokens: 40, cache_write_input_tokens: 0, output_tokens: 60, reasoning_output_tokens: 5 } }));
    assert.deepEqual(done.events.map((e) => e.type), ['turn', 'usage']);
    const s = p.state;
    assert.equal(s.lastAgentMessage, 'Line one\nLine two');
    assert.equal(s.commands, 1);
    assert.deepEqual(s.warnings, ['Model metadata for `x` not found.']);
    assert.equal(s.cachedInputTokens, 40);
    assert.equal(s.reasoningOutputTokens, 5);
    assert.equal(s.completedAt, NOW);
    assert.deepEqual(p.stats(), { sessionId: 'th-1', model: null, costUsd: null, inputTokens: 240, outputTokens: 60, numTurns: 1 });
    assert.equal(s.stopSignal, null);
  });

  it('unparsable lines are skipped and counted', () => {
    const p = new CodexStreamParser();
    assert.equal(p.push('not json').parsed, false);
    assert.equal(p.push('{"type":"thread.sta').parsed, false);
    assert.equal(p.push('').parsed, false);
    assert.equal(p.push('[1,2]').parsed, false);
    assert.equal(p.state.skippedLines, 3);
    assert.equal(p.push(j({ type: 'turn.started' })).kind, 'turn.started');
  });

  it('401 reconnect line → auth_failed stop at once', () => {
    const p = new CodexStreamParser();
    const r = p.push(j({ type: 'error', message: 'Reconnecting... 1/5 (unexpected status 401 Unauthorized: Incorrect API key provided: k., url: http://127.0.0.1:1/v1/responses)' }));
    assert.equal(r.stop?.kind, 'auth_failed');
    assert.ok(r.stop?.kind === 'auth_failed' && r.stop.status === 401 && r.stop.source === 'reconnect');
    assert.match(r.stop.reason, /Incorrect API key/);
    assert.equal(p.state.stopSignal, r.stop);
  });

  it('403 → auth_failed', () => {
    const s = classifyCodexError('unexpected status 403 Forbidden: nope, url: http://x/v1/responses', 'error', NOW);
    assert.ok(s?.kind === 'auth_failed' && s.status === 403);
  });

  it('429 (reconnect or final) → rate_limited, resetAt null when codex does not say', () => {
    const p = new CodexStreamParser();
    const r = p.push(j({ type: 'error', message: 'Reconnecting... 1/5 (exceeded retry limit, last status: 429 Too Many Requests)' }));
    assert.ok(r.stop?.kind === 'rate_limited' && r.stop.resetAt === null && r.stop.source === 'reconnect');
    const f = new CodexStreamParser();
    f.push(j({ type: 'error', message: 'exceeded retry limit, last status: 429 Too Many Requests' }));
    const t = f.push(j({ type: 'turn.failed', error: { message: 'exceeded retry limit, last status: 429 Too Many Requests' } }));
    assert.equal(t.stop?.kind, 'rate_limited');
    assert.equal(f.state.turnFailed, true);
    assert.equal(f.state.stopSignal?.source, 'error');
  });

  it('quota and usage limits → rate_limited; "try again at 8:21 PM" → resetAt', () => {
    assert.equal(classifyCodexError('Quota exceeded. Check your plan and billing details.', 'error', NOW)?.kind, 'rate_limited');
    const s = classifyCodexError('You’ve hit your usage limit. Upgrade to Pro (…) or try again at 8:21 PM.', 'error', NOW, 'UTC');
    assert.ok(s?.kind === 'rate_limited');
    assert.equal(s.resetAt, Date.UTC(2026, 10, 23, 20, 21));
  });

  it('parseCodexRetryTime: relative, clock time (next occurrence), dated', () => {
    assert.equal(parseCodexRetryTime('Please try again in 7.5s.', NOW), NOW + 7500);
    assert.equal(parseCodexRetryTime('try again in 1m30s', NOW), NOW + 90_000);
    assert.equal(parseCodexRetryTime('try again in 250ms', NOW), NOW + 250);
    assert.equal(parseCodexRetryTime('Try again at 6:30 PM.', NOW, 'UTC'), Date.UTC(2026, 10, 24, 18, 30));
    assert.equal(parseCodexRetryTime('try again at Nov 25th, 2026 8:21 PM.', NOW, 'UTC'), Date.UTC(2026, 10, 25, 20, 21));
    assert.equal(parseCodexRetryTime('Try again later.', NOW), null);
  });

  it('other errors (500 high demand, missing env key) do not stop; turn.failed recorded', () => {
    const p = new CodexStreamParser();
    assert.equal(p.push(j({ type: 'error', message: 'Reconnecting... 1/5 (We’re currently experiencing high demand, which may cause temporary errors.)' })).stop, null);
    assert.equal(p.push(j({ type: 'error', message: 'Missing environment variable: `LOCAL_API_KEY`.' })).stop, null);
    p.push(j({ type: 'turn.failed', error: { message: 'Missing environment variable: `LOCAL_API_KEY`.' } }));
    assert.equal(p.state.failureMessage, 'Missing environment variable: `LOCAL_API_KEY`.');
    assert.equal(p.state.stopSignal, null);
  });
});

describe('CodexRunner.buildArgv', () => {
  const r = new CodexRunner({ command: ['/bin/codex'], extraArgs: ['-c', 'model_provider=x'] });
  it('new run and resume', () => {
    assert.deepEqual(r.buildArgv({ model: 'gpt-5.5', prompt: '- item', resumeSessionId: null, cwd: '/w' }), [
      '/bin/codex', 'exec', '--json', '--skip-git-repo-check', '--sandbox', 'danger-full-access', '-m', 'gpt-5.5', '-C', '/w', '-c', 'model_provider=x', '--', '- item',
    ]);
    assert.deepEqual(r.buildArgv({ model: null, prompt: 'p', resumeSessionId: 'th-1', cwd: '/w' }).slice(6), ['-C', '/w', '-c', 'model_provider=x', 'resume', 'th-1', '--', 'p']);
  });
  it('empty command throws', () => {
    assert.throws(() => new CodexRunner({ command: [] }), /resolveAgentCommand/);
  });
});
