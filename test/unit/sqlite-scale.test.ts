/**
 * Scale on SQLite (issue 13): with 50,000 tasks in a real store file (copies of one enqueued
 * task made by raw INSERT … SELECT), a claim reaches the task it takes whatever waits ahead of
 * it — a future `run_at`, a paused account, an unfinished dependency, a label the dispatcher
 * lacks, a full concurrency group — and what a dispatcher does on every tick
 * (`countByState`, `failBlockedDependents`, `settleParents`, `listUnreported`) costs the same
 * whatever the queue and the history hold.
 *
 * Measured as the database pages the call reads, never as time: SQLite's page cache is cut
 * to 16 pages, so each page visited is a read(2) of the file, counted in /proc/self/io
 * (`syscr`). A walk through the queue reads hundreds to thousands of pages; a seek a few.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { emptyStats } from '../../src/agents/runner.ts';
import type { TaskSpec } from '../../src/core/types.ts';
import type { ClaimOptions } from '../../src/store/store.ts';
import { attemptIdAt, firstAttemptIdAt, SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { newTask } from '../fixtures/specs.ts';

const N = 50_000;
/** Most pages a call that seeks may read (a few B-tree descents, with room to spare); a walk reads hundreds or more. */
const SEEK_PAGES = 40;
const T0 = 1_700_000_000_000;
const PROC_IO = '/proc/self/io';

/** read(2) calls of this process so far. */
const reads = () => Number(/^syscr: (\d+)$/m.exec(fs.readFileSync(PROC_IO, 'utf8'))![1]);

/** Pages (read(2) calls) `fn` reads, less the ones reading /proc/self/io itself costs. */
async function pagesRead(fn: () => Promise<unknown>): Promise<number> {
  const idle = -(reads() - reads());
  const before = reads();
  await fn();
  return reads() - before - idle;
}

