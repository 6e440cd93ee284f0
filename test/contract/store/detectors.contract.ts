/**
 * Store contract, detectors: a recurring tick claimed once, the newest run of each detector
 * recorded with its tasks in one transaction, and each key taken in once.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DetectorRun } from '../../../src/store/store.ts';
import { newTask, T0, type StoreFactory } from './shared.ts';

const run = (over: Partial<DetectorRun> = {}): Omit<DetectorRun, 'created'> => ({
  name: 'ci',
  tick: T0,
  ranAt: T0,
  durationMs: 120,
  exitCode: 0,
  error: null,
  problems: [],
  lines: 0,
  known: 0,
  ...over,
});

/** Registers the `detectors` cases for a backend's stores. */
export function detectorsContract(factory: StoreFactory): void {
  describe('detectors', () => {
    it('claims a recurring tick once across handles, only when it is later than the recorded one', async () => {
      const { store, openSecond } = await factory.open();
      const other = await openSecond();
      assert.equal(await store.claimRecurringTick('ci', T0), true, 'first tick of a file never seen');
      assert.equal(await store.getRecurringTick('ci'), T0);
      const both = await Promise.all([store.claimRecurringTick('ci', T0 + 60_000), other.claimRecurringTick('ci', T0 + 60_000)]);
      assert.deepEqual(both.sort(), [false, true], 'one of two dispatchers gets the tick');
      assert.equal(await store.claimRecurringTick('ci', T0 + 30_000), false, 'an older tick is not claimed');
      assert.equal(await store.getRecurringTick('ci'), T0 + 60_000);
      await other.close();
      await store.close();
    });

    it('records a run with its tasks and keys in one step; a key is taken in once; the newest run replaces the last', async () => {
      const { store } = await factory.open();
      const problems = [{ line: 2, reason: 'not JSON: Unexpected token' }];
      const created = await store.recordDetectorRun(
        run({ lines: 4, problems }),
        [
          { key: 'run-1', task: newTask('fix-1', { dedupKey: 'run-1', source: 'detector' }) },
          { key: 'run-2', task: newTask('fix-2') },
          { key: 'run-3', task: newTask('fix-3') },
        ],
        T0,
      );
      assert.deepEqual(created.map((t) => [t.name, t.state, t.dedupKey, t.source]), [
        ['fix-1', 'queued', 'run-1', 'detector'],
        ['fix-2', 'queued', null, 'test'],
        ['fix-3', 'queued', null, 'test'],
      ]);
      assert.deepEqual(await store.listDetectorRuns(), [
        { name: 'ci', tick: T0, ranAt: T0, durationMs: 120, exitCode: 0, error: null, problems, lines: 4, created: 3, known: 0 },
      ]);
      assert.deepEqual((await store.knownDetectorKeys('ci', ['run-2', 'run-9', 'run-1'])).sort(), ['run-1', 'run-2']);
      assert.deepEqual(await store.knownDetectorKeys('other', ['run-1']), [], 'keys are per detector');
      assert.deepEqual(await store.knownDetectorKeys('ci', []), []);

      // The next run prints two known keys (one it did not know of when it looked) and a new one.
      const again = await store.recordDetectorRun(
        run({ tick: T0 + 60_000, ranAt: T0 + 60_000, lines: 3, known: 1 }),
        [
          { key: 'run-2', task: newTask('fix-2') },
          { key: 'run-4', task: newTask('fix-4') },
        ],
        T0 + 60_000,
      );
      assert.deepEqual(again.map((t) => t.name), ['fix-4']);
      const [latest] = await store.listDetectorRuns();
      assert.deepEqual([latest?.tick, latest?.created, latest?.known, latest?.problems], [T0 + 60_000, 1, 2, []]);
      assert.equal((await store.listTasks()).length, 4);

      // A failed run records the error and creates nothing.
      const failed = await store.recordDetectorRun(run({ name: 'broken', exitCode: 2, error: 'detect: exited with code 2' }), [], T0);
      assert.deepEqual(failed, []);
      assert.deepEqual(
        (await store.listDetectorRuns()).map((r) => [r.name, r.exitCode, r.error]),
        [
          ['broken', 2, 'detect: exited with code 2'],
          ['ci', 0, null],
        ],
      );
      await store.close();
    });

    it('takes a key in once when two handles record runs printing it at once', async () => {
      const { store, openSecond } = await factory.open();
      const other = await openSecond();
      const entries = (tag: string) => [{ key: 'same', task: newTask(`from-${tag}`) }];
      const [a, b] = await Promise.all([store.recordDetectorRun(run(), entries('a'), T0), other.recordDetectorRun(run(), entries('b'), T0)]);
      assert.equal(a.length + b.length, 1);
      assert.equal((await store.listTasks()).length, 1);
      await other.close();
      await store.close();
    });
  });
}
