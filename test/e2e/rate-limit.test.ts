/**
 * `agents.<name>.rate_limit` through the real CLI: `agentq run` holds an agent to its rate
 * (tasks wait, no attempt used, `agentq status` says why and until when), and `agent: auto`
 * moves on from the real Claude Code CLI (against the scripted Messages API) once claude's
 * bucket is empty.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { claudeEnv, makeClaudeSandbox } from '../fixtures/claude-env.ts';
import { startFakeAnthropic } from '../fixtures/fake-anthropic.ts';
import { AGENTQ, agentq, agentqJson, dropTask, listDir, makeProject, readResult } from '../fixtures/project.ts';
import { waitFor } from '../fixtures/procs.ts';

type Fake = Awaited<ReturnType<typeof startFakeAnthropic>>;

describe('agents.<name>.rate_limit through agentq run', { concurrency: false }, () => {
  let fake: Fake;
  let env: Record<string, string>;
  before(async () => {
    fake = await startFakeAnthropic({ defaultTurns: [{ text: 'answered by claude' }] });
    env = claudeEnv(fake.url, makeClaudeSandbox().config);
  });
  after(async () => fake.close());

  it('command at 2/h: two of four tasks run, the other two wait for the bucket without using attempts', async () => {
    const paths = makeProject({ concurrency: 4, poll_interval: '200ms', agents: { command: { command: 'echo ran', rate_limit: '2/h' } } });
    for (const name of ['t1', 't2', 't3', 't4']) dropTask(paths, name, { agent: 'command' }, name);
    const started = Date.now();
    const child = spawn(AGENTQ, ['run', '--project', paths.root], { env, stdio: 'ignore' });
    let code: number | null = null;
    try {
      await waitFor(() => listDir(paths.done).length === 2, 60_000, 'two tasks to complete');
      await new Promise((r) => setTimeout(r, 1000)); // a few more polls: nothing else may start
    } finally {
      child.kill('SIGTERM');
      code = await new Promise<number | null>((r) => child.once('exit', r));
    }
    assert.equal(code, 0);
    assert.equal(listDir(paths.done).length, 2);
    assert.deepEqual(listDir(paths.failed), []);
    const tasks = JSON.parse((await agentq(['list', '--json', '--project', paths.root], env)).stdout) as Array<{ state: string; attempts: number; claims: number }>;
    const queued = tasks.filter((t) => t.state === 'queued');
    assert.equal(queued.length, 2);
    assert.deepEqual(queued.map((t) => [t.attempts, t.claims]), [[0, 0], [0, 0]], 'not claimed: no attempt used');

    const status = await agentqJson(['status', '--json', '--project', paths.root], env) as { pausedAgents: Array<{ agent: string; until: number; reason: string }> };
    const [pause] = status.pausedAgents;
    assert.equal(pause?.agent, 'command');
    // The bucket of 2 was full; after two starts the next token is 30 min after the first start.
    assert.ok(pause.until >= started + 30 * 60_000 && pause.until <= Date.now() + 30 * 60_000, `paused until ${new Date(pause.until).toISOString()}`);
    assert.match(pause.reason, /^rate_limit 2\/h: bucket empty, next start at \d\d:\d\d:\d\d UTC$/);
    const text = (await agentq(['status', '--project', paths.root], env)).stdout;
    assert.match(text, /command paused until \S+ \(\d+m \d\ds left\): rate_limit 2\/h: bucket empty, next start at/);
  });

  it('agent: auto runs one task on claude (1/h), then fails over to command for the rest', async () => {
    const paths = makeProject({
      concurrency: 1,
      fallback: { default: ['claude', 'command'] },
      agents: { claude: { rate_limit: '1/h' }, command: { command: 'echo "command did: $(cat)"' } },
    });
    for (const name of ['a1', 'a2', 'a3']) dropTask(paths, name, { agent: 'auto' }, `Task ${name}.`);
    const r = await agentq(['run', '--once', '--project', paths.root], env);
    assert.equal(r.code, 0, r.stderr);
    const agents = ['a1', 'a2', 'a3'].map((n) => readResult(path.join(paths.done, `${n}.md`)).fm);
    assert.deepEqual(agents.map((fm) => [fm.agent, fm.attempts]), [['claude', 1], ['command', 1], ['command', 1]]);
    assert.equal(readResult(path.join(paths.done, 'a2.md')).body, 'command did: Task a2.');
    assert.equal(fake.requests.filter((q) => q.hasTools && q.firstUserText?.includes('Task a')).length, 1, 'claude was started once');
    const status = await agentqJson(['status', '--json', '--project', paths.root], env) as { pausedAgents: Array<{ agent: string; reason: string }> };
    assert.deepEqual(status.pausedAgents.map((p) => p.agent), ['claude']);
    assert.match(status.pausedAgents[0]!.reason, /^rate_limit 1\/h: bucket empty/);
    assert.match(r.stderr, /paused\s+claude until .*rate_limit 1\/h/);
  });
});
