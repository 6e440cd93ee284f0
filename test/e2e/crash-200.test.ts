/**
 * 200 tasks on the no-op command agent (concurrency 4); `agentq run` is SIGKILLed at five
 * points and restarted after each, then finished with `run --once`:
 *   1. during intake (the tasks are recorded, the inbox files are being removed);
 *   2. right after start, every slot running an agent and no task completed (a gate file the
 *      agents wait for makes this exact);
 *   3. after 20 results, every slot running an agent;
 *   4. the moment the 80th result file appears (between its write and the store update);
 *   5. after 150 results, every slot running an agent.
 * Every task must end exactly once: one result file each in done/ (failed/ empty), one
 * completed attempt per task and no counted attempt but that one, every inbox file taken in
 * once, and no agent process, nor the `setsid` child some of them start, outlives the crashes.
 *
 * No timing is asserted: every step waits on a condition (inbox and done/ contents, live
 * agent processes), checked on file-system events and every 50 ms.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { AGENTQ, agentq, dropTask, listDir, makeProject, readResult } from '../fixtures/project.ts';
import { killWithEnv, pidsWithEnv } from '../fixtures/procs.ts';

const TASKS = 200;
const CONCURRENCY = 4;
/** Mid-run kill points: results in done/, and whether every slot must be running an agent too (else: the moment the file appears). */
const MID_RUN_KILLS: Array<{ done: number; agentsRunning: boolean }> = [
  { done: 20, agentsRunning: true },
  { done: 80, agentsRunning: false },
  { done: 150, agentsRunning: true },
];
/** Every SETSID_EVERY-th task's agent leaves a `setsid sleep 60` behind, as Claude Code's Bash tool does. */
const SETSID_EVERY = 10;

const name = (i: number) => `t${String(i).padStart(3, '0')}`;

/** Live agent processes of this test (and what they started), by their AGENTQ_ATTEMPT_ID. */
function liveAgents(marker: string): Map<string, number[]> {
  const byAttempt = new Map<string, number[]>();
  for (const pid of pidsWithEnv('AGENTQ_TEST_MARK', marker)) {
    let env: string[];
    try {
      env = fs.readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
    } catch {
      continue; // gone
    }
    const tag = env.find((e) => e.startsWith('AGENTQ_ATTEMPT_ID='));
    if (tag) byAttempt.set(tag, [...(byAttempt.get(tag) ?? []), pid]);
  }
  return byAttempt;
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

/**
 * SIGKILLs `child` as soon as `ready()` holds, checked on every change in `dir` (inotify, so
 * the kill lands within about a millisecond of the change that made it true) and every 50 ms.
 * Rejects if the child exits first or `timeoutMs` passes.
 */
function killWhen(child: ChildProcess, dir: string, ready: () => boolean, timeoutMs: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | null) => {
      if (settled) return;
      settled = true;
      watcher.close();
      clearInterval(poll);
      clearTimeout(timer);
      child.off('exit', onExit);
      if (err) reject(err);
      else exited(child).then(resolve, reject);
    };
    const check = () => {
      if (settled || !ready()) return;
      child.kill('SIGKILL');
      finish(null);
    };
    const onExit = (code: number | null, signal: string | null) => finish(new Error(`agentq exited (${code ?? signal}) before ${what}`));
    const watcher = fs.watch(dir, check);
    const poll = setInterval(check, 50);
    const timer = setTimeout(() => finish(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
    child.once('exit', onExit);
    check();
  });
}

