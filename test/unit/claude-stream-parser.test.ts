/**
 * ClaudeStreamParser and classifyResult against the stream-json line shapes of Claude Code
 * 2.1.x (/work/shared/reference/claude-code-headless.md, plus lines captured from 2.1.197).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ClaudeStreamParser,
  classifyResult,
  describeToolUse,
  isRateLimitText,
  type ClaudeSignal,
} from '../../src/agents/claude/stream-parser.ts';
import type { AgentEvent } from '../../src/agents/runner.ts';

const SID = '8936a0c2-5b1e-4f0e-9d55-0c1f2e3d4b5a';
const NOW = Date.parse('2026-07-10T10:00:00Z'); // 12:00 in Berlin

const INIT = JSON.stringify({
  type: 'system',
  subtype: 'init',
  cwd: '/home/me/project',
  session_id: SID,
  tools: ['Bash', 'Edit', 'Read'],
  model: 'claude-opus-4-8[1m]',
  permissionMode: 'bypassPermissions',
  apiKeySource: 'ANTHROPIC_API_KEY',
  claude_code_version: '2.1.197',
});
const TOOL_USE = JSON.stringify({
  type: 'assistant',
  message: {
    content: [{ type: 'tool_use', id: 'toolu_1', name: 'Bash', input: { command: 'echo hi > a.txt', description: 'x' } }],
    usage: { input_tokens: 100, output_tokens: 1 },
  },
  session_id: SID,
});
const TOOL_RESULT = JSON.stringify({
  type: 'user',
  message: { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: '', is_error: false }] },
  session_id: SID,
});
const TEXT = JSON.stringify({
  type: 'assistant',
  message: { content: [{ type: 'text', text: 'Created a.txt' }] },
  session_id: SID,
});

function result(over: Record<string, unknown> = {}): string {
  return JSON.stringify({
    type: 'result',
    subtype: 'success',
    is_error: false,
    api_error_status: null,
    duration_ms: 416,
    duration_api_ms: 114,
    num_turns: 2,
    result: 'Created a.txt',
    stop_reason: 'end_turn',
    session_id: SID,
    total_cost_usd: 0.002625,
    usage: { input_tokens: 200, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 35 },
    modelUsage: { 'claude-opus-4-8[1m]': { inputTokens: 200, outputTokens: 35, costUSD: 0.002625 } },
    permission_denials: [],
    terminal_reason: 'completed',
    ...over,
  });
}

function apiRetry(status: number | null, error: string, attempt = 1): string {
  return JSON.stringify({
    type: 'system',
    subtype: 'api_retry',
    attempt,
    max_retries: 10,
    retry_delay_ms: 1000,
    error_status: status,
    error,
    session_id: '2a73b9c4-0000-4000-8000-000000000000',
  });
}

function rateLimitEvent(info: Record<string, unknown>): string {
  return JSON.stringify({ type: 'rate_limit_event', rate_limit_info: info });
}

/** Feed lines; collect events and stop signals. */
function feed(lines: string[], now = NOW) {
  const parser = new ClaudeStreamParser({ now: () => now });
  const events: AgentEvent[] = [];
  const stops: ClaudeSignal[] = [];
  for (const line of lines) {
    const r = parser.push(line);
    events.push(...r.events);
    if (r.stop) stops.push(r.stop);
  }
  return { parser, state: parser.state, events, stops };
}

describe('ClaudeStreamParser: a successful run', () => {
  const { parser, state, events, stops } = feed([INIT, TOOL_USE, TOOL_RESULT, TEXT, result()]);

  it('tracks session id and model from system/init', () => {
    assert.equal(state.sessionId, SID);
    assert.equal(state.model, 'claude-opus-4-8[1m]');
  });

  it('reads result text, cost, tokens, turns, is_error, subtype from the result line', () => {
    assert.equal(state.hasResult, true);
    assert.equal(state.result, 'Created a.txt');
    assert.equal(state.costUsd, 0.002625);
    assert.equal(state.inputTokens, 200);
    assert.equal(state.outputTokens, 35);
    assert.equal(state.numTurns, 2);
    assert.equal(state.isError, false);
    assert.equal(state.subtype, 'success');
    assert.equal(state.apiErrorStatus, null);
    assert.equal(state.resultAt, NOW);
    assert.deepEqual(parser.stats(), {
      sessionId: SID,
      model: 'claude-opus-4-8[1m]',
      costUsd: 0.002625,
      inputTokens: 200,
      outputTokens: 35,
      numTurns: 2,
    });
  });

  it('emits session once, the turn tokens, progress per tool use, usage on the result; never stops', () => {
    assert.deepEqual(
      events.map((e) => e.type),
      ['session', 'turn', 'progress', 'usage'],
    );
    assert.deepEqual(events[0], { type: 'session', sessionId: SID, model: 'claude-opus-4-8[1m]' });
    assert.equal(events[1]?.type, 'turn');
    assert.deepEqual(events[2], { type: 'progress', text: 'Bash: echo hi > a.txt' });
    assert.equal(stops.length, 0);
    assert.equal(classifyResult(state, NOW), null);
  });
});

