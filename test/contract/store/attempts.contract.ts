/**
 * Store contract, attempts: the lease fences finish, requeue and heartbeat; attempt rows and
 * their stats; how a requeue counts the attempt.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyStats } from '../../../src/agents/runner.ts';
import { claimOpts, newTask, T0, type StoreFactory } from './shared.ts';

/** Registers the `attempts and leases` cases for a backend's stores. */
export function attemptsContract(factory: StoreFactory): void {
  describe('attempts and leases', () => {
    it('records live figures as they come on the attempt and the task, keeping what is known', async () => {
      const { store } = await factory.open();
      await store.enqueue([newTask('a')], T0);
      const c = await store.claim(claimOpts());
      await store.recordStats(c!.attempt.id, { sessionId: 's1', model: 'm1' });
      await store.recordStats(c!.attempt.id, {});
      await store.recordStats(c!.attempt.id, { costUsd: 0.25, sessionId: null });
      const [attempt] = await store.listAttempts(c!.task.id);
      assert.deepEqual([attempt?.stats.sessionId, attempt?.stats.model, attempt?.stats.costUsd], ['s1', 'm1', 0.25]);
      const task = await store.getTask(c!.task.id);
      assert.deepEqual([task?.stats.sessionId, task?.stats.model, task?.stats.costUsd], ['s1', 'm1', 0.25]);
      await store.close();
    });

    it('fences: a lost lease cannot finish, requeue or heartbeat', async () => {
      const { store } = await factory.open();
      await store.enqueue([newTask('a')], T0);
      const c1 = await store.claim(claimOpts());
      const requeued = await store.requeue(c1!.attempt.id, { attemptOutcome: 'interrupted', reason: 'crash', runAfter: T0, now: T0 + 1 });
      assert.equal(requeued?.state, 'queued');
      assert.equal(requeued?.attempts, 0, 'an interrupted attempt does not count');
      assert.equal(requeued?.claims, 1);
      const c2 = await store.claim(claimOpts(T0 + 2, { workerId: 'w2' }));
      assert.equal(c2?.attempt.number, 2);
      assert.deepEqual((await store.agentUsage(T0 + 3)).map((u) => [u.agent, u.running, u.attempts]), [['command', 1, 0]]);
      assert.equal(await store.finish(c1!.attempt.id, { state: 'completed', attemptOutcome: 'completed', stats: emptyStats(), now: T0 + 3 }), null);
      assert.equal((await store.heartbeat(c1!.attempt.id, T0 + 3, 1000)).ok, false);
      assert.equal((await store.heartbeat(c2!.attempt.id, T0 + 3, 1000)).ok, true);
      const done = await store.finish(c2!.attempt.id, {
        state: 'completed',
        attemptOutcome: 'completed',
        result: 'fine',
        stats: { ...emptyStats(), sessionId: 's1', costUsd: 0.5, inputTokens: 10, outputTokens: 5, numTurns: 2, model: 'm' },
        now: T0 + 4,
      });
      assert.equal(done?.state, 'completed');
      assert.equal(done?.result, 'fine');
      assert.equal(done?.stats.costUsd, 0.5);
      assert.equal(done?.stats.model, 'm');
      assert.deepEqual(await store.agentUsage(T0), [
        { agent: 'command', running: 0, attempts: 2, costUsd: 0.5, inputTokens: 10, outputTokens: 5 },
      ]);
      assert.deepEqual(await store.agentUsage(T0 + 3), [], 'nothing running, nothing started since');
      const attempts = await store.listAttempts(done!.id);
      assert.deepEqual(attempts.map((a) => a.outcome), ['interrupted', 'completed']);
      assert.equal(attempts[1]?.stats.sessionId, 's1');
      await store.close();
    });

    it('a finish records the end on the attempt and the task, keeps the live figures it does not replace, and clears the lease and the answer', async () => {
      const { store } = await factory.open();
      const [task] = await store.enqueue([newTask('a')], T0);
      const asked = await store.claim(claimOpts());
      await store.block(asked!.attempt.id, { question: 'which?', stats: emptyStats(), now: T0 + 1 });
      await store.answer(task!.id, 'this one', T0 + 2);
      const c = await store.claim(claimOpts(T0 + 3));
      assert.equal(c?.task.answer, 'this one');
      await store.recordStats(c!.attempt.id, { sessionId: 's1', model: 'm1', inputTokens: 7 });
      const ended = await store.finish(c!.attempt.id, {
        state: 'failed',
        attemptOutcome: 'failed',
        reason: 'exit 3',
        exitCode: 3,
        logPath: '/logs/a.stdout.log',
        stats: { ...emptyStats(), costUsd: 0.1 },
        now: T0 + 253,
      });
      assert.deepEqual(
        [ended?.state, ended?.failedReason, ended?.finishedAt, ended?.durationMs, ended?.answer, ended?.result],
        ['failed', 'exit 3', T0 + 253, 250, null, null],
      );
      assert.deepEqual([ended?.stats.sessionId, ended?.stats.model, ended?.stats.costUsd, ended?.stats.inputTokens], ['s1', 'm1', 0.1, 7]);
      assert.deepEqual(await store.getTask(task!.id), ended, 'finish returns the task as stored');
      const attempt = (await store.listAttempts(task!.id))[1]!;
      assert.deepEqual(
        [attempt.outcome, attempt.reason, attempt.exitCode, attempt.logPath, attempt.finishedAt, attempt.durationMs],
        ['failed', 'exit 3', 3, '/logs/a.stdout.log', T0 + 253, 250],
      );
      assert.deepEqual([attempt.stats.sessionId, attempt.stats.model, attempt.stats.costUsd, attempt.stats.inputTokens], ['s1', 'm1', 0.1, 7]);
      assert.deepEqual(await store.listRunning(), []);
      assert.equal((await store.heartbeat(c!.attempt.id, T0 + 254, 1000)).ok, false);
      assert.equal(await store.finish(c!.attempt.id, { state: 'completed', attemptOutcome: 'completed', stats: emptyStats(), now: T0 + 255 }), null, 'an attempt ends once');
      await store.close();
    });

    it('setAttemptAgent names the agent and model on the attempt and the agent on the task, only while the attempt holds the lease', async () => {
      const { store } = await factory.open();
      const [task] = await store.enqueue([newTask('a')], T0);
      const c1 = await store.claim(claimOpts());
      await store.setAttemptAgent(c1!.attempt.id, { agent: 'claude', model: 'opus' });
      assert.equal((await store.getTask(task!.id))?.runAgent, 'claude');
      assert.deepEqual((await store.listAttempts(task!.id)).map((a) => [a.agent, a.model]), [['claude', 'opus']]);
      await store.requeue(c1!.attempt.id, { attemptOutcome: 'interrupted', reason: 'crash', runAfter: T0, now: T0 + 1 });
      const c2 = await store.claim(claimOpts(T0 + 2, { workerId: 'w2' }));
      await store.setAttemptAgent(c2!.attempt.id, { agent: 'command', model: null });
      await store.setAttemptAgent(c1!.attempt.id, { agent: 'claude', model: 'sonnet' });
      assert.equal((await store.getTask(task!.id))?.runAgent, 'command', 'the fenced attempt does not rename the running one');
      await store.close();
    });

    it('burns an attempt on a failed requeue and respects runAfter', async () => {
      const { store } = await factory.open();
      await store.enqueue([newTask('a', { retries: 1 })], T0);
      const c1 = await store.claim(claimOpts());
      const t = await store.requeue(c1!.attempt.id, { attemptOutcome: 'failed', reason: 'exit 1', runAfter: T0 + 1000, now: T0 });
      assert.equal(t?.attempts, 1);
      assert.equal(await store.claim(claimOpts(T0 + 999)), null);
      const c2 = await store.claim(claimOpts(T0 + 1000));
      assert.equal(c2?.task.attempts, 2);
      await store.close();
    });
  });
}
