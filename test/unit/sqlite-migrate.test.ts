/**
 * SQLite migrations: several processes opening a new store at the same moment (e.g. `agentq
 * run` and `agentq status` on a fresh project) apply each migration once and all succeed; a
 * store written by a newer agentq is refused and left as it was; migration 22 rebuilds a store
 * of schema 15 in place, every id and row kept.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import Database from 'better-sqlite3';
import { ConfigError, StoreTooNewError } from '../../src/core/errors.ts';
import { emptyStats } from '../../src/agents/runner.ts';
import { TASK_STATES } from '../../src/core/types.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { newTask } from '../fixtures/specs.ts';

/** The newest schema version this checkout knows: the highest migration number. */
const NEWEST = Math.max(...fs.readdirSync(new URL('../../src/store/sqlite/migrations/', import.meta.url)).map((f) => Number.parseInt(f, 10)));

/** Loads the store module, waits at the barrier (`DB.go`), then opens the store. */
const OPEN = `
import fs from 'node:fs';
const { SqliteStore } = await import(process.env.STORE_MODULE);
const file = process.argv[1];
while (!fs.existsSync(file + '.go')) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
new SqliteStore(file).close();
`;

it('processes opening a new store together all succeed, each migration applied once', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-migrate-'));
  const file = path.join(dir, 'agentq.db');
  const module = new URL('../../src/store/sqlite/sqlite-store.ts', import.meta.url).href;
  const runs = Array.from({ length: 8 }, () => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', OPEN, file], { env: { ...process.env, STORE_MODULE: module }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    return new Promise<{ code: number | null; stderr: string }>((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
  });
  // Let every process load and wait at the barrier, then release them together.
  await new Promise((r) => setTimeout(r, 2000));
  fs.writeFileSync(`${file}.go`, '');
  for (const r of await Promise.all(runs)) assert.equal(r.code, 0, r.stderr);
  const store = new SqliteStore(file);
  const version = Number(store.db.pragma('user_version', { simple: true }));
  await store.close();
  assert.equal(version, NEWEST);
  fs.rmSync(dir, { recursive: true, force: true });
});

