/**
 * The proactive per-agent limiter (`agents.<name>.rate_limit`): parsing the rate, the
 * store's token bucket under several processes at once, and the dispatcher (in process,
 * with a fake clock, running real `agent: command` processes) holding starts to the rate
 * without using attempts, and `agent: auto` failing over from an agent out of tokens.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { createRunners } from '../../src/agents/registry.ts';
import { emptyStats, type AgentRunner, type RunOutcome } from '../../src/agents/runner.ts';
import { agentConfig, loadConfig, parseConfig } from '../../src/config/config.ts';
import { parseRate } from '../../src/config/rate.ts';
import { Dispatcher } from '../../src/scheduler/dispatcher.ts';
import { agentBucket } from '../../src/scheduler/rate-limit.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { dropTask, makeProject, REPO_ROOT } from '../fixtures/project.ts';

const MIN = 60_000;
const HOUR = 3_600_000;

describe('rate_limit config', () => {
  it('takes N/UNIT and N/DURATION, and names the field and value when it is not a rate', () => {
    assert.deepEqual(parseRate('60/h'), { count: 60, windowMs: HOUR, text: '60/h' });
    assert.deepEqual(parseRate('500/d'), { count: 500, windowMs: 24 * HOUR, text: '500/d' });
    assert.deepEqual(parseRate('10/m'), { count: 10, windowMs: MIN, text: '10/m' });
    assert.deepEqual(parseRate('5/30s'), { count: 5, windowMs: 30_000, text: '5/30s' });
    assert.deepEqual(parseRate(' 100 / 5h '), { count: 100, windowMs: 5 * HOUR, text: '100/5h' });
    for (const bad of ['x', '60', '/h', '0/h', '1.5/h', '-1/h', '3/0s', '2/mo', '60/hx']) assert.equal(parseRate(bad), null, bad);
    assert.equal(parseRate(60), null);

    const config = parseConfig({ agents: { codex: { rate_limit: '60/h' }, gemini: { rate_limit: '10/m', rate_limit_burst: 3 } } });
    assert.deepEqual(agentBucket(agentConfig(config, 'codex')), { capacity: 60, refillPerMs: 60 / HOUR }, 'burst defaults to N');
    assert.deepEqual(agentBucket(agentConfig(config, 'gemini')), { capacity: 3, refillPerMs: 10 / MIN });
    assert.equal(agentBucket(agentConfig(config, 'claude')), null, 'no rate_limit, no bucket');
    assert.throws(() => parseConfig({ agents: { codex: { rate_limit: 'x' } } }), {
      code: 'config',
      message: 'config: agents.codex.rate_limit: not a rate: "x" (use e.g. 60/h, 10/m, 5/30s)',
    });
    assert.throws(() => parseConfig({ agents: { codex: { rate_limit: '1/h', rate_limit_burst: 0 } } }), /agents\.codex\.rate_limit_burst/);
  });
});

describe('rate buckets across processes', () => {
  it('four processes taking at once never get more tokens than the bucket held', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-bucket-')), 'agentq.db');
    new SqliteStore(file).close(); // migrate once, before the race
    const child = () =>
      new Promise<number>((resolve, reject) => {
        const p = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'test/fixtures/take-tokens.ts'), file, 'codex', '60', '40', '1700000000000'], {
          cwd: REPO_ROOT,
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let out = '';
        p.stdout.on('data', (d: Buffer) => (out += d.toString()));
        p.on('error', reject);
        p.on('exit', (code) => (code === 0 ? resolve(Number(out)) : reject(new Error(`take-tokens exited ${code}`))));
      });
    const children = [child(), child(), child(), child()];
    await new Promise((r) => setTimeout(r, 1500)); // let them open the store
    fs.writeFileSync(`${file}.go`, '');
    const got = await Promise.all(children);
    assert.equal(got.reduce((a, b) => a + b, 0), 60, `per process: ${got.join(', ')}`);
  });
});

/** Ticks, then waits until the attempts this started (and any they started) ended. */
async function tickAndSettle(d: Dispatcher): Promise<void> {
  await d.tick();
  do await new Promise((r) => setTimeout(r, 5));
  while (d.runningCount > 0);
}

/** A runner that must never run (an agent the limiter should have skipped). */
class MustNotRun implements AgentRunner {
  runs = 0;
  constructor(readonly name: string) {}
  async run(): Promise<RunOutcome> {
    this.runs++;
    return { kind: 'failed', reason: `${this.name} must not run`, retryable: false, stats: emptyStats(), exitCode: null };
  }
}

