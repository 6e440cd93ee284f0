/**
 * The CLI end to end with the `command` agent: real `bin/agentq` processes, real files.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { agentq, agentqJson, dropTask, listDir, makeProject, readResult } from '../fixtures/project.ts';

const record = (file: string) => ({ command: `cat >/dev/null; echo "$AGENTQ_TASK_NAME" >> ${file}; echo "did $AGENTQ_TASK_NAME"` });

describe('agentq CLI', () => {
  it('runs by priority then arrival, respects dependencies, writes results, exits 0', async () => {
    const paths = makeProject({ concurrency: 1 });
    const order = path.join(paths.root, 'order.txt');
    const fm = (over: Record<string, unknown>) => ({ agent: 'command', ...record(order), ...over });
    dropTask(paths, 'a-low', fm({ priority: 'low' }), 'x');
    dropTask(paths, 'b-default', fm({}), 'x');
    dropTask(paths, 'c-critical', fm({ priority: 'critical', depends_on: ['d-low'] }), 'x');
    dropTask(paths, 'd-low', fm({ priority: 'low' }), 'x');
    dropTask(paths, 'e-high', fm({ priority: 'high', title: 'The high one', owner: 'alice' }), 'x');
    const r = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(fs.readFileSync(order, 'utf8').trim().split('\n'), ['e-high', 'b-default', 'a-low', 'd-low', 'c-critical']);
    assert.deepEqual(listDir(paths.done), ['a-low.md', 'b-default.md', 'c-critical.md', 'd-low.md', 'e-high.md']);
    const { fm: out, body } = readResult(path.join(paths.done, 'e-high.md'));
    assert.equal(out.status, 'completed');
    assert.equal(out.title, 'The high one');
    assert.equal(out.owner, 'alice', 'unknown fields are kept and shown');
    assert.equal(out.attempts, 1);
    assert.ok(typeof out.duration_ms === 'number');
    assert.ok(!Number.isNaN(Date.parse(String(out.started_at))));
    assert.equal(body, 'did e-high');
    assert.deepEqual(listDir(paths.inbox), []);
  });

  it('fails a dependent with the dependency named, keeps going, exits 1', async () => {
    const paths = makeProject();
    dropTask(paths, 'build', { agent: 'command', command: 'echo broken >&2; exit 3' }, 'x');
    dropTask(paths, 'deploy', { agent: 'command', command: 'echo deployed', depends_on: ['build'] }, 'x');
    dropTask(paths, 'other', { agent: 'command', command: 'echo fine' }, 'x');
    dropTask(paths, 'bad', { agent: 'command', retries: 'many' }, 'x');
    const r = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(r.code, 1);
    assert.deepEqual(listDir(paths.done), ['other.md']);
    assert.deepEqual(listDir(paths.failed), ['bad.md', 'build.md', 'deploy.md']);
    const build = readResult(path.join(paths.failed, 'build.md'));
    assert.equal(build.fm.status, 'failed');
    assert.match(String(build.fm.failed_reason), /exited with code 3.*broken/);
    assert.equal(build.body, 'x', 'the failed file carries the original task body');
    assert.match(String(readResult(path.join(paths.failed, 'deploy.md')).fm.failed_reason), /^dependency "build" \(task \d+\) ended failed$/);
    const bad = readResult(path.join(paths.failed, 'bad.md'));
    assert.equal(bad.fm.status, 'invalid');
    assert.match(String(bad.fm.failed_reason), /^retries: "many"/);
  });

  it('retries a failed attempt with backoff, telling the agent what failed before; a timeout is final unless retry_on_timeout', async () => {
    const paths = makeProject({ kill_grace: '200ms' });
    const counter = path.join(paths.root, 'tries');
    const prompts = path.join(paths.root, 'prompts.txt');
    // Fails on the first try (exit 7 with a message), succeeds on the second; records each prompt.
    const flaky = `cat >> ${prompts}; echo >> ${counter}; if [ $(wc -l < ${counter}) -lt 2 ]; then echo "disk full" >&2; exit 7; fi; echo recovered`;
    dropTask(paths, 'flaky', { agent: 'command', command: flaky, retries: 2, retry_backoff: '100ms' }, 'Do the flaky thing.');
    dropTask(paths, 'slow-final', { agent: 'command', command: 'sleep 30', timeout: '1s', retries: 2 }, 'x');
    const slowCount = path.join(paths.root, 'slow-tries');
    dropTask(paths, 'slow-retried', { agent: 'command', command: `echo >> ${slowCount}; sleep 30`, timeout: '1s', retries: 1, retry_on_timeout: true, retry_backoff: '100ms' }, 'x');
    const r = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(r.code, 1);
    const flakyResult = readResult(path.join(paths.done, 'flaky.md'));
    assert.equal(flakyResult.body, 'recovered');
    assert.equal(flakyResult.fm.attempts, 2);
    const seen = fs.readFileSync(prompts, 'utf8');
    assert.match(seen, /Do the flaky thing\.\n\n---\nNote from agent-queue: this task was tried before and did not succeed\.\n- attempt 1 failed \(exit code 7\): command exited with code 7: disk full\n/);
    assert.equal(readResult(path.join(paths.failed, 'slow-final.md')).fm.attempts, 1, 'a timeout is final by default');
    const retried = readResult(path.join(paths.failed, 'slow-retried.md'));
    assert.equal(retried.fm.status, 'timed_out');
    assert.equal(retried.fm.attempts, 2);
    assert.equal(fs.readFileSync(slowCount, 'utf8'), '\n\n');
  });

  it('a parent that files subtasks completes only after they do; show prints the tree', async () => {
    const paths = makeProject();
    const sub = (name: string) =>
      `printf -- '---\\nagent: command\\nparent: plan\\ncommand: sleep 0.2; echo ${name} done\\n---\\nDo ${name}.\\n' > .agent-queue/inbox/.${name}.tmp && mv .agent-queue/inbox/.${name}.tmp .agent-queue/inbox/${name}.md`;
    dropTask(paths, 'plan', { agent: 'command', command: `${sub('part-a')}; ${sub('part-b')}; echo planned` }, 'Split the work.');
    const r = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /waiting\s+#1 plan: its own run completed/);
    const plan = readResult(path.join(paths.done, 'plan.md'));
    const parts = ['part-a', 'part-b'].map((n) => readResult(path.join(paths.done, `${n}.md`)));
    assert.equal(plan.fm.status, 'completed');
    assert.equal(plan.body, 'planned');
    for (const p of parts) {
      assert.equal(p.fm.parent, 'plan');
      assert.ok(Date.parse(String(plan.fm.finished_at)) >= Date.parse(String(p.fm.finished_at)), 'the parent ends after its subtasks');
    }
    const show = await agentq(['show', 'plan', '--project', paths.root]);
    assert.match(show.stdout, /subtasks:\n#1 plan \[completed\]\n└─ #\d+ part-a \[completed\]\n└─ #\d+ part-b \[completed\]/);
  });

  it('never overwrites a result file: a second task of the same name gets its id in the name', async () => {
    const paths = makeProject();
    dropTask(paths, 'same', { agent: 'command', command: 'echo one' }, 'x');
    assert.equal((await agentq(['run', '--once', '--project', paths.root])).code, 0);
    dropTask(paths, 'same', { agent: 'command', command: 'echo two' }, 'y');
    assert.equal((await agentq(['run', '--once', '--project', paths.root])).code, 0);
    assert.deepEqual(listDir(paths.done), ['same.2.md', 'same.md']);
    assert.equal(readResult(path.join(paths.done, 'same.md')).body, 'one');
    assert.equal(readResult(path.join(paths.done, 'same.2.md')).body, 'two');
  });

  it('times out a task and stops its whole process tree', async () => {
    const paths = makeProject({ kill_grace: '300ms' });
    const marker = crypto.randomUUID();
    dropTask(paths, 'slow', { agent: 'command', command: `setsid sleep 60 & sleep 60`, timeout: '1s' }, 'x');
    const r = await agentq(['run', '--once', '--project', paths.root], { AGENTQ_TEST_MARK: marker });
    assert.equal(r.code, 1);
    const { fm } = readResult(path.join(paths.failed, 'slow.md'));
    assert.equal(fm.status, 'timed_out');
    const { pidsWithEnv } = await import('../fixtures/procs.ts');
    assert.deepEqual(pidsWithEnv('AGENTQ_TEST_MARK', marker), []);
  });

  it('SIGTERM stops cleanly: the running agent is stopped and its task requeued without using an attempt', async () => {
    const paths = makeProject({ kill_grace: '300ms', poll_interval: '100ms' });
    const marker = crypto.randomUUID();
    dropTask(paths, 'long', { agent: 'command', command: 'sleep 60' }, 'x');
    const { spawn } = await import('node:child_process');
    const { AGENTQ } = await import('../fixtures/project.ts');
    const { pidsWithEnv, waitFor } = await import('../fixtures/procs.ts');
    const child = spawn(AGENTQ, ['run', '--project', paths.root], { env: { ...process.env, AGENTQ_TEST_MARK: marker }, stdio: 'ignore' });
    await waitFor(() => fs.existsSync(path.join(paths.logs, '1-long', '1.stdout.log')), 30_000, 'the agent to start');
    const t0 = Date.now();
    child.kill('SIGTERM');
    const code = await new Promise((r) => child.once('exit', r));
    assert.equal(code, 0);
    assert.ok(Date.now() - t0 < 10_000);
    assert.deepEqual(pidsWithEnv('AGENTQ_TEST_MARK', marker), []);
    const show = JSON.parse((await agentq(['show', 'long', '--json', '--project', paths.root])).stdout);
    assert.equal(show.state, 'queued');
    assert.equal(show.attempts, 0);
    assert.deepEqual(show.attemptHistory.map((a: { outcome: string }) => a.outcome), ['interrupted']);
    const status = await agentqJson(['status', '--json', '--project', paths.root]);
    assert.deepEqual(status.workers, [], 'the dispatcher unregistered itself');
  });

  it('cancel stops a running task of another process and ends it cancelled', async () => {
    const paths = makeProject({ kill_grace: '300ms', poll_interval: '100ms' });
    const marker = crypto.randomUUID();
    dropTask(paths, 'long', { agent: 'command', command: 'setsid sleep 60 & sleep 60' }, 'x');
    const { spawn } = await import('node:child_process');
    const { AGENTQ } = await import('../fixtures/project.ts');
    const { pidsWithEnv, waitFor } = await import('../fixtures/procs.ts');
    const child = spawn(AGENTQ, ['run', '--project', paths.root], { env: { ...process.env, AGENTQ_TEST_MARK: marker }, stdio: 'ignore' });
    try {
      await waitFor(() => fs.existsSync(path.join(paths.logs, '1-long', '1.stdout.log')), 30_000, 'the agent to start');
      const r = await agentq(['cancel', 'long', '--project', paths.root]);
      assert.match(r.stdout, /^cancelling #1 long/);
      await waitFor(() => listDir(paths.failed).includes('long.md'), 10_000, 'the cancelled result');
      assert.equal(readResult(path.join(paths.failed, 'long.md')).fm.status, 'cancelled');
      await waitFor(() => pidsWithEnv('AGENTQ_TEST_MARK', marker).filter((p) => p !== child.pid).length <= 1, 5_000, 'the agent tree to be gone');
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });

  it('submit, list, show, cancel, retry and status work on the store', async () => {
    const paths = makeProject({ agents: { command: { command: 'cat' } } });
    const p = ['--project', paths.root];
    assert.equal((await agentq(['submit', ...p, '--title', 'Say hi', '--prompt', 'hello', '--agent', 'command', '--priority', 'high'])).code, 0);
    assert.deepEqual(listDir(paths.inbox), ['say-hi.md']);
    const file = path.join(paths.root, 'mine.md');
    fs.writeFileSync(file, '---\nagent: command\ncommand: exit 1\n---\nfail please\n');
    assert.equal((await agentq(['submit', ...p, file])).code, 0);
    const dup = await agentq(['submit', ...p, file]);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /already exists in the inbox/);
    fs.utimesSync(path.join(paths.inbox, 'mine.md'), new Date(0), new Date(0));
    fs.utimesSync(path.join(paths.inbox, 'say-hi.md'), new Date(0), new Date(0));
    // A task whose dependency is never satisfied while we cancel it.
    dropTask(paths, 'later', { agent: 'command', depends_on: ['mine'] }, 'x');
    assert.equal((await agentq(['run', '--once', ...p])).code, 1);
    const list = await agentq(['list', '--json', ...p]);
    const tasks = JSON.parse(list.stdout) as Array<{ name: string; state: string }>;
    assert.deepEqual(Object.fromEntries(tasks.map((t) => [t.name, t.state])), { 'say-hi': 'completed', mine: 'failed', later: 'failed' });
    const show = await agentq(['show', 'say-hi', ...p]);
    assert.match(show.stdout, /state:\s+completed/);
    assert.match(show.stdout, /--- result ---\nhello/);
    const logs = await agentq(['logs', 'say-hi', ...p]);
    assert.match(logs.stdout, /^==> attempt 1 stdout \(.*\d+-say-hi\/1\.stdout\.log\) <==\nhello/);
    const retried = await agentq(['retry', 'mine', ...p]);
    assert.equal(retried.code, 0, retried.stderr);
    const cancelled = await agentq(['cancel', 'mine', ...p]);
    assert.match(cancelled.stdout, /^cancelled #\d+ mine/);
    const status = await agentqJson(['status', '--json', ...p]) as { counts: Record<string, number> };
    assert.deepEqual(status.counts, { queued: 0, running: 0, completed: 1, failed: 1, timed_out: 0, budget_exceeded: 0, cancelled: 1, invalid: 0, duplicate: 0, blocked: 0, waiting: 0 });
    const mineId = JSON.parse((await agentq(['show', 'mine', '--json', ...p])).stdout).id as number;
    assert.deepEqual(listDir(paths.failed), ['later.md', `mine.${mineId}.md`, 'mine.md'], 'the retried outcome is a new file');
    assert.equal(readResult(path.join(paths.failed, `mine.${mineId}.md`)).fm.status, 'cancelled');
    assert.equal(readResult(path.join(paths.failed, 'mine.md')).fm.status, 'failed');
  });

  it('prints usage and exits 2 on a bad flag or value; one clear line for other errors', async () => {
    const paths = makeProject();
    const bad = await agentq(['run', '--bogus', '--project', paths.root]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown option '--bogus'/);
    assert.match(bad.stderr, /Usage: agentq run/);
    const state = await agentq(['list', '--state', 'nope', '--project', paths.root]);
    assert.equal(state.code, 2);
    const conc = await agentq(['run', '--once', '--concurrency', 'zero', '--project', paths.root]);
    assert.equal(conc.code, 2);
    assert.match(conc.stderr, /--concurrency: "zero"/);
    const missing = await agentq(['show', '42', '--project', paths.root]);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr.trim(), 'agentq: no task "42" (give a task id or name)');
    const noProject = await agentq(['list', '--project', path.join(paths.root, 'nowhere')]);
    assert.equal(noProject.code, 1);
    assert.match(noProject.stderr, /not an agent-queue project/);
  });
});
