import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dependencyFailure, parentVerdict, taskEnd, type TaskRef } from '../../src/core/lifecycle.ts';
import { TASK_STATES } from '../../src/core/types.ts';

const t = (id: number, state: TaskRef['state']): TaskRef => ({ id, name: `t${id}`, state });

describe('lifecycle rules', () => {
  it('a parent waits while a subtask has not ended, fails naming the first that ended badly, else completes', () => {
    assert.deepEqual(parentVerdict([]), { state: 'completed' });
    assert.deepEqual(parentVerdict([t(2, 'completed'), t(3, 'completed')]), { state: 'completed' });
    for (const open of ['queued', 'running', 'blocked', 'waiting'] as const) {
      assert.deepEqual(parentVerdict([t(2, 'failed'), t(3, open)]), { state: 'waiting' }, open);
    }
    assert.deepEqual(parentVerdict([t(2, 'completed'), t(3, 'timed_out'), t(4, 'failed')]), { state: 'failed', reason: 'subtask "t3" (task 3) ended timed_out' });
  });

  it('a finishing task records its own end, or for a completed run what its subtasks make of it', () => {
    assert.deepEqual(taskEnd('failed', 'exit 1', []), { state: 'failed', reason: 'exit 1' });
    assert.deepEqual(taskEnd('completed', null, []), { state: 'completed', reason: null });
    assert.deepEqual(taskEnd('completed', null, [t(2, 'running')]), { state: 'waiting', reason: null });
    assert.deepEqual(taskEnd('completed', null, [t(2, 'cancelled')]), { state: 'failed', reason: 'subtask "t2" (task 2) ended cancelled' });
  });

  it('a dependency fails its dependents in every terminal state but completed', () => {
    const failing = TASK_STATES.filter((s) => dependencyFailure(t(1, s)) !== null);
    assert.deepEqual(failing.sort(), ['budget_exceeded', 'cancelled', 'duplicate', 'failed', 'invalid', 'timed_out']);
    assert.equal(dependencyFailure(t(5, 'duplicate')), 'dependency "t5" (task 5) ended duplicate');
  });
});
