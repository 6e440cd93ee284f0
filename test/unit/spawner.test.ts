/**
 * The spawner process with real processes: argv without a shell in a new session, the exact
 * environment, stdin/stdout/stderr relayed byte for byte, exit codes and signals, spawn errors
 * by code, and a lost spawner (its children reported as exited, the next spawn starts a new one).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { isAlive, readProcessInfo, stopProcesses } from '../../src/process/process-tree.ts';
import { spawnAgent } from '../../src/process/spawner.ts';

const dir = mkdtempSync(join(tmpdir(), 'agentq-spawner-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', ONLY_THIS: 'yes' };

function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
}

describe('spawnAgent', () => {
  it('runs argv without a shell in its own session, with exactly the env given, stdin to stdout byte for byte', async () => {
    const p = await spawnAgent('sh', ['-c', 'echo "$ONLY_THIS $HOME $1" >&2; exec cat', 'argv0', '$(not expanded)'], { cwd: dir, env });
    const info = readProcessInfo(p.pid);
    assert.ok(info, 'running');
    assert.equal(info.sid, p.pid, 'leads its own session');
    assert.equal(info.pgid, p.pid, 'and its own process group');
    assert.notEqual(info.ppid, process.pid, 'its parent is the spawner, not this process');
    const input = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < input.length; i++) input[i] = (i * 7919) % 251;
    const [out, err] = [readAll(p.stdout), readAll(p.stderr)];
    p.stdin.end(input);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    assert.equal(sha(await out), sha(input), '3 MiB through stdin and back out, in order');
    assert.equal((await err).toString(), 'yes  $(not expanded)\n', 'no HOME: nothing inherited; the argument not run by a shell');
    assert.deepEqual(await p.exited, { code: 0, signal: null });
  });

  it('input given with the start is written by the spawner, then EOF; the stdin returned is already ended', async () => {
    const p = await spawnAgent('sh', ['-c', 'cat; echo eof'], { cwd: dir, env, input: 'the prompt\n' });
    assert.equal(p.stdin.writableEnded, true);
    assert.equal((await readAll(p.stdout)).toString(), 'the prompt\neof\n');
    assert.deepEqual(await p.exited, { code: 0, signal: null });
    const empty = await spawnAgent('sh', ['-c', 'cat; echo eof'], { cwd: dir, env, input: '' });
    assert.equal((await readAll(empty.stdout)).toString(), 'eof\n', 'an empty input: EOF at once');
    const ignored = await spawnAgent('true', [], { cwd: dir, env, input: 'x'.repeat(1024 * 1024) });
    assert.deepEqual(await ignored.exited, { code: 0, signal: null }, 'an agent that does not read stdin (EPIPE) is no error');
  });

  it('reports the exit code and the signal that ended it', async () => {
    const a = await spawnAgent('sh', ['-c', 'exit 7'], { cwd: dir, env });
    assert.deepEqual(await a.exited, { code: 7, signal: null });
    const b = await spawnAgent('sleep', ['300'], { cwd: dir, env });
    process.kill(-b.pid, 'SIGTERM');
    assert.deepEqual(await b.exited, { code: null, signal: 'SIGTERM' });
  });

  it('closeStdin gives the process EOF before it resolves', async () => {
    const p = await spawnAgent('sh', ['-c', 'cat; echo eof'], { cwd: dir, env });
    const out = readAll(p.stdout);
    p.stdin.write('partial ');
    await p.closeStdin();
    assert.equal((await out).toString(), 'partial eof\n');
    assert.deepEqual(await p.exited, { code: 0, signal: null });
  });

  it('closeStdin resolves also when the process ends before the spawner confirms the close, and after it ended', async () => {
    for (let i = 0; i < 20; i++) {
      const p = await spawnAgent('sh', ['-c', 'exit 0'], { cwd: dir, env });
      p.stdout.resume();
      p.stderr.resume();
      const closing = p.closeStdin();
      await p.exited;
      await closing;
      await p.closeStdin();
    }
  });

  it('a spawn error rejects with its code: missing command, missing working directory', async () => {
    await assert.rejects(spawnAgent('agentq-no-such-command-xyz', [], { cwd: dir, env }), { code: 'ENOENT' });
    await assert.rejects(spawnAgent('true', [], { cwd: join(dir, 'missing'), env }), { code: 'ENOENT' });
  });

  it('a lost spawner: its running children count as exited (unknown code), the next spawn starts a new spawner', async () => {
    const p = await spawnAgent('sleep', ['300'], { cwd: dir, env });
    const spawnerPid = readProcessInfo(p.pid)!.ppid;
    const out = readAll(p.stdout);
    process.kill(spawnerPid, 'SIGKILL');
    assert.deepEqual(await p.exited, { code: null, signal: null });
    assert.equal((await out).length, 0, 'its output ends');
    assert.equal(isAlive(p.pid), true, 'the child itself lives on: the caller\'s sweep stops it');
    await stopProcesses({ processGroups: [p.pid] }, 0);
    const next = await spawnAgent('sh', ['-c', 'read line; echo again'], { cwd: dir, env });
    const parent = readProcessInfo(next.pid)?.ppid;
    assert.ok(parent !== undefined && parent !== spawnerPid && parent !== process.pid, 'a new spawner');
    next.stdin.end('go\n');
    assert.equal((await readAll(next.stdout)).toString(), 'again\n');
    assert.deepEqual(await next.exited, { code: 0, signal: null });
  });
});

describe('startSpawner', () => {
  it('starts the spawner before the first spawn, which then goes through it; an idle spawner does not keep the process alive', () => {
    const spawner = pathToFileURL(join(import.meta.dirname, '../../src/process/spawner.ts')).href;
    // In a process of its own: this one's spawner is already running.
    const script = `
      import { readdirSync, readFileSync } from 'node:fs';
      import { startSpawner, spawnAgent } from ${JSON.stringify(spawner)};
      const children = () => readdirSync('/proc').filter((p) => /^\\d+$/.test(p)).filter((p) => {
        try { const stat = readFileSync('/proc/' + p + '/stat', 'utf8'); return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid; } catch { return false; }
      }).map(Number);
      const before = children();
      startSpawner();
      const started = children();
      const p = await spawnAgent('sh', ['-c', 'echo $PPID'], { cwd: '/', env: { PATH: process.env.PATH } });
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      await new Promise((resolve) => p.stdout.once('end', resolve));
      await p.exited;
      console.log(JSON.stringify({ before, started, parent: Number(out.trim()) }));
    `;
    const run = (code: string) => spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: join(import.meta.dirname, '../..'), encoding: 'utf8', timeout: 30_000 });
    const idle = run(`import { startSpawner } from ${JSON.stringify(spawner)}; startSpawner();`);
    assert.equal(idle.signal, null, `a process that only started its spawner ended by itself (stderr: ${idle.stderr})`);
    assert.equal(idle.status, 0, idle.stderr);
    const r = run(script);
    assert.equal(r.status, 0, r.stderr);
    const { before, started, parent } = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { before: number[]; started: number[]; parent: number };
    assert.deepEqual(before, [], 'no spawner before');
    assert.equal(started.length, 1, 'the spawner runs once startSpawner returned');
    assert.equal(parent, started[0], 'the first spawn went through it');
  });
});
