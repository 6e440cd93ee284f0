/**
 * The order of a dispatcher's tick: a plain tick (the poll, an inbox event) takes the inbox in
 * before it claims; a tick woken by the store (`claimFirst`: work another process committed,
 * PostgreSQL's NOTIFY) claims what waits in the store first, then takes the inbox in and claims
 * what that created in the same tick, once the agents it claimed have asked for their process.
 * In process, a real SQLite store, real `command` agents.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { createRunners } from '../../src/agents/registry.ts';
import { loadConfig } from '../../src/config/config.ts';
import { Dispatcher } from '../../src/scheduler/dispatcher.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { dropTask, makeProject } from '../fixtures/project.ts';
import { newTask } from '../fixtures/specs.ts';

/**
 * A project whose store holds `stored` (priority low) and whose inbox holds `filed` (priority
 * critical), both `command` agents that run until stopped; a started dispatcher on it.
 */
async function setUp(concurrency: number) {
  const paths = makeProject({ concurrency, poll_interval: '30s', workspace: 'inplace' });
  const store = new SqliteStore(path.join(paths.dir, 'agentq.db'));
  await store.enqueue([newTask('stored', { priority: 'low', command: ['sleep', '30'] })], Date.now());
  dropTask(paths, 'filed', { agent: 'command', priority: 'critical', command: ['sleep', '30'] }, 'x');
  const config = loadConfig(paths.root);
  const d = new Dispatcher({ paths, store, config, runners: new Map([['command', createRunners(config, paths, process.env).get('command')!]]) });
  await d.start();
  const states = async () => Promise.all(['stored', 'filed'].map(async (n) => `${n}:${(await store.getTask(n))?.state ?? 'none'}`));
  const end = async () => {
    await d.stop();
    await store.close();
  };
  return { d, states, end };
}

describe('the order of a tick', () => {
  it('a plain tick takes the inbox in first: the critical inbox task gets the one slot', async () => {
    const { d, states, end } = await setUp(1);
    try {
      await d.tick();
      assert.deepEqual(await states(), ['stored:queued', 'filed:running']);
    } finally {
      await end();
    }
  });

  it('a tick woken by the store claims what waits there before the inbox is taken in', async () => {
    const { d, states, end } = await setUp(1);
    try {
      await d.tick({ claimFirst: true });
      assert.deepEqual(await states(), ['stored:running', 'filed:queued'], 'the stored task claimed, the inbox task taken in after');
    } finally {
      await end();
    }
  });

  it('a tick woken by the store has the agents it claimed started before it goes on with the rest of the round', async () => {
    const paths = makeProject({ concurrency: 1, poll_interval: '30s', workspace: 'inplace' });
    const calls: string[] = [];
    /** The store's first call of the rest of the round (the intake's) recorded. */
    class RecordingStore extends SqliteStore {
      override async listPendingIntake() {
        calls.push('intake');
        return super.listPendingIntake();
      }
    }
    const store = new RecordingStore(path.join(paths.dir, 'agentq.db'));
    await store.enqueue([newTask('stored', { command: ['sleep', '30'] })], Date.now());
    dropTask(paths, 'filed', { agent: 'command', command: ['sleep', '30'] }, 'x');
    const config = loadConfig(paths.root);
    const command = createRunners(config, paths, process.env).get('command')!;
    /** The runner's start (its process asked for in the same turn) recorded. */
    const recording = Object.assign(Object.create(command) as typeof command, {
      run: (request: Parameters<typeof command.run>[0]) => {
        calls.push(`run ${request.task.name}`);
        return command.run(request);
      },
    });
    const d = new Dispatcher({ paths, store, config, runners: new Map([['command', recording]]) });
    await d.start();
    try {
      calls.length = 0; // what start() did
      await d.tick({ claimFirst: true });
      assert.deepEqual(calls.slice(0, 2), ['run stored', 'intake']);
    } finally {
      await d.stop();
      await store.close();
    }
  });

  it('a tick woken by the store claims what its intake created in the same tick', async () => {
    const { d, states, end } = await setUp(2);
    try {
      await d.tick({ claimFirst: true });
      assert.deepEqual(await states(), ['stored:running', 'filed:running']);
    } finally {
      await end();
    }
  });
});
