/**
 * The HTTP API through `fastify.inject` on a real SQLite store: task creation and its
 * validation (the task-file rules), idempotency, auth, listing, actions, logs, status,
 * usage, metrics, OpenAPI, static files, and bad input that must change nothing.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { KNOWN_FIELDS, parseTaskFile } from '../../src/config/task-file.ts';
import { InvalidTaskError } from '../../src/core/errors.ts';
import type { Task } from '../../src/core/types.ts';
import { attemptLogFile } from '../../src/results/logs.ts';
import Database from 'better-sqlite3';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { rawRequest } from '../fixtures/raw-http.ts';
import { closeHarnesses, harness, post } from '../fixtures/server-app.ts';

after(closeHarnesses);

type Reply = Awaited<ReturnType<typeof post>>;

/** The refusal a task file named `t` with this frontmatter gets (the API must give the same). */
function fileRefusal(fm: string): InvalidTaskError {
  try {
    parseTaskFile('t', `---\n${fm}\n---\nDo it.`, { default_timeout: 1000, default_retries: 0 });
  } catch (err) {
    if (err instanceof InvalidTaskError) return err;
    throw err;
  }
  throw new Error(`the file was valid: ${fm}`);
}

/** The message a task file with this frontmatter gets. */
const fileMessage = (fm: string): string => fileRefusal(fm).message;

