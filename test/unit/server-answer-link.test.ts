/**
 * Answer links through a real `AgentqServer` (dispatcher + API, a main token configured, the
 * `command` agent asking a question on its first run): the blocked notification carries a
 * link under `serve.public_url`; the link opens its form and answers the task without the
 * main token, once (then 410); it resumes the task; another task's, an unknown and an
 * expired token are refused; the token opens no other route.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig, projectPaths } from '../../src/config/config.ts';
import type { Task } from '../../src/core/types.ts';
import { answerTokenSha256, newAnswerToken } from '../../src/notify/answer-link.ts';
import type { WebhookBody } from '../../src/notify/payloads.ts';
import { AgentqServer } from '../../src/server/serve.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { makeProject } from '../fixtures/project.ts';
import { waitFor } from '../fixtures/procs.ts';

const MAIN = 'main-token-for-the-api';
const PUBLIC = 'https://agentq.example.test/base';

/** Asks on its first run; once its prompt holds the answer, prints the prompt. */
const ASKS = `input=$(cat); case "$input" in *'The answer:'*) printf '%s' "$input";; *) printf '<<question>>Which colour?<</question>>';; esac`;

const cleanup: Array<() => Promise<void>> = [];
after(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

async function receiver() {
  const bodies: WebhookBody[] = [];
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d) => (raw += d));
    req.on('end', () => {
      bodies.push(JSON.parse(raw) as WebhookBody);
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, bodies, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe('answer links', () => {
  it('answer a blocked task once without the main token; other, unknown and expired tokens are refused', async () => {
    const rx = await receiver();
    cleanup.push(rx.close);
    const paths = makeProject({ poll_interval: '100ms', serve: { public_url: `${PUBLIC}/` }, notify: [{ on: ['blocked'], webhook: `${rx.url}/hook` }] });
    const store = new SqliteStore(path.join(paths.dir, 'agentq.db'));
    const server = await AgentqServer.start({ paths: projectPaths(paths.root), config: loadConfig(paths.root), store, host: '127.0.0.1', port: 0, token: MAIN, webDist: null });
    cleanup.push(async () => {
      await server.close();
      await store.close();
    });
    const call = (method: string, url: string, body?: unknown, auth = false) =>
      fetch(`${server.url}${url}`, {
        method,
        headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(auth ? { authorization: `Bearer ${MAIN}` } : {}) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    const submit = async (name: string) => {
      const r = await call('POST', '/v1/tasks', { prompt: 'Paint the fence.', name, agent: 'command', command: ASKS }, true);
      assert.equal(r.status, 201);
      return ((await r.json()) as { task: Task }).task.id;
    };
    const paint = await submit('paint');
    const other = await submit('other');
    await waitFor(() => rx.bodies.filter((b) => b.event === 'blocked').length === 2, 30_000, 'two blocked notifications');
    const linkOf = (id: number) => {
      const b = rx.bodies.find((x) => x.taskId === id)!;
      assert.equal(b.question, 'Which colour?');
      assert.ok(b.answerExpiresAt! > Date.now() + 23 * 3_600_000, 'valid for 24 h');
      assert.ok(b.answerUrl!.startsWith(`${PUBLIC}/v1/tasks/${id}/answer?token=aqa_`), b.answerUrl!);
      return b.answerUrl!.slice(PUBLIC.length); // the same path on this server
    };
    const paintLink = linkOf(paint);
    const otherLink = linkOf(other);
    const tokenOf = (link: string) => new URL(link, 'http://x').searchParams.get('token')!;

    // The link's form opens without the main token; it holds no task data.
    const page = await call('GET', paintLink);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(page.headers.get('cache-control'), 'no-store');
    const html = await page.text();
    assert.match(html, new RegExp(`Answer task #${paint}`));
    assert.doesNotMatch(html, /Which colour/);

    // The token opens no other route, and without it the main token is needed.
    assert.equal((await call('GET', `/v1/tasks/${paint}?token=${tokenOf(paintLink)}`)).status, 401);
    assert.equal((await call('POST', `/v1/tasks/${paint}/answer`, { answer: 'x' })).status, 401);
    // Another task's token, a made-up one, an unknown task: 401.
    const wrong = await call('POST', `/v1/tasks/${paint}/answer?token=${tokenOf(otherLink)}`, { answer: 'Red' });
    assert.equal(wrong.status, 401);
    assert.equal(((await wrong.json()) as { error: { field: string } }).error.field, 'token');
    assert.equal((await call('POST', `/v1/tasks/${paint}/answer?token=aqa_made-up`, { answer: 'Red' })).status, 401);
    assert.equal((await call('POST', `/v1/tasks/999/answer?token=${tokenOf(paintLink)}`, { answer: 'Red' })).status, 401);
    assert.equal((await store.getTask(paint))?.state, 'blocked');

    // The link answers once, without the main token; the task resumes with the answer.
    const ok = await call('POST', paintLink, { answer: 'Blue, please.' });
    assert.equal(ok.status, 200);
    assert.equal(((await ok.json()) as { task: Task }).task.state, 'queued');
    const again = await call('POST', paintLink, { answer: 'Green' });
    assert.equal(again.status, 410);
    assert.match(((await again.json()) as { error: { message: string } }).error.message, /used already/);
    await waitFor(async () => (await store.getTask(paint))?.state === 'completed', 30_000, 'the answered task to complete');
    const done = (await store.getTask(paint))!;
    assert.match(done.result ?? '', /The answer: Blue, please\./);

    // An expired token is refused (410); the task's live link still works.
    const stale = newAnswerToken();
    const blocked = (await store.getTask(other))!;
    await store.addAnswerToken({ tokenSha256: answerTokenSha256(stale), taskId: other, claims: blocked.claims, expiresAt: Date.now() - 1 }, Date.now());
    const expired = await call('POST', `/v1/tasks/${other}/answer?token=${stale}`, { answer: 'Red' });
    assert.equal(expired.status, 410);
    assert.match(((await expired.json()) as { error: { message: string } }).error.message, /expired/);
    assert.equal((await call('POST', otherLink, { answer: 'Red' })).status, 200);
    // The main token still answers the usual way (the task is queued now: 409).
    assert.equal((await call('POST', `/v1/tasks/${other}/answer`, { answer: 'x' }, true)).status, 409);
  });
});
