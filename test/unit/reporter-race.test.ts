/**
 * The reporter writes a task's result file once when its end is reported while a tick's
 * missing-files pass (`writeMissing`) had already listed the task as unreported: the pass's list,
 * read before the report recorded the path, must not make a second file (`NAME.ID.md`). Found by
 * the two-queue A2A e2e test ("survivor.md" and "survivor.5.md") once result files were made
 * durable in groups, which widened the window between the write and the recorded path.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { projectOrigin } from '../../src/config/config.ts';
import { DispatcherEvents } from '../../src/events/events.ts';
import { Reporter } from '../../src/scheduler/reporter.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { listDir, makeProject } from '../fixtures/project.ts';
import { newTask } from '../fixtures/specs.ts';

it('a missing-files pass that listed a task before its reported write recorded the path does not write it again', async () => {
  const paths = makeProject();
  const store = new SqliteStore(`${paths.dir}/agentq.db`);
  const origin = projectOrigin(paths);
  const [task] = await store.enqueue([{ ...newTask('survivor'), origin, invalidReason: 'x: bad' }], 1);
  // The pass reads its list now, and gets it only after the report below has ended.
  let release = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  let listed = () => {};
  const read = new Promise<void>((resolve) => (listed = resolve));
  const slowList: SqliteStore['listUnreported'] = async (o) => {
    const list = await SqliteStore.prototype.listUnreported.call(store, o);
    listed();
    await gate;
    return list;
  };
  const reporter = new Reporter({
    paths,
    store: Object.assign(Object.create(store) as SqliteStore, { listUnreported: slowList }),
    origin,
    events: new DispatcherEvents(),
    leaseMs: 60_000,
    now: Date.now,
    workerId: null,
  });
  const pass = reporter.writeMissing();
  await read;
  const reported = await reporter.report((await store.getTask(task!.id))!);
  assert.ok(reported);
  release();
  const missing = await pass;
  assert.deepEqual(missing.written, [], 'nothing left to write');
  assert.deepEqual(listDir(paths.failed), ['survivor.md']);
  await store.close();
});
