/**
 * The process layer with real processes: process-tree helpers and runAgentProcess
 * (escaped setsid grandchildren, deadline with a SIGTERM-ignoring process, cancel, early stop,
 * line splitting, spawn failures).
 */
import { makeTask } from '../fixtures/specs.ts';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runAgentProcess, type AgentProcessOptions } from '../../src/agents/agent-process.ts';
import type { AgentEvent, RunRequest } from '../../src/agents/runner.ts';
import { AgentQueueError } from '../../src/core/errors.ts';
import type { Task } from '../../src/core/types.ts';
import {
  createdSince,
  findDescendants,
  markProcessCreation,
  findTaggedProcesses,
  isAlive,
  readProcessInfo,
  stopProcesses,
} from '../../src/process/process-tree.ts';

/** Every attempt id in this file starts with this, so `after` can sweep leftovers. */
const PREFIX = `test-process-${process.pid}-${randomUUID().slice(0, 8)}-`;
const tmpRoot = mkdtempSync(join(tmpdir(), 'agentq-process-'));

after(async () => {
  await stopProcesses((tag) => tag.startsWith(PREFIX), 0);
  rmSync(tmpRoot, { recursive: true, force: true });
});

function fakeTask(): Task {
  return makeTask({ title: 'Demo', prompt: 'hi', source: 'cli', timeoutMs: 10_000 });
}

function makeRequest(overrides: Partial<RunRequest> = {}): RunRequest & { events: AgentEvent[] } {
  const dir = mkdtempSync(join(tmpRoot, 'run-'));
  const events: AgentEvent[] = [];
  return {
    task: fakeTask(),
    attemptId: PREFIX + randomUUID(),
    prompt: 'hi',
    model: null,
    cwd: dir,
    env: { ...process.env },
    deadline: Date.now() + 10_000,
    stdoutLog: join(dir, 'logs', 'nested', 'stdout.log'),
    stderrLog: join(dir, 'logs', 'nested', 'stderr.log'),
    signal: new AbortController().signal,
    onEvent: (event) => events.push(event),
    events,
    ...overrides,
  };
}

function sh(script: string): string[] {
  return ['sh', '-c', script];
}

/** Collects stdout lines. */
function collect(options: AgentProcessOptions = {}): { lines: string[]; options: AgentProcessOptions } {
  const lines: string[] = [];
  const user = options.onStdoutLine;
  return {
    lines,
    options: {
      graceMs: 300,
      ...options,
      onStdoutLine: (line, stop) => {
        lines.push(line);
        user?.(line, stop);
      },
    },
  };
}

function spawnedPid(events: AgentEvent[]): number {
  const event = events.find((e) => e.type === 'spawned');
  assert.ok(event && event.type === 'spawned', 'spawned event emitted');
  return event.pid;
}

/**
 * Starts a grandchild in its own session (`setsid`), waits until it wrote its pid, and
 * prints that pid. The sleep's stdout is the attempt's stdout pipe, so it also holds the pipe.
 */
const SETSID_GRANDCHILD =
  'F=$(mktemp); setsid sh -c "sleep 300 & echo \\$! > $F; wait" & ' +
  'while [ ! -s "$F" ]; do sleep 0.02; done; echo "grandchild $(cat $F)"; rm -f "$F"; ';

function grandchildPid(lines: string[]): number {
  const line = lines.find((l) => l.startsWith('grandchild '));
  assert.ok(line, `grandchild line in ${JSON.stringify(lines)}`);
  return Number(line.slice('grandchild '.length));
}

