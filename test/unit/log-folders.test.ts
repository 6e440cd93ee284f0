/**
 * LogFolders on a real file system: the spare folder made ahead and renamed into place for a
 * first attempt (its empty logs in it), a new spare made after, the folders it must not take
 * (one with files, a retry's), a folder that cannot be made refused, stale spares of gone
 * processes removed, this process's own removed by close.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { LogFolders } from '../../src/results/log-folders.ts';

const root = mkdtempSync(join(tmpdir(), 'agentq-log-folders-'));
after(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
function logsDir(): string {
  const dir = join(root, `logs${++n}`);
  mkdirSync(dir);
  return dir;
}

const spares = (dir: string): string[] => readdirSync(dir).filter((name) => name.startsWith('.spare-'));

/** The spares in `dir` once `folders` made its own (in the background). */
async function sparesIn(dir: string, folders: LogFolders): Promise<string[]> {
  assert.equal(await folders.ready(), true, 'a spare was made');
  return spares(dir);
}

describe('LogFolders', () => {
  it('a first attempt gets the spare renamed into place, its empty logs in it, and a new spare is made', async () => {
    const dir = logsDir();
    const folders = new LogFolders(dir);
    folders.start(() => true);
    const [first] = await sparesIn(dir, folders);
    const task = join(dir, '7-fix');
    folders.prepare(task, 1);
    assert.deepEqual(readdirSync(task).sort(), ['1.stderr.log', '1.stdout.log']);
    assert.equal(readFileSync(join(task, '1.stdout.log'), 'utf8'), '');
    assert.equal(existsSync(join(dir, first!)), false, 'the spare was moved, not copied');
    const [second] = await sparesIn(dir, folders);
    assert.notEqual(second, first);
    await folders.close();
    assert.deepEqual(spares(dir), [], 'close removes this process spare');
  });

  it('a folder with files in it, or a retry, is made by mkdir and the spare is kept', async () => {
    const dir = logsDir();
    const folders = new LogFolders(dir);
    folders.start(() => true);
    const [spare] = await sparesIn(dir, folders);
    const task = join(dir, '8-again');
    mkdirSync(task);
    writeFileSync(join(task, '1.verify-1.log'), 'kept');
    folders.prepare(task, 1);
    assert.deepEqual(readdirSync(task), ['1.verify-1.log']);
    const retry = join(dir, '9-retry');
    folders.prepare(retry, 2);
    assert.deepEqual(readdirSync(retry), [], 'a retry folder holds no first-attempt logs');
    assert.deepEqual(spares(dir), [spare]);
    await folders.close();
  });

  it('a folder that cannot be made throws, with or without a spare', async () => {
    const dir = logsDir();
    const folders = new LogFolders(dir);
    const blocked = join(dir, '10-blocked');
    writeFileSync(blocked, 'a file where the folder should be');
    assert.throws(() => folders.prepare(join(blocked, 'sub'), 1), { code: 'ENOTDIR' });
    folders.start(() => true);
    await sparesIn(dir, folders);
    assert.throws(() => folders.prepare(blocked, 1), { code: 'EEXIST' });
    assert.equal(readFileSync(blocked, 'utf8'), 'a file where the folder should be');
    assert.equal(spares(dir).length, 1, 'the spare is kept');
    await folders.close();
  });

  it('start removes the spares of processes that are gone and keeps the live ones', async () => {
    const dir = logsDir();
    for (const name of ['.spare-111-1', '.spare-222-3', '5-task']) mkdirSync(join(dir, name));
    const folders = new LogFolders(dir);
    folders.start((pid) => pid === 222);
    assert.equal((await sparesIn(dir, folders)).length, 2);
    assert.ok(existsSync(join(dir, '.spare-222-3')));
    assert.ok(existsSync(join(dir, '5-task')));
    assert.equal(existsSync(join(dir, '.spare-111-1')), false);
    await folders.close();
    assert.deepEqual(spares(dir), ['.spare-222-3']);
  });

  it('without start, or when the spare is gone, folders are made by mkdir', async () => {
    const dir = logsDir();
    const folders = new LogFolders(dir);
    folders.prepare(join(dir, '11-plain'), 1);
    assert.deepEqual(readdirSync(join(dir, '11-plain')), []);
    folders.start(() => true);
    const [spare] = await sparesIn(dir, folders);
    rmSync(join(dir, spare!), { recursive: true });
    folders.prepare(join(dir, '12-gone'), 1);
    assert.deepEqual(readdirSync(join(dir, '12-gone')), []);
    await sparesIn(dir, folders);
    await folders.close();
  });
});
