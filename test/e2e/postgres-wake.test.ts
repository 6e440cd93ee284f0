/**
 * `LISTEN`/`NOTIFY` end to end: a real `bin/agentq run` on a PostgreSQL store with a
 * `poll_interval` of 30 s starts a task another process enqueues at once, not at its next poll.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { LISTEN_APPLICATION_NAME, PostgresStore } from '../../src/store/postgres/postgres-store.ts';
import { freshDatabase, startPostgres, type PostgresCluster } from '../fixtures/postgres.ts';
import { waitFor } from '../fixtures/procs.ts';
import { AGENTQ, makeProject } from '../fixtures/project.ts';
import { newTask } from '../fixtures/specs.ts';

let cluster: PostgresCluster | undefined;

before(async () => {
  cluster = await startPostgres();
});

after(async () => {
  await cluster?.stop();
});

describe('dispatchers on PostgreSQL', () => {
  it('an idle `agentq run` starts a task enqueued by another process at once, though its poll_interval is 30 s', async (t) => {
    const url = await freshDatabase(cluster!.url);
    const paths = makeProject({ poll_interval: '30s' });
    const store = await PostgresStore.open(url);
    const admin = new pg.Client({ connectionString: url });
    admin.on('error', () => {});
    await admin.connect();
    // A first task, taken by the first tick; once it completed the loop is in its 30 s wait.
    const [first] = await store.enqueue([newTask('warm-up', { command: 'echo warm' })], Date.now());
    const child = spawn(AGENTQ, ['run', '--project', paths.root, '--store', url], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      const listening = async () =>
        (await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()', [LISTEN_APPLICATION_NAME])).rows[0].n === 1;
      await waitFor(async () => (await store.getTask(first!.id))?.state === 'completed', 30_000, `the warm-up task to complete (stderr: ${stderr})`);
      await waitFor(listening, 5_000, 'the dispatcher to LISTEN');
      await new Promise((r) => setTimeout(r, 1_000));

      const enqueuedAt = Date.now();
      const [task] = await store.enqueue([newTask('woken', { command: 'echo woken' })], enqueuedAt);
      await waitFor(async () => (await store.getTask(task!.id))?.startedAt != null, 5_000, `the task to start before the 30 s poll (stderr: ${stderr})`);
      const startedAt = (await store.getTask(task!.id))!.startedAt!;
      const latency = startedAt - enqueuedAt;
      t.diagnostic(`enqueue (another process) → started by an idle dispatcher polling every 30 s: ${latency} ms`);
      console.log(`postgres wake latency: ${latency} ms`);
      assert.ok(latency < 5_000, `started after ${latency} ms`);

      // The LISTEN connection cut while an agent runs: the agent is not affected, the dispatcher listens again.
      const [running] = await store.enqueue([newTask('running', { command: 'sleep 2; echo survived' })], Date.now());
      await waitFor(async () => (await store.getTask(running!.id))?.state === 'running', 5_000, 'the third task to start');
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()', [LISTEN_APPLICATION_NAME]);
      await waitFor(async () => (await store.getTask(running!.id))?.state === 'completed', 10_000, `the running task to complete (stderr: ${stderr})`);
      assert.equal((await store.getTask(running!.id))!.result, 'survived');
      await waitFor(listening, 5_000, 'the dispatcher to LISTEN again');
      await new Promise((r) => setTimeout(r, 1_000));
      const [again] = await store.enqueue([newTask('again', { command: 'echo again' })], Date.now());
      await waitFor(async () => (await store.getTask(again!.id))?.startedAt != null, 5_000, 'a task enqueued after the reconnect to start');
      assert.equal(child.exitCode, null, 'the dispatcher still runs');
    } finally {
      child.kill('SIGTERM');
      await exited;
      await admin.end();
      await store.close();
    }
  });
});
