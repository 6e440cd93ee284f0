/**
 * Store contract, tasks: enqueue and read back, claim order and limits, `runAt`, dedup keys,
 * cancel and retry, dependencies, parents and subtasks, terminal tasks awaiting their result
 * file.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyStats } from '../../../src/agents/runner.ts';
import type { Store } from '../../../src/store/store.ts';
import { claimOpts, newTask, T0, type StoreFactory } from './shared.ts';

/** Registers the `tasks` cases for a backend's stores. */
export function tasksContract(factory: StoreFactory): void {
  describe('tasks', () => {
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

    it('hands back each created task as reading it back gives it, every field set or left out', async () => {
      const { store } = await factory.open();
      const [root] = await store.enqueue([newTask('root')], T0);
      const full = newTask('full', {
        title: 'Full',
        priority: 'critical',
        model: 'm',
        dependsOn: ['root', 'inbatch'],
        parent: 'inbatch',
        maxCostUsd: 1.5,
        retries: 4,
        retryBackoffMs: 2000,
        retryOnTimeout: true,
        concurrencyGroup: 'g',
        runAt: T0 + 60_000,
        workspace: 'worktree',
        merge: 'auto',
        workspaceSetup: ['npm ci'],
        tags: ['a', 'b'],
        runsOn: ['gpu'],
        dedupKey: 'dk',
        command: ['echo', 'hi'],
        remote: 'peer',
        remoteMetadata: { agent: 'command', n: 1 },
        maxTurns: 7,
        allowedTools: ['Bash(git:*)'],
        verify: ['npm test'],
        verifyTimeoutMs: 30_000,
        verifyRetries: 1,
        stallTimeoutMs: 0,
        extra: { owner: 'me', nested: { x: [1, 2] } },
      });
      const made = await store.enqueue(
        [
          { ...newTask('inbatch'), origin: { host: 'h', root: '/r' } },
          { ...full, dependsOnIds: [root!.id], dependsOnBatch: [0], parentBatch: 0, origin: { host: 'h', root: '/r' } },
          { ...newTask('bad'), invalidReason: 'retries: -1 is not a whole number' },
          { ...newTask('dup', { dedupKey: 'dk' }), invalidReason: 'dedup_key: "dk": taken', terminalState: 'duplicate' },
        ],
        T0,
      );
      assert.equal(made.length, 4);
      for (const task of made) assert.deepEqual(task, await store.getTask(task.id), task.name);
      assert.equal(made[1]?.parentId, made[0]?.id);
      assert.deepEqual(made[1]?.dependsOnIds, [root!.id, made[0]!.id]);
      await store.close();
    });

    it('enqueues text with a lone UTF-16 surrogate (a JSON body may hold one) without refusing the batch', async () => {
      const { store } = await factory.open();
      const broken = 'do \ud800 then \udc00';
      const made = await store.enqueue([newTask('a', { prompt: broken, title: broken }), newTask('b')], T0);
      assert.deepEqual(made.map((t) => t.name), ['a', 'b']);
      // Each backend keeps the text around what it cannot store (PostgreSQL: U+FFFD, as for a text parameter).
      assert.match((await store.getTask(made[0]!.id))?.prompt ?? '', /^do .+ then .+$/);
      assert.match((await store.getTask(made[0]!.id))?.title ?? '', /^do .+ then .+$/);
      await store.close();
    });

    it('enqueues a batch whose entries name earlier ones (parent, dependencies), ids ascending in batch order, each task as stored', async () => {
      const { store } = await factory.open();
      const [before] = await store.enqueue([newTask('before')], T0);
      const made = await store.enqueue(
        [
          newTask('parent', { command: ['true'], runAt: T0 + 5_000, tags: ['a', 'b'] }),
          { ...newTask('sub', { parent: 'parent', dependsOn: ['before', 'parent'] }, [before!.id]), dependsOnBatch: [0], parentBatch: 0 },
          { ...newTask('bad'), invalidReason: 'bad: no' },
          { ...newTask('after', { dependsOn: ['sub', 'before'] }, [before!.id]), dependsOnBatch: [1] },
        ],
        T0,
      );
      assert.deepEqual(made.map((t) => t.name), ['parent', 'sub', 'bad', 'after']);
      const ids = made.map((t) => t.id);
      assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
      assert.ok(ids[0]! > before!.id);
      const [parent, sub, bad, after] = made;
      assert.equal(sub!.parentId, parent!.id);
      assert.deepEqual(sub!.dependsOnIds, [before!.id, parent!.id]);
      assert.deepEqual(after!.dependsOnIds, [before!.id, sub!.id]);
      assert.equal(parent!.runAfter, T0 + 5_000);
      assert.equal(bad!.state, 'invalid');
      assert.equal(bad!.failedReason, 'bad: no');
      for (const t of made) assert.deepEqual(t, await store.getTask(t.id), `${t.name} as enqueue gave it and as read back`);
      await store.close();
    });

    it('lists newest first in keyset pages (beforeId + limit), with and without a state', async () => {
      const { store } = await factory.open();
      const made = await store.enqueue(Array.from({ length: 7 }, (_, i) => newTask(`p${i}`)), T0);
      const ids = made.map((t) => t.id);
      await store.cancel(ids[1]!, T0);
      await store.cancel(ids[4]!, T0);
      await store.cancel(ids[5]!, T0);
      /** Every page of `limit` (newest first) until a short one, as ids. */
      const pages = async (limit: number, state?: 'queued' | 'cancelled') => {
        const out: number[][] = [];
        let beforeId: number | undefined;
        for (;;) {
          const page = await store.listTasks({ ...(state ? { state } : {}), ...(beforeId !== undefined ? { beforeId } : {}), order: 'desc', limit });
          if (page.length) out.push(page.map((t) => t.id));
          if (page.length < limit) return out;
          beforeId = page.at(-1)!.id;
        }
      };
      const desc = [...ids].reverse();
      assert.deepEqual(await pages(3), [desc.slice(0, 3), desc.slice(3, 6), desc.slice(6)]);
      assert.deepEqual(await pages(2, 'cancelled'), [[ids[5], ids[4]], [ids[1]]]);
      assert.deepEqual(await pages(10, 'queued'), [[ids[6], ids[3], ids[2], ids[0]]]);
      assert.deepEqual((await store.listTasks({ order: 'desc', beforeId: ids[0]! })).length, 0, 'nothing below the first');
      assert.deepEqual((await store.listTasks()).map((t) => t.id), ids, 'default: every task, arrival order');
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

    it('claims a task with runs_on only for a dispatcher holding every label; one without runs_on for anyone', async () => {
      const { store } = await factory.open();
      const [gpu] = await store.enqueue([newTask('gpu', { runsOn: ['gpu'], priority: 'critical' })], T0);
      assert.deepEqual(gpu?.runsOn, ['gpu']);
      assert.equal(await store.claim(claimOpts(T0, { labels: [] })), null, 'no labels');
      assert.equal(await store.claim(claimOpts(T0, { labels: ['cpu'] })), null, 'other labels');
      const [plain] = await store.enqueue([newTask('plain')], T0);
      assert.deepEqual(plain?.runsOn, []);
      assert.equal((await store.claim(claimOpts(T0, { labels: [] })))?.task.name, 'plain', 'without runs_on: claimed by anyone, past the higher-priority gpu task');
      const claimed = await store.claim(claimOpts(T0, { labels: ['gpu', 'x'] }));
      assert.equal(claimed?.task.name, 'gpu');
      assert.deepEqual(claimed?.task.runsOn, ['gpu']);
      await store.enqueue([newTask('both', { runsOn: ['gpu', 'x'] }), newTask('any')], T0);
      assert.equal((await store.claim(claimOpts(T0, { labels: ['x'] })))?.task.name, 'any', 'every label is needed');
      assert.equal(await store.claim(claimOpts(T0, { labels: ['gpu'] })), null);
      assert.equal((await store.claim(claimOpts(T0, { labels: ['x', 'y', 'gpu'] })))?.task.name, 'both');
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

    it("records each task's origin checkout and lists the unreported ones of one origin (and those without an origin)", async () => {
      const { store } = await factory.open();
      const a = { host: 'host-1', root: '/srv/repo' };
      const b = { host: 'host-1', root: '/srv/other-checkout' };
      const c = { host: 'host-2', root: '/srv/repo' }; // the same path on another machine: another checkout
      const ended = (name: string, origin: typeof a | null) => ({ ...newTask(name), origin, invalidReason: 'x: bad' });
      const created = await store.enqueue([ended('a1', a), ended('b1', b), ended('c1', c), ended('legacy', null), { ...newTask('a-queued'), origin: a }, newTask('no-origin-given')], T0);
      const id = (name: string) => created.find((t) => t.name === name)!.id;
      assert.deepEqual(created.map((t) => t.origin), [a, b, c, null, a, null]);
      assert.deepEqual((await store.getTask('a1'))?.origin, a);
      // Every way a task is created records it.
      const request = await store.enqueueRequest({ ...newTask('posted'), origin: b }, {}, T0);
      assert.deepEqual(request.task.origin, b);
      assert.deepEqual((await store.recordRecurringTick('nightly', T0, { ...newTask('nightly-1'), origin: c }, T0))?.origin, c);
      // Terminal through an attempt too: the first queued task, a-queued.
      const claim = await store.claim(claimOpts(T0 + 1));
      assert.equal(claim?.task.name, 'a-queued');
      await store.finish(claim!.attempt.id, { state: 'completed', attemptOutcome: 'completed', result: 'ok', stats: emptyStats(), now: T0 + 2 });

      const names = async (origin?: typeof a) => (await store.listUnreported(origin)).map((t) => t.name);
      assert.deepEqual(await names(), ['a1', 'b1', 'c1', 'legacy', 'a-queued'], 'without an origin: every unreported task');
      assert.deepEqual(await names(a), ['a1', 'legacy', 'a-queued']);
      assert.deepEqual(await names(b), ['b1', 'legacy']);
      assert.deepEqual(await names(c), ['c1', 'legacy']);
      assert.deepEqual(await names({ host: 'host-3', root: '/srv/repo' }), ['legacy'], 'an unknown checkout: only the tasks without an origin');
      await store.setResultPath(id('a1'), '/srv/repo/.agent-queue/failed/a1.md');
      await store.setResultPath(id('legacy'), '/anywhere/.agent-queue/failed/legacy.md');
      assert.deepEqual(await names(a), ['a-queued']);
      assert.deepEqual(await names(), ['b1', 'c1', 'a-queued']);
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
  });
}
