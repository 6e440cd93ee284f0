/**
 * The A2A server of `agentq serve` end to end: the SDK's own client (`A2AClient` from
 * `@a2a-js/sdk/client`) drives a real `bin/agentq serve` process with a token. Command tasks
 * (and Claude Code against the scripted Messages API, for progress lines): the public agent
 * card; blocking and non-blocking sends, idempotent by messageId; `tasks/get` after a restart;
 * a stream from the first state through progress to `completed` with the result artifact and
 * the cost in metadata; resubscribe; cancel stopping the agent's processes; push configs
 * set/get and pushes received (a 503 retried, one delivered after a restart) by a local HTTP
 * listener; loopback-only without a token; `input-required` with
 * the question answered by a follow-up message that resumes the task; and bad input, each a
 * JSON-RPC error naming the field, creating nothing.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { Message, MessageSendParams, Task as A2aTask } from '@a2a-js/sdk';
import { A2AClient } from '@a2a-js/sdk/client';
import { claudeEnv, makeClaudeSandbox } from '../fixtures/claude-env.ts';
import { startFakeAnthropic } from '../fixtures/fake-anthropic.ts';
import { makeProject } from '../fixtures/project.ts';
import { rawRequest } from '../fixtures/raw-http.ts';
import { pidsWithEnv, waitFor } from '../fixtures/procs.ts';
import { killServeProcesses, serveProcess, type Served } from '../fixtures/serve-process.ts';

after(killServeProcesses);

const TOKEN = 'a2a-e2e-token-51c9';
const auth = { authorization: `Bearer ${TOKEN}` };

/** The SDK client of a server, sending the token on every call. */
function client(url: string, token = TOKEN): Promise<A2AClient> {
  const fetchImpl: typeof fetch = (input, init) => fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), authorization: `Bearer ${token}` } });
  return A2AClient.fromCardUrl(`${url}/.well-known/agent-card.json`, { fetchImpl });
}

/** A user message: `text` as its one text part, task fields in `metadata`. */
function message(text: string, metadata?: Record<string, unknown>, over: Partial<Message> = {}): Message {
  return { kind: 'message', role: 'user', messageId: randomUUID(), parts: [{ kind: 'text', text }], ...(metadata ? { metadata } : {}), ...over };
}

/** The result of a JSON-RPC response; fails with its error otherwise. */
function result<T>(r: { result?: T; error?: unknown }): T {
  assert.ok(!('error' in r) || r.error === undefined, `JSON-RPC error: ${JSON.stringify(r.error)}`);
  return r.result as T;
}

/** The JSON-RPC error of a response; fails when it succeeded. */
function rpcError(r: unknown): { code: number; message: string; data?: { field?: string } } {
  const e = (r as { error?: { code: number; message: string; data?: { field?: string } } }).error;
  assert.ok(e, `expected a JSON-RPC error, got ${JSON.stringify(r).slice(0, 300)}`);
  return e;
}

/** The task a send answered with. */
function asTask(r: unknown): A2aTask {
  const t = result(r as { result?: A2aTask });
  assert.equal(t.kind, 'task');
  return t;
}

const textOf = (t: A2aTask) => (t.artifacts?.[0]?.parts[0] as { text?: string } | undefined)?.text;
const agentq = (t: A2aTask) => (t.metadata as { agentq: Record<string, unknown> }).agentq;

/** Polls `tasks/get` until the task's state is `state`. */
async function untilState(c: A2AClient, id: string, state: string, timeoutMs = 30_000): Promise<A2aTask> {
  let last: A2aTask | null = null;
  await waitFor(
    async () => {
      last = asTask(await c.getTask({ id }));
      return last.status.state === state;
    },
    timeoutMs,
    `task ${id} to be ${state}`,
  );
  return last!;
}

