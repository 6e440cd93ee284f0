/**
 * Result files on a real file system: never overwritten, the same content once, no temp file
 * left, and made durable in groups (the fsyncs of files written together shared).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { projectPaths } from '../../src/config/config.ts';
import { GroupSync, syncPath } from '../../src/results/group-sync.ts';
import { renderResultFile, writeResultFile } from '../../src/results/result-file.ts';
import { makeTask } from '../fixtures/specs.ts';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-result-file-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

const project = () => projectPaths(fs.mkdtempSync(path.join(tmpRoot, 'p-')));
const done = (id: number, result: string) => makeTask({ id, name: 'build', state: 'completed', result, finishedAt: Date.now() });
const entries = (dir: string) => fs.readdirSync(dir).sort();

describe('writeResultFile', () => {
  it('two tasks of one name written together: NAME.md and NAME.<id>.md, each fsynced before its link, the folder after', async () => {
    const paths = project();
    const group = new GroupSync();
    // What done/ holds when each fsync is asked for: a descriptor before its file is linked, the folder after.
    const asked: Array<{ target: 'fd' | 'dir'; names: string[] }> = [];
    const sync = (target: string | number) => {
      asked.push({ target: typeof target === 'number' ? 'fd' : 'dir', names: entries(paths.done).filter((f) => f.endsWith('.md')) });
      return group.sync(target);
    };
    const [a, b] = [done(1, 'first'), done(2, 'second')];
    const files = await Promise.all([writeResultFile(paths, a, {}, sync), writeResultFile(paths, b, {}, sync)]);
    // Whichever links first takes NAME.md; the other gets NAME.<its id>.md.
    const second = files[0]!.endsWith('build.md') ? b : a;
    assert.deepEqual([...files].sort(), [path.join(paths.done, `build.${second.id}.md`), path.join(paths.done, 'build.md')]);
    assert.equal(fs.readFileSync(files[0]!, 'utf8'), await renderResultFile(a));
    assert.equal(fs.readFileSync(files[1]!, 'utf8'), await renderResultFile(b));
    assert.deepEqual(entries(paths.done), [`build.${second.id}.md`, 'build.md'], 'no temp file left');
    const fds = asked.filter((s) => s.target === 'fd');
    const dirs = asked.filter((s) => s.target === 'dir');
    assert.equal(fds.length, 2, 'each temp file (its descriptor) synced');
    assert.equal(dirs.length, 2, 'done/ synced for each file');
    assert.ok(fds.every((s) => s.names.length < 2), 'a descriptor is synced before its file is linked');
    assert.ok(dirs.every((s) => s.names.length >= 1), 'the folder is synced after a link');
    // The temp files are created on the thread pool: the two links land in one group of fsyncs (the folder
    // synced once for both) or in two, as their I/O completes.
    assert.ok(group.fsyncs === 3 || group.fsyncs === 4, `two descriptors, then done/ once or twice (${group.fsyncs})`);
  });

  it('the same task written again is the same file; another task never overwrites it', async () => {
    const paths = project();
    const a = done(1, 'first');
    const file = await writeResultFile(paths, a);
    assert.equal(await writeResultFile(paths, a), file);
    fs.writeFileSync(path.join(paths.done, 'build.3.md'), 'someone else\'s');
    const c = await writeResultFile(paths, done(3, 'third'));
    assert.equal(c, path.join(paths.done, 'build.3.4.md'), 'the next free name of build.md, build.3.md, build.3.N.md');
    assert.equal(fs.readFileSync(path.join(paths.done, 'build.3.md'), 'utf8'), 'someone else\'s');
    assert.equal(fs.readFileSync(file, 'utf8'), await renderResultFile(a));
    assert.deepEqual(entries(paths.done), ['build.3.4.md', 'build.3.md', 'build.md']);
  });

  it('a failed fsync of the content rejects with its error: nothing under a name, no temp file left', async () => {
    const paths = project();
    const eio = Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
    await assert.rejects(writeResultFile(paths, done(1, 'x'), {}, (target) => (typeof target === 'number' ? Promise.reject(eio) : syncPath(target))), /EIO/);
    assert.deepEqual(entries(paths.done), []);
  });
});

describe('GroupSync', () => {
  it('paths asked for in one turn make one group, each path synced once; a missing path rejects alone; later ones the next group', async () => {
    const dir = fs.mkdtempSync(path.join(tmpRoot, 'g-'));
    const files = ['a', 'b', 'c'].map((n) => path.join(dir, n));
    for (const f of files) fs.writeFileSync(f, n(f));
    const group = new GroupSync();
    const first = Promise.all([group.sync(files[0]!), group.sync(files[1]!), group.sync(files[1]!)]);
    const second = Promise.all([group.sync(files[2]!), group.sync(dir)]);
    const missing = assert.rejects(group.sync(path.join(dir, 'gone')), { code: 'ENOENT' });
    await Promise.all([first, second, missing]);
    assert.equal(group.groups, 1, 'all asked in one turn: one group');
    assert.equal(group.fsyncs, 5, 'b once though asked twice');
    const later = group.sync(files[0]!);
    await later;
    assert.equal(group.groups, 2);
  });
});

function n(file: string): string {
  return path.basename(file);
}
