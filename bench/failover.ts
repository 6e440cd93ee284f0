/**
 * Failover time (issue #5): an `agent: auto` task whose first agent, the real Claude Code
 * CLI, is rate-limited (the scripted API answers 429 or 529) moves on to the next agent of
 * its fallback list. Measured: the first 429/529 the API sent → the next agent's attempt
 * started (the store's `attempts.started_at`). Prints p50 and max over a few runs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import { claudeEnv, makeClaudeSandbox } from '../test/fixtures/claude-env.ts';
import { startFakeAnthropic } from '../test/fixtures/fake-anthropic.ts';
import { agentq } from '../test/fixtures/project.ts';
import { runMain } from './common.ts';

const RUNS = 5;

async function once(status: number, fake: Awaited<ReturnType<typeof startFakeAnthropic>>, env: Record<string, string>, i: number): Promise<number> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-failover-'));
  const dir = path.join(root, '.agent-queue');
  fs.mkdirSync(path.join(dir, 'inbox'), { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'config.yaml'),
    YAML.stringify({ fallback: { default: ['claude', 'command'] }, agents: { claude: { rate_limit_backoff: '10m' }, command: { command: ['true'] } } }),
  );
  const marker = `failover run ${status} ${i}`;
  fake.setRules([{ match: marker, turns: [{ error: { status }, times: 'always' }] }]);
  const file = path.join(dir, 'inbox', 'job.md');
  fs.writeFileSync(file, `---\nagent: auto\n---\n${marker}\n`);
  fs.utimesSync(file, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
  const r = await agentq(['run', '--once', '--project', root], env);
  if (r.code !== 0) throw new Error(`run ${i} failed: ${r.stderr}`);
  const store = new SqliteStore(path.join(dir, 'agentq.db'));
  const attempts = await store.listAttempts(1);
  await store.close();
  const first = fake.requests.find((q) => q.firstUserText?.includes(marker) && q.status === status);
  const next = attempts.find((a) => a.agent === 'command');
  if (!first || !next) throw new Error(`run ${i}: no ${status} or no failover attempt`);
  fs.rmSync(root, { recursive: true, force: true });
  return next.startedAt - first.time;
}

async function main(): Promise<number> {
  const fake = await startFakeAnthropic({});
  const sandbox = makeClaudeSandbox('agentq-failover-claude-');
  const env = claudeEnv(fake.url, sandbox.config);
  const lines = ['failover: agent auto, fallback [claude, command]; first 429/529 from the API → next agent started, ms', 'status  runs  p50    max'];
  try {
    for (const status of [429, 529]) {
      const times: number[] = [];
      for (let i = 0; i < RUNS; i++) times.push(await once(status, fake, env, i));
      times.sort((a, b) => a - b);
      lines.push(`${status}     ${RUNS}     ${String(times[Math.floor(times.length / 2)]).padEnd(6)} ${times.at(-1)}`);
    }
  } finally {
    await fake.close();
    sandbox.cleanup();
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

runMain(main);
