/**
 * The output the store keeps of each attempt, end to end with the real `bin/agentq`: two
 * checkouts share one store (a SQLite file both name in `store:`); what the first ran, the
 * second reads with `agentq logs` and `agentq show` (from the store's last 64 KiB, said so on
 * stderr), as does the first once its log files are removed; `logs -f` in the second waits
 * for an attempt running in the first and prints its tail once it ends.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { AGENTQ, agentq, dropTask, makeProject } from '../fixtures/project.ts';
import { waitFor } from '../fixtures/procs.ts';

/** Two checkouts (project folders) on one store. */
function twoCheckouts() {
  const store = `sqlite:${path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-shared-')), 'agentq.db')}`;
  const a = makeProject({ store, poll_interval: '100ms' });
  const b = makeProject({ store, poll_interval: '100ms' });
  return { a, b, pa: ['--project', a.root], pb: ['--project', b.root] };
}

/** What `seq 1 30000` prints: 168,894 bytes. */
const SEQ = `${Array.from({ length: 30_000 }, (_, i) => i + 1).join('\n')}\n`;
const HOST = os.hostname();
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('attempt output kept in the store', () => {
  it('logs and show work from a second checkout, and from the first once its logs are removed', async () => {
    const { a, pa, pb } = twoCheckouts();
    dropTask(a, 'big', { agent: 'command', command: 'seq 1 30000; echo oops >&2' }, 'x');
    dropTask(a, 'bad', { agent: 'command', command: "printf 'h\\303\\251llo \\342\\234\\223\\n'; echo 'bad thing' >&2; exit 3" }, 'x');
    const run = await agentq(['run', '--once', ...pa], {}, 60_000);
    assert.equal(run.code, 1, run.stderr); // `bad` fails

    // The first checkout reads its own files, whole.
    const own = await agentq(['logs', 'big', '--attempt', '1', ...pa]);
    assert.equal(own.code, 0, own.stderr);
    assert.equal(own.stdout, SEQ);
    assert.equal(own.stderr, '');

    // The second has no files: the store's last 64 KiB, announced on stderr.
    const tail = await agentq(['logs', 'big', '--attempt', '1', ...pb]);
    assert.equal(tail.code, 0, tail.stderr);
    assert.equal(tail.stdout, SEQ.slice(-65_536));
    assert.equal(tail.stderr, `agentq: attempt 1's stdout is not on this machine; printing the store's copy: the last 64 KiB of 165 KiB (truncated), from this host (${HOST})\n`);
    const err = await agentq(['logs', 'bad', '--attempt', '1', '--stderr', ...pb]);
    assert.equal(err.stdout, 'bad thing\n');
    assert.match(err.stderr, /^agentq: attempt 1's stderr is not on this machine; printing the store's copy: all 10 B, from this host/);
    const all = await agentq(['logs', 'bad', ...pb]);
    assert.equal(
      all.stdout,
      `==> attempt 1 stdout (the store's copy: all 11 B, from this host (${HOST})) <==\nh\u00e9llo \u2713\n==> attempt 1 stderr (the store's copy: all 10 B, from this host (${HOST})) <==\nbad thing\n`,
    );
    const followed = await agentq(['logs', 'bad', '-f', ...pb]);
    assert.equal(followed.code, 0, followed.stderr);
    assert.equal(followed.stdout, '==> attempt 1 stdout <==\nh\u00e9llo \u2713\n');

    // show: the result from the store, each attempt with its host.
    const show = await agentq(['show', 'big', ...pb]);
    assert.match(show.stdout, /--- result ---\n1\n2\n3\n/);
    assert.match(show.stdout, new RegExp(`#  OUTCOME +AGENT +MODEL +HOST.*\\n1  completed +command +${escape(HOST)} `));
    const json = JSON.parse((await agentq(['show', 'bad', '--json', ...pb])).stdout) as { attemptHistory: Array<{ host: string }> };
    assert.deepEqual(json.attemptHistory.map((x) => x.host), [HOST]);

    // The first checkout with its log files removed reads the store too.
    fs.rmSync(a.logs, { recursive: true, force: true });
    const removed = await agentq(['logs', 'big', '--attempt', '1', ...pa]);
    assert.equal(removed.stdout, SEQ.slice(-65_536));
    assert.match(removed.stderr, /^agentq: attempt 1's stdout is not on this machine; printing the store's copy: the last 64 KiB of 165 KiB \(truncated\)/);

    // Bad flags: usage and exit 2; an attempt the task does not have: exit 1, named.
    const zero = await agentq(['logs', 'big', '--attempt', '0', ...pb]);
    assert.equal(zero.code, 2);
    assert.match(zero.stderr, /--attempt: "0" is not an attempt number/);
    const missing = await agentq(['logs', 'big', '--attempt', '5', ...pb]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /task \d+ has no attempt 5 \(it has 1 to 1\)/);
  });

  it('logs -f in another checkout waits for an attempt running in the first and prints its tail once it ends', async () => {
    const { a, b, pa, pb } = twoCheckouts();
    const go = path.join(a.root, 'go');
    dropTask(a, 'slow', { agent: 'command', command: `echo started; while [ ! -e '${go}' ]; do sleep 0.05; done; echo finished` }, 'x');
    const runner = spawn(AGENTQ, ['run', '--once', ...pa], { stdio: 'ignore' });
    const ran = new Promise((r) => runner.once('exit', r));
    let follower: ReturnType<typeof spawn> | null = null;
    try {
      await waitFor(() => fs.existsSync(path.join(a.logs, '1-slow', '1.stdout.log')), 30_000, 'the task to start in the first checkout');
      follower = spawn(AGENTQ, ['logs', 'slow', '-f', ...pb]);
      let stdout = '';
      let stderr = '';
      follower.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      follower.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((r) => follower!.once('exit', r));
      await waitFor(() => stderr.includes('not in this checkout'), 30_000, 'the follower to say where the attempt runs');
      assert.equal(stdout, '==> attempt 1 stdout <==\n', 'nothing of the live log yet');
      assert.equal(fs.existsSync(path.join(b.logs, '1-slow')), false);
      fs.writeFileSync(go, '');
      assert.equal(await exited, 0, stderr);
      assert.equal(stdout, '==> attempt 1 stdout <==\nstarted\nfinished\n');
      assert.match(stderr, /^agentq: attempt 1's stdout is not in this checkout: the attempt runs in another checkout on this host .*\nagentq: attempt 1's stdout is not on this machine; printing the store's copy: all 17 B/);
    } finally {
      fs.writeFileSync(go, '');
      follower?.kill('SIGTERM');
      await ran;
    }
  });
});
