/**
 * The dispatcher's completer (`FinishBatcher`): finishes asked together go in one
 * `finishMany` call, those asked while a call is under way in the next one, each caller gets
 * its own result, and a failed call rejects each caller in it. A real SQLite store whose
 * `finishMany` calls are recorded (and can be held or made to fail).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { emptyStats } from '../../src/agents/runner.ts';
import type { Claim, Task } from '../../src/core/types.ts';
import { FinishBatcher } from '../../src/scheduler/finish-batcher.ts';
import type { FinishItem, FinishOutcome } from '../../src/store/store.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { newTask } from '../fixtures/specs.ts';

const T0 = 1_700_000_000_000;

/** A SQLite store that records the attempt ids of each `finishMany` call; `gate` holds the next calls, `failWith` fails them. */
class RecordingStore extends SqliteStore {
  readonly calls: string[][] = [];
  gate: Promise<void> | null = null;
  failWith: Error | null = null;
  override async finishMany(items: readonly FinishItem[]): Promise<Array<Task | null>> {
    this.calls.push(items.map((i) => i.attemptId));
    if (this.gate) await this.gate;
    if (this.failWith) throw this.failWith;
    return super.finishMany(items);
  }
}

const done = (result = 'ok'): FinishOutcome => ({ state: 'completed', attemptOutcome: 'completed', result, stats: emptyStats(), now: T0 + 1 });

/** A fresh store holding `n` running tasks t0…, claimed; their claims. */
async function running(n: number): Promise<{ store: RecordingStore; claims: Claim[] }> {
  const store = new RecordingStore(path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-finish-')), 'agentq.db'));
  await store.enqueue(Array.from({ length: n }, (_, i) => newTask(`t${i}`)), T0);
  const claims = await store.claimMany({ workerId: 'w1', now: T0, leaseMs: 30_000, concurrency: 10, agents: ['command'], labels: [] }, n);
  assert.equal(claims.length, n);
  return { store, claims };
}

describe('FinishBatcher', () => {
  it('sends two finishes asked together in one store call, each caller getting its own task (or null when fenced)', async () => {
    const { store, claims } = await running(2);
    const [a, b] = claims;
    const batcher = new FinishBatcher(store);
    const results = await Promise.all([batcher.finish(a!.attempt.id, done('a')), batcher.finish(b!.attempt.id, done('b')), batcher.finish(a!.attempt.id, done('again'))]);
    assert.deepEqual(store.calls, [[a!.attempt.id, b!.attempt.id, a!.attempt.id]]);
    assert.deepEqual(results.map((t) => t && [t.name, t.result]), [['t0', 'a'], ['t1', 'b'], null]);
    await store.close();
  });

  it('groups the finishes asked while a call is under way into the next call', async () => {
    const { store, claims } = await running(4);
    const batcher = new FinishBatcher(store);
    let open = () => {};
    store.gate = new Promise((r) => (open = r));
    const first = batcher.finish(claims[0]!.attempt.id, done());
    await new Promise((r) => setImmediate(r)); // the first call is under way, held
    assert.equal(store.calls.length, 1);
    const later = claims.slice(1).map((c) => batcher.finish(c.attempt.id, done()));
    await new Promise((r) => setImmediate(r));
    assert.equal(store.calls.length, 1, 'nothing sent while a call is under way');
    store.gate = null;
    open();
    const results = await Promise.all([first, ...later]);
    assert.deepEqual(store.calls, [[claims[0]!.attempt.id], claims.slice(1).map((c) => c.attempt.id)]);
    assert.deepEqual(results.map((t) => t?.state), ['completed', 'completed', 'completed', 'completed']);
    await store.close();
  });

  it('rejects each caller when the store fails every call, and sends the next finishes anew', async () => {
    const { store, claims } = await running(3);
    const batcher = new FinishBatcher(store);
    store.failWith = new Error('store gone');
    const failed = await Promise.allSettled(claims.slice(0, 2).map((c) => batcher.finish(c.attempt.id, done())));
    assert.deepEqual(failed.map((r) => r.status === 'rejected' && (r.reason as Error).message), ['store gone', 'store gone']);
    assert.deepEqual(store.calls, [claims.slice(0, 2).map((c) => c.attempt.id), [claims[0]!.attempt.id], [claims[1]!.attempt.id]], 'the batch, then each alone');
    assert.equal((await store.getTask(claims[0]!.task.id))?.state, 'running', 'the failed calls recorded nothing');
    store.failWith = null;
    assert.equal((await batcher.finish(claims[2]!.attempt.id, done()))?.state, 'completed');
    await store.close();
  });

  it('after a failed batch, ends the others when one end alone is refused', async () => {
    const { store, claims } = await running(3);
    const [a, bad, c] = claims;
    const refusing = new (class extends RecordingStore {
      override async finishMany(items: readonly FinishItem[]): Promise<Array<Task | null>> {
        if (items.some((i) => i.attemptId === bad!.attempt.id)) throw new Error('text the store cannot hold');
        return store.finishMany(items);
      }
    })(':memory:');
    const batcher = new FinishBatcher(refusing);
    const settled = await Promise.allSettled(claims.map((x) => batcher.finish(x.attempt.id, done())));
    assert.deepEqual(
      settled.map((r) => (r.status === 'fulfilled' ? r.value?.state : (r.reason as Error).message)),
      ['completed', 'text the store cannot hold', 'completed'],
    );
    assert.equal((await store.getTask(bad!.task.id))?.state, 'running');
    assert.deepEqual(store.calls, [[a!.attempt.id], [c!.attempt.id]]);
    await refusing.close();
    await store.close();
  });

  it('sends at most maxBatch finishes per call', async () => {
    const { store, claims } = await running(5);
    const batcher = new FinishBatcher(store, 2);
    await Promise.all(claims.map((c) => batcher.finish(c.attempt.id, done())));
    assert.deepEqual(store.calls.map((c) => c.length), [2, 2, 1]);
    await store.close();
  });
});
