/**
 * `npm run bench:sqlite`: the SQLite store's hot path next to raw better-sqlite3 on the same
 * engine, measured in the same run, as ratios (agentq / raw):
 *
 *   enqueue          `Store.enqueue` of 1 and of 100 tasks per call, rows/s; raw: one
 *                    `INSERT` per row of the same row into a table of the same columns,
 *                    1 or 100 per transaction; also the CPU time per row of each
 *   claim + finish   one pair at a time (`Store.claim`, then `Store.finish` as completed), at
 *                    each queue size; pairs/s, p50 and p99 of a pair (ms); raw: two
 *                    statements per pair on a table of the same columns with one claim index
 *                    (`UPDATE … WHERE id = (SELECT … LIMIT 1) RETURNING *`, `UPDATE … WHERE id = ?`);
 *                    also the CPU time per pair of each (user + system of this process), whose
 *                    ratio other processes' load moves less than the wall-clock ones
 *   per tick         what a dispatcher does on every tick whatever the queue holds, at each
 *                    queue size (median ms): `countByState`, `failBlockedDependents`,
 *                    `listUnreported(origin)` beside a history of as many reported tasks,
 *                    and a claim that finds nothing because every queued task waits for its
 *                    `run_at` or its agent is paused
 *
 * The queues are built with fast raw inserts (copies of one enqueued task), so a large size
 * costs seconds. Prints figures only; exits non-zero only when a run is incorrect (a pair
 * that did not complete its task).
 *
 * Options: --sizes 1000,100000 (add 1000000 for the million), --pairs 2000, --enqueue 10000
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { emptyStats } from '../src/agents/runner.ts';
import { baseSpec } from '../src/config/task-file.ts';
import { SqliteStore, type SqliteStoreOptions } from '../src/store/sqlite/sqlite-store.ts';
import type { NewTask } from '../src/store/store.ts';
import { percentile, printTable, runMain } from './common.ts';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000,100000' },
    pairs: { type: 'string', default: '2000' },
    enqueue: { type: 'string', default: '10000' },
  },
});
const SIZES = String(values.sizes).split(',').map(Number);
const PAIRS = Number(values.pairs);
const ENQUEUE = Number(values.enqueue);
for (const [flag, n] of [['--sizes', Math.min(...SIZES)], ['--pairs', PAIRS], ['--enqueue', ENQUEUE]] as const) {
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag}: give whole numbers ≥ 1`);
}

/** A task of the usual shape: a `command` task with a prompt of ~600 bytes. */
const PROMPT = `Fix the flaky test in the store module. ${'Keep the change small and explain it in the commit message. '.repeat(10)}`;
const spec = (name: string, over: Partial<NewTask['spec']> = {}): NewTask => ({
  spec: { ...baseSpec(name, PROMPT), agent: 'command', timeoutMs: 60_000, command: ['true'], ...over },
  dependsOnIds: [],
});

const ORIGIN = { host: 'bench-host', root: '/srv/bench' };
const nowMs = () => Date.now();
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

/** Closes a store (or raw database) and removes its files: a queue of a million takes a GiB. */
async function drop(db: SqliteStore | Database.Database): Promise<void> {
  const file = db instanceof SqliteStore ? db.db.name : db.name;
  await db.close();
  for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
}

/** The columns of the store's `tasks` table (generated ones left out), in order. */
function taskColumns(db: Database.Database): Array<{ name: string; type: string }> {
  return (db.pragma('table_xinfo(tasks)') as Array<{ name: string; type: string; hidden: number }>).filter((c) => c.hidden === 0 && c.name !== 'id');
}

/**
 * Adds `n - 1` copies of task `templateId` (names `<prefix>N`), in one transaction of plain
 * `INSERT … SELECT` (the store's triggers, if any, fire as for any insert).
 */
function copyTask(db: Database.Database, templateId: number, n: number, prefix: string): void {
  const cols = taskColumns(db).map((c) => c.name);
  const select = cols.map((c) => (c === 'name' ? `'${prefix}' || k.i` : c)).join(', ');
  db.exec(`
    WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ${n - 1})
    INSERT INTO tasks (${cols.join(', ')}) SELECT ${select} FROM k, tasks WHERE tasks.id = ${templateId}`);
}

/** A new store in `dir` holding `n` queued tasks like `spec('q')` (with `over`); `options` as SqliteStore's. */
async function queueOf(dir: string, n: number, over: Partial<NewTask['spec']> = {}, options: SqliteStoreOptions = {}): Promise<SqliteStore> {
  const store = new SqliteStore(path.join(dir, `store-${n}-${Math.random().toString(36).slice(2)}.db`), options);
  const [t] = await store.enqueue([{ ...spec('q0', over), origin: ORIGIN }], nowMs());
  if (n > 1) copyTask(store.db, t!.id, n, 'q');
  return store;
}

