/**
 * Store contract, the batched finish (`finishMany`): one call ends several tasks as that many
 * `finish` calls in a row would — one result per item, in order: the task as it ended, or
 * null when its attempt no longer holds the lease (an attempt named twice: its later item) —
 * with a completed parent whose subtasks are open left `waiting`, as `finish` leaves it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyStats } from '../../../src/agents/runner.ts';
import type { FinishOutcome } from '../../../src/store/store.ts';
import { claimOpts, newTask, T0, type StoreFactory } from './shared.ts';

const ended = (state: FinishOutcome['state'], extra: Partial<FinishOutcome> = {}): FinishOutcome => ({
  state,
  attemptOutcome: state === 'waiting' ? 'completed' : (state as FinishOutcome['attemptOutcome']),
  stats: emptyStats(),
  now: T0 + 10,
  ...extra,
});

/** Registers the `batched finish` cases for a backend's stores. */
export function finishBatchContract(factory: StoreFactory): void {
  describe('batched finish (finishMany)', () => {
    it('ends each task by its own outcome, in order, with its attempt closed', async () => {
      const { store } = await factory.open();
      await store.enqueue([newTask('a'), newTask('b'), newTask('c')], T0);
      const [a, b, c] = await store.claimMany(claimOpts(), 3);
      const results = await store.finishMany([
        { attemptId: c!.attempt.id, outcome: ended('failed', { reason: 'boom', exitCode: 2 }) },
        {
          attemptId: a!.attempt.id,
          outcome: ended('completed', {
            result: 'done a',
            stats: { ...emptyStats(), costUsd: 0.5, numTurns: 3 },
            workspace: { branch: 'agentq/a', commits: [{ hash: 'abc', subject: 'x' }], ranOn: 'h1', pushedTo: null, pushError: null },
            output: { stdout: { text: 'out', bytes: 3 }, stderr: { text: '', bytes: 0 } },
          }),
        },
        { attemptId: b!.attempt.id, outcome: ended('timed_out', { reason: 'too slow' }) },
      ]);
      assert.deepEqual(
        results.map((t) => [t?.name, t?.state]),
        [
          ['c', 'failed'],
          ['a', 'completed'],
          ['b', 'timed_out'],
        ],
      );
      assert.equal(results[1]?.result, 'done a');
      assert.equal(results[1]?.stats.costUsd, 0.5);
      assert.equal(results[1]?.branch, 'agentq/a');
      assert.deepEqual(results[1]?.commits, [{ hash: 'abc', subject: 'x' }]);
      assert.equal(results[1]?.finishedAt, T0 + 10);
      assert.equal(results[0]?.failedReason, 'boom');
      const [attemptA] = await store.listAttempts(a!.task.id);
      assert.equal(attemptA?.outcome, 'completed');
      assert.equal(attemptA?.finishedAt, T0 + 10);
      assert.deepEqual(await store.attemptOutput(a!.attempt.id), { stdout: { text: 'out', bytes: 3 }, stderr: { text: '', bytes: 0 } });
      const [attemptC] = await store.listAttempts(c!.task.id);
      assert.equal(attemptC?.outcome, 'failed');
      assert.equal(attemptC?.exitCode, 2);
      assert.equal((await store.heartbeat(a!.attempt.id, T0 + 11, 30_000)).ok, false, 'the lease is gone');
      await store.close();
    });

    it('gives null for a fenced attempt and ends the others of the batch', async () => {
      const { store } = await factory.open();
      await store.enqueue([newTask('a'), newTask('b')], T0);
      const [a, b] = await store.claimMany(claimOpts(), 2);
      // a's lease is lost: its task was requeued (as the rescuer does) and claimed again.
      await store.requeue(a!.attempt.id, { attemptOutcome: 'interrupted', reason: 'rescued', runAfter: T0, now: T0 + 1 });
      const again = await store.claim(claimOpts(T0 + 2));
      assert.equal(again?.task.id, a!.task.id);
      const results = await store.finishMany([
        { attemptId: a!.attempt.id, outcome: ended('completed', { result: 'stale' }) },
        { attemptId: b!.attempt.id, outcome: ended('completed', { result: 'ok' }) },
      ]);
      assert.equal(results[0], null, 'the old attempt is fenced out');
      assert.equal(results[1]?.state, 'completed');
      const task = await store.getTask(a!.task.id);
      assert.equal(task?.state, 'running', 'the fenced finish wrote nothing');
      assert.equal(task?.result, null);
      assert.ok(await store.finish(again!.attempt.id, ended('completed')), 'the new attempt still holds the lease');
      await store.close();
    });

    it('leaves a completed parent with open subtasks waiting, next to tasks that end in their own state', async () => {
      const { store } = await factory.open();
      const [parent] = await store.enqueue([newTask('parent')], T0);
      const [other] = await store.enqueue([newTask('other')], T0);
      const [p, o] = await store.claimMany(claimOpts(), 2);
      assert.deepEqual([p?.task.id, o?.task.id], [parent!.id, other!.id]);
      await store.enqueue([{ ...newTask('sub', { parent: 'parent' }), parentId: parent!.id }], T0 + 1);
      const results = await store.finishMany([
        { attemptId: o!.attempt.id, outcome: ended('completed', { result: 'fine' }) },
        { attemptId: p!.attempt.id, outcome: ended('completed', { result: 'parent done' }) },
      ]);
      assert.equal(results[0]?.state, 'completed');
      assert.equal(results[1]?.state, 'waiting');
      assert.equal(results[1]?.finishedAt, null, 'no end time while waiting');
      assert.equal((await store.getTask(parent!.id))?.state, 'waiting');
      const [attemptP] = await store.listAttempts(parent!.id);
      assert.equal(attemptP?.outcome, 'completed', "the parent's attempt is closed");
      await store.close();
    });

    it('ends an attempt named twice once: its later item is null', async () => {
      const { store } = await factory.open();
      await store.enqueue([newTask('a')], T0);
      const a = await store.claim(claimOpts());
      const results = await store.finishMany([
        { attemptId: a!.attempt.id, outcome: ended('completed', { result: 'first' }) },
        { attemptId: a!.attempt.id, outcome: ended('failed', { reason: 'second' }) },
      ]);
      assert.equal(results[0]?.state, 'completed');
      assert.equal(results[1], null);
      const task = await store.getTask(a!.task.id);
      assert.equal(task?.state, 'completed');
      assert.equal(task?.result, 'first');
      await store.close();
    });

    it("stores text with a lone UTF-16 surrogate (an agent's broken output) without refusing the batch, as the finish of one did", async () => {
      const { store } = await factory.open();
      await store.enqueue([newTask('a'), newTask('b')], T0);
      const [a, b] = await store.claimMany(claimOpts(), 2);
      const broken = 'ok \ud800 then \udc00';
      const results = await store.finishMany([
        { attemptId: a!.attempt.id, outcome: ended('completed', { result: broken, output: { stdout: { text: broken, bytes: 12 }, stderr: { text: '', bytes: 0 } } }) },
        { attemptId: b!.attempt.id, outcome: ended('failed', { reason: broken }) },
      ]);
      assert.deepEqual(results.map((t) => t?.state), ['completed', 'failed']);
      // Each backend keeps the text around what it cannot store (PostgreSQL: U+FFFD, as for a text parameter).
      assert.match(results[0]?.result ?? '', /^ok .+ then .+$/);
      assert.match(results[1]?.failedReason ?? '', /^ok .+ then .+$/);
      assert.match((await store.attemptOutput(a!.attempt.id))?.stdout.text ?? '', /^ok .+ then .+$/);
      await store.close();
    });

    it('takes an empty batch and an unknown attempt', async () => {
      const { store } = await factory.open();
      assert.deepEqual(await store.finishMany([]), []);
      assert.deepEqual(await store.finishMany([{ attemptId: 'no-such-attempt', outcome: ended('completed') }]), [null]);
      await store.close();
    });
  });
}
