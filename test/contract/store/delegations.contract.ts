/**
 * Store contract, delegations: the ledger of tasks handed to remote A2A agents. One open
 * delegation per task (created once, also by two handles at once), compare-and-set updates
 * that stamp each state's time, lookups and the newest-first list.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { claimOpts, newTask, T0, type StoreFactory } from './shared.ts';

/** Registers the `delegations` cases for a backend's stores. */
export function delegationsContract(factory: StoreFactory): void {
  describe('delegations', () => {
    it('a task keeps its remote; createDelegation records one pending delegation, keyed by the attempt id', async () => {
      const { store } = await factory.open();
      const [task] = await store.enqueue([newTask('t', { agent: 'a2a', remote: 'buildbox', remoteMetadata: { agent: 'command', command: ['make', 'test'], n: 2 } })], T0);
      assert.equal(task?.remote, 'buildbox');
      assert.deepEqual(task?.remoteMetadata, { agent: 'command', command: ['make', 'test'], n: 2 });
      assert.equal((await store.enqueue([newTask('plain')], T0))[0]?.remoteMetadata, null);
      const claim = await store.claim(claimOpts(T0, { agents: ['a2a'] }));
      assert.ok(claim);
      const made = await store.createDelegation({ taskId: claim.task.id, attemptId: claim.attempt.id, remote: 'buildbox', url: 'http://127.0.0.1:1/', now: T0 + 1 });
      assert.equal(made.created, true);
      const d = made.delegation;
      assert.deepEqual(
        [d.taskId, d.attemptId, d.messageId, d.remote, d.url, d.state, d.remoteTaskId, d.createdAt, d.progressAt, d.updatedAt, d.finishedAt],
        [claim.task.id, claim.attempt.id, claim.attempt.id, 'buildbox', 'http://127.0.0.1:1/', 'pending', null, T0 + 1, T0 + 1, T0 + 1, null],
      );
      assert.deepEqual(await store.openDelegation(claim.task.id), d);
      assert.deepEqual(await store.getDelegation(d.id), d);
      assert.equal(await store.getDelegation(d.id + 1000), null);
      const again = await store.createDelegation({ taskId: claim.task.id, attemptId: 'another-attempt', remote: 'x', url: 'http://127.0.0.1:2/', now: T0 + 2 });
      assert.deepEqual(again, { delegation: d, created: false }, 'an open delegation is returned, not a second one');
      await store.close();
    });

    it('updateDelegation is a compare-and-set on the state and stamps the time of each state it enters', async () => {
      const { store } = await factory.open();
      const [task] = await store.enqueue([newTask('t', { agent: 'a2a', remote: 'r' })], T0);
      const { delegation: d } = await store.createDelegation({ taskId: task!.id, attemptId: 'att-1', remote: 'r', url: 'http://127.0.0.1:1/', now: T0 });
      assert.equal(d.pushTokenSha256, null);
      const hash = 'ab'.repeat(32);
      let u = await store.updateDelegation(d.id, 'pending', { pushTokenSha256: hash }, T0 + 5);
      assert.deepEqual([u?.state, u?.pushTokenSha256, u?.updatedAt, u?.progressAt], ['pending', hash, T0 + 5, T0], 'the push token hash, kept');
      u = await store.updateDelegation(d.id, 'pending', { state: 'dispatched', remoteTaskId: 'rt-1', contextId: 'ctx', remoteState: 'submitted', progress: true }, T0 + 10);
      assert.equal(u?.pushTokenSha256, hash, 'a patch without it keeps it');
      assert.deepEqual([u?.state, u?.remoteTaskId, u?.contextId, u?.remoteState, u?.dispatchedAt, u?.progressAt, u?.updatedAt], ['dispatched', 'rt-1', 'ctx', 'submitted', T0 + 10, T0 + 10, T0 + 10]);
      assert.equal(await store.updateDelegation(d.id, 'pending', { state: 'failed' }, T0 + 11), null, 'no longer pending: nothing changes');
      u = await store.updateDelegation(d.id, 'dispatched', { lastError: 'HTTP 503' }, T0 + 12);
      assert.deepEqual([u?.state, u?.lastError, u?.progressAt, u?.updatedAt], ['dispatched', 'HTTP 503', T0 + 10, T0 + 12], 'an error is not progress');
      u = await store.updateDelegation(d.id, 'dispatched', { state: 'received', lastError: null, progress: true }, T0 + 20);
      u = await store.updateDelegation(d.id, 'received', { state: 'in_progress', progress: true }, T0 + 30);
      u = await store.updateDelegation(d.id, 'in_progress', { state: 'input_required', resultPreview: 'Which DB?', progress: true }, T0 + 40);
      u = await store.updateDelegation(d.id, 'input_required', { state: 'pending', messageId: 'att-2' }, T0 + 50);
      assert.deepEqual([u?.state, u?.messageId, u?.attemptId, u?.createdAt], ['pending', 'att-2', 'att-1', T0], 'an answer: pending again with its own message id');
      u = await store.updateDelegation(d.id, 'pending', { state: 'completed', resultPreview: 'done', progress: true }, T0 + 60);
      assert.deepEqual(
        [u?.state, u?.receivedAt, u?.inProgressAt, u?.inputRequiredAt, u?.finishedAt, u?.lastError, u?.resultPreview],
        ['completed', T0 + 20, T0 + 30, T0 + 40, T0 + 60, null, 'done'],
      );
      assert.equal(await store.openDelegation(task!.id), null, 'an ended delegation is not open');
      const next = await store.createDelegation({ taskId: task!.id, attemptId: 'att-3', remote: 'r', url: 'http://127.0.0.1:1/', now: T0 + 70 });
      assert.equal(next.created, true, 'after the end, the task may delegate again');
      await store.close();
    });

    it('two handles creating a delegation for one task at once make one', async () => {
      const { store, openSecond } = await factory.open();
      const other = await openSecond();
      const [task] = await store.enqueue([newTask('t', { agent: 'a2a', remote: 'r' })], T0);
      const results = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          (i % 2 ? other : store).createDelegation({ taskId: task!.id, attemptId: `att-${i}`, remote: 'r', url: 'http://127.0.0.1:1/', now: T0 + i }),
        ),
      );
      assert.equal(results.filter((r) => r.created).length, 1);
      assert.equal(new Set(results.map((r) => r.delegation.id)).size, 1);
      assert.equal((await store.listDelegations()).length, 1);
      await other.close();
      await store.close();
    });

    it('listDelegations: newest first, by state and task, with a cursor and a limit', async () => {
      const { store } = await factory.open();
      const tasks = await store.enqueue([newTask('a'), newTask('b'), newTask('c')], T0);
      const ids: number[] = [];
      for (const [i, t] of tasks.entries()) {
        const { delegation } = await store.createDelegation({ taskId: t.id, attemptId: `att-${i}`, remote: 'r', url: 'http://127.0.0.1:1/', now: T0 + i });
        ids.push(delegation.id);
      }
      await store.updateDelegation(ids[1]!, 'pending', { state: 'failed', lastError: 'remote lost the task' }, T0 + 10);
      assert.deepEqual((await store.listDelegations()).map((d) => d.id), [...ids].reverse());
      assert.deepEqual((await store.listDelegations({ state: 'pending' })).map((d) => d.id), [ids[2], ids[0]]);
      await store.updateDelegation(ids[2]!, 'pending', { state: 'input_required' }, T0 + 11);
      assert.deepEqual((await store.listDelegations({ open: true })).map((d) => d.id), [ids[2], ids[0]], 'open: pending and input_required, not failed');
      assert.deepEqual((await store.listDelegations({ open: true, state: 'pending' })).map((d) => d.id), [ids[0]]);
      const [failed] = await store.listDelegations({ state: 'failed' });
      assert.deepEqual([failed?.id, failed?.lastError, failed?.finishedAt], [ids[1], 'remote lost the task', T0 + 10]);
      assert.deepEqual((await store.listDelegations({ taskId: tasks[0]!.id })).map((d) => d.id), [ids[0]]);
      assert.deepEqual((await store.listDelegations({ beforeId: ids[2]!, limit: 1 })).map((d) => d.id), [ids[1]]);
      assert.deepEqual(await store.listDelegations({ state: 'canceled' }), []);
      await store.close();
    });
  });
}