/** A store holding `n` copies of task `over` (named `bulk-N`, made by raw inserts), its page cache cut to 16 pages. */
async function bulkStore(n: number, over: Partial<TaskSpec> = {}): Promise<SqliteStore> {
  const store = new SqliteStore(path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-scale-')), 'agentq.db'));
  const [t] = await store.enqueue([newTask('bulk-0', over)], T0);
  const cols = (store.db.pragma('table_xinfo(tasks)') as Array<{ name: string; hidden: number }>).filter((c) => c.hidden === 0 && c.name !== 'id').map((c) => c.name);
  store.db.exec(`
    WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ${n - 1})
    INSERT INTO tasks (${cols.join(', ')}) SELECT ${cols.map((c) => (c === 'name' ? "'bulk-' || k.i" : c)).join(', ')} FROM k, tasks WHERE tasks.id = ${t!.id}`);
  store.db.pragma('cache_size = 16');
  store.db.prepare('SELECT count(*) FROM sqlite_schema').get(); // the schema read before anything is counted
  return store;
}

const claimOpts = (over: Partial<ClaimOptions> = {}): ClaimOptions => ({ workerId: 'w1', now: T0, leaseMs: 60_000, concurrency: 100, agents: ['command', 'claude'], labels: [], ...over });

describe('SQLite at scale: a claim is a seek whatever waits ahead of the task it takes', { skip: !fs.existsSync(PROC_IO) && 'needs /proc/self/io' }, () => {
  /** 50,000 tasks that cannot run now (made by `setup` on a bulk store), then one low-priority task that can: the claim takes it. */
  const caseOf = (what: string, over: Partial<TaskSpec>, setup: (store: SqliteStore) => Promise<void> = async () => {}, opts: Partial<ClaimOptions> = {}) =>
    it(`${what}: the claim takes the runnable task behind ${N} that cannot run, reading a few pages`, async () => {
      const store = await bulkStore(N, { priority: 'critical', ...over });
      await setup(store);
      const [runnable] = await store.enqueue([newTask('runnable', { priority: 'low' })], T0);
      let claimed: number | undefined;
      const pages = await pagesRead(async () => (claimed = (await store.claim(claimOpts(opts)))?.task.id));
      assert.equal(claimed, runnable!.id);
      assert.ok(pages <= SEEK_PAGES, `the claim read ${pages} pages (at most ${SEEK_PAGES} for a seek)`);
      const nothing = await pagesRead(async () => assert.equal(await store.claim(claimOpts(opts)), null));
      assert.ok(nothing <= SEEK_PAGES, `finding nothing read ${nothing} pages`);
      await store.close();
    });

  caseOf('every one waits for its run_at', { runAt: T0 + 3_600_000 });
  caseOf('the account of their agent is paused', { agent: 'claude' }, async (s) => s.pauseAgent({ agent: 'claude', until: T0 + 3_600_000, reason: 'limit' }));
  caseOf('every one needs a label the dispatcher lacks', { runsOn: ['gpu'] });
  caseOf('every one waits for a dependency', {}, async (s) => {
    const [dep] = await s.enqueue([newTask('dependency', { agent: 'codex' })], T0); // no codex runner here: it stays queued
    s.db.exec(`INSERT INTO task_deps (task_id, depends_on_id, position) SELECT id, ${dep!.id}, 0 FROM tasks WHERE name LIKE 'bulk-%'`);
  });
  caseOf(
    'their concurrency group is full',
    { concurrencyGroup: 'api' },
    async (s) => {
      const first = await s.claim(claimOpts());
      assert.equal(first?.task.concurrencyGroup, 'api', 'one of the group runs');
    },
  );
  caseOf('their agent is at its own limit', { agent: 'claude' }, async (s) => {
    assert.equal((await s.claim(claimOpts({ agentConcurrency: { claude: 1 } })))?.task.agent, 'claude');
  }, { agentConcurrency: { claude: 1 } });
});

describe('SQLite at scale: per-tick work does not read the queue or the history', { skip: !fs.existsSync(PROC_IO) && 'needs /proc/self/io' }, () => {
  it(`countByState, failBlockedDependents and settleParents beside ${N} queued tasks read a few pages, and still do their work`, async () => {
    const store = await bulkStore(N);
    const pages = async (fn: () => Promise<unknown>) => pagesRead(fn);
    let counts: Awaited<ReturnType<SqliteStore['countByState']>> | undefined;
    const countPages = await pages(async () => (counts = await store.countByState()));
    assert.equal(counts?.queued, N);
    assert.ok(countPages <= SEEK_PAGES, `countByState read ${countPages} pages`);
    assert.deepEqual(await store.failBlockedDependents(T0), []);
    const idle = await pages(() => store.failBlockedDependents(T0));
    assert.ok(idle <= SEEK_PAGES, `failBlockedDependents with nothing ended read ${idle} pages`);
    const settle = await pages(() => store.settleParents(T0));
    assert.ok(settle <= SEEK_PAGES, `settleParents with no parent waiting read ${settle} pages`);

    // One dependency fails: its dependent (one of the bulk) fails, by a look at it alone.
    const [dep] = await store.enqueue([newTask('dependency', { priority: 'critical' })], T0);
    const [dependent] = await store.enqueue([newTask('dependent', {}, [dep!.id])], T0);
    const c = await store.claim(claimOpts());
    assert.equal(c?.task.id, dep!.id);
    await store.finish(c!.attempt.id, { state: 'failed', attemptOutcome: 'failed', reason: 'exit 1', stats: emptyStats(), now: T0 + 1 });
    let failed: number[] = [];
    const failPages = await pages(async () => (failed = (await store.failBlockedDependents(T0 + 2)).map((t) => t.id)));
    assert.deepEqual(failed, [dependent!.id]);
    assert.ok(failPages <= SEEK_PAGES, `failing one dependent read ${failPages} pages`);
    assert.deepEqual((await store.countByState()).failed, 2);
    await store.close();
  });

  it(`countByState and listUnreported beside ${N} reported tasks read a few pages`, async () => {
    const store = await bulkStore(N);
    const origin = { host: 'h', root: '/r' };
    store.db.exec(`UPDATE tasks SET state = 'completed', finished_at = ${T0}, result_path = '/r/.agent-queue/done/x.md'`);
    const [bad] = await store.enqueue([{ ...newTask('bad'), origin, invalidReason: 'priority: bad' }], T0);
    let unreported: number[] = [];
    const listPages = await pagesRead(async () => (unreported = (await store.listUnreported(origin)).map((t) => t.id)));
    assert.deepEqual(unreported, [bad!.id]);
    assert.ok(listPages <= SEEK_PAGES, `listUnreported read ${listPages} pages`);
    let completed = 0;
    const countPages = await pagesRead(async () => (completed = (await store.countByState()).completed));
    assert.equal(completed, N);
    assert.ok(countPages <= SEEK_PAGES, `countByState read ${countPages} pages`);
    await store.close();
  });

  it(`listPendingIntake beside ${N} inbox files taken in and removed reads a few pages`, async () => {
    const store = await bulkStore(N);
    store.db.exec(`INSERT INTO intake (key, task_id, file_removed) SELECT 'k' || id, id, 1 FROM tasks`);
    store.db.exec(`UPDATE intake SET file_removed = 0 WHERE key = 'k7'`);
    let pending: string[] = [];
    const pages = await pagesRead(async () => (pending = await store.listPendingIntake()));
    assert.deepEqual(pending, ['k7']);
    assert.ok(pages <= SEEK_PAGES, `listPendingIntake read ${pages} pages`);
    await store.close();
  });
});

describe('SQLite at scale: a day of spend is read without the history', { skip: !fs.existsSync(PROC_IO) && 'needs /proc/self/io' }, () => {
  it(`agentUsage since the day began reads a few pages beside ${N} attempts of earlier days`, async () => {
    const DAY = 86_400_000;
    const store = await bulkStore(3, { agent: 'claude' });
    const [old] = await store.listTasks({ limit: 1 });
    // N ended, paid attempts of the last 30 days, ids made as the store makes them.
    const insert = store.db.prepare(
      "INSERT INTO attempts (id, task_id, number, worker_id, agent, outcome, started_at, finished_at, cost_usd, input_tokens, output_tokens) VALUES (?, ?, ?, 'w0', 'claude', 'completed', ?, ?, 1, 10, 20)",
    );
    store.db.transaction(() => {
      for (let i = 1; i <= N; i++) {
        const started = T0 - 30 * DAY + i * 1000;
        insert.run(attemptIdAt(started), old!.id, 1000 + i, started, started + 500);
      }
    })();
    const running = await store.claim(claimOpts({ now: T0 }));
    const paid = await store.claim(claimOpts({ now: T0 + 1 }));
    await store.finish(paid!.attempt.id, { state: 'completed', attemptOutcome: 'completed', stats: { ...emptyStats(), costUsd: 0.25, inputTokens: 100, outputTokens: 200 }, now: T0 + 2 });
    assert.ok(running && paid);

    let today: Awaited<ReturnType<SqliteStore['agentUsage']>> = [];
    const pages = await pagesRead(async () => (today = await store.agentUsage(T0 - 1000)));
    assert.deepEqual(today, [{ agent: 'claude', running: 1, attempts: 2, costUsd: 0.25, inputTokens: 100, outputTokens: 200 }]);
    assert.ok(pages <= SEEK_PAGES, `agentUsage for the day read ${pages} pages`);

    // A window over the history reads it (what the figure above would be without the id order).
    let month: Awaited<ReturnType<SqliteStore['agentUsage']>> = [];
    const monthPages = await pagesRead(async () => (month = await store.agentUsage(T0 - 31 * DAY)));
    assert.deepEqual(month, [{ agent: 'claude', running: 1, attempts: N + 2, costUsd: N + 0.25, inputTokens: 10 * N + 100, outputTokens: 20 * N + 200 }]);
    assert.ok(monthPages > SEEK_PAGES, `the month read ${monthPages} pages`);
    await store.close();
  });
});

describe('attempt ids', () => {
  it('are UUIDv7 of the start time: they sort as the attempts started, from firstAttemptIdAt of that time on', () => {
    const times = [0, 1, 255, 256, T0 - 1, T0, T0, T0 + 1, 2 ** 48 - 1];
    const ids = times.map(attemptIdAt);
    for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(new Set(ids).size, ids.length, 'no two alike');
    assert.equal(ids[5]!.slice(0, 13), `${T0.toString(16).padStart(12, '0').slice(0, 8)}-${T0.toString(16).padStart(12, '0').slice(8)}`);
    for (let i = 1; i < ids.length; i++) {
      if (times[i] !== times[i - 1]) assert.ok(ids[i - 1]! < ids[i]!, `${ids[i - 1]} < ${ids[i]}`);
    }
    for (const [i, t] of times.entries()) {
      assert.ok(firstAttemptIdAt(t) <= ids[i]!, 'an id of a start at t is at or after firstAttemptIdAt(t)');
      if (t > 0) assert.ok(ids[times.findIndex((u) => u === t) - 1]! < firstAttemptIdAt(t), 'an earlier start sorts before it');
    }
  });
});

describe('SQLite writes: what a claim and a finish write', () => {
  /** The B-trees (tables and indexes, by name) of the pages the WAL gained since `offset`, and the new offset. */
  function walPages(store: SqliteStore, offset: number): { names: string[]; frames: number; offset: number } {
    const pageSize = Number(store.db.pragma('page_size', { simple: true }));
    const owner = new Map((store.db.prepare('SELECT name, pageno FROM dbstat').all() as Array<{ name: string; pageno: number }>).map((r) => [r.pageno, r.name]));
    const wal = fs.readFileSync(`${store.db.name}-wal`);
    const names = new Set<string>();
    let frames = 0;
    for (; offset + 24 + pageSize <= wal.length; offset += 24 + pageSize, frames++) names.add(owner.get(wal.readUInt32BE(offset)) ?? '?');
    return { names: [...names].sort(), frames, offset };
  }

  it('a claim writes the task row, its queued and running index entries and the attempt (row, id); a finish the task row, one index page, a count and the attempt row', async () => {
    const store = new SqliteStore(path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-writes-')), 'agentq.db'), { checkpointIntervalMs: 0 });
    store.db.pragma('wal_autocheckpoint = 0');
    await store.enqueue(Array.from({ length: 20 }, (_, i) => ({ ...newTask(`t-${i}`), origin: { host: 'h', root: '/r' } })), T0);
    const warm = await store.claim(claimOpts());
    await store.finish(warm!.attempt.id, { state: 'completed', attemptOutcome: 'completed', stats: emptyStats(), now: T0 });
    store.db.pragma('wal_checkpoint(TRUNCATE)');
    let offset = 32; // the WAL header

    const claim = await store.claim(claimOpts());
    const claimed = walPages(store, offset);
    assert.deepEqual(claimed.names, ['attempts', 'attempts_id', 'tasks', 'tasks_queued', 'tasks_running']);
    assert.equal(claimed.frames, 5);
    offset = claimed.offset;

    await store.finish(claim!.attempt.id, { state: 'completed', attemptOutcome: 'completed', stats: emptyStats(), now: T0 + 1 });
    const finished = walPages(store, offset);
    assert.deepEqual(finished.names, ['attempts', 'task_counts', 'tasks', 'tasks_running'], 'the running entry and the unreported one on one page of one index');
    assert.equal(finished.frames, 4);
    await store.close();
  });
});