describe('ClaudeStreamParser: details', () => {
  it('takes the session id from any line when init is missing', () => {
    const { state, events } = feed([TEXT]);
    assert.equal(state.sessionId, SID);
    assert.deepEqual(events[0], { type: 'session', sessionId: SID, model: null });
  });

  it('adds cache tokens to input tokens by default, not when disabled', () => {
    const line = result({
      usage: { input_tokens: 10, cache_creation_input_tokens: 1000, cache_read_input_tokens: 5000, output_tokens: 7 },
    });
    const withCache = new ClaudeStreamParser();
    withCache.push(line);
    assert.equal(withCache.state.inputTokens, 6010);
    const without = new ClaudeStreamParser({ includeCacheTokens: false });
    without.push(line);
    assert.equal(without.state.inputTokens, 10);
    assert.equal(without.state.outputTokens, 7);
  });

  it('skips lines that are not JSON without losing the rest (split-line CLI bug)', () => {
    const full = result();
    const half = Math.floor(full.length / 2);
    // A rate_limit_event written into the middle of another line splits it into two invalid lines.
    const broken1 = full.slice(0, half) + '{"type":"rate_limit_event","rate_limit_info":{"status":"allowed"';
    const broken2 = '}}' + full.slice(half);
    const { state, stops } = feed([INIT, broken1, broken2, '', 'not json at all', TEXT, full]);
    assert.equal(state.skippedLines, 3);
    assert.equal(state.sessionId, SID);
    assert.equal(state.result, 'Created a.txt');
    assert.equal(stops.length, 0);
  });

  it('ignores JSON that is not an object', () => {
    const { state } = feed(['[1,2]', '42', '"x"', 'null']);
    assert.equal(state.skippedLines, 4);
  });

  it('keeps the last assistant text and the synthetic assistant error', () => {
    const synthetic = JSON.stringify({
      type: 'assistant',
      message: { model: '<synthetic>', content: [{ type: 'text', text: 'Not logged in · Please run /login' }] },
      session_id: SID,
      error: 'authentication_failed',
    });
    const { state } = feed([synthetic]);
    assert.equal(state.lastAssistantText, 'Not logged in · Please run /login');
    assert.equal(state.assistantError, 'authentication_failed');
    assert.equal(state.model, null, '<synthetic> is not a model');
  });

  it('describes tool uses briefly', () => {
    assert.equal(describeToolUse('Bash', { command: 'npm   test\n  --watch' }), 'Bash: npm test --watch');
    assert.equal(describeToolUse('Edit', { file_path: '/p/a.ts', old_string: 'x' }), 'Edit: /p/a.ts');
    assert.equal(describeToolUse('Grep', { pattern: 'TODO' }), 'Grep: TODO');
    assert.equal(describeToolUse('TodoWrite', { todos: [] }), 'TodoWrite');
    assert.equal(describeToolUse('Bash', { command: 'x'.repeat(500) }, 20).length, 20);
  });
});

