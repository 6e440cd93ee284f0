/**
 * What is particular to the `a2a` runner beyond the runner contract: the ledger it keeps,
 * transient errors retried without a second remote task, resuming an open delegation with no
 * second send, a resend after a crash between send and record, questions and answers, a
 * remote that lost the task or stays unreachable, the refusals (unknown remote, a URL
 * that is not an A2A agent), and push notifications (the config sent, a push ending the wait).
 * Real parts: the SDK peer on 127.0.0.1, a real SQLite store.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { A2ARunner, type A2ARunnerOptions } from '../../src/agents/a2a/a2a-runner.ts';
import { DelegationPushes, pushTokenDigest } from '../../src/agents/a2a/pushes.ts';
import type { AgentEvent, RunOutcome, RunRequest } from '../../src/agents/runner.ts';
import type { Task } from '../../src/core/types.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { startA2APeer, type A2APeer, type Behavior } from '../fixtures/a2a-peer.ts';
import { newTask } from '../fixtures/specs.ts';

let peer: A2APeer;
let store: SqliteStore;
let dir: string;
const scripts = new Map<string, Behavior>();
let counter = 0;

before(async () => {
  peer = await startA2APeer({ script: (text) => scripts.get(text.split('\n')[0] ?? '') ?? { kind: 'complete', text: `echo: ${text}` } });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-a2a-runner-'));
  store = new SqliteStore(path.join(dir, 'agentq.db'));
});

after(async () => {
  await peer.close();
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function runner(over: Partial<A2ARunnerOptions> = {}): A2ARunner {
  return new A2ARunner({ name: 'a2a', remotes: { peer: { url: peer.url } }, env: {}, stuckAfterMs: 30_000, pollMaxMs: 100, pollFirstMs: 20, ...over });
}

/** A stored task (agent a2a) whose prompt's first line is a fresh key, scripted with `behavior`. */
async function task(behavior: Behavior | null, over: Partial<Task> = {}): Promise<Task> {
  const key = `case-${++counter}`;
  if (behavior) scripts.set(key, behavior);
  const [t] = await store.enqueue([newTask(key, { agent: 'a2a', remote: 'peer', prompt: `${key}\ndo the thing`, ...over })], Date.now());
  return { ...t!, ...over };
}

/** Runs one attempt of `t` (a fresh attempt id unless given); `abortWhen` aborts with its reason once it holds. */
async function attempt(
  r: A2ARunner,
  t: Task,
  o: { attemptId?: string; abortWhen?: { check: () => boolean; reason: string }; deadlineMs?: number } = {},
): Promise<{ outcome: RunOutcome; events: AgentEvent[]; request: RunRequest }> {
  const controller = new AbortController();
  const events: AgentEvent[] = [];
  const attemptId = o.attemptId ?? crypto.randomUUID();
  const request: RunRequest = {
    task: t,
    attemptId,
    prompt: t.prompt,
    model: null,
    cwd: dir,
    env: {},
    deadline: Date.now() + (o.deadlineMs ?? 30_000),
    stdoutLog: path.join(dir, `${attemptId}.stdout.log`),
    stderrLog: path.join(dir, `${attemptId}.stderr.log`),
    signal: controller.signal,
    onEvent: (e) => events.push(e),
    delegations: store,
  };
  let poll: NodeJS.Timeout | null = null;
  if (o.abortWhen) {
    const { check, reason } = o.abortWhen;
    poll = setInterval(() => {
      if (check()) {
        clearInterval(poll!);
        controller.abort(reason);
      }
    }, 10);
  }
  try {
    return { outcome: await r.run(request), events, request };
  } finally {
    if (poll) clearInterval(poll);
  }
}

const sendsOf = (t: Task) => peer.sends.filter((s) => s.text.startsWith(`${t.name}\n`) || s.text === t.answer);

