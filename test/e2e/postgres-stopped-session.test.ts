/**
 * A dispatcher stopped in the middle of a transaction (SIGSTOP, a suspended laptop) must not
 * hold the others' claims: its session, idle in a transaction, is ended by the server after
 * `IDLE_IN_TRANSACTION_TIMEOUT_MS`, which frees its locks. The stopped process here holds the
 * schema's claim lock (the transaction advisory lock every claim takes first) through the
 * store's own pool, so the pool's session settings are what is tested.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, it } from 'node:test';
import { IDLE_IN_TRANSACTION_TIMEOUT_MS, PostgresStore } from '../../src/store/postgres/postgres-store.ts';
import { freshDatabase, startPostgres, type PostgresCluster } from '../fixtures/postgres.ts';
import { claimOpts, newTask } from '../contract/store/shared.ts';

let cluster: PostgresCluster | undefined;

before(async () => {
  cluster = await startPostgres();
});

after(async () => {
  await cluster?.stop();
});

/** Opens the store, takes the claim lock inside a transaction, says so, and stops itself. */
const HOLDER = `
const { PostgresStore } = await import(${JSON.stringify(new URL('../../src/store/postgres/postgres-store.ts', import.meta.url).href)});
const store = await PostgresStore.open(process.argv[1]);
const c = await store.pool.connect();
c.on('error', () => {});
await c.query('BEGIN');
await c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', ['agentq:' + store.schema + ':claim']);
process.stdout.write('locked\\n');
process.kill(process.pid, 'SIGSTOP');
`;

it('a process stopped inside a transaction that holds the claim lock does not stop the claims of others', { timeout: 60_000 }, async () => {
  const url = `${await freshDatabase(cluster!.url)}?schema=stopped`;
  const store = await PostgresStore.open(url);
  await store.enqueue([newTask('waits-for-the-lock')], Date.now());
  const holder = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', HOLDER, url], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => holder.once('exit', resolve));
  try {
    await new Promise<void>((resolve, reject) => {
      holder.stdout!.on('data', (d: Buffer) => d.toString().includes('locked') && resolve());
      holder.once('exit', (code) => reject(new Error(`the holder exited (${code}) before taking the lock`)));
    });
    const started = Date.now();
    // Without the server-side timeout this waits until the holder resumes: here, never (the test times out).
    const claim = await store.claim(claimOpts(Date.now()));
    const waited = Date.now() - started;
    console.log(`claim waited ${waited} ms for the stopped session (timeout ${IDLE_IN_TRANSACTION_TIMEOUT_MS} ms)`);
    assert.equal(claim?.task.name, 'waits-for-the-lock');
  } finally {
    holder.kill('SIGKILL');
    await exited;
    await store.close();
  }
});