describe('POST /v1/tasks', () => {
  it('creates a queued task from the task-file fields (201), reports task.created, and shows it with attempts and callback', async () => {
    const h = await harness();
    let created: Task | null = null;
    h.events.on('task.created', (t) => (created = t));
    const body = {
      prompt: 'Write the release notes.',
      title: 'Release notes',
      name: 'notes',
      priority: 'high',
      agent: 'command',
      command: ['sh', '-c', 'cat'],
      tags: ['docs', 'release'],
      timeout: '90s',
      retries: 1,
      callback_url: 'http://127.0.0.1:9/hook',
    };
    const r = await post(h.app, '/v1/tasks', body);
    assert.equal(r.statusCode, 201, r.body);
    const { task } = r.json() as { task: Task };
    assert.equal(task.state, 'queued');
    assert.equal(task.name, 'notes');
    assert.equal(task.priority, 'high');
    assert.equal(task.source, 'api');
    assert.equal(task.timeoutMs, 90_000);
    assert.deepEqual(task.tags, ['docs', 'release']);
    assert.deepEqual(task.command, ['sh', '-c', 'cat']);
    assert.equal(r.headers.location, `/v1/tasks/${task.id}`);
    assert.equal((created as Task | null)?.id, task.id);
    assert.equal(h.hub.since(h.hub.lastId - 1).events[0]?.event, 'task.created');
    const got = await h.app.inject({ url: `/v1/tasks/${task.id}` });
    assert.equal(got.statusCode, 200);
    const detail = got.json() as { task: Task; attempts: unknown[]; verifications: unknown[]; callback: Record<string, unknown> };
    assert.equal(detail.task.prompt, 'Write the release notes.');
    assert.deepEqual(detail.attempts, []);
    assert.deepEqual(detail.verifications, []);
    assert.deepEqual(detail.callback, { url: 'http://127.0.0.1:9/hook', state: 'pending', attempts: 0, lastError: null, deliveredAt: null });
    const byName = await h.app.inject({ url: '/v1/tasks/notes' });
    assert.equal((byName.json() as { task: Task }).task.id, task.id);
  });

  it('names a task from its title or prompt when no name is given; a prompt is data, not a path', async () => {
    const h = await harness();
    const r = await post(h.app, '/v1/tasks', { prompt: '../../etc/passwd; rm -rf / `id`' });
    assert.equal(r.statusCode, 201, r.body);
    const { task } = r.json() as { task: Task };
    assert.equal(task.name, 'etc-passwd-rm-rf-id');
    assert.equal(task.prompt, '../../etc/passwd; rm -rf / `id`');
  });

  it('Idempotency-Key: the same key and body give the first task (200), another body 409, and nothing new is stored', async () => {
    const h = await harness();
    const body = { prompt: 'once', agent: 'command', tags: ['a'] };
    const first = await post(h.app, '/v1/tasks', body, { 'idempotency-key': 'k-1' });
    assert.equal(first.statusCode, 201);
    const id = (first.json() as { task: Task }).task.id;
    // Same fields in another order: the same canonical body.
    const again = await post(h.app, '/v1/tasks', { tags: ['a'], agent: 'command', prompt: 'once' }, { 'idempotency-key': 'k-1' });
    assert.equal(again.statusCode, 200);
    assert.equal((again.json() as { task: Task }).task.id, id);
    const other = await post(h.app, '/v1/tasks', { ...body, prompt: 'twice' }, { 'idempotency-key': 'k-1' });
    assert.equal(other.statusCode, 409);
    assert.equal(other.json().error.code, 'conflict');
    assert.equal(other.json().error.field, 'idempotency-key');
    assert.equal(h.count(), 1);
    const noKey = await post(h.app, '/v1/tasks', body);
    assert.equal(noKey.statusCode, 201, 'without a key every POST creates');
    assert.equal(h.count(), 2);
  });

  it('refuses bad input with a 4xx naming the field, and the store does not change', async () => {
    const h = await harness({ configOverrides: { serve: { body_limit: 64 * 1024 } } });
    await post(h.app, '/v1/tasks', { prompt: 'existing', name: 'existing' });
    const before = h.count();
    const cases: Array<{ what: string; send: () => Promise<Reply>; status: number; code: string; field?: string | null; message?: string | RegExp }> = [
      { what: 'malformed JSON', send: () => post(h.app, '/v1/tasks', '{"prompt": "x",'), status: 400, code: 'bad_request', field: 'body' },
      { what: 'empty JSON body', send: () => post(h.app, '/v1/tasks', ''), status: 400, code: 'bad_request', field: 'body' },
      { what: 'a JSON array', send: () => post(h.app, '/v1/tasks', '[1,2]'), status: 400, code: 'bad_request', field: 'body' },
      { what: 'prototype pollution', send: () => post(h.app, '/v1/tasks', '{"prompt":"x","__proto__":{"admin":true}}'), status: 400, code: 'bad_request' },
      { what: 'no prompt', send: () => post(h.app, '/v1/tasks', { title: 'x' }), status: 400, code: 'bad_request', field: 'prompt', message: 'prompt: required' },
      { what: 'empty prompt', send: () => post(h.app, '/v1/tasks', { prompt: '  ' }), status: 400, code: 'bad_request', field: 'prompt' },
      { what: 'prompt of the wrong type', send: () => post(h.app, '/v1/tasks', { prompt: 42 }), status: 400, code: 'bad_request', field: 'prompt' },
      {
        what: 'unknown priority (the task-file message)',
        send: () => post(h.app, '/v1/tasks', { prompt: 'x', priority: 'urgent' }),
        status: 400,
        code: 'bad_request',
        field: 'priority',
        message: fileMessage('priority: urgent'),
      },
      { what: 'retries of the wrong type', send: () => post(h.app, '/v1/tasks', { prompt: 'x', retries: 'many' }), status: 400, code: 'bad_request', field: 'retries', message: fileMessage('retries: many') },
      { what: 'a numeric string is not a number', send: () => post(h.app, '/v1/tasks', { prompt: 'x', retries: '2' }), status: 400, code: 'bad_request', field: 'retries' },
      { what: 'tags of the wrong type', send: () => post(h.app, '/v1/tasks', { prompt: 'x', tags: [1, 2] }), status: 400, code: 'bad_request', field: 'tags' },
      { what: 'a bad timeout', send: () => post(h.app, '/v1/tasks', { prompt: 'x', timeout: 'soon' }), status: 400, code: 'bad_request', field: 'timeout', message: fileMessage('timeout: soon') },
      { what: 'an unknown agent', send: () => post(h.app, '/v1/tasks', { prompt: 'x', agent: 'skynet' }), status: 400, code: 'bad_request', field: 'agent', message: fileMessage('agent: skynet') },
      { what: 'an unknown field', send: () => post(h.app, '/v1/tasks', { prompt: 'x', owner: 'me' }), status: 400, code: 'bad_request', field: 'owner', message: /^owner: unknown field/ },
      { what: 'path traversal in the name', send: () => post(h.app, '/v1/tasks', { prompt: 'x', name: '../x' }), status: 400, code: 'bad_request', field: 'name' },
      { what: 'a slash in the name', send: () => post(h.app, '/v1/tasks', { prompt: 'x', name: 'a/b' }), status: 400, code: 'bad_request', field: 'name' },
      { what: 'a name of the wrong type', send: () => post(h.app, '/v1/tasks', { prompt: 'x', name: ['a'] }), status: 400, code: 'bad_request', field: 'name' },
      { what: 'an unknown dependency', send: () => post(h.app, '/v1/tasks', { prompt: 'x', depends_on: ['nope'] }), status: 400, code: 'bad_request', field: 'depends_on', message: 'depends_on: "nope" names no task in this project' },
      { what: 'a traversal dependency', send: () => post(h.app, '/v1/tasks', { prompt: 'x', depends_on: ['../existing'] }), status: 400, code: 'bad_request', field: 'depends_on' },
      { what: 'an unknown parent', send: () => post(h.app, '/v1/tasks', { prompt: 'x', parent: 'nope' }), status: 400, code: 'bad_request', field: 'parent' },
      { what: 'a file: callback', send: () => post(h.app, '/v1/tasks', { prompt: 'x', callback_url: 'file:///etc/passwd' }), status: 400, code: 'bad_request', field: 'callback_url' },
      { what: 'a callback that is no URL', send: () => post(h.app, '/v1/tasks', { prompt: 'x', callback_url: 'not a url' }), status: 400, code: 'bad_request', field: 'callback_url' },
      { what: 'a huge body', send: () => post(h.app, '/v1/tasks', { prompt: 'x'.repeat(200 * 1024) }), status: 413, code: 'payload_too_large' },
      {
        what: 'text/plain',
        send: () => h.app.inject({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'text/plain' }, payload: 'prompt' }),
        status: 415,
        code: 'unsupported_media_type',
      },
      {
        what: 'form data',
        send: () => h.app.inject({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'prompt=x' }),
        status: 415,
        code: 'unsupported_media_type',
      },
      { what: 'an empty Idempotency-Key', send: () => post(h.app, '/v1/tasks', { prompt: 'x' }, { 'idempotency-key': '' }), status: 400, code: 'bad_request' },
    ];
    for (const c of cases) {
      const r = await c.send();
      assert.equal(r.statusCode, c.status, `${c.what}: ${r.body}`);
      const err = (r.json() as { error: { code: string; message: string; field: string | null } }).error;
      assert.equal(err.code, c.code, c.what);
      assert.ok(err.message.length > 0, c.what);
      if (c.field !== undefined) assert.equal(err.field, c.field, `${c.what}: ${err.message}`);
      if (typeof c.message === 'string') assert.equal(err.message, c.message, c.what);
      else if (c.message) assert.match(err.message, c.message, c.what);
      assert.equal(h.count(), before, `${c.what}: nothing is stored`);
    }
    assert.equal(fs.readdirSync(h.paths.inbox).length, 0, 'nothing reached the inbox');
  });

  it('a bad value of any task field gets the same 400 message from POST /v1/tasks as from a task file', async () => {
    const h = await harness();
    // Each value is written into the file as JSON (a YAML flow value) and sent as is.
    const bad: Array<[string, unknown]> = [
      ['title', ''],
      ['title', 't'.repeat(501)],
      ['title', 'one\ntwo'],
      ['priority', 'urgent'],
      ['priority', 3],
      ['agent', 'skynet'],
      ['agent', '  '],
      ['model', 'm'.repeat(201)],
      ['depends_on', { a: 1 }],
      ['depends_on', ['t']],
      ['depends_on', ['../x']],
      ['depends_on', ['d'.repeat(101)]],
      ['depends_on', [5]],
      ['timeout', 'soon'],
      ['timeout', 0],
      ['timeout', '8d'],
      ['timeout', true],
      ['max_cost_usd', 0],
      ['max_cost_usd', 1e308],
      ['max_cost_usd', '5'],
      ['retries', 'many'],
      ['retries', 1.5],
      ['retries', 101],
      ['tags', { a: 1 }],
      ['tags', [1, 2]],
      ['tags', Array.from({ length: 51 }, (_, i) => `t${i}`)],
      ['tags', ['t'.repeat(201)]],
      ['dedup_key', true],
      ['dedup_key', 'k'.repeat(201)],
      ['command', []],
      ['command', ['', 'x']],
      ['command', ['echo', 'a\u0000b']],
      ['command', Array.from({ length: 1001 }, () => 'x')],
      ['command', { sh: 'x' }],
      ['retry_backoff', '30d'],
      ['retry_on_timeout', 'sometimes'],
      ['concurrency_group', ''],
      ['run_at', 'tomorrow'],
      ['run_at', '2026-02-30'],
      ['run_at', 20261201],
      ['workspace', 'docker'],
      ['merge', 'always'],
      ['parent', 't'],
      ['parent', 'p'.repeat(101)],
      ['parent', ['a']],
      ['max_turns', 0],
      ['max_turns', 'ten'],
      ['allowed_tools', ['Read\nEdit']],
      ['allowed_tools', 7],
      ['runs_on', ['gpu', '']],
      ['runs_on', { gpu: true }],
      ['runs_on', ['l'.repeat(201)]],
      ['verify', ''],
      ['verify', ['npm test', 7]],
      ['verify', Array.from({ length: 21 }, () => 'true')],
      ['verify', ['a\u0000b']],
      ['verify_timeout', '0s'],
      ['verify_timeout', '8d'],
      ['verify_retries', -1],
      ['verify_retries', 1.5],
      ['stall_timeout', 'soon'],
      ['stall_timeout', -5],
      ['remote', 'not a url'],
      ['remote', 'ftp://box'],
      ['remote', 5],
      ['workspace_setup', { npm: 'ci' }],
      ['workspace_setup', ['npm ci', ' ']],
      ['workspace_setup', Array.from({ length: 101 }, () => 'true')],
      ['remote_metadata', ['agent', 'command']],
      ['remote_metadata', 'agent: command'],
      ['remote_metadata', { command: 'x'.repeat(140_000) }],
    ];
    assert.deepEqual(new Set(bad.map(([f]) => f)), new Set(KNOWN_FIELDS), 'every task field is cross-checked');
    for (const [field, value] of bad) {
      const file = fileRefusal(`${field}: ${JSON.stringify(value)}`);
      const r = await post(h.app, '/v1/tasks', { prompt: 'Do it.', name: 't', [field]: value });
      assert.equal(r.statusCode, 400, `${field}: ${JSON.stringify(value).slice(0, 80)}: ${r.body.slice(0, 200)}`);
      const err = (r.json() as { error: { message: string; field: string | null } }).error;
      assert.equal(file.field, field, file.message);
      assert.deepEqual({ field: err.field, message: err.message }, { field: file.field, message: file.message }, `${field}: ${JSON.stringify(value).slice(0, 80)}`);
    }
    assert.equal(h.count(), 0);
  });

  it('a store locked by another process answers 503 with Retry-After, and the request can be repeated', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-locked-')), 'agentq.db');
    const store = new SqliteStore(file, { busyTimeoutMs: 50 });
    const h = await harness({ store });
    const holder = new Database(file);
    holder.exec('BEGIN IMMEDIATE');
    try {
      const r = await post(h.app, '/v1/tasks', { prompt: 'Do it.' });
      assert.equal(r.statusCode, 503, r.body);
      assert.equal(r.headers['retry-after'], '1');
      assert.match(r.json().error.message, /^store unavailable \(database is locked\)/);
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
    assert.equal((await post(h.app, '/v1/tasks', { prompt: 'Do it.' })).statusCode, 201);
    await store.close();
  });

  it('a dedup_key held by a queued task records a duplicate, as the inbox does', async () => {
    const h = await harness();
    const a = await post(h.app, '/v1/tasks', { prompt: 'x', dedup_key: 'nightly' });
    const b = await post(h.app, '/v1/tasks', { prompt: 'y', dedup_key: 'nightly' });
    assert.equal(a.statusCode, 201);
    assert.equal(b.statusCode, 201);
    const dup = (b.json() as { task: Task }).task;
    assert.equal(dup.state, 'duplicate');
    assert.match(dup.failedReason ?? '', /^dedup_key: "nightly": task \d+ "x" is already queued$/);
  });

  it('past max_queue_depth answers 429 and stores nothing; an idempotent repeat still answers 200', async () => {
    const h = await harness({ configOverrides: { max_queue_depth: 1 } });
    assert.equal((await post(h.app, '/v1/tasks', { prompt: 'one' }, { 'idempotency-key': 'one' })).statusCode, 201);
    const r = await post(h.app, '/v1/tasks', { prompt: 'two' });
    assert.equal(r.statusCode, 429);
    assert.equal(r.json().error.code, 'too_many_requests');
    assert.equal(h.count(), 1);
    assert.equal((await post(h.app, '/v1/tasks', { prompt: 'one' }, { 'idempotency-key': 'one' })).statusCode, 200, 'a repeat still gets its task');
  });
});