/** Number of tasks in the store (GET /v1/status). */
async function taskCount(url: string): Promise<number> {
  const { counts } = (await (await fetch(`${url}/v1/status`, { headers: auth })).json()) as { counts: Record<string, number> };
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/** A raw JSON-RPC call: the HTTP status and the parsed body. */
async function rpc(url: string, body: unknown, headers: Record<string, string> = auth): Promise<{ status: number; body: any }> {
  const r = await fetch(`${url}/a2a`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

/** A loopback port nothing listens on (for now). */
async function freePort(): Promise<number> {
  const srv = http.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

/** Sends a command task that prints `out` (after `sleepS` seconds). */
const commandTask = (out: string, sleepS = 0) => ({ agent: 'command', command: ['sh', '-c', `cat >/dev/null; sleep ${sleepS}; echo ${out}`] });

describe('A2A server: card, send, idempotency, get after a restart', () => {
  it('serves a public card; sends block or not; a retried messageId creates nothing; tasks/get reads the store after a restart', async () => {
    const paths = makeProject();
    let s: Served = await serveProcess(paths.root, { AGENTQ_TOKEN: TOKEN });
    const cardRes = await fetch(`${s.url}/.well-known/agent-card.json`);
    assert.equal(cardRes.status, 200, 'the card is public');
    const card = (await cardRes.json()) as Record<string, any>;
    assert.equal(card.protocolVersion, '0.3.0');
    assert.equal(card.url, `${s.url}/a2a`);
    assert.equal(card.preferredTransport, 'JSONRPC');
    assert.deepEqual(card.capabilities, { streaming: true, pushNotifications: true, stateTransitionHistory: false });
    assert.deepEqual(card.securitySchemes, { bearer: { type: 'http', scheme: 'bearer', description: 'The token of agentq serve (AGENTQ_TOKEN).' } });
    assert.deepEqual(card.security, [{ bearer: [] }]);
    assert.deepEqual(
      card.skills.map((k: { id: string }) => k.id),
      ['claude', 'codex', 'gemini', 'openai', 'command'],
    );
    assert.equal((await rpc(s.url, { jsonrpc: '2.0', id: 1, method: 'tasks/get', params: { id: '1' } }, {})).status, 401, 'the endpoint needs the token');
    assert.equal((await rpc(s.url, { jsonrpc: '2.0', id: 1, method: 'tasks/get', params: { id: '1' } }, { authorization: 'Bearer wrong' })).status, 401);

    let c = await client(s.url);
    const first = message('Say hi.', { ...commandTask('hi from $AGENTQ_TASK_NAME'), name: 'greet', priority: 'high', tags: ['a2a'] });
    const done = asTask(await c.sendMessage({ message: first }));
    assert.equal(done.status.state, 'completed');
    assert.equal(textOf(done), 'hi from greet');
    assert.deepEqual([agentq(done).status, agentq(done).priority, agentq(done).agent, agentq(done).attempts, agentq(done).tags], ['completed', 'high', 'command', 1, ['a2a']]);
    assert.match(done.contextId, /^[0-9a-f-]{36}$/);
    const id = done.id;
    assert.equal(id, String(agentq(done).task_id), 'the A2A task id is the agentq task id');
    const rest = (await (await fetch(`${s.url}/v1/tasks/${id}`, { headers: auth })).json()) as { task: { name: string; source: string; result: string } };
    assert.deepEqual([rest.task.name, rest.task.source, rest.task.result], ['greet', 'a2a', 'hi from greet'], 'an A2A task is an agentq task');

    // The same message again (a retry): the same task, nothing created; the same id with other content is refused.
    const again = asTask(await c.sendMessage({ message: first }));
    assert.equal(again.id, id);
    assert.equal(await taskCount(s.url), 1);
    const reused = rpcError(await c.sendMessage({ message: { ...first, parts: [{ kind: 'text', text: 'Something else.' }] } }));
    assert.equal(reused.code, -32602);
    assert.equal(reused.data?.field, 'message.messageId');
    assert.match(reused.message, new RegExp(`was used for another message \\(task ${id}\\)`));

    // Non-blocking: the task as it is now, then tasks/get follows it to its end.
    const later = asTask(await c.sendMessage({ message: message('Later.', commandTask('later', 1), { contextId: 'ctx-7' }), configuration: { blocking: false } }));
    assert.ok(['submitted', 'working'].includes(later.status.state), later.status.state);
    assert.equal(later.contextId, 'ctx-7');
    const laterDone = await untilState(c, later.id, 'completed');
    assert.equal(textOf(laterDone), 'later');

    // A push that cannot be delivered now (nothing listens at its URL yet) is delivered after the restart.
    const port = await freePort();
    const pushUrl = `http://127.0.0.1:${port}/hook`;
    result(await c.setTaskPushNotificationConfig({ taskId: id, pushNotificationConfig: { url: pushUrl, token: 'after-restart' } }));

    // A restart: tasks/get reads the store.
    s.child.kill('SIGTERM');
    assert.equal(await s.exited, 0);
    const pushed: Array<{ token: unknown; body: A2aTask }> = [];
    const rx = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        pushed.push({ token: req.headers['x-a2a-notification-token'], body: JSON.parse(body) as A2aTask });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => rx.listen(port, '127.0.0.1', r));
    s = await serveProcess(paths.root, { AGENTQ_TOKEN: TOKEN });
    await waitFor(() => pushed.length > 0, 30_000, 'the push after the restart');
    assert.deepEqual([pushed[0]!.token, pushed[0]!.body.id, pushed[0]!.body.status.state, textOf(pushed[0]!.body)], ['after-restart', id, 'completed', 'hi from greet']);
    await new Promise((r) => rx.close(r));
    c = await client(s.url);
    const got = asTask(await c.getTask({ id, historyLength: 5 }));
    assert.deepEqual([got.status.state, textOf(got), got.contextId], ['completed', 'hi from greet', done.contextId]);
    assert.deepEqual(
      got.history?.map((m) => [m.role, (m.parts[0] as { text: string }).text]),
      [['user', 'Say hi.']],
    );
    assert.equal(asTask(await c.getTask({ id: later.id })).contextId, 'ctx-7');
    assert.equal(asTask(await c.getTask({ id })).history?.length, 0, 'no history unless asked');
    // Resubscribing to an ended task: the task, then the stream ends.
    const events = [];
    for await (const e of c.resubscribeTask({ id })) events.push(e);
    assert.deepEqual(events.map((e) => [e.kind, (e as A2aTask).status?.state]), [['task', 'completed']]);
    s.child.kill('SIGTERM');
    assert.equal(await s.exited, 0);
  });
});

describe('A2A server: security as the REST API', () => {
  it('without a token: loopback only (a foreign Host or Origin is 403); the card stays open and declares no scheme', async () => {
    const paths = makeProject();
    const s = await serveProcess(paths.root);
    try {
      const card = (await (await fetch(`${s.url}/.well-known/agent-card.json`)).json()) as Record<string, unknown>;
      assert.equal(card.securitySchemes, undefined);
      assert.equal(card.security, undefined);
      const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tasks/get', params: { id: '1' } });
      const post = (headers: Record<string, string>) => rawRequest(s.url, { method: 'POST', path: '/a2a', headers: { 'content-type': 'application/json', ...headers }, body });
      const port = new URL(s.url).port;
      const local = await post({ host: `127.0.0.1:${port}` });
      assert.equal(local.status, 200);
      assert.equal(JSON.parse(local.body).error.code, -32001, 'answered: no task 1');
      const rebound = await post({ host: `evil.example:${port}` });
      assert.equal(rebound.status, 403);
      assert.equal(JSON.parse(rebound.body).error.field, 'host');
      const forged = await post({ host: `127.0.0.1:${port}`, origin: 'https://evil.example' });
      assert.equal(forged.status, 403);
      assert.equal((await rawRequest(s.url, { path: '/.well-known/agent-card.json', headers: { host: `evil.example:${port}` } })).status, 200, 'the card is public');
    } finally {
      s.child.kill('SIGTERM');
      await s.exited;
    }
  });
});

describe('A2A server: one serve for streams, cancel, push, questions, bad input', { concurrency: false }, () => {
  let s: Served;
  let c: A2AClient;
  let fake: Awaited<ReturnType<typeof startFakeAnthropic>>;
  before(async () => {
    fake = await startFakeAnthropic({ defaultTurns: [{ text: 'done' }] });
    const paths = makeProject({ serve: { callback_backoff: '50ms' } });
    s = await serveProcess(paths.root, { ...claudeEnv(fake.url, makeClaudeSandbox().config), AGENTQ_TOKEN: TOKEN });
    c = await client(s.url);
  });
  after(async () => {
    s.child.kill('SIGTERM');
    await s.exited;
    await fake.close();
  });

  it('streams a Claude Code task: the task, a progress line as a working status, the result artifact, the cost, the final status', async () => {
    fake.setRules([{ match: 'List the files', turns: [{ bash: 'ls' }, { text: 'Listed them.' }] }]);
    const events: any[] = [];
    for await (const e of c.sendMessageStream({ message: message('List the files, please.', { agent: 'claude' }) })) events.push(e);
    assert.equal(events[0].kind, 'task');
    assert.ok(['submitted', 'working'].includes(events[0].status.state));
    const progress = events.filter((e) => e.kind === 'status-update' && e.status.state === 'working' && e.status.message);
    assert.ok(
      progress.some((e) => /Bash: ls/.test(e.status.message.parts[0].text)),
      `a progress line: ${JSON.stringify(events.map((e) => e.status?.message?.parts?.[0]?.text ?? e.kind))}`,
    );
    const artifact = events.find((e) => e.kind === 'artifact-update');
    assert.equal(artifact?.artifact.parts[0].text, 'Listed them.');
    const last = events.at(-1);
    assert.deepEqual([last.kind, last.status.state, last.final], ['status-update', 'completed', true]);
    const whole = events.at(-2) as A2aTask;
    assert.equal(whole.kind, 'task');
    assert.ok(Number(agentq(whole).cost_usd) > 0, 'cost in metadata');
    assert.equal(agentq(whole).input_tokens, 200);
    assert.equal(agentq(whole).model, 'claude-sonnet-5');
    assert.deepEqual(
      events.filter((e) => e.kind === 'status-update' && e.final).length,
      1,
      'one final event, the last',
    );
  });

  it('resubscribes to a running task and follows it to its end', async () => {
    const t = asTask(await c.sendMessage({ message: message('Take a second.', commandTask('resubscribed', 1)), configuration: { blocking: false } }));
    const events: any[] = [];
    for await (const e of c.resubscribeTask({ id: t.id })) events.push(e);
    assert.equal(events[0].kind, 'task');
    assert.equal(events[0].id, t.id);
    assert.deepEqual([events.at(-1).status.state, events.at(-1).final], ['completed', true]);
    assert.equal(events.find((e) => e.kind === 'artifact-update')?.artifact.parts[0].text, 'resubscribed');
  });

  it('tasks/cancel stops the running agent; the task is canceled and can be cancelled no more', async () => {
    const t = asTask(await c.sendMessage({ message: message('Sleep a long time.', { agent: 'command', command: ['sleep', '300'] }), configuration: { blocking: false } }));
    await untilState(c, t.id, 'working');
    await waitFor(() => pidsWithEnv('AGENTQ_TASK_ID', t.id, true).length > 0, 10_000, 'the agent process');
    const cancelled = result(await c.cancelTask({ id: t.id })) as A2aTask;
    assert.equal(cancelled.status.state, 'canceled');
    assert.equal(agentq(cancelled).status, 'cancelled');
    await waitFor(() => pidsWithEnv('AGENTQ_TASK_ID', t.id, true).length === 0, 10_000, 'no process of the task left');
    const again = rpcError(await c.cancelTask({ id: t.id }));
    assert.equal(again.code, -32002);
    assert.equal(asTask(await c.getTask({ id: t.id })).status.state, 'canceled');
    // A queued task is cancelled at once.
    const queued = asTask(await c.sendMessage({ message: message('Not yet.', { ...commandTask('never'), run_at: '2099-01-01' }), configuration: { blocking: false } }));
    assert.equal(queued.status.state, 'submitted');
    assert.equal((result(await c.cancelTask({ id: queued.id })) as A2aTask).status.state, 'canceled');
  });

  it('push configs are kept in the store and every change is pushed (a 503 retried), with the token and the Bearer credentials', async () => {
    const received: Array<{ path: string; headers: http.IncomingHttpHeaders; body: A2aTask }> = [];
    let flaky = 0;
    const rx = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        if (req.url === '/flaky' && ++flaky === 1) return void res.writeHead(503).end('later');
        received.push({ path: req.url ?? '', headers: req.headers, body: JSON.parse(body) as A2aTask });
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((r) => rx.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(rx.address() as { port: number }).port}`;
    try {
      // With the message: pushed from its first state to its end.
      const t = asTask(
        await c.sendMessage({
          message: message('Push me.', commandTask('pushed', 0.5)),
          configuration: { blocking: false, pushNotificationConfig: { url: `${base}/flaky`, token: 'tok-a' } },
        }),
      );
      await waitFor(() => received.some((r) => r.path === '/flaky' && r.body.status.state === 'completed'), 30_000, 'the completed push');
      const mine = received.filter((r) => r.path === '/flaky');
      assert.ok(mine.every((r) => r.body.kind === 'task' && r.body.id === t.id && r.headers['x-a2a-notification-token'] === 'tok-a'));
      assert.equal(textOf(mine.at(-1)!.body), 'pushed');
      assert.equal(flaky, mine.length + 1, 'the first push was answered 503 and tried again');
      const configs = result(await c.listTaskPushNotificationConfig({ id: t.id })) as Array<{ pushNotificationConfig: { id: string; url: string } }>;
      assert.deepEqual(
        configs.map((x) => [x.pushNotificationConfig.id, x.pushNotificationConfig.url]),
        [[t.id, `${base}/flaky`]],
      );

      // Set on a running task: got back, and pushed with its Bearer credentials.
      const u = asTask(await c.sendMessage({ message: message('Push me too.', commandTask('also pushed', 1)), configuration: { blocking: false } }));
      const set = result(
        await c.setTaskPushNotificationConfig({ taskId: u.id, pushNotificationConfig: { id: 'mine', url: `${base}/b`, authentication: { schemes: ['Bearer'], credentials: 'cred-b' } } }),
      ) as { taskId: string };
      assert.equal(set.taskId, u.id);
      const got = result(await c.getTaskPushNotificationConfig({ id: u.id, pushNotificationConfigId: 'mine' } as { id: string })) as { pushNotificationConfig: { url: string; authentication: unknown } };
      assert.deepEqual([got.pushNotificationConfig.url, got.pushNotificationConfig.authentication], [`${base}/b`, { schemes: ['Bearer'], credentials: 'cred-b' }]);
      await waitFor(() => received.some((r) => r.path === '/b' && r.body.status.state === 'completed'), 30_000, 'the completed push of the set config');
      const b = received.filter((r) => r.path === '/b');
      assert.ok(b.every((r) => r.headers.authorization === 'Bearer cred-b' && r.body.id === u.id));
      // One push per version of the task (its agentq state and attempt), the last one its end.
      const versions = b.map((r) => `${agentq(r.body).status}:${agentq(r.body).attempts}`);
      assert.equal(new Set(versions).size, versions.length, versions.join(' '));
      assert.equal(b.at(-1)!.body.status.state, 'completed');

      // Refused: no such config, a URL that is not http(s), an unknown task.
      assert.equal(rpcError(await c.getTaskPushNotificationConfig({ id: u.id, pushNotificationConfigId: 'nope' } as { id: string })).data?.field, 'pushNotificationConfigId');
      const badUrl = rpcError(await c.setTaskPushNotificationConfig({ taskId: u.id, pushNotificationConfig: { url: 'ftp://example.com/x' } }));
      assert.deepEqual([badUrl.code, badUrl.data?.field], [-32602, 'pushNotificationConfig.url']);
      assert.equal(rpcError(await c.setTaskPushNotificationConfig({ taskId: '99999', pushNotificationConfig: { url: `${base}/x` } })).code, -32001);
    } finally {
      await new Promise((r) => rx.close(r));
    }
  });

  it('a question is input-required; a message with its taskId answers it and the task resumes to completed', async () => {
    const command = `input=$(cat); case "$input" in *'The answer:'*) printf '%s' "$input";; *) printf '<<question>>Which colour?<</question>>';; esac`;
    const asked = asTask(await c.sendMessage({ message: message('Paint the fence.', { agent: 'command', command }) }));
    assert.equal(asked.status.state, 'input-required');
    assert.equal((asked.status.message?.parts[0] as { text: string }).text, 'Which colour?');
    const history = asTask(await c.getTask({ id: asked.id, historyLength: 10 })).history!;
    assert.deepEqual(
      history.map((m) => [m.role, (m.parts[0] as { text: string }).text]),
      [
        ['user', 'Paint the fence.'],
        ['agent', 'Which colour?'],
      ],
    );
    const answer = message('Blue, please.', undefined, { taskId: asked.id, contextId: asked.contextId });
    const done = asTask(await c.sendMessage({ message: answer }));
    assert.equal(done.id, asked.id);
    assert.equal(done.status.state, 'completed');
    assert.match(textOf(done) ?? '', /Paint the fence\.[\s\S]*The answer: Blue, please\./);
    assert.equal(agentq(done).attempts, 2);
    // The answer again (a retry) changes nothing; another message to the ended task is refused.
    assert.equal(asTask(await c.sendMessage({ message: answer })).status.state, 'completed');
    const late = rpcError(await c.sendMessage({ message: message('Red!', undefined, { taskId: asked.id }) }));
    assert.deepEqual([late.code, late.data?.field], [-32600, 'message.taskId']);
    assert.match(late.message, /is completed \(agentq: completed\), not input-required/);
  });

  it('refuses bad input with a JSON-RPC error naming the field, and creates nothing', async () => {
    const before = await taskCount(s.url);
    const parse = await rpc(s.url, '{"jsonrpc": "2.0", "id": 1, "method": ');
    assert.equal(parse.status, 400);
    assert.equal(parse.body.error.code, -32700);
    const cases: Array<[unknown, number, string | null]> = [
      [{ jsonrpc: '1.0', id: 1, method: 'tasks/get', params: { id: '1' } }, -32600, null],
      [{ jsonrpc: '2.0', id: 2, method: 'tasks/frobnicate', params: {} }, -32601, null],
      [{ jsonrpc: '2.0', id: 3, method: 'tasks/get', params: ['1'] }, -32602, null],
      [{ jsonrpc: '2.0', id: 4, method: 'tasks/get', params: {} }, -32602, 'id'],
      [{ jsonrpc: '2.0', id: 5, method: 'tasks/get', params: { id: 7 } }, -32602, 'id'],
      [{ jsonrpc: '2.0', id: 6, method: 'tasks/get', params: { id: '999999' } }, -32001, null],
      [{ jsonrpc: '2.0', id: 7, method: 'tasks/get', params: { id: '1', historyLength: -1 } }, -32602, 'historyLength'],
      [{ jsonrpc: '2.0', id: 8, method: 'tasks/cancel', params: { id: 'x' } }, -32001, null],
      [{ jsonrpc: '2.0', id: 9, method: 'tasks/pushNotificationConfig/set', params: { taskId: '1' } }, -32602, 'pushNotificationConfig'],
    ];
    const send = (m: unknown, configuration?: unknown) => ({ jsonrpc: '2.0', id: 'send', method: 'message/send', params: { message: m, ...(configuration ? { configuration } : {}) } });
    const ok = message('x', commandTask('x'));
    const sends: Array<[unknown, string, RegExp]> = [
      [send(undefined), 'message', /required/],
      [send({ ...ok, messageId: undefined }), 'message.messageId', /required/],
      [send({ ...ok, role: 'agent' }), 'message.role', /"agent" is not "user"/],
      [send({ ...ok, parts: [] }), 'message.parts', /empty/],
      [send({ ...ok, parts: [{ kind: 'file', file: { uri: 'https://example.com/x' } }] }), 'message.parts.0', /text parts only/],
      [send({ ...ok, parts: [{ kind: 'text', text: '   ' }] }), 'message.parts', /the prompt \(the text parts\): empty/],
      [send({ ...ok, metadata: { priority: 'urgent' } }), 'message.metadata.priority', /"urgent" is not one of critical, high, default, low/],
      [send({ ...ok, metadata: { shell: 'rm -rf /' } }), 'message.metadata.shell', /unknown field/],
      [send({ ...ok, metadata: { timeout: '9 years' } }), 'message.metadata.timeout', /./],
      [send({ ...ok, metadata: { name: '../escape' } }), 'message.metadata.name', /./],
      [send({ ...ok, metadata: { depends_on: ['no-such-task'] } }), 'message.metadata.depends_on', /no-such-task/],
      [send({ ...ok, metadata: { prompt: 'sneaky' } }), 'message.metadata.prompt', /text parts/],
      [send(ok, { pushNotificationConfig: { url: 'file:///etc/passwd' } }), 'configuration.pushNotificationConfig.url', /not an http or https URL/],
      [send({ ...ok, taskId: '999999' }), '', /Task not found/],
    ];
    for (const [body, code, field] of cases) {
      const r = await rpc(s.url, body);
      assert.equal(r.status, 200, JSON.stringify(body));
      assert.equal(r.body.error?.code, code, `${JSON.stringify(body)} → ${JSON.stringify(r.body)}`);
      if (field) assert.equal(r.body.error.data?.field, field);
    }
    for (const [body, field, why] of sends) {
      const r = await rpc(s.url, body);
      const e = rpcError(r.body);
      if (field) {
        assert.equal(e.data?.field, field, JSON.stringify(r.body));
        assert.ok(e.message.startsWith(`${field}: `), e.message);
      }
      assert.match(e.message, why);
    }
    // A stream refused the same way: one error event; the SDK client throws with the message.
    const streamed = await fetch(`${s.url}/a2a`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...auth },
      body: JSON.stringify({ jsonrpc: '2.0', id: 's', method: 'message/stream', params: { message: { ...ok, metadata: { priority: 'urgent' } } } }),
    });
    assert.match(streamed.headers.get('content-type') ?? '', /^text\/event-stream/);
    const sse = await streamed.text();
    assert.match(sse, /^event: error\ndata: /);
    assert.equal(JSON.parse(sse.split('data: ')[1]!).error.data.field, 'message.metadata.priority');
    await assert.rejects(
      async () => {
        for await (const _ of c.sendMessageStream({ message: message('x', { agent: 'nobody-knows' }) } as MessageSendParams));
      },
      /message\.metadata\.agent/,
    );
    assert.equal(await taskCount(s.url), before, 'nothing was created');
  });
});
