/**
 * `queuedWaits`: why queued tasks wait. Here its `runs_on` part: a task naming a label the
 * asking dispatcher lacks cannot run here until someone acts (`until: null`), so
 * `agentq run --once` stops and reports it instead of waiting.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { queuedWaits } from '../../src/scheduler/waiting.ts';
import { makeTask } from '../fixtures/specs.ts';

const NOW = 1_700_000_000_000;
const queued = (id: number, name: string, over: Parameters<typeof makeTask>[0] = {}) =>
  makeTask({ id, name, state: 'queued', claims: 0, attempts: 0, runAfter: NOW, ...over });
const waits = (tasks: ReturnType<typeof makeTask>[], labels?: string[]) =>
  queuedWaits(tasks, new Map(), [], NOW, labels).map((w) => [w.task.name, w.until, w.reason]);

describe('queuedWaits: runs_on', () => {
  it('a task whose runs_on names a label this dispatcher lacks waits until someone acts', () => {
    const tasks = [queued(1, 'plain'), queued(2, 'gpu', { runsOn: ['gpu'] }), queued(3, 'both', { runsOn: ['gpu', 'x'] })];
    assert.deepEqual(waits(tasks), [
      ['plain', NOW, 'ready'],
      ['gpu', null, 'runs_on [gpu]: no dispatcher here has every label'],
      ['both', null, 'runs_on [gpu, x]: no dispatcher here has every label'],
    ]);
    assert.deepEqual(waits(tasks, ['cpu']).map(([, until]) => until), [NOW, null, null]);
    assert.deepEqual(waits(tasks, ['gpu']).map(([, until]) => until), [NOW, NOW, null], 'every label is needed');
    assert.deepEqual(waits(tasks, ['x', 'gpu', 'y']).map(([, until]) => until), [NOW, NOW, NOW]);
  });

  it('outweighs a timed wait, and passes on to its dependents', () => {
    const later = NOW + 60_000;
    const tasks = [queued(1, 'gpu', { runsOn: ['gpu'], runAfter: later }), queued(2, 'after', { dependsOnIds: [1] })];
    assert.deepEqual(waits(tasks), [
      ['gpu', null, 'runs_on [gpu]: no dispatcher here has every label'],
      ['after', null, 'dependency "gpu": runs_on [gpu]: no dispatcher here has every label'],
    ]);
    assert.deepEqual(waits(tasks, ['gpu']), [
      ['gpu', later, `run_at ${new Date(later).toISOString()}`],
      ['after', later, `dependency "gpu": run_at ${new Date(later).toISOString()}`],
    ]);
  });
});

describe('queuedWaits: pauses by account', () => {
  it("a task waits for its agent's account's pause, named with the account when it is not the agent's name", () => {
    const until = NOW + 60_000;
    const pauses = [{ agent: 'team-a', until, reason: '429' }];
    const tasks = [queued(1, 'c', { agent: 'claude' })];
    const w = (accounts?: Record<string, string>) => queuedWaits(tasks, new Map(), pauses, NOW, [], accounts).map((x) => [x.until, x.reason]);
    assert.deepEqual(w({ claude: 'team-a' }), [[until, `claude (account team-a) is paused until ${new Date(until).toISOString()}: 429`]]);
    assert.deepEqual(w({ claude: 'team-b' }), [[NOW, 'ready']]);
    assert.deepEqual(w(), [[NOW, 'ready']], 'claude is its own account by default');
    assert.deepEqual(
      queuedWaits(tasks, new Map(), [{ agent: 'claude', until, reason: '429' }], NOW).map((x) => x.reason),
      [`claude is paused until ${new Date(until).toISOString()}: 429`],
    );
  });
});
