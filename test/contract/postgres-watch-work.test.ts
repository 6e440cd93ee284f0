/**
 * `PostgresStore.watchWork` on a real PostgreSQL: `LISTEN`/`NOTIFY` across handles (another
 * process's view), per schema, sent at COMMIT by every change that makes work claimable, and
 * a listening connection cut from the server side that comes back by itself.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { LISTEN_APPLICATION_NAME, PostgresStore, workChannel } from '../../src/store/postgres/postgres-store.ts';
import { freshDatabase, startPostgres, type PostgresCluster } from '../fixtures/postgres.ts';
import { waitFor } from '../fixtures/procs.ts';
import { claimOpts, newTask, T0 } from './store/shared.ts';
import { emptyStats } from '../../src/agents/runner.ts';

let cluster: PostgresCluster | undefined;

before(async () => {
  cluster = await startPostgres();
});

after(async () => {
  await cluster?.stop();
});

/** A watch on `store` counting its calls. */
async function counting(store: PostgresStore) {
  const calls: number[] = [];
  const unwatch = await store.watchWork(() => calls.push(Date.now()));
  return { calls, unwatch };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('PostgresStore.watchWork', () => {
  it('hears another handle enqueue within a second, not another schema, and comes back after its connection is cut', async () => {
    const url = await freshDatabase(cluster!.url);
    const a = await PostgresStore.open(url);
    const b = await PostgresStore.open(url);
    const other = await PostgresStore.open(`${url}?schema=other_project`);
    const w = await counting(a);

    const sent = Date.now();
    await b.enqueue([newTask('one')], T0);
    await waitFor(() => w.calls.length > 0, 1_000, 'the watcher to hear the enqueue');
    console.log(`enqueue on handle B → watcher on handle A: ${w.calls[0]! - sent} ms`);
    assert.equal(w.calls.length, 1);

    await other.enqueue([newTask('elsewhere')], T0);
    // Invalid tasks are not work.
    await b.enqueue([{ ...newTask('bad'), invalidReason: 'bad: no' }], T0);
    await sleep(300);
    assert.equal(w.calls.length, 1, 'another schema and an invalid task wake nobody');

    // Cut the listening connection from the server side.
    const admin = new pg.Client({ connectionString: url });
    admin.on('error', () => {});
    await admin.connect();
    const killed = await admin.query('SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()', [LISTEN_APPLICATION_NAME]);
    assert.deepEqual(killed.rows, [{ ok: true }]);
    // Back: it calls once on its own (what was sent in the gap is lost), then hears again.
    await waitFor(() => w.calls.length >= 2, 5_000, 'the catch-up call after reconnecting');
    const listening = await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()', [LISTEN_APPLICATION_NAME]);
    assert.equal(listening.rows[0].n, 1);
    const before = w.calls.length;
    await b.enqueue([newTask('two')], T0);
    await waitFor(() => w.calls.length > before, 1_000, 'the watcher to hear an enqueue after reconnecting');

    await w.unwatch();
    const n = w.calls.length;
    await b.enqueue([newTask('three')], T0);
    await sleep(300);
    assert.equal(w.calls.length, n, 'no call after the watch ended');
    const left = await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()', [LISTEN_APPLICATION_NAME]);
    assert.equal(left.rows[0].n, 0, 'the listening connection is closed');
    await admin.end();
    await Promise.all([a.close(), b.close(), other.close()]);
  });

  it('is notified at COMMIT by the changes that make work claimable or end a task, and not by a rolled-back one', async () => {
    const url = await freshDatabase(cluster!.url);
    const a = await PostgresStore.open(url);
    const b = await PostgresStore.open(url);
    const w = await counting(a);
    /** Runs `change` on B and waits for A's watcher to hear of it. */
    const heard = async (what: string, change: () => Promise<unknown>) => {
      const n = w.calls.length;
      await change();
      await waitFor(() => w.calls.length > n, 1_000, `a notification for ${what}`);
    };
    const base = { stats: emptyStats(), now: T0 };
    await heard('enqueue', () => b.enqueue([newTask('t1'), newTask('t2'), newTask('t3'), newTask('t4')], T0));
    await heard('enqueueRequest', () => b.enqueueRequest(newTask('t5'), { idempotency: { key: 'k', bodySha256: 'h' } }, T0));
    const c1 = (await b.claim(claimOpts()))!;
    await heard('finish', () => b.finish(c1.attempt.id, { ...base, state: 'failed', attemptOutcome: 'failed' }));
    await heard('retry', () => b.retry(c1.task.id, T0));
    const c2 = (await b.claim(claimOpts()))!;
    await heard('requeue', () => b.requeue(c2.attempt.id, { attemptOutcome: 'interrupted', reason: 'x', runAfter: T0, now: T0 }));
    const c3 = (await b.claim(claimOpts()))!;
    await heard('block', () => b.block(c3.attempt.id, { question: 'why?', ...base }));
    await heard('answer', () => b.answer(c3.task.id, 'because', T0));
    await heard('recordRecurringTick', () => b.recordRecurringTick('nightly', 1, newTask('nightly-1'), T0));
    // A task that ends without an attempt of its own: its result file is due in its origin checkout.
    const [doomed] = await b.enqueue([newTask('doomed')], T0);
    await b.enqueue([newTask('after-doomed', { dependsOn: ['doomed'] }, [doomed!.id])], T0);
    await heard('cancel of a queued task', () => b.cancel(doomed!.id, T0));
    await heard('failBlockedDependents', () => b.failBlockedDependents(T0));
    const [parent] = await b.enqueue([newTask('parent', { priority: 'critical' })], T0);
    const [sub] = await b.enqueue([{ ...newTask('sub', { parent: 'parent' }), parentId: parent!.id }], T0);
    const cp = (await b.claim(claimOpts()))!;
    assert.equal(cp.task.id, parent!.id);
    assert.equal((await b.finish(cp.attempt.id, { ...base, state: 'completed', attemptOutcome: 'completed' }))?.state, 'waiting');
    await heard('cancel of a queued subtask', () => b.cancel(sub!.id, T0));
    await heard('settleParents (a parent failed)', () => b.settleParents(T0));

    // Nothing is heard of what is not committed. Notifications of the steps above that are still on their way
    // (one step may send more than one: a settled parent also frees its dependents) are let in first.
    await sleep(300);
    const n = w.calls.length;
    await assert.rejects(b.enqueue([newTask('x'), newTask('y', {}, [999_999])], T0));
    await sleep(300);
    assert.equal(w.calls.length, n, 'a rolled-back enqueue wakes nobody');
    await w.unwatch();
    await Promise.all([a.close(), b.close()]);
  });

  it('names a channel per schema, hashed past 63 bytes; close() ends open watches', async () => {
    assert.equal(workChannel('agentq'), 'agentq_work_agentq');
    const long = 'p'.repeat(63);
    assert.match(workChannel(long), /^agentq_work_[0-9a-f]{40}$/);
    assert.notEqual(workChannel(long), workChannel(`${'p'.repeat(62)}q`));
    const url = await freshDatabase(cluster!.url);
    const a = await PostgresStore.open(`${url}?schema=${long}`);
    const b = await PostgresStore.open(`${url}?schema=${long}`);
    const w = await counting(a);
    await b.enqueue([newTask('one')], T0);
    await waitFor(() => w.calls.length > 0, 1_000, 'a notification on a hashed channel');
    await a.close();
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    const left = await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()', [LISTEN_APPLICATION_NAME]);
    assert.equal(left.rows[0].n, 0);
    await admin.end();
    await w.unwatch();
    await b.close();
  });
});