describe('auth', () => {
  it('with a token: every API route needs it (401 otherwise), health, OpenAPI and static files do not', async () => {
    const h = await harness({ token: 's3cret-token' });
    const bearer = { authorization: 'Bearer s3cret-token' };
    assert.equal((await h.app.inject({ url: '/healthz' })).statusCode, 200);
    assert.equal((await h.app.inject({ url: '/openapi.json' })).statusCode, 200);
    assert.equal((await h.app.inject({ url: '/' })).statusCode, 200);
    for (const [method, url] of [
      ['GET', '/v1/tasks'],
      ['GET', '/v1/tasks/1'],
      ['GET', '/v1/status'],
      ['GET', '/v1/events'],
      ['GET', '/metrics'],
      ['POST', '/v1/tasks/1/cancel'],
      // Percent-encoded paths the router decodes to an API route are protected too.
      ['GET', '/%761/tasks'],
      ['GET', '/v1/%74asks/1'],
      ['GET', '/%6detrics'],
    ] as const) {
      const missing = await h.app.inject({ method, url });
      assert.equal(missing.statusCode, 401, `${method} ${url}`);
      assert.equal(missing.json().error.code, 'unauthorized');
      assert.equal(missing.headers['www-authenticate'], 'Bearer');
      const wrong = await h.app.inject({ method, url, headers: { authorization: 'Bearer s3cret-tokeN' } });
      assert.equal(wrong.statusCode, 401, `${method} ${url} wrong token`);
    }
    const before = h.count();
    const refused = await post(h.app, '/v1/tasks', { prompt: 'x' }, { authorization: 'Bearer nope' });
    assert.equal(refused.statusCode, 401);
    assert.equal(h.count(), before);
    const basic = await post(h.app, '/v1/tasks', { prompt: 'x' }, { authorization: 'Basic czNjcmV0LXRva2Vu' });
    assert.equal(basic.statusCode, 401);
    assert.equal((await post(h.app, '/v1/tasks', { prompt: 'x' }, bearer)).statusCode, 201);
    assert.equal((await h.app.inject({ url: '/v1/tasks', headers: bearer })).statusCode, 200);
    assert.equal((await h.app.inject({ url: '/metrics', headers: bearer })).statusCode, 200);
  });

  it('without a token: only loopback Host names and local pages (DNS rebinding, cross-site forgery → 403)', async () => {
    const h = await harness();
    assert.equal((await h.app.inject({ url: '/v1/tasks', headers: { host: '127.0.0.1:8765' } })).statusCode, 200);
    assert.equal((await h.app.inject({ url: '/v1/tasks', headers: { host: '[::1]:8765' } })).statusCode, 200);
    const rebound = await h.app.inject({ url: '/v1/tasks', headers: { host: 'evil.example:8765' } });
    assert.equal(rebound.statusCode, 403);
    assert.equal(rebound.json().error.field, 'host');
    const forged = await post(h.app, '/v1/tasks', { prompt: 'x' }, { origin: 'https://evil.example' });
    assert.equal(forged.statusCode, 403);
    assert.equal(forged.json().error.field, 'origin');
    assert.equal(h.count(), 0);
    assert.equal((await post(h.app, '/v1/tasks', { prompt: 'x' }, { origin: 'http://localhost:5173' })).statusCode, 201, 'a local dev server may call it');
  });

  it('never logs the token', async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    // A serializer that logs every header, as a careless configuration might.
    const h = await harness({
      token: 'tok-DO-NOT-LOG-42',
      logger: { level: 'trace', stream, serializers: { req: (req: { headers: unknown; url: string }) => ({ url: req.url, headers: req.headers }) } },
    });
    await h.app.inject({ url: '/v1/tasks', headers: { authorization: 'Bearer tok-DO-NOT-LOG-42' } });
    await h.app.inject({ url: '/v1/tasks', headers: { authorization: 'Bearer tok-DO-NOT-LOG-42x' } });
    const log = lines.join('');
    assert.match(log, /\/v1\/tasks/, 'requests were logged');
    assert.match(log, /\[redacted\]/);
    assert.doesNotMatch(log, /DO-NOT-LOG/);
  });
});