describe('ClaudeStreamParser: stop signals', () => {
  it('system/api_retry 401 authentication_failed → auth_failed at once', () => {
    const { stops, state } = feed([INIT, apiRetry(401, 'authentication_failed')]);
    assert.equal(stops.length, 1);
    assert.equal(stops[0]!.kind, 'auth_failed');
    assert.match(stops[0]!.reason, /authentication failed \(HTTP 401/);
    assert.equal(stops[0]!.kind === 'auth_failed' && stops[0]!.status, 401);
    assert.deepEqual(state.lastRetry, { status: 401, error: 'authentication_failed', attempt: 1 });
    assert.equal(state.stopSignal, stops[0]);
  });

  it('system/api_retry 403 → auth_failed', () => {
    const { stops } = feed([apiRetry(403, 'authentication_failed')]);
    assert.equal(stops[0]?.kind, 'auth_failed');
    assert.match(stops[0]!.reason, /HTTP 403/);
  });

  it('system/api_retry 429 rate_limit → rate_limited, resetAt null', () => {
    const { stops } = feed([INIT, apiRetry(429, 'rate_limit')]);
    assert.equal(stops.length, 1);
    assert.deepEqual({ ...stops[0], reason: undefined }, {
      kind: 'rate_limited',
      resetAt: null,
      reason: undefined,
      source: 'api_retry',
    });
    assert.match(stops[0]!.reason, /rate limited \(HTTP 429/);
  });

  it('system/api_retry 529 overloaded → rate_limited', () => {
    const { stops } = feed([apiRetry(529, 'overloaded')]);
    assert.equal(stops[0]?.kind, 'rate_limited');
    assert.match(stops[0]!.reason, /overloaded/);
  });

  it('system/api_retry with other statuses (500) does not stop', () => {
    const { stops, state } = feed([apiRetry(500, 'server_error'), apiRetry(null, 'connection_error')]);
    assert.equal(stops.length, 0);
    assert.deepEqual(state.lastRetry, { status: null, error: 'connection_error', attempt: 1 });
  });

  it('rate_limit_event rejected → rate_limited with resetsAt (epoch s → ms)', () => {
    const line =
      '{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1778565600,"rateLimitType":"five_hour","overageStatus":"rejected","overageDisabledReason":"org_level_disabled","isUsingOverage":false}}';
    const { stops } = feed([INIT, line]);
    assert.equal(stops.length, 1);
    assert.equal(stops[0]!.kind, 'rate_limited');
    assert.equal(stops[0]!.kind === 'rate_limited' && stops[0]!.resetAt, 1778565600_000);
    assert.equal(stops[0]!.source, 'rate_limit_event');
    assert.match(stops[0]!.reason, /five_hour/);
  });

  it('rate_limit_event rejected without resetsAt → rate_limited, resetAt null', () => {
    const { stops } = feed([rateLimitEvent({ status: 'rejected', rateLimitType: 'seven_day' })]);
    assert.equal(stops[0]?.kind, 'rate_limited');
    assert.equal(stops[0]!.kind === 'rate_limited' && stops[0]!.resetAt, null);
  });

  it('rate_limit_event allowed / allowed_warning (with utilization, unifiedWindows) never stop', () => {
    const { stops } = feed([
      INIT,
      rateLimitEvent({ status: 'allowed', resetsAt: 1778565600, rateLimitType: 'five_hour', isUsingOverage: false }),
      rateLimitEvent({
        status: 'allowed_warning',
        resetsAt: 1778565600,
        rateLimitType: 'seven_day',
        utilization: 0.91,
        unifiedWindows: [],
      }),
      TEXT,
      result(),
    ]);
    assert.equal(stops.length, 0);
  });
});

describe('classifyResult: how a finished run ended', () => {
  it('"Claude AI usage limit reached|<epoch>" → rate_limited with reset', () => {
    const { state } = feed([result({ is_error: true, result: 'Claude AI usage limit reached|1759327200' })]);
    const s = classifyResult(state, NOW);
    assert.equal(s?.kind, 'rate_limited');
    assert.equal(s?.kind === 'rate_limited' && s.resetAt, 1759327200_000);
  });

  it('"You\'ve hit your limit · resets 5:50pm (Europe/Berlin)" → rate_limited at the next 5:50pm Berlin', () => {
    const { state } = feed([result({ is_error: true, result: "You've hit your limit · resets 5:50pm (Europe/Berlin)" })]);
    const s = classifyResult(state, NOW);
    assert.equal(s?.kind, 'rate_limited');
    assert.equal(s?.kind === 'rate_limited' && new Date(s.resetAt!).toISOString(), '2026-07-10T15:50:00.000Z');
  });

  it('"You\'ve hit your limit · resets 2pm (Asia/Shanghai)" → rate_limited with reset', () => {
    const { state } = feed([result({ is_error: true, result: "You've hit your limit · resets 2pm (Asia/Shanghai)" })]);
    const s = classifyResult(state, NOW);
    assert.equal(s?.kind, 'rate_limited');
    assert.equal(s?.kind === 'rate_limited' && new Date(s.resetAt!).toISOString(), '2026-07-11T06:00:00.000Z');
  });

  it('"API Error: Rate limit reached" with is_error → rate_limited, resetAt null (even with exit 0)', () => {
    const { state } = feed([result({ is_error: true, result: 'API Error: Rate limit reached' })]);
    const s = classifyResult(state, NOW);
    assert.deepEqual(s && { kind: s.kind, resetAt: s.kind === 'rate_limited' ? s.resetAt : 'x' }, {
      kind: 'rate_limited',
      resetAt: null,
    });
  });

  it('"Claude AI usage limit reached|<epoch>" as the whole result is a limit even with is_error false (older CLIs)', () => {
    const { state } = feed([result({ is_error: false, result: 'Claude AI usage limit reached|1759327200' })]);
    const s = classifyResult(state, NOW);
    assert.equal(s?.kind === 'rate_limited' && s.resetAt, 1759327200_000);
  });

  it('a successful answer that mentions limits is not a rate limit', () => {
    const { state } = feed([result({ is_error: false, result: 'Fixed: "API Error: Rate limit reached" is now retried' })]);
    assert.equal(classifyResult(state, NOW), null);
  });

  it('api_error_status 401 after the CLI gave up → auth_failed', () => {
    const { state } = feed([
      result({ is_error: true, api_error_status: 401, result: 'Failed to authenticate. API Error: 401 invalid x-api-key' }),
    ]);
    const s = classifyResult(state, NOW);
    assert.equal(s?.kind, 'auth_failed');
    assert.match(s!.reason, /authentication failed \(HTTP 401\)/);
  });

  it('api_error_status 403 (not retried by the CLI) → auth_failed', () => {
    const { state } = feed([
      result({
        is_error: true,
        api_error_status: 403,
        result: 'Failed to authenticate. API Error: 403 Your API key does not have permission to use the specified resource.',
      }),
    ]);
    assert.equal(classifyResult(state, NOW)?.kind, 'auth_failed');
  });

  it('"Not logged in" (assistant error authentication_failed, no status) → auth_failed', () => {
    const synthetic = JSON.stringify({
      type: 'assistant',
      message: { model: '<synthetic>', content: [{ type: 'text', text: 'Not logged in · Please run /login' }] },
      session_id: SID,
      error: 'authentication_failed',
    });
    const { state } = feed([synthetic, result({ is_error: true, result: 'Not logged in · Please run /login' })]);
    assert.equal(classifyResult(state, NOW)?.kind, 'auth_failed');
  });

  it('api_error_status 429 → rate_limited', () => {
    const { state } = feed([result({ is_error: true, api_error_status: 429, result: 'API Error: 429 {"type":"error"}' })]);
    assert.equal(classifyResult(state, NOW)?.kind, 'rate_limited');
  });

  it('other errors (400, error_max_turns) are left to the caller', () => {
    const bad = feed([result({ is_error: true, api_error_status: 400, result: 'API Error: 400 Invalid request' })]);
    assert.equal(classifyResult(bad.state, NOW), null);
    assert.equal(bad.state.isError, true);
    assert.equal(bad.state.apiErrorStatus, 400);
    const turns = feed([result({ subtype: 'error_max_turns', is_error: true, result: undefined })]);
    assert.equal(classifyResult(turns.state, NOW), null);
    assert.equal(turns.state.subtype, 'error_max_turns');
  });

  it('isRateLimitText knows the shapes', () => {
    assert.equal(isRateLimitText("You've hit your weekly limit · resets Oct 9, 2pm (Europe/Berlin)"), true);
    assert.equal(isRateLimitText('You’ve hit your limit · resets 2pm (Asia/Shanghai)'), true);
    assert.equal(isRateLimitText('Claude AI usage limit reached|1759327200'), true);
    assert.equal(isRateLimitText('API Error: Rate limit reached'), true);
    assert.equal(isRateLimitText('All tests pass.'), false);
  });
});
