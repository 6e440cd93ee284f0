/**
 * The Store contract: one suite, run against every backend (sqlite now, postgres next).
 * `open()` must return a fresh, empty store; `openSecond()` a second handle on the same
 * data (another process's view), used for cross-handle claims.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyStats } from '../../src/agents/runner.ts';
import type { RunStats, TaskSpec } from '../../src/core/types.ts';
import type { Store } from '../../src/store/store.ts';
import { newTask } from '../fixtures/specs.ts';

export interface StoreFactory {
  open(): Promise<{ store: Store; openSecond: () => Promise<Store> }>;
}

const T0 = 1_700_000_000_000;
const claimOpts = (now = T0, over = {}) => ({ workerId: 'w1', now, leaseMs: 30_000, concurrency: 10, agents: ['command', 'claude'], ...over });

export function storeContract(name: string, factory: StoreFactory): void {
  describe(`Store contract: ${name}`, () => {
    it('enqueues and reads tasks back, by id and by name', async () => {
      const { store } = await factory.open();
      const [a] = await store.enqueue([newTask('a', { tags: ['x'], extra: { owner: 'me' }, command: ['echo', 'hi'] })], T0);
      assert.ok(a);
      assert.equal(a.state, 'queued');
      assert.deepEqual(a.tags, ['x']);
      assert.deepEqual(a.extra, { owner: 'me' });
      assert.deepEqual(a.command, ['echo', 'hi']);
      assert.equal((await store.getTask(a.id))?.name, 'a');
      assert.equal((await store.getTask('a'))?.id, a.id);
      assert.equal(await store.getTask('nope'), null);
      await store.close();
    });

    it('claims by priority, then arrival, and counts the attempt at claim', async () => {
      const { store } = await factory.open();
      await store.enqueue(
        [newTask('low', { priority: 'low' }), newTask('d1'), newTask('crit', { priority: 'critical' }), newTask('d2'), newTask('high', { priority: 'high' })],
        T0,
      );
      const order: string[] = [];
      for (;;) {
        const c = await store.claim(claimOpts());
        if (!c) break;
        assert.equal(c.task.attempts, 1);
        assert.equal(c.attempt.number, 1);
        assert.equal(c.task.state, 'running');
        order.push(c.task.name);
      }
      assert.deepEqual(order, ['crit', 'high', 'd1', 'd2', 'low']);
      await store.close();
    });

    it('holds the global concurrency limit', async () => {
      const { store } = await factory.open();
      await store.enqueue([newTask('a'), newTask('b'), newTask('c')], T0);
      assert.ok(await store.claim(claimOpts(T0, { concurrency: 2 })));
      assert.ok(await store.claim(claimOpts(T0, { concurrency: 2 })));
      assert.equal(await store.claim(claimOpts(T0, { concurrency: 2 })), null);
      await store.close();
    });

    it('claims only for the given agents and skips paused agents until the pause ends', async () => {
      const { store } = await factory.open();
      await store.enqueue([newTask('c1', { agent: 'claude' })], T0);
      assert.equal(await store.claim(claimOpts(T0, { agents: ['command'] })), null);
      await store.pauseAgent({ agent: 'claude', until: T0 + 5000, reason: 'rate limited' });
      assert.deepEqual((await store.listPauses(T0)).map((p) => p.agent), ['claude']);
      assert.equal(await store.claim(claimOpts(T0 + 1000)), null);
      assert.equal((await store.claim(claimOpts(T0 + 5000)))?.task.name, 'c1');
      assert.deepEqual(await store.listPauses(T0 + 5000), []);
      assert.equal(await store.agentStrikes('claude'), 0);
      await store.pauseAgent({ agent: 'claude', until: T0 + 9000, reason: 'again' }, 2);
      assert.equal(await store.agentStrikes('claude'), 2);
      await store.clearAgentStrikes('claude');
      assert.equal(await store.agentStrikes('claude'), 0);
      assert.equal(await store.agentStrikes('never-paused'), 0);
      await store.close();
    });

    it('runs a dependent only after its dependency completed', async () => {
      const { store } = await factory.open();
      const [a] = await store.enqueue([newTask('a', { priority: 'low' })], T0);
      await store.enqueue([newTask('b', { priority: 'critical', dependsOn: ['a'] }, [a!.id])], T0);
      const first = await store.claim(claimOpts());
      assert.equal(first?.task.name, 'a');
      assert.equal(await store.claim(claimOpts()), null, 'b must wait for a');
      await store.finish(first!.attempt.id, { state: 'completed', attemptOutcome: 'completed', result: 'ok', stats: emptyStats(), now: T0 + 10 });
      const second = await store.claim(claimOpts(T0 + 20));
      assert.equal(second?.task.name, 'b');
      assert.deepEqual(second?.task.dependsOnIds, [a!.id]);
      await store.close();
    });

    it('fails dependents (transitively) when a dependency does not complete', async () => {
      const { store } = await factory.open();
      const [a] = await store.enqueue([newTask('a')], T0);
      const [b] = await store.enqueue([newTask('b', { dependsOn: ['a'] }, [a!.id])], T0);
      await store.enqueue([newTask('c', { dependsOn: ['b'] }, [b!.id])], T0);
      const c = await store.claim(claimOpts());
      await store.finish(c!.attempt.id, { state: 'failed', attemptOutcome: 'failed', reason: 'boom', stats: emptyStats(), now: T0 + 1 });
      const failed = await store.failBlockedDependents(T0 + 2);
      assert.deepEqual(failed.map((t) => t.name).sort(), ['b', 'c']);
      assert.match((await store.getTask('b'))!.failedReason!, /dependency "a" \(task \d+\) ended failed/);
      assert.match((await store.getTask('c'))!.failedReason!, /dependency "b"/);
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

    it('cancels queued tasks at once and flags running ones; retry requeues a failed task', async () => {
      const { store } = await factory.open();
      const [a, b] = await store.enqueue([newTask('a'), newTask('b')], T0);
      const c = await store.claim(claimOpts());
      assert.equal(c?.task.id, a!.id);
      assert.equal((await store.cancel(b!.id, T0)).state, 'cancelled');
      const running = await store.cancel(a!.id, T0);
      assert.equal(running.state, 'running');
      assert.equal(running.cancelRequested, true);
      assert.equal((await store.heartbeat(c!.attempt.id, T0, 1000)).cancelRequested, true);
      const again = await store.retry(b!.id, T0 + 5);
      assert.equal(again.state, 'queued');
      await store.close();
    });

    it('records intake keys with the tasks and tracks file removal', async () => {
      const { store } = await factory.open();
      const [a] = await store.enqueue([{ ...newTask('a'), intakeKey: 'a.md:abc' }], T0);
      assert.deepEqual(await store.getIntake('a.md:abc'), { taskId: a!.id, fileRemoved: false });
      await store.markIntakeRemoved('a.md:abc');
      assert.deepEqual(await store.getIntake('a.md:abc'), { taskId: a!.id, fileRemoved: true });
      // Another dispatcher that read the same file before its removal creates nothing, removed or not.
      assert.deepEqual(await store.enqueue([{ ...newTask('a'), intakeKey: 'a.md:abc' }], T0), []);
      assert.deepEqual(await store.getIntake('a.md:abc'), { taskId: a!.id, fileRemoved: true });
      const [b] = await store.enqueue([{ ...newTask('b'), intakeKey: 'b.md:def' }], T0);
      assert.deepEqual(await store.enqueue([{ ...newTask('b'), intakeKey: 'b.md:def' }], T0), []);
      assert.deepEqual(await store.getIntake('b.md:def'), { taskId: b!.id, fileRemoved: false });
      await store.close();
    });

    it('creates invalid tasks terminal and lists unreported results until a path is set', async () => {
      const { store } = await factory.open();
      const [bad] = await store.enqueue([{ ...newTask('bad'), invalidReason: 'priority: "urgent" is not …' }], T0);
      assert.equal(bad?.state, 'invalid');
      assert.deepEqual((await store.listUnreported()).map((t) => t.id), [bad!.id]);
      await store.setResultPath(bad!.id, '/x/failed/bad.md');
      assert.deepEqual(await store.listUnreported(), []);
      assert.equal((await store.countByState()).invalid, 1);
      await store.close();
    });

    it('lists a duplicate task unreported like any terminal one, and fails the tasks that depend on it', async () => {
      const { store } = await factory.open();
      const [first] = await store.enqueue([newTask('first', { dedupKey: 'k' })], T0);
      const [dup] = await store.enqueue([{ ...newTask('dup', { dedupKey: 'k' }), invalidReason: 'dup of first', terminalState: 'duplicate' }], T0);
      const [after] = await store.enqueue([newTask('after', { dependsOn: ['dup'] }, [dup!.id])], T0);
      assert.deepEqual((await store.listUnreported()).map((t) => [t.name, t.state]), [['dup', 'duplicate']]);
      assert.deepEqual((await store.failBlockedDependents(T0 + 1)).map((t) => t.id), [after!.id]);
      assert.equal((await store.getTask(after!.id))?.failedReason, `dependency "dup" (task ${dup!.id}) ended duplicate`);
      assert.deepEqual((await store.listUnreported()).map((t) => t.name), ['dup', 'after']);
      await store.setResultPath(dup!.id, '/x/failed/dup.md');
      await store.setResultPath(after!.id, '/x/failed/after.md');
      assert.deepEqual(await store.listUnreported(), []);
      assert.equal((await store.getTask(first!.id))?.state, 'queued', 'the holder of the key is untouched');
      await store.close();
    });

    it('holds per-group and per-agent concurrency limits', async () => {
      const { store } = await factory.open();
      await store.enqueue(
        [
          newTask('g1', { concurrencyGroup: 'api' }),
          newTask('g2', { concurrencyGroup: 'api' }),
          newTask('c1', { agent: 'claude' }),
          newTask('c2', { agent: 'claude' }),
          newTask('free'),
        ],
        T0,
      );
      const opts = claimOpts(T0, { groupConcurrency: 1, agentConcurrency: { claude: 1 } });
      const names: string[] = [];
      for (let c = await store.claim(opts); c; c = await store.claim(opts)) names.push(c.task.name);
      assert.deepEqual(names, ['g1', 'c1', 'free']);
      const more = await store.claim(claimOpts(T0, { groupConcurrency: 2, agentConcurrency: { claude: 2 } }));
      assert.equal(more?.task.name, 'g2');
      await store.close();
    });

    it('delays a task with runAt, finds active tasks by dedup key, and keeps duplicate tasks terminal', async () => {
      const { store } = await factory.open();
      const [later, keyed] = await store.enqueue([newTask('later', { runAt: T0 + 60_000 }), newTask('keyed', { dedupKey: 'k' })], T0);
      assert.equal(later?.runAfter, T0 + 60_000);
      assert.equal((await store.findActiveByDedupKey('k'))?.id, keyed!.id);
      assert.equal(await store.findActiveByDedupKey('other'), null);
      const [dup] = await store.enqueue([{ ...newTask('dup', { dedupKey: 'k' }), invalidReason: 'dup of keyed', terminalState: 'duplicate' }], T0);
      assert.equal(dup?.state, 'duplicate');
      assert.equal((await store.claim(claimOpts()))?.task.name, 'keyed');
      assert.equal(await store.claim(claimOpts()), null, 'later waits for its run_at');
      assert.equal((await store.claim(claimOpts(T0 + 60_000)))?.task.name, 'later');
      await store.setWorkspaceResult(keyed!.id, 'agentq/keyed', [{ hash: 'abc', subject: 's' }]);
      const t = await store.getTask(keyed!.id);
      assert.equal(t?.branch, 'agentq/keyed');
      assert.deepEqual(t?.commits, [{ hash: 'abc', subject: 's' }]);
      await store.close();
    });

    it('a parent with open subtasks waits, then completes (or fails) with them', async () => {
      const { store } = await factory.open();
      const [parent] = await store.enqueue([newTask('parent')], T0);
      const [s1, s2] = await store.enqueue(
        [{ ...newTask('s1', { parent: 'parent' }), parentId: parent!.id }, { ...newTask('s2', { parent: 'parent' }), parentId: parent!.id }],
        T0,
      );
      assert.equal(s1?.parentId, parent!.id);
      const done = (c: { attempt: { id: string } } | null, state: 'completed' | 'failed' = 'completed') =>
        store.finish(c!.attempt.id, { state, attemptOutcome: state, stats: emptyStats(), now: T0 + 5 });
      const p = await store.claim(claimOpts());
      assert.equal((await done(p))?.state, 'waiting');
      assert.deepEqual(await store.settleParents(T0 + 6), []);
      await done(await store.claim(claimOpts()));
      assert.deepEqual((await store.listSubtasks(parent!.id)).map((t) => t.name), ['s1', 's2']);
      await done(await store.claim(claimOpts()), 'failed');
      const settled = await store.settleParents(T0 + 7);
      assert.equal(settled.length, 1);
      assert.equal(settled[0]?.state, 'failed');
      assert.equal(settled[0]?.failedReason, `subtask "s2" (task ${s2!.id}) ended failed`);
      await store.close();
    });

    it('sums usage per local day, agent, model and tag over a window; a tagged attempt counts once per tag', async () => {
      const { store } = await factory.open();
      const at = (day: number, hour: number, minute = 0) => Date.UTC(2026, 0, day, hour, minute);
      /** Enqueues a task at `start`, claims it then, and finishes it a second later with `stats`. */
      const run = async (name: string, start: number, over: Partial<TaskSpec>, state: 'completed' | 'failed', stats: Partial<RunStats>) => {
        await store.enqueue([newTask(name, over)], start);
        const c = await store.claim(claimOpts(start));
        assert.equal(c?.task.name, name);
        await store.finish(c!.attempt.id, { state, attemptOutcome: state, stats: { ...emptyStats(), ...stats }, now: start + 1000 });
      };
      const sonnet = (costUsd: number, inputTokens: number) => ({ model: 'sonnet-x', costUsd, inputTokens, outputTokens: inputTokens / 10 });
      await run('before', at(9, 23, 59), { agent: 'claude' }, 'completed', sonnet(5, 5000));
      await run('a', at(10, 10), { agent: 'claude', tags: ['api', 'ui'] }, 'completed', sonnet(0.1, 100));
      await run('b', at(10, 23, 30), { agent: 'claude', tags: ['api'] }, 'failed', { model: 'opus-x', costUsd: 0.2, inputTokens: 200, outputTokens: 20 });
      await run('c', at(11, 9), { agent: 'command' }, 'completed', {});
      await run('d', at(11, 12), { agent: 'claude', tags: ['ui'] }, 'completed', sonnet(0.3, 300));
      await run('at-until', at(12, 0), { agent: 'claude' }, 'completed', sonnet(7, 7000));
      const window = { since: at(10, 10), until: at(12, 0), timeZone: 'UTC' }; // a starts at since, at-until at until
      const figures = (attempts: number, completed: number, costUsd: number, inputTokens: number) => ({
        attempts,
        completed,
        costUsd,
        inputTokens,
        outputTokens: inputTokens / 10,
      });

      assert.deepEqual(await store.usage(window), [
        { day: '2026-01-10', agent: 'claude', model: 'opus-x', tag: 'api', ...figures(1, 0, 0.2, 200) },
        { day: '2026-01-10', agent: 'claude', model: 'sonnet-x', tag: 'api', ...figures(1, 1, 0.1, 100) },
        { day: '2026-01-10', agent: 'claude', model: 'sonnet-x', tag: 'ui', ...figures(1, 1, 0.1, 100) },
        { day: '2026-01-11', agent: 'claude', model: 'sonnet-x', tag: 'ui', ...figures(1, 1, 0.3, 300) },
        { day: '2026-01-11', agent: 'command', model: null, tag: null, ...figures(1, 1, 0, 0) },
      ]);
      assert.deepEqual(await store.usage({ ...window, by: ['agent'] }), [
        { agent: 'claude', ...figures(3, 2, 0.6, 600) },
        { agent: 'command', ...figures(1, 1, 0, 0) },
      ], 'without tag, an attempt of a task with two tags counts once');
      assert.deepEqual(await store.usage({ ...window, by: ['tag', 'model'] }), [
        { tag: 'api', model: 'opus-x', ...figures(1, 0, 0.2, 200) },
        { tag: 'api', model: 'sonnet-x', ...figures(1, 1, 0.1, 100) },
        { tag: 'ui', model: 'sonnet-x', ...figures(2, 2, 0.4, 400) },
        { tag: null, model: null, ...figures(1, 1, 0, 0) },
      ]);
      assert.deepEqual(await store.usage({ ...window, by: [] }), [figures(4, 3, 0.6, 600)]);
      // 23:30 UTC on the 10th is already the 11th in Berlin (UTC+1 in January).
      assert.deepEqual(await store.usage({ ...window, timeZone: 'Europe/Berlin', by: ['day'] }), [
        { day: '2026-01-10', ...figures(1, 1, 0.1, 100) },
        { day: '2026-01-11', ...figures(3, 2, 0.5, 500) },
      ]);
      assert.deepEqual(
        (await store.usage({ since: at(10, 0), by: ['day'], timeZone: 'UTC' })).map((r) => [r.day, r.attempts]),
        [['2026-01-10', 2], ['2026-01-11', 2], ['2026-01-12', 1]],
        'no until: everything since',
      );
      assert.deepEqual(await store.usage({ since: at(13, 0), timeZone: 'UTC' }), []);
      await assert.rejects(store.usage({ ...window, timeZone: 'Mars/Olympus' }), { code: 'invalid_time_zone' });
      await store.close();
    });

    it('rate buckets: start full, drain, refill with time up to capacity, and say when the next token comes', async () => {
      const { store } = await factory.open();
      const hour = 3_600_000;
      const bucket = { capacity: 2, refillPerMs: 2 / hour }; // 2/h
      assert.deepEqual(await store.takeRateToken('codex', bucket, T0), { taken: true, tokens: 1, nextTokenAt: T0 });
      assert.deepEqual(await store.takeRateToken('codex', bucket, T0), { taken: true, tokens: 0, nextTokenAt: T0 + hour / 2 });
      const empty = await store.takeRateToken('codex', bucket, T0 + 60_000);
      assert.equal(empty.taken, false);
      assert.ok(Math.abs(empty.tokens - 1 / 30) < 1e-9, `a minute refills 1/30 token, got ${empty.tokens}`);
      assert.equal(empty.nextTokenAt, T0 + hour / 2, 'a refused take does not move the next token');
      assert.equal((await store.takeRateToken('codex', bucket, T0 + hour / 2 - 1)).taken, false);
      const refilled = await store.takeRateToken('codex', bucket, T0 + hour / 2);
      assert.equal(refilled.taken, true, 'the token is there at nextTokenAt');
      assert.ok(refilled.tokens < 1e-9);
      assert.equal(refilled.nextTokenAt, T0 + hour);
      // A long quiet spell refills only up to the capacity.
      const later = T0 + 10 * hour;
      assert.deepEqual(await store.takeRateToken('codex', bucket, later), { taken: true, tokens: 1, nextTokenAt: later });
      assert.equal((await store.takeRateToken('codex', bucket, later)).taken, true);
      assert.equal((await store.takeRateToken('codex', bucket, later)).taken, false);
      // A clock behind the last update (another host) adds nothing.
      assert.equal((await store.takeRateToken('codex', bucket, later - hour)).taken, false);
      // Buckets are per agent, and a burst larger than the rate holds more.
      let taken = 0;
      while ((await store.takeRateToken('gemini', { capacity: 5, refillPerMs: 1 / hour }, T0)).taken) taken++;
      assert.equal(taken, 5);
      await assert.rejects(store.takeRateToken('codex', { capacity: 0, refillPerMs: 1 }, T0), { code: 'invalid_bucket' });
      await assert.rejects(store.takeRateToken('codex', { capacity: 1, refillPerMs: 0 }, T0), { code: 'invalid_bucket' });
      await store.close();
    });

    it('extendPause only lengthens a pause and keeps the strikes', async () => {
      const { store } = await factory.open();
      assert.equal(await store.extendPause({ agent: 'codex', until: T0 + 1000, reason: 'bucket' }), true);
      assert.deepEqual(await store.listPauses(T0), [{ agent: 'codex', until: T0 + 1000, reason: 'bucket' }]);
      assert.equal(await store.agentStrikes('codex'), 0, 'no strike');
      await store.pauseAgent({ agent: 'codex', until: T0 + 60_000, reason: 'API 429' }, 3);
      assert.equal(await store.extendPause({ agent: 'codex', until: T0 + 2000, reason: 'bucket' }), false);
      assert.deepEqual(await store.listPauses(T0), [{ agent: 'codex', until: T0 + 60_000, reason: 'API 429' }], 'a longer pause is kept');
      assert.equal(await store.extendPause({ agent: 'codex', until: T0 + 90_000, reason: 'bucket, later' }), true);
      assert.deepEqual(await store.listPauses(T0), [{ agent: 'codex', until: T0 + 90_000, reason: 'bucket, later' }]);
      assert.equal(await store.agentStrikes('codex'), 3, 'strikes kept');
      await store.close();
    });

    it('never takes more rate tokens than the bucket holds, from two handles at once', async () => {
      const { store, openSecond } = await factory.open();
      const other = await openSecond();
      const bucket = { capacity: 25, refillPerMs: 1 / 3_600_000 };
      const taker = async (s: Store) => {
        let n = 0;
        for (let i = 0; i < 40; i++) if ((await s.takeRateToken('claude', bucket, T0)).taken) n++;
        return n;
      };
      const [a, b] = await Promise.all([taker(store), taker(other)]);
      assert.equal(a + b, 25);
      assert.equal((await other.takeRateToken('claude', bucket, T0)).taken, false);
      await other.close();
      await store.close();
    });

    it('never hands one task to two handles claiming at once', async () => {
      const { store, openSecond } = await factory.open();
      const other = await openSecond();
      await store.enqueue(Array.from({ length: 40 }, (_, i) => newTask(`t${i}`)), T0);
      const seen: number[] = [];
      const worker = async (s: Store, id: string) => {
        for (;;) {
          const c = await s.claim(claimOpts(T0, { workerId: id, concurrency: 100 }));
          if (!c) return;
          seen.push(c.task.id);
        }
      };
      await Promise.all([worker(store, 'w1'), worker(other, 'w2')]);
      assert.equal(seen.length, 40);
      assert.equal(new Set(seen).size, 40);
      await other.close();
      await store.close();
    });
  });
}
