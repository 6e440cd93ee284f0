/**
 * `agentq run -c N` / `serve -c N` (config `local_concurrency`): one dispatcher's own limit of
 * running tasks, within the store-wide `concurrency` that the claim counts across every
 * dispatcher on the store. Real `bin/agentq` processes, two projects on one SQLite file,
 * the `command` agent; a task holds a lock directory in its dispatcher's project while it
 * runs, so two at once in one dispatcher leave an overlap marker whenever they happen.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { AGENTQ, agentq, agentqJson, dropTask, listDir, makeProject } from '../fixtures/project.ts';
import { waitFor } from '../fixtures/procs.ts';

/** Rows of the shared SQLite store (read-only; null until it exists). */
function query<T>(db: string, sql: string): T[] | null {
  try {
    const d = new Database(db, { readonly: true, fileMustExist: true });
    try {
      return d.prepare(sql).all() as T[];
    } finally {
      d.close();
    }
  } catch {
    return null; // not created yet, or being migrated
  }
}

describe('per-process concurrency (run -c N)', () => {
  it('two dispatchers with -c 1 on one store with concurrency 4 each run one task at a time, both at once', async () => {
    const shared = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-shared-'));
    const db = path.join(shared, 'agentq.db');
    const config = { store: `sqlite:${db}`, concurrency: 4, poll_interval: '100ms', kill_grace: '300ms' };
    const a = makeProject(config);
    const b = makeProject(config);
    const release = path.join(shared, 'release');
    // Holds .agent-queue/slot in the project of the dispatcher running it (its cwd) until `release` exists.
    const command =
      `mkdir .agent-queue/slot 2>/dev/null || touch "${shared}/overlap-$AGENTQ_TASK_ID"; ` +
      `while [ ! -e "${release}" ]; do sleep 0.05; done; rmdir .agent-queue/slot 2>/dev/null; echo "ran $AGENTQ_TASK_ID"`;
    const children: ChildProcess[] = [];
    const exits: Array<Promise<unknown>> = [];
    const stderr = ['', ''];
    try {
      for (const [i, p] of [a, b].entries()) {
        const child = spawn(AGENTQ, ['run', '-c', '1', '--project', p.root], { stdio: ['ignore', 'ignore', 'pipe'] });
        child.stderr!.on('data', (d) => (stderr[i] += d));
        children.push(child);
        exits.push(new Promise((r) => child.once('exit', r)));
      }
      for (let n = 1; n <= 6; n++) dropTask(a, `t${n}`, { agent: 'command', command }, 'x');

      const runningPerWorker = () => query<{ worker: string; n: number }>(db, "SELECT worker_id AS worker, count(*) AS n FROM attempts WHERE outcome = 'running' GROUP BY worker_id") ?? [];
      const running = () => runningPerWorker().reduce((sum, w) => sum + w.n, 0);
      await waitFor(() => running() >= 2, 60_000, `two tasks running (stderr: ${stderr.join(' | ')})`);
      const status = await agentqJson<{ counts: Record<string, number>; workers: Array<{ id: string; running: number }> }>(['status', '--json', '--project', a.root]);
      assert.equal(status.counts.running, 2, 'the store-wide limit (4) has room, yet each dispatcher holds one');
      assert.deepEqual(
        status.workers.map((w) => w.running),
        [1, 1],
        'one running task per dispatcher',
      );

      fs.writeFileSync(release, '');
      const completed = () => query<{ n: number }>(db, "SELECT count(*) AS n FROM tasks WHERE state = 'completed'")?.[0]?.n ?? 0;
      await waitFor(() => completed() === 6, 60_000, 'all six tasks to complete');
      assert.deepEqual(
        listDir(shared).filter((f) => f.startsWith('overlap-')),
        [],
        'a dispatcher ran two tasks at once',
      );
      const workers = query<{ worker: string }>(db, 'SELECT DISTINCT worker_id AS worker FROM attempts') ?? [];
      assert.equal(workers.length, 2, 'both dispatchers ran tasks');
    } finally {
      fs.writeFileSync(release, '');
      for (const c of children) c.kill('SIGTERM');
      await Promise.all(exits);
    }
  });

  it('says once when the store-wide concurrency caps -c N or local_concurrency (run and serve); --once still runs everything', async () => {
    const paths = makeProject({ concurrency: 1, local_concurrency: 5, poll_interval: '100ms' });
    const p = ['--project', paths.root];
    dropTask(paths, 'one', { agent: 'command', command: 'echo one' }, 'x');
    dropTask(paths, 'two', { agent: 'command', command: 'echo two' }, 'x');
    const fromConfig = await agentq(['run', '--once', ...p], {}, 60_000);
    assert.equal(fromConfig.code, 0, fromConfig.stderr);
    assert.deepEqual(listDir(paths.done), ['one.md', 'two.md']);
    const notice = /^agentq: local_concurrency 5: the store-wide limit \(config concurrency: 1\) caps this dispatcher at 1 running tasks$/gm;
    assert.equal(fromConfig.stderr.match(notice)?.length, 1, fromConfig.stderr);

    dropTask(paths, 'three', { agent: 'command', command: 'echo three' }, 'x');
    const fromFlag = await agentq(['run', '--once', '-c', '3', ...p], {}, 60_000);
    assert.equal(fromFlag.code, 0, fromFlag.stderr);
    assert.match(fromFlag.stderr, /^agentq: -c 3: the store-wide limit \(config concurrency: 1\) caps this dispatcher at 1 running tasks$/m);
    assert.deepEqual(listDir(paths.done), ['one.md', 'three.md', 'two.md']);

    const within = await agentq(['run', '--once', '-c', '1', ...p], {}, 60_000);
    assert.equal(within.code, 0, within.stderr);
    assert.doesNotMatch(within.stderr, /caps this dispatcher/);

    const serve = spawn(AGENTQ, ['serve', '--port', '0', '-c', '2', ...p], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    serve.stdout!.on('data', (d) => (out += d));
    serve.stderr!.on('data', (d) => (err += d));
    const exited = new Promise((r) => serve.once('exit', r));
    try {
      await waitFor(() => out.includes('listening on'), 30_000, `serve to listen (stderr: ${err})`);
      assert.match(err, /^agentq: -c 2: the store-wide limit \(config concurrency: 1\) caps this dispatcher at 1 running tasks$/m);
    } finally {
      serve.kill('SIGTERM');
      await exited;
    }
  });

  it('refuses a bad -c for run and serve with the usage (exit 2), before opening the store', async () => {
    const paths = makeProject();
    for (const [command, value] of [
      ['run', '0'],
      ['run', '1.5'],
      ['run', 'two'],
      ['run', ''],
      ['serve', '0'],
      ['serve', '3x'],
    ] as const) {
      const r = await agentq([command, '-c', value, '--project', paths.root]);
      assert.equal(r.code, 2, `${command} -c ${JSON.stringify(value)}: ${r.stderr}`);
      assert.ok(r.stderr.startsWith(`agentq: --concurrency: ${JSON.stringify(value)} is not a whole number ≥ 1\n`), r.stderr);
      assert.match(r.stderr, /^Usage: agentq /m);
    }
    assert.equal(fs.existsSync(path.join(paths.dir, 'agentq.db')), false, 'the store was opened');
  });
});
