/**
 * Result files land in the checkout a task came from (issue 10), end to end: two checkouts
 * (A and B, two project directories standing for two machines) on one PostgreSQL store, real
 * `bin/agentq` processes. Tasks dropped in A's inbox carry `runs_on: [b]`, so only B's
 * dispatcher (`--label b`) can run them; A's dispatcher takes them in.
 *   1. Both dispatchers running: B runs every task (in its own checkout), A's `done/` gets
 *      every file, written by A's dispatcher as soon as B's finish is committed (its
 *      `poll_interval` is 30 s: the NOTIFY of B's finish wakes it), B's `done/` none.
 *   2. A's dispatcher not running while B ends the tasks: no file anywhere until
 *      `agentq sync` in A writes them (exit 1 while it cannot, naming the error; nothing left
 *      to write the second time). `agentq show` in B names the origin and says the file is
 *      in another checkout; `agentq cancel` in B of a queued task from A writes no file in B.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PostgresStore } from '../../src/store/postgres/postgres-store.ts';
import { freshDatabase, startPostgres, type PostgresCluster } from '../fixtures/postgres.ts';
import { waitFor } from '../fixtures/procs.ts';
import { AGENTQ, agentq, dropTask, listDir, makeProject, readResult } from '../fixtures/project.ts';

let cluster: PostgresCluster | undefined;

before(async () => {
  cluster = await startPostgres();
});

after(async () => {
  await cluster?.stop();
});

/** A running `agentq run` and its stderr so far. */
interface Run {
  child: ChildProcess;
  stderr: () => string;
  exit: Promise<number | null>;
}

