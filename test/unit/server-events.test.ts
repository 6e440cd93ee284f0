/**
 * Live events: the ring buffer and Last-Event-ID replay of EventHub, the mapping of the
 * dispatcher's events (including agent.resumed when a pause ends), and GET /v1/events
 * over a real socket (replay, reset, ping, token).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/config.ts';
import { DispatcherEvents } from '../../src/events/events.ts';
import { buildApp } from '../../src/server/app.ts';
import { bridgeDispatcherEvents, EventHub } from '../../src/server/event-hub.ts';
import { createMetrics } from '../../src/server/metrics.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { makeProject } from '../fixtures/project.ts';
import { makeTask, newTask } from '../fixtures/specs.ts';
import { sseConnect } from '../fixtures/sse.ts';

const cleanup: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

describe('EventHub', () => {
  it('numbers events, replays those after a Last-Event-ID, and resets when the id left the buffer', () => {
    const hub = new EventHub({ capacity: 5, firstId: 100 });
    assert.deepEqual(hub.since(99), { reset: false, events: [] }, 'nothing yet, nothing missed');
    for (let i = 0; i < 8; i++) hub.publish('agent.resumed', { agent: `a${i}` });
    // Ids 100…107; the buffer holds 103…107.
    assert.equal(hub.lastId, 107);
    assert.deepEqual(
      hub.since(104).events.map((e) => [e.id, JSON.parse(e.data).agent]),
      [
        [105, 'a5'],
        [106, 'a6'],
        [107, 'a7'],
      ],
    );
    assert.deepEqual(hub.since(102).events.map((e) => e.id), [103, 104, 105, 106, 107], 'the oldest buffered follows directly');
    assert.equal(hub.since(101).reset, true, 'event 102 is gone: reset');
    assert.equal(hub.since(107).events.length, 0);
    assert.equal(hub.since(108).reset, true, 'an id this hub never gave (another process)');
    assert.equal(hub.since(Number.NaN).reset, true);
  });

  it("maps the dispatcher's events to the API's and announces when a pause ends", async () => {
    const paths = makeProject();
    const store = new SqliteStore(path.join(paths.dir, 'agentq.db'));
    cleanup.push(() => store.close());
    const events = new DispatcherEvents();
    const hub = new EventHub();
    const detach = bridgeDispatcherEvents(events, hub, store);
    cleanup.push(detach);
    const [task] = await store.enqueue([newTask('a')], Date.now());
    assert.ok(task);
    const claim = await store.claim({ workerId: 'w', now: Date.now(), leaseMs: 30_000, concurrency: 1, agents: ['command', 'claude'], labels: [] });
    assert.ok(claim);
    events.emit('task.created', task);
    events.emit('task.started', claim, 'sonnet');
    events.emit('task.progress', claim, { type: 'progress', text: 'Read README.md' });
    events.emit('task.progress', claim, { type: 'spawned', pid: 1 }); // not a progress line: not published
    events.emit('task.recovered', task, []);
    const until = Date.now() + 150;
    await store.pauseAgent({ agent: 'claude', until, reason: 'rate limited' });
    events.emit('agent.paused', { agent: 'claude', until, reason: 'rate limited' });
    const resumed = new Promise<void>((resolve) => hub.subscribe((e) => e.event === 'agent.resumed' && resolve()));
    const keepAlive = setTimeout(() => {}, 10_000); // the pause timer does not hold the process open
    await resumed;
    clearTimeout(keepAlive);
    const got = hub.since(hub.lastId - 6).events.map((e) => [e.event, JSON.parse(e.data)]);
    assert.deepEqual(
      got.map(([name]) => name),
      ['task.created', 'task.started', 'task.progress', 'task.requeued', 'agent.paused', 'agent.resumed'],
    );
    assert.deepEqual(got[1]![1], { task: JSON.parse(JSON.stringify(claim.task)), attemptId: claim.attempt.id, agent: claim.task.agent, model: 'sonnet' });
    assert.deepEqual(got[2]![1], { taskId: task.id, attemptId: claim.attempt.id, text: 'Read README.md' });
    assert.deepEqual(got[4]![1], { agent: 'claude', until, reason: 'rate limited' });
    assert.deepEqual(got[5]![1], { agent: 'claude' });
  });
});

describe('GET /v1/events', () => {
  it('streams events with ids, replays after Last-Event-ID, resets for an unknown id, pings, and needs the token', async () => {
    const paths = makeProject();
    const config = loadConfig(paths.root);
    const store = new SqliteStore(path.join(paths.dir, 'agentq.db'));
    const events = new DispatcherEvents();
    const hub = new EventHub();
    bridgeDispatcherEvents(events, hub, store);
    const app = await buildApp({ store, config, paths, token: 'tok', events, hub, metrics: createMetrics(store, events), webDist: null, pingMs: 100 });
    await app.listen({ host: '127.0.0.1', port: 0 });
    cleanup.push(async () => {
      await app.close();
      await store.close();
    });
    const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/v1/events`;
    const auth = { authorization: 'Bearer tok' };

    const refused = await sseConnect(base);
    assert.equal(refused.status, 401);
    refused.close();

    const a = await sseConnect(base, auth);
    assert.equal(a.status, 200);
    assert.match(String(a.headers['content-type']), /^text\/event-stream/);
    const t = (name: string) => makeTask({ name });
    events.emit('task.created', t('one'));
    events.emit('task.finished', t('two'));
    const first = await a.waitFor((e) => e.event === 'task.created');
    const second = await a.waitFor((e) => e.event === 'task.finished');
    assert.equal(Number(second.id), Number(first.id) + 1);
    assert.equal(JSON.parse(first.data).task.name, 'one');
    await a.waitForComment((c) => c === 'ping');
    a.close();

    // Missed while disconnected: replayed, in order, then live.
    events.emit('task.waiting', t('three'));
    events.emit('task.blocked', t('four'));
    const b = await sseConnect(base, { ...auth, 'last-event-id': String(first.id) });
    await b.waitFor((e) => e.event === 'task.blocked');
    events.emit('task.created', t('five'));
    await b.waitFor((e) => e.event === 'task.created');
    assert.deepEqual(
      b.events.map((e) => e.event),
      ['task.finished', 'task.waiting', 'task.blocked', 'task.created'],
    );
    const ids = b.events.map((e) => Number(e.id));
    assert.deepEqual(ids, ids.map((_, i) => Number(first.id) + 1 + i), 'no gap, no repeat');
    b.close();

    const c = await sseConnect(`${base}?lastEventId=12`, auth);
    const reset = await c.waitFor(() => true);
    assert.equal(reset.event, 'reset');
    assert.equal(reset.data, '{}');
    assert.equal(Number(reset.id), hub.lastId, 'reset carries the current id: a reconnect after it replays only newer events');
    c.close();
  });
});