/** The raw reference table: the store's task columns, one claim index, `n` rows like the store's first task. */
function rawQueue(dir: string, like: SqliteStore, n: number): Database.Database {
  const db = new Database(path.join(dir, `raw-${n}-${Math.random().toString(36).slice(2)}.db`));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  const cols = taskColumns(like.db);
  db.exec(`CREATE TABLE jobs (id INTEGER PRIMARY KEY, ${cols.map((c) => `${c.name} ${c.type}`).join(', ')});
           CREATE INDEX jobs_claim ON jobs (state, priority_rank, id);`);
  const names = cols.map((c) => c.name);
  const row = like.db.prepare(`SELECT ${names.join(', ')} FROM tasks ORDER BY id LIMIT 1`).get() as Record<string, unknown>;
  db.prepare(`INSERT INTO jobs (${names.join(', ')}) VALUES (${names.map((c) => `@${c}`).join(', ')})`).run({ ...row, name: 'q0' });
  if (n > 1) {
    db.exec(`
      WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ${n - 1})
      INSERT INTO jobs (${names.join(', ')}) SELECT ${names.map((c) => (c === 'name' ? "'q' || k.i" : c)).join(', ')} FROM k, jobs WHERE jobs.id = 1`);
  }
  return db;
}

interface PairFigures {
  perSec: number;
  p50: number;
  p99: number;
  /** CPU time (user + system) of this process per pair, µs: what other processes' load changes least. */
  cpuUs: number;
}

function figures(times: number[], totalMs: number, cpu: NodeJS.CpuUsage): PairFigures {
  return { perSec: (times.length / totalMs) * 1000, p50: percentile(times, 50), p99: percentile(times, 99), cpuUs: (cpu.user + cpu.system) / times.length };
}

/** Claim + finish, one pair at a time, `PAIRS` pairs (after 100 not measured). */
async function storePairs(store: SqliteStore): Promise<PairFigures> {
  const pair = async () => {
    const now = nowMs();
    const claim = await store.claim({ workerId: 'w1', host: 'bench-host', now, leaseMs: 60_000, concurrency: 1e9, agents: ['command'], labels: [] });
    if (!claim) throw new Error('claim: nothing claimed');
    const done = await store.finish(claim.attempt.id, { state: 'completed', attemptOutcome: 'completed', result: 'ok', stats: emptyStats(), output: null, now });
    if (done?.state !== 'completed') throw new Error(`finish: task ${claim.task.id} is ${done?.state}`);
  };
  for (let i = 0; i < 100; i++) await pair();
  const times: number[] = [];
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < PAIRS; i++) {
    const t = process.hrtime.bigint();
    await pair();
    times.push(ms(t));
    await turn();
  }
  return figures(times, ms(t0), process.cpuUsage(cpu0));
}

/** A turn of the event loop between pairs, as a dispatcher gives (its timers run: the store's checkpoints). */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The raw reference pair: the minimal claim and finish statements on the same row shape. With
 * `attempts`, also an attempt row per pair (inserted by the claim, closed by the finish, each
 * pair of statements in one transaction) in a table shaped like the store's (keyed by task
 * and number, a unique index on the attempt id): the least the store's own schema writes.
 */
async function rawPairs(db: Database.Database, attempts = false): Promise<PairFigures> {
  {
    db.exec(`CREATE TABLE IF NOT EXISTS attempts (id TEXT NOT NULL, task_id INTEGER NOT NULL, number INTEGER NOT NULL, worker_id TEXT NOT NULL,
               outcome TEXT NOT NULL DEFAULT 'running', started_at INTEGER NOT NULL, finished_at INTEGER, PRIMARY KEY (task_id, number)) WITHOUT ROWID;
             CREATE UNIQUE INDEX IF NOT EXISTS attempts_id ON attempts (id);`);
  }
  const open = db.prepare('INSERT INTO attempts (id, task_id, number, worker_id, started_at) VALUES (?, ?, ?, ?, ?)');
  const close = db.prepare("UPDATE attempts SET outcome = 'completed', finished_at = ? WHERE id = ?");
  const inTx = <T>(fn: () => T): T => (attempts ? db.transaction(fn).immediate() : fn());
  const claim = db.prepare(
    `UPDATE jobs SET state = 'running', attempts = attempts + 1, claims = claims + 1, lease_owner = ?, lease_token = ?, lease_expires_at = ?, started_at = ?
      WHERE id = (SELECT id FROM jobs WHERE state = 'queued' ORDER BY priority_rank, id LIMIT 1) RETURNING *`,
  );
  const finish = db.prepare(
    `UPDATE jobs SET state = 'completed', finished_at = ?, result = ?, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL WHERE id = ? AND lease_token = ?`,
  );
  const pair = () => {
    const now = nowMs();
    const token = crypto.randomUUID();
    const row = inTx(() => {
      const r = claim.get('w1', token, now + 60_000, now) as { id: number; claims: number } | undefined;
      if (r && attempts) open.run(token, r.id, r.claims, 'w1', now);
      return r;
    });
    if (!row) throw new Error('raw claim: nothing claimed');
    inTx(() => {
      if (finish.run(now, 'ok', row.id, token).changes !== 1) throw new Error('raw finish: nothing finished');
      if (attempts) close.run(now, token);
    });
  };
  for (let i = 0; i < 100; i++) pair();
  const times: number[] = [];
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < PAIRS; i++) {
    const t = process.hrtime.bigint();
    pair();
    times.push(ms(t));
    await turn();
  }
  return figures(times, ms(t0), process.cpuUsage(cpu0));
}

