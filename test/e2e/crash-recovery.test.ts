/**
 * Kill a real `agentq run` with SIGKILL mid-run (twice), restart it, and check that every
 * task ends exactly once, with one result file each, and no agent process (nor a tool
 * command it started in a session of its own) outlives the crash; the interrupted attempts
 * keep their output tails.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { attemptLogFile } from '../../src/results/logs.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { AGENTQ, agentq, dropTask, listDir, makeProject, readResult } from '../fixtures/project.ts';
import { pidsWithEnv, waitFor } from '../fixtures/procs.ts';

const TASKS = 12;

describe('crash recovery', () => {
  it('SIGKILLed dispatcher: restart requeues, stops orphans, loses and duplicates nothing', async () => {
    const marker = crypto.randomUUID();
    const paths = makeProject({
      concurrency: 3,
      kill_grace: '500ms',
      poll_interval: '100ms',
      agents: {
        // The agent starts a tool command in a session of its own, as Claude Code's Bash tool does.
        command: { command: 'setsid sleep 60 & sleep 0.6; echo "ran $AGENTQ_TASK_NAME"' },
      },
    });
    for (let i = 0; i < TASKS; i++) dropTask(paths, `t${String(i).padStart(2, '0')}`, { agent: 'command' }, `task ${i}`);
    const env = { ...process.env, AGENTQ_TEST_MARK: marker };

    for (const doneBeforeKill of [2, 6]) {
      const child = spawn(AGENTQ, ['run', '--project', paths.root], { env, stdio: 'ignore' });
      await waitFor(() => listDir(paths.done).length >= doneBeforeKill && pidsWithEnv('AGENTQ_TEST_MARK', marker).length > 1, 60_000, `${doneBeforeKill} tasks done`);
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      assert.ok(pidsWithEnv('AGENTQ_ATTEMPT_ID', '').length === 0); // sanity: the helper matches exact values only
      const orphans = pidsWithEnv('AGENTQ_TEST_MARK', marker);
      assert.ok(orphans.length > 0, 'the killed dispatcher left agent processes behind');
    }

    const result = await agentq(['run', '--once', '--project', paths.root], { AGENTQ_TEST_MARK: marker });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /recovered #\d+/);

    const done = listDir(paths.done);
    assert.equal(done.length, TASKS, `done/: ${done.join(', ')}`);
    assert.deepEqual(listDir(paths.failed), []);
    const ids = done.map((f) => readResult(path.join(paths.done, f)).fm.task_id);
    assert.equal(new Set(ids).size, TASKS);
    for (const f of done) assert.match(readResult(path.join(paths.done, f)).body, /^ran t\d\d$/);

    const store = new SqliteStore(path.join(paths.dir, 'agentq.db'));
    const tasks = await store.listTasks();
    assert.equal(tasks.length, TASKS);
    assert.ok(tasks.every((t) => t.state === 'completed'));
    const interrupted = tasks.filter((t) => t.claims > 1);
    assert.ok(interrupted.length > 0, 'some tasks were interrupted by the kills');
    let kept = 0;
    for (const t of interrupted) {
      assert.equal(t.attempts, 1, `#${t.id}: an interrupted attempt does not count`);
      // The restarted dispatcher (same checkout) keeps the tails of the interrupted attempts whose agent had started (its logs are here).
      for (const a of (await store.listAttempts(t.id)).filter((x) => x.outcome === 'interrupted')) {
        const log = attemptLogFile(paths, t, a.number, 'stdout');
        const output = await store.attemptOutput(a.id);
        if (fs.existsSync(log)) {
          assert.equal(output?.stdout.bytes, fs.statSync(log).size, `#${t.id} attempt ${a.number}: output kept`);
          kept++;
        } else assert.equal(output, null, `#${t.id} attempt ${a.number}: claimed, its agent not started: no output`);
      }
    }
    assert.ok(kept > 0, 'the agents running at the kills had their output kept');
    await store.close();
    assert.deepEqual(pidsWithEnv('AGENTQ_TEST_MARK', marker), [], 'no agent or tool process survives');
  });
});
