/**
 * The Notifier on a real SQLite store with a local HTTP receiver: what the sweep finds
 * (pauses but not start-bucket pacing, the queue empty once per spell, blocked tasks) and
 * what the reporter records (budget_exceeded, nothing for cancelled), each once however
 * often it is looked at; only targets that want an event get it; a target that refuses is
 * given up, reported as an error and shown failing by notifyStatus.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { emptyStats } from '../../src/agents/runner.ts';
import { parseConfig, projectPaths } from '../../src/config/config.ts';
import { DispatcherEvents } from '../../src/events/events.ts';
import { Notifier } from '../../src/notify/notifier.ts';
import type { WebhookBody } from '../../src/notify/payloads.ts';
import { notifyStatus } from '../../src/notify/status.ts';
import { rateLimitReason } from '../../src/scheduler/rate-limit.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { makeProject } from '../fixtures/project.ts';
import { newTask } from '../fixtures/specs.ts';

/** A receiver on 127.0.0.1 that records JSON bodies by path; `/refuse` answers 404. */
async function receiver() {
  const received: Array<{ path: string; body: WebhookBody }> = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      received.push({ path: req.url ?? '', body: JSON.parse(body) as WebhookBody });
      res.writeHead(req.url === '/refuse' ? 404 : 200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, received, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const cleanup: Array<() => Promise<void>> = [];
after(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

async function setup(notify: unknown[]) {
  const paths = makeProject();
  const store = new SqliteStore(path.join(paths.dir, 'agentq.db'));
  const events = new DispatcherEvents();
  const errors: Error[] = [];
  events.on('error', (e) => errors.push(e));
  const config = parseConfig({ notify, poll_interval: '1h' });
  const notifier = new Notifier({ store, config, paths: projectPaths(paths.root), events, deliveryPollMs: 20 });
  cleanup.push(async () => {
    await notifier.stop();
    await store.close();
  });
  const events_ = async () => (await store.claimDueNotifications([...new Set((await store.notificationHealth()).map((h) => h.target))], Date.now(), 10 ** 12, 1000)).map((n) => `${n.event}|${n.key}`);
  return { store, notifier, events, errors, config, recorded: events_ };
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>) {
  for (let i = 0; i < 400; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('Notifier', () => {
  it('sweeps pauses (not start-bucket pacing) and the empty queue once each; records ends but not cancellations', async () => {
    const { store, notifier, recorded } = await setup([{ on: ['agent_paused', 'queue_empty', 'budget_exceeded', 'failed'], command: 'true' }]);
    const now = Date.now();
    await notifier.sweep();
    assert.deepEqual(await recorded(), [], 'a store that never had work: no queue_empty');

    await store.pauseAgent({ agent: 'claude', until: now + 60_000, reason: 'usage limit reached' });
    await store.extendPause({ agent: 'codex', until: now + 30_000, reason: rateLimitReason({ rate_limit: { count: 1, windowMs: 60_000, text: '1/m' } }, now + 30_000) });
    const [t] = await store.enqueue([newTask('spender'), newTask('stopped')], now);
    await notifier.sweep();
    await notifier.sweep();
    // (claimDueNotifications in `recorded` leases what it lists, so each row shows once.)
    assert.deepEqual(await recorded(), [`agent_paused|agent_paused:claude:until ${now + 60_000}`], 'queued work: not empty; the bucket pause left out');

    const c = (await store.claim({ workerId: 'w', now, leaseMs: 30_000, concurrency: 5, agents: ['command'], labels: [] }))!;
    assert.equal(c.task.id, t!.id);
    const over = (await store.finish(c.attempt.id, { state: 'budget_exceeded', attemptOutcome: 'budget_exceeded', reason: 'budget exceeded: $2 of $1', stats: emptyStats(), now: now + 1 }))!;
    await notifier.taskEnded(over);
    await notifier.taskEnded(over);
    const cancelled = await store.cancel(t!.id + 1, now + 2);
    await notifier.taskEnded(cancelled);
    await notifier.sweep();
    const mark = (await store.queueMark()).mark;
    assert.deepEqual(await recorded(), [`budget_exceeded|budget_exceeded:task ${over.id}:claim 1:at ${now + 1}`, `queue_empty|queue_empty:${mark}`]);
    await notifier.sweep();
    assert.deepEqual(await recorded(), [], 'the same empty spell: nothing more');

    await store.pauseAgent({ agent: 'claude', until: now + 120_000, reason: 'usage limit reached' });
    const [again] = await store.enqueue([newTask('again')], now + 3);
    await store.cancel(again!.id, now + 4);
    await notifier.sweep();
    assert.deepEqual(await recorded(), [`agent_paused|agent_paused:claude:until ${now + 120_000}`, `queue_empty|queue_empty:${(await store.queueMark()).mark}`], 'a new pause end and a new empty spell');
  });

  it('delivers to the targets that want an event; a refusing target is given up, reported, and shown failing', async () => {
    const rx = await receiver();
    cleanup.push(rx.close);
    const { store, notifier, errors, config } = await setup([
      { on: ['blocked'], webhook: `${rx.url}/blocked-only` },
      { on: ['blocked', 'failed'], webhook: `${rx.url}/refuse`, tries: 3, backoff: '10ms' },
      { on: ['failed'], webhook: `${rx.url}/failed-only` },
    ]);
    notifier.start();
    const now = Date.now();
    await store.enqueue([newTask('asks')], now);
    const c = (await store.claim({ workerId: 'w', now, leaseMs: 30_000, concurrency: 5, agents: ['command'], labels: [] }))!;
    await store.block(c.attempt.id, { question: 'Which colour?', stats: emptyStats(), now: now + 1 });
    await notifier.sweep();
    await waitFor('the blocked notification and the refusal', () => rx.received.some((r) => r.path === '/blocked-only') && errors.length > 0);
    const got = rx.received.find((r) => r.path === '/blocked-only')!.body;
    assert.deepEqual([got.event, got.taskId, got.question], ['blocked', c.task.id, 'Which colour?']);
    assert.match(got.answerUrl ?? '', new RegExp(`^http://127\\.0\\.0\\.1:8765/v1/tasks/${c.task.id}/answer\\?token=aqa_`));
    assert.equal(rx.received.filter((r) => r.path === '/refuse').length, 1, 'a 404 is final: one try');
    assert.equal(rx.received.some((r) => r.path === '/failed-only'), false, 'not a target of blocked');
    assert.match(errors[0]!.message, /^notify\[1\] webhook http:\/\/127\.0\.0\.1:\d+\/…: gave up on "blocked:task \d+:claim 1": HTTP 404/);
    const status = await notifyStatus(store, config);
    assert.deepEqual(
      status.map((s) => [s.label.replace(/:\d+\//, ':PORT/'), s.delivered, s.pending, s.failed, s.failing]),
      [
        ['notify[0] webhook http://127.0.0.1:PORT/…', 1, 0, 0, false],
        ['notify[1] webhook http://127.0.0.1:PORT/…', 0, 0, 1, true],
        ['notify[2] webhook http://127.0.0.1:PORT/…', 0, 0, 0, false],
      ],
    );
    assert.match(status[1]!.lastError ?? '', /^HTTP 404/);
    await notifier.sweep();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(rx.received.filter((r) => r.path === '/blocked-only').length, 1, 'swept again: sent once');
  });
});