function startRun(args: string[]): Run {
  const child = spawn(AGENTQ, ['run', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  return { child, stderr: () => stderr, exit: new Promise((resolve) => child.once('exit', resolve)) };
}

describe('result files in the origin checkout', () => {
  it('B runs the tasks filed in A; their files are written in A by its dispatcher at once, or by agentq sync while it is not running', { timeout: 180_000 }, async (t) => {
    const url = `${await freshDatabase(cluster!.url)}?schema=origins`;
    const a = makeProject({ poll_interval: '30s', lease: '3s' });
    const b = makeProject({ poll_interval: '200ms', lease: '3s', concurrency: 2 });
    const aOrigin = { host: os.hostname(), root: fs.realpathSync(a.root) };
    const store = await PostgresStore.open(url);
    const runs: Run[] = [];
    try {
      // 1. Both running.
      const first = ['one', 'two', 'three', 'four'];
      for (const name of first) dropTask(a, name, { agent: 'command', command: 'sleep 1; pwd', runs_on: ['b'] }, `task ${name}`);
      const runA = startRun(['--project', a.root, '--store', url]);
      const runB = startRun(['--project', b.root, '--store', url, '--label', 'b']);
      runs.push(runA, runB);
      await waitFor(async () => (await store.listTasks()).filter((x) => x.state === 'completed').length === first.length, 60_000, `B to complete the tasks (A: ${runA.stderr()} B: ${runB.stderr()})`);
      const lastEnd = Math.max(...(await store.listTasks()).map((x) => x.finishedAt ?? 0));
      await waitFor(async () => (await store.listUnreported()).length === 0, 20_000, `A to write the files before its 30 s poll (A: ${runA.stderr()})`);
      t.diagnostic(`last finish in B → its file written in A: ${Math.round(Math.max(...listDir(a.done).map((f) => fs.statSync(path.join(a.done, f)).mtimeMs)) - lastEnd)} ms (A polls every 30 s)`);
      assert.deepEqual(listDir(a.done), first.map((n) => `${n}.md`).sort());
      assert.deepEqual(listDir(b.done), [], "no file in B's checkout");
      for (const task of await store.listTasks()) {
        assert.deepEqual(task.origin, aOrigin, `#${task.id} ${task.name}: from A`);
        assert.equal(task.resultPath, path.join(a.done, `${task.name}.md`));
        assert.equal(task.result, fs.realpathSync(b.root), `#${task.id} ${task.name} ran in B`);
        assert.equal(readResult(task.resultPath!).fm.task_id, task.id);
      }
      assert.match(runB.stderr(), new RegExp(`completed #\\d+ one .*\\(result file in ${os.hostname()}:${aOrigin.root}\\)`), 'B says where the file goes');
      assert.match(runA.stderr(), /completed #\d+ one /, "A reports the files it wrote");

      // 2. A's dispatcher stops; B ends more of A's tasks meanwhile.
      runA.child.kill('SIGTERM');
      assert.equal(await runA.exit, 0, runA.stderr());
      runB.child.kill('SIGTERM');
      assert.equal(await runB.exit, 0, runB.stderr());
      const second = ['five', 'six', 'seven'];
      for (const name of second) dropTask(a, name, { agent: 'command', command: 'pwd', runs_on: ['b'] }, `task ${name}`);
      dropTask(a, 'broken', { agent: 'command', command: 'exit 3', runs_on: ['b'] }, 'fails');
      dropTask(a, 'dropped', { agent: 'command', command: 'pwd', runs_on: ['b'] }, 'cancelled from B');
      const intake = await agentq(['run', '--once', '--project', a.root, '--store', url], {}, 60_000);
      assert.equal(intake.code, 1, intake.stderr);
      assert.match(intake.stderr, /5 left queued/, 'A takes them in, cannot run them');
      const cancelled = await agentq(['cancel', 'dropped', '--project', b.root, '--store', url]);
      assert.equal(cancelled.code, 0, cancelled.stderr);
      assert.match(cancelled.stdout, new RegExp(`cancelled #\\d+ dropped \\(its result file goes to its origin checkout ${os.hostname()}:${aOrigin.root}\\)`));
      const runOnce = await agentq(['run', '--once', '--project', b.root, '--store', url, '--label', 'b'], {}, 60_000);
      assert.equal(runOnce.code, 1, runOnce.stderr); // `broken` failed
      assert.match(runOnce.stderr, /3 completed, 1 not completed/);
      assert.deepEqual(listDir(a.done), first.map((n) => `${n}.md`).sort(), 'nothing new in A without its agentq');
      assert.deepEqual([...listDir(b.done), ...listDir(b.failed)], [], 'nor in B');
      assert.deepEqual((await store.listUnreported()).map((x) => x.name).sort(), [...second, 'broken', 'dropped'].sort());

      const shown = await agentq(['show', 'five', '--project', b.root, '--store', url]);
      assert.equal(shown.code, 0, shown.stderr);
      assert.match(shown.stdout, new RegExp(`origin: +${os.hostname()}:${aOrigin.root} \\(another checkout\\)`));
      assert.match(shown.stdout, new RegExp(`result_file: +- \\(not written yet: agentq run, serve or sync in ${os.hostname()}:${aOrigin.root} writes it\\)`));

      // sync in B writes nothing (none of its tasks); in A it fails while done/ cannot be made, then writes them.
      const inB = await agentq(['sync', '--project', b.root, '--store', url]);
      assert.equal(inB.code, 0, inB.stderr);
      assert.match(inB.stdout, /agentq sync: 0 result file\(s\) written in /);
      fs.rmSync(a.done, { recursive: true });
      fs.writeFileSync(a.done, 'not a directory');
      const blocked = await agentq(['sync', '--project', a.root, '--store', url]);
      assert.equal(blocked.code, 1, blocked.stdout);
      assert.match(blocked.stderr, /agentq: #\d+ five: result file not written: .*(EEXIST|ENOTDIR)/);
      assert.match(blocked.stdout, /agentq sync: 2 result file\(s\) written in .*; 3 could not be written/, 'the failed ones have their own folder');
      fs.rmSync(a.done);
      const synced = await agentq(['sync', '--project', a.root, '--store', url]);
      assert.equal(synced.code, 0, synced.stderr);
      assert.match(synced.stdout, /agentq sync: 3 result file\(s\) written in /);
      assert.match(synced.stdout, /wrote +.*done\/five\.md \(#\d+ five, completed\)/);
      assert.deepEqual(listDir(a.done), second.map((n) => `${n}.md`).sort(), 'the new files (the old ones went with the folder)');
      assert.deepEqual(listDir(a.failed), ['broken.md', 'dropped.md']);
      assert.deepEqual([...listDir(b.done), ...listDir(b.failed)], []);
      assert.deepEqual(await store.listUnreported(), []);
      const again = await agentq(['sync', '--project', a.root, '--store', url]);
      assert.match(again.stdout, /agentq sync: 0 result file\(s\) written/);

      const shownInA = await agentq(['show', 'five', '--project', a.root, '--store', url]);
      assert.match(shownInA.stdout, new RegExp(`origin: +${os.hostname()}:${aOrigin.root}\\n`));
      assert.match(shownInA.stdout, new RegExp(`result_file: +${path.join(a.done, 'five.md')}\\n`));
      const shownInB = await agentq(['show', 'five', '--project', b.root, '--store', url]);
      assert.match(shownInB.stdout, new RegExp(`result_file: +${path.join(a.done, 'five.md')} \\(in the origin checkout ${os.hostname()}:${aOrigin.root}, not this one\\)`));
    } finally {
      for (const r of runs) r.child.kill('SIGKILL');
      await store.close();
    }
  });
});
