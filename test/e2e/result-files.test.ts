/**
 * Every terminal state writes its result file: the real `bin/agentq run --once` on inbox files.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { it } from 'node:test';
import { agentq, agentqJson, dropTask, listDir, makeProject, readResult } from '../fixtures/project.ts';

it('a task that ends duplicate gets its failed/ file, naming the task that holds the dedup_key', async () => {
  const paths = makeProject();
  dropTask(paths, 'sync-1', { agent: 'command', command: 'echo x', dedup_key: 'nightly' }, 'first');
  dropTask(paths, 'sync-2', { agent: 'command', command: 'echo x', dedup_key: 'nightly' }, 'second');
  const r = await agentq(['run', '--once', '--project', paths.root]);
  const tasks = await agentqJson<{ id: number; name: string; state: string }[]>(['list', '--json', '--project', paths.root]);
  assert.deepEqual(
    tasks.map((t) => [t.name, t.state]).sort(),
    [
      ['sync-1', 'completed'],
      ['sync-2', 'duplicate'],
    ],
  );
  assert.deepEqual(listDir(paths.done), ['sync-1.md'], r.stderr);
  assert.deepEqual(listDir(paths.failed), ['sync-2.md'], r.stderr);
  assert.match(r.stderr, /^\S+ duplicate #\d+ sync-2 dedup_key: "nightly"/m, 'the duplicate is printed as it ends');
  assert.doesNotMatch(r.stderr, /queued +#\d+ sync-2/, 'a duplicate is never queued');
  const dup = readResult(path.join(paths.failed, 'sync-2.md'));
  assert.equal(dup.fm.status, 'duplicate');
  assert.equal(dup.fm.failed_reason, 'dedup_key: "nightly": task "sync-1" taken in with it comes first');
  assert.equal(dup.body, 'second', 'the failed file carries the original task body');
});
