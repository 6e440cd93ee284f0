/**
 * What follows an attempt's end in a dispatcher. The task's result file is written beside the
 * next attempt: once the end is committed, its slot is free, and the next task is claimed and
 * started while the ended task's file is still being written (its fsyncs held here); `drain`
 * waits for that write. `onAllEnded` (what `run --once`'s loop looks at the queue on) is
 * called once the last attempt ended, not between attempts whose end made room for the next.
 * In process, a real SQLite store, real `command` agents, real result files.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { createRunners } from '../../src/agents/registry.ts';
import { loadConfig } from '../../src/config/config.ts';
import { Dispatcher } from '../../src/scheduler/dispatcher.ts';
import type { Reporter } from '../../src/scheduler/reporter.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { makeProject } from '../fixtures/project.ts';
import { newTask } from '../fixtures/specs.ts';

/** Resolves with what `wait` resolves with, or rejects after `ms` saying what did not happen. */
function within<T>(ms: number, what: string, wait: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
  return Promise.race([wait, late]).finally(() => clearTimeout(timer));
}

describe('the result file of an ended task', () => {
  it('is written beside the next attempt: the slot is free once the end is committed, drain waits for the file', async () => {
    const paths = makeProject({ concurrency: 1, poll_interval: '30s', workspace: 'inplace' });
    const store = new SqliteStore(path.join(paths.dir, 'agentq.db'));
    await store.enqueue([newTask('first', { command: ['true'] }), newTask('second', { command: ['true'] })], Date.now());
    const config = loadConfig(paths.root);
    const d = new Dispatcher({ paths, store, config, runners: new Map([['command', createRunners(config, paths, process.env).get('command')!]]) });
    // The result files' fsyncs wait until released.
    const durable = (d as unknown as { reporter: Reporter }).reporter.durable;
    const sync = durable.sync.bind(durable);
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    durable.sync = async (target) => {
      await held;
      return sync(target);
    };
    const secondStarted = new Promise<void>((resolve) => d.events.on('task.started', (claim) => claim.task.name === 'second' && resolve()));
    try {
      await d.start();
      await d.tick();
      await within(10_000, 'the second task started while the first one\'s result file was held', secondStarted);
      const first = await store.getTask('first');
      assert.equal(first?.state, 'completed', 'the first task ended');
      assert.equal(first?.resultPath, null, 'its result file not yet recorded: its write is held');
      release();
      await d.drain();
      for (const name of ['first', 'second']) {
        const task = await store.getTask(name);
        assert.equal(task?.state, 'completed', name);
        assert.ok(task?.resultPath && fs.existsSync(task.resultPath), `${name}: result file written once drained`);
      }
    } finally {
      release();
      await d.stop();
      await store.close();
      fs.rmSync(paths.root, { recursive: true, force: true });
    }
  });

  it('onAllEnded: called once the last attempt ended and none was claimed in its place, not in between', async () => {
    const paths = makeProject({ concurrency: 1, poll_interval: '30s', workspace: 'inplace' });
    const store = new SqliteStore(path.join(paths.dir, 'agentq.db'));
    await store.enqueue([newTask('first', { command: ['true'] }), newTask('second', { command: ['true'] })], Date.now());
    const config = loadConfig(paths.root);
    const d = new Dispatcher({ paths, store, config, runners: new Map([['command', createRunners(config, paths, process.env).get('command')!]]) });
    const calls: string[][] = [];
    let allEnded = () => {};
    const ended = new Promise<void>((resolve) => (allEnded = resolve));
    d.onAllEnded = () => {
      void Promise.all(['first', 'second'].map(async (n) => `${n}:${(await store.getTask(n))?.state}`)).then((states) => {
        calls.push(states);
        allEnded();
      });
    };
    try {
      await d.start();
      await d.tick();
      await within(10_000, 'onAllEnded called', ended);
      await d.drain();
      assert.deepEqual(calls, [['first:completed', 'second:completed']], 'once, after both ended');
    } finally {
      await d.stop();
      await store.close();
      fs.rmSync(paths.root, { recursive: true, force: true });
    }
  });
});
