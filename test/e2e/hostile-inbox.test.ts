/**
 * The inbox under a careless user, a hostile file and a second dispatcher: real `bin/agentq`
 * processes, real files, the `command` agent.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { baseSpec } from '../../src/config/task-file.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { agentq, dropTask, listDir, makeProject } from '../fixtures/project.ts';


describe('hostile inbox', () => {
  it('two dispatchers started together take 200 files in exactly once', async () => {
    const paths = makeProject({ concurrency: 8, inbox_settle: '1ms', poll_interval: '50ms' });
    const ran = path.join(paths.root, 'ran.txt');
    const n = 200;
    for (let i = 0; i < n; i++) dropTask(paths, `t${i}`, { agent: 'command', command: `echo "$AGENTQ_TASK_NAME" >> ${ran}` }, 'x');
    const [a, b] = await Promise.all([agentq(['run', '--once', '--project', paths.root]), agentq(['run', '--once', '--project', paths.root])]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const db = new Database(path.join(paths.dir, 'agentq.db'), { readonly: true });
    const rows = db.prepare('SELECT name, state, claims FROM tasks').all() as Array<{ name: string; state: string; claims: number }>;
    db.close();
    assert.equal(rows.length, n, `${rows.length} tasks from ${n} files`);
    assert.ok(rows.every((r) => r.state === 'completed' && r.claims === 1));
    const lines = fs.readFileSync(ran, 'utf8').trim().split('\n');
    assert.equal(lines.length, n, 'each task ran once');
    assert.equal(new Set(lines).size, n);
    assert.equal(listDir(paths.done).length, n, 'one result file each');
    assert.deepEqual(listDir(paths.inbox), []);
  });

  it('run --once reports entries it will not take in and a far run_at, runs the rest, exits 1', async () => {
    const paths = makeProject();
    const outside = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-outside-')), 'secret.md');
    fs.writeFileSync(outside, 'MARKER-FROM-OUTSIDE');
    fs.symlinkSync(outside, path.join(paths.inbox, 'link.md'));
    fs.mkdirSync(path.join(paths.inbox, 'folder.md'));
    execFileSync('mkfifo', [path.join(paths.inbox, 'pipe.md')]);
    dropTask(paths, 'good', { agent: 'command', command: 'echo fine' }, 'x');
    dropTask(paths, 'later', { agent: 'command', command: 'echo later', run_at: '2040-01-01T00:00:00Z' }, 'x');
    const started = Date.now();
    const r = await agentq(['run', '--once', '--project', paths.root], {}, 30_000);
    assert.equal(r.code, 1, r.stderr);
    assert.ok(Date.now() - started < 20_000, 'exits instead of waiting');
    assert.match(r.stderr, /refused +inbox\/link\.md is a symbolic link/);
    assert.match(r.stderr, /inbox\/link\.md not taken in: is a symbolic link/);
    assert.match(r.stderr, /inbox\/folder\.md not taken in: is a directory/);
    assert.match(r.stderr, /inbox\/pipe\.md not taken in: is a named pipe/);
    assert.match(r.stderr, /#\d+ later left queued: cannot run within --max-wait 1h 00m: run_at 2040-01-01T00:00:00\.000Z/);
    assert.match(r.stderr, /1 completed, 0 not completed, 1 left queued/);
    assert.deepEqual(listDir(paths.done), ['good.md']);
    assert.deepEqual(listDir(paths.inbox), ['folder.md', 'link.md', 'pipe.md']);
    assert.equal(fs.readFileSync(outside, 'utf8'), 'MARKER-FROM-OUTSIDE');
    assert.ok(!fs.readFileSync(path.join(paths.dir, 'agentq.db')).includes('MARKER-FROM-OUTSIDE'), 'the target was never read into the store');
  });

  it('run --once states a wait it sits out, and --max-wait bounds it', async () => {
    const far = makeProject();
    dropTask(far, 'later', { agent: 'command', command: 'echo later', run_at: new Date(Date.now() + 3_600_000).toISOString() }, 'x');
    const short = await agentq(['run', '--once', '--max-wait', '1s', '--project', far.root], {}, 30_000);
    assert.equal(short.code, 1, short.stderr);
    assert.match(short.stderr, /#1 later left queued: cannot run within --max-wait 1\.0s: run_at/);
    const paths = makeProject();
    dropTask(paths, 'soon', { agent: 'command', command: 'echo soon', run_at: new Date(Date.now() + 8_000).toISOString() }, 'x'); // past the CLI's start-up on a loaded machine
    const r = await agentq(['run', '--once', '--project', paths.root], {}, 30_000);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /waiting +#1 soon until .*: run_at/);
    assert.deepEqual(listDir(paths.done), ['soon.md']);
    assert.equal((await agentq(['run', '--max-wait', 'soon', '--once', '--project', paths.root])).code, 2);
  });

  it('run --once does not wait for a task whose dependency waits on a question', async () => {
    const paths = makeProject();
    dropTask(paths, 'ask', { agent: 'command', command: 'echo "<<question>>Which one?<</question>>"' }, 'x');
    dropTask(paths, 'after', { agent: 'command', command: 'echo after', depends_on: ['ask'] }, 'x');
    const r = await agentq(['run', '--once', '--project', paths.root], {}, 30_000);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /#2 after left queued: cannot run until someone acts: dependency "ask" is blocked on a question \(agentq answer 1/);
  });
});

describe('attempts that cannot be prepared', () => {
  it('an attempt whose log folder cannot be made ends failed instead of holding its slot', async () => {
    const paths = makeProject({ concurrency: 1 });
    dropTask(paths, 'blocked-logs', { agent: 'command', command: 'echo hi' }, 'x');
    dropTask(paths, 'next', { agent: 'command', command: 'echo next', priority: 'low' }, 'x');
    fs.mkdirSync(paths.logs, { recursive: true });
    fs.writeFileSync(path.join(paths.logs, '1-blocked-logs'), 'a file where the folder goes');
    const r = await agentq(['run', '--once', '--project', paths.root], {}, 30_000);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /failed +#1 blocked-logs logs: EEXIST/);
    assert.deepEqual(listDir(paths.done), ['next.md']);
    assert.deepEqual(listDir(paths.failed), ['blocked-logs.md']);
  });

  it('a stored task whose name is too long for a file name still gets its logs and result file', async () => {
    const paths = makeProject();
    const name = `n${'x'.repeat(244)}`;
    const store = new SqliteStore(path.join(paths.dir, 'agentq.db'));
    await store.enqueue([{ spec: { ...baseSpec(name, 'x'), agent: 'command', command: 'echo long', timeoutMs: 60_000 }, dependsOnIds: [] }], Date.now());
    await store.close();
    const r = await agentq(['run', '--once', '--project', paths.root], {}, 30_000);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(listDir(paths.done), [`${name.slice(0, 100)}.md`]);
    assert.deepEqual(listDir(paths.logs), [`1-${name.slice(0, 100)}`]);
  });
});
