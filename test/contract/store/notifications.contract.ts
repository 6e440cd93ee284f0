/**
 * Store contract, notifications: a row per event and target recorded once however often it
 * is recorded (also from a second handle), leased when due and only for the asking targets,
 * tries recorded as callbacks' are, health per target; the queue mark of `queue_empty`; the
 * one-time answer tokens (answer once, then refused; expired, another task's, a stale question).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyStats } from '../../../src/agents/runner.ts';
import type { NewNotification, Store } from '../../../src/store/store.ts';
import { claimOpts, newTask, T0, type StoreFactory } from './shared.ts';

const row = (key: string, target: string, taskId: number | null = null): NewNotification => ({ key, target, event: key.split(':')[0]!, taskId, payload: JSON.stringify({ key }) });

/** A task blocked on a question (its first claim), as the dispatcher leaves it. */
async function blockedTask(store: Store, name: string, now = T0) {
  const [t] = await store.enqueue([newTask(name)], now);
  const c = (await store.claim(claimOpts(now, { concurrency: 100 })))!;
  assert.equal(c.task.id, t!.id);
  const blocked = (await store.block(c.attempt.id, { question: 'Which one?', stats: emptyStats(), now: now + 1 }))!;
  assert.equal(blocked.state, 'blocked');
  return blocked;
}

