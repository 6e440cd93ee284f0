import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, it } from 'node:test';
import { parseConfig, type ProjectPaths } from '../../src/config/config.ts';
import { watchInbox, type InboxWatch } from '../../src/intake/inbox-watch.ts';
import { fileIdentity, takeInInbox } from '../../src/intake/inbox.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { hasInotifywait, listDir, makeProject } from '../fixtures/project.ts';

/** A settle time no test waits out: a file taken in was taken in as complete, not as settled. */
const config = parseConfig({ inbox_settle: '30s' });
const noInotify = !hasInotifywait() && 'inotifywait (Debian inotify-tools) is not installed; .ci/run installs it';

const open: { watch: InboxWatch; store: SqliteStore }[] = [];
afterEach(async () => {
  for (const { watch, store } of open.splice(0)) {
    await watch.close();
    store.close();
  }
});

async function setup(o: { native?: boolean; inotifywait?: string } = {}) {
  const paths = makeProject();
  const store = new SqliteStore(path.join(paths.dir, 'agentq.db'));
  let changes = 0;
  const watch = watchInbox(paths.inbox, () => changes++, o);
  open.push({ watch, store });
  await watch.ready;
  /** Whether the watch holds inbox file `name`, as it is now, complete. */
  const complete = (name: string) => {
    try {
      return watch.complete(name, fileIdentity(fs.lstatSync(path.join(paths.inbox, name), { bigint: true })));
    } catch {
      return false;
    }
  };
  const intake = () => takeInInbox(paths, store, config, Date.now(), (file, identity) => watch.complete(file, identity));
  return { paths, store, watch, complete, intake, changes: () => changes };
}

/** Waits (no time limit but the test's) until `cond` holds. */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await sleep(5);
}

/**
 * Writes and closes `sentinel.md`, then waits until the watch has read its close: the events
 * of everything done before it have been read too (one inotify queue, in order).
 */
async function eventsRead(paths: ProjectPaths, complete: (name: string) => boolean): Promise<void> {
  fs.writeFileSync(path.join(paths.inbox, 'sentinel.md'), 'sentinel\n');
  await until(() => complete('sentinel.md'));
}

describe('inbox watch (inotify)', { skip: noInotify }, () => {
  it('a file written in pieces and held open is not taken in until its writer closes it', async () => {
    const { paths, watch, complete, intake } = await setup();
    assert.equal(watch.mode, 'inotify');
    const fd = fs.openSync(path.join(paths.inbox, 'slow.md'), 'w');
    try {
      for (const piece of ['---\npriority: high\n', '---\n', 'first half, ']) {
        fs.writeSync(fd, piece);
        await eventsRead(paths, complete);
        const r = await intake();
        assert.deepEqual(r.unsettled, ['slow.md']);
        assert.ok(!r.created.some((t) => t.name === 'slow'));
      }
      fs.writeSync(fd, 'second half\n');
    } finally {
      fs.closeSync(fd);
    }
    await until(() => complete('slow.md'));
    const { created, unsettled } = await intake();
    assert.deepEqual(unsettled, []);
    const slow = created.find((t) => t.name === 'slow');
    assert.equal(slow?.prompt, 'first half, second half');
    assert.equal(slow?.priority, 'high');
    assert.deepEqual(listDir(paths.inbox), []);
  });

  it('a file renamed in is taken in at once, without waiting inbox_settle', async () => {
    const { paths, complete, intake, changes } = await setup();
    const tmp = path.join(paths.inbox, '.atomic.md.tmp');
    fs.writeFileSync(tmp, 'renamed in\n');
    fs.renameSync(tmp, path.join(paths.inbox, 'atomic.md'));
    await until(() => complete('atomic.md'));
    assert.ok(changes() > 0, 'the rename woke the loop');
    const { created, unsettled } = await intake();
    assert.deepEqual(unsettled, []);
    assert.deepEqual(created.map((t) => [t.name, t.prompt]), [['atomic', 'renamed in']]);
  });

  it('a file closed, then opened again and written, is no longer complete', async () => {
    const { paths, complete, intake } = await setup();
    const file = path.join(paths.inbox, 'again.md');
    fs.writeFileSync(file, 'first version\n');
    await until(() => complete('again.md'));
    const fd = fs.openSync(file, 'a');
    try {
      fs.writeSync(fd, 'more, still being written\n');
      await eventsRead(paths, complete);
      assert.equal(complete('again.md'), false);
      const { created, unsettled } = await intake();
      assert.deepEqual(unsettled, ['again.md']);
      assert.deepEqual(created.map((t) => t.name), ['sentinel']);
    } finally {
      fs.closeSync(fd);
    }
    await until(() => complete('again.md'));
    const { created } = await intake();
    assert.deepEqual(created.map((t) => [t.name, t.prompt]), [['again', 'first version\nmore, still being written']]);
  });
});

describe('inbox watch (fallback: chokidar and inbox_settle)', () => {
  it('wakes on a new file, knows none complete, and intake waits inbox_settle', async () => {
    const { paths, watch, complete, changes, store } = await setup({ native: false });
    assert.equal(watch.mode, 'settle');
    const tmp = path.join(paths.inbox, '.atomic.md.tmp');
    fs.writeFileSync(tmp, 'renamed in\n');
    fs.renameSync(tmp, path.join(paths.inbox, 'atomic.md'));
    await until(() => changes() > 0);
    assert.equal(complete('atomic.md'), false);
    const check = (file: string, identity: string) => watch.complete(file, identity);
    assert.deepEqual((await takeInInbox(paths, store, config, Date.now(), check)).unsettled, ['atomic.md']);
    const later = Date.now() + 31_000; // once inbox_settle has passed
    const { created } = await takeInInbox(paths, store, config, later, check);
    assert.deepEqual(created.map((t) => t.name), ['atomic']);
  });
});

describe('inbox watch (inotifywait missing)', () => {
  it('falls back to chokidar and inbox_settle', async () => {
    const { paths, watch, changes } = await setup({ inotifywait: '/nonexistent/inotifywait' });
    assert.equal(watch.mode, 'settle');
    fs.writeFileSync(path.join(paths.inbox, 'a.md'), 'x\n');
    await until(() => changes() > 0);
    assert.equal(watch.complete('a.md', fileIdentity(fs.lstatSync(path.join(paths.inbox, 'a.md'), { bigint: true }))), false);
  });
});
