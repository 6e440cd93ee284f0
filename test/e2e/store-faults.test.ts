/**
 * Store faults with real processes: another process holding the SQLite write lock for longer
 * than the busy timeout, and a full disk (a small tmpfs, as root). The dispatchers must wait
 * and retry, say so, record the outcomes of agents that finished meanwhile, and run nothing twice.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import Database from 'better-sqlite3';
import YAML from 'yaml';
import { projectPaths, type ProjectPaths } from '../../src/config/config.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { AGENTQ, agentq, dropTask, listDir, makeProject, readResult } from '../fixtures/project.ts';
import { killWithEnv, pidsWithEnv, waitFor } from '../fixtures/procs.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A running `agentq run` with its stderr collected. */
function startRun(paths: ProjectPaths, env: Record<string, string>): { child: ChildProcess; stderr: () => string; exited: Promise<number | null> } {
  const child = spawn(AGENTQ, ['run', '--project', paths.root], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stderr: () => err, exited };
}

/** Lines of the file every agent appends its task name to (one line per run of a task). */
const runs = (file: string): string[] => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean) : []);

/** Every task completed by exactly one attempt, with exactly one result file, and each agent ran once. */
async function assertEachRanOnce(paths: ProjectPaths, names: string[], ranLog: string, storeFile = path.join(paths.dir, 'agentq.db')): Promise<void> {
  assert.deepEqual(runs(ranLog).sort(), names, 'each task ran exactly once');
  assert.deepEqual(listDir(paths.done), names.map((n) => `${n}.md`));
  assert.deepEqual(listDir(paths.failed), []);
  for (const n of names) assert.equal(readResult(path.join(paths.done, `${n}.md`)).body, `did ${n}`);
  const store = new SqliteStore(storeFile);
  try {
    for (const t of await store.listTasks()) {
      assert.equal(t.state, 'completed', `#${t.id} ${t.name}`);
      assert.equal(t.claims, 1, `#${t.id} ${t.name} was claimed once`);
      const attempts = await store.listAttempts(t.id);
      assert.deepEqual(attempts.map((a) => a.outcome), ['completed'], `#${t.id} ${t.name}: one attempt`);
    }
  } finally {
    await store.close();
  }
}

