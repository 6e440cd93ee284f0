/**
 * Store contract, HTTP requests and callbacks: one transaction for a task, its idempotency
 * key and callback, and the parent's `max_subtasks` checked in it; an answer and its idempotency
 * key in one transaction; callback deliveries found when due, leased, recorded, and re-armed by a
 * retry.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyStats } from '../../../src/agents/runner.ts';
import { SubtaskLimitError } from '../../../src/core/errors.ts';
import { claimOpts, newTask, T0, type StoreFactory } from './shared.ts';

/** Registers the `requests and callbacks` cases for a backend's stores. */
export function callbacksContract(factory: StoreFactory): void {
  describe('requests and callbacks', () => {
    it('enqueueRequest creates once per Idempotency-Key: replayed for the same body, conflict for another', async () => {
      const { store } = await factory.open();
      const key = { key: 'k', bodySha256: 'aaa' };
      const a = await store.enqueueRequest(newTask('a'), { idempotency: key, callbackUrl: 'http://127.0.0.1:1/x' }, T0);
      assert.equal(a.kind, 'created');
      const b = await store.enqueueRequest(newTask('b'), { idempotency: key }, T0);
      assert.deepEqual([b.kind, b.task.id], ['replayed', a.task.id]);
      const c = await store.enqueueRequest(newTask('c'), { idempotency: { key: 'k', bodySha256: 'bbb' } }, T0);
      assert.deepEqual([c.kind, c.task.id], ['conflict', a.task.id]);
      assert.deepEqual(await store.findIdempotencyKey('k'), { bodySha256: 'aaa', taskId: a.task.id });
      assert.equal(await store.findIdempotencyKey('other'), null);
      assert.equal((await store.listTasks()).length, 1);
      assert.equal((await store.getCallback(a.task.id))?.url, 'http://127.0.0.1:1/x');
      await store.close();
    });

    it('enqueueRequest with maxSubtasks refuses a subtask past the limit, creating nothing, also for concurrent requests on two handles', async () => {
      const { store, openSecond } = await factory.open();
      const [parent, other] = await store.enqueue([newTask('parent'), newTask('other')], T0);
      const sub = (name: string, parentId = parent!.id) => ({ ...newTask(name, { parent: 'parent' }), parentId });
      for (const name of ['s1', 's2']) assert.equal((await store.enqueueRequest(sub(name), { maxSubtasks: 3 }, T0)).kind, 'created');
      await store.enqueue([sub('s3')], T0); // a subtask from the inbox counts too
      await assert.rejects(store.enqueueRequest(sub('s4'), { maxSubtasks: 3 }, T0), (err: Error) => {
        assert.ok(err instanceof SubtaskLimitError);
        assert.equal(err.code, 'subtask_limit');
        assert.equal(err.message, `max_subtasks: task ${parent!.id} "parent" already has 3 subtasks, the most one task may have (config max_subtasks 3); this one was not created`);
        return true;
      });
      assert.deepEqual((await store.listSubtasks(parent!.id)).map((t) => t.name), ['s1', 's2', 's3']);
      assert.equal((await store.listTasks()).length, 5, 'nothing created');
      assert.equal((await store.enqueueRequest(sub('s4'), {}, T0)).kind, 'created', 'no maxSubtasks: no limit');
      assert.equal((await store.enqueueRequest(sub('o1', other!.id), { maxSubtasks: 1 }, T0)).kind, 'created', 'per parent');

      // Twelve requests at once over two handles for a parent allowed five: five are created.
      const second = await openSecond();
      const [racy] = await store.enqueue([newTask('racy')], T0);
      const results = await Promise.allSettled(
        Array.from({ length: 12 }, (_, i) => (i % 2 ? second : store).enqueueRequest({ ...newTask(`r${i}`, { parent: 'racy' }), parentId: racy!.id }, { maxSubtasks: 5 }, T0)),
      );
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 5);
      for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof SubtaskLimitError, String(r.reason));
      assert.equal((await store.listSubtasks(racy!.id)).length, 5);
      await second.close();
      await store.close();
    });

    it('answerRequest answers once per key: replayed for the same body, conflict for another; a task not blocked records nothing', async () => {
      const { store } = await factory.open();
      const [task] = await store.enqueue([newTask('ask')], T0);
      const key = { key: 'a2a:m1', bodySha256: 'h1' };
      await assert.rejects(store.answerRequest(task!.id, 'Blue', key, T0), { code: 'not_blocked' });
      assert.equal(await store.findIdempotencyKey('a2a:m1'), null, 'a refused answer records no key');
      await assert.rejects(store.answerRequest(9999, 'Blue', { key: 'a2a:m0', bodySha256: 'h' }, T0), { code: 'not_found' });
      const claim = (await store.claim(claimOpts(T0 + 1)))!;
      await store.block(claim.attempt.id, { question: 'Which colour?', stats: emptyStats(), now: T0 + 2 });
      const a = await store.answerRequest(task!.id, 'Blue', key, T0 + 3);
      assert.deepEqual([a.kind, a.task.state, a.task.answer], ['answered', 'queued', 'Blue']);
      const again = await store.answerRequest(task!.id, 'Blue', key, T0 + 4);
      assert.deepEqual([again.kind, again.task.id, again.task.state], ['replayed', task!.id, 'queued']);
      const other = await store.answerRequest(task!.id, 'Red', { key: 'a2a:m1', bodySha256: 'h2' }, T0 + 5);
      assert.deepEqual([other.kind, other.task.answer], ['conflict', 'Blue']);
      assert.deepEqual(await store.findIdempotencyKey('a2a:m1'), { bodySha256: 'h1', taskId: task!.id });
      await store.close();
    });

    it('a callback is due once its task is terminal, leased while tried, recorded, and re-armed by retry', async () => {
      const { store } = await factory.open();
      const { task } = await store.enqueueRequest(newTask('t'), { callbackUrl: 'http://127.0.0.1:1/hook' }, T0);
      assert.deepEqual(await store.claimDueCallbacks(T0, 1000, 10), [], 'queued: not due');
      await store.cancel(task.id, T0 + 1);
      const [due] = await store.claimDueCallbacks(T0 + 2, 1000, 10);
      assert.equal(due?.task.state, 'cancelled');
      assert.equal(due?.delivery.state, 'pending');
      assert.deepEqual(await store.claimDueCallbacks(T0 + 3, 1000, 10), [], 'leased: another process does not take it');
      let d = await store.recordCallbackTry(task.id, { outcome: 'retry', error: 'HTTP 503', nextTryAt: T0 + 500, now: T0 + 10 });
      assert.deepEqual([d?.state, d?.attempts, d?.lastError, d?.nextTryAt], ['pending', 1, 'HTTP 503', T0 + 500]);
      assert.deepEqual(await store.claimDueCallbacks(T0 + 499, 1000, 10), []);
      assert.equal((await store.claimDueCallbacks(T0 + 500, 1000, 10)).length, 1);
      d = await store.recordCallbackTry(task.id, { outcome: 'released', nextTryAt: T0 + 600, now: T0 + 510 });
      assert.deepEqual([d?.state, d?.attempts, d?.lastError], ['pending', 1, 'HTTP 503'], 'a released try is not counted');
      assert.equal((await store.claimDueCallbacks(T0 + 600, 1000, 10)).length, 1);
      d = await store.recordCallbackTry(task.id, { outcome: 'delivered', now: T0 + 700 });
      assert.deepEqual([d?.state, d?.attempts, d?.lastError, d?.deliveredAt], ['delivered', 2, null, T0 + 700]);
      assert.deepEqual(await store.claimDueCallbacks(T0 + 10_000, 1000, 10), []);
      await store.retry(task.id, T0 + 800);
      const rearmed = await store.getCallback(task.id);
      assert.deepEqual([rearmed?.state, rearmed?.attempts, rearmed?.deliveredAt], ['pending', 0, null], 'its next end is reported again');
      assert.deepEqual(await store.claimDueCallbacks(T0 + 900, 1000, 10), [], 'queued again: not due');
      await store.close();
    });
  });
}
