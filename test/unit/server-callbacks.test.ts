/**
 * callback_url deliveries through a real `AgentqServer` (dispatcher + API in this process,
 * the `command` agent running real processes) against a local HTTP receiver: retried on
 * 5xx and connection errors with backoff (short, via config), final on 4xx, recorded and
 * shown by GET /v1/tasks/:id, and resumed from the store after a restart.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig, projectPaths } from '../../src/config/config.ts';
import type { Task } from '../../src/core/types.ts';
import type { CallbackPayload } from '../../src/server/callbacks.ts';
import { AgentqServer } from '../../src/server/serve.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { makeProject } from '../fixtures/project.ts';
import { newTask } from '../fixtures/specs.ts';

interface Received {
  path: string;
  body: CallbackPayload;
  headers: http.IncomingHttpHeaders;
}

/** A receiver on 127.0.0.1: `/flaky` answers 500 twice, then 200; `/gone` 404; anything else 200. */
async function receiver(): Promise<{ url: string; received: Received[]; close: () => Promise<void> }> {
  const received: Received[] = [];
  let flaky = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      received.push({ path: req.url ?? '', body: JSON.parse(body) as CallbackPayload, headers: req.headers });
      if (req.url === '/flaky' && ++flaky <= 2) res.writeHead(500).end('try later');
      else if (req.url === '/gone') res.writeHead(404).end('no such hook');
      else res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, received, close: () => new Promise((r) => server.close(() => r())) };
}

/** A port nothing listens on (connection refused). */
async function deadPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

const cleanup: Array<() => Promise<void>> = [];
after(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

async function startServer(root: string, store: SqliteStore) {
  return AgentqServer.start({ paths: projectPaths(root), config: loadConfig(root), store, host: '127.0.0.1', port: 0, token: null, webDist: null, callbackPollMs: 50 });
}

async function waitForCallback(base: string, id: number, done: (c: { state: string }) => boolean) {
  for (let i = 0; i < 600; i++) {
    const detail = (await (await fetch(`${base}/v1/tasks/${id}`)).json()) as { task: Task; callback: { state: string; attempts: number; lastError: string | null; deliveredAt: number | null; url: string } };
    if (detail.callback && done(detail.callback)) return detail;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`callback of task ${id} did not settle`);
}

describe('callback_url', () => {
  it('retries 5xx and connection errors with backoff, gives up on 4xx, and records the outcome', async () => {
    const rx = await receiver();
    cleanup.push(rx.close);
    const paths = makeProject({ serve: { callback_backoff: '20ms', callback_tries: 4 } });
    const store = new SqliteStore(path.join(paths.dir, 'agentq.db'));
    const server = await startServer(paths.root, store);
    cleanup.push(async () => {
      await server.close();
      await store.close();
    });
    const dead = await deadPort();
    const submit = async (name: string, url: string, command = 'cat >/dev/null; echo hi') => {
      const r = await fetch(`${server.url}/v1/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'x', name, agent: 'command', command, callback_url: url }),
      });
      assert.equal(r.status, 201);
      return ((await r.json()) as { task: Task }).task.id;
    };
    const flaky = await submit('flaky', `${rx.url}/flaky`);
    const gone = await submit('gone', `${rx.url}/gone`, 'exit 3');
    const down = await submit('down', `http://127.0.0.1:${dead}/hook`);

    const f = await waitForCallback(server.url, flaky, (c) => c.state !== 'pending');
    assert.equal(f.callback.state, 'delivered');
    assert.equal(f.callback.attempts, 3, 'two 500s, then delivered');
    assert.equal(f.callback.lastError, null);
    assert.ok(f.callback.deliveredAt! >= f.task.finishedAt!);
    const bodies = rx.received.filter((r) => r.path === '/flaky');
    assert.equal(bodies.length, 3);
    assert.deepEqual(bodies[2]!.body, {
      taskId: flaky,
      name: 'flaky',
      state: 'completed',
      result: 'hi',
      failedReason: null,
      costUsd: null,
      inputTokens: null,
      outputTokens: null,
      finishedAt: f.task.finishedAt,
    });
    assert.equal(bodies[0]!.headers['content-type'], 'application/json');

    const g = await waitForCallback(server.url, gone, (c) => c.state !== 'pending');
    assert.equal(g.callback.state, 'failed');
    assert.equal(g.callback.attempts, 1, 'a 4xx is final');
    assert.match(g.callback.lastError ?? '', /^HTTP 404/);
    const goneBody = rx.received.find((r) => r.path === '/gone')!.body;
    assert.equal(goneBody.state, 'failed');
    assert.match(goneBody.failedReason ?? '', /exited with code 3/);

    const d = await waitForCallback(server.url, down, (c) => c.state !== 'pending');
    assert.equal(d.callback.state, 'failed');
    assert.equal(d.callback.attempts, 4, 'callback_tries in all');
    assert.match(d.callback.lastError ?? '', /ECONNREFUSED.*gave up after 4 tries/);
  });

  it('resumes pending deliveries from the store when the server starts', async () => {
    const rx = await receiver();
    cleanup.push(rx.close);
    const paths = makeProject();
    const store = new SqliteStore(path.join(paths.dir, 'agentq.db'));
    // A task that ended while no server ran (cancelled from the CLI, say), its callback never tried.
    const { task } = await store.enqueueRequest(newTask('ended-offline'), { callbackUrl: `${rx.url}/later` }, Date.now());
    await store.cancel(task.id, Date.now());
    assert.equal((await store.getCallback(task.id))?.state, 'pending');
    const server = await startServer(paths.root, store);
    cleanup.push(async () => {
      await server.close();
      await store.close();
    });
    const done = await waitForCallback(server.url, task.id, (c) => c.state !== 'pending');
    assert.equal(done.callback.state, 'delivered');
    assert.equal(rx.received.find((r) => r.path === '/later')?.body.state, 'cancelled');
  });
});