describe('crash recovery at scale', () => {
  it('200 tasks, SIGKILL at five points: every task ends exactly once, no process left behind', { timeout: 120_000 }, async (t) => {
    const marker = crypto.randomUUID();
    const paths = makeProject({
      concurrency: CONCURRENCY,
      kill_grace: '500ms',
      poll_interval: '100ms',
    });
    const gate = path.join(paths.root, 'gate');
    const wait = `while [ ! -e '${gate}' ]; do sleep 0.02; done; `;
    // Long enough that the four slots are seen full at once mid-run (50 ms agents on a fast
    // dispatcher rarely overlapped four at a time: the kill points waited past their results).
    const quick = 'sleep 0.25; echo "$AGENTQ_TASK_NAME"';
    for (let i = 0; i < TASKS; i++) {
      const command = `${wait}${i % SETSID_EVERY === 0 ? 'setsid sleep 60 & ' : ''}${quick}`;
      dropTask(paths, name(i), { agent: 'command', command }, `task ${i}`);
    }
    fs.mkdirSync(paths.done, { recursive: true });
    const env = { ...process.env, AGENTQ_TEST_MARK: marker };
    const children: ChildProcess[] = [];
    const start = () => {
      const child = spawn(AGENTQ, ['run', '--project', paths.root], { env, stdio: 'ignore' });
      children.push(child);
      return child;
    };
    const note = (point: string) => {
      const agents = liveAgents(marker);
      const pids = [...agents.values()].reduce((n, p) => n + p.length, 0);
      t.diagnostic(`SIGKILL ${point}: inbox ${listDir(paths.inbox).length}, done/ ${listDir(paths.done).length}; left behind: ${agents.size} attempts' processes (${pids} pids)`);
      return agents;
    };

    try {
      // 1. During intake: the tasks are recorded and the inbox files are being removed.
      await killWhen(start(), paths.inbox, () => listDir(paths.inbox).length < TASKS, 30_000, 'intake to start removing inbox files');
      note('at the first inbox file removed');

      // 2. Gate closed: every slot holds a waiting agent and nothing can complete.
      await killWhen(start(), paths.done, () => liveAgents(marker).size >= CONCURRENCY, 30_000, `${CONCURRENCY} agents running (gate closed)`);
      assert.equal(listDir(paths.done).length, 0, 'nothing completes while the gate is closed');
      // The gated agents cannot end by themselves: the killed dispatcher left them behind.
      assert.ok(note('with every slot running, gate closed').size >= CONCURRENCY, 'the killed dispatcher left its agents behind');
      fs.writeFileSync(gate, '');

      // 3–5. Mid-run.
      for (const k of MID_RUN_KILLS) {
        const ready = k.agentsRunning
          ? () => listDir(paths.done).length >= k.done && liveAgents(marker).size >= CONCURRENCY
          : () => listDir(paths.done).length >= k.done;
        await killWhen(start(), paths.done, ready, 60_000, `${k.done} result files${k.agentsRunning ? ` and ${CONCURRENCY} agents running` : ''}`);
        note(k.agentsRunning ? `after ${k.done} results, every slot running` : `as result ${k.done} appeared`);
      }

      const result = await agentq(['run', '--once', '--project', paths.root], { AGENTQ_TEST_MARK: marker }, 90_000);
      assert.equal(result.code, 0, result.stderr.slice(-4000));
      assert.match(result.stderr, /recovered #\d+/);

      // Results: exactly one file per task, named after it, with its own output.
      const done = listDir(paths.done);
      assert.deepEqual(listDir(paths.failed), []);
      assert.deepEqual(done, Array.from({ length: TASKS }, (_, i) => `${name(i)}.md`));
      const ids = new Set<unknown>();
      for (const f of done) {
        const { fm, body } = readResult(path.join(paths.done, f));
        assert.equal(fm.status, 'completed', f);
        assert.equal(body, f.slice(0, -3), `${f}: the agent's output`);
        ids.add(fm.task_id);
      }
      assert.equal(ids.size, TASKS, 'each task_id once');
      assert.deepEqual(listDir(paths.inbox), []);

      // Store: one row per task, each completed exactly once, no counted attempt but that one.
      const store = new SqliteStore(path.join(paths.dir, 'agentq.db'));
      try {
        const tasks = await store.listTasks();
        assert.equal(tasks.length, TASKS);
        assert.deepEqual(tasks.map((t) => t.name).sort(), done.map((f) => f.slice(0, -3)));
        let interrupted = 0;
        for (const t of tasks) {
          assert.equal(t.state, 'completed', `#${t.id} ${t.name}`);
          assert.equal(t.attempts, 1, `#${t.id} ${t.name}: counted attempts`);
          assert.equal(t.resultPath, path.join(paths.done, `${t.name}.md`));
          const attempts = await store.listAttempts(t.id);
          assert.equal(attempts.length, t.claims, `#${t.id}: one attempt row per claim`);
          const outcomes = attempts.map((a) => a.outcome);
          assert.equal(outcomes.filter((o) => o === 'completed').length, 1, `#${t.id} ${t.name}: ${outcomes.join(', ')}`);
          assert.equal(outcomes.at(-1), 'completed', `#${t.id} ${t.name}: ${outcomes.join(', ')}`);
          assert.ok(outcomes.slice(0, -1).every((o) => o === 'interrupted'), `#${t.id} ${t.name}: ${outcomes.join(', ')}`);
          if (t.claims > 1) interrupted++;
        }
        // The gated kill alone interrupts CONCURRENCY tasks, and so does each kill with every slot running.
        assert.ok(interrupted >= CONCURRENCY * 3, `${interrupted} tasks were interrupted by the kills`);
        const pending = await store.listPendingIntake();
        assert.deepEqual(pending, [], 'every inbox file taken in exactly once');
      } finally {
        await store.close();
      }

      assert.deepEqual(pidsWithEnv('AGENTQ_TEST_MARK', marker), [], 'no agent, setsid child or dispatcher survives');
      const temps = fs.readdirSync(paths.done).filter((f) => f.startsWith('.'));
      assert.deepEqual(temps, [], 'temp files of a kill mid-write are removed on restart');
    } finally {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      // Leave nothing behind even when an assertion failed.
      killWithEnv('AGENTQ_TEST_MARK', marker);
    }
  });
});
