/**
 * The reporter's query on SQLite (`listUnreported`) reads the partial index of unreported
 * terminal tasks only, never the history: its plan searches `tasks_running` (migration 023: the
 * running tasks and the unreported terminal ones), and the index holds no reported, queued or
 * held task. (PostgreSQL: "PostgreSQL store specifics" in
 * test/contract/postgres-store.test.ts.) A store from before migration 012 keeps its tasks,
 * without an origin: any checkout reports them.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteStore, UNREPORTED_SQL } from '../../src/store/sqlite/sqlite-store.ts';
import { newTask } from '../fixtures/specs.ts';

it('listUnreported searches the partial index tasks_running, which holds only running and unreported terminal tasks', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-unreported-'));
  const store = new SqliteStore(path.join(dir, 'agentq.db'));
  const origin = { host: 'h', root: '/r' };
  const plan = (sql: string, ...params: string[]) => (store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map((r) => r.detail);
  assert.deepEqual(
    plan(UNREPORTED_SQL.ofOrigin, origin.host, origin.root).filter((d) => d.startsWith('SEARCH') || d.startsWith('SCAN')),
    ['SEARCH tasks USING INDEX tasks_running (state=? AND origin_host=? AND origin_root=?)', 'SEARCH tasks USING INDEX tasks_running (state=? AND origin_host=?)'],
  );
  assert.deepEqual(plan(UNREPORTED_SQL.all).filter((d) => d.startsWith('SEARCH') || d.startsWith('SCAN')), ['SEARCH tasks USING INDEX tasks_running (state=?)']);

  // 50 reported, 1 unreported, 3 not ended: the index holds the one.
  const bad = (name: string) => ({ ...newTask(name), origin, invalidReason: 'x: bad' });
  const reported = await store.enqueue(Array.from({ length: 50 }, (_, i) => bad(`done-${i}`)), 1);
  for (const t of reported) await store.setResultPath(t.id, `/r/.agent-queue/failed/${t.name}.md`);
  const [pending] = await store.enqueue([bad('pending')], 1);
  await store.enqueue([newTask('q1'), newTask('q2'), { ...newTask('q3'), origin }], 1);
  const indexed = store.db.prepare(UNREPORTED_SQL.all).all() as Array<{ id: number }>;
  assert.deepEqual(indexed.map((r) => r.id), [pending!.id], 'read from the index: the one unreported task');
  assert.deepEqual((await store.listUnreported(origin)).map((t) => t.name), ['pending']);
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

it('a store migrated from schema 11 keeps its tasks without an origin, listed for every checkout', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-unreported-'));
  const file = path.join(dir, 'agentq.db');
  const migrations = new URL('../../src/store/sqlite/migrations/', import.meta.url);
  const old = new Database(file);
  for (const name of fs.readdirSync(migrations).filter((f) => /^\d+_.*\.sql$/.test(f) && Number.parseInt(f, 10) <= 11).sort()) old.exec(fs.readFileSync(new URL(name, migrations), 'utf8'));
  old.pragma('user_version = 11');
  old.prepare(
    `INSERT INTO tasks (name, title, priority, priority_rank, agent, timeout_ms, prompt, source, state, run_after, created_at, finished_at, failed_reason)
     VALUES ('old', 'old', 'default', 2, 'command', 1000, 'x', 'inbox', 'failed', 1, 1, 2, 'it failed')`,
  ).run();
  old.close();
  const store = new SqliteStore(file);
  assert.equal((await store.getTask('old'))?.origin, null);
  assert.deepEqual((await store.listUnreported({ host: 'any', root: '/where' })).map((t) => t.name), ['old']);
  assert.deepEqual((await store.listUnreported()).map((t) => t.name), ['old']);
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});