describe('process-tree', () => {
  it('isAlive: true for a live process, false for a zombie and a missing pid', async () => {
    // The exec'd sleep never reaps its background child, which becomes a zombie.
    const child = spawn('sh', ['-c', 'sleep 0.05 & echo $!; exec sleep 300'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const zombie = await new Promise<number>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
      assert.equal(isAlive(child.pid!), true);
      const until = Date.now() + 2000;
      while (readProcessInfo(zombie)?.state !== 'Z' && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      assert.equal(readProcessInfo(zombie)?.state, 'Z', 'the background sleep became a zombie');
      assert.doesNotThrow(() => process.kill(zombie, 0), 'kill(0) still finds the zombie');
      assert.equal(isAlive(zombie), false, 'a zombie counts as gone');
      assert.equal(isAlive(4_194_304 + 1), false, 'pid beyond pid_max');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('findDescendants lists children and grandchildren, [] for a missing pid', async () => {
    const child = spawn('sh', ['-c', 'sh -c "sleep 300 & echo \\$!; wait" & wait'], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
    try {
      const sleepPid = await new Promise<number>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
      const descendants = await findDescendants(child.pid!);
      assert.ok(descendants.includes(sleepPid), `${sleepPid} in ${descendants.join(',')}`);
      assert.equal(descendants.length, 2, 'inner sh and sleep');
      assert.deepEqual(await findDescendants(4_194_304 + 1), []);
    } finally {
      await stopProcesses({ processGroups: [child.pid!] }, 0);
    }
  });

  it('findTaggedProcesses finds an orphan left after its parent was SIGKILLed; stopProcesses stops it', async () => {
    const tag = PREFIX + randomUUID();
    const child = spawn('sh', ['-c', 'setsid sleep 300 & echo $!; wait'], {
      env: { ...process.env, AGENTQ_ATTEMPT_ID: tag },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const orphan = await new Promise<number>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
    const parent = child.pid!;
    assert.ok((await findDescendants(parent)).includes(orphan), 'a descendant while the parent lives');
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    child.stdout.destroy();

    assert.equal(isAlive(orphan), true, 'the setsid sleep survived its parent');
    assert.notEqual(readProcessInfo(orphan)?.ppid, parent, 'reparented');
    assert.deepEqual(await findDescendants(parent), [], 'no longer anyone\'s descendant');
    const found = await findTaggedProcesses((t) => t === tag);
    assert.deepEqual(found, [{ pid: orphan, tag }]);
    assert.deepEqual(await findTaggedProcesses((t) => t === tag + 'x'), []);

    const report = await stopProcesses((t) => t === tag, 300);
    assert.deepEqual(report.terminated, [orphan]);
    assert.deepEqual(report.survivors, []);
    assert.equal(isAlive(orphan), false);
    assert.deepEqual(await findTaggedProcesses((t) => t === tag), []);
  });

  it('stopProcesses SIGKILLs a process that ignores SIGTERM after graceMs', async () => {
    const child = spawn('sh', ['-c', 'trap "" TERM; echo ready; sleep 300; echo done'], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
    await new Promise((resolve) => child.stdout.once('data', resolve));
    const pid = child.pid!;
    const started = Date.now();
    const report = await stopProcesses([pid], 300);
    const elapsed = Date.now() - started;
    assert.equal(isAlive(pid), false);
    assert.ok(report.killed.includes(pid), `killed ${report.killed.join(',')}`);
    assert.ok(report.killed.length === 2, 'its `sleep 300` child (also ignoring TERM) is part of its tree');
    for (const killed of report.killed) assert.equal(isAlive(killed), false);
    assert.ok(elapsed >= 290 && elapsed < 2500, `elapsed ${elapsed} ms`);
  });

  it('createdSince: the pids created after a mark are in it, older ones are not', async () => {
    const mark = markProcessCreation();
    assert.ok(mark, 'Linux with /proc of our pid namespace');
    const child = spawn('sleep', ['300'], { stdio: 'ignore' });
    try {
      const created = createdSince(mark);
      assert.ok(created, 'a few forks since the mark: the window can be told');
      assert.equal(created(child.pid!), true, 'the process spawned after the mark');
      assert.equal(created(process.pid), false, 'this process, older than the mark');
      assert.equal(created(1), false, 'init');
      assert.equal(createdSince({ ...mark, forks: mark.forks - 1_000_000 }), null, 'more forks since than half the pid cycle: unknown');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('stopProcesses with createdAfter stops a tagged setsid orphan created after the mark and reads nothing older', async () => {
    const tag = PREFIX + randomUUID();
    const before = markProcessCreation();
    const child = spawn('sh', ['-c', 'setsid sleep 300 & echo $!; wait'], {
      env: { ...process.env, AGENTQ_ATTEMPT_ID: tag },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const orphan = await new Promise<number>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    child.stdout.destroy();
    assert.equal(isAlive(orphan), true, 'the setsid sleep survived its parent');

    // A mark taken after the orphan was created: the scan reads only newer processes, so it is not found.
    const after = markProcessCreation();
    const missed = await stopProcesses({ tagged: (t) => t === tag, createdAfter: after }, 300);
    assert.deepEqual(missed.terminated, [], 'processes older than the mark are not read');
    assert.equal(isAlive(orphan), true);

    const report = await stopProcesses({ tagged: (t) => t === tag, createdAfter: before }, 300);
    assert.deepEqual(report.terminated, [orphan]);
    assert.equal(isAlive(orphan), false);
  });

  it('stopProcesses with createdAfter: the ids of a process\'s threads created after the mark are not processes of their own', async () => {
    const tag = PREFIX + randomUUID();
    const before = markProcessCreation();
    // A Node process: its threads (V8's and libuv's) take ids right after its pid, within a small creation window.
    const child = spawn(process.execPath, ['-e', 'console.log("ready"); setTimeout(() => {}, 300_000)'], {
      env: { ...process.env, AGENTQ_ATTEMPT_ID: tag },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    await new Promise((resolve) => child.stdout.once('data', resolve));
    const threads = readdirSync(`/proc/${child.pid}/task`).map(Number).filter((tid) => tid !== child.pid);
    assert.ok(threads.length > 0, 'the child runs more than one thread');
    const report = await stopProcesses({ tagged: (t) => t === tag, createdAfter: before }, 300);
    assert.deepEqual(report.terminated, [child.pid], `its thread ids (${threads.join(', ')}) are not signalled or reported`);
    assert.equal(isAlive(child.pid!), false);
  });

  it('stopProcesses resolves at once when nothing matches', async () => {
    const started = Date.now();
    const report = await stopProcesses((t) => t === PREFIX + 'nobody', 5000);
    assert.deepEqual(report, { terminated: [], killed: [], survivors: [] });
    assert.ok(Date.now() - started < 1000);
  });
});

describe('runAgentProcess', () => {
  it('runs argv without a shell, tags the env, logs output and emits spawned', async () => {
    const req = makeRequest();
    const { lines, options } = collect({
      stdin: 'from stdin\n',
      onStderrLine: (line) => stderrLines.push(line),
    });
    const stderrLines: string[] = [];
    const result = await runAgentProcess(
      req,
      ['sh', '-c', 'echo "tag=$AGENTQ_ATTEMPT_ID"; echo "cwd=$(pwd)"; cat; echo oops >&2; echo "$1"', 'sh', 'a b;$(c)'],
      options,
    );
    assert.deepEqual(result, { exitCode: 0, signal: null, stoppedFor: null, earlyReason: null });
    assert.deepEqual(lines, [`tag=${req.attemptId}`, `cwd=${req.cwd}`, 'from stdin', 'a b;$(c)']);
    assert.deepEqual(stderrLines, ['oops']);
    assert.equal(readFileSync(req.stdoutLog, 'utf8'), lines.join('\n') + '\n');
    assert.equal(readFileSync(req.stderrLog, 'utf8'), 'oops\n');
    assert.ok(spawnedPid(req.events) > 0);
  });

  it('appends to existing logs', async () => {
    const req = makeRequest();
    await runAgentProcess(req, ['echo', 'one']);
    await runAgentProcess(req, ['echo', 'two']);
    assert.equal(readFileSync(req.stdoutLog, 'utf8'), 'one\ntwo\n');
  });

  it('delivers a final line without newline and UTF-8 split across chunks', async () => {
    const req = makeRequest();
    const { lines, options } = collect();
    await runAgentProcess(req, sh(`printf 'a\\n\\nb\\n'; printf '\\303'; sleep 0.1; printf '\\251t\\nlast'`), options);
    assert.deepEqual(lines, ['a', '', 'b', 'ét', 'last']);
  });

  it('after a normal exit, stops a setsid grandchild and a background job', async () => {
    const req = makeRequest();
    let sidDiffers = false;
    const { lines, options } = collect({
      onStdoutLine: (line) => {
        if (line.startsWith('grandchild ')) {
          const info = readProcessInfo(Number(line.slice('grandchild '.length)));
          sidDiffers = info !== null && info.sid !== spawnedPid(req.events) && info.pgid !== spawnedPid(req.events);
        }
      },
    });
    const started = Date.now();
    const result = await runAgentProcess(req, sh(`${SETSID_GRANDCHILD} sleep 300 & echo "job $!"; exit 0`), options);
    const grandchild = grandchildPid(lines);
    const job = Number(lines.find((l) => l.startsWith('job '))!.slice(4));
    assert.deepEqual(result, { exitCode: 0, signal: null, stoppedFor: null, earlyReason: null });
    assert.ok(sidDiffers, 'the grandchild ran in its own session and group');
    assert.equal(isAlive(grandchild), false, 'setsid grandchild gone');
    assert.equal(isAlive(job), false, 'background job gone');
    assert.ok(Date.now() - started < 2500);
  });

  it('when the agent is SIGKILLed from inside, the escaped grandchild is still stopped', async () => {
    const req = makeRequest();
    const { lines, options } = collect();
    const result = await runAgentProcess(req, sh(`${SETSID_GRANDCHILD} kill -9 $$`), options);
    assert.equal(result.exitCode, null);
    assert.equal(result.signal, 'SIGKILL');
    assert.equal(result.stoppedFor, null, 'we did not send that signal');
    assert.equal(isAlive(grandchildPid(lines)), false);
  });

  it('timeout: SIGKILLs a tree that ignores SIGTERM after graceMs', async () => {
    const req = makeRequest({ deadline: Date.now() + 300 });
    const { lines, options } = collect({ graceMs: 300 });
    const started = Date.now();
    const result = await runAgentProcess(req, sh(`trap "" TERM; ${SETSID_GRANDCHILD} sleep 300 & echo "job $!"; wait`), options);
    const elapsed = Date.now() - started;
    assert.equal(result.stoppedFor, 'timeout');
    assert.equal(result.signal, 'SIGKILL', 'SIGTERM was ignored');
    assert.ok(elapsed >= 550 && elapsed < 2500, `elapsed ${elapsed} ms`);
    assert.equal(isAlive(spawnedPid(req.events)), false);
    assert.equal(isAlive(grandchildPid(lines)), false);
    assert.equal(isAlive(Number(lines.find((l) => l.startsWith('job '))!.slice(4))), false);
  });

  it('cancel: aborting request.signal stops the tree', async () => {
    const controller = new AbortController();
    const req = makeRequest({ signal: controller.signal });
    const { lines, options } = collect({
      onStdoutLine: (line) => {
        if (line.startsWith('grandchild ')) controller.abort('shutdown');
      },
    });
    const result = await runAgentProcess(req, sh(`${SETSID_GRANDCHILD} sleep 300`), options);
    assert.equal(result.stoppedFor, 'cancel');
    assert.equal(result.signal, 'SIGTERM');
    assert.equal(isAlive(grandchildPid(lines)), false);
  });

  it('an already aborted signal or past deadline spawns nothing', async () => {
    const controller = new AbortController();
    controller.abort();
    const marker = join(tmpRoot, `marker-${randomUUID()}`);
    const req = makeRequest({ signal: controller.signal });
    const result = await runAgentProcess(req, ['touch', marker]);
    assert.deepEqual(result, { exitCode: null, signal: null, stoppedFor: 'cancel', earlyReason: null });
    assert.deepEqual(req.events, []);
    const late = makeRequest({ deadline: Date.now() - 1 });
    assert.equal((await runAgentProcess(late, ['touch', marker])).stoppedFor, 'timeout');
    assert.throws(() => readFileSync(marker), /ENOENT/);
  });

  it('early stop from onStdoutLine: first reason wins, lines after the stop may still come', async () => {
    const req = makeRequest({ deadline: Date.now() + 400 });
    const { lines, options } = collect({
      onStdoutLine: (line, stop) => {
        if (line === 'line 3') stop('saw line 3');
        if (line === 'line 4') stop('saw line 4');
      },
    });
    // Ignores SIGTERM so the deadline passes while it is still being stopped.
    const result = await runAgentProcess(
      req,
      sh('trap "" TERM; i=0; while [ $i -lt 100 ]; do echo "line $i"; i=$((i+1)); sleep 0.02; done'),
      { ...options, graceMs: 500 },
    );
    assert.equal(result.stoppedFor, 'early');
    assert.equal(result.earlyReason, 'saw line 3');
    assert.ok(lines.includes('line 4'), 'lines kept coming during the grace period');
    assert.ok(!lines.includes('line 99'), 'but it was stopped');
    assert.equal(result.signal, 'SIGKILL');
  });

  it('a throwing line handler stops the run early instead of crashing', async () => {
    const req = makeRequest();
    const result = await runAgentProcess(req, sh('echo boom; sleep 300'), {
      graceMs: 300,
      onStdoutLine: () => {
        throw new Error('bad parser');
      },
    });
    assert.equal(result.stoppedFor, 'early');
    assert.equal(result.earlyReason, 'stdout line handler threw: bad parser');
  });

  it('spawn failure rejects with AgentQueueError spawn_failed naming the command', async () => {
    const req = makeRequest();
    await assert.rejects(runAgentProcess(req, ['agentq-no-such-command-xyz', '--flag']), (err: unknown) => {
      assert.ok(err instanceof AgentQueueError);
      assert.equal(err.code, 'spawn_failed');
      assert.match(err.message, /cannot start "agentq-no-such-command-xyz": ENOENT/);
      return true;
    });
    assert.match(readFileSync(req.stderrLog, 'utf8'), /agentq: cannot start "agentq-no-such-command-xyz"/);
    assert.deepEqual(req.events, []);

    const missingCwd = makeRequest();
    missingCwd.cwd = join(missingCwd.cwd, 'does-not-exist');
    await assert.rejects(runAgentProcess(missingCwd, ['true']), /working directory .*does-not-exist does not exist/);
    await assert.rejects(runAgentProcess(makeRequest(), []), /empty command/);
  });

  it('a log that cannot be opened is a spawn failure naming it, and nothing is started', async () => {
    const req = makeRequest();
    // A file where the log folder should be: the open fails with ENOTDIR, the folder cannot be made.
    writeFileSync(join(req.cwd, 'logs'), 'not a folder');
    const marker = join(req.cwd, 'ran');
    await assert.rejects(runAgentProcess(req, ['touch', marker]), (err: unknown) => {
      assert.ok(err instanceof AgentQueueError);
      assert.equal(err.code, 'spawn_failed');
      assert.match(err.message, /cannot start "touch": cannot open log .*stdout\.log/);
      return true;
    });
    assert.equal(existsSync(marker), false, 'the command did not run');
    assert.deepEqual(req.events, []);
  });
});
