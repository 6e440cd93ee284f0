/**
 * Limit detection (issue #5): for every rate/usage-limit signal agentq knows, the time from
 * the signal reaching the runner to the runner returning `rate_limited` (the agent process
 * stopped). Two kinds of source:
 * - the real Claude Code, Codex and Gemini CLIs, and the openai HTTP runner, against the
 *   scripted APIs (`HTTP` rows): from the first 429/529 the API sent to the outcome;
 * - Claude Code's stream-json signals that an API key cannot produce (usage limits of
 *   subscription accounts), replayed by a stand-in `claude` that prints the recorded line,
 *   then keeps running as the real CLI does while it retries (`replay` rows): from the
 *   line written to the outcome.
 * Prints p50 and max per signal over a few runs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ClaudeRunner } from '../src/agents/claude/claude-runner.ts';
import { CodexRunner } from '../src/agents/codex/codex-runner.ts';
import { GeminiRunner } from '../src/agents/gemini/gemini-runner.ts';
import { OpenAIRunner } from '../src/agents/openai/openai-runner.ts';
import { CODEX, GEMINI, resolveAgentCommand } from '../src/agents/resolve-command.ts';
import type { RunOutcome, RunRequest } from '../src/agents/runner.ts';
import { CLAUDE_BIN, makeClaudeSandbox, makeRunRequest, type ClaudeSandbox } from '../test/fixtures/claude-env.ts';
import { startFakeAnthropic } from '../test/fixtures/fake-anthropic.ts';
import { codexProviderArgs, startFakeOpenAI } from '../test/fixtures/fake-openai.ts';
import { startFakeOpenAIChat } from '../test/fixtures/fake-openai-chat.ts';
import { geminiEnv, startFakeGemini } from '../test/fixtures/fake-gemini.ts';
import { runMain } from './common.ts';

const RUNS = 5;

/** A stand-in `claude`: prints init, then after 100 ms the signal line (noting when), then waits. */
const REPLAY = `
const fs = require('node:fs');
const lines = JSON.parse(process.env.REPLAY_LINES);
process.stdout.write(JSON.stringify({ type: 'system', subtype: 'init', session_id: 'replay', model: 'claude-sonnet-5' }) + '\\n');
setTimeout(() => {
  for (const line of lines) process.stdout.write(line + '\\n');
  fs.writeFileSync(process.env.REPLAY_MARK, String(Date.now()));
  if (process.env.REPLAY_EXIT) setTimeout(() => process.exit(1), 5);
  else setTimeout(() => {}, 60000);
}, 100);
`;

const result = (fields: Record<string, unknown>) =>
  JSON.stringify({ type: 'result', subtype: 'success', is_error: true, session_id: 'replay', num_turns: 1, total_cost_usd: 0, ...fields });

/** Recorded shapes (see test/unit/claude-stream-parser.test.ts, which proves each). */
const REPLAYED: Array<{ name: string; lines: string[]; exits: boolean }> = [
  {
    name: 'claude rate_limit_event rejected (resetsAt)',
    lines: [JSON.stringify({ type: 'rate_limit_event', rate_limit_info: { status: 'rejected', resetsAt: Math.floor(Date.now() / 1000) + 3600, rateLimitType: 'five_hour' } })],
    exits: false,
  },
  { name: 'claude "Claude AI usage limit reached|<epoch>"', lines: [result({ result: `Claude AI usage limit reached|${Math.floor(Date.now() / 1000) + 3600}` })], exits: true },
  { name: 'claude "You\'ve hit your limit · resets 5:50pm (Europe/Berlin)"', lines: [result({ result: "You've hit your limit · resets 5:50pm (Europe/Berlin)" })], exits: true },
  { name: 'claude "API Error: Rate limit reached" is_error', lines: [result({ result: 'API Error: Rate limit reached' })], exits: true },
];

function p50max(times: number[]): string {
  times.sort((a, b) => a - b);
  return `${String(Math.round(times[Math.floor(times.length / 2)]!)).padStart(5)} ${String(Math.round(times.at(-1)!)).padStart(5)}`;
}

function expectLimited(outcome: RunOutcome, what: string): void {
  if (outcome.kind !== 'rate_limited') throw new Error(`${what}: expected rate_limited, got ${outcome.kind} (${'reason' in outcome ? outcome.reason : ''})`);
}

/** A run request for a non-Claude runner in `sandbox`. */
function request(sandbox: ClaudeSandbox, prompt: string, agent: string, model: string, env: Record<string, string>): RunRequest {
  const base = makeRunRequest({ prompt, sandbox, baseUrl: 'http://127.0.0.1:9' });
  return { ...base, model, task: { ...base.task, agent }, env: { ...process.env, ...env } };
}

/** Time from the first error response of the scripted API to the outcome. */
function sinceFirst(requests: Array<{ time: number; status: number; prompt: string | null }>, prompt: string, done: number, what: string): number {
  const first = requests.find((q) => q.prompt?.includes(prompt) && q.status === 429);
  if (!first) throw new Error(`${what}: the API sent no 429`);
  return done - first.time;
}

