/**
 * The scheduler's rate-limit policy, in process: a runner that reports a limit (as the Claude
 * runner does from real stream-json, tested in e2e) makes the dispatcher pause the agent,
 * doubling the pause with each limit in a row when no reset time is known, honouring a
 * stated reset, and resetting the count after a completed task.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { emptyStats, type AgentRunner, type RunOutcome } from '../../src/agents/runner.ts';
import { loadConfig, parseConfig } from '../../src/config/config.ts';
import { Dispatcher } from '../../src/scheduler/dispatcher.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { dropTask, makeProject } from '../fixtures/project.ts';

class ScriptedRunner implements AgentRunner {
  readonly name = 'claude';
  constructor(private readonly outcomes: RunOutcome[]) {}
  async run(): Promise<RunOutcome> {
    const next = this.outcomes.shift();
    if (!next) throw new Error('script exhausted');
    return next;
  }
}

const limited = (resetAt: number | null = null): RunOutcome => ({ kind: 'rate_limited', reason: 'API 429', resetAt, stats: emptyStats(), exitCode: null });
const completed: RunOutcome = { kind: 'completed', result: 'ok', stats: emptyStats(), exitCode: 0 };

describe('rate-limit pauses', () => {
  it('double from rate_limit_backoff up to its cap, honour a stated reset, and reset after a completion', async () => {
    const paths = makeProject({ agents: { claude: { rate_limit_backoff: '1m', rate_limit_backoff_max: '5m' } } });
    dropTask(paths, 'job', null, 'x');
    const store = new SqliteStore(path.join(paths.dir, 'agentq.db'));
    let now = Date.now();
    const stated = now + 3 * 3_600_000;
    const runner = new ScriptedRunner([limited(), limited(), limited(), limited(), limited(stated), completed]);
    const d = new Dispatcher({ paths, store, config: loadConfig(paths.root), runners: new Map([['claude', runner]]), now: () => now });
    await d.start();
    const pauses: number[] = [];
    for (let i = 0; i < 6; i++) {
      await d.tick();
      while (d.runningCount > 0) await new Promise((r) => setTimeout(r, 5));
      const [p] = await store.listPauses(now);
      if (p) {
        pauses.push(p.until - now);
        now = p.until; // the pause ends
      }
    }
    // 1, 2, 4 min, then the 5 min cap; then the stated reset (3 h after the start, 12 min of pauses later).
    assert.deepEqual(pauses, [60_000, 120_000, 240_000, 300_000, 3 * 3_600_000 - 720_000]);
    assert.equal((await store.getTask('job'))?.state, 'completed');
    assert.equal(await store.agentStrikes('claude'), 0);
    await d.stop();
    await store.close();
  });
});

describe('rate-limit pauses by account (agents.<name>.account)', () => {
  it("pause the account: a dispatcher on the same account skips claude's tasks, one on another account runs them", async () => {
    const paths = makeProject({});
    const store = new SqliteStore(path.join(paths.dir, 'agentq.db'));
    const now = Date.now();
    const resetAt = now + 3_600_000;
    const dispatcher = (account: string, outcomes: RunOutcome[]) => {
      const config = loadConfig(paths.root);
      config.agents.claude = parseConfig({ agents: { claude: { account } } }).agents.claude!;
      return new Dispatcher({ paths, store, config, runners: new Map([['claude', new ScriptedRunner(outcomes)]]), now: () => now });
    };
    const settle = async (d: Dispatcher) => {
      await d.tick();
      while (d.runningCount > 0) await new Promise((r) => setTimeout(r, 5));
    };
    const a = dispatcher('team-a', [limited(resetAt)]);
    const sameAccount = dispatcher('team-a', [completed]);
    const otherAccount = dispatcher('other', [completed]);
    for (const d of [a, sameAccount, otherAccount]) await d.start();
    dropTask(paths, 'first', null, 'x');
    await settle(a);
    assert.deepEqual(await store.listPauses(now), [{ agent: 'team-a', until: resetAt, reason: 'API 429' }], 'the account is paused, not "claude"');
    assert.equal(await store.agentStrikes('team-a'), 1);
    assert.equal(await store.agentStrikes('claude'), 0);
    await settle(sameAccount);
    assert.equal((await store.getTask('first'))?.state, 'queued', 'team-a is paused on this dispatcher too');
    assert.equal((await store.getTask('first'))?.claims, 1);
    const waits = await sameAccount.queueWaits();
    assert.match(waits?.[0]?.reason ?? '', /^claude \(account team-a\) is paused until .*: API 429$/);
    await settle(otherAccount);
    assert.equal((await store.getTask('first'))?.state, 'completed', 'account other is not paused');
    for (const d of [a, sameAccount, otherAccount]) await d.stop();
    await store.close();
  });
});
