/**
 * Store contract, workers and leases: dispatchers registered with their heartbeat, and the
 * running tasks recovery reads (attempt, owner, lease expiry renewed by heartbeats).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyStats } from '../../../src/agents/runner.ts';
import { claimOpts, newTask, T0, type StoreFactory } from './shared.ts';

/** Registers the `workers and leases` cases for a backend's stores. */
export function workersContract(factory: StoreFactory): void {
  describe('workers and leases', () => {
    it('registers workers with their labels and root, lists them by start, renews their heartbeat and removes them', async () => {
      const { store, openSecond } = await factory.open();
      const other = await openSecond();
      assert.deepEqual(await store.listWorkers(), []);
      const w1 = { id: 'w1', host: 'host-a', pid: 101, startedAt: T0 + 10, heartbeatAt: T0 + 10, labels: ['gpu', 'codex-account'], root: '/srv/checkout-a' };
      const w2 = { id: 'w2', host: 'host-b', pid: 202, startedAt: T0, heartbeatAt: T0, labels: [], root: null };
      await store.registerWorker(w1);
      await other.registerWorker(w2);
      assert.deepEqual(await store.listWorkers(), [w2, w1], 'every handle sees every worker, oldest first');
      await store.registerWorker({ ...w1, heartbeatAt: T0 + 200, labels: ['other'] });
      assert.deepEqual(await other.listWorkers(), [w2, { ...w1, heartbeatAt: T0 + 200 }], 'registering again renews the heartbeat only');
      await store.workerHeartbeat('w1', T0 + 500);
      assert.deepEqual(await other.listWorkers(), [w2, { ...w1, heartbeatAt: T0 + 500 }]);
      await other.removeWorker('w2');
      await other.removeWorker('never-registered');
      assert.deepEqual(await store.listWorkers(), [{ ...w1, heartbeatAt: T0 + 500 }]);
      await other.close();
      await store.close();
    });

    it('lists running tasks with their attempt, owner and lease expiry; a heartbeat moves the expiry', async () => {
      const { store } = await factory.open();
      await store.enqueue([newTask('a'), newTask('b')], T0);
      const c = await store.claim(claimOpts(T0, { workerId: 'w7', leaseMs: 30_000 }));
      assert.ok(c);
      const running = await store.listRunning();
      assert.deepEqual(
        running.map((r) => [r.task.name, r.task.state, r.attemptId, r.workerId, r.leaseExpiresAt]),
        [['a', 'running', c.attempt.id, 'w7', T0 + 30_000]],
        'queued tasks are not listed',
      );
      assert.equal((await store.heartbeat(c.attempt.id, T0 + 1000, 30_000)).ok, true);
      assert.deepEqual((await store.listRunning()).map((r) => r.leaseExpiresAt), [T0 + 31_000]);
      await store.finish(c.attempt.id, { state: 'completed', attemptOutcome: 'completed', stats: emptyStats(), now: T0 + 2000 });
      assert.deepEqual(await store.listRunning(), []);
      await store.close();
    });
  });
}