async function codex429(sandbox: ClaudeSandbox, i: number): Promise<number> {
  const fake = await startFakeOpenAI();
  try {
    const prompt = `detect codex ${i} ${Date.now()}`;
    const resetsAt = Math.floor(Date.now() / 1000) + 3600;
    fake.setRules([{ match: prompt, turns: [{ error: { status: 429, body: { error: { type: 'usage_limit_reached', message: 'limit', resets_at: resetsAt } } }, times: 'always' }] }]);
    const home = path.join(sandbox.config, 'codex-home');
    fs.mkdirSync(home, { recursive: true });
    const runner = new CodexRunner({ command: resolveAgentCommand(CODEX, { env: {}, projectDir: process.cwd() }), graceMs: 1000, extraArgs: codexProviderArgs(fake.baseUrl) });
    const outcome = await runner.run(request(sandbox, prompt, 'codex', 'gpt-5.5', { HOME: sandbox.config, CODEX_HOME: home, FAKE_OPENAI_API_KEY: 'k' }));
    const done = Date.now();
    expectLimited(outcome, 'codex 429');
    return sinceFirst(fake.requests, prompt, done, 'codex');
  } finally {
    await fake.close();
  }
}

async function gemini429(sandbox: ClaudeSandbox, i: number): Promise<number> {
  const fake = await startFakeGemini();
  try {
    const prompt = `detect gemini ${i} ${Date.now()}`;
    fake.setRules([{ match: prompt, turns: [{ error: { status: 429 }, times: 'always' }] }]);
    const runner = new GeminiRunner({ command: resolveAgentCommand(GEMINI, { env: {}, projectDir: process.cwd() }), graceMs: 1000 });
    const outcome = await runner.run(request(sandbox, prompt, 'gemini', 'gemini-2.5-flash', geminiEnv(fake.url, sandbox.config, { extra: { TMPDIR: sandbox.root } })));
    const done = Date.now();
    expectLimited(outcome, 'gemini 429');
    return sinceFirst(fake.requests, prompt, done, 'gemini');
  } finally {
    await fake.close();
  }
}

async function openai429(sandbox: ClaudeSandbox, i: number): Promise<number> {
  const fake = await startFakeOpenAIChat();
  try {
    const prompt = `detect openai ${i} ${Date.now()}`;
    fake.setRules([{ match: prompt, turns: [{ error: { status: 429, headers: { 'retry-after': '30' } }, times: 'always' }] }]);
    const runner = new OpenAIRunner({ baseUrl: fake.baseUrl, apiKeyEnv: 'FAKE_KEY' });
    const outcome = await runner.run(request(sandbox, prompt, 'openai', 'gpt-test', { FAKE_KEY: 'k' }));
    const done = Date.now();
    expectLimited(outcome, 'openai 429');
    return sinceFirst(fake.requests, prompt, done, 'openai');
  } finally {
    await fake.close();
  }
}

async function main(): Promise<number> {
  const lines = ['limit detection: signal → runner outcome rate_limited (agent stopped), ms', `${'signal'.padEnd(66)} source   p50   max`];
  const sandbox = makeClaudeSandbox('agentq-detect-');
  const script = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-replay-')), 'claude-replay.cjs');
  fs.writeFileSync(script, REPLAY);
  const fake = await startFakeAnthropic({});
  try {
    // The real Claude Code CLI against the scripted API.
    const claude = new ClaudeRunner({ command: [CLAUDE_BIN], graceMs: 1000 });
    for (const status of [429, 529]) {
      const times: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const prompt = `detect ${status} ${i} ${Date.now()}`;
        fake.setRules([{ match: prompt, turns: [{ error: { status }, times: 'always' }] }]);
        const outcome = await claude.run(makeRunRequest({ prompt, sandbox, baseUrl: fake.url }));
        const done = Date.now();
        expectLimited(outcome, `claude ${status}`);
        const first = fake.requests.find((q) => q.firstUserText?.includes(prompt) && q.status === status);
        if (!first) throw new Error(`claude ${status}: the API saw no request`);
        times.push(done - first.time);
      }
      lines.push(`${`claude system/api_retry ${status}`.padEnd(66)} HTTP   ${p50max(times)}`);
    }
    // The other agents against their scripted APIs: a 429 with a stated reset.
    const others: Array<{ name: string; measure: (i: number) => Promise<number> }> = [
      { name: 'codex 429 (usage_limit_reached, resets_at)', measure: (i) => codex429(sandbox, i) },
      { name: 'gemini 429 RESOURCE_EXHAUSTED (retries on stderr)', measure: (i) => gemini429(sandbox, i) },
      { name: 'openai HTTP 429 Retry-After', measure: (i) => openai429(sandbox, i) },
    ];
    for (const other of others) {
      const times: number[] = [];
      for (let i = 0; i < RUNS; i++) times.push(await other.measure(i));
      lines.push(`${other.name.padEnd(66)} HTTP   ${p50max(times)}`);
    }
    // Replayed stream-json signals.
    for (const signal of REPLAYED) {
      const runner = new ClaudeRunner({ command: [process.execPath, script], graceMs: 1000 });
      const times: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const mark = path.join(path.dirname(script), `mark-${i}`);
        const env = { REPLAY_LINES: JSON.stringify(signal.lines), REPLAY_MARK: mark, ...(signal.exits ? { REPLAY_EXIT: '1' } : {}) };
        const outcome = await runner.run(makeRunRequest({ prompt: 'replay', sandbox, baseUrl: fake.url, env }));
        const done = Date.now();
        expectLimited(outcome, signal.name);
        times.push(done - Number(fs.readFileSync(mark, 'utf8')));
      }
      lines.push(`${signal.name.padEnd(66)} replay ${p50max(times)}`);
    }
  } finally {
    await fake.close();
    sandbox.cleanup();
    fs.rmSync(path.dirname(script), { recursive: true, force: true });
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

runMain(main);
