/**
 * The reporter's query on SQLite (`listUnreported`) reads the partial index of unreported
 * terminal tasks only, never the history: its plan searches `tasks_unreported`, and the index
 * holds no reported or unfinished task. (PostgreSQL: "PostgreSQL store specifics" in
 * test/contract/postgres-store.test.ts.)
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import { SqliteStore, UNREPORTED_SQL } from '../../src/store/sqlite/sqlite-store.ts';
import { newTask } from '../fixtures/specs.ts';

it('listUnreported searches the partial index tasks_unreported, which holds only unreported terminal tasks', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-unreported-'));
  const store = new SqliteStore(path.join(dir, 'agentq.db'));
  const origin = { host: 'h', root: '/r' };
  const plan = (sql: string, ...params: string[]) => (store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map((r) => r.detail);
  assert.deepEqual(
    plan(UNREPORTED_SQL.ofOrigin, origin.host, origin.root).filter((d) => d.startsWith('SEARCH') || d.startsWith('SCAN')),
    ['SEARCH tasks USING INDEX tasks_unreported (origin_host=? AND origin_root=?)', 'SEARCH tasks USING INDEX tasks_unreported (origin_host=?)'],
  );
  assert.deepEqual(plan(UNREPORTED_SQL.all).filter((d) => d.startsWith('SEARCH') || d.startsWith('SCAN')), ['SCAN tasks USING INDEX tasks_unreported']);

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
