/**
 * Worker labels end to end, with the real `bin/agentq` and the `command` agent: a task with
 * `runs_on` runs only on a dispatcher started with every label it lists (`--label`); without
 * them `run --once` reports it left queued instead of waiting; `status` lists each
 * dispatcher's labels.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { AGENTQ, agentq, agentqJson, dropTask, listDir, makeProject, readResult } from '../fixtures/project.ts';
import { waitFor } from '../fixtures/procs.ts';

describe('worker labels', () => {
  it('run --once without the label runs the plain task and reports the runs_on one left queued (exit 1); --label gpu then runs it (exit 0)', async () => {
    const paths = makeProject({ poll_interval: '100ms' });
    const p = ['--project', paths.root];
    dropTask(paths, 'plain', { agent: 'command', command: 'echo plain done' }, 'x');
    dropTask(paths, 'train', { agent: 'command', command: 'echo trained', runs_on: ['gpu'], priority: 'critical' }, 'x');

    const first = await agentq(['run', '--once', ...p], {}, 60_000);
    assert.equal(first.code, 1, first.stderr);
    assert.deepEqual(listDir(paths.done), ['plain.md']);
    assert.match(first.stderr, /#\d+ train left queued: cannot run until someone acts: runs_on \[gpu\]: no dispatcher here has every label/);
    assert.match(first.stderr, /1 completed, 0 not completed, 1 left queued/);

    const other = await agentq(['run', '--once', '--label', 'cpu', ...p], {}, 60_000);
    assert.equal(other.code, 1, other.stderr);
    assert.match(other.stderr, /train left queued: .*runs_on \[gpu\]/);

    const second = await agentq(['run', '--once', '--label', 'gpu', '--label', 'codex-account', ...p], {}, 60_000);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(listDir(paths.done), ['plain.md', 'train.md']);
    assert.equal(readResult(path.join(paths.done, 'train.md')).body, 'trained');
  });

  it('status lists each live dispatcher with its labels (LABELS column, --json labels)', async () => {
    const paths = makeProject({ poll_interval: '100ms', kill_grace: '300ms' });
    const p = ['--project', paths.root];
    dropTask(paths, 'long', { agent: 'command', command: 'sleep 60', runs_on: ['gpu'] }, 'x');
    const child = spawn(AGENTQ, ['run', '--label', 'gpu', '--label', ' codex-account ', '--label', 'gpu', ...p], { stdio: 'ignore' });
    try {
      await waitFor(() => fs.existsSync(path.join(paths.logs, '1-long', '1.stdout.log')), 30_000, 'the gpu task to start');
      const status = await agentqJson<{ workers: Array<{ labels: string[]; running: number }> }>(['status', '--json', ...p]);
      assert.deepEqual(
        status.workers.map((w) => [w.labels, w.running]),
        [[['gpu', 'codex-account'], 1]],
        'labels trimmed, each once',
      );
      const text = await agentq(['status', ...p]);
      assert.match(text.stdout, /ID +HOST +PID +RUNNING +LABELS +LAST HEARTBEAT/);
      assert.match(text.stdout, / 1 +gpu, codex-account +\d{4}-/);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });

  it('submit --runs-on sets runs_on; show prints it and the host and labels of the dispatcher of each attempt', async () => {
    const paths = makeProject({ poll_interval: '100ms', agents: { command: { command: 'cat' } } });
    const p = ['--project', paths.root];
    const submitted = await agentq(['submit', '--prompt', 'hello', '--name', 'train', '--agent', 'command', '--runs-on', 'gpu', '--runs-on', ' big ', '--runs-on', 'gpu', ...p]);
    assert.equal(submitted.code, 0, submitted.stderr);
    const child = spawn(AGENTQ, ['run', '--label', 'big', '--label', 'gpu', '--label', 'extra', ...p], { stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    type Shown = { runsOn: string[]; attemptHistory: Array<{ dispatcher: { host: string | null; labels: string[] | null } }> };
    try {
      await waitFor(() => fs.existsSync(path.join(paths.done, 'train.md')), 30_000, 'the task to complete');
      const live = await agentqJson<Shown>(['show', 'train', '--json', ...p]);
      assert.deepEqual(live.runsOn, ['gpu', 'big']);
      assert.deepEqual(live.attemptHistory.map((a) => a.dispatcher), [{ host: os.hostname(), labels: ['big', 'gpu', 'extra'] }]);
      const text = await agentq(['show', 'train', ...p]);
      assert.match(text.stdout, /^runs_on: +gpu, big$/m);
      assert.match(text.stdout, /^# +OUTCOME +AGENT +MODEL +HOST +LABELS +EXIT/m);
      assert.match(text.stdout, new RegExp(`^1 +completed +command +${os.hostname().replace(/[.]/g, '\\.')} +big, gpu, extra +0 `, 'm'));
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    // The dispatcher has left: its host is still known (from its id), its labels no longer.
    const gone = await agentqJson<Shown>(['show', 'train', '--json', ...p]);
    assert.deepEqual(gone.attemptHistory.map((a) => a.dispatcher), [{ host: os.hostname(), labels: null }]);
    assert.match((await agentq(['show', 'train', ...p])).stdout, /^1 +completed +command +\S+ +\(gone\) +0 /m);
  });

  it('refuses a blank submit --runs-on, and --runs-on with a task FILE, as usage errors (exit 2)', async () => {
    const paths = makeProject();
    const blank = await agentq(['submit', '--prompt', 'x', '--runs-on', '', '--project', paths.root]);
    assert.equal(blank.code, 2);
    assert.match(blank.stderr, /^agentq: --runs-on: "" is not a non-empty string\n/);
    const file = path.join(paths.root, 'task.md');
    fs.writeFileSync(file, 'x\n');
    const withFile = await agentq(['submit', file, '--runs-on', 'gpu', '--project', paths.root]);
    assert.equal(withFile.code, 2);
    assert.match(withFile.stderr, /^agentq: --runs-on: only with --prompt/);
    assert.deepEqual(listDir(paths.inbox), []);
  });

  it('refuses a blank --label as a usage error (exit 2)', async () => {
    const paths = makeProject();
    const r = await agentq(['run', '--once', '--label', ' ', '--project', paths.root]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^agentq: --label: " " is not a non-empty string\n/);
  });
});
