/**
 * Store contract, the batched claim (`claimMany`): one call takes up to `max` tasks as that
 * many claims in a row would — in claim order, each with its own attempt, lease and fencing
 * id, every limit counting the tasks taken before it in the batch (store-wide `concurrency`,
 * groups, agents), dependencies and pauses kept. (The seeded fuzz of claim-fuzz.contract.ts
 * holds batches to the rule as well.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyStats } from '../../../src/agents/runner.ts';
import type { Claim } from '../../../src/core/types.ts';
import { claimOpts, newTask, T0, type StoreFactory } from './shared.ts';

const names = (claims: Claim[]) => claims.map((c) => c.task.name);

/** Registers the `batched claim` cases for a backend's stores. */
export function claimBatchContract(factory: StoreFactory): void {
  describe('batched claim (claimMany)', () => {
    it('takes up to max in priority order, then arrival, each with its own attempt and lease', async () => {
      const { store } = await factory.open();
      await store.enqueue(
        [newTask('low1', { priority: 'low' }), newTask('d1'), newTask('crit', { priority: 'critical' }), newTask('d2'), newTask('high', { priority: 'high' })],
        T0,
      );
      const batch = await store.claimMany(claimOpts(), 4);
      assert.deepEqual(names(batch), ['crit', 'high', 'd1', 'd2']);
      assert.equal(new Set(batch.map((c) => c.attempt.id)).size, 4, 'one attempt id each');
      for (const c of batch) {
        assert.equal(c.task.state, 'running');
        assert.equal(c.task.attempts, 1, 'the attempt is counted at the claim');
        assert.equal(c.attempt.number, 1);
        assert.equal(c.attempt.taskId, c.task.id);
        const [row] = await store.listAttempts(c.task.id);
        assert.equal(row?.id, c.attempt.id, 'one attempt row per claimed task');
      }
      // Each lease fences on its own: ending one leaves the others running.
      const first = batch[0]!;
      assert.ok(await store.finish(first.attempt.id, { state: 'completed', attemptOutcome: 'completed', result: 'ok', stats: emptyStats(), now: T0 + 1 }));
      assert.equal(await store.finish(first.attempt.id, { state: 'completed', attemptOutcome: 'completed', result: 'ok', stats: emptyStats(), now: T0 + 2 }), null);
      for (const c of batch.slice(1)) assert.equal((await store.heartbeat(c.attempt.id, T0 + 3, 30_000)).ok, true);
      assert.deepEqual(names(await store.claimMany(claimOpts(T0 + 4), 4)), ['low1'], 'fewer than max when the queue runs out');
      assert.deepEqual(await store.claimMany(claimOpts(T0 + 5), 4), []);
      await store.close();
    });

    it('stops at the store-wide concurrency, counting what runs already and what the batch took', async () => {
      const { store, openSecond } = await factory.open();
      await store.enqueue(['a', 'b', 'c', 'd', 'e', 'f'].map((n) => newTask(n)), T0);
      const other = await openSecond();
      assert.deepEqual(names(await other.claimMany(claimOpts(T0, { workerId: 'w2', concurrency: 4 }), 2)), ['a', 'b']);
      assert.deepEqual(names(await store.claimMany(claimOpts(T0, { concurrency: 4 }), 5)), ['c', 'd'], 'two slots of four free');
      assert.deepEqual(await store.claimMany(claimOpts(T0, { concurrency: 4 }), 5), []);
      await other.close();
      await store.close();
    });

    it('keeps the group limit and the agent limit across the batch, taking the next tasks that fit', async () => {
      const { store } = await factory.open();
      await store.enqueue(
        [
          newTask('g1', { concurrencyGroup: 'api' }),
          newTask('g2', { concurrencyGroup: 'api' }),
          newTask('g3', { concurrencyGroup: 'api' }),
          newTask('c1', { agent: 'claude' }),
          newTask('c2', { agent: 'claude' }),
          newTask('free'),
        ],
        T0,
      );
      const batch = await store.claimMany(claimOpts(T0, { groupConcurrency: 2, agentConcurrency: { claude: 1 } }), 10);
      assert.deepEqual(names(batch), ['g1', 'g2', 'c1', 'free']);
      await store.close();
    });

    it('takes a dependent only once its dependency completed, and no task of a paused account', async () => {
      const { store } = await factory.open();
      const [dep] = await store.enqueue([newTask('dep')], T0);
      await store.enqueue([newTask('after', {}, [dep!.id]), newTask('c', { agent: 'claude' }), newTask('x')], T0);
      await store.pauseAgent({ agent: 'acct', until: T0 + 1000, reason: 'limit' });
      const o = claimOpts(T0, { accounts: { claude: 'acct' } });
      const batch = await store.claimMany(o, 10);
      assert.deepEqual(names(batch), ['dep', 'x'], 'the dependent waits, the paused account is passed over');
      await store.finish(batch[0]!.attempt.id, { state: 'completed', attemptOutcome: 'completed', result: 'ok', stats: emptyStats(), now: T0 + 1 });
      assert.deepEqual(names(await store.claimMany({ ...o, now: T0 + 1001 }, 10)), ['after', 'c']);
      await store.close();
    });

    it('claim is the batch of one', async () => {
      const { store } = await factory.open();
      await store.enqueue([newTask('a'), newTask('b')], T0);
      assert.deepEqual(await store.claimMany(claimOpts(), 0), []);
      assert.equal((await store.claim(claimOpts()))?.task.name, 'a');
      assert.deepEqual(names(await store.claimMany(claimOpts(), 1)), ['b']);
      await store.close();
    });
  });
}
