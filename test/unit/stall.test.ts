/**
 * The stall watchdog's parts on real processes: a tree's work (CPU time, bytes written) read
 * from /proc, and the ActivityWatch that calls a stall on a quiet agent but not on one
 * whose tool command keeps printing, nor on one whose output grows.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { sampleTree, treeWorked } from '../../src/process/activity.ts';
import { ActivityWatch, stallDetail, stallNote } from '../../src/scheduler/stall.ts';

const children: ChildProcess[] = [];
/** An agent stand-in: `sh -c SCRIPT` whose child does the work (as a CLI's tool command does). */
function agent(script: string, stdout: number | 'ignore' = 'ignore'): ChildProcess {
  const child = spawn('sh', ['-c', `sh -c '${script}'; true`], { detached: true, stdio: ['ignore', stdout, 'ignore'] });
  children.push(child);
  return child;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterEach(() => {
  for (const c of children.splice(0)) {
    try {
      process.kill(-c.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

describe('process tree work', () => {
  it('an idle tree (sleep) did no work; one printing or computing did; the root is left out unless asked', async () => {
    const idle = agent('sleep 30');
    const printing = agent('while :; do echo tick; sleep 0.1; done > /dev/null');
    const computing = agent('while :; do :; done');
    await sleep(300);
    const before = await Promise.all([idle, printing, computing].map((c) => sampleTree(c.pid!)));
    await sleep(1500);
    const after = await Promise.all([idle, printing, computing].map((c) => sampleTree(c.pid!)));
    assert.ok(after[0]!.size >= 2, 'the descendants are found (sh, sleep)');
    assert.deepEqual(
      after.map((a, i) => treeWorked(before[i]!, a)),
      [false, true, true],
    );
    const withRoot = await sampleTree(idle.pid!, { includeRoot: true });
    assert.equal(withRoot.size, after[0]!.size + 1);
    assert.equal((await sampleTree(2 ** 22 + 7)).size, 0, 'a pid that does not exist: an empty sample');
  });
});

describe('ActivityWatch', () => {
  it('calls a stall once on a quiet tree, with how long it was quiet, and stops watching', async () => {
    const quiet = agent('sleep 30');
    let calls: number[] = [];
    const watch = new ActivityWatch({ timeoutMs: 800, logs: [], onStall: (ms) => calls.push(ms) });
    watch.setPid(quiet.pid!);
    watch.start();
    const end = Date.now() + 10_000;
    while (calls.length === 0 && Date.now() < end) await sleep(50);
    assert.equal(calls.length, 1, 'the stall was called');
    assert.ok(calls[0]! >= 800, `quiet for ${calls[0]} ms`);
    await sleep(1000);
    assert.equal(calls.length, 1, 'once');
    calls = [];
    watch.stop();
  });

  it('does not call a stall while a tool command prints (the agent itself silent), nor while the logs grow', async () => {
    const stalls: string[] = [];
    const printing = agent('for i in $(seq 40); do echo $i; sleep 0.1; done > /dev/null; sleep 30');
    const byTree = new ActivityWatch({ timeoutMs: 1500, logs: [], onStall: () => stalls.push('tree') });
    byTree.setPid(printing.pid!);
    byTree.start();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-stall-'));
    const log = path.join(dir, 'out.log');
    const fd = fs.openSync(log, 'a');
    const talking = agent('while :; do echo line; sleep 0.1; done', fd);
    fs.closeSync(fd);
    const byLog = new ActivityWatch({ timeoutMs: 1500, logs: [log], onStall: () => stalls.push('log') });
    byLog.start();
    await sleep(3000);
    assert.deepEqual(stalls, [], 'both kept working for twice the stall time');
    assert.ok(byLog.lastActivityAt() > Date.now() - 1000, 'the log grew lately');
    byLog.stop();
    process.kill(-talking.pid!, 'SIGKILL');
    // The printing command ends (then only sleeps): now the tree is quiet and stalls.
    const end = Date.now() + 15_000;
    while (stalls.length === 0 && Date.now() < end) await sleep(50);
    assert.deepEqual(stalls, ['tree']);
  });

  it('counts the agent process\'s own work only when asked (agent: command)', async () => {
    const stalls: string[] = [];
    // The root computes; its only child sleeps.
    const busy = spawn('sh', ['-c', 'sleep 30 & while :; do :; done'], { detached: true, stdio: 'ignore' });
    children.push(busy);
    const own = new ActivityWatch({ timeoutMs: 1000, logs: [], ownProcessIsWork: true, onStall: () => stalls.push('own') });
    const cli = new ActivityWatch({ timeoutMs: 1000, logs: [], onStall: () => stalls.push('cli') });
    for (const w of [own, cli]) {
      w.setPid(busy.pid!);
      w.start();
    }
    const end = Date.now() + 10_000;
    while (!stalls.includes('cli') && Date.now() < end) await sleep(50);
    await sleep(500);
    own.stop();
    assert.deepEqual(stalls, ['cli'], 'an agent CLI ticking on its own is not working; a command is');
  });

  it('words the stall and the note that resumes the session', () => {
    assert.equal(stallDetail(5300, 5000), 'no activity for 5.3s (stall_timeout 5.0s: no output, stream event or work in its tool commands)');
    const note = stallNote({ number: 2, reason: 'stalled: no activity for 5.3s' });
    assert.match(note, /^Note from agent-queue: your previous run \(attempt 2\) stopped responding and was stopped \(stalled: no activity for 5\.3s\)\./);
  });
});
