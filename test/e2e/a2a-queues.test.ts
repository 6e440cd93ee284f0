/**
 * Two queues that delegate to each other, end to end: two real `bin/agentq serve` processes on
 * loopback, projects A and B (each its own SQLite store). B requires a token; A's config names
 * B as remote `b` with the token in `token_env`. A's tasks are `agent: a2a`, `remote: b`, and
 * carry B's task fields in `remote_metadata` (command tasks, and one `openai` task against the
 * scripted chat-completions API so that B reports tokens and a cost).
 *
 * The proof: three tasks land in A's done/ once each with B's result, cost and tokens,
 * `agent: a2a`, `remote`, `remote_task_id`, and B ran each once; A SIGKILLed mid-delegation and
 * restarted resumes it (no second remote task, one result); B SIGKILLed mid-task recovers it
 * itself and A still gets the result; a question raised on B blocks A's task and `agentq answer`
 * on A resumes it on B; cancel on A stops B's agent (no process of its attempt left).
 * A asks B for push notifications (to its POST /a2a/push/ID, with a per-delegation token whose
 * hash A's ledger keeps): B delivers them; a wrong token is refused.
 * Commands on B wait for gate files the test creates, so nothing depends on timing.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ProjectPaths } from '../../src/config/config.ts';
import { pushTokenDigest } from '../../src/agents/a2a/pushes.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { startFakeOpenAIChat, type FakeOpenAIChat } from '../fixtures/fake-openai-chat.ts';
import { pidsWithEnv, waitFor } from '../fixtures/procs.ts';
import { agentq, agentqJson, dropTask, listDir, makeProject, readResult } from '../fixtures/project.ts';
import { killServeProcesses, serveProcess, type Served } from '../fixtures/serve-process.ts';

const TOKEN = 'queues-e2e-token-7d3a';
const CHAT_KEY_ENV = 'QUEUES_E2E_CHAT_KEY';
/** Gate files the commands on B wait for. */
const gates = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-gates-'));
const gate = (name: string) => path.join(gates, name);
/** A command (sh -c) that waits for gate `name`, then prints `text`. */
const waitsFor = (name: string, text: string) => `while [ ! -e '${gate(name)}' ]; do sleep 0.05; done; printf '%s' '${text}'`;

let fake: FakeOpenAIChat;
let A: ProjectPaths;
let B: ProjectPaths;
let a: Served;
let b: Served;
const port = (s: Served) => new URL(s.url).port;

/** Starts (or restarts on its port) B's serve, with the token. */
async function startB(onPort?: string): Promise<Served> {
  return serveProcess(B.root, { AGENTQ_TOKEN: TOKEN, [CHAT_KEY_ENV]: 'sk-b' }, onPort ? ['--port', onPort] : []);
}

/** Starts (or restarts on its port) A's serve, with B's token in `B_TOKEN` (and no token of its own). */
async function startA(onPort?: string): Promise<Served> {
  return serveProcess(A.root, { B_TOKEN: TOKEN, AGENTQ_TOKEN: '' }, onPort ? ['--port', onPort] : []);
}

async function kill(s: Served): Promise<void> {
  s.child.kill('SIGKILL');
  await s.exited;
}

/** Drops task `name` in A's inbox: delegated to `b`, with B's fields `onB`. */
function delegate(name: string, onB: Record<string, unknown>, prompt = `${name}: please do it.`): void {
  dropTask(A, name, { agent: 'a2a', remote: 'b', remote_metadata: onB }, prompt);
}