/** Rows/s of an enqueue run, and the CPU time (user + system) of this process per row, µs. */
interface EnqueueFigures {
  perSec: number;
  cpuUs: number;
}

/** Enqueue `ENQUEUE` tasks `batch` per call. */
async function storeEnqueue(dir: string, batch: number): Promise<EnqueueFigures> {
  const store = new SqliteStore(path.join(dir, `enqueue-${batch}.db`));
  await store.enqueue([spec('warm')], nowMs());
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < ENQUEUE; i += batch) {
    await store.enqueue(Array.from({ length: Math.min(batch, ENQUEUE - i) }, (_, k) => ({ ...spec(`e${i + k}`), origin: ORIGIN })), nowMs());
  }
  const cpu = process.cpuUsage(cpu0);
  const figures = { perSec: (ENQUEUE / ms(t0)) * 1000, cpuUs: (cpu.user + cpu.system) / ENQUEUE };
  await store.close();
  return figures;
}

/** The raw reference enqueue: one `INSERT` per row of the same row, `batch` per transaction. */
function rawEnqueue(dir: string, like: SqliteStore, batch: number): EnqueueFigures {
  const db = rawQueue(dir, like, 1);
  const names = taskColumns(like.db).map((c) => c.name);
  const row = db.prepare(`SELECT ${names.join(', ')} FROM jobs LIMIT 1`).get() as Record<string, unknown>;
  const insert = db.prepare(`INSERT INTO jobs (${names.join(', ')}) VALUES (${names.map((c) => `@${c}`).join(', ')})`);
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < ENQUEUE; i += batch) {
    db.transaction(() => {
      for (let k = 0; k < Math.min(batch, ENQUEUE - i); k++) insert.run({ ...row, name: `e${i + k}`, created_at: nowMs() });
    })();
  }
  const cpu = process.cpuUsage(cpu0);
  const figures = { perSec: (ENQUEUE / ms(t0)) * 1000, cpuUs: (cpu.user + cpu.system) / ENQUEUE };
  db.close();
  return figures;
}

/** Median ms of `fn` over 21 calls (after 3 not measured). */
async function medianMs(fn: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 3; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < 21; i++) {
    const t = process.hrtime.bigint();
    await fn();
    times.push(ms(t));
  }
  return percentile(times, 50);
}

/** The per-tick figures at queue size `n`. */
async function perTick(dir: string, n: number): Promise<string[]> {
  const claimNone = (store: SqliteStore) => async () => {
    const c = await store.claim({ workerId: 'w1', now: nowMs(), leaseMs: 60_000, concurrency: 1e9, agents: ['command'], labels: [] });
    if (c) throw new Error('claimed a task that should wait');
  };
  const queued = await queueOf(dir, n);
  const counts = await medianMs(() => queued.countByState());
  const dependents = await medianMs(() => queued.failBlockedDependents(nowMs()));
  await drop(queued);

  // History: n ended tasks whose result files are written, and one that is not.
  const history = await queueOf(dir, n, {});
  history.db.exec(`UPDATE tasks SET state = 'completed', finished_at = created_at, result_path = '/srv/bench/.agent-queue/done/x.md'`);
  await history.enqueue([{ ...spec('bad'), origin: ORIGIN, invalidReason: 'priority: bad' }], nowMs());
  const unreported = await medianMs(async () => {
    if ((await history.listUnreported(ORIGIN)).length !== 1) throw new Error('listUnreported: expected the one unreported task');
  });
  const historyCounts = await medianMs(() => history.countByState());
  await drop(history);

  const later = await queueOf(dir, n, { runAt: nowMs() + 86_400_000 });
  const delayed = await medianMs(claimNone(later));
  await drop(later);
  const pausedStore = await queueOf(dir, n);
  await pausedStore.pauseAgent({ agent: 'command', until: nowMs() + 86_400_000, reason: 'bench' });
  const paused = await medianMs(claimNone(pausedStore));
  await drop(pausedStore);
  const f = (x: number) => x.toFixed(3);
  return [String(n), f(counts), f(historyCounts), f(dependents), f(unreported), f(delayed), f(paused)];
}

