/**
 * Store contract, agents: which agents a claim serves, pauses and strikes, rate buckets
 * (shared between handles), and spend per day, agent, model and tag.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyStats } from '../../../src/agents/runner.ts';
import type { RunStats, TaskSpec } from '../../../src/core/types.ts';
import type { Store } from '../../../src/store/store.ts';
import { claimOpts, newTask, T0, type StoreFactory } from './shared.ts';

/** Registers the `agents` cases for a backend's stores. */
export function agentsContract(factory: StoreFactory): void {
  describe('agents', () => {
    it('claims only for the given agents and skips paused agents until the pause ends', async () => {
      const { store } = await factory.open();
      await store.enqueue([newTask('c1', { agent: 'claude' })], T0);
      assert.equal(await store.claim(claimOpts(T0, { agents: ['command'] })), null);
      await store.pauseAgent({ agent: 'claude', until: T0 + 5000, reason: 'rate limited' });
      assert.deepEqual((await store.listPauses(T0)).map((p) => p.agent), ['claude']);
      assert.equal(await store.claim(claimOpts(T0 + 1000)), null);
      assert.equal((await store.claim(claimOpts(T0 + 5000)))?.task.name, 'c1');
      assert.deepEqual(await store.listPauses(T0 + 5000), []);
      assert.equal(await store.agentStrikes('claude'), 0);
      await store.pauseAgent({ agent: 'claude', until: T0 + 9000, reason: 'again' }, 2);
      assert.equal(await store.agentStrikes('claude'), 2);
      await store.clearAgentStrikes('claude');
      assert.equal(await store.agentStrikes('claude'), 0);
      assert.equal(await store.agentStrikes('never-paused'), 0);
      await store.close();
    });

    it("skips a task while its agent's account (accounts) is paused, not another account's", async () => {
      const { store } = await factory.open();
      await store.enqueue([newTask('c1', { agent: 'claude' })], T0);
      await store.pauseAgent({ agent: 'a', until: T0 + 5000, reason: '429 on account a' }, 1);
      assert.equal(await store.claim(claimOpts(T0, { accounts: { claude: 'a' } })), null, 'claude runs on account a here: paused');
      assert.equal(await store.claim(claimOpts(T0, { accounts: { command: 'x', claude: 'a' } })), null, 'only the task agent\'s account counts');
      // A pause under the agent's own name is another account's once claude runs on b.
      await store.pauseAgent({ agent: 'claude', until: T0 + 5000, reason: 'account claude' });
      assert.equal(await store.claim(claimOpts(T0)), null, 'without accounts, claude is its own account');
      assert.equal((await store.claim(claimOpts(T0, { accounts: { claude: 'b' } })))?.task.name, 'c1', 'account b is not paused');
      await store.close();
    });

    it('extendPause only lengthens a pause and keeps the strikes', async () => {
      const { store } = await factory.open();
      assert.equal(await store.extendPause({ agent: 'codex', until: T0 + 1000, reason: 'bucket' }), true);
      assert.deepEqual(await store.listPauses(T0), [{ agent: 'codex', until: T0 + 1000, reason: 'bucket' }]);
      assert.equal(await store.agentStrikes('codex'), 0, 'no strike');
      await store.pauseAgent({ agent: 'codex', until: T0 + 60_000, reason: 'API 429' }, 3);
      assert.equal(await store.extendPause({ agent: 'codex', until: T0 + 2000, reason: 'bucket' }), false);
      assert.deepEqual(await store.listPauses(T0), [{ agent: 'codex', until: T0 + 60_000, reason: 'API 429' }], 'a longer pause is kept');
      assert.equal(await store.extendPause({ agent: 'codex', until: T0 + 90_000, reason: 'bucket, later' }), true);
      assert.deepEqual(await store.listPauses(T0), [{ agent: 'codex', until: T0 + 90_000, reason: 'bucket, later' }]);
      assert.equal(await store.agentStrikes('codex'), 3, 'strikes kept');
      await store.close();
    });

    it('rate buckets: start full, drain, refill with time up to capacity, and say when the next token comes', async () => {
      const { store } = await factory.open();
      const hour = 3_600_000;
      const bucket = { capacity: 2, refillPerMs: 2 / hour }; // 2/h
      assert.deepEqual(await store.takeRateToken('codex', bucket, T0), { taken: true, tokens: 1, nextTokenAt: T0 });
      assert.deepEqual(await store.takeRateToken('codex', bucket, T0), { taken: true, tokens: 0, nextTokenAt: T0 + hour / 2 });
      const empty = await store.takeRateToken('codex', bucket, T0 + 60_000);
      assert.equal(empty.taken, false);
      assert.ok(Math.abs(empty.tokens - 1 / 30) < 1e-9, `a minute refills 1/30 token, got ${empty.tokens}`);
      assert.equal(empty.nextTokenAt, T0 + hour / 2, 'a refused take does not move the next token');
      assert.equal((await store.takeRateToken('codex', bucket, T0 + hour / 2 - 1)).taken, false);
      const refilled = await store.takeRateToken('codex', bucket, T0 + hour / 2);
      assert.equal(refilled.taken, true, 'the token is there at nextTokenAt');
      assert.ok(refilled.tokens < 1e-9);
      assert.equal(refilled.nextTokenAt, T0 + hour);
      // A long quiet spell refills only up to the capacity.
      const later = T0 + 10 * hour;
      assert.deepEqual(await store.takeRateToken('codex', bucket, later), { taken: true, tokens: 1, nextTokenAt: later });
      assert.equal((await store.takeRateToken('codex', bucket, later)).taken, true);
      assert.equal((await store.takeRateToken('codex', bucket, later)).taken, false);
      // A clock behind the last update (another host) adds nothing.
      assert.equal((await store.takeRateToken('codex', bucket, later - hour)).taken, false);
      // Buckets are per agent, and a burst larger than the rate holds more.
      let taken = 0;
      while ((await store.takeRateToken('gemini', { capacity: 5, refillPerMs: 1 / hour }, T0)).taken) taken++;
      assert.equal(taken, 5);
      await assert.rejects(store.takeRateToken('codex', { capacity: 0, refillPerMs: 1 }, T0), { code: 'invalid_bucket' });
      await assert.rejects(store.takeRateToken('codex', { capacity: 1, refillPerMs: 0 }, T0), { code: 'invalid_bucket' });
      await store.close();
    });

    it('never takes more rate tokens than the bucket holds, from two handles at once', async () => {
      const { store, openSecond } = await factory.open();
      const other = await openSecond();
      const bucket = { capacity: 25, refillPerMs: 1 / 3_600_000 };
      const taker = async (s: Store) => {
        let n = 0;
        for (let i = 0; i < 40; i++) if ((await s.takeRateToken('claude', bucket, T0)).taken) n++;
        return n;
      };
      const [a, b] = await Promise.all([taker(store), taker(other)]);
      assert.equal(a + b, 25);
      assert.equal((await other.takeRateToken('claude', bucket, T0)).taken, false);
      await other.close();
      await store.close();
    });

    it('sums usage per local day, agent, model and tag over a window; a tagged attempt counts once per tag', async () => {
      const { store } = await factory.open();
      const at = (day: number, hour: number, minute = 0) => Date.UTC(2026, 0, day, hour, minute);
      /** Enqueues a task at `start`, claims it then, and finishes it a second later with `stats`. */
      const run = async (name: string, start: number, over: Partial<TaskSpec>, state: 'completed' | 'failed', stats: Partial<RunStats>) => {
        await store.enqueue([newTask(name, over)], start);
        const c = await store.claim(claimOpts(start));
        assert.equal(c?.task.name, name);
        await store.finish(c!.attempt.id, { state, attemptOutcome: state, stats: { ...emptyStats(), ...stats }, now: start + 1000 });
      };
      const sonnet = (costUsd: number, inputTokens: number) => ({ model: 'sonnet-x', costUsd, inputTokens, outputTokens: inputTokens / 10 });
      await run('before', at(9, 23, 59), { agent: 'claude' }, 'completed', sonnet(5, 5000));
      await run('a', at(10, 10), { agent: 'claude', tags: ['api', 'ui'] }, 'completed', sonnet(0.1, 100));
      await run('b', at(10, 23, 30), { agent: 'claude', tags: ['api'] }, 'failed', { model: 'opus-x', costUsd: 0.2, inputTokens: 200, outputTokens: 20 });
      await run('c', at(11, 9), { agent: 'command' }, 'completed', {});
      await run('d', at(11, 12), { agent: 'claude', tags: ['ui'] }, 'completed', sonnet(0.3, 300));
      await run('at-until', at(12, 0), { agent: 'claude' }, 'completed', sonnet(7, 7000));
      const window = { since: at(10, 10), until: at(12, 0), timeZone: 'UTC' }; // a starts at since, at-until at until
      const figures = (attempts: number, completed: number, costUsd: number, inputTokens: number) => ({
        attempts,
        completed,
        costUsd,
        inputTokens,
        outputTokens: inputTokens / 10,
      });

      assert.deepEqual(await store.usage(window), [
        { day: '2026-01-10', agent: 'claude', model: 'opus-x', tag: 'api', ...figures(1, 0, 0.2, 200) },
        { day: '2026-01-10', agent: 'claude', model: 'sonnet-x', tag: 'api', ...figures(1, 1, 0.1, 100) },
        { day: '2026-01-10', agent: 'claude', model: 'sonnet-x', tag: 'ui', ...figures(1, 1, 0.1, 100) },
        { day: '2026-01-11', agent: 'claude', model: 'sonnet-x', tag: 'ui', ...figures(1, 1, 0.3, 300) },
        { day: '2026-01-11', agent: 'command', model: null, tag: null, ...figures(1, 1, 0, 0) },
      ]);
      assert.deepEqual(await store.usage({ ...window, by: ['agent'] }), [
        { agent: 'claude', ...figures(3, 2, 0.6, 600) },
        { agent: 'command', ...figures(1, 1, 0, 0) },
      ], 'without tag, an attempt of a task with two tags counts once');
      assert.deepEqual(await store.usage({ ...window, by: ['tag', 'model'] }), [
        { tag: 'api', model: 'opus-x', ...figures(1, 0, 0.2, 200) },
        { tag: 'api', model: 'sonnet-x', ...figures(1, 1, 0.1, 100) },
        { tag: 'ui', model: 'sonnet-x', ...figures(2, 2, 0.4, 400) },
        { tag: null, model: null, ...figures(1, 1, 0, 0) },
      ]);
      assert.deepEqual(await store.usage({ ...window, by: [] }), [figures(4, 3, 0.6, 600)]);
      // 23:30 UTC on the 10th is already the 11th in Berlin (UTC+1 in January).
      assert.deepEqual(await store.usage({ ...window, timeZone: 'Europe/Berlin', by: ['day'] }), [
        { day: '2026-01-10', ...figures(1, 1, 0.1, 100) },
        { day: '2026-01-11', ...figures(3, 2, 0.5, 500) },
      ]);
      assert.deepEqual(
        (await store.usage({ since: at(10, 0), by: ['day'], timeZone: 'UTC' })).map((r) => [r.day, r.attempts]),
        [['2026-01-10', 2], ['2026-01-11', 2], ['2026-01-12', 1]],
        'no until: everything since',
      );
      assert.deepEqual(await store.usage({ since: at(13, 0), timeZone: 'UTC' }), []);
      await assert.rejects(store.usage({ ...window, timeZone: 'Mars/Olympus' }), { code: 'invalid_time_zone' });
      await store.close();
    });
  });
}