/** Each project's store, opened by the test to read it (the serve processes write it). */
const stores = new Map<string, SqliteStore>();
const storeOf = (p: ProjectPaths) => {
  let store = stores.get(p.root);
  if (!store) stores.set(p.root, (store = new SqliteStore(path.join(p.dir, 'agentq.db'))));
  return store;
};
const tasksOf = (p: ProjectPaths) => storeOf(p).listTasks();
const taskOn = async (p: ProjectPaths, name: string) => (await tasksOf(p)).filter((t) => t.name === name);
/** A's delegations of its task `name`, newest first. */
const delegationOf = async (name: string) => {
  const ids = new Set((await taskOn(A, name)).map((t) => t.id));
  return (await storeOf(A).listDelegations()).filter((d) => ids.has(d.taskId));
};

/** Waits for `dir/NAME.md` of project `p`. */
const resultFile = async (dir: string, name: string, what = `${name}.md in ${dir}`) => {
  await waitFor(() => listDir(dir).includes(`${name}.md`), 30_000, what);
  return readResult(path.join(dir, `${name}.md`));
};

before(async () => {
  fake = await startFakeOpenAIChat({ models: ['gpt-test'] });
  fake.setRules([{ match: 'summarize the notes', turns: [{ text: 'Summary by {{model}}: all good.', usage: { prompt_tokens: 300, completion_tokens: 12 } }] }]);
  B = makeProject({
    poll_interval: '100ms',
    lease: '3s',
    kill_grace: '1s',
    concurrency: 8,
    agents: { openai: { base_url: fake.baseUrl, api_key_env: CHAT_KEY_ENV, model: 'gpt-test' } },
    prices: { 'gpt-test': { input: 1000, output: 2000 } },
  });
  b = await startB();
  A = makeProject({ poll_interval: '100ms', lease: '3s', concurrency: 8, delegation_poll_max: '5s', remotes: { b: { url: b.url, token_env: 'B_TOKEN' } } });
  a = await startA();
});

after(async () => {
  killServeProcesses();
  for (const store of stores.values()) await store.close();
  // Commands left waiting (a failed case) end.
  for (const g of ['never', 'survivor', 'phoenix']) fs.writeFileSync(gate(g), '');
  await fake?.close();
  fs.rmSync(gates, { recursive: true, force: true });
});

