/**
 * The main job end to end: task files → `agentq run` → the real Claude Code CLI against the
 * scripted Messages API → result files and store rows.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { costOf } from '../../src/pricing/prices.ts';
import { claudeEnv, makeClaudeSandbox } from '../fixtures/claude-env.ts';
import { startFakeAnthropic } from '../fixtures/fake-anthropic.ts';
import { AGENTQ, agentq, agentqJson, dropTask, listDir, makeProject, readResult } from '../fixtures/project.ts';
import { pidsWithEnv, waitFor } from '../fixtures/procs.ts';

type Fake = Awaited<ReturnType<typeof startFakeAnthropic>>;

describe('Claude Code through the dispatcher', { concurrency: false }, () => {
  let fake: Fake;
  let env: Record<string, string>;
  before(async () => {
    fake = await startFakeAnthropic({ defaultTurns: [{ text: 'answered by {{model}}' }] });
    env = claudeEnv(fake.url, makeClaudeSandbox().config);
  });
  after(async () => fake.close());

  it('runs dependencies in order, routes priority to the model, and a Bash tool call really edits the project', async () => {
    const paths = makeProject();
    fake.setRules([{ match: 'write the notes', turns: [{ bash: 'echo "from claude" > notes.txt' }, { text: 'Wrote notes.txt' }] }]);
    dropTask(paths, 'plan', { priority: 'critical', title: 'Plan it' }, 'Plan the work.');
    dropTask(paths, 'notes', { depends_on: ['plan'] }, 'Please write the notes file.');
    dropTask(paths, 'pinned', { priority: 'critical', model: 'haiku' }, 'Use the pinned model.');
    const r = await agentq(['run', '--once', '--project', paths.root], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(fs.readFileSync(path.join(paths.root, 'notes.txt'), 'utf8'), 'from claude\n');

    const plan = readResult(path.join(paths.done, 'plan.md'));
    assert.equal(plan.body, 'answered by claude-opus-4-8');
    assert.equal(plan.fm.model, 'claude-opus-4-8');
    assert.match(String(plan.fm.session_id), /^[0-9a-f-]{36}$/);
    assert.ok(Number(plan.fm.cost_usd) > 0);
    assert.equal(plan.fm.input_tokens, 100);
    assert.equal(plan.fm.output_tokens, 10);
    const notes = readResult(path.join(paths.done, 'notes.md'));
    assert.equal(notes.body, 'Wrote notes.txt');
    assert.equal(notes.fm.model, 'claude-sonnet-5');
    assert.equal(notes.fm.num_turns, 2);
    assert.equal(readResult(path.join(paths.done, 'pinned.md')).body, 'answered by claude-haiku-4-5-20251001');

    const turns = fake.requests.filter((q) => q.hasTools);
    const first = (text: string) => turns.find((q) => q.firstUserText?.includes(text))!;
    assert.equal(first('Plan the work').model, 'claude-opus-4-8');
    assert.equal(first('write the notes').model, 'claude-sonnet-5');
    const planDone = Date.parse(String(plan.fm.finished_at));
    assert.ok(first('write the notes').time >= planDone, 'the dependent started after its dependency finished');
    const log = fs.readFileSync(path.join(paths.logs, `${notes.fm.task_id}-notes`, '1.stdout.log'), 'utf8');
    assert.match(log, /"type":"result"/, 'raw stream-json is kept per attempt');
  });

  it('a question blocks the task; agentq answer resumes the same Claude session with the answer', async () => {
    const paths = makeProject();
    fake.setRules([
      {
        match: 'paint the fence',
        turns: [{ text: 'I can do that.\n<<question>>Which colour should the fence be?<</question>>' }, { text: 'Painted it {{model}} blue.' }],
      },
    ]);
    dropTask(paths, 'fence', null, 'Please paint the fence.');
    const first = await agentq(['run', '--once', '--project', paths.root], env);
    assert.equal(first.code, 1, 'a blocked task has not completed');
    assert.match(first.stderr, /blocked\s+#1 fence asks: Which colour should the fence be\?/);
    const blocked = JSON.parse((await agentq(['list', '--state', 'blocked', '--json', '--project', paths.root], env)).stdout);
    assert.deepEqual(blocked.map((t: { name: string; question: string }) => [t.name, t.question]), [['fence', 'Which colour should the fence be?']]);
    const firstTurn = fake.requests.find((q) => q.hasTools && q.firstUserText?.includes('paint the fence'))!;
    const system = JSON.stringify((firstTurn.body as { system?: unknown }).system);
    assert.match(system, /<<question>>your question<<\/question>>/, 'the agent was told how to ask');

    const answered = await agentq(['answer', 'fence', 'Blue, please.', '--project', paths.root], env);
    assert.equal(answered.code, 0, answered.stderr);
    const second = await agentq(['run', '--once', '--project', paths.root], env);
    assert.equal(second.code, 0, second.stderr);
    const { fm, body } = readResult(path.join(paths.done, 'fence.md'));
    assert.equal(body, 'Painted it claude-sonnet-5 blue.');
    const resumed = fake.requests.filter((q) => q.hasTools && q.sessionId === firstTurn.sessionId);
    assert.equal(resumed.length, 2, 'the answer went to the same session');
    assert.match(JSON.stringify(resumed[1]!.body), /Blue, please\./);
    assert.equal(fm.session_id, firstTurn.sessionId);
    assert.equal(fm.attempts, 2);
  });

  it('retries an is_error result (API 400) and tells the next attempt what failed', async () => {
    const paths = makeProject();
    fake.setRules([{ match: 'flaky api', turns: [{ error: { status: 400, message: 'prompt is malformed' } }] }]);
    dropTask(paths, 'flaky', { retries: 1, retry_backoff: '2s' }, 'Use the flaky api.');
    const run = agentq(['run', '--once', '--project', paths.root], env);
    const { waitFor } = await import('../fixtures/procs.ts');
    await waitFor(() => fake.requests.some((q) => q.hasTools && q.firstUserText?.includes('flaky api') && q.status === 400), 30_000, 'the 400');
    fake.setRules([{ match: 'flaky api', turns: [{ text: 'worked the second time' }] }]);
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    const { fm, body } = readResult(path.join(paths.done, 'flaky.md'));
    assert.equal(body, 'worked the second time');
    assert.equal(fm.attempts, 2);
    const second = fake.requests.filter((q) => q.hasTools && q.firstUserText?.includes('flaky api')).at(-1)!;
    assert.match(second.firstUserText!, /Note from agent-queue: this task was tried before[\s\S]*- attempt 1 failed \(exit code 1\): API Error: 400/);
  });

  it('agent: auto fails over from a rate-limited claude to the next agent of the fallback list', async (t) => {
    const paths = makeProject({
      fallback: { default: ['claude', 'command'] },
      agents: { claude: { rate_limit_backoff: '10m' }, command: { command: 'echo "command did: $(cat)"' } },
    });
    fake.setRules([{ match: 'limited everywhere', turns: [{ error: { status: 429 }, times: 'always' }] }]);
    dropTask(paths, 'move', { agent: 'auto' }, 'This is limited everywhere on claude.');
    const r = await agentq(['run', '--once', '--project', paths.root], env);
    assert.equal(r.code, 0, r.stderr);
    const { fm, body } = readResult(path.join(paths.done, 'move.md'));
    assert.equal(fm.agent, 'command', 'the result names the agent of the completing attempt');
    assert.match(body, /^command did: This is limited everywhere on claude\./);
    const show = JSON.parse((await agentq(['show', 'move', '--json', '--project', paths.root], env)).stdout);
    assert.deepEqual(show.attemptHistory.map((a: { agent: string; outcome: string }) => [a.agent, a.outcome]), [['claude', 'rate_limited'], ['command', 'completed']]);
    assert.equal(show.attempts, 1, 'the rate-limited attempt did not count');
    const first429 = fake.requests.find((q) => q.hasTools && q.firstUserText?.includes('limited everywhere') && q.status === 429)!;
    t.diagnostic(`failover: first 429 → next agent started in ${show.attemptHistory[1].startedAt - first429.time} ms`);
    const status = await agentqJson(['status', '--json', '--project', paths.root], env);
    assert.deepEqual(status.pausedAgents.map((p: { agent: string }) => p.agent), ['claude']);
  });

  it('agent: auto fails over from claude to the real Codex CLI, which completes the task', async (t) => {
    const { startFakeOpenAI, codexProviderArgs } = await import('../fixtures/fake-openai.ts');
    const openai = await startFakeOpenAI({ rules: [{ match: 'port the parser', turns: [{ text: 'ported by {{model}}' }] }] });
    try {
      const codexHome = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-codex-home-'));
      const paths = makeProject({
        fallback: { high: ['claude', 'codex'] },
        agents: {
          claude: { rate_limit_backoff: '10m' },
          codex: { args: codexProviderArgs(openai.baseUrl), env: { FAKE_OPENAI_API_KEY: 'test', CODEX_HOME: codexHome }, models: { high: 'gpt-5.5' } },
        },
      });
      fake.setRules([{ match: 'port the parser', turns: [{ error: { status: 529 }, times: 'always' }] }]);
      dropTask(paths, 'port', { agent: 'auto', priority: 'high' }, 'Please port the parser.');
      const r = await agentq(['run', '--once', '--project', paths.root], env);
      assert.equal(r.code, 0, r.stderr);
      const { fm, body } = readResult(path.join(paths.done, 'port.md'));
      assert.equal(fm.agent, 'codex');
      assert.equal(body, 'ported by gpt-5.5');
      assert.match(String(fm.session_id), /^[0-9a-f-]{36}$/, 'the codex thread id');
      // Codex reports tokens only: the cost comes from the price table (gpt-5* per million tokens).
      const expected = costOf('gpt-5.5', { inputTokens: Number(fm.input_tokens), outputTokens: Number(fm.output_tokens) });
      assert.ok(expected !== null && expected > 0 && Math.abs(Number(fm.cost_usd) - expected) < 1e-9, `cost_usd ${String(fm.cost_usd)} ≠ ${expected}`);
      const show = JSON.parse((await agentq(['show', 'port', '--json', '--project', paths.root], env)).stdout);
      assert.deepEqual(show.attemptHistory.map((a: { agent: string; outcome: string }) => [a.agent, a.outcome]), [['claude', 'rate_limited'], ['codex', 'completed']]);
      const first = fake.requests.find((q) => q.hasTools && q.firstUserText?.includes('port the parser') && q.status === 529)!;
      t.diagnostic(`failover: first 529 → codex started in ${show.attemptHistory[1].startedAt - first.time} ms`);
    } finally {
      await openai.close();
    }
  });

  it('agent: auto fails over from claude to the real Gemini CLI, which completes the task', async () => {
    const { startFakeGemini, geminiEnv } = await import('../fixtures/fake-gemini.ts');
    const gemini = await startFakeGemini({ rules: [{ match: 'translate the docs', turns: [{ text: 'translated by {{model}}' }] }] });
    try {
      const home = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-gemini-home-'));
      const g = geminiEnv(gemini.url, home);
      const paths = makeProject({
        fallback: { low: ['claude', 'gemini'] },
        agents: {
          claude: { rate_limit_backoff: '10m' },
          gemini: { env: { GEMINI_CLI_HOME: home, GOOGLE_GEMINI_BASE_URL: gemini.url, GEMINI_API_KEY: g.GEMINI_API_KEY!, TMPDIR: home } },
        },
      });
      fake.setRules([{ match: 'translate the docs', turns: [{ error: { status: 429 }, times: 'always' }] }]);
      dropTask(paths, 'docs', { agent: 'auto', priority: 'low' }, 'Please translate the docs.');
      const r = await agentq(['run', '--once', '--project', paths.root], env);
      assert.equal(r.code, 0, r.stderr);
      const { fm, body } = readResult(path.join(paths.done, 'docs.md'));
      assert.equal(fm.agent, 'gemini');
      assert.match(body, /^translated by gemini-/);
      const expected = costOf(String(fm.model), { inputTokens: Number(fm.input_tokens), outputTokens: Number(fm.output_tokens) });
      assert.ok(expected !== null && expected > 0 && Math.abs(Number(fm.cost_usd) - expected) < 1e-9, `cost_usd ${String(fm.cost_usd)} ≠ ${expected}`);
      const show = JSON.parse((await agentq(['show', 'docs', '--json', '--project', paths.root], env)).stdout);
      assert.deepEqual(show.attemptHistory.map((a: { agent: string; outcome: string }) => [a.agent, a.outcome]), [['claude', 'rate_limited'], ['gemini', 'completed']]);
    } finally {
      await gemini.close();
    }
  });

  it('fails fast on bad credentials (401), naming authentication', async () => {
    const paths = makeProject();
    fake.setRules([{ match: 'needs auth', turns: [{ error: { status: 401 }, times: 'always' }] }]);
    dropTask(paths, 'auth', null, 'This needs auth.');
    const t0 = Date.now();
    const r = await agentq(['run', '--once', '--project', paths.root], env);
    const elapsed = Date.now() - t0;
    assert.equal(r.code, 1);
    const { fm } = readResult(path.join(paths.failed, 'auth.md'));
    assert.equal(fm.status, 'failed');
    assert.match(String(fm.failed_reason), /authentication failed/i);
    assert.ok(elapsed < 30_000, `401 took ${elapsed} ms: the CLI's own retries were waited out`);
  });

  it('requeues on 429 without burning the attempt, pauses the agent (shown by status), then completes', async () => {
    const paths = makeProject({ poll_interval: '200ms', agents: { claude: { rate_limit_backoff: '3s' } } });
    fake.setRules([{ match: 'busy api', turns: [{ error: { status: 429 }, times: 'always' }] }]);
    dropTask(paths, 'limited', { retries: 0 }, 'The busy api task.');
    const child = spawn(AGENTQ, ['run', '--project', paths.root], { env, stdio: 'ignore' });
    try {
      let status: { pausedAgents: Array<{ agent: string; reason: string }> } = { pausedAgents: [] };
      await waitFor(async () => {
        status = await agentqJson(['status', '--json', '--project', paths.root], env);
        return status.pausedAgents.length > 0;
      }, 30_000, 'claude to be paused');
      assert.equal(status.pausedAgents[0]?.agent, 'claude');
      assert.match(status.pausedAgents[0]!.reason, /429|rate/i);
      // The limit lifts: the next attempt after the pause gets through.
      fake.setRules([{ match: 'busy api', turns: [{ text: 'finally through' }] }]);
      await waitFor(() => listDir(paths.done).includes('limited.md'), 30_000, 'the task to complete after the pause');
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    const { fm, body } = readResult(path.join(paths.done, 'limited.md'));
    assert.equal(body, 'finally through');
    assert.equal(fm.attempts, 2);
    const show = JSON.parse((await agentq(['show', 'limited', '--json', '--project', paths.root], env)).stdout);
    assert.equal(show.attempts, 1, 'the rate-limited attempt did not count against retries');
    assert.deepEqual(show.attemptHistory.map((a: { outcome: string }) => a.outcome), ['rate_limited', 'completed']);
  });

  it('max_cost_usd: a streamed response past the budget stops Claude at once; the task ends budget_exceeded', async () => {
    const paths = makeProject({ poll_interval: '200ms' });
    const marker = crypto.randomUUID();
    // 20,000 input tokens of claude-sonnet-5 at $3 per million = $0.06, over the $0.01 budget.
    fake.setRules([{ match: 'expensive work', turns: [{ bash: 'sleep 60', usage: { input_tokens: 20_000 }, timeoutMs: 120_000 }, { text: 'should not get here' }] }]);
    dropTask(paths, 'expensive', { max_cost_usd: 0.01, retries: 2 }, 'Do the expensive work.');
    const r = await agentq(['run', '--once', '--project', paths.root], { ...env, AGENTQ_TEST_MARK: marker });
    assert.equal(r.code, 1, r.stderr);
    const { fm } = readResult(path.join(paths.failed, 'expensive.md'));
    assert.equal(fm.status, 'budget_exceeded');
    // Stopped by agentq's meter while the tool ran, before the CLI's own --max-budget-usd check.
    assert.match(String(fm.failed_reason), /^budget exceeded: \$0\.060\d spent of max_cost_usd \$0\.01; the agent was stopped/);
    assert.equal(fm.attempts, 1, 'a spent budget is never retried');
    assert.deepEqual(pidsWithEnv('AGENTQ_TEST_MARK', marker), [], 'the agent and its sleep were stopped');
  });

  it('max_turns and allowed_tools reach the CLI: one turn allowed, so a task that needs two ends error_max_turns', async () => {
    const paths = makeProject();
    fake.setRules([{ match: 'two turns', turns: [{ bash: 'echo one' }, { text: 'two' }] }]);
    dropTask(paths, 'short', { max_turns: 1, allowed_tools: ['Read', 'Bash(echo:*)'], retries: 0 }, 'This needs two turns.');
    const r = await agentq(['run', '--once', '--project', paths.root], env);
    assert.equal(r.code, 1, r.stderr);
    const { fm } = readResult(path.join(paths.failed, 'short.md'));
    assert.match(String(fm.failed_reason), /error_max_turns/);
    const log = fs.readFileSync(path.join(paths.logs, `${fm.task_id}-short`, '1.stdout.log'), 'utf8');
    assert.match(log, /"subtype":"error_max_turns"/);
  });

  it('budgets.daily_usd: once the day\'s spend reaches it, the agent pauses until the next day and the rest wait', async () => {
    const paths = makeProject({ poll_interval: '200ms', concurrency: 1, agents: { claude: { budgets: { daily_usd: 0.0001 } } } });
    fake.setRules([]);
    dropTask(paths, 'first', { priority: 'high' }, 'First task of the day.');
    dropTask(paths, 'second', null, 'Second task of the day.');
    const child = spawn(AGENTQ, ['run', '--project', paths.root], { env, stdio: 'ignore' });
    type Status = { counts: Record<string, number>; pausedAgents: Array<{ agent: string; until: number; reason: string }> };
    let status: Status = { counts: {}, pausedAgents: [] };
    try {
      await waitFor(async () => {
        status = await agentqJson(['status', '--json', '--project', paths.root], env);
        return status.pausedAgents.length > 0 && listDir(paths.done).includes('first.md');
      }, 60_000, 'claude to be paused by the daily budget');
      await new Promise((r) => setTimeout(r, 1000));
      status = await agentqJson(['status', '--json', '--project', paths.root], env);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    const pause = status.pausedAgents[0]!;
    assert.equal(pause.agent, 'claude');
    assert.match(pause.reason, /daily budget reached: \$\d+\.\d{4} of agents\.claude\.budgets\.daily_usd \$0\.0001/);
    const midnight = new Date();
    midnight.setHours(24, 0, 0, 0);
    assert.equal(pause.until, midnight.getTime(), 'paused until local midnight');
    assert.equal(status.counts.queued, 1, 'the second task waits');
    assert.deepEqual(listDir(paths.done), ['first.md']);
  });

  it('a crash mid-run (SIGKILL) is recovered: the orphaned agent and its tool command are stopped, the task runs again once', async () => {
    const paths = makeProject({ poll_interval: '200ms' });
    const marker = crypto.randomUUID();
    const flag = path.join(paths.root, 'first-run');
    fake.setRules([
      {
        match: 'long tool',
        turns: [{ bash: `if [ -f ${flag} ]; then echo second; else touch ${flag}; sleep 120; fi`, timeoutMs: 300_000 }, { text: 'tool finished' }],
      },
    ]);
    dropTask(paths, 'long', null, 'Run the long tool.');
    const child = spawn(AGENTQ, ['run', '--project', paths.root], { env: { ...env, AGENTQ_TEST_MARK: marker }, stdio: 'ignore' });
    await waitFor(() => fs.existsSync(flag), 60_000, 'the Bash tool to start');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.ok(pidsWithEnv('AGENTQ_TEST_MARK', marker).length > 0, 'claude and its tool command outlived the dispatcher');

    const r = await agentq(['run', '--once', '--project', paths.root], { ...env, AGENTQ_TEST_MARK: marker });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /recovered #1 long from a stopped dispatcher \(stopped \d+ leftover process/);
    assert.deepEqual(listDir(paths.done), ['long.md']);
    assert.equal(readResult(path.join(paths.done, 'long.md')).fm.attempts, 2);
    assert.deepEqual(pidsWithEnv('AGENTQ_TEST_MARK', marker), []);
  });
});