describe('store faults', () => {
  it('a write lock held for 12 s by another process: dispatchers wait, report it, record finished agents, run nothing twice', async () => {
    const marker = crypto.randomUUID();
    // A short lease, shorter than the lock: the second dispatcher must not take over the
    // first one's tasks just because no heartbeat got through while the store was locked.
    const paths = makeProject({ concurrency: 2, poll_interval: '100ms', lease: '4s', kill_grace: '500ms' });
    const ranLog = path.join(paths.root, 'ran.log');
    const names = ['t1', 't2', 't3', 't4', 't5', 't6'];
    for (const n of names) {
      dropTask(paths, n, { agent: 'command', command: `sleep 1; echo "$AGENTQ_TASK_NAME" >> ${ranLog}; echo "did $AGENTQ_TASK_NAME"` }, n);
    }
    const env = { AGENTQ_TEST_MARK: marker };
    const a = startRun(paths, env);
    const b = startRun(paths, env);
    let holder: Database.Database | null = null;
    try {
      await waitFor(() => (a.stderr() + b.stderr()).split('started ').length - 1 >= 4, 20_000, 'four attempts started');
      holder = new Database(path.join(paths.dir, 'agentq.db'));
      holder.exec('BEGIN IMMEDIATE');
      const lockedAt = Date.now();
      await waitFor(() => runs(ranLog).length >= 4, 10_000, 'the running agents finished while the store is locked');

      // `agentq status` while the store is locked: reads still work (WAL), it says the store is busy.
      const status = await agentq(['status', '--project', paths.root]);
      assert.equal(status.code, 0, status.stderr);
      assert.doesNotMatch(status.stderr, /\n\s+at /, 'no stack trace');
      assert.match(status.stdout, /^store: busy \(database is locked\)/);

      await sleep(Math.max(0, lockedAt + 12_000 - Date.now()));
      assert.equal(a.child.exitCode, null, `dispatcher a exited during the lock:\n${a.stderr()}`);
      assert.equal(b.child.exitCode, null, `dispatcher b exited during the lock:\n${b.stderr()}`);
      holder.exec('ROLLBACK');
      holder.close();
      holder = null;

      await waitFor(() => listDir(paths.done).length === names.length, 30_000, 'every task done');
      for (const d of [a, b]) {
        d.child.kill('SIGTERM');
        assert.equal(await d.exited, 0, d.stderr());
      }
      const both = a.stderr() + b.stderr();
      assert.match(both, /store\s+unavailable \(database is locked\); retrying in [\d.]+m?s/);
      assert.match(both, /store\s+back after [\d.]+s/);
      for (const d of [a, b]) {
        assert.ok(d.stderr().split(/store\s+unavailable/).length - 1 <= 1, `one report per outage:\n${d.stderr()}`);
        assert.doesNotMatch(d.stderr(), /connection is not open|recovered #/, d.stderr());
      }
      await assertEachRanOnce(paths, names, ranLog);
    } finally {
      holder?.close();
      a.child.kill('SIGKILL');
      b.child.kill('SIGKILL');
      killWithEnv('AGENTQ_TEST_MARK', marker);
    }
  });

  /**
   * A project on a small tmpfs (8 MiB), filled up while two of four tasks run and freed
   * 3 s after they ended; the store on it too, or (`storeOutside`) on a disk with room, so
   * that only the result files cannot be written. Returns the dispatcher's output.
   */
  async function fullDisk(t: TestContext, storeOutside: boolean): Promise<string | null> {
    if (process.getuid?.() !== 0) {
      t.skip('needs root to mount a tmpfs');
      return null;
    }
    const marker = crypto.randomUUID();
    const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-full-'));
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-full-log-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      // Root in a container without CAP_SYS_ADMIN: no mounts.
      t.skip(`cannot mount a tmpfs here: ${String((err as { stderr?: unknown }).stderr ?? err).trim()}`);
      return null;
    }
    let run: ReturnType<typeof startRun> | null = null;
    try {
      const paths = projectPaths(mnt);
      const storeFile = storeOutside ? path.join(outside, 'agentq.db') : path.join(paths.dir, 'agentq.db');
      fs.mkdirSync(paths.inbox, { recursive: true });
      const config = { default_retries: 0, concurrency: 2, poll_interval: '100ms', kill_grace: '500ms', store: `sqlite:${storeFile}` };
      fs.writeFileSync(paths.config, YAML.stringify(config));
      // Outside the full disk: the record of which agents ran.
      const ranLog = path.join(outside, 'ran.log');
      const names = ['t1', 't2', 't3', 't4'];
      for (const n of names) {
        dropTask(paths, n, { agent: 'command', command: `sleep 1; echo "$AGENTQ_TASK_NAME" >> ${ranLog}; echo "did $AGENTQ_TASK_NAME"` }, n);
      }
      run = startRun(paths, { AGENTQ_TEST_MARK: marker });
      const r = run;
      await waitFor(() => r.stderr().split('started ').length - 1 >= 2, 20_000, 'two attempts started');
      const filler = path.join(mnt, 'filler');
      const fd = fs.openSync(filler, 'w');
      try {
        const chunk = Buffer.alloc(64 * 1024, 1);
        for (;;) fs.writeSync(fd, chunk);
      } catch (err) {
        assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
      } finally {
        fs.closeSync(fd);
      }
      await waitFor(() => runs(ranLog).length >= 2, 10_000, 'the running agents finished on the full disk');
      await sleep(3_000);
      assert.equal(r.child.exitCode, null, `the dispatcher exited on the full disk:\n${r.stderr()}`);
      assert.deepEqual(listDir(paths.done), [], 'no result file fits on the full disk');
      fs.rmSync(filler);

      await waitFor(() => listDir(paths.done).length === names.length, 30_000, 'every task done');
      r.child.kill('SIGTERM');
      assert.equal(await r.exited, 0, r.stderr());
      assert.doesNotMatch(r.stderr(), /connection is not open|recovered #/, r.stderr());
      const leftovers = [paths.done, paths.failed].flatMap((d) => (fs.existsSync(d) ? fs.readdirSync(d) : [])).filter((f) => f.endsWith('.tmp'));
      assert.deepEqual(leftovers, [], 'no temp file of a failed result write is left');
      await assertEachRanOnce(paths, names, ranLog, storeFile);
      return r.stderr();
    } finally {
      run?.child.kill('SIGKILL');
      if (run) await run.exited;
      killWithEnv('AGENTQ_TEST_MARK', marker);
      execFileSync('umount', ['-l', mnt]);
      fs.rmSync(mnt, { recursive: true, force: true });
      fs.rmSync(outside, { recursive: true, force: true });
    }
  }

  it('a full disk (tmpfs) under the project and its store: the dispatcher waits, reports it, loses no outcome or result file, runs nothing twice', async (t) => {
    const output = await fullDisk(t, false);
    if (output === null) return;
    // Whether the store itself hits the full disk varies: a WAL file checkpointed back to its
    // start is written again in place, so commits may still fit while result files do not.
    // Either way the outage is reported: the store's (once, and its end), or the files'.
    if (/store\s+unavailable/.test(output)) {
      assert.match(output, /store\s+unavailable \((database or disk is full|disk I\/O error)\)/);
      assert.match(output, /store\s+back after [\d.]+m?s/);
      assert.ok(output.split(/store\s+unavailable/).length - 1 <= 2, `about one report per outage:\n${output}`);
    } else {
      assert.match(output, /error\s+ENOSPC/, `the full disk reported:\n${output}`);
    }
  });

  it('a full disk under done/ only (the store elsewhere): result files are written once there is room, each failure reported once', async (t) => {
    const output = await fullDisk(t, true);
    if (output === null) return;
    assert.doesNotMatch(output, /store\s+unavailable/);
    const reported = output.split('\n').filter((l) => /error\s+ENOSPC/.test(l));
    assert.ok(reported.length >= 1 && reported.length <= 4, `each task's result-file error reported once, not on every tick:\n${output}`);
  });

  it('a dispatch loop that dies of a store error that is not transient stops and requeues its running attempts before closing the store', async () => {
    const marker = crypto.randomUUID();
    const paths = makeProject({ concurrency: 2, poll_interval: '100ms', kill_grace: '500ms' });
    for (const n of ['long1', 'long2']) dropTask(paths, n, { agent: 'command', command: 'sleep 30; echo late' }, n);
    const r = startRun(paths, { AGENTQ_TEST_MARK: marker });
    const db = new Database(path.join(paths.dir, 'agentq.db'));
    try {
      await waitFor(() => r.stderr().split('started ').length - 1 >= 2, 20_000, 'two attempts started');
      // Breaks the next tick for good (its worker heartbeat): SQLITE_ERROR "no such table".
      db.exec('DROP TABLE workers');
      await waitFor(() => r.child.exitCode !== null, 15_000, 'the dispatcher to exit');
      assert.equal(await r.exited, 1, r.stderr());
      assert.match(r.stderr(), /agentq: no such table: workers/);
      assert.doesNotMatch(r.stderr(), /connection is not open/);
      const tasks = db.prepare('SELECT name, state, attempts FROM tasks ORDER BY id').all();
      assert.deepEqual(tasks, [
        { name: 'long1', state: 'queued', attempts: 0 },
        { name: 'long2', state: 'queued', attempts: 0 },
      ], 'requeued, the interrupted attempts not counted');
      assert.deepEqual(pidsWithEnv('AGENTQ_TEST_MARK', marker), [], 'no agent outlives the dispatcher');
    } finally {
      db.close();
      r.child.kill('SIGKILL');
      killWithEnv('AGENTQ_TEST_MARK', marker);
    }
  });
});
