/**
 * `agents.<name>.account` end to end: two real `bin/agentq run` processes (two projects, as
 * two machines) on one PostgreSQL store, each running the real Claude Code CLI against the
 * scripted Messages API. Dispatcher A's task gets HTTP 429, so A pauses claude's account for
 * `rate_limit_backoff`; dispatcher B on the same account does not start its own claude task
 * until the pause ends, while a B on another account starts it at once. Each task is pinned to
 * its dispatcher by `runs_on`, so only the pause decides when B's task starts.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import type { ProjectPaths } from '../../src/config/config.ts';
import { PostgresStore } from '../../src/store/postgres/postgres-store.ts';
import { claudeEnv, makeClaudeSandbox } from '../fixtures/claude-env.ts';
import { startFakeAnthropic } from '../fixtures/fake-anthropic.ts';
import { freshDatabase, startPostgres, type PostgresCluster } from '../fixtures/postgres.ts';
import { waitFor } from '../fixtures/procs.ts';
import { AGENTQ, agentqJson, dropTask, makeProject } from '../fixtures/project.ts';

type Fake = Awaited<ReturnType<typeof startFakeAnthropic>>;

/** How long A's 429 pauses the account (no reset time can be stated offline: the backoff is the reset). */
const PAUSE_MS = 4_000;

let cluster: PostgresCluster | undefined;
let fake: Fake;
let env: Record<string, string>;

before(async () => {
  [cluster, fake] = await Promise.all([startPostgres(), startFakeAnthropic({ defaultTurns: [{ text: 'done by claude' }] })]);
  env = claudeEnv(fake.url, makeClaudeSandbox().config);
});

after(async () => {
  await fake?.close();
  await cluster?.stop();
});

/** A dispatcher: `agentq run --label LABEL` on its own project, on the shared store. */
function dispatcher(paths: ProjectPaths, label: string, storeUrl: string): { child: ChildProcess; stderr: () => string; stop: () => Promise<number | null> } {
  const child = spawn(AGENTQ, ['run', '--project', paths.root, '--store', storeUrl, '--label', label], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return {
    child,
    stderr: () => stderr,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/**
 * Starts dispatchers A and B (claude on `accountA`, `accountB`), gets A paused by a 429, then
 * drops B's task. Returns the pause and when B's task started and completed.
 */
async function scenario(accountA: string | undefined, accountB: string | undefined, { waitForA }: { waitForA: boolean }) {
  const url = `${await freshDatabase(cluster!.url)}?schema=shared_acct`;
  const claude = (account: string | undefined) => ({ rate_limit_backoff: `${PAUSE_MS / 1000}s`, ...(account ? { account } : {}) });
  const projectA = makeProject({ poll_interval: '200ms', agents: { claude: claude(accountA) } });
  const projectB = makeProject({ poll_interval: '200ms', agents: { claude: claude(accountB) } });
  const tag = crypto.randomUUID().slice(0, 8);
  fake.setRules([{ match: `limited ${tag}`, turns: [{ error: { status: 429 }, times: 'always' }] }]);
  const store = await PostgresStore.open(url);
  const a = dispatcher(projectA, 'a', url);
  const b = dispatcher(projectB, 'b', url);
  try {
    dropTask(projectA, 'on-a', { runs_on: ['a'] }, `The limited ${tag} task.`);
    await waitFor(async () => (await store.listPauses(Date.now())).length > 0, 30_000, `A to pause claude's account (A: ${a.stderr()})`);
    const [pause] = await store.listPauses(Date.now());
    // Now the limit lifts for A's task (its retry after the pause completes); B's task comes in.
    fake.setRules([]);
    const droppedAt = Date.now();
    dropTask(projectB, 'on-b', { runs_on: ['b'] }, `The ${tag} task of B.`);
    await waitFor(async () => (await store.getTask('on-b'))?.state === 'completed', 30_000, `B's task to complete (B: ${b.stderr()})`);
    if (waitForA) await waitFor(async () => (await store.getTask('on-a'))?.state === 'completed', 30_000, `A's task to complete after the pause (A: ${a.stderr()})`);
    const taskB = (await store.getTask('on-b'))!;
    const [attemptB] = await store.listAttempts(taskB.id);
    const status = await agentqJson(['status', '--json', '--project', projectB.root, '--store', url], env);
    return { pause: pause!, droppedAt, taskB, attemptB: attemptB!, status, codes: [await a.stop(), await b.stop()] };
  } finally {
    await Promise.all([a.stop(), b.stop()]);
    await store.close();
  }
}

describe('agents.<name>.account on one PostgreSQL store, two agentq run processes', { concurrency: false }, () => {
  it("a 429 on A pauses the account: B on the same account starts its claude task only once the pause ends", async (t) => {
    const { pause, droppedAt, taskB, attemptB, status, codes } = await scenario('team', 'team', { waitForA: true });
    assert.equal(pause.agent, 'team', 'the account is paused, not "claude"');
    assert.match(pause.reason, /429|rate/i);
    assert.ok(pause.until - droppedAt > 1_500, `the pause had ${pause.until - droppedAt} ms left when B's task came in`);
    assert.ok(attemptB.startedAt >= pause.until, `B started its task ${pause.until - attemptB.startedAt} ms before the pause ended`);
    assert.equal(taskB.claims, 1, "B's claims skipped the task while the account was paused (no attempt requeued)");
    assert.equal(taskB.result, 'done by claude');
    t.diagnostic(`B's task: dropped ${pause.until - droppedAt} ms before the pause ended, started ${attemptB.startedAt - pause.until} ms after it`);
    assert.deepEqual(codes, [0, 0]);
    // status names the account of the agent (it differs from the agent's name).
    const claudeRow = (status.agents as Array<{ agent: string; account?: string }>).find((r) => r.agent === 'claude');
    assert.equal(claudeRow?.account, 'team');
  });

  it('B on another account starts its claude task at once while A\'s account is paused', async () => {
    const { pause, droppedAt, attemptB, taskB } = await scenario(undefined, 'other', { waitForA: false });
    assert.equal(pause.agent, 'claude', "A's claude is its own account");
    assert.ok(attemptB.startedAt < pause.until, `B waited for A's pause (started ${attemptB.startedAt - pause.until} ms after it ended)`);
    assert.ok(attemptB.startedAt - droppedAt < 5_000, `B started ${attemptB.startedAt - droppedAt} ms after the task came in`);
    assert.equal(taskB.result, 'done by claude');
  });
});
