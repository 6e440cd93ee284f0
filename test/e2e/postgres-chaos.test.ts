/**
 * Chaos on PostgreSQL (issue 10): three `agentq run` dispatchers in two checkouts (two
 * project directories standing for two machines: A and B in the first, C in the second) on
 * one PostgreSQL store, N `agent: command` tasks (`AGENTQ_CHAOS_TASKS`, default 400) dropped
 * half into each inbox. Each task's command sleeps a moment, appends its name to a log file
 * outside both projects and prints it. During the run:
 *   1. A is SIGKILLed while it runs agents (restarted later);
 *   2. C is SIGSTOPped while it runs agents, kept stopped until the others have recovered
 *      its tasks (its lease lapsed), then SIGCONTed: its late finishes must be refused, its
 *      agents stopped;
 *   3. PostgreSQL is restarted (fast shutdown, 2 s down, same data directory and port) while
 *      agents run: every dispatcher rides it out (transient errors retried, agents go on,
 *      outcomes recorded once it is back).
 * Then: every task `completed` exactly once in the store (one counted attempt; earlier ones
 * only `interrupted`), exactly one result file per task across both checkouts' `done/`, in
 * the task's origin checkout (the one whose inbox it was dropped in, whichever dispatcher ran
 * it; the one the store's `result_path` names), every task in the command log at least once
 * (more only for attempts a kill or stop interrupted: delivery is at-least-once), no agent
 * process left.
 *
 * All on one host: a dead dispatcher is recognised by its pid (A), a stalled one by its
 * lease (C); the rescuers stop the tagged processes of both through /proc.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ProjectPaths } from '../../src/config/config.ts';
import { PostgresStore } from '../../src/store/postgres/postgres-store.ts';
import { freshDatabase, startPostgres, type PostgresCluster } from '../fixtures/postgres.ts';
import { killWithEnv, pidsWithEnv, waitFor } from '../fixtures/procs.ts';
import { AGENTQ, dropTask, listDir, makeProject, readResult } from '../fixtures/project.ts';

const TASKS = Number(process.env.AGENTQ_CHAOS_TASKS ?? 400);
const CONCURRENCY = 6;
const CONFIG = { concurrency: CONCURRENCY, lease: '3s', poll_interval: '200ms', kill_grace: '500ms' };

const name = (i: number) => `c${String(i).padStart(4, '0')}`;

let cluster: PostgresCluster | undefined;

before(async () => {
  cluster = await startPostgres();
});

after(async () => {
  await cluster?.stop();
});

interface Dispatcher {
  label: string;
  paths: ProjectPaths;
  child: ChildProcess;
  stderr: string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

describe('PostgreSQL chaos', () => {
  it(`${TASKS} tasks, three dispatchers in two checkouts: SIGKILL, SIGSTOP past the lease, a PostgreSQL restart; every task completed once`, { timeout: 300_000 }, async (t) => {
    const started = Date.now();
    const marker = crypto.randomUUID();
    const url = `${await freshDatabase(cluster!.url)}?schema=chaos`;
    const one = makeProject(CONFIG);
    const two = makeProject(CONFIG);
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-chaos-'));
    const log = path.join(outside, 'ran.log');
    fs.writeFileSync(log, '');
    /** The checkout whose inbox task i is dropped in: its origin, where its result file belongs. */
    const originOf = (i: number) => (i % 2 === 0 ? one : two);
    for (let i = 0; i < TASKS; i++) {
      const sleep = (0.1 + (i % 5) * 0.1).toFixed(1);
      const command = `sleep ${sleep}; echo "$AGENTQ_TASK_NAME" >> '${log}'; echo "$AGENTQ_TASK_NAME"`;
      dropTask(originOf(i), name(i), { agent: 'command', command }, `chaos task ${i}`);
    }
    const store = await PostgresStore.open(url);
    const env = { ...process.env, AGENTQ_TEST_MARK: marker };
    const all: Dispatcher[] = [];
    /** Checkout of each dispatcher pid ever started. */
    const checkoutOf = new Map<number, ProjectPaths>();
    const start = (label: string, paths: ProjectPaths): Dispatcher => {
      const child = spawn(AGENTQ, ['run', '--project', paths.root, '--store', url], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      const d: Dispatcher = {
        label,
        paths,
        child,
        stderr: '',
        exit: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
      };
      child.stderr!.on('data', (chunk) => (d.stderr += chunk));
      checkoutOf.set(child.pid!, paths);
      all.push(d);
      return d;
    };
    const alive = (d: Dispatcher) => d.child.exitCode === null && d.child.signalCode === null;
    const completed = async () => (await store.listTasks()).filter((x) => x.state === 'completed').length;
    const runningOf = async (d: Dispatcher) => (await store.listRunning()).filter((s) => s.workerId.split(':')[1] === String(d.child.pid));
    const note = async (what: string) => t.diagnostic(`${((Date.now() - started) / 1000).toFixed(1)} s: ${what} (completed ${await completed()}/${TASKS})`);
    const checkAlive = (...ds: Dispatcher[]) => {
      for (const d of ds) assert.ok(alive(d), `${d.label} died (${d.child.exitCode ?? d.child.signalCode}): ${d.stderr.slice(-3000)}`);
    };

    try {
      let a = start('A', one);
      const b = start('B', one);
      const c = start('C', two);

      // 1. SIGKILL A while it runs agents.
      await waitFor(async () => (await completed()) >= TASKS * 0.1 && (await runningOf(a)).length >= 2, 120_000, 'A running agents after 10% completed');
      a.child.kill('SIGKILL');
      const killedPid = a.child.pid;
      await a.exit;
      const killedAttempts = (await runningOf(a)).map((s) => s.attemptId);
      await note(`SIGKILL A (pid ${a.child.pid}) with ${killedAttempts.length} attempts running`);

      // 2. SIGSTOP C while it runs agents, until the others have requeued every attempt it ran (its lease lapsed).
      await waitFor(async () => (await completed()) >= TASKS * 0.25 && (await runningOf(c)).length >= 2, 120_000, 'C running agents after 25% completed');
      c.child.kill('SIGSTOP');
      const stoppedAt = Date.now();
      const stoppedAttempts = (await runningOf(c)).map((s) => s.attemptId);
      await note(`SIGSTOP C (pid ${c.child.pid}) with ${stoppedAttempts.length} attempts running`);
      await waitFor(async () => (await runningOf(c)).length === 0, 60_000, "the others to recover C's tasks");
      await note(`C's tasks recovered by the others after ${Date.now() - stoppedAt} ms; SIGCONT C`);
      // Its agents were stopped by the rescuer (or had ended: zombies until C reaps them).
      for (const id of stoppedAttempts) assert.deepEqual(pidsWithEnv('AGENTQ_ATTEMPT_ID', id), [], `C's attempt ${id}: no process left`);
      c.child.kill('SIGCONT');
      a = start('A2', one);

      // 3. Restart PostgreSQL while agents run (once A2 has opened the store: a dispatcher that cannot reach it at start exits).
      await waitFor(async () => (await store.listWorkers()).some((w) => w.pid === a.child.pid), 60_000, `A2 to register (${a.stderr.slice(-1000)})`);
      await waitFor(async () => (await completed()) >= TASKS * 0.55 && (await store.listRunning()).length >= 3, 120_000, '3 agents running after 55% completed');
      checkAlive(a, b, c);
      const runningAtRestart = (await store.listRunning()).map((s) => s.attemptId);
      const restartAt = Date.now();
      await note('PostgreSQL stopped');
      await cluster!.restart(2_000);
      await note(`PostgreSQL back after ${Date.now() - restartAt} ms`);

      // Everything completes on the dispatchers still running.
      await waitFor(async () => {
        try {
          return (await completed()) === TASKS && (await store.listUnreported()).length === 0;
        } catch {
          return false; // the test's own pool reconnecting
        }
      }, 240_000, `every task to complete (A2: ${a.stderr.slice(-1000)})`);
      await note('all completed');
      checkAlive(a, b, c);
      for (const d of [a, b, c]) d.child.kill('SIGTERM');
      for (const d of [a, b, c]) {
        const exit = await d.exit;
        assert.equal(exit.code, 0, `${d.label} exit ${exit.code ?? exit.signal}: ${d.stderr.slice(-3000)}`);
      }
      const elapsed = Date.now() - started;

      // Every dispatcher rode out the restart.
      for (const d of [a, b, c]) {
        assert.match(d.stderr, /store {5}unavailable/, `${d.label} saw the outage`);
        assert.match(d.stderr, /store {5}back after/, `${d.label} saw the store back`);
      }

      // Store: every task completed once, earlier attempts only interrupted.
      const tasks = await store.listTasks();
      assert.equal(tasks.length, TASKS);
      assert.deepEqual(tasks.map((x) => x.name).sort(), Array.from({ length: TASKS }, (_, i) => name(i)));
      const attemptOutcome = new Map<string, string>();
      let interruptedTasks = 0;
      let ranElsewhere = 0;
      const misplaced: string[] = [];
      for (const task of tasks) {
        const attempts = await store.listAttempts(task.id);
        const outcomes = attempts.map((x) => x.outcome);
        for (const x of attempts) attemptOutcome.set(x.id, x.outcome);
        assert.equal(task.state, 'completed', `#${task.id} ${task.name}`);
        assert.equal(task.attempts, 1, `#${task.id} ${task.name}: counted attempts (${outcomes.join(', ')})`);
        assert.equal(task.result, task.name, `#${task.id}: the agent's output`);
        assert.equal(attempts.length, task.claims, `#${task.id}: one attempt row per claim`);
        assert.equal(outcomes.filter((o) => o === 'completed').length, 1, `#${task.id} ${task.name}: ${outcomes.join(', ')}`);
        assert.equal(outcomes.at(-1), 'completed', `#${task.id} ${task.name}: ${outcomes.join(', ')}`);
        assert.ok(outcomes.slice(0, -1).every((o) => o === 'interrupted'), `#${task.id} ${task.name}: ${outcomes.join(', ')}`);
        if (attempts.length > 1) interruptedTasks++;
        // The result file is in the task's origin checkout, whichever dispatcher (and checkout) ran it.
        const origin = originOf(Number(task.name.slice(1)));
        assert.deepEqual(task.origin, { host: os.hostname(), root: fs.realpathSync(origin.root) }, `#${task.id} ${task.name}: origin`);
        const ranBy = checkoutOf.get(Number(attempts.at(-1)!.workerId.split(':')[1]))!;
        if (ranBy !== origin) ranElsewhere++;
        assert.ok(task.resultPath, `#${task.id}: result path recorded`);
        if (path.dirname(task.resultPath!) !== origin.done) misplaced.push(`#${task.id} ${task.name}: from ${origin.root}, ran in ${ranBy.root}, result_path ${task.resultPath}`);
      }
      // The late finishes of the stopped C were refused: its attempts ended interrupted.
      for (const id of stoppedAttempts) assert.equal(attemptOutcome.get(id), 'interrupted', `C's attempt ${id}`);
      for (const id of killedAttempts) assert.equal(attemptOutcome.get(id), 'interrupted', `A's attempt ${id}`);
      // The agents running while PostgreSQL restarted went on, their outcomes recorded once it was back.
      for (const id of runningAtRestart) assert.equal(attemptOutcome.get(id), 'completed', `attempt ${id}, running at the restart`);

      // Result files: exactly one per task across both checkouts.
      const files = [...listDir(one.done).map((f) => path.join(one.done, f)), ...listDir(two.done).map((f) => path.join(two.done, f))];
      const byTask = new Map<number, string[]>();
      for (const f of files) {
        const { fm } = readResult(f);
        assert.equal(fm.status, 'completed', f);
        byTask.set(Number(fm.task_id), [...(byTask.get(Number(fm.task_id)) ?? []), f]);
      }
      const twice = [...byTask.entries()].filter(([, fs]) => fs.length > 1);
      if (misplaced.length) t.diagnostic(`result files outside their origin checkout: ${misplaced.join('; ')}`);
      if (twice.length) t.diagnostic(`tasks with two result files: ${twice.map(([id, fs]) => `#${id}: ${fs.join(' ')}`).join('; ')}`);
      assert.deepEqual(twice, [], 'one result file per task');
      assert.deepEqual(misplaced, [], "each result file in the task's origin checkout");
      assert.equal(byTask.size, TASKS, 'a result file for every task');
      assert.deepEqual([...listDir(one.failed), ...listDir(two.failed)], []);
      assert.deepEqual([...listDir(one.inbox), ...listDir(two.inbox)], []);
      assert.deepEqual(await store.listPendingIntake(), [], 'every inbox file taken in exactly once');
      for (const task of tasks) assert.ok(files.includes(task.resultPath!), `#${task.id}: ${task.resultPath} exists`);

      // Command log: every task at least once; more only for a task an interruption cut.
      const ran = new Map<string, number>();
      for (const line of fs.readFileSync(log, 'utf8').split('\n').filter(Boolean)) ran.set(line, (ran.get(line) ?? 0) + 1);
      for (const task of tasks) assert.ok((ran.get(task.name) ?? 0) >= 1, `${task.name} ran`);
      const twiceRan = tasks.filter((x) => (ran.get(x.name) ?? 0) > 1);
      // Run twice only when the SIGKILL or SIGSTOP cut an attempt whose agent had done its work:
      // an interrupted attempt of the killed A or the stopped C. Told by its dispatcher, not by the
      // snapshots above: a claim the server committed just after one (sent before the kill or the
      // stop) is cut as well, and C, continued, may start its agent before it finds the lease lost.
      const cutBy = new Set([String(killedPid), String(c.child.pid)]);
      for (const x of twiceRan) {
        const attempts = await store.listAttempts(x.id);
        assert.ok(
          attempts.some((a) => a.outcome === 'interrupted' && cutBy.has(a.workerId.split(':')[1]!)),
          `${x.name} ran ${ran.get(x.name)} times in ${x.claims} claim(s), none cut by the kill or the stop: ${attempts.map((a) => `${a.workerId} ${a.outcome}`).join(', ')}`,
        );
      }

      const recoveries = all.reduce((n, d) => n + (d.stderr.match(/recovered #/g) ?? []).length, 0);
      const figures =
        `${TASKS} tasks in ${(elapsed / 1000).toFixed(1)} s; ${interruptedTasks} tasks claimed more than once, ${twiceRan.length} executed twice or more ` +
        `(${twiceRan.map((x) => `${x.name}×${ran.get(x.name)}`).join(' ')}); ${recoveries} recoveries; A killed with ${killedAttempts.length} running, ` +
        `C stopped with ${stoppedAttempts.length} running; ${runningAtRestart.length} running through the PostgreSQL restart; ${ranElsewhere} tasks ran in the other checkout than their origin`;
      t.diagnostic(figures);
      console.log(`postgres chaos: ${figures}`);

      // No agent (nor dispatcher) left.
      await waitFor(() => pidsWithEnv('AGENTQ_TEST_MARK', marker).length === 0, 10_000, 'every process of the test to end');
    } finally {
      for (const d of all) {
        if (alive(d)) {
          d.child.kill('SIGCONT');
          d.child.kill('SIGKILL');
        }
      }
      killWithEnv('AGENTQ_TEST_MARK', marker);
      // AGENTQ_CHAOS_LOGS=DIR keeps each dispatcher's stderr there.
      const keep = process.env.AGENTQ_CHAOS_LOGS;
      if (keep) for (const d of all) fs.writeFileSync(path.join(keep, `${d.label}-${d.child.pid}.log`), d.stderr);
      await store.close().catch(() => {});
      fs.rmSync(outside, { recursive: true, force: true });
    }
  });
});
