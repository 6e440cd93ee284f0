/**
 * `agentq serve` end to end: a real `bin/agentq serve` process (dispatcher + HTTP API) on a
 * free port, a `command` task submitted over HTTP and watched over SSE until its result,
 * a Last-Event-ID reconnect that misses nothing, idempotency, a token, bad input that
 * changes nothing, a clean stop on SIGTERM, the refusal to listen beyond loopback
 * without a token, and a request log (--verbose) without the secrets of query strings.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import type { Task } from '../../src/core/types.ts';
import { agentq, makeProject } from '../fixtures/project.ts';
import { rawRequest } from '../fixtures/raw-http.ts';
import { killServeProcesses, serveProcess } from '../fixtures/serve-process.ts';
import { sseConnect } from '../fixtures/sse.ts';

after(killServeProcesses);

/** Starts `agentq serve --port 0` and waits for its "listening on" line. */
const serve = serveProcess;

const json = (token?: string) => ({ 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) });

describe('agentq serve', () => {
  it('runs a task submitted over HTTP and reports it over SSE; a reconnect with Last-Event-ID misses nothing', async () => {
    const paths = makeProject();
    const token = 'e2e-token-7f3a';
    const s = await serve(paths.root, { AGENTQ_TOKEN: token });
    assert.match(s.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const auth = { authorization: `Bearer ${token}` };
    assert.equal((await fetch(`${s.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${s.url}/v1/tasks`)).status, 401);

    const sse = await sseConnect(`${s.url}/v1/events`, auth);
    assert.equal(sse.status, 200);
    const body = { prompt: 'Say hi.', name: 'greet', agent: 'command', command: ['sh', '-c', 'cat >/dev/null; echo hi from $AGENTQ_TASK_NAME'] };
    const created = await fetch(`${s.url}/v1/tasks`, { method: 'POST', headers: { ...json(token), 'idempotency-key': 'greet-1' }, body: JSON.stringify(body) });
    assert.equal(created.status, 201);
    const task = ((await created.json()) as { task: Task }).task;

    const isMine = (name: string) => (e: { event: string; data: string }) => e.event === name && (JSON.parse(e.data) as { task: Task }).task.id === task.id;
    const c = await sse.waitFor(isMine('task.created'));
    const st = await sse.waitFor(isMine('task.started'));
    const fin = await sse.waitFor(isMine('task.finished'));
    assert.ok(Number(c.id) < Number(st.id) && Number(st.id) < Number(fin.id));
    const started = JSON.parse(st.data) as { attemptId: string; agent: string };
    assert.equal(started.agent, 'command');
    assert.match(started.attemptId, /^[0-9a-f-]{36}$/);
    assert.equal((JSON.parse(fin.data) as { task: Task }).task.state, 'completed');
    sse.close();

    const detail = (await (await fetch(`${s.url}/v1/tasks/${task.id}`, { headers: auth })).json()) as { task: Task; attempts: Array<{ outcome: string }> };
    assert.equal(detail.task.state, 'completed');
    assert.equal(detail.task.result, 'hi from greet');
    assert.deepEqual(detail.attempts.map((a) => a.outcome), ['completed']);
    assert.ok(fs.existsSync(path.join(paths.done, 'greet.md')), 'the result file is written as for inbox tasks');
    assert.equal(await (await fetch(`${s.url}/v1/tasks/${task.id}/logs`, { headers: auth })).text(), 'hi from greet\n');

    // Idempotency against the running server: replay → 200 with the first task; another body → 409.
    const replay = await fetch(`${s.url}/v1/tasks`, { method: 'POST', headers: { ...json(token), 'idempotency-key': 'greet-1' }, body: JSON.stringify(body) });
    assert.equal(replay.status, 200);
    assert.equal(((await replay.json()) as { task: Task }).task.id, task.id);
    const conflict = await fetch(`${s.url}/v1/tasks`, { method: 'POST', headers: { ...json(token), 'idempotency-key': 'greet-1' }, body: JSON.stringify({ ...body, prompt: 'other' }) });
    assert.equal(conflict.status, 409);

    // Disconnected: two more tasks run; reconnecting after the last event seen replays them all.
    const lastSeen = Number(fin.id);
    const ids: number[] = [];
    for (const name of ['second', 'third']) {
      const r = await fetch(`${s.url}/v1/tasks`, { method: 'POST', headers: json(token), body: JSON.stringify({ ...body, name }) });
      ids.push(((await r.json()) as { task: Task }).task.id);
    }
    for (const id of ids) {
      for (let i = 0; ; i++) {
        const t = ((await (await fetch(`${s.url}/v1/tasks/${id}`, { headers: auth })).json()) as { task: Task }).task;
        if (t.state === 'completed') break;
        assert.ok(i < 400, `task ${id} did not complete: ${t.state}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const again = await sseConnect(`${s.url}/v1/events`, { ...auth, 'last-event-id': String(lastSeen) });
    for (const id of ids) await again.waitFor((e) => e.event === 'task.finished' && (JSON.parse(e.data) as { task: Task }).task.id === id);
    const replayed = again.events.map((e) => Number(e.id));
    assert.deepEqual(replayed, replayed.map((_, i) => lastSeen + 1 + i), 'every event after the last seen, in order, none twice');
    for (const id of ids) {
      const names = again.events.filter((e) => (JSON.parse(e.data) as { task?: Task }).task?.id === id).map((e) => e.event);
      assert.deepEqual(names, ['task.created', 'task.started', 'task.finished']);
    }
    again.close();

    // Bad input over the wire: a 4xx each, and the store does not change.
    const count = async () => ((await (await fetch(`${s.url}/v1/status`, { headers: auth })).json()) as { counts: Record<string, number> }).counts;
    const total = (c: Record<string, number>) => Object.values(c).reduce((a, b) => a + b, 0);
    const before = total(await count());
    const bad: Array<[RequestInit, number]> = [
      [{ headers: json(token), body: '{"prompt": ' }, 400],
      [{ headers: json(token), body: JSON.stringify({ prompt: 'x', priority: 'urgent' }) }, 400],
      [{ headers: json(token), body: JSON.stringify({ prompt: 'x', retries: 'two' }) }, 400],
      [{ headers: json(token), body: JSON.stringify({ prompt: 'x', shell: 'rm -rf /' }) }, 400],
      [{ headers: json(token), body: JSON.stringify({ prompt: 'x', name: '../../escape' }) }, 400],
      [{ headers: json(token), body: JSON.stringify({ prompt: 'x'.repeat(1024 * 1024 + 10) }) }, 413],
      [{ headers: { 'content-type': 'text/plain', ...auth }, body: 'x' }, 415],
      [{ headers: json('wrong-token'), body: JSON.stringify({ prompt: 'x' }) }, 401],
      [{ headers: json(), body: JSON.stringify({ prompt: 'x' }) }, 401],
    ];
    for (const [init, status] of bad) {
      const r = await fetch(`${s.url}/v1/tasks`, { method: 'POST', ...init });
      assert.equal(r.status, status, `${JSON.stringify(init.headers)} ${String(init.body).slice(0, 60)}`);
      const err = ((await r.json()) as { error: { code: string; message: string } }).error;
      assert.ok(err.code && err.message);
    }
    assert.equal(total(await count()), before, 'nothing was created');
    assert.doesNotMatch(s.stdout() + s.stderr(), new RegExp(token), 'the token is never printed');

    s.child.kill('SIGTERM');
    assert.equal(await s.exited, 0);
    assert.match(s.stderr(), /SIGTERM: stopping/);
    const workers = await agentq(['status', '--json', '--project', paths.root]);
    assert.deepEqual((JSON.parse(workers.stdout) as { workers: unknown[] }).workers, [], 'it unregistered its dispatcher');
  });

  it('--verbose logs requests with secret query values redacted; hostile paths and bodies get precise answers', async () => {
    const paths = makeProject();
    const token = 'e2e-token-log-9c1d';
    const s = await serve(paths.root, { AGENTQ_TOKEN: token }, ['--verbose']);
    const auth = { authorization: `Bearer ${token}` };
    const listed = await rawRequest(s.url, { path: '/v1/tasks?limit=5&access_token=SECRET-Q-123', headers: auth });
    assert.equal(listed.status, 400, listed.body);
    assert.equal((await rawRequest(s.url, { path: '/v1/tasks?token=SECRET-Q-123' })).status, 401);
    for (const p of ['/v1/./tasks', '//v1/tasks', '/v1/%2e%2e/v1/tasks']) {
      const r = await rawRequest(s.url, { path: p, headers: auth });
      assert.equal(r.status, 404, `${p}: ${r.body}`);
      assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, 'not_found');
    }
    const proto = await rawRequest(s.url, { method: 'POST', path: '/v1/tasks', headers: { ...json(token) }, body: '{"prompt":"x","__proto__":{"admin":true}}' });
    assert.equal(proto.status, 400);
    assert.equal((JSON.parse(proto.body) as { error: { field: string } }).error.field, '__proto__');
    for (let i = 0; !s.stderr().includes('?token=[redacted]'); i++) {
      assert.ok(i < 100, `no request log on stderr: ${s.stderr()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(s.stderr(), /\/v1\/tasks\?limit=5&access_token=\[redacted\]/);
    assert.doesNotMatch(s.stdout() + s.stderr(), /SECRET-Q-123/);
    assert.doesNotMatch(s.stdout() + s.stderr(), new RegExp(token));
    s.child.kill('SIGTERM');
    assert.equal(await s.exited, 0);
  });

  it('refuses to listen beyond loopback without a token (exit 2)', async () => {
    const paths = makeProject();
    const r = await agentq(['serve', '--project', paths.root, '--host', '0.0.0.0', '--port', '0'], { AGENTQ_TOKEN: '' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /refusing to listen on 0\.0\.0\.0 without a token.*AGENTQ_TOKEN/);
    const bad = await agentq(['serve', '--project', paths.root, '--port', '99999']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--port: "99999" is not a port number/);
  });
});