/** Registers the `notifications` cases for a backend's stores. */
export function notificationsContract(factory: StoreFactory): void {
  describe('notifications', () => {
    it('records a (key, target) once, also when recorded again or from another handle', async () => {
      const { store, openSecond } = await factory.open();
      const [task] = await store.enqueue([newTask('t')], T0);
      const created = await store.recordNotifications([row('completed:1', 'a', task!.id), row('completed:1', 'b', task!.id)], T0);
      assert.deepEqual(
        created.map((n) => [n.key, n.target, n.event, n.taskId, n.state, n.attempts, n.nextTryAt, n.createdAt]),
        [
          ['completed:1', 'a', 'completed', task!.id, 'pending', 0, null, T0],
          ['completed:1', 'b', 'completed', task!.id, 'pending', 0, null, T0],
        ],
      );
      assert.equal(created[0]!.payload, JSON.stringify({ key: 'completed:1' }));
      assert.deepEqual(await store.recordNotifications([row('completed:1', 'a', task!.id)], T0 + 1), [], 'recorded again: nothing new');
      const second = await openSecond();
      const more = await second.recordNotifications([row('completed:1', 'b', task!.id), row('queue_empty:1:1', 'b')], T0 + 2);
      assert.deepEqual(
        more.map((n) => [n.key, n.target, n.taskId]),
        [['queue_empty:1:1', 'b', null]],
        'only the new one, from another handle too',
      );
      assert.equal((await store.claimDueNotifications(['a', 'b'], T0 + 3, 1000, 10)).length, 3);
      await second.close();
      await store.close();
    });

    it('leases due rows of the given targets only, oldest first; records tries like callbacks', async () => {
      const { store, openSecond } = await factory.open();
      const [n1, n2, n3] = await store.recordNotifications([row('x:1', 'a'), row('x:2', 'a'), row('x:1', 'other')], T0);
      assert.deepEqual(await store.claimDueNotifications([], T0, 1000, 10), []);
      const due = await store.claimDueNotifications(['a'], T0, 1000, 10);
      assert.deepEqual(
        due.map((n) => [n.id, n.nextTryAt]),
        [
          [n1!.id, T0 + 1000],
          [n2!.id, T0 + 1000],
        ],
      );
      const second = await openSecond();
      assert.deepEqual(await second.claimDueNotifications(['a', 'other'], T0 + 1, 1000, 10).then((d) => d.map((n) => n.id)), [n3!.id], 'leased rows are not handed out again');
      let n = await store.recordNotificationTry(n1!.id, { outcome: 'retry', error: 'HTTP 500', nextTryAt: T0 + 500, now: T0 + 10 });
      assert.deepEqual([n?.state, n?.attempts, n?.lastError, n?.lastTryAt, n?.nextTryAt], ['pending', 1, 'HTTP 500', T0 + 10, T0 + 500]);
      assert.deepEqual(await store.claimDueNotifications(['a'], T0 + 499, 1000, 10), []);
      assert.deepEqual((await store.claimDueNotifications(['a'], T0 + 500, 1000, 10)).map((x) => x.id), [n1!.id]);
      n = await store.recordNotificationTry(n1!.id, { outcome: 'released', nextTryAt: T0 + 600, now: T0 + 550 });
      assert.deepEqual([n?.state, n?.attempts, n?.lastError, n?.lastTryAt], ['pending', 1, 'HTTP 500', T0 + 10], 'a released try is not counted');
      assert.deepEqual((await store.claimDueNotifications(['a'], T0 + 600, 1000, 1)).map((x) => x.id), [n1!.id], 'limit');
      n = await store.recordNotificationTry(n1!.id, { outcome: 'delivered', now: T0 + 700 });
      assert.deepEqual([n?.state, n?.attempts, n?.lastError, n?.deliveredAt, n?.nextTryAt], ['delivered', 2, null, T0 + 700, null]);
      n = await store.recordNotificationTry(n2!.id, { outcome: 'failed', error: 'HTTP 404', now: T0 + 800 });
      assert.deepEqual([n?.state, n?.attempts, n?.lastError, n?.nextTryAt], ['failed', 1, 'HTTP 404', null]);
      assert.deepEqual(await store.claimDueNotifications(['a'], T0 + 100_000, 1000, 10), [], 'delivered and failed rows are done');
      assert.equal(await store.recordNotificationTry(999_999, { outcome: 'delivered', now: T0 }), null);
      await second.close();
      await store.close();
    });

    it('sums each target: delivered, pending, retrying, failed, the newest error', async () => {
      const { store } = await factory.open();
      assert.deepEqual(await store.notificationHealth(), []);
      const [a1, a2, a3, b1] = await store.recordNotifications([row('x:1', 'a'), row('x:2', 'a'), row('x:3', 'a'), row('x:1', 'b')], T0);
      await store.recordNotificationTry(a1!.id, { outcome: 'delivered', now: T0 + 1 });
      await store.recordNotificationTry(a2!.id, { outcome: 'retry', error: 'HTTP 500', nextTryAt: T0 + 100, now: T0 + 2 });
      await store.recordNotificationTry(a3!.id, { outcome: 'failed', error: 'HTTP 400 (gave up)', now: T0 + 3 });
      await store.recordNotificationTry(a2!.id, { outcome: 'retry', error: 'connection refused', nextTryAt: T0 + 200, now: T0 + 4 });
      assert.deepEqual(await store.notificationHealth(), [
        { target: 'a', delivered: 1, pending: 1, retrying: 1, failed: 1, lastError: 'connection refused', lastErrorAt: T0 + 4, lastDeliveredAt: T0 + 1 },
        { target: 'b', delivered: 0, pending: 1, retrying: 0, failed: 0, lastError: null, lastErrorAt: null, lastDeliveredAt: null },
      ]);
      void b1;
      await store.close();
    });

    it('queueMark: active tasks, and a mark that moves with every new task or attempt', async () => {
      const { store } = await factory.open();
      assert.deepEqual(await store.queueMark(), { active: 0, mark: '0:0' });
      const [t] = await store.enqueue([newTask('a')], T0);
      const queued = await store.queueMark();
      assert.equal(queued.active, 1);
      const c = (await store.claim(claimOpts()))!;
      const running = await store.queueMark();
      assert.equal(running.active, 1);
      assert.notEqual(running.mark, queued.mark, 'an attempt started');
      await store.finish(c.attempt.id, { state: 'completed', attemptOutcome: 'completed', stats: emptyStats(), now: T0 + 5 });
      const empty = await store.queueMark();
      assert.deepEqual(empty, { active: 0, mark: running.mark }, 'the end of a task does not move the mark');
      assert.deepEqual(await store.queueMark(), empty, 'the same empty spell, the same mark');
      await store.enqueue([newTask('b')], T0 + 6);
      assert.notEqual((await store.queueMark()).mark, empty.mark);
      void t;
      await store.close();
    });

    it('answers a blocked task once with its token; a second use, an expired token, another task, a stale question are refused', async () => {
      const { store, openSecond } = await factory.open();
      const task = await blockedTask(store, 'asks');
      const other = await blockedTask(store, 'asks-too', T0 + 10);
      const day = 86_400_000;
      await store.addAnswerToken({ tokenSha256: 'h1', taskId: task.id, claims: task.claims, expiresAt: T0 + day }, T0);
      await store.addAnswerToken({ tokenSha256: 'h2', taskId: task.id, claims: task.claims, expiresAt: T0 + day }, T0);
      await store.addAnswerToken({ tokenSha256: 'old', taskId: other.id, claims: other.claims, expiresAt: T0 + 100 }, T0);
      assert.deepEqual(await store.answerWithToken(task.id, 'nope', 'x', T0 + 1), { outcome: 'unknown' });
      assert.deepEqual(await store.answerWithToken(other.id, 'h1', 'x', T0 + 1), { outcome: 'unknown' }, "another task's token");
      assert.deepEqual(await store.answerWithToken(other.id, 'old', 'x', T0 + 100), { outcome: 'expired' });
      assert.equal((await store.getTask(other.id))?.state, 'blocked');
      const second = await openSecond();
      const [r1, r2] = await Promise.all([store.answerWithToken(task.id, 'h1', 'Blue', T0 + 50), second.answerWithToken(task.id, 'h1', 'Red', T0 + 50)]);
      const answered = [r1, r2].filter((r) => r.outcome === 'answered');
      assert.equal(answered.length, 1, 'one of two uses at once answers');
      assert.deepEqual([r1, r2].find((r) => r.outcome !== 'answered'), { outcome: 'used' });
      const t = await store.getTask(task.id);
      assert.equal(t?.state, 'queued');
      assert.ok(t?.answer === 'Blue' || t?.answer === 'Red');
      assert.deepEqual(await store.answerWithToken(task.id, 'h2', 'Green', T0 + 60), { outcome: 'used' }, 'every link of the answered question is spent');
      // Asked again (a new claim): a token of the earlier question does not answer the new one.
      const c = (await store.claim(claimOpts(T0 + 70, { concurrency: 100 })))!;
      assert.equal(c.task.id, task.id);
      await store.block(c.attempt.id, { question: 'And now?', stats: emptyStats(), now: T0 + 80 });
      await store.addAnswerToken({ tokenSha256: 'stale', taskId: task.id, claims: task.claims, expiresAt: T0 + day }, T0 + 80);
      assert.deepEqual(await store.answerWithToken(task.id, 'stale', 'x', T0 + 90), { outcome: 'closed' });
      await store.answer(other.id, 'by hand', T0 + 95);
      await store.addAnswerToken({ tokenSha256: 'late', taskId: other.id, claims: other.claims, expiresAt: T0 + day }, T0 + 95);
      assert.deepEqual(await store.answerWithToken(other.id, 'late', 'x', T0 + 96), { outcome: 'closed' }, 'answered another way');
      await second.close();
      await store.close();
    });

    it('an answer link does not answer a task taken over by hand (it stays blocked until released)', async () => {
      const { store } = await factory.open();
      const held = await blockedTask(store, 'taken');
      await store.addAnswerToken({ tokenSha256: 'held', taskId: held.id, claims: held.claims, expiresAt: T0 + 86_400_000 }, T0 + 2);
      await store.takeOver(held.id, T0 + 3);
      assert.deepEqual(await store.answerWithToken(held.id, 'held', 'x', T0 + 4), { outcome: 'closed' });
      const t = await store.getTask(held.id);
      assert.equal(t?.state, 'blocked');
      assert.equal(t?.answer, null);
      await store.close();
    });
  });
}
