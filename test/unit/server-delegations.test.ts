/**
 * GET /v1/delegations through `fastify.inject` on a real SQLite store: the ledger newest
 * first with result preview or error, filtered by state, paged; bad queries refused; and
 * POST /v1/tasks for `agent: a2a` (remote required, by the task-file rules).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { Delegation } from '../../src/core/delegation.ts';
import { closeHarnesses, harness, post } from '../fixtures/server-app.ts';
import { newTask } from '../fixtures/specs.ts';

after(closeHarnesses);

type Listed = { delegations: Array<Delegation & { taskName: string | null }>; nextCursor: string | null };

describe('GET /v1/delegations', () => {
  it('lists the ledger newest first with preview or error, by state, with a cursor; refuses an unknown state', async () => {
    const h = await harness();
    const tasks = await h.store.enqueue([newTask('first', { agent: 'a2a', remote: 'box' }), newTask('second', { agent: 'a2a', remote: 'box' }), newTask('third', { agent: 'a2a', remote: 'http://127.0.0.1:9/' })], 1000);
    const ids: number[] = [];
    for (const [i, t] of tasks.entries()) ids.push((await h.store.createDelegation({ taskId: t.id, attemptId: `a${i}`, remote: t.remote!, url: 'http://127.0.0.1:9/', now: 1000 + i })).delegation.id);
    await h.store.updateDelegation(ids[0]!, 'pending', { state: 'completed', remoteTaskId: 'rt-1', resultPreview: 'all done' }, 2000);
    await h.store.updateDelegation(ids[1]!, 'pending', { state: 'failed', lastError: 'remote box lost its task' }, 2001);

    let r = await h.app.inject({ method: 'GET', url: '/v1/delegations' });
    assert.equal(r.statusCode, 200, r.body);
    let body = r.json() as Listed;
    assert.deepEqual(body.delegations.map((d) => [d.id, d.taskName, d.state]), [
      [ids[2], 'third', 'pending'],
      [ids[1], 'second', 'failed'],
      [ids[0], 'first', 'completed'],
    ]);
    assert.deepEqual([body.delegations[2]?.resultPreview, body.delegations[2]?.remoteTaskId, body.delegations[1]?.lastError], ['all done', 'rt-1', 'remote box lost its task']);
    assert.equal(body.nextCursor, null);

    r = await h.app.inject({ method: 'GET', url: '/v1/delegations?state=failed' });
    assert.deepEqual((r.json() as Listed).delegations.map((d) => d.id), [ids[1]]);

    r = await h.app.inject({ method: 'GET', url: '/v1/delegations?limit=2' });
    body = r.json() as Listed;
    assert.deepEqual(body.delegations.map((d) => d.id), [ids[2], ids[1]]);
    assert.ok(body.nextCursor);
    r = await h.app.inject({ method: 'GET', url: `/v1/delegations?limit=2&cursor=${body.nextCursor}` });
    assert.deepEqual((r.json() as Listed).delegations.map((d) => d.id), [ids[0]]);

    r = await h.app.inject({ method: 'GET', url: '/v1/delegations?state=lost' });
    assert.equal(r.statusCode, 400);
    assert.equal((r.json() as { error: { code: string } }).error.code, 'bad_request');
  });

  it('needs the token like every /v1 route; is in /openapi.json', async () => {
    const h = await harness({ token: 'secret' });
    assert.equal((await h.app.inject({ method: 'GET', url: '/v1/delegations' })).statusCode, 401);
    assert.equal((await h.app.inject({ method: 'GET', url: '/v1/delegations', headers: { authorization: 'Bearer secret' } })).statusCode, 200);
    const doc = (await h.app.inject({ method: 'GET', url: '/openapi.json' })).json() as { paths: Record<string, unknown> };
    assert.ok(doc.paths['/v1/delegations']);
  });
});

describe('POST /v1/tasks with agent: a2a', () => {
  it('keeps remote; refuses a2a without remote, and a remote that is neither a name nor a URL, naming the field', async () => {
    const h = await harness();
    let r = await post(h.app, '/v1/tasks', { prompt: 'x', agent: 'a2a', remote: 'buildbox' });
    assert.equal(r.statusCode, 201, r.body);
    assert.equal((r.json() as { task: { remote: string } }).task.remote, 'buildbox');
    r = await post(h.app, '/v1/tasks', { prompt: 'x', agent: 'a2a' });
    assert.equal(r.statusCode, 400);
    assert.deepEqual((r.json() as { error: { field: string } }).error.field, 'remote');
    r = await post(h.app, '/v1/tasks', { prompt: 'x', agent: 'a2a', remote: 'ftp://box' });
    assert.equal(r.statusCode, 400);
    assert.match((r.json() as { error: { message: string } }).error.message, /^remote: "ftp:\/\/box" is not a remote/);
    assert.equal(h.count(), 1, 'refused requests store nothing');
  });
});