it('refuses a store whose schema is newer than its migrations, naming both versions, and leaves the file unchanged', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-migrate-'));
  const file = path.join(dir, 'agentq.db');
  const store = new SqliteStore(file);
  await store.close();
  const raw = new Database(file);
  raw.pragma(`user_version = ${NEWEST + 2}`);
  raw.close();
  const before = fs.readFileSync(file);
  const files = fs.readdirSync(dir).sort();

  assert.throws(
    () => new SqliteStore(file),
    (err: unknown) => {
      assert.ok(err instanceof StoreTooNewError);
      assert.ok(err instanceof ConfigError, 'a ConfigError: the CLI prints one line and exits 2');
      assert.equal(err.code, 'store_too_new');
      assert.equal(err.message, `store ${file}: schema ${NEWEST + 2} is newer than this agentq (${NEWEST}); upgrade agentq`);
      assert.equal(err.storeVersion, NEWEST + 2);
      assert.equal(err.knownVersion, NEWEST);
      return true;
    },
  );
  assert.ok(fs.readFileSync(file).equals(before), 'the file is left unchanged');
  assert.deepEqual(fs.readdirSync(dir).sort(), files, 'no file left beside it');
  const check = new Database(file, { readonly: true });
  assert.equal(Number(check.pragma('user_version', { simple: true })), NEWEST + 2);
  check.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

it('migration 22 rebuilds a store of schema 21 in place: ids, rows (every column), attempts, the rows that refer to them and indexes kept, no AUTOINCREMENT, the next id past every id ever given, claimability and counts from the data', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-migrate-'));
  const file = path.join(dir, 'agentq.db');
  const migrations = new URL('../../src/store/sqlite/migrations/', import.meta.url);
  const old = new Database(file);
  old.pragma('journal_mode = WAL');
  for (const name of fs.readdirSync(migrations).filter((f) => /^\d+_.*\.sql$/.test(f) && Number.parseInt(f, 10) <= 21).sort()) old.exec(fs.readFileSync(new URL(name, migrations), 'utf8'));
  old.pragma('user_version = 21');
  const T = 1_700_000_000_000;
  const insert = old.prepare(
    `INSERT INTO tasks (name, title, priority, priority_rank, agent, timeout_ms, prompt, source, state, run_after, created_at, concurrency_group, result_path)
     VALUES (?, ?, 'default', 2, 'command', 60000, 'p', 'inbox', ?, ?, ?, ?, ?)`,
  );
  const add = (name: string, state: string, runAfter = T, group: string | null = null, resultPath: string | null = null) => Number(insert.run(name, name, state, runAfter, T, group, resultPath).lastInsertRowid);
  const done = add('done', 'completed', T, null, '/r/done.md');
  const broke = add('broke', 'failed', T, null, '/r/broke.md');
  const open = add('open', 'queued');
  const afterDone = add('after-done', 'queued');
  const afterBroke = add('after-broke', 'queued');
  const afterOpen = add('after-open', 'queued', T, 'api');
  const later = add('later', 'queued', Date.now() + 3_600_000);
  const gone = add('gone', 'queued');
  const dep = old.prepare('INSERT INTO task_deps (task_id, depends_on_id, position) VALUES (?, ?, 0)');
  dep.run(afterDone, done);
  dep.run(afterBroke, broke);
  dep.run(afterOpen, open);
  old.prepare("INSERT INTO attempts (id, task_id, number, worker_id, agent, outcome, started_at, finished_at, host, stdout_tail, stdout_bytes, stderr_tail, stderr_bytes) VALUES ('a-1', ?, 1, 'w', 'command', 'completed', ?, ?, 'box', 'out', 3, '', 0)").run(done, T, T + 5);
  old.prepare("INSERT INTO attempts (id, task_id, number, worker_id, agent, outcome, started_at, finished_at) VALUES ('b-1', ?, 1, 'w', 'command', 'failed', ?, ?)").run(broke, T, T + 5);
  old.prepare("INSERT INTO callbacks (task_id, url) VALUES (?, 'http://x/')").run(done);
  // Columns and tables of migrations 16–21, referring to tasks and attempts.
  old.prepare("UPDATE tasks SET remote = 'peer', workspace_setup = '[\"make\"]', taken_over_at = ?, verify = '[\"npm test\"]', verify_timeout_ms = 5000, verify_retries = 2, stall_timeout_ms = 9000, last_activity_at = ?, remote_metadata = '{\"k\":1}' WHERE id = ?").run(T + 1, T + 2, done);
  old.prepare("INSERT INTO verifications (attempt_id, number, task_id, command, exit_code, duration_ms, output_tail, started_at) VALUES ('a-1', 1, ?, 'npm test', 0, 7, 'ok', ?)").run(done, T + 3);
  old.prepare("INSERT INTO delegations (task_id, attempt_id, remote, url, message_id, created_at, progress_at, updated_at, push_token_sha256) VALUES (?, 'a-1', 'peer', 'http://peer/', 'm', ?, ?, ?, 'sha')").run(done, T, T, T);
  old.prepare("INSERT INTO notifications (key, target, event, task_id, payload, created_at) VALUES ('k', 't', 'done', ?, '{}', ?)").run(done, T);
  old.prepare("INSERT INTO answer_tokens (token_sha256, task_id, claims, created_at, expires_at) VALUES ('tok', ?, 1, ?, ?)").run(open, T, T + 1000);
  old.prepare("INSERT INTO detector_keys (detector, key, task_id, created_at) VALUES ('d', 'k', ?, ?)").run(broke, T);
  const columnsOf = (db: Database.Database, table: string) => (db.pragma(`table_xinfo(${table})`) as Array<{ name: string; hidden: number }>).filter((c) => c.hidden === 0).map((c) => c.name);
  const before = { tasks: columnsOf(old, 'tasks'), attempts: columnsOf(old, 'attempts'), done: old.prepare('SELECT * FROM tasks WHERE id = ?').get(done) };
  old.prepare('DELETE FROM tasks WHERE id = ?').run(gone); // deleted by hand: its id must never come back
  old.close();

  const store = new SqliteStore(file);
  const db = store.db;
  assert.equal(Number(db.pragma('user_version', { simple: true })), NEWEST);
  const tasksSql = (db.prepare("SELECT sql FROM sqlite_schema WHERE name = 'tasks'").get() as { sql: string }).sql;
  assert.doesNotMatch(tasksSql, /AUTOINCREMENT/i);
  assert.deepEqual(db.pragma('foreign_key_check'), []);
  // deps_open and delayed: migration 22; claim_host: migration 25.
  assert.deepEqual(columnsOf(db, 'tasks'), [...before.tasks, 'deps_open', 'delayed', 'claim_host'], 'every column of schema 21 kept');
  assert.deepEqual(columnsOf(db, 'attempts'), before.attempts);
  const { deps_open: _o, delayed: _d, lane_group: _l, claim_host: _h, ...doneAfter } = db.prepare('SELECT * FROM tasks WHERE id = ?').get(done) as Record<string, unknown>;
  assert.deepEqual(doneAfter, before.done, 'a row keeps every value');
  assert.deepEqual((db.pragma('foreign_key_list(verifications)') as Array<{ table: string }>).map((f) => f.table).sort(), ['attempts', 'tasks']);
  for (const [table, n] of [['verifications', 1], ['delegations', 1], ['notifications', 1], ['answer_tokens', 1], ['detector_keys', 1]] as const) {
    assert.equal(Number((db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n), n, table);
  }
  assert.deepEqual((await store.listVerifications(done)).map((v) => [v.command, v.exitCode]), [['npm test', 0]]);
  assert.equal(Number(db.pragma('foreign_keys', { simple: true })), 1, 'foreign keys on again');
  const indexes = (db.prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'tasks' AND sql IS NOT NULL ORDER BY name").all() as Array<{ name: string }>).map((r) => r.name);
  assert.deepEqual(indexes, ['tasks_dedup', 'tasks_delayed', 'tasks_held', 'tasks_name', 'tasks_parent', 'tasks_queued', 'tasks_running']);
  assert.deepEqual((await store.listTasks()).map((t) => [t.id, t.name, t.state]), [
    [done, 'done', 'completed'],
    [broke, 'broke', 'failed'],
    [open, 'open', 'queued'],
    [afterDone, 'after-done', 'queued'],
    [afterBroke, 'after-broke', 'queued'],
    [afterOpen, 'after-open', 'queued'],
    [later, 'later', 'queued'],
  ]);
  assert.deepEqual((await store.getTask(afterOpen))?.dependsOnIds, [open]);
  const counts = await store.countByState();
  assert.deepEqual([counts.completed, counts.failed, counts.queued], [1, 1, 5]);
  assert.deepEqual((await store.listAttempts(done)).map((a) => [a.id, a.number, a.host, a.outcome]), [['a-1', 1, 'box', 'completed']]);
  assert.deepEqual(await store.attemptOutput('a-1'), { stdout: { text: 'out', bytes: 3 }, stderr: { text: '', bytes: 0 } });
  assert.equal((await store.getCallback(done))?.url, 'http://x/');

  // The dependent of the failed task fails; the one of the open task waits for it; the delayed one waits for its time.
  assert.deepEqual((await store.failBlockedDependents(T + 10)).map((t) => t.name), ['after-broke']);
  const claimed: string[] = [];
  for (let c = await store.claim({ workerId: 'w', now: T + 10, leaseMs: 60_000, concurrency: 10, agents: ['command'], labels: [] }); c; c = await store.claim({ workerId: 'w', now: T + 10, leaseMs: 60_000, concurrency: 10, agents: ['command'], labels: [] })) {
    claimed.push(c.task.name);
    if (c.task.name === 'open') await store.finish(c.attempt.id, { state: 'completed', attemptOutcome: 'completed', stats: emptyStats(), now: T + 11 });
  }
  assert.deepEqual(claimed, ['open', 'after-done', 'after-open'], 'after-open once open completed; later not before its run_at');

  const [next] = await store.enqueue([newTask('next')], T + 20);
  assert.equal(next!.id, gone + 1, 'the id after every id ever given');
  const [after] = await store.enqueue([newTask('after')], T + 20);
  assert.equal(after!.id, gone + 2);
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

it('task_counts holds a row for every state (queued and running as one), which its triggers add to and subtract from by key (migration 25)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-migrate-'));
  const store = new SqliteStore(path.join(dir, 'agentq.db'));
  const rows = (store.db.prepare('SELECT state FROM task_counts ORDER BY state').all() as Array<{ state: string }>).map((r) => r.state);
  const groups = [...new Set(TASK_STATES.map((s) => (s === 'queued' || s === 'running' ? 'queued+running' : s)))].sort();
  assert.deepEqual(rows, groups, 'a state without its row would never be counted: add it in the migration that brings the state');
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});
