import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/config.ts';
import { fireRecurring, latestTick } from '../../src/intake/recurring.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { makeProject } from '../fixtures/project.ts';

const config = parseConfig({});
const T0 = Date.parse('2026-11-23T10:02:00Z');
const MIN = 60_000;

function setup(files: Record<string, string>) {
  const paths = makeProject();
  fs.mkdirSync(paths.recurring, { recursive: true });
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(paths.recurring, name), text);
  const db = path.join(paths.dir, 'agentq.db');
  return { paths, store: new SqliteStore(db), second: () => new SqliteStore(db) };
}

describe('recurring tasks', () => {
  it('reads only regular UTF-8 files: a FIFO, a symlink or binary content is a problem, never a hang', async () => {
    const { paths, store } = setup({ 'binary.md': '---\nschedule: "* * * * *"\n---\nnul\u0000byte' });
    execFileSync('mkfifo', [path.join(paths.recurring, 'pipe.md')]);
    fs.symlinkSync('/etc/hostname', path.join(paths.recurring, 'link.md'));
    const { problems } = await fireRecurring(paths, store, config, T0);
    assert.deepEqual(problems.map((p) => p.replace(/:.*?: /, ': ').split(' (')[0]), [
      'recurring/binary.md: binary content',
      'recurring/link.md: is a symbolic link; only regular files inside the project are taken in',
      'recurring/pipe.md: is a named pipe',
    ]);
  });

  it('finds the newest tick of a schedule in a window', async () => {
    assert.equal(await latestTick('*/15 * * * *', 'UTC', T0, T0 + 40 * MIN), Date.parse('2026-11-23T10:30:00Z'));
    assert.equal(await latestTick('*/15 * * * *', 'UTC', T0, T0 + 5 * MIN), null);
  });

  it('creates one task per tick from the first tick after the file was first seen, without backfill', async () => {
    const { paths, store, second } = setup({
      'nightly.md': '---\nschedule: "*/15 * * * *"\ntimezone: UTC\npriority: low\nagent: command\n---\nCheck the links.\n',
    });
    assert.deepEqual((await fireRecurring(paths, store, config, T0)).created, [], 'first sight only records');
    assert.deepEqual((await fireRecurring(paths, store, config, T0 + 10 * MIN)).created, [], 'no tick yet (10:15 is later)');
    const { created } = await fireRecurring(paths, store, config, T0 + 50 * MIN);
    assert.deepEqual(created.map((t) => t.name), ['nightly-20261123T1045'], 'only the newest missed tick');
    assert.equal(created[0]?.priority, 'low');
    assert.equal(created[0]?.prompt, 'Check the links.');
    assert.deepEqual(created[0]?.extra, { recurring: 'nightly', tick: '2026-11-23T10:45:00.000Z' });
    assert.deepEqual(created[0]?.origin, { host: os.hostname(), root: fs.realpathSync(paths.root) }, 'from this checkout');
    // Two dispatchers at the next tick: one task.
    const other = second();
    const both = await Promise.all([fireRecurring(paths, store, config, T0 + 65 * MIN), fireRecurring(paths, other, config, T0 + 65 * MIN)]);
    assert.equal(both.flatMap((r) => r.created).length, 1);
    assert.equal((await store.listTasks()).length, 2);
    assert.ok(fs.existsSync(path.join(paths.recurring, 'nightly.md')), 'the recurring file stays');
  });

  it('reports a bad schedule naming the field, and keeps the others going', async () => {
    const { paths, store } = setup({
      'bad.md': '---\nschedule: "every day"\n---\nx\n',
      'none.md': 'no schedule here\n',
      'good.md': '---\nschedule: "* * * * *"\n---\nx\n',
    });
    await fireRecurring(paths, store, config, T0);
    const r = await fireRecurring(paths, store, config, T0 + 2 * MIN);
    assert.deepEqual(r.created.map((t) => t.name), ['good-20261123T1004']);
    assert.equal(r.problems.length, 2);
    assert.match(r.problems[0]!, /^recurring\/bad\.md: schedule: "every day" is not a valid cron expression/);
    assert.match(r.problems[1]!, /^recurring\/none\.md: schedule: undefined is not a cron expression/);
  });
});
