/**
 * Limit detection (issue #5): for every rate/usage-limit signal agentq knows, the time from
 * the signal reaching the runner to the runner returning `rate_limited` (the agent process
 * stopped). Two kinds of source:
 * - the real agent CLIs against the scripted APIs (`HTTP` rows): from the first error
 *   response the API sent to the outcome;
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
import type { RunOutcome } from '../src/agents/runner.ts';
import { CLAUDE_BIN, makeClaudeSandbox, makeRunRequest } from '../test/fixtures/claude-env.ts';
import { startFakeAnthropic } from '../test/fixtures/fake-anthropic.ts';
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
