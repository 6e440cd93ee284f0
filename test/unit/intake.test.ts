import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/config.ts';
import { intakeKey, takeInInbox } from '../../src/intake/inbox.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { dropTask, listDir, makeProject } from '../fixtures/project.ts';

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
    const content = fs.readFileSync(file);
    await takeInInbox(paths, store, config);
    // Simulate the crash window: the task is recorded, the file is back, the key is pending.
    fs.writeFileSync(file, content);
    fs.utimesSync(file, new Date(0), new Date(0));
    store.db.prepare('UPDATE intake SET file_removed = 0').run();
    const again = await takeInInbox(paths, store, config);
    assert.equal(again.created.length, 0);
    assert.deepEqual(listDir(paths.inbox), []);
    assert.equal((await store.listTasks()).length, 1);
    assert.deepEqual(await store.getIntake(intakeKey('a.md', content)), { taskId: 1, fileRemoved: true });
    // The same file dropped again later is a new submission.
    dropTask(paths, 'a', null, 'do a');
    assert.equal((await takeInInbox(paths, store, config)).created.length, 1);
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
});
