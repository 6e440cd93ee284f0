/**
 * The dispatcher's services on cadences of their own, with the real `bin/agentq run`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { AGENTQ, agentq, agentqJson, dropTask, listDir, makeProject, workersRegistered } from '../fixtures/project.ts';
import { waitFor } from '../fixtures/procs.ts';

describe('dispatcher services', () => {
  it('the lease keeper renews a running attempt’s lease however long poll_interval is', async () => {
    // The default inbox_settle: with 1 ms, a file the test has created but not yet written
    // (a loaded machine) counted as settled and was taken in empty, as an invalid task.
    const paths = makeProject({ poll_interval: '60s', lease: '1500ms' });
    const child = spawn(AGENTQ, ['run', '--project', paths.root], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      await waitFor(() => workersRegistered(paths), 15_000, 'the dispatcher to register');
      await new Promise((r) => setTimeout(r, 500)); // its inbox watcher is set up next
      dropTask(paths, 'slow', { agent: 'command', command: 'sleep 7; echo ok' }, 'x');
      await waitFor(() => /started +#1 slow/.test(stderr), 15_000, 'the attempt to start');
      await new Promise((r) => setTimeout(r, 3_000)); // two lease lengths into the attempt
      const db = new Database(path.join(paths.dir, 'agentq.db'), { readonly: true });
      const row = db.prepare('SELECT state, lease_expires_at AS lease FROM tasks WHERE id = 1').get() as { state: string; lease: number };
      db.close();
      assert.equal(row.state, 'running');
      assert.ok(row.lease > Date.now(), `the lease ran out ${Date.now() - row.lease} ms ago: no heartbeat between polls`);
      // `agentq status` lists the dispatcher with its host and the task it runs.
      const status = await agentqJson(['status', '--json', '--project', paths.root]);
      assert.deepEqual(
        status.workers.map((w: { host: string; pid: number; running: number }) => [w.host, w.pid, w.running]),
        [[os.hostname(), child.pid, 1]],
      );
      assert.match((await agentq(['status', '--project', paths.root])).stdout, /dispatchers:\n.*HOST +PID +RUNNING +LABELS +LAST HEARTBEAT\n.* 1 +- +\d{4}-/);
      await waitFor(() => listDir(paths.done).includes('slow.md'), 15_000, 'the task to complete');
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
    }
  });
});