describe('queue A delegates to queue B over A2A (two agentq serve processes)', { concurrency: false }, () => {
  it('three tasks: each result lands in A done/ once, with agent a2a, remote, remote_task_id and B cost and tokens; B ran each once', async () => {
    delegate('upper', { agent: 'command', command: "tr 'a-z' 'A-Z'" });
    delegate('echo', { agent: 'command', command: ['sh', '-c', 'printf "B says: %s" "$(cat)"'] });
    delegate('notes', { agent: 'openai' }, 'Please summarize the notes.');
    const results = Object.fromEntries(await Promise.all(['upper', 'echo', 'notes'].map(async (n) => [n, await resultFile(A.done, n)] as const)));
    const onB = Object.fromEntries(await Promise.all(['upper', 'echo', 'notes'].map(async (n) => [n, await resultFile(B.done, n, `B's ${n}.md`)] as const)));
    assert.match(results.upper!.body, /^UPPER: PLEASE DO IT\./);
    assert.equal(results.echo!.body, 'B says: echo: please do it.');
    assert.equal(results.notes!.body, 'Summary by gpt-test: all good.');
    for (const n of ['upper', 'echo', 'notes']) {
      const { fm } = results[n]!;
      const bFm = onB[n]!.fm;
      assert.deepEqual([fm.status, fm.agent, fm.remote, fm.remote_task_id, fm.attempts], ['completed', 'a2a', 'b', String(bFm.task_id), 1], n);
      assert.equal(results[n]!.body, onB[n]!.body, `${n}: A's result is B's`);
      assert.equal(bFm.attempts, 1, `B ran ${n} once`);
    }
    // B's cost and tokens (openai on B: tokens priced by B's table) travel in metadata.agentq.
    const notesB = onB.notes!.fm;
    assert.deepEqual([notesB.agent, notesB.input_tokens, notesB.output_tokens], ['openai', 300, 12]);
    assert.ok(typeof notesB.cost_usd === 'number' && notesB.cost_usd > 0, 'B priced the tokens');
    assert.deepEqual([results.notes!.fm.cost_usd, results.notes!.fm.input_tokens, results.notes!.fm.output_tokens, results.notes!.fm.model], [notesB.cost_usd, 300, 12, 'gpt-test']);
    assert.equal(fake.chatRequests('summarize the notes')[0]?.headers.authorization, 'Bearer sk-b');
    assert.equal((await tasksOf(B)).length, 3, 'one task on B per delegation');
    const ledger = await agentqJson<Array<{ taskName: string; state: string; remote: string; remoteTaskId: string }>>(['delegations', '--json', '--project', A.root]);
    assert.deepEqual(
      ledger.map((d) => [d.taskName, d.state, d.remote, d.remoteTaskId]).sort(),
      ['echo', 'notes', 'upper'].map((n) => [n, 'completed', 'b', results[n]!.fm.remote_task_id]),
    );
    assert.equal(listDir(A.done).length, 3);

    // B pushed each task's changes to A's push route, with the token A gave (A keeps its hash).
    for (const n of ['upper', 'echo', 'notes']) {
      const [d] = await delegationOf(n);
      const remoteId = Number(results[n]!.fm.remote_task_id);
      await waitFor(async () => (await storeOf(B).listA2aPushConfigs(remoteId))[0]?.pushedVersion === 'completed:1', 20_000, `B's last push of ${n}`);
      const [push] = await storeOf(B).listA2aPushConfigs(remoteId);
      assert.deepEqual([push?.url, push?.lastError, push?.deliveredAt !== null], [`${a.url}/a2a/push/${d!.id}`, null, true], n);
      assert.equal(pushTokenDigest(push!.token!), d!.pushTokenSha256);
    }
    // The push route is open (no API token) but takes only the delegation's own token.
    const [d1] = await delegationOf('upper');
    const post = (id: number, headers: Record<string, string> = {}) => fetch(`${a.url}/a2a/push/${id}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{}' });
    for (const [id, headers, why] of [
      [d1!.id, {}, 'missing'],
      [d1!.id, { 'x-a2a-notification-token': 'guess' }, 'not the token of this delegation'],
      [999_999, { 'x-a2a-notification-token': 'guess' }, 'not the token of this delegation'],
    ] as const) {
      const r = await post(id, headers);
      assert.equal(r.status, 401);
      assert.deepEqual((await r.json()).error, { code: 'unauthorized', message: `x-a2a-notification-token: ${why}`, field: 'x-a2a-notification-token' });
    }
  });

  it('A SIGKILLed mid-delegation and restarted: the delegation is resumed, no second remote task, the result lands once', async () => {
    delegate('survivor', { agent: 'command', command: waitsFor('survivor', 'survived') });
    await waitFor(async () => (await delegationOf('survivor'))[0]?.state === 'in_progress', 30_000, 'the delegation in_progress');
    const [onB] = await taskOn(B, 'survivor');
    assert.equal(onB?.state, 'running');
    await kill(a);
    a = await startA(port(a));
    fs.writeFileSync(gate('survivor'), '');
    const { fm, body } = await resultFile(A.done, 'survivor');
    assert.deepEqual([body, fm.remote_task_id, fm.attempts], ['survived', String(onB!.id), 2]);
    assert.deepEqual(listDir(A.done).filter((f) => f.startsWith('survivor')), ['survivor.md'], 'one result file');
    const onBAfter = await taskOn(B, 'survivor');
    assert.deepEqual(onBAfter.map((t) => [t.id, t.state, t.claims]), [[onB!.id, 'completed', 1]], 'one task on B, run once');
    assert.deepEqual((await delegationOf('survivor')).map((d) => [d.state, d.remoteTaskId]), [['completed', String(onB!.id)]], 'one delegation');
  });

  it("B SIGKILLed mid-task: B's own recovery runs it again, and A still gets the result", async () => {
    delegate('phoenix', { agent: 'command', command: waitsFor('phoenix', 'rose again') });
    await waitFor(async () => (await delegationOf('phoenix'))[0]?.state === 'in_progress', 30_000, 'the delegation in_progress');
    const [running] = await taskOn(B, 'phoenix');
    assert.equal(running?.state, 'running');
    await kill(b);
    b = await startB(port(b));
    fs.writeFileSync(gate('phoenix'), '');
    const { fm, body } = await resultFile(A.done, 'phoenix');
    assert.deepEqual([body, fm.remote_task_id, fm.attempts], ['rose again', String(running!.id), 1]);
    const onB = await taskOn(B, 'phoenix');
    assert.deepEqual(onB.map((t) => [t.state, t.claims]), [['completed', 2]], 'B ran it again after its recovery');
    assert.deepEqual((await delegationOf('phoenix')).map((d) => d.state), ['completed']);
  });

  it("a question raised on B blocks A's task; agentq answer on A resumes it on B", async () => {
    const command = `input=$(cat); case "$input" in *'The answer:'*) printf 'painted: %s' "$input";; *) printf '<<question>>Which colour?<</question>>';; esac`;
    delegate('fence', { agent: 'command', command }, 'Paint the fence.');
    await waitFor(async () => (await taskOn(A, 'fence'))[0]?.state === 'blocked', 30_000, "A's task blocked");
    const [blocked] = await taskOn(A, 'fence');
    assert.equal(blocked?.question, 'Which colour?');
    assert.deepEqual((await taskOn(B, 'fence')).map((t) => [t.state, t.question]), [['blocked', 'Which colour?']]);
    assert.deepEqual((await delegationOf('fence')).map((d) => d.state), ['input_required']);
    const answered = await agentq(['answer', 'fence', 'Blue, please.', '--project', A.root]);
    assert.equal(answered.code, 0, answered.stderr);
    const { fm, body } = await resultFile(A.done, 'fence');
    assert.match(body, /^painted: Paint the fence\.[\s\S]*The answer: Blue, please\./);
    const onB = await taskOn(B, 'fence');
    assert.deepEqual(onB.map((t) => [String(t.id), t.state, t.claims]), [[fm.remote_task_id, 'completed', 2]], 'the same task on B resumed');
    assert.deepEqual((await delegationOf('fence')).map((d) => d.state), ['completed']);
  });

  it("cancel on A stops B's agent: B's task cancelled, no process of its attempt left", async () => {
    delegate('endless', { agent: 'command', command: waitsFor('never', 'unreachable') });
    await waitFor(async () => (await delegationOf('endless'))[0]?.state === 'in_progress', 30_000, 'the delegation in_progress');
    const [running] = await taskOn(B, 'endless');
    const attempt = (await agentqJson<{ attemptHistory: Array<{ id: string }> }>(['show', String(running!.id), '--json', '--project', B.root])).attemptHistory[0]!.id;
    await waitFor(() => pidsWithEnv('AGENTQ_ATTEMPT_ID', attempt).length > 0, 10_000, "B's agent process");
    const c = await agentq(['cancel', 'endless', '--project', A.root]);
    assert.equal(c.code, 0, c.stderr);
    const { fm } = await resultFile(A.failed, 'endless');
    assert.deepEqual([fm.status, fm.agent, fm.remote, fm.remote_task_id], ['cancelled', 'a2a', 'b', String(running!.id)]);
    await waitFor(async () => (await taskOn(B, 'endless'))[0]?.state === 'cancelled', 20_000, "B's task cancelled");
    assert.deepEqual(pidsWithEnv('AGENTQ_ATTEMPT_ID', attempt), [], 'no process of B attempt left');
    assert.deepEqual((await delegationOf('endless')).map((d) => d.state), ['canceled']);
  });
});
