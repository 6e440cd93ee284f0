/**
 * Store contract, taking over by hand (`agentq attach` / `agentq release`): `takeOver` on a
 * running task is a request its dispatcher sees in the heartbeat and ends with `handOver`
 * (fenced, the attempt not counted, the session kept); on a blocked or queued task it takes
 * effect at once; `release` queues it again with the note; what clears the mark.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyStats } from '../../../src/agents/runner.ts';
import { claimOpts, newTask, T0, type StoreFactory } from './shared.ts';

const STATS = { ...emptyStats(), sessionId: 'sess-1', model: 'm1', costUsd: 0.01 };

/** Registers the `taking over by hand` cases for a backend's stores. */
export function takeoverContract(factory: StoreFactory): void {
  describe('taking over by hand', () => {
    it('a running task: the request shows in the heartbeat; handOver blocks it taken over, the attempt not counted, the session kept', async () => {
      const { store } = await factory.open();
      const [task] = await store.enqueue([newTask('a', { agent: 'claude' })], T0);
      const c = await store.claim(claimOpts());
      await store.recordStats(c!.attempt.id, { sessionId: 'sess-1' });
      assert.deepEqual(await store.heartbeat(c!.attempt.id, T0 + 1, 30_000), { ok: true, cancelRequested: false, takeoverRequested: false });

      const asked = await store.takeOver(task!.id, T0 + 2);
      assert.deepEqual([asked.state, asked.takenOverAt], ['running', T0 + 2], 'a running task is only asked');
      assert.equal((await store.takeOver(task!.id, T0 + 3)).takenOverAt, T0 + 2, 'asking again keeps the first time');
      assert.deepEqual(await store.heartbeat(c!.attempt.id, T0 + 4, 30_000), { ok: true, cancelRequested: false, takeoverRequested: true });

      const taken = await store.handOver(c!.attempt.id, { stats: STATS, exitCode: null, now: T0 + 5 });
      assert.deepEqual(
        [taken?.state, taken?.takenOverAt, taken?.attempts, taken?.claims, taken?.question, taken?.answer, taken?.stats.sessionId],
        ['blocked', T0 + 2, 0, 1, null, null, 'sess-1'],
      );
      const [attempt] = await store.listAttempts(task!.id);
      assert.deepEqual([attempt?.outcome, attempt?.reason, attempt?.finishedAt], ['interrupted', 'taken over', T0 + 5]);
      assert.equal((await store.heartbeat(c!.attempt.id, T0 + 6, 30_000)).ok, false, 'the lease is gone');
      assert.equal(await store.handOver(c!.attempt.id, { stats: STATS, now: T0 + 7 }), null, 'fenced: a second end is refused');
      assert.deepEqual(
        (await store.listTasks({ state: 'blocked' })).map((t) => [t.name, t.takenOverAt]),
        [['a', T0 + 2]],
      );
      assert.equal(await store.claim(claimOpts(T0 + 8)), null, 'a task taken over is not claimed');
      await store.close();
    });

    it('a blocked task is taken over at once (its question cleared); answer is refused; release queues it with the note', async () => {
      const { store } = await factory.open();
      const [task] = await store.enqueue([newTask('a', { agent: 'claude' })], T0);
      const c = await store.claim(claimOpts());
      await store.block(c!.attempt.id, { question: 'Which colour?', stats: STATS, now: T0 + 1 });
      const taken = await store.takeOver(task!.id, T0 + 2);
      assert.deepEqual([taken.state, taken.takenOverAt, taken.question, taken.stats.sessionId], ['blocked', T0 + 2, null, 'sess-1']);
      await assert.rejects(store.answer(task!.id, 'Blue', T0 + 3), { code: 'not_blocked', message: /taken over by hand/ });

      const released = await store.release(task!.id, 'go on', T0 + 4);
      assert.deepEqual(
        [released.state, released.takenOverAt, released.question, released.answer, released.runAfter, released.stats.sessionId],
        ['queued', null, null, 'go on', T0 + 4, 'sess-1'],
      );
      await assert.rejects(store.release(task!.id, 'again', T0 + 5), { code: 'not_taken_over' });
      const again = await store.claim(claimOpts(T0 + 5));
      assert.deepEqual([again?.task.name, again?.task.answer, again?.attempt.number], ['a', 'go on', 2]);
      const done = await store.finish(again!.attempt.id, { state: 'completed', attemptOutcome: 'completed', result: 'ok', stats: emptyStats(), now: T0 + 6 });
      assert.deepEqual([done?.state, done?.answer, done?.takenOverAt], ['completed', null, null]);
      await store.close();
    });

    it('release refuses a task that is not taken over, naming why; takeOver leaves an ended task as it is', async () => {
      const { store } = await factory.open();
      const [queued, asks, ended] = await store.enqueue([newTask('q', { priority: 'low' }), newTask('asks'), newTask('ended')], T0);
      const c1 = await store.claim(claimOpts());
      await store.block(c1!.attempt.id, { question: 'Why?', stats: emptyStats(), now: T0 + 1 });
      const c2 = await store.claim(claimOpts());
      await store.finish(c2!.attempt.id, { state: 'completed', attemptOutcome: 'completed', result: 'ok', stats: emptyStats(), now: T0 + 2 });
      assert.deepEqual([c1?.task.id, c2?.task.id], [asks!.id, ended!.id]);
      await assert.rejects(store.release(queued!.id, 'x', T0 + 3), { code: 'not_taken_over', message: /is queued, not taken over by hand/ });
      await assert.rejects(store.release(asks!.id, 'x', T0 + 3), { code: 'not_taken_over', message: /blocked on a question/ });
      await assert.rejects(store.release(9999, 'x', T0 + 3), { code: 'not_found' });
      await assert.rejects(store.takeOver(9999, T0 + 3), { code: 'not_found' });
      const unchanged = await store.takeOver(ended!.id, T0 + 3);
      assert.deepEqual([unchanged.state, unchanged.takenOverAt], ['completed', null]);
      assert.equal((await store.getTask(asks!.id))?.question, 'Why?', 'a refused release changes nothing');
      await store.close();
    });

    it('an attempt that ends before its dispatcher sees the request clears it; a queued one (requeued meanwhile) is taken over at once', async () => {
      const { store } = await factory.open();
      const [a, b] = await store.enqueue([newTask('a'), newTask('b', { priority: 'low' })], T0);
      const ca = await store.claim(claimOpts());
      await store.takeOver(a!.id, T0 + 1);
      const done = await store.finish(ca!.attempt.id, { state: 'completed', attemptOutcome: 'completed', result: 'ok', stats: emptyStats(), now: T0 + 2 });
      assert.deepEqual([done?.state, done?.takenOverAt], ['completed', null]);

      const cb = await store.claim(claimOpts(T0 + 3));
      assert.equal(cb?.task.id, b!.id);
      await store.takeOver(b!.id, T0 + 4);
      const requeued = await store.requeue(cb!.attempt.id, { attemptOutcome: 'failed', reason: 'exit 1', runAfter: T0 + 100, now: T0 + 5 });
      assert.deepEqual([requeued?.state, requeued?.takenOverAt], ['queued', T0 + 4], 'the request waits for the next step');
      const taken = await store.takeOver(b!.id, T0 + 6);
      assert.deepEqual([taken.state, taken.takenOverAt], ['blocked', T0 + 4]);
      await store.close();
    });

    it('cancel ends a task taken over and clears the mark; retry starts it clean', async () => {
      const { store } = await factory.open();
      const [task] = await store.enqueue([newTask('a')], T0);
      const c = await store.claim(claimOpts());
      await store.takeOver(task!.id, T0 + 1);
      await store.handOver(c!.attempt.id, { stats: emptyStats(), now: T0 + 2 });
      const cancelled = await store.cancel(task!.id, T0 + 3);
      assert.deepEqual([cancelled.state, cancelled.takenOverAt], ['cancelled', null]);
      const again = await store.retry(task!.id, T0 + 4);
      assert.deepEqual([again.state, again.takenOverAt], ['queued', null]);
      await store.close();
    });
  });
}
