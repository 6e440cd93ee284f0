/**
 * Store contract, attempts: the lease fences finish, requeue and heartbeat; attempt rows,
 * their stats, host and output tails; how a requeue counts the attempt; the workspace record
 * (host, branch, push) an end writes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyStats } from '../../../src/agents/runner.ts';
import type { Store } from '../../../src/store/store.ts';
import { OUTPUT_TAIL_BYTES } from '../../../src/core/types.ts';
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
      const c = await store.claim(claimOpts(T0 + 3, { host: 'box-c' }));
      assert.equal(c?.task.answer, 'this one');
      assert.deepEqual(await store.getTask(task!.id), c!.task, 'the claim returns the task as stored');
      assert.deepEqual((await store.listAttempts(task!.id))[1], c!.attempt, 'and the attempt as listed');
      assert.deepEqual([c!.attempt.host, c!.task.lastActivityAt, c!.task.startedAt], ['box-c', T0 + 3, T0 + 3]);
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

    it('records with the end where the attempt ran, its branch, commits and push; a fenced-out end records none; an end without one keeps the last', async () => {
      const { store, openSecond } = await factory.open();
      const [t] = await store.enqueue([newTask('pushed')], T0);
      const record = async (s: Store = store) => {
        const x = await s.getTask(t!.id);
        return [x?.branch, x?.commits, x?.ranOn, x?.pushedTo, x?.pushError];
      };
      assert.deepEqual(await record(), [null, [], null, null, null]);
      const c1 = await store.claim(claimOpts());
      await store.requeue(c1!.attempt.id, { attemptOutcome: 'interrupted', reason: 'crash', runAfter: T0, now: T0 + 1 });
      const c2 = await store.claim(claimOpts(T0 + 2, { workerId: 'w2' }));
      const stalled = { branch: 'agentq/pushed', commits: [], ranOn: 'stalled-box', pushedTo: 'origin/agentq/pushed', pushError: null };
      const end = { state: 'failed', attemptOutcome: 'failed', reason: 'exit 1', stats: emptyStats() } as const;
      assert.equal(await store.finish(c1!.attempt.id, { ...end, workspace: stalled, now: T0 + 3 }), null);
      assert.deepEqual(await record(), [null, [], null, null, null], 'the fenced-out end recorded nothing');

      const failedPush = 'git push origin agentq/pushed: [rejected] (non-fast-forward)';
      const done = await store.finish(c2!.attempt.id, {
        ...end,
        workspace: { branch: 'agentq/pushed', commits: [{ hash: 'abc', subject: 's' }], ranOn: 'build-box', pushedTo: null, pushError: failedPush },
        now: T0 + 4,
      });
      assert.deepEqual([done?.branch, done?.ranOn, done?.pushError], ['agentq/pushed', 'build-box', failedPush], 'the finished task carries it');
      const other = await openSecond();
      assert.deepEqual(await record(other), ['agentq/pushed', [{ hash: 'abc', subject: 's' }], 'build-box', null, failedPush], 'read back through another handle');
      await other.close();

      await store.retry(t!.id, T0 + 5);
      const c3 = await store.claim(claimOpts(T0 + 5));
      await store.finish(c3!.attempt.id, { ...end, now: T0 + 6 });
      assert.deepEqual((await record())[2], 'build-box', 'an end without a workspace record keeps the last one');

      await store.retry(t!.id, T0 + 7);
      const c4 = await store.claim(claimOpts(T0 + 7));
      await store.finish(c4!.attempt.id, {
        state: 'completed',
        attemptOutcome: 'completed',
        stats: emptyStats(),
        workspace: { branch: 'agentq/pushed', commits: [], ranOn: 'laptop', pushedTo: 'origin/agentq/pushed', pushError: null },
        now: T0 + 8,
      });
      assert.deepEqual(await record(), ['agentq/pushed', [], 'laptop', 'origin/agentq/pushed', null], 'every field replaced: the push error is gone');
      assert.equal((await store.listTasks({})).find((x) => x.id === t!.id)?.pushedTo, 'origin/agentq/pushed', 'lists carry the fields too');
      await store.close();
    });

    it('keeps the host of each attempt and the output tails it ended with, on whichever way it ended', async () => {
      const { store, openSecond } = await factory.open();
      await store.enqueue([newTask('done'), newTask('again'), newTask('asks'), newTask('bare')], T0);
      const done = await store.claim(claimOpts(T0, { host: 'box-a' }));
      assert.equal(done?.attempt.host, 'box-a');
      assert.equal(await store.attemptOutput(done!.attempt.id), null, 'nothing while it runs');
      // A full 64 KiB tail of multi-byte text, and a size past it: kept exactly.
      const long = 'ü✓🙂'.repeat(Math.floor(OUTPUT_TAIL_BYTES / 9));
      const output = { stdout: { text: long, bytes: 1_500_000 }, stderr: { text: 'warn: ünïcode\n', bytes: 15 } };
      await store.finish(done!.attempt.id, { state: 'completed', attemptOutcome: 'completed', result: 'ok', stats: emptyStats(), output, now: T0 + 1 });
      const again = await store.claim(claimOpts(T0 + 2, { host: 'box-b' }));
      const requeued = { stdout: { text: '', bytes: 0 }, stderr: { text: 'exit 1\n', bytes: 7 } };
      await store.requeue(again!.attempt.id, { attemptOutcome: 'failed', reason: 'exit 1', runAfter: T0 + 10_000, output: requeued, now: T0 + 3 });
      const asks = await store.claim(claimOpts(T0 + 4, { host: 'box-a' }));
      const asked = { stdout: { text: 'which one?', bytes: 10 }, stderr: { text: '', bytes: 0 } };
      await store.block(asks!.attempt.id, { question: 'which one?', stats: emptyStats(), output: asked, now: T0 + 5 });
      const bare = await store.claim(claimOpts(T0 + 6));
      assert.equal(bare?.attempt.host, null, 'no host given');
      await store.requeue(bare!.attempt.id, { attemptOutcome: 'interrupted', reason: 'gone', runAfter: T0 + 10_000, now: T0 + 7 });

      const second = await openSecond(); // another machine's view
      assert.deepEqual(await second.attemptOutput(done!.attempt.id), output);
      assert.deepEqual(await second.attemptOutput(again!.attempt.id), requeued);
      assert.deepEqual(await second.attemptOutput(asks!.attempt.id), asked);
      assert.equal(await second.attemptOutput(bare!.attempt.id), null, 'ended without output: none recorded');
      assert.equal(await second.attemptOutput('no-such-attempt'), null);
      const listed = await second.listAttempts(done!.task.id);
      assert.deepEqual(listed.map((a) => [a.number, a.host, a.outcome]), [[1, 'box-a', 'completed']]);
      assert.ok(!JSON.stringify(listed).includes('ü✓🙂'), 'attempt lists leave the tails out');
      assert.deepEqual((await second.listAttempts(again!.task.id)).map((a) => a.host), ['box-b']);
      await second.close();
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

    it('burns an attempt on a setup_failed requeue, recorded as such; a setup_failed end fails the task', async () => {
      const { store } = await factory.open();
      const [task] = await store.enqueue([newTask('a', { retries: 1, workspaceSetup: ['npm ci', 'npm run build'] })], T0);
      assert.deepEqual(task?.workspaceSetup, ['npm ci', 'npm run build'], 'workspace_setup is stored with the task');
      const c1 = await store.claim(claimOpts());
      const t = await store.requeue(c1!.attempt.id, { attemptOutcome: 'setup_failed', reason: 'workspace_setup: exit 1', exitCode: 1, runAfter: T0, now: T0 + 1 });
      assert.equal(t?.attempts, 1);
      const c2 = await store.claim(claimOpts(T0 + 2));
      const ended = await store.finish(c2!.attempt.id, { state: 'failed', attemptOutcome: 'setup_failed', reason: 'workspace_setup: exit 2', exitCode: 2, stats: emptyStats(), now: T0 + 3 });
      assert.equal(ended?.state, 'failed');
      assert.equal(ended?.failedReason, 'workspace_setup: exit 2');
      const attempts = await store.listAttempts(task!.id);
      assert.deepEqual(attempts.map((a) => [a.outcome, a.exitCode, a.reason]), [
        ['setup_failed', 1, 'workspace_setup: exit 1'],
        ['setup_failed', 2, 'workspace_setup: exit 2'],
      ]);
      const [plain] = await store.enqueue([newTask('b')], T0);
      assert.equal(plain?.workspaceSetup, null, 'none set: config decides');
      await store.close();
    });
  });
}