/** Captures a Fastify logger's output. */
function logCapture(): { stream: Writable; text: () => string } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { stream, text: () => lines.join('') };
}

/** A built dashboard with index.html and one asset. */
function fakeDist(): string {
  const dist = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-web-'));
  fs.writeFileSync(path.join(dist, 'index.html'), '<!doctype html><div id="app"></div>');
  fs.mkdirSync(path.join(dist, 'assets'));
  fs.writeFileSync(path.join(dist, 'assets', 'app.js'), 'console.log(1)');
  return dist;
}

describe('hostile input', () => {
  it('every way a JSON body is unreadable gets its own 400 (or 415) naming it, and nothing is stored', async () => {
    const h = await harness();
    const depth = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
    const send = (payload: string | Buffer, contentType = 'application/json') =>
      h.app.inject({ method: 'POST', url: '/v1/tasks', headers: { 'content-type': contentType }, payload });
    const cases: Array<{ what: string; send: () => Promise<Reply>; status?: number; field: string; message: string | RegExp }> = [
      { what: '__proto__ at the top', send: () => send('{"prompt":"x","__proto__":{"admin":true}}'), field: '__proto__', message: /^__proto__: forbidden key/ },
      { what: '__proto__ nested', send: () => send('{"prompt":"x","tags":["a",{"__proto__":{"admin":true}}]}'), field: 'tags.1.__proto__', message: /^tags\.1\.__proto__: forbidden key/ },
      { what: 'constructor.prototype', send: () => send('{"prompt":"x","constructor":{"prototype":{"admin":true}}}'), field: 'constructor.prototype', message: /^constructor\.prototype: forbidden key/ },
      { what: '100,000 levels of arrays', send: () => send(depth(100_000)), field: 'body', message: 'body: nests deeper than 64 levels' },
      { what: '5,000 levels in a field', send: () => send(`{"prompt":"x","tags":${depth(5000)}}`), field: 'tags', message: 'body: nests deeper than 64 levels (in tags)' },
      { what: '100,000 levels of objects', send: () => send(`${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`), field: 'a', message: 'body: nests deeper than 64 levels (in a)' },
      { what: 'exactly 64 levels: the field rule, not the depth', send: () => send(`{"prompt":"x","tags":${depth(63)}}`), field: 'tags', message: /^tags: (?!.*nests)/ },
      { what: 'bytes that are not UTF-8', send: () => send(Buffer.concat([Buffer.from('{"prompt":"'), Buffer.from([0xff, 0xc0, 0xaf]), Buffer.from('"}')])), field: 'body', message: 'body: not valid UTF-8 (JSON must be UTF-8)' },
      { what: 'a UTF-16 surrogate as UTF-8 bytes', send: () => send(Buffer.concat([Buffer.from('{"prompt":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')])), field: 'body', message: 'body: not valid UTF-8 (JSON must be UTF-8)' },
      { what: 'a number past the largest double', send: () => send('{"prompt":"x","timeout":1e309}'), field: 'timeout', message: 'timeout: a number too large to represent (it would be Infinity)' },
      { what: 'a negative one, nested', send: () => send('{"prompt":"x","tags":["a",-1e999]}'), field: 'tags.1', message: 'tags.1: a number too large to represent (it would be -Infinity)' },
      { what: 'truncated JSON', send: () => send('{"prompt": "x", "tags": ["a"'), field: 'body', message: /^body: not valid JSON \(.+\)$/ },
      { what: 'only white space', send: () => send(' \n\t '), field: 'body', message: /^body: empty/ },
      { what: 'a charset that is not UTF-8', send: () => send('{"prompt":"x"}', 'application/json; charset=latin1'), status: 415, field: 'content-type', message: /^content-type: charset "latin1" is not utf-8/ },
    ];
    for (const c of cases) {
      const r = await c.send();
      assert.equal(r.statusCode, c.status ?? 400, `${c.what}: ${r.body}`);
      const err = (r.json() as { error: { code: string; message: string; field: string | null } }).error;
      assert.equal(err.field, c.field, `${c.what}: ${err.message}`);
      if (typeof c.message === 'string') assert.equal(err.message, c.message, c.what);
      else assert.match(err.message, c.message, c.what);
      assert.equal(h.count(), 0, `${c.what}: nothing is stored`);
    }
    assert.equal(({} as Record<string, unknown>).admin, undefined, 'no prototype was changed');
    const ok = await send('{"prompt":"x","tags":["a"]}', 'application/json; charset="UTF-8"');
    assert.equal(ok.statusCode, 201, ok.body);
  });

  it('a path that is not normalized names nothing: 404 over a real socket, with or without the token, dashboard or not', async () => {
    const withDist = await harness({ webDist: fakeDist(), token: 'tok' });
    const bare = await harness();
    const paths = [
      '//v1/tasks',
      '/v1//tasks',
      '/v1/./tasks',
      '/v1/../v1/tasks',
      '/x/../v1/tasks',
      '/v1/%2e/tasks',
      '/v1/%2E%2E/v1/tasks',
      '/%2e%2e/v1/tasks',
      '/v1/tasks/1/../1',
      '/v1/tasks/%2e%2e',
      '/./',
      '//',
      '/assets/../index.html',
      '/assets\\..\\index.html',
      '/assets/%2e%2e%5cindex.html',
      '/..%2f..%2fetc%2fpasswd',
      '/x%00',
    ];
    for (const [h, headers] of [
      [withDist, {}],
      [withDist, { authorization: 'Bearer tok' }],
      [bare, {}],
    ] as const) {
      const base = await h.listen();
      for (const p of paths) {
        const r = await rawRequest(base, { path: p, headers });
        assert.equal(r.status, 404, `${p}: ${r.body}`);
        const err = (JSON.parse(r.body) as { error: { code: string; message: string } }).error;
        assert.equal(err.code, 'not_found', p);
        assert.match(err.message, /^GET \S+: no such route \((a "\.{1,2}" path segment|an empty path segment \("\/\/"\)|a NUL byte in the path)\)$/, p);
      }
      // A POST that would create a task is refused before its body is read.
      const created = await rawRequest(base, { method: 'POST', path: '/v1/./tasks', headers: { ...headers, 'content-type': 'application/json' }, body: '{"prompt":"x"}' });
      assert.equal(created.status, 404, created.body);
      assert.equal(h.count(), 0);
      // A URL the router cannot read gets the error body too.
      const badEscape = await rawRequest(base, { path: '/v1/tasks/%zz', headers });
      assert.equal(badEscape.status, 400, badEscape.body);
      assert.deepEqual(JSON.parse(badEscape.body), { error: { code: 'bad_request', message: 'path: "/v1/tasks/%zz" has an invalid %-escape (not two hex digits, or not UTF-8)', field: 'path' } });
      const long = await rawRequest(base, { path: `/v1/tasks/${'a'.repeat(101)}?x=1`, headers });
      assert.equal(long.status, 404, long.body);
      // (the router's own error without a dashboard, its wildcard route with one)
      assert.match(JSON.parse(long.body).error.message, /^GET \/v1\/tasks\/a{101}: no such route( \(a path parameter longer than 100 characters\))?$/);
    }
    const base = await withDist.listen();
    // Normalized paths still work, and percent-encoded ones the router decodes stay protected.
    assert.equal((await rawRequest(base, { path: '/v1/tasks', headers: { authorization: 'Bearer tok' } })).status, 200);
    assert.equal((await rawRequest(base, { path: '/%761/tasks' })).status, 401);
    assert.equal((await rawRequest(base, { path: '/assets/app.js' })).body, 'console.log(1)');
    // A dotfile is no file of the dashboard: the single-page fallback, not a 403 passed off as 400.
    const dot = await rawRequest(base, { path: '/.env' });
    assert.equal(dot.status, 200);
    assert.match(dot.body, /id="app"/);
  });

  it('secret-looking query parameters are redacted from the request log; the rest of the URL is kept', async () => {
    for (const serializers of [undefined, { req: (req: { url: string; headers: unknown }) => ({ url: req.url, headers: req.headers }) }]) {
      const log = logCapture();
      const h = await harness({ logger: { level: 'trace', stream: log.stream, ...(serializers ? { serializers } : {}) } });
      const base = await h.listen();
      await rawRequest(base, { path: '/v1/tasks?token=SECRET123' });
      await rawRequest(base, { path: '/v1/tasks?limit=5&access_token=SECRET123&api%5Fkey=SECRET123&Password=SECRET123&%74oken=SECRET123' });
      await rawRequest(base, { path: '/nowhere?secret=SECRET123&client_secret=SECRET123' });
      await rawRequest(base, { path: '/v1/tasks/%zz?auth=SECRET123' });
      await rawRequest(base, { path: 'http://me:SECRET123@127.0.0.1/v1/tasks?limit=1' });
      await rawRequest(base, { method: 'POST', path: '/v1/tasks?session=SECRET123', headers: { 'content-type': 'application/json' }, body: '{' });
      const text = log.text();
      assert.match(text, /incoming request/, 'requests were logged');
      assert.doesNotMatch(text, /SECRET123/);
      assert.match(text, /\/v1\/tasks\?token=\[redacted\]"/);
      assert.match(text, /\/v1\/tasks\?limit=5&access_token=\[redacted\]&api%5Fkey=\[redacted\]&Password=\[redacted\]&%74oken=\[redacted\]"/);
      assert.match(text, /\/nowhere\?secret=\[redacted\]&client_secret=\[redacted\]"/);
      assert.match(text, /"http:\/\/\[redacted\]@127\.0\.0\.1\/v1\/tasks\?limit=1"/);
    }
  });
});

describe('GET /v1/tasks', () => {
  it('filters by state, agent, tag and priority, newest first, with cursor pagination', async () => {
    const h = await harness();
    for (let i = 1; i <= 7; i++) {
      const r = await post(h.app, '/v1/tasks', { prompt: `t${i}`, name: `t${i}`, agent: i % 2 ? 'command' : 'claude', tags: i <= 3 ? ['x'] : ['y'], priority: i === 5 ? 'low' : 'default' });
      assert.equal(r.statusCode, 201);
    }
    await h.app.inject({ method: 'POST', url: '/v1/tasks/t2/cancel' });
    const names = async (q: string) => ((await h.app.inject({ url: `/v1/tasks${q}` })).json() as { tasks: Task[] }).tasks.map((t) => t.name);
    assert.deepEqual(await names(''), ['t7', 't6', 't5', 't4', 't3', 't2', 't1']);
    assert.deepEqual(await names('?state=cancelled'), ['t2']);
    assert.deepEqual(await names('?agent=claude'), ['t6', 't4', 't2']);
    assert.deepEqual(await names('?tag=x'), ['t3', 't2', 't1']);
    assert.deepEqual(await names('?priority=low'), ['t5']);
    assert.deepEqual(await names('?tag=y&agent=command&state=queued'), ['t7', 't5']);
    const seen: string[] = [];
    let cursor: string | null = '';
    for (let page = 0; cursor !== null; page++) {
      assert.ok(page < 5);
      const r = await h.app.inject({ url: `/v1/tasks?limit=3${cursor ? `&cursor=${cursor}` : ''}` });
      const body = r.json() as { tasks: Task[]; nextCursor: string | null };
      assert.ok(body.tasks.length <= 3);
      seen.push(...body.tasks.map((t) => t.name));
      cursor = body.nextCursor;
    }
    assert.deepEqual(seen, ['t7', 't6', 't5', 't4', 't3', 't2', 't1']);
    for (const q of ['?limit=0', '?limit=501', '?limit=ten', '?state=lost', '?priority=urgent', '?cursor=zzz', '?color=red']) {
      const r = await h.app.inject({ url: `/v1/tasks${q}` });
      assert.equal(r.statusCode, 400, q);
      assert.equal(r.json().error.code, 'bad_request', q);
      assert.ok(r.json().error.field, `${q}: ${r.body}`);
    }
    assert.equal((await h.app.inject({ url: '/v1/tasks/999' })).statusCode, 404);
    assert.equal((await h.app.inject({ url: '/v1/tasks/nope' })).json().error.code, 'not_found');
  });
});

describe('task actions', () => {
  it('cancel (a queued task ends at once, with its result file), retry, answer; 409 when the state does not allow it', async () => {
    const h = await harness();
    const { task } = (await post(h.app, '/v1/tasks', { prompt: 'x', name: 'job' })).json() as { task: Task };
    const finished: Task[] = [];
    h.events.on('task.finished', (t) => finished.push(t));
    const c = await h.app.inject({ method: 'POST', url: `/v1/tasks/${task.id}/cancel` });
    assert.equal(c.statusCode, 200, c.body);
    const cancelled = (c.json() as { task: Task }).task;
    assert.equal(cancelled.state, 'cancelled');
    assert.ok(cancelled.resultPath && fs.existsSync(cancelled.resultPath));
    assert.equal(finished[0]?.id, task.id);
    const r = await h.app.inject({ method: 'POST', url: '/v1/tasks/job/retry' });
    assert.equal(r.statusCode, 200);
    assert.equal((r.json() as { task: Task }).task.state, 'queued');
    const again = await h.app.inject({ method: 'POST', url: '/v1/tasks/job/retry' });
    assert.equal(again.statusCode, 409);
    const notBlocked = await post(h.app, `/v1/tasks/${task.id}/answer`, { answer: 'Postgres' });
    assert.equal(notBlocked.statusCode, 409);
    assert.match(notBlocked.json().error.message, /not blocked/);
    assert.equal((await post(h.app, `/v1/tasks/${task.id}/answer`, { answer: '' })).statusCode, 400);
    assert.equal((await post(h.app, `/v1/tasks/${task.id}/answer`, { answer: 'x', extra: 1 })).json().error.field, 'extra');
    assert.equal((await post(h.app, `/v1/tasks/${task.id}/answer`, { answer: 5 })).json().error.field, 'answer');
    assert.equal((await h.app.inject({ method: 'POST', url: '/v1/tasks/404/cancel' })).statusCode, 404);
    // A blocked task takes the answer.
    const claim = await h.store.claim({ workerId: 'w', now: Date.now(), leaseMs: 30_000, concurrency: 5, agents: ['claude'], labels: [] });
    assert.ok(claim);
    await h.store.block(claim.attempt.id, { question: 'Which DB?', stats: { sessionId: null, model: null, costUsd: null, inputTokens: null, outputTokens: null, numTurns: null }, now: Date.now() });
    const answered = await post(h.app, `/v1/tasks/${task.id}/answer`, { answer: 'Postgres' });
    assert.equal(answered.statusCode, 200, answered.body);
    assert.equal((answered.json() as { task: Task }).task.answer, 'Postgres');
    // A completed task can be neither cancelled nor retried.
    const claim2 = await h.store.claim({ workerId: 'w', now: Date.now() + 1, leaseMs: 30_000, concurrency: 5, agents: ['claude'], labels: [] });
    assert.ok(claim2);
    await h.store.finish(claim2.attempt.id, { state: 'completed', attemptOutcome: 'completed', result: 'done', stats: { sessionId: null, model: null, costUsd: 0.5, inputTokens: 10, outputTokens: 5, numTurns: 1 }, now: Date.now() });
    assert.equal((await h.app.inject({ method: 'POST', url: `/v1/tasks/${task.id}/cancel` })).statusCode, 409);
    assert.equal((await h.app.inject({ method: 'POST', url: `/v1/tasks/${task.id}/retry` })).statusCode, 409);
    const detail = (await h.app.inject({ url: `/v1/tasks/${task.id}` })).json() as { task: Task; attempts: Array<{ number: number; outcome: string }> };
    assert.deepEqual(detail.attempts.map((a) => [a.number, a.outcome]), [[1, 'blocked'], [2, 'completed']]);
    assert.equal(detail.task.result, 'done');
    assert.equal(detail.task.stats.costUsd, 0.5);
  });
});

describe('logs', () => {
  it("streams an attempt's stdout; with follow=1 until the attempt ends", async () => {
    const h = await harness();
    const { task } = (await post(h.app, '/v1/tasks', { prompt: 'x', name: 'logged', agent: 'command' })).json() as { task: Task };
    const empty = await h.app.inject({ url: `/v1/tasks/${task.id}/logs` });
    assert.equal(empty.statusCode, 200);
    assert.equal(empty.body, '');
    const claim = await h.store.claim({ workerId: 'w', now: Date.now(), leaseMs: 30_000, concurrency: 5, agents: ['command'], labels: [] });
    assert.ok(claim);
    const file = attemptLogFile(h.paths, task, 1, 'stdout');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, 'line 1\n');
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = h.app.server.address() as { port: number };
    const res = await fetch(`http://127.0.0.1:${port}/v1/tasks/${task.id}/logs?follow=1`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const readUntil = async (s: string) => {
      while (!text.includes(s)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${JSON.stringify(s)}: ${text}`);
        text += decoder.decode(value, { stream: true });
      }
    };
    await readUntil('line 1\n');
    fs.appendFileSync(file, 'line 2\n');
    await readUntil('line 2\n');
    fs.appendFileSync(file, 'line 3\n');
    await h.store.finish(claim.attempt.id, { state: 'completed', attemptOutcome: 'completed', result: 'ok', stats: { sessionId: null, model: null, costUsd: null, inputTokens: null, outputTokens: null, numTurns: null }, now: Date.now() });
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    assert.equal(text, 'line 1\nline 2\nline 3\n', 'everything, then the end of the stream');
    const plain = await h.app.inject({ url: `/v1/tasks/${task.id}/logs?attempt=1` });
    assert.equal(plain.body, 'line 1\nline 2\nline 3\n');
    assert.equal((await h.app.inject({ url: `/v1/tasks/${task.id}/logs?attempt=2` })).statusCode, 404);
    assert.equal((await h.app.inject({ url: `/v1/tasks/${task.id}/logs?follow=yes` })).statusCode, 400);
  });

  it('answers from the store when the log is not on this machine; follow=1 waits for an attempt running elsewhere', async () => {
    const h = await harness();
    const { task } = (await post(h.app, '/v1/tasks', { prompt: 'x', name: 'remote', agent: 'command', retries: 1 })).json() as { task: Task };
    const claim = await h.store.claim({ workerId: 'other:1:abc', host: 'other-box', now: Date.now(), leaseMs: 30_000, concurrency: 5, agents: ['command'], labels: [] });
    assert.ok(claim);
    const running = await h.app.inject({ url: `/v1/tasks/${task.id}/logs` });
    assert.equal(running.body, '');
    assert.equal(running.headers['x-agentq-log-source'], 'elsewhere');
    assert.equal(running.headers['x-agentq-log-host'], 'other-box');
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = h.app.server.address() as { port: number };
    const res = await fetch(`http://127.0.0.1:${port}/v1/tasks/${task.id}/logs?follow=1&stream=stderr`);
    assert.equal(res.headers.get('x-agentq-log-source'), 'elsewhere');
    const followed = res.text();
    const tail = 'é'.repeat(40_000); // 80,000 bytes of log, stored cut to its last 64 KiB
    const output = { stdout: { text: tail.slice(-32_768), bytes: 80_000 }, stderr: { text: 'oops\n', bytes: 5 } };
    await h.store.requeue(claim.attempt.id, { attemptOutcome: 'failed', reason: 'exit 1', runAfter: Date.now(), output, now: Date.now() });
    assert.equal(await followed, 'oops\n', 'the stored stderr once the attempt ended');
    const stored = await h.app.inject({ url: `/v1/tasks/${task.id}/logs?attempt=1` });
    assert.equal(stored.body, output.stdout.text);
    assert.equal(stored.headers['x-agentq-log-source'], 'store');
    assert.equal(stored.headers['x-agentq-log-host'], 'other-box');
    assert.equal(stored.headers['x-agentq-log-bytes'], '80000');
    assert.equal(stored.headers['x-agentq-log-truncated'], 'true');
    assert.equal((await h.app.inject({ url: `/v1/tasks/${task.id}/logs?stream=both` })).statusCode, 400);
  });
});

describe('status, usage, metrics, OpenAPI, static files', () => {
  it('GET /v1/status is the status snapshot; GET /v1/usage the usage report', async () => {
    const h = await harness();
    await post(h.app, '/v1/tasks', { prompt: 'x', agent: 'command' });
    await h.store.registerWorker({ id: 'w', host: 'box-a', pid: 4242, startedAt: 1000, heartbeatAt: 2000, labels: ['gpu'], root: '/srv/proj' });
    const claim = await h.store.claim({ workerId: 'w', now: Date.now(), leaseMs: 30_000, concurrency: 5, agents: ['command'], labels: ['gpu'] });
    assert.ok(claim);
    await h.store.pauseAgent({ agent: 'claude', until: Date.now() + 60_000, reason: 'rate limited' });
    const status = (await h.app.inject({ url: '/v1/status' })).json() as {
      counts: Record<string, number>;
      running: Task[];
      agents: Array<{ agent: string; running: number; pausedUntil: number | null; pauseReason: string | null }>;
      workers: unknown[];
    };
    assert.equal(status.counts.running, 1);
    assert.deepEqual(status.workers, [{ id: 'w', host: 'box-a', pid: 4242, root: '/srv/proj', labels: ['gpu'], running: 1, startedAt: 1000, heartbeatAt: 2000 }]);
    assert.equal(status.running[0]?.id, claim.task.id);
    assert.deepEqual(
      status.agents.map((a) => [a.agent, a.running, a.pauseReason]),
      [
        ['claude', 0, 'rate limited'],
        ['command', 1, null],
      ],
    );
    assert.ok(status.agents[0]!.pausedUntil! > Date.now());
    const usage = await h.app.inject({ url: '/v1/usage?since=7d&by=agent' });
    assert.equal(usage.statusCode, 200, usage.body);
    const report = usage.json() as { by: string[]; rows: Array<{ agent: string; attempts: number }>; total: { attempts: number } };
    assert.deepEqual(report.by, ['agent']);
    assert.deepEqual(report.rows.map((r) => [r.agent, r.attempts]), [['command', 1]]);
    assert.equal(report.total.attempts, 1);
    const bad = await h.app.inject({ url: '/v1/usage?since=yesterday-ish' });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.field, 'since');
    assert.equal((await h.app.inject({ url: '/v1/usage?by=colour' })).statusCode, 400);
  });

  it('GET /metrics: queue depth per state, running per agent, attempts, pauses, failures, claim latency', async () => {
    const h = await harness();
    await post(h.app, '/v1/tasks', { prompt: 'a', agent: 'command' });
    await post(h.app, '/v1/tasks', { prompt: 'b', agent: 'command' });
    const claim = await h.store.claim({ workerId: 'w', now: Date.now(), leaseMs: 30_000, concurrency: 5, agents: ['command'], labels: [] });
    assert.ok(claim);
    h.events.emit('task.started', claim, null);
    h.events.emit('agent.paused', { agent: 'claude', until: Date.now() + 1000, reason: '429' });
    h.events.emit('task.finished', { ...claim.task, state: 'timed_out' });
    const r = await h.app.inject({ url: '/metrics' });
    assert.equal(r.statusCode, 200);
    assert.match(r.headers['content-type'] as string, /^text\/plain/);
    const text = r.body;
    assert.match(text, /^agentq_tasks\{state="queued"\} 1$/m);
    assert.match(text, /^agentq_tasks\{state="running"\} 1$/m);
    assert.match(text, /^agentq_running_tasks\{agent="command"\} 1$/m);
    assert.match(text, /^agentq_attempts_total\{agent="command"\} 1$/m);
    assert.match(text, /^agentq_rate_limit_pauses_total\{agent="claude"\} 1$/m);
    assert.match(text, /^agentq_task_failures_total\{state="timed_out"\} 1$/m);
    assert.match(text, /^agentq_claim_latency_seconds_count\{agent="command"\} 1$/m);
    assert.match(text, /^agentq_cost_usd_total\{agent="command"\} 0$/m);
    assert.match(text, /^agentq_tokens_total\{agent="command",direction="input"\} 0$/m);
  });

  it('/openapi.json documents every route from the schemas', async () => {
    const h = await harness();
    const doc = (await h.app.inject({ url: '/openapi.json' })).json() as {
      openapi: string;
      paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { additionalProperties?: boolean; required?: string[]; properties: Record<string, unknown> } }> } }>>;
      components: { schemas: Record<string, unknown> };
    };
    assert.match(doc.openapi, /^3\./);
    for (const p of ['/v1/tasks', '/v1/tasks/{id}', '/v1/tasks/{id}/cancel', '/v1/tasks/{id}/retry', '/v1/tasks/{id}/answer', '/v1/tasks/{id}/logs', '/v1/status', '/v1/usage', '/v1/events', '/healthz', '/metrics']) {
      assert.ok(doc.paths[p], p);
    }
    const body = doc.paths['/v1/tasks']!.post!.requestBody!.content['application/json']!.schema;
    assert.equal(body.additionalProperties, false);
    assert.deepEqual(body.required, ['prompt']);
    for (const f of ['prompt', 'priority', 'depends_on', 'callback_url', 'max_cost_usd']) assert.ok(f in body.properties, f);
    for (const s of ['Task', 'Attempt', 'Verification', 'Worker', 'Callback', 'Error']) assert.ok(s in doc.components.schemas, s);
  });

  it("/openapi.json's task body lists exactly the fields the task-file parser knows, and the body-only ones", async () => {
    const h = await harness();
    const doc = (await h.app.inject({ url: '/openapi.json' })).json() as {
      paths: Record<string, Record<string, { requestBody: { content: Record<string, { schema: { properties: Record<string, { description?: string }> } }> } }>>;
    };
    const properties = doc.paths['/v1/tasks']!.post!.requestBody.content['application/json']!.schema.properties;
    const bodyOnly = ['prompt', 'name', 'callback_url'];
    const documented = Object.keys(properties).filter((f) => !bodyOnly.includes(f));
    assert.deepEqual(Object.keys(properties).filter((f) => bodyOnly.includes(f)), bodyOnly);
    assert.deepEqual(documented, [...KNOWN_FIELDS]);
    for (const f of Object.keys(properties)) assert.ok(properties[f]?.description, `${f} is described`);
    // The parser reads each documented field (a mapping is no valid value of any of them but
    // remote_metadata, which takes no list)...
    for (const f of documented) assert.equal(fileRefusal(f === 'remote_metadata' ? `${f}: [x]` : `${f}: {x: 1}`).field, f, f);
    // ...and keeps any other field in extra.
    const spec = parseTaskFile('t', '---\nowner: {x: 1}\n---\nDo it.', { default_timeout: 1000, default_retries: 0 });
    assert.deepEqual(spec.extra, { owner: { x: 1 } });
  });

  it('serves the built dashboard with a single-page fallback, or says how to build it', async () => {
    const h = await harness({ webDist: fakeDist(), token: 'tok' });
    const index = await h.app.inject({ url: '/' });
    assert.equal(index.statusCode, 200);
    assert.match(index.body, /id="app"/);
    assert.equal((await h.app.inject({ url: '/assets/app.js' })).body, 'console.log(1)');
    const deep = await h.app.inject({ url: '/tasks/12' });
    assert.equal(deep.statusCode, 200);
    assert.match(deep.body, /id="app"/, 'SPA routes get index.html');
    assert.equal((await h.app.inject({ url: '/../../etc/passwd' })).body.includes('root:'), false);
    const api404 = await h.app.inject({ url: '/v1/nothing', headers: { authorization: 'Bearer tok' } });
    assert.equal(api404.statusCode, 404);
    assert.equal(api404.json().error.code, 'not_found');
    const bare = await harness();
    const text = await bare.app.inject({ url: '/' });
    assert.equal(text.statusCode, 200);
    assert.match(text.body, /npm run build:web/);
  });
});
