/**
 * Store contract, verification and activity (issue #12): a task's verify and stall fields,
 * the verify commands an attempt ran (fenced by its lease), the last activity the lease
 * heartbeat records, and the attempt outcomes `verify_failed` and `stalled`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyStats } from '../../../src/agents/runner.ts';
import type { NewVerification } from '../../../src/store/store.ts';
import { claimOpts, newTask, T0, type StoreFactory } from './shared.ts';

/** A verification run of command `number` with exit code `exitCode`. */
const run = (number: number, exitCode: number | null, over: Partial<NewVerification> = {}): NewVerification => ({
  number,
  command: `check ${number}`,
  exitCode,
  timedOut: false,
  durationMs: 120 + number,
  outputPath: `/logs/1-t/1.verify-${number}.log`,
  outputTail: `output of ${number}\n`,
  startedAt: T0 + number,
  ...over,
});

/** Registers the `verification and activity` cases for a backend's stores. */
export function verificationsContract(factory: StoreFactory): void {
  describe('verification and activity', () => {
    it('keeps the verify and stall fields of a task: a list, none ([]), not set (null), a stall timeout of 0', async () => {
      const { store, openSecond } = await factory.open();
      await store.enqueue(
        [
          newTask('listed', { verify: ['npm test', 'test -f out.txt'], verifyTimeoutMs: 90_000, verifyRetries: 3, stallTimeoutMs: 0 }),
          newTask('none', { verify: [] }),
          newTask('unset'),
        ],
        T0,
      );
      const other = await openSecond();
      const fields = async (name: string) => {
        const t = await other.getTask(name);
        return [t?.verify, t?.verifyTimeoutMs, t?.verifyRetries, t?.stallTimeoutMs];
      };
      assert.deepEqual(await fields('listed'), [['npm test', 'test -f out.txt'], 90_000, 3, 0]);
      assert.deepEqual(await fields('none'), [[], null, null, null]);
      assert.deepEqual(await fields('unset'), [null, null, null, null]);
      await other.close();
      await store.close();
    });

    it('sets the last activity at the claim; the heartbeat records a later one, keeps it without one, and a lost lease records nothing', async () => {
      const { store, openSecond } = await factory.open();
      const [t] = await store.enqueue([newTask('busy')], T0);
      assert.equal(t?.lastActivityAt, null, 'never claimed');
      const c = await store.claim(claimOpts(T0 + 10));
      assert.equal(c?.task.lastActivityAt, T0 + 10, 'the claim is the first activity');
      assert.equal((await store.heartbeat(c!.attempt.id, T0 + 20, 30_000, T0 + 15)).ok, true);
      const other = await openSecond();
      assert.equal((await other.getTask(t!.id))?.lastActivityAt, T0 + 15);
      await store.heartbeat(c!.attempt.id, T0 + 30, 30_000);
      await store.heartbeat(c!.attempt.id, T0 + 31, 30_000, null);
      assert.equal((await other.getTask(t!.id))?.lastActivityAt, T0 + 15, 'a heartbeat without one keeps it');
      assert.deepEqual((await other.listRunning()).map((r) => r.task.lastActivityAt), [T0 + 15], 'the running list carries it');
      await store.requeue(c!.attempt.id, { attemptOutcome: 'interrupted', reason: 'stop', runAfter: T0, now: T0 + 40 });
      assert.equal((await store.heartbeat(c!.attempt.id, T0 + 50, 30_000, T0 + 50)).ok, false);
      assert.equal((await other.getTask(t!.id))?.lastActivityAt, T0 + 15, 'the fenced-out heartbeat wrote nothing');
      await other.close();
      await store.close();
    });

    it('records the verifications of the attempt holding the lease, lists them by attempt then number, and refuses a fenced-out one', async () => {
      const { store, openSecond } = await factory.open();
      const [t] = await store.enqueue([newTask('checked', { retries: 3 })], T0);
      const c1 = await store.claim(claimOpts());
      assert.equal(await store.recordVerification(c1!.attempt.id, run(2, 0)), true);
      assert.equal(await store.recordVerification(c1!.attempt.id, run(1, 0)), true);
      assert.equal(await store.recordVerification(c1!.attempt.id, run(3, 1, { outputTail: 'ünïcode ✓ FAIL\n'.repeat(200) })), true);
      const failed = await store.requeue(c1!.attempt.id, { attemptOutcome: 'verify_failed', reason: 'verify failed: check 3 exited with code 1', runAfter: T0, now: T0 + 5 });
      assert.equal(failed?.attempts, 1, 'a failed verification uses up the attempt');
      assert.equal(await store.recordVerification(c1!.attempt.id, run(4, 0)), false, 'the lease is gone');

      const c2 = await store.claim(claimOpts(T0 + 6, { workerId: 'w2' }));
      await store.recordVerification(c2!.attempt.id, run(1, null, { timedOut: true, outputPath: null, outputTail: '' }));
      await store.recordVerification(c2!.attempt.id, run(1, 0, { durationMs: 7 }));
      await store.finish(c2!.attempt.id, { state: 'completed', attemptOutcome: 'completed', result: 'ok', stats: emptyStats(), now: T0 + 7 });

      const other = await openSecond();
      const listed = await other.listVerifications(t!.id);
      assert.deepEqual(
        listed.map((v) => [v.attemptNumber, v.number, v.command, v.exitCode, v.timedOut, v.durationMs]),
        [
          [1, 1, 'check 1', 0, false, 121],
          [1, 2, 'check 2', 0, false, 122],
          [1, 3, 'check 3', 1, false, 123],
          [2, 1, 'check 1', 0, false, 7],
        ],
        'a number run again for the same attempt is replaced',
      );
      const third = listed[2]!;
      assert.deepEqual(
        [third.attemptId, third.taskId, third.outputPath, third.outputTail, third.startedAt],
        [c1!.attempt.id, t!.id, '/logs/1-t/1.verify-3.log', 'ünïcode ✓ FAIL\n'.repeat(200), T0 + 3],
      );
      assert.deepEqual(await other.listVerifications(t!.id + 1), [], 'another task has none');
      assert.deepEqual((await other.listAttempts(t!.id)).map((a) => a.outcome), ['verify_failed', 'completed']);
      await other.close();
      await store.close();
    });

    it('a stalled attempt uses up one of the retries; a stall with none left is the caller\'s to end', async () => {
      const { store } = await factory.open();
      const [t] = await store.enqueue([newTask('quiet', { retries: 1 })], T0);
      const c1 = await store.claim(claimOpts());
      const requeued = await store.requeue(c1!.attempt.id, { attemptOutcome: 'stalled', reason: 'stalled: no activity for 5s', runAfter: T0 + 100, now: T0 + 1 });
      assert.deepEqual([requeued?.state, requeued?.attempts, requeued?.runAfter], ['queued', 1, T0 + 100]);
      const c2 = await store.claim(claimOpts(T0 + 100));
      const ended = await store.finish(c2!.attempt.id, { state: 'failed', attemptOutcome: 'stalled', reason: 'stalled again', stats: emptyStats(), now: T0 + 101 });
      assert.deepEqual([ended?.state, ended?.failedReason], ['failed', 'stalled again']);
      assert.deepEqual((await store.listAttempts(t!.id)).map((a) => [a.outcome, a.reason]), [
        ['stalled', 'stalled: no activity for 5s'],
        ['stalled', 'stalled again'],
      ]);
      await store.close();
    });
  });
}