describe('the dispatcher under agents.<name>.rate_limit', () => {
  it('2/h: two of four command tasks run; the others wait for the next tokens without using attempts', async () => {
    const paths = makeProject({ concurrency: 4, agents: { command: { command: 'echo ran', rate_limit: '2/h' } } });
    for (const name of ['t1', 't2', 't3', 't4']) dropTask(paths, name, { agent: 'command' }, name);
    const store = new SqliteStore(path.join(paths.dir, 'agentq.db'));
    const config = loadConfig(paths.root);
    const T = Date.now();
    let now = T;
    const d = new Dispatcher({ paths, store, config, runners: new Map([['command', createRunners(config, paths, process.env).get('command')!]]), now: () => now });
    await d.start();
    await tickAndSettle(d);

    const tasks = async () => Promise.all(['t1', 't2', 't3', 't4'].map(async (n) => (await store.getTask(n))!));
    const byState = async () => (await tasks()).map((t) => `${t.name}:${t.state}:${t.attempts}`);
    assert.deepEqual(await byState(), ['t1:completed:1', 't2:completed:1', 't3:queued:0', 't4:queued:0']);
    const [pause] = await store.listPauses(now);
    assert.equal(pause?.agent, 'command');
    assert.equal(pause?.until, T + 30 * MIN, 'the bucket of 2 refills one token per 30 min');
    assert.equal(pause?.reason, `rate_limit 2/h: bucket empty, next start at ${new Date(T + 30 * MIN).toISOString().slice(11, 19)} UTC`);
    assert.equal(await store.agentStrikes('command'), 0, 'a bucket pause is no rate-limit strike');
    for (const t of (await tasks()).slice(2)) {
      // One dispatcher settles each start token before its next claim: the pause holds them unclaimed.
      assert.equal(t.claims, 0, `${t.name} was not even claimed`);
      assert.deepEqual(await store.listAttempts(t.id), []);
    }

    now = T + 30 * MIN - 1;
    await tickAndSettle(d);
    assert.deepEqual(await byState(), ['t1:completed:1', 't2:completed:1', 't3:queued:0', 't4:queued:0'], 'nothing starts before the token');
    now = T + 30 * MIN;
    await tickAndSettle(d);
    assert.deepEqual(await byState(), ['t1:completed:1', 't2:completed:1', 't3:completed:1', 't4:queued:0']);
    assert.equal((await store.listPauses(now))[0]?.until, T + 60 * MIN);
    now = T + 60 * MIN;
    await tickAndSettle(d);
    assert.deepEqual(await byState(), ['t1:completed:1', 't2:completed:1', 't3:completed:1', 't4:completed:1']);
    await d.stop();
    await store.close();
  });

  it('a task claimed after another dispatcher took the last token goes back without using an attempt', async () => {
    const paths = makeProject({ agents: { command: { command: 'echo ran', rate_limit: '1/h' } } });
    dropTask(paths, 'late', { agent: 'command' }, 'x');
    const store = new SqliteStore(path.join(paths.dir, 'agentq.db'));
    const config = loadConfig(paths.root);
    const T = Date.now();
    let now = T;
    // The other dispatcher (its own handle on the file) took the token and has not paused the agent yet.
    const other = new SqliteStore(path.join(paths.dir, 'agentq.db'));
    assert.equal((await other.takeRateToken('command', agentBucket(agentConfig(config, 'command'))!, T)).taken, true);
    await other.close();
    await store.pauseAgent({ agent: 'command', until: T - 1, reason: 'an old pause' }, 2);
    const d = new Dispatcher({ paths, store, config, runners: new Map([['command', createRunners(config, paths, process.env).get('command')!]]), now: () => now });
    await d.start();
    await tickAndSettle(d);
    const late = (await store.getTask('late'))!;
    assert.equal(late.state, 'queued');
    assert.equal(late.attempts, 0, 'the attempt was given back');
    assert.equal(late.runAfter, T + HOUR);
    const history = await store.listAttempts(late.id);
    assert.deepEqual(history.map((a) => [a.outcome, a.reason]), [['interrupted', `command: rate_limit 1/h: bucket empty, next start at ${new Date(T + HOUR).toISOString().slice(11, 19)} UTC`]]);
    assert.equal((await store.listPauses(now))[0]?.until, T + HOUR);
    assert.equal(await store.agentStrikes('command'), 2, 'strikes are kept');

    // A longer pause (a usage limit) is not shortened by the bucket.
    await store.pauseAgent({ agent: 'command', until: T + 5 * HOUR, reason: 'usage limit' }, 3);
    now = T + HOUR;
    await tickAndSettle(d);
    assert.equal((await store.getTask('late'))!.state, 'queued');
    assert.deepEqual(await store.listPauses(now), [{ agent: 'command', until: T + 5 * HOUR, reason: 'usage limit' }]);
    now = T + 5 * HOUR;
    await tickAndSettle(d);
    assert.equal((await store.getTask('late'))!.state, 'completed');
    assert.equal((await store.getTask('late'))!.attempts, 1);
    await d.stop();
    await store.close();
  });

  it('agent: auto skips an agent out of tokens (paused, or found empty at the start) and runs on the next', async () => {
    const paths = makeProject({
      fallback: { default: ['claude', 'command'] },
      agents: { claude: { rate_limit: '1/h' }, command: { command: 'echo "command did: $(cat)"' } },
    });
    dropTask(paths, 'a1', { agent: 'auto' }, 'first');
    const store = new SqliteStore(path.join(paths.dir, 'agentq.db'));
    const config = loadConfig(paths.root);
    const T = Date.now();
    let now = T;
    // Another dispatcher took claude's only token and has not paused it yet.
    await store.takeRateToken('claude', agentBucket(agentConfig(config, 'claude'))!, T);
    const claude = new MustNotRun('claude');
    const d = new Dispatcher({ paths, store, config, runners: new Map<string, AgentRunner>([['claude', claude], ['command', createRunners(config, paths, process.env).get('command')!]]), now: () => now });
    await d.start();
    await tickAndSettle(d);
    const a1 = (await store.getTask('a1'))!;
    assert.equal(a1.state, 'completed');
    assert.equal(a1.result?.trim(), 'command did: first');
    assert.equal(a1.runAgent, 'command');
    assert.equal(a1.attempts, 1);
    assert.deepEqual((await store.listPauses(now)).map((p) => [p.agent, p.until]), [['claude', T + HOUR]]);

    // Claude is now paused by its bucket: the next auto task goes straight to command.
    dropTask(paths, 'a2', { agent: 'auto' }, 'second');
    now = T + 1000;
    await tickAndSettle(d);
    assert.equal((await store.getTask('a2'))!.runAgent, 'command');
    assert.deepEqual((await store.listAttempts((await store.getTask('a2'))!.id)).map((a) => a.agent), ['command']);
    assert.equal(claude.runs, 0);
    await d.stop();
    await store.close();
  });
});