runMain(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-bench-sqlite-'));
  const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  console.log(`agentq SQLite store vs raw better-sqlite3 (node ${process.version}, ${os.cpus().length} cpus, load avg ${load} at start)`);
  try {
    const like = await queueOf(dir, 1);
    const enqueueRows: string[][] = [];
    for (const batch of [1, 100]) {
      const store = await storeEnqueue(dir, batch);
      const raw = rawEnqueue(dir, like, batch);
      enqueueRows.push([
        String(batch),
        store.perSec.toFixed(0),
        raw.perSec.toFixed(0),
        (store.perSec / raw.perSec).toFixed(2),
        `${store.cpuUs.toFixed(0)} / ${raw.cpuUs.toFixed(0)}`,
        (raw.cpuUs / store.cpuUs).toFixed(2),
      ]);
    }
    console.log(`\nenqueue, ${ENQUEUE} rows, rows/s (ratio = agentq / raw); CPU µs = this process's CPU time per row (agentq / raw), CPU ratio = raw / agentq`);
    printTable(['per call', 'agentq', 'raw', 'ratio', 'CPU µs', 'CPU ratio'], enqueueRows);

    const pairRows: string[][] = [];
    for (const n of SIZES) {
      const store = await queueOf(dir, n + PAIRS + 100);
      const db = rawQueue(dir, store, n + 2 * PAIRS + 200);
      const a = await storePairs(store);
      const queued = (await store.countByState()).queued;
      if (queued !== n) throw new Error(`${queued} queued after the pairs, expected ${n}`);
      await drop(store);
      const r = await rawPairs(db);
      const ra = await rawPairs(db, true);
      await drop(db);
      pairRows.push([
        String(n),
        a.perSec.toFixed(0),
        r.perSec.toFixed(0),
        (a.perSec / r.perSec).toFixed(2),
        `${a.p50.toFixed(3)} / ${a.p99.toFixed(3)}`,
        `${r.p50.toFixed(3)} / ${r.p99.toFixed(3)}`,
        (r.p50 / a.p50).toFixed(2),
        ra.perSec.toFixed(0),
        (a.perSec / ra.perSec).toFixed(2),
        `${a.cpuUs.toFixed(0)} / ${r.cpuUs.toFixed(0)}`,
        (r.cpuUs / a.cpuUs).toFixed(2),
      ]);
    }
    console.log(`\nclaim + finish, one pair at a time (a turn of the event loop between pairs), ${PAIRS} pairs per size`);
    console.log('ratio = agentq / raw pairs/s; p50 ratio = raw p50 / agentq p50; raw+att = raw with an attempt row per pair (the store schema\'s least);');
    console.log('CPU µs = this process\'s CPU time per pair (agentq / raw), CPU ratio = raw / agentq: the figure other processes\' load moves least');
    printTable(['queued', 'agentq/s', 'raw/s', 'ratio', 'agentq p50 / p99 ms', 'raw p50 / p99 ms', 'p50 ratio', 'raw+att/s', 'ratio', 'CPU µs', 'CPU ratio'], pairRows);

    // Where the WAL checkpoints run: the store's timer (default) or SQLite's own, in the committing statement.
    const modes: string[][] = [];
    for (const [mode, options] of [['timer (default)', {}], ["SQLite's own (checkpointIntervalMs 0)", { checkpointIntervalMs: 0 }]] as const) {
      const store = await queueOf(dir, 1000 + PAIRS + 100, {}, options);
      const a = await storePairs(store);
      await drop(store);
      modes.push([mode, a.perSec.toFixed(0), `${a.p50.toFixed(3)} / ${a.p99.toFixed(3)}`]);
    }
    console.log('\nclaim + finish at 1000 queued, by where the WAL checkpoints run');
    printTable(['checkpoints', 'agentq/s', 'p50 / p99 ms'], modes);

    const tickRows: string[][] = [];
    for (const n of SIZES) tickRows.push(await perTick(dir, n));
    console.log('\nper tick, median ms: counts at n queued and beside n ended; failBlockedDependents at n queued; listUnreported beside n reported; a claim finding nothing at n queued');
    printTable(['n', 'countByState', 'counts/history', 'failBlockedDeps', 'listUnreported', 'claim: run_at', 'claim: paused'], tickRows);
    await like.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return 0;
});
