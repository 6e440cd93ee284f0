import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseConfig, projectPaths } from '../../src/config/config.ts';
import { resolveDirect } from '../../src/intake/direct.ts';
import { fileIdentity, intakeKey, MAX_TASK_FILE_BYTES, takeInInbox } from '../../src/intake/inbox.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { dropTask, listDir, makeProject } from '../fixtures/project.ts';
import { newTask, spec } from '../fixtures/specs.ts';

const config = parseConfig({});

function setup() {
  const paths = makeProject();
  return { paths, store: new SqliteStore(path.join(paths.dir, 'agentq.db')) };
}

describe('inbox intake', () => {
  it('records files, then removes them from the inbox', async () => {
    const { paths, store } = setup();
    dropTask(paths, 'a', { priority: 'high' }, 'do a');
    dropTask(paths, 'b', { depends_on: ['a'] }, 'do b');
    const { created } = await takeInInbox(paths, store, config);
    assert.deepEqual(created.map((t) => [t.name, t.state]), [['a', 'queued'], ['b', 'queued']]);
    assert.deepEqual(created[1]?.dependsOnIds, [created[0]?.id]);
    assert.deepEqual(listDir(paths.inbox), []);
  });

  it("records this checkout (host, real path) as each task's origin; a subtask inherits its parent's", async () => {
    const { paths, store } = setup();
    // Reached through a symbolic link: the origin names the real directory.
    const link = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-link-')), 'checkout');
    fs.symlinkSync(paths.root, link);
    const viaLink = projectPaths(link);
    const here = { host: os.hostname(), root: fs.realpathSync(paths.root) };
    const elsewhere = { host: 'build-box', root: '/srv/checkout-b' };
    await store.enqueue([{ ...newTask('filed-elsewhere'), origin: elsewhere }, newTask('legacy')], 1);
    dropTask(viaLink, 'plain', null, 'x');
    dropTask(viaLink, 'bad', { priority: 'urgent' }, 'x');
    dropTask(viaLink, 'sub', { parent: 'filed-elsewhere' }, 'x');
    dropTask(viaLink, 'sub-of-sub', { parent: 'sub' }, 'x');
    dropTask(viaLink, 'sub-of-legacy', { parent: 'legacy' }, 'x');
    const { created } = await takeInInbox(viaLink, store, config);
    const origins = Object.fromEntries(created.map((t) => [t.name, t.origin]));
    assert.deepEqual(origins, { bad: here, plain: here, sub: elsewhere, 'sub-of-sub': elsewhere, 'sub-of-legacy': here });
    // POST /v1/tasks (agentq serve) the same way.
    assert.deepEqual((await resolveDirect(store, config, spec('posted'), here)).origin, here);
    assert.deepEqual((await resolveDirect(store, config, spec('posted-sub', { parent: 'filed-elsewhere' }), here)).origin, elsewhere);
  });

  it('orders a batch so dependencies are created first, and resolves names stored earlier', async () => {
    const { paths, store } = setup();
    dropTask(paths, 'early', null, 'x');
    await takeInInbox(paths, store, config);
    dropTask(paths, 'a-child', { depends_on: ['z-parent', 'early'] }, 'x');
    dropTask(paths, 'z-parent', null, 'x');
    const { created } = await takeInInbox(paths, store, config);
    assert.deepEqual(created.map((t) => t.name), ['z-parent', 'a-child']);
    const early = await store.findByName('early');
    assert.deepEqual(created[1]?.dependsOnIds, [early!.id, created[0]!.id]);
  });

  it('a crash after recording but before removal neither duplicates nor loses the task', async () => {
    const { paths, store } = setup();
    const file = dropTask(paths, 'a', null, 'do a');
    const identity = fileIdentity(fs.statSync(file, { bigint: true }));
    const content = fs.readFileSync(file);
    // The crash window: the task is recorded, then the process dies before removing the file.
    const crashing = Object.assign(Object.create(store) as SqliteStore, {
      enqueue: async (...args: Parameters<SqliteStore['enqueue']>) => {
        await store.enqueue(...args);
        throw new Error('killed');
      },
    });
    await assert.rejects(takeInInbox(paths, crashing, config), /killed/);
    assert.deepEqual(await store.listPendingIntake(), [intakeKey('a.md', content, identity)]);
    const again = await takeInInbox(paths, store, config);
    assert.equal(again.created.length, 0);
    assert.deepEqual(listDir(paths.inbox), []);
    assert.equal((await store.listTasks()).length, 1);
    assert.deepEqual(await store.getIntake(intakeKey('a.md', content, identity)), { taskId: 1, fileRemoved: true });
    // The same file dropped again later is a new submission.
    dropTask(paths, 'a', null, 'do a');
    assert.equal((await takeInInbox(paths, store, config)).created.length, 1);
  });

  it('takes a file in once when two dispatchers read it before either removes it', async () => {
    const { paths, store } = setup();
    const other = new SqliteStore(path.join(paths.dir, 'agentq.db'));
    dropTask(paths, 'a', null, 'do a');
    dropTask(paths, 'b', { depends_on: ['a'] }, 'do b');
    // Dispatcher 1 has read the inbox and is about to record it when dispatcher 2 takes it all in.
    let second: Promise<unknown> = Promise.resolve();
    const slow = Object.assign(Object.create(store) as SqliteStore, {
      enqueue: async (...args: Parameters<SqliteStore['enqueue']>) => {
        second = takeInInbox(paths, other, config);
        await second;
        return store.enqueue(...args);
      },
    });
    const first = await takeInInbox(paths, slow, config);
    assert.deepEqual((await second as { created: unknown[] }).created.length, 2);
    assert.deepEqual(first.created, []);
    assert.deepEqual((await store.listTasks()).map((t) => t.name).sort(), ['a', 'b']);
    assert.deepEqual(listDir(paths.inbox), []);
    other.close();
  });

  it('refuses symlinks, hard links, directories, FIFOs, huge files and non-UTF-8 names, and leaves them', async () => {
    const { paths, store } = setup();
    const outside = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-outside-')), 'secret.md');
    fs.writeFileSync(outside, 'SECRET-OUTSIDE-THE-PROJECT');
    fs.symlinkSync(outside, path.join(paths.inbox, 'link.md'));
    fs.linkSync(outside, path.join(paths.inbox, 'hard.md'));
    fs.mkdirSync(path.join(paths.inbox, 'dir.md'));
    execFileSync('mkfifo', [path.join(paths.inbox, 'pipe.md')]);
    fs.writeFileSync(path.join(paths.inbox, 'big.md'), Buffer.alloc(MAX_TASK_FILE_BYTES + 1, 'x'));
    fs.writeFileSync(Buffer.concat([Buffer.from(`${paths.inbox}/`), Buffer.from([0x62, 0xff, 0x2e, 0x6d, 0x64])]), "x");
    dropTask(paths, 'good', null, 'x');
    const past = new Date(Date.now() - 10_000);
    fs.utimesSync(path.join(paths.inbox, 'big.md'), past, past);
    const r = await takeInInbox(paths, store, config);
    assert.deepEqual(r.created.map((t) => t.name), ['good']);
    const reasons = Object.fromEntries(r.refused.map((e) => [e.file, e.reason]));
    assert.match(reasons['link.md']!, /^is a symbolic link; only regular files inside the project/);
    assert.match(reasons['hard.md']!, /^has other hard links/);
    assert.match(reasons['dir.md']!, /^is a directory/);
    assert.match(reasons['pipe.md']!, /^is a named pipe/);
    assert.match(reasons['big.md']!, /^is 1048577 bytes; a task file is at most 1048576 bytes/);
    assert.match(reasons['b\uFFFD.md']!, /file name is not valid UTF-8/);
    assert.equal(r.refused.length, 6);
    assert.equal(fs.readdirSync(paths.inbox).length, 6, 'refused entries stay where they are');
    assert.equal(fs.readFileSync(outside, 'utf8'), 'SECRET-OUTSIDE-THE-PROJECT');
    assert.equal((await store.listTasks()).length, 1);
  });

  it('turns non-UTF-8 content into an invalid task that keeps every byte', async () => {
    const { paths, store } = setup();
    const file = path.join(paths.inbox, 'latin.md');
    fs.writeFileSync(file, Buffer.from([0x63, 0x61, 0x66, 0xe9]));
    const past = new Date(Date.now() - 10_000);
    fs.utimesSync(file, past, past);
    const [t] = (await takeInInbox(paths, store, config)).created;
    assert.equal(t?.state, 'invalid');
    assert.match(t!.failedReason!, /^encoding: /);
    assert.deepEqual(Buffer.from(t!.prompt, 'latin1'), Buffer.from([0x63, 0x61, 0x66, 0xe9]));
  });

  it('tells a file name holding U+FFFD itself from one whose bytes are not UTF-8', async () => {
    const { paths, store } = setup();
    fs.writeFileSync(Buffer.concat([Buffer.from(`${paths.inbox}/`), Buffer.from([0x62, 0xff, 0x2e, 0x6d, 0x64])]), 'x');
    dropTask(paths, 'real-\uFFFD', null, 'x');
    dropTask(paths, 'plain', null, 'x');
    const r = await takeInInbox(paths, store, config);
    assert.deepEqual(r.created.map((t) => t.name).sort(), ['plain', 'real-\uFFFD']);
    assert.deepEqual(r.refused.map((e) => e.file), ['b\uFFFD.md']);
  });

  it('takes in every byte of files read in one read and of larger ones, up to the largest allowed', async () => {
    const { paths, store } = setup();
    // The whole file is `${body}\n`: sizes on both sides of the first read (64 KiB) and the largest allowed.
    const sizes = { tiny: 2, below: 64 * 1024 - 1, exact: 64 * 1024, above: 64 * 1024 + 1, largest: MAX_TASK_FILE_BYTES };
    const bodies = Object.fromEntries(Object.entries(sizes).map(([name, size]) => [name, `${name} `.repeat(size).slice(0, size - 1)]));
    for (const [name, body] of Object.entries(bodies)) dropTask(paths, name, null, body);
    const { created, unsettled, refused } = await takeInInbox(paths, store, config);
    assert.deepEqual([unsettled, refused], [[], []]);
    assert.deepEqual(Object.fromEntries(created.map((t) => [t.name, [t.state, t.prompt.length]])), Object.fromEntries(Object.entries(bodies).map(([n, b]) => [n, ['queued', b.length]])));
    for (const t of created) assert.equal(t.prompt, bodies[t.name], t.name);
    assert.deepEqual(listDir(paths.inbox), []);
  });

  it('closes a pending key whose file is already gone (crash after the unlink)', async () => {
    const { paths, store } = setup();
    dropTask(paths, 'a', null, 'do a');
    await takeInInbox(paths, store, config);
    store.db.prepare('UPDATE intake SET file_removed = 0').run();
    await takeInInbox(paths, store, config);
    assert.deepEqual(await store.listPendingIntake(), []);
    dropTask(paths, 'a', null, 'do a');
    assert.equal((await takeInInbox(paths, store, config)).created.length, 1, 'a resubmission is not mistaken for a leftover');
  });

  it('waits for a file that is still being written', async () => {
    const { paths, store } = setup();
    fs.writeFileSync(path.join(paths.inbox, 'fresh.md'), 'half a prom');
    const r = await takeInInbox(paths, store, config);
    assert.deepEqual(r.unsettled, ['fresh.md']);
    assert.equal(r.created.length, 0);
    assert.deepEqual(listDir(paths.inbox), ['fresh.md']);
  });

  it('turns bad files into invalid tasks without stopping the others', async () => {
    const { paths, store } = setup();
    dropTask(paths, 'bad-priority', { priority: 'urgent' }, 'x');
    dropTask(paths, 'missing-dep', { depends_on: ['ghost'] }, 'x');
    dropTask(paths, 'cyc-a', { depends_on: ['cyc-b'] }, 'x');
    dropTask(paths, 'cyc-b', { depends_on: ['cyc-a'] }, 'x');
    dropTask(paths, 'good', null, 'x');
    const { created } = await takeInInbox(paths, store, config);
    const by = new Map(created.map((t) => [t.name, t]));
    assert.equal(by.get('good')?.state, 'queued');
    assert.match(by.get('bad-priority')!.failedReason!, /^priority: "urgent"/);
    assert.equal(by.get('missing-dep')!.failedReason, 'depends_on: "ghost" names no task in this project');
    assert.match(by.get('cyc-a')!.failedReason!, /^depends_on: dependency cycle cyc-a → cyc-b → cyc-a$/);
    assert.equal(by.get('cyc-b')?.state, 'invalid');
    assert.deepEqual(listDir(paths.inbox), []);
  });

  it('refuses a second task with the dedup_key of a queued one, naming the first', async () => {
    const { paths, store } = setup();
    dropTask(paths, 'sync-1', { dedup_key: 'nightly-sync' }, 'x');
    const [first] = (await takeInInbox(paths, store, config)).created;
    dropTask(paths, 'sync-2', { dedup_key: 'nightly-sync' }, 'x');
    dropTask(paths, 'sync-3', { dedup_key: 'other' }, 'x');
    dropTask(paths, 'sync-4', { dedup_key: 'other' }, 'x');
    const { created } = await takeInInbox(paths, store, config);
    const by = new Map(created.map((t) => [t.name, t]));
    assert.equal(by.get('sync-2')?.state, 'duplicate');
    assert.equal(by.get('sync-2')?.failedReason, `dedup_key: "nightly-sync": task ${first!.id} "sync-1" is already queued`);
    assert.equal(by.get('sync-3')?.state, 'queued');
    assert.match(by.get('sync-4')!.failedReason!, /task "sync-3" taken in with it comes first/);
    // Once the first one has ended, the key is free again.
    await store.cancel(first!.id, Date.now());
    dropTask(paths, 'sync-5', { dedup_key: 'nightly-sync' }, 'x');
    assert.equal((await takeInInbox(paths, store, config)).created[0]?.state, 'queued');
  });

  it('leaves files in the inbox past max_queue_depth, dependencies together', async () => {
    const { paths, store } = setup();
    const limited = parseConfig({ max_queue_depth: 3 });
    dropTask(paths, 'a', null, 'x');
    await takeInInbox(paths, store, limited);
    dropTask(paths, 'b', { depends_on: ['z'] }, 'x');
    dropTask(paths, 'c', null, 'x');
    dropTask(paths, 'd', null, 'x');
    dropTask(paths, 'z', null, 'x');
    dropTask(paths, 'bad', { priority: 'nope' }, 'x');
    const r = await takeInInbox(paths, store, limited);
    assert.deepEqual(r.created.map((t) => t.name).sort(), ['bad', 'c', 'd']);
    assert.deepEqual(r.deferred, ['b.md', 'z.md']);
    assert.deepEqual(listDir(paths.inbox), ['b.md', 'z.md']);
    for (const t of await store.listTasks({ state: 'queued' })) await store.cancel(t.id, Date.now());
    const later = await takeInInbox(paths, store, limited);
    assert.deepEqual(later.created.map((t) => t.name), ['z', 'b']);
  });
});