describe('a2a runner', () => {
  it('delegates: one message/send (the attempt id as messageId, task fields in metadata), the ledger dispatched → completed', async () => {
    const t = await task({ kind: 'complete', text: 'the result', delayMs: 100, metadata: { cost_usd: 0.5, input_tokens: 10, output_tokens: 20, model: 'remote-model' } }, { title: 'Do it', priority: 'high', tags: ['x'], remoteMetadata: { agent: 'command', command: 'make', priority: 'low' } } as Partial<Task>);
    const { outcome, events, request } = await attempt(runner(), t);
    assert.equal(outcome.kind, 'completed', JSON.stringify(outcome));
    assert.equal(outcome.kind === 'completed' && outcome.result, 'the result');
    assert.deepEqual(
      [outcome.stats.costUsd, outcome.stats.inputTokens, outcome.stats.outputTokens, outcome.stats.model],
      [0.5, 10, 20, 'remote-model'],
    );
    const sends = sendsOf(t);
    assert.equal(sends.length, 1);
    assert.equal(sends[0]?.messageId, request.attemptId);
    assert.equal(sends[0]?.push, undefined, 'no push notifications: the runner has none (and the peer offers none)');
    // remote_metadata over agentq's own fields.
    assert.deepEqual(sends[0]?.metadata, { title: 'Do it', priority: 'low', timeout: `${t.timeoutMs}ms`, tags: ['x'], agent: 'command', command: 'make' });
    const [d] = await store.listDelegations({ taskId: t.id });
    assert.ok(d);
    assert.deepEqual([d.state, d.remote, d.url, d.attemptId, d.remoteState, d.resultPreview, d.lastError], ['completed', 'peer', peer.url, request.attemptId, 'completed', 'the result', null]);
    assert.ok(d.dispatchedAt !== null && d.inProgressAt !== null && d.finishedAt !== null, JSON.stringify(d));
    assert.equal(outcome.stats.sessionId, d.remoteTaskId);
    assert.ok(events.some((e) => e.type === 'session' && e.sessionId === d.remoteTaskId));
    assert.match(fs.readFileSync(request.stdoutLog, 'utf8'), /"state":"completed"/);
  });

  it('HTTP 503 twice on message/send: retried with backoff, one remote task, the error kept in the ledger meanwhile', async () => {
    const t = await task({ kind: 'complete', text: 'after the 503s' });
    const before = peer.sendRequests;
    peer.unavailable = 2;
    const { outcome } = await attempt(runner(), t);
    assert.equal(outcome.kind, 'completed', JSON.stringify(outcome));
    assert.equal(peer.sendRequests - before, 3, 'two 503s, then the accepted one');
    assert.equal(sendsOf(t).length, 1, 'the agent saw one message');
    const [d] = await store.listDelegations({ taskId: t.id });
    assert.equal(d?.state, 'completed');
    assert.equal(peer.tasks.filter((id) => id === d?.remoteTaskId).length, 1);
    assert.match(fs.readFileSync(path.join(dir, `${d!.attemptId}.stderr.log`), 'utf8'), /message\/send: HTTP 503/);
  });

  it('shutdown mid-delegation leaves it open; the next attempt resumes it with the same messageId, one remote task', async () => {
    const t = await task({ kind: 'complete', text: 'resumed', delayMs: 600 });
    const first = await attempt(runner(), t, { abortWhen: { check: () => sendsOf(t).length > 0, reason: 'shutdown' } });
    assert.equal(first.outcome.kind, 'cancelled');
    // The shutdown may cut the send short (its answer never recorded: still pending) or come after it (dispatched or later).
    const open = await store.openDelegation(t.id);
    assert.ok(open, 'left open for the next attempt');
    const second = await attempt(runner(), t);
    assert.equal(second.outcome.kind, 'completed', JSON.stringify(second.outcome));
    assert.equal(second.outcome.kind === 'completed' && second.outcome.result, 'resumed');
    const sends = sendsOf(t);
    assert.ok(sends.every((x) => x.messageId === first.request.attemptId), `every send with the first attempt's id: ${JSON.stringify(sends)}`);
    assert.equal(sends.filter((x) => !x.duplicate).length, 1, 'one remote task created');
    const all = await store.listDelegations({ taskId: t.id });
    assert.deepEqual(all.map((d) => [d.state, d.attemptId]), [['completed', first.request.attemptId]]);
    assert.equal(peer.tasks.filter((id) => id === all[0]?.remoteTaskId).length, 1, 'one remote task');
  });

  it('a crash between send and record: the pending delegation is sent again with the same messageId, the remote keeps one task', async () => {
    const t = await task({ kind: 'complete', text: 'once' });
    const attemptId = crypto.randomUUID();
    // The first dispatcher recorded the delegation and sent it, then died before recording the answer.
    await store.createDelegation({ taskId: t.id, attemptId, remote: 'peer', url: peer.url, now: Date.now() });
    const res = await fetch(`${peer.url}/a2a`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'message/send', params: { message: { kind: 'message', role: 'user', messageId: attemptId, parts: [{ kind: 'text', text: t.prompt }] }, configuration: { blocking: false } } }),
    });
    assert.equal(res.status, 200);
    const { outcome } = await attempt(runner(), t);
    assert.equal(outcome.kind, 'completed', JSON.stringify(outcome));
    const sends = sendsOf(t);
    assert.deepEqual(sends.map((s) => [s.messageId, s.duplicate]), [[attemptId, false], [attemptId, true]]);
    const [d] = await store.listDelegations({ taskId: t.id });
    assert.equal(peer.tasks.filter((id) => id === d?.remoteTaskId).length, 1, 'one remote task');
  });

  it('input-required → a question; the answer goes to the same remote task as a follow-up, which completes', async () => {
    const t = await task({ kind: 'ask', question: 'Which database?', then: (answer) => ({ kind: 'complete', text: `using ${answer}` }) });
    const first = await attempt(runner(), t);
    assert.deepEqual([first.outcome.kind, first.outcome.kind === 'question' && first.outcome.question], ['question', 'Which database?']);
    const asked = await store.openDelegation(t.id);
    assert.deepEqual([asked?.state, asked?.resultPreview], ['input_required', 'Which database?']);
    // `agentq answer`: the task was blocked on the question and now carries the answer.
    const answered = { ...t, question: 'Which database?', answer: 'Postgres' };
    const second = await attempt(runner(), answered);
    assert.equal(second.outcome.kind, 'completed', JSON.stringify(second.outcome));
    assert.equal(second.outcome.kind === 'completed' && second.outcome.result, 'using Postgres');
    const sends = sendsOf(answered);
    assert.equal(sends.length, 2);
    assert.deepEqual([sends[1]?.text, sends[1]?.taskId, sends[1]?.messageId], ['Postgres', asked?.remoteTaskId, second.request.attemptId]);
    assert.equal(sends[1]?.metadata, undefined, 'the task fields go with the first message only (an agentq remote refuses them on an answer)');
    const d = await store.getDelegation(asked!.id);
    assert.deepEqual([d?.state, d?.messageId, d?.attemptId], ['completed', second.request.attemptId, first.request.attemptId]);
    assert.equal(peer.tasks.filter((id) => id === d?.remoteTaskId).length, 1);
  });

  it('an answer to an earlier question is not sent again for a new one: the task blocks again', async () => {
    const t = await task({ kind: 'ask', question: 'First?', then: () => ({ kind: 'ask', question: 'Second?', then: (a) => ({ kind: 'complete', text: a }) }) });
    await attempt(runner(), t);
    const second = await attempt(runner(), { ...t, question: 'First?', answer: 'one' });
    assert.deepEqual([second.outcome.kind, second.outcome.kind === 'question' && second.outcome.question], ['question', 'Second?']);
    // The dispatcher died before blocking the task: the next attempt still carries the old answer.
    const third = await attempt(runner(), { ...t, question: 'First?', answer: 'one' });
    assert.deepEqual([third.outcome.kind, third.outcome.kind === 'question' && third.outcome.question], ['question', 'Second?']);
    assert.equal(sendsOf({ ...t, answer: 'one' }).length, 2, 'the old answer went out once');
  });

  it('a remote that lost the task: failed, retryable, the ledger failed with the reason', async () => {
    const t = await task({ kind: 'slow' });
    const r = attempt(runner(), t);
    await peer.until(() => sendsOf(t).length > 0, 'the send');
    const d = await store.openDelegation(t.id);
    await peer.until(() => Boolean(d?.remoteTaskId && peer.task(d.remoteTaskId)), 'the remote task');
    peer.forget(d!.remoteTaskId!);
    const { outcome } = await r;
    assert.equal(outcome.kind, 'failed');
    assert.ok(outcome.kind === 'failed' && outcome.retryable);
    assert.match(outcome.kind === 'failed' ? outcome.reason : '', /remote peer lost its task .* \(tasks\/get: task not found\)/);
    const ended = await store.getDelegation(d!.id);
    assert.equal(ended?.state, 'failed');
    assert.match(ended?.lastError ?? '', /lost its task/);
  });

  it('a remote that stays unreachable past delegation_stuck_after: failed, retryable, naming the setting', async () => {
    const dead = http.createServer();
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(dead.address() as AddressInfo).port}`;
    await new Promise<void>((resolve) => dead.close(() => resolve()));
    const t = await task(null, { remote: url });
    const { outcome } = await attempt(runner({ stuckAfterMs: 300 }), t);
    assert.equal(outcome.kind, 'failed', JSON.stringify(outcome));
    assert.ok(outcome.kind === 'failed' && outcome.retryable);
    assert.match(outcome.kind === 'failed' ? outcome.reason : '', /ECONNREFUSED.*delegation_stuck_after/);
    assert.deepEqual(await store.listDelegations({ taskId: t.id }), [], 'nothing was delegated');
  });

  it('the remote cancels its task: cancelled, with the remote named', async () => {
    const t = await task({ kind: 'slow' });
    const r = attempt(runner(), t);
    await peer.until(() => sendsOf(t).length > 0, 'the send');
    await peer.until(() => peer.tasks.length > 0 && Boolean(peer.task(peer.tasks.at(-1)!)?.status.state === 'working'), 'working');
    const remoteId = peer.tasks.at(-1)!;
    await fetch(`${peer.url}/a2a`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tasks/cancel', params: { id: remoteId } }) });
    const { outcome } = await r;
    assert.equal(outcome.kind, 'cancelled');
    assert.match(outcome.kind === 'cancelled' ? outcome.reason : '', new RegExp(`remote peer canceled its task ${remoteId}`));
    assert.equal((await store.listDelegations({ taskId: t.id }))[0]?.state, 'canceled');
  });

  it('a local cancel sends tasks/cancel; the delegation ends canceled', async () => {
    const t = await task({ kind: 'slow' });
    const { outcome } = await attempt(runner(), t, { abortWhen: { check: () => peer.tasks.some((id) => peer.task(id)?.status.state === 'working' && sendsOf(t).length > 0), reason: 'cancel' } });
    assert.equal(outcome.kind, 'cancelled');
    const [d] = await store.listDelegations({ taskId: t.id });
    assert.equal(d?.state, 'canceled');
    assert.ok(d?.remoteTaskId && peer.cancels.includes(d.remoteTaskId));
    assert.equal(peer.task(d!.remoteTaskId!)?.status.state, 'canceled');
  });

  it('refusals: an unknown remote name and a URL that is not an A2A agent fail at once, nothing recorded', async () => {
    const unknown = await task(null, { remote: 'nosuch' });
    const a = await attempt(runner(), unknown);
    assert.deepEqual([a.outcome.kind, a.outcome.kind === 'failed' && a.outcome.retryable], ['failed', false]);
    assert.equal(a.outcome.kind === 'failed' && a.outcome.reason, 'remote: "nosuch" is not a remote of config.yaml (remotes: peer); name one of them or give the URL of an A2A agent');
    const notAgent = await task(null, { remote: `${peer.url}/not-an-agent/` });
    const b = await attempt(runner(), notAgent);
    assert.deepEqual([b.outcome.kind, b.outcome.kind === 'failed' && b.outcome.retryable], ['failed', false]);
    assert.match(b.outcome.kind === 'failed' ? b.outcome.reason : '', /is not an A2A agent: GET .*\/not-an-agent\/\.well-known\/agent-card\.json: HTTP 404/);
    assert.deepEqual(await store.listDelegations({ taskId: unknown.id }), []);
    assert.deepEqual(await store.listDelegations({ taskId: notAgent.id }), []);
  });

  it('push notifications: the remote gets a per-delegation URL and token (its hash in the ledger); a push ends the wait at once', async () => {
    const pushPeer = await startA2APeer({ pushNotifications: true, script: () => ({ kind: 'complete', text: 'pushed along', delayMs: 50 }) });
    try {
      const pushes = new DelegationPushes();
      pushes.setBase('http://127.0.0.1:9/');
      // Waits of an hour: only a push can make the runner look again before the test's end.
      const r = runner({ remotes: { pp: { url: pushPeer.url } }, pollFirstMs: 3_600_000, pollMaxMs: 3_600_000, pushes });
      const t = await task(null, { remote: 'pp' });
      const running = attempt(r, t);
      await pushPeer.until(() => pushPeer.tasks.length === 1 && pushPeer.task(pushPeer.tasks[0]!)?.status.state === 'completed', 'the remote task completed');
      const [d] = await store.listDelegations({ taskId: t.id });
      assert.ok(d && d.pushTokenSha256);
      const [sent] = pushPeer.sends;
      assert.deepEqual([sent?.push?.id, sent?.push?.url], [`agentq-delegation-${d.id}`, `http://127.0.0.1:9/a2a/push/${d.id}`]);
      assert.equal(pushTokenDigest(sent!.push!.token!), d.pushTokenSha256, 'the ledger keeps the hash of the token sent');
      assert.equal(pushes.notify(d.id), 1, 'the attempt listens');
      const { outcome } = await running;
      assert.equal(outcome.kind === 'completed' && outcome.result, 'pushed along', JSON.stringify(outcome));
      assert.equal(pushPeer.gets, 1, 'one tasks/get: the one the push asked for');
      assert.equal(pushes.notify(d.id), 0, 'the attempt stopped listening');
      // Without an address (agentq run), no push is asked for.
      pushes.setBase(null);
      const polled = await task(null, { remote: 'pp' });
      assert.equal((await attempt(runner({ remotes: { pp: { url: pushPeer.url } }, pushes }), polled)).outcome.kind, 'completed');
      assert.equal(pushPeer.sends[1]?.push, undefined);
      assert.equal((await store.listDelegations({ taskId: polled.id }))[0]?.pushTokenSha256, null);
    } finally {
      await pushPeer.close();
    }
  });
});
