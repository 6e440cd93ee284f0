/**
 * The dispatcher's pump claims every free slot in one store call (`claimMany`), and one task
 * at a time when an agent here has a `rate_limit` (a start token taken as an attempt launches
 * may pause the agent before the next claim). In process, a real SQLite store, real
 * `agent: command` processes; the store's `claimMany` calls are recorded.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { createRunners } from '../../src/agents/registry.ts';
import { loadConfig } from '../../src/config/config.ts';
import type { Claim } from '../../src/core/types.ts';
import { Dispatcher } from '../../src/scheduler/dispatcher.ts';
import type { ClaimOptions } from '../../src/store/store.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { dropTask, makeProject } from '../fixtures/project.ts';

/** A SQLite store that records each `claimMany` call: [max asked, tasks claimed]. */
class RecordingStore extends SqliteStore {
  readonly calls: [number, number][] = [];
  override async claimMany(o: ClaimOptions, max: number): Promise<Claim[]> {
    const claims = await super.claimMany(o, max);
    this.calls.push([max, claims.length]);
    return claims;
  }
}

/** Runs the five tasks of a project with `agents.command` as given, concurrency 3; the store's calls. */
async function runFive(command: Record<string, unknown>): Promise<RecordingStore> {
  const paths = makeProject({ concurrency: 3, agents: { command: { command: 'echo ran', ...command } } });
  const names = ['t1', 't2', 't3', 't4', 't5'];
  for (const name of names) dropTask(paths, name, { agent: 'command' }, name);
  const store = new RecordingStore(path.join(paths.dir, 'agentq.db'));
  const config = loadConfig(paths.root);
  const d = new Dispatcher({ paths, store, config, runners: new Map([['command', createRunners(config, paths, process.env).get('command')!]]) });
  await d.start();
  for (let i = 0; i < 50 && (await store.countByState()).completed < names.length; i++) {
    await d.tick();
    do await new Promise((r) => setTimeout(r, 5));
    while (d.runningCount > 0);
  }
  assert.deepEqual((await Promise.all(names.map((n) => store.getTask(n)))).map((t) => `${t?.name}:${t?.state}`), names.map((n) => `${n}:completed`));
  await d.stop();
  await store.close();
  return store;
}

describe('the pump claims in batches', () => {
  it('every free slot in one call: three of five tasks claimed by the first', async () => {
    const store = await runFive({});
    assert.deepEqual(store.calls[0], [3, 3]);
  });

  it('claims no more in a pump once a batch came back short (the store had nothing more)', async () => {
    const paths = makeProject({ concurrency: 3, agents: { command: { command: 'sleep 1' } } });
    dropTask(paths, 'only', { agent: 'command' }, 'only');
    const store = new RecordingStore(path.join(paths.dir, 'agentq.db'));
    const config = loadConfig(paths.root);
    const d = new Dispatcher({ paths, store, config, runners: new Map([['command', createRunners(config, paths, process.env).get('command')!]]) });
    await d.start();
    await d.tick();
    // The attempt runs for a second: every call so far is the tick's pump.
    assert.deepEqual(store.calls, [[3, 1]]);
    assert.equal(d.runningCount, 1);
    await d.stop();
    await store.close();
  });

  it('one task per call when the agent has a rate_limit', async () => {
    const store = await runFive({ rate_limit: '100/h' });
    assert.deepEqual(store.calls[0], [1, 1]);
    assert.ok(store.calls.every(([max]) => max === 1), JSON.stringify(store.calls));
  });
});
