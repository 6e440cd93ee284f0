/**
 * `agentq run` takes in a file renamed into the inbox at once (inotify), not after
 * `inbox_settle`: with a 30 s settle time and a 60 s poll, only the watch can bring it in
 * within the wait below.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { AGENTQ, hasInotifywait, listDir, makeProject, workersRegistered } from '../fixtures/project.ts';
import { waitFor } from '../fixtures/procs.ts';

const noInotify = !hasInotifywait() && 'inotifywait (Debian inotify-tools) is not installed; .ci/run installs it';

/** Whether an `inotifywait` watching `dir` runs (the dispatcher's inbox watch). */
function watching(dir: string): boolean {
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (path.basename(argv[0] ?? '') === 'inotifywait' && argv.includes(dir)) return true;
    } catch {
      // gone
    }
  }
  return false;
}

describe('agentq run: the inbox watch', { skip: noInotify }, () => {
  it('runs a task file renamed into the inbox without waiting inbox_settle (30s)', async () => {
    const paths = makeProject({ poll_interval: '60s', inbox_settle: '30s' });
    const child = spawn(AGENTQ, ['run', '--project', paths.root], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      await waitFor(() => workersRegistered(paths), 15_000, 'the dispatcher to register');
      await waitFor(() => watching(paths.inbox), 15_000, 'the inbox watch to start');
      await new Promise((r) => setTimeout(r, 500)); // inotifywait sets up its watch
      const tmp = path.join(paths.inbox, '.quick.md.tmp');
      fs.writeFileSync(tmp, '---\nagent: command\ncommand: echo ok\n---\nx\n');
      fs.renameSync(tmp, path.join(paths.inbox, 'quick.md'));
      await waitFor(() => listDir(paths.done).includes('quick.md'), 15_000, 'the task to complete (taken in without the 30 s settle wait)');
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
    }
  });
});
