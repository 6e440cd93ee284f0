/**
 * GeminiStreamParser on lines shaped as Gemini CLI 0.61 prints them (`-o stream-json`, stderr
 * retry reports, exit codes); see /work/shared/reference/gemini-headless.md.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  GeminiStreamParser,
  classifyErrorText,
  classifyResult,
  describeExitCode,
  parseRetryTime,
} from '../../src/agents/gemini/stream-parser.ts';
import { GeminiRunner } from '../../src/agents/gemini/gemini-runner.ts';

const NOW = Date.UTC(2026, 10, 23, 15, 0, 0);
const parser = () => new GeminiStreamParser({ now: () => NOW });

const SUCCESS = [
  '{"type":"init","timestamp":"2026-11-23T15:24:15.520Z","session_id":"05f8dcbc-9dc3-4621-9023-e905b4fdaf74","model":"gemini-2.5-flash"}',
  '{"type":"message","timestamp":"2026-11-23T15:24:15.522Z","role":"user","content":"Create a.txt containing hello"}',
  '{"type":"message","timestamp":"2026-11-23T15:24:15.600Z","role":"assistant","content":"Let me do it.","delta":true}',
  '{"type":"tool_use","timestamp":"2026-11-23T15:24:15.675Z","tool_name":"run_shell_command","tool_id":"run_shell_command__1","parameters":{"command":"echo hello > a.txt && echo wrote a.txt","description":"…"}}',
  '{"type":"tool_result","timestamp":"2026-11-23T15:24:15.912Z","tool_id":"run_shell_command__1","status":"success","output":"wrote a.txt"}',
  '{"type":"message","timestamp":"2026-11-23T15:24:15.964Z","role":"assistant","content":"This is a considerably l","delta":true}',
  '{"type":"message","timestamp":"2026-11-23T15:24:15.965Z","role":"assistant","content":"onger final answer.","delta":true}',
  '{"type":"result","timestamp":"2026-11-23T15:24:15.984Z","status":"success","stats":{"total_tokens":300,"input_tokens":240,"output_tokens":60,"cached":5,"input":240,"duration_ms":464,"tool_calls":1,"models":{"gemini-2.5-flash":{"total_tokens":300,"input_tokens":240,"output_tokens":60,"cached":0,"input":240}}}}',
];

const ZERO_STATS = '"stats":{"total_tokens":0,"input_tokens":0,"output_tokens":0,"cached":0,"input":0,"duration_ms":0,"tool_calls":0,"models":{"gemini-2.5-flash":{"total_tokens":0,"input_tokens":0,"output_tokens":0,"cached":0,"input":0}}}';
const RESULT_429 = `{"type":"result","timestamp":"2026-11-23T15:19:08.189Z","status":"error","error":{"type":"unknown","message":"[API Error: Resource has been exhausted (e.g. check quota).]\\nPlease wait and try again later. To increase your limits, request a quota increase through AI Studio, or switch to another /auth method"},${ZERO_STATS}}`;
const RESULT_401 = `{"type":"result","timestamp":"2026-11-23T15:15:45.732Z","status":"error","error":{"type":"unknown","message":"[API Error: {\\"error\\":{\\"code\\":401,\\"message\\":\\"API key not valid. Please pass a valid API key.\\",\\"status\\":\\"UNAUTHENTICATED\\",\\"details\\":[]}}]"},${ZERO_STATS}}`;
const RESULT_400 = `{"type":"result","timestamp":"2026-11-23T15:15:45.732Z","status":"error","error":{"type":"unknown","message":"[API Error: {\\"error\\":{\\"code\\":400,\\"message\\":\\"Request contains an invalid argument.\\",\\"status\\":\\"INVALID_ARGUMENT\\"}}]"},${ZERO_STATS}}`;

describe('GeminiStreamParser: stdout events', () => {
  it('init → session event; messages, tool_use, tool_result, result → final text, turns, tokens', () => {
    const p = parser();
    const outs = SUCCESS.map((l) => p.push(l));
    assert.deepEqual(outs.map((o) => o.kind), ['init', 'message', 'message', 'tool_use', 'tool_result', 'message', 'message', 'result']);
    assert.deepEqual(outs[0]!.events, [{ type: 'session', sessionId: '05f8dcbc-9dc3-4621-9023-e905b4fdaf74', model: 'gemini-2.5-flash' }]);
    assert.deepEqual(outs[3]!.events, [{ type: 'progress', text: 'run_shell_command: echo hello > a.txt && echo wrote a.txt' }]);
    assert.equal(outs.every((o) => o.stop === null), true);
    const s = p.state;
    assert.equal(s.finalText, 'This is a considerably longer final answer.', 'deltas after the last tool result, joined');
    assert.deepEqual([s.turns, s.toolCalls, s.hasResult, s.status, s.resultAt], [2, 1, true, 'success', NOW]);
    assert.deepEqual([s.inputTokens, s.outputTokens, s.totalTokens, s.cachedTokens, s.durationMs], [240, 60, 300, 5, 464]);
    assert.deepEqual(s.modelsUsed, ['gemini-2.5-flash']);
    assert.deepEqual(p.stats(), {
      sessionId: '05f8dcbc-9dc3-4621-9023-e905b4fdaf74',
      model: 'gemini-2.5-flash',
      costUsd: null,
      inputTokens: 240,
      outputTokens: 60,
      numTurns: 2,
    });
    assert.equal(outs[7]!.events[0]?.type, 'usage');
  });

  it('model auto: the model that used most tokens in result.stats.models', () => {
    const p = parser();
    p.push('{"type":"init","session_id":"s1","model":"auto"}');
    p.push('{"type":"result","status":"success","stats":{"input_tokens":5,"output_tokens":1,"models":{"gemini-3.5-flash-lite":{"total_tokens":40},"gemini-3.8-flash":{"total_tokens":400}}}}');
    assert.equal(p.state.model, 'gemini-3.8-flash');
    assert.deepEqual(p.state.modelsUsed, ['gemini-3.5-flash-lite', 'gemini-3.8-flash']);
  });

  it('unparsable and empty lines are skipped and counted', () => {
    const p = parser();
    for (const line of ['not json', '[1,2]', '{"no":"type"}', '{"type":', '']) assert.equal(p.push(line).parsed, false);
    assert.equal(p.state.skippedLines, 4);
    assert.equal(p.push('{"type":"future_event","x":1}').parsed, true, 'unknown types are parsed and ignored');
  });

  it('error events: warnings recorded; 429 / 401 texts stop the run', () => {
    const p = parser();
    const warn = p.push('{"type":"error","timestamp":"t","severity":"warning","message":"Loop detected, stopping execution"}');
    assert.equal(warn.stop, null);
    assert.deepEqual(p.state.errors, ['Loop detected, stopping execution']);
    const rate = p.push('{"type":"error","severity":"error","message":"[API Error: Quota exceeded for metric. Please retry in 41.5s.]"}');
    assert.equal(rate.stop?.kind, 'rate_limited');
    assert.equal(rate.stop?.kind === 'rate_limited' && rate.stop.resetAt, NOW + 41_500);
    assert.equal(rate.stop?.source, 'error');
    const auth = parser().push('{"type":"error","severity":"error","message":"{\\"error\\":{\\"code\\":403,\\"message\\":\\"The caller does not have permission\\",\\"status\\":\\"PERMISSION_DENIED\\"}}"}');
    assert.deepEqual(auth.stop && [auth.stop.kind, auth.stop.kind === 'auth_failed' && auth.stop.status], ['auth_failed', 403]);
  });

  it('result errors: 429 → rate_limited, 401 → auth_failed, 400 → neither', () => {
    for (const [line, want] of [
      [RESULT_429, 'rate_limited'],
      [RESULT_401, 'auth_failed'],
      [RESULT_400, null],
    ] as const) {
      const p = parser();
      assert.equal(p.push(line).stop, null, 'the result line itself does not stop (the run is over)');
      assert.equal(p.state.status, 'error');
      assert.equal(classifyResult(p.state, NOW)?.kind ?? null, want);
    }
    const p = parser();
    p.push(RESULT_401);
    const sig = classifyResult(p.state, NOW);
    assert.equal(sig?.kind === 'auth_failed' && sig.reason, 'authentication failed (HTTP 401): API key not valid. Please pass a valid API key.');
    const ok = parser();
    ok.push(SUCCESS[7]!);
    assert.equal(classifyResult(ok.state, NOW), null);
  });
});

describe('GeminiStreamParser: stderr', () => {
  it('retry reports of 429 / quota → rate_limited; 401/403 → auth_failed', () => {
    const p = parser();
    const s = p.pushStderr(
      'Attempt 1 failed with status 429. Retrying with backoff... _ApiError: {"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED","details":[]}}',
    );
    assert.deepEqual(s && [s.kind, s.source, s.kind === 'rate_limited' && s.resetAt], ['rate_limited', 'stderr', null]);
    assert.equal(s?.reason, 'rate limited (HTTP 429): Resource has been exhausted (e.g. check quota).');
    assert.equal(p.state.stopSignal, s);
    const q = parser().pushStderr('Attempt 1 failed: Quota exceeded for metric requests per minute. Please retry in 2s. Retrying after 5436ms...');
    assert.equal(q?.kind === 'rate_limited' && q.resetAt, NOW + 2000, '"retry in 2s", not the CLI backoff');
    const a = parser().pushStderr('Attempt 1 failed with status 401. _ApiError: {"error":{"code":401,"message":"API key not valid.","status":"UNAUTHENTICATED"}}');
    assert.deepEqual(a && [a.kind, a.kind === 'auth_failed' && a.status], ['auth_failed', 401]);
    const json = parser().pushStderr('{"session_id":"x","error":{"type":"Error","message":"{\\"error\\":{\\"code\\":401}}","code":401}}');
    assert.equal(json?.kind, 'auth_failed');
  });

  it('noise, 500 retries and unreachable-server retries are not signals', () => {
    const p = parser();
    for (const line of [
      'Warning: 256-color support not detected. Using a terminal with at least 256-color support is recommended.',
      'YOLO mode is enabled. All tool calls will be automatically approved.',
      'Ripgrep is not available. Falling back to GrepTool.',
      '[STARTUP] Recording metric for phase: cli_startup duration: 1234',
      'Attempt 2 failed with status 500. Retrying with backoff... _ApiError: {"error":{"code":500,"message":"An internal error has occurred.","status":"INTERNAL"}}',
      'Attempt 1 failed. Retrying with backoff... Error: exception TypeError: fetch failed sending request',
      'my tool printed: quota exceeded (not an API retry line)',
    ]) {
      assert.equal(p.pushStderr(line), null, line);
    }
    assert.equal(p.state.stopSignal, null);
  });
});

describe('retry times and error texts', () => {
  it('parseRetryTime: retry in / after, retryDelay, clock resets; CLI backoff ignored', () => {
    assert.equal(parseRetryTime('Please retry in 41.12s.', NOW), NOW + 41_120);
    assert.equal(parseRetryTime('Suggested retry after 2s..', NOW), NOW + 2000);
    assert.equal(parseRetryTime('retry in 3 minutes', NOW), NOW + 180_000);
    assert.equal(parseRetryTime('retry in 500ms', NOW), NOW + 500);
    assert.equal(parseRetryTime('{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"17s"}', NOW), NOW + 17_000);
    assert.equal(parseRetryTime('limit resets 17:30 (UTC)', NOW), Date.UTC(2026, 10, 23, 17, 30));
    assert.equal(parseRetryTime('Retrying after 5436ms...', NOW), null);
    assert.equal(parseRetryTime('Resource has been exhausted', NOW), null);
  });

  it('classifyErrorText: daily quota is a rate limit; unrelated text is null', () => {
    assert.equal(classifyErrorText('[API Error: You have exhausted your daily quota on this model.]', NOW, 'result')?.kind, 'rate_limited');
    assert.equal(classifyErrorText('[API Error: exception TypeError: fetch failed sending request]', NOW, 'result'), null);
  });
});

describe('describeExitCode', () => {
  it('maps Gemini CLI 0.61 exit codes to reasons', () => {
    const row = (c: number | null) => {
      const e = describeExitCode(c);
      return [e.kind, e.retryable, e.httpStatus];
    };
    assert.deepEqual(row(41), ['auth_failed', false, null]);
    assert.match(describeExitCode(41).reason, /authentication/);
    assert.deepEqual(row(42), ['failed', false, null]);
    assert.deepEqual(row(53), ['failed', false, null]);
    assert.match(describeExitCode(53).reason, /turn limit/);
    assert.match(describeExitCode(55).reason, /not trusted.*--skip-trust/);
    assert.deepEqual(row(54), ['failed', true, null]);
    assert.deepEqual(row(173), ['rate_limited', true, 429]);
    assert.deepEqual(row(145), ['auth_failed', false, 401]);
    assert.deepEqual(row(147), ['auth_failed', false, 403]);
    assert.deepEqual(row(144), ['failed', false, 400]);
    assert.deepEqual(row(244), ['failed', true, 500]);
    assert.deepEqual(row(1), ['failed', true, null]);
    assert.deepEqual(row(0), ['failed', true, null]);
    assert.deepEqual(row(null), ['failed', true, null]);
    assert.match(describeExitCode(7).reason, /code 7/);
  });
});

describe('GeminiRunner.buildArgv', () => {
  const r = new GeminiRunner({ command: ['gemini'], extraArgs: ['--include-directories', '../lib'] });
  it('prompt, stream-json, yolo, skip-trust, resume, model, extra args', () => {
    assert.deepEqual(r.buildArgv({ prompt: 'hi', model: 'gemini-2.5-flash', resumeSessionId: 'abc', systemPromptAppend: null }), [
      'gemini', '-p', 'hi', '-o', 'stream-json', '--yolo', '--skip-trust', '--resume', 'abc', '-m', 'gemini-2.5-flash', '--include-directories', '../lib',
    ]);
    assert.deepEqual(r.buildArgv({ prompt: '- item', model: null, systemPromptAppend: null }).slice(0, 3), ['gemini', '-p=- item', '-o']);
    assert.equal(r.buildArgv({ prompt: 'task', model: null, systemPromptAppend: 'Be brief.' })[2], 'Be brief.\n\ntask');
    assert.equal(r.name, 'gemini');
    assert.equal(r.canResume, true);
    assert.throws(() => new GeminiRunner({ command: [] }), /needs a command/);
  });
});