describe('inbox: a file touched while it is taken in', () => {
  it('is the same submission when only its metadata changed (times set after its writer closed it): one task, the file removed', async () => {
    const { paths, store } = setup();
    const file = dropTask(paths, 'touched', { agent: 'command' }, 'x');
    // The touch lands between the read and the removal, as a `touch` right after a close does
    // when intake reads the file at its close (inotify).
    const touching = Object.assign(Object.create(store) as SqliteStore, {
      enqueue: async (...args: Parameters<SqliteStore['enqueue']>) => {
        const created = await SqliteStore.prototype.enqueue.apply(store, args);
        const later = new Date(Date.now() - 5_000);
        fs.utimesSync(file, later, later);
        return created;
      },
    });
    const first = await takeInInbox(paths, touching, config);
    assert.deepEqual(first.created.map((t) => t.name), ['touched']);
    assert.deepEqual(listDir(paths.inbox), [], 'removed although its ctime changed');
    assert.deepEqual((await takeInInbox(paths, store, config)).created, []);
  });

  it('is a new submission when its content changed after the read: the file stays for the next scan', async () => {
    const { paths, store } = setup();
    const file = dropTask(paths, 'rewritten', { agent: 'command' }, 'first');
    const rewriting = Object.assign(Object.create(store) as SqliteStore, {
      enqueue: async (...args: Parameters<SqliteStore['enqueue']>) => {
        const created = await SqliteStore.prototype.enqueue.apply(store, args);
        fs.writeFileSync(file, '---\nagent: command\n---\nsecond\n');
        const past = new Date(Date.now() - 10_000);
        fs.utimesSync(file, past, past);
        return created;
      },
    });
    assert.deepEqual((await takeInInbox(paths, rewriting, config)).created.map((t) => t.prompt), ['first']);
    assert.deepEqual(listDir(paths.inbox), ['rewritten.md']);
  });
});
