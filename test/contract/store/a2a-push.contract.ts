/**
 * Store contract, A2A push notification configs: set, replaced, listed and deleted per task;
 * a config is due while its task's version (`state:claims`) differs from the one it last
 * pushed, leased while tried, its tries counted per version, and a record for a version a
 * later claim replaced is ignored.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyStats } from '../../../src/agents/runner.ts';
import { taskVersion } from '../../../src/store/rows.ts';
import type { A2aPushConfig } from '../../../src/store/store.ts';
import { claimOpts, newTask, T0, type StoreFactory } from './shared.ts';

/** Registers the `A2A push configs` cases for a backend's stores. */
export function a2aPushContract(factory: StoreFactory): void {
  describe('A2A push configs', () => {
    const config = (taskId: number, over: Partial<A2aPushConfig> = {}): A2aPushConfig => ({
      taskId,
      id: String(taskId),
      url: 'http://127.0.0.1:1/push',
      token: null,
      authentication: null,
      ...over,
    });

    it('sets, replaces, lists and deletes the configs of a task', async () => {
      const { store } = await factory.open();
      const [a, b] = await store.enqueue([newTask('a'), newTask('b')], T0);
      await store.saveA2aPushConfig(config(a!.id, { token: 'tok', authentication: { schemes: ['Bearer'], credentials: 'secret' } }), T0);
      await store.saveA2aPushConfig(config(a!.id, { id: 'second', url: 'https://example.com/hook' }), T0 + 1);
      await store.saveA2aPushConfig(config(b!.id), T0 + 2);
      const listed = await store.listA2aPushConfigs(a!.id);
      assert.deepEqual(
        listed.map((p) => [p.id, p.url, p.token, p.authentication, p.createdAt, p.pushedVersion, p.attempts]),
        [
          [String(a!.id), 'http://127.0.0.1:1/push', 'tok', { schemes: ['Bearer'], credentials: 'secret' }, T0, null, 0],
          ['second', 'https://example.com/hook', null, null, T0 + 1, null, 0],
        ],
      );
      await store.saveA2aPushConfig(config(a!.id, { id: 'second', url: 'https://example.com/other' }), T0 + 3);
      assert.deepEqual((await store.listA2aPushConfigs(a!.id)).map((p) => [p.id, p.url, p.createdAt]), [
        [String(a!.id), 'http://127.0.0.1:1/push', T0],
        ['second', 'https://example.com/other', T0 + 1],
      ]);
      assert.equal(await store.deleteA2aPushConfig(a!.id, 'second'), true);
      assert.equal(await store.deleteA2aPushConfig(a!.id, 'second'), false);
      assert.deepEqual((await store.listA2aPushConfigs(a!.id)).map((p) => p.id), [String(a!.id)]);
      assert.deepEqual((await store.listA2aPushConfigs(b!.id)).map((p) => p.taskId), [b!.id]);
      assert.deepEqual(await store.listA2aPushConfigs(9999), []);
      await store.close();
    });

    it('a config is due once per task version: leased, retried, then due again when the task changes', async () => {
      const { store } = await factory.open();
      const [task] = await store.enqueue([newTask('t')], T0);
      await store.saveA2aPushConfig(config(task!.id), T0);
      const [first] = await store.claimDueA2aPushes(T0 + 1, 1000, 10);
      assert.equal(first?.version, taskVersion(task!));
      assert.equal(first?.version, 'queued:0');
      assert.deepEqual([first?.task.id, first?.push.attempts, first?.push.nextTryAt], [task!.id, 0, T0 + 1001]);
      assert.deepEqual(await store.claimDueA2aPushes(T0 + 2, 1000, 10), [], 'leased: another process does not take it');
      let p = await store.recordA2aPushTry(task!.id, first!.push.id, first!.version, { outcome: 'retry', error: 'HTTP 503', nextTryAt: T0 + 500, now: T0 + 10 });
      assert.deepEqual([p?.attempts, p?.lastError, p?.nextTryAt, p?.pushedVersion], [1, 'HTTP 503', T0 + 500, null]);
      assert.deepEqual(await store.claimDueA2aPushes(T0 + 499, 1000, 10), []);
      const [retried] = await store.claimDueA2aPushes(T0 + 500, 1000, 10);
      assert.equal(retried?.push.attempts, 1, 'the tries of one version add up');
      p = await store.recordA2aPushTry(task!.id, retried!.push.id, retried!.version, { outcome: 'delivered', now: T0 + 510 });
      assert.deepEqual([p?.attempts, p?.lastError, p?.deliveredAt, p?.pushedVersion, p?.nextTryAt], [2, null, T0 + 510, 'queued:0', null]);
      assert.deepEqual(await store.claimDueA2aPushes(T0 + 10_000, 1000, 10), [], 'pushed: not due until the task changes');

      // The task is claimed and blocks: a new version each time.
      const claim = (await store.claim(claimOpts(T0 + 600)))!;
      const [running] = await store.claimDueA2aPushes(T0 + 601, 1000, 10);
      assert.deepEqual([running?.version, running?.task.state, running?.push.attempts], ['running:1', 'running', 0]);
      await store.block(claim.attempt.id, { question: 'Which?', stats: emptyStats(), now: T0 + 602 });
      // A record for the older version, after a later claim took the newer one, is ignored.
      const [blocked] = await store.claimDueA2aPushes(T0 + 2000, 1000, 10);
      assert.equal(blocked?.version, 'blocked:1');
      assert.equal(await store.recordA2aPushTry(task!.id, running!.push.id, running!.version, { outcome: 'delivered', now: T0 + 2001 }), null);
      p = await store.recordA2aPushTry(task!.id, blocked!.push.id, blocked!.version, { outcome: 'failed', error: 'HTTP 404', now: T0 + 2002 });
      assert.deepEqual([p?.pushedVersion, p?.lastError, p?.nextTryAt], ['blocked:1', 'HTTP 404', null], 'given up: that version is not tried again');
      assert.deepEqual(await store.claimDueA2aPushes(T0 + 5000, 1000, 10), []);

      // Answered and claimed again: blocked again is another version (claims 2).
      await store.answer(task!.id, 'This one', T0 + 5001);
      const again = (await store.claim(claimOpts(T0 + 5002)))!;
      await store.block(again.attempt.id, { question: 'And now?', stats: emptyStats(), now: T0 + 5003 });
      const [second] = await store.claimDueA2aPushes(T0 + 5004, 1000, 10);
      assert.equal(second?.version, 'blocked:2');
      p = await store.recordA2aPushTry(task!.id, second!.push.id, second!.version, { outcome: 'released', nextTryAt: T0 + 5005, now: T0 + 5004 });
      assert.deepEqual([p?.attempts, p?.nextTryAt, p?.pushedVersion], [0, T0 + 5005, 'blocked:1'], 'a released try is not counted');

      // Replacing a config starts its delivery over: the task as it is now is due at once.
      await store.saveA2aPushConfig(config(task!.id, { url: 'http://127.0.0.1:2/new' }), T0 + 6000);
      const [replaced] = await store.claimDueA2aPushes(T0 + 6001, 1000, 10);
      assert.deepEqual([replaced?.push.url, replaced?.version, replaced?.push.attempts], ['http://127.0.0.1:2/new', 'blocked:2', 0]);
      await store.close();
    });
  });
}
