/**
 * Store contract, intake: intake keys recorded with their tasks, so a file is taken in once.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newTask, T0, type StoreFactory } from './shared.ts';

/** Registers the `intake` cases for a backend's stores. */
export function intakeContract(factory: StoreFactory): void {
  describe('intake', () => {
    it('records intake keys with the tasks and tracks file removal', async () => {
      const { store } = await factory.open();
      const [a] = await store.enqueue([{ ...newTask('a'), intakeKey: 'a.md:abc' }], T0);
      assert.deepEqual(await store.getIntake('a.md:abc'), { taskId: a!.id, fileRemoved: false });
      await store.markIntakeRemoved(['a.md:abc']);
      assert.deepEqual(await store.getIntake('a.md:abc'), { taskId: a!.id, fileRemoved: true });
      // Another dispatcher that read the same file before its removal creates nothing, removed or not.
      assert.deepEqual(await store.enqueue([{ ...newTask('a'), intakeKey: 'a.md:abc' }], T0), []);
      assert.deepEqual(await store.getIntake('a.md:abc'), { taskId: a!.id, fileRemoved: true });
      const [b] = await store.enqueue([{ ...newTask('b'), intakeKey: 'b.md:def' }], T0);
      assert.deepEqual(await store.enqueue([{ ...newTask('b'), intakeKey: 'b.md:def' }], T0), []);
      assert.deepEqual(await store.getIntake('b.md:def'), { taskId: b!.id, fileRemoved: false });
      // Many at once, in one call; a key never recorded changes nothing.
      const [c] = await store.enqueue([{ ...newTask('c'), intakeKey: 'c.md:123' }], T0);
      await store.markIntakeRemoved(['b.md:def', 'c.md:123', 'never.md:000']);
      assert.deepEqual(await store.getIntake('b.md:def'), { taskId: b!.id, fileRemoved: true });
      assert.deepEqual(await store.getIntake('c.md:123'), { taskId: c!.id, fileRemoved: true });
      assert.equal(await store.getIntake('never.md:000'), null);
      assert.deepEqual(await store.listPendingIntake(), []);
      await store.markIntakeRemoved([]);
      await store.close();
    });

    it('in a batch, creates only the keys not recorded; a recorded one stands in for its task', async () => {
      const { store } = await factory.open();
      const [a] = await store.enqueue([{ ...newTask('a'), intakeKey: 'a.md:1' }], T0);
      // Read again by a dispatcher that listed the inbox before a's key was recorded, with new files.
      const created = await store.enqueue(
        [
          { ...newTask('a'), intakeKey: 'a.md:1' },
          { ...newTask('x'), intakeKey: 'x.md:2', dependsOnBatch: [0] },
          { ...newTask('y'), intakeKey: 'y.md:3' },
        ],
        T0,
      );
      assert.deepEqual(created.map((t) => [t.name, t.dependsOnIds]), [['x', [a!.id]], ['y', []]]);
      assert.deepEqual(await store.getIntake('x.md:2'), { taskId: created[0]!.id, fileRemoved: false });
      assert.deepEqual((await store.listPendingIntake()).sort(), ['a.md:1', 'x.md:2', 'y.md:3']);
      await store.close();
    });
  });
}
