/**
 * Detectors end to end with real `agentq run` and `agentq status` processes: a recurring file
 * with `detect:` prints three good lines and a bad one; the dispatcher runs the three tasks and
 * reports the bad line by number, and `agentq status` (another process) shows it from the
 * store; the next tick takes in nothing twice.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { agentq, agentqJson, makeProject } from '../fixtures/project.ts';

/** Sets the detector's last tick back to `at`, so the next `run --once` runs it (a file first seen only records the time). */
async function dueNow(dir: string, name: string, at: number) {
  const store = new SqliteStore(path.join(dir, 'agentq.db'));
  store.db.prepare('INSERT INTO recurring (name, last_tick) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET last_tick = excluded.last_tick').run(name, at);
  await store.close();
}

describe('detectors', () => {
  it('runs the tasks of the good lines, reports the bad one in the output and in agentq status, and takes nothing in twice', async () => {
    const paths = makeProject();
    fs.mkdirSync(paths.recurring, { recursive: true });
    const lines = [
      { name: 'fix-101', prompt: 'run 101 failed', dedup_key: 'ci-101', command: 'echo fixed 101' },
      { name: 'fix-102', prompt: 'run 102 failed', dedup_key: 'ci-102', command: 'echo fixed 102' },
      { name: 'fix-103', prompt: 'run 103 failed', dedup_key: 'ci-103', command: 'echo fixed 103', priority: 'sometime' },
      { name: 'fix-104', prompt: 'run 104 failed', dedup_key: 'ci-104', command: 'echo fixed 104' },
    ];
    const script = path.join(paths.root, 'find-failures.sh');
    fs.writeFileSync(script, `#!/bin/sh\necho detector ran >> detector.log\n${lines.map((l) => `echo '${JSON.stringify(l)}'`).join('\n')}\n`, { mode: 0o755 });
    fs.writeFileSync(path.join(paths.recurring, 'ci.md'), `---\n${YAML.stringify({ schedule: '* * * * *', detect: './find-failures.sh', agent: 'command', tags: ['ci'] })}---\nFix the CI failure below.\n`);
    await dueNow(paths.dir, 'ci', Date.now() - 10 * 60_000);

    const r = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /detector  ci: 4 line\(s\), 3 new task\(s\), 0 known, 1 skipped\n/);
    assert.match(r.stderr, /detector  ci line 3 skipped: priority: "sometime" is not one of critical, high, default, low\n/);
    const tasks = await agentqJson(['list', '--json', '--project', paths.root]);
    assert.deepEqual(
      (tasks as Array<{ name: string; state: string; tags: string[]; result: string }>).map((t) => [t.name, t.state, t.tags, t.result]),
      // agentq list: newest first
      [
        ['fix-104', 'completed', ['ci'], 'fixed 104'],
        ['fix-102', 'completed', ['ci'], 'fixed 102'],
        ['fix-101', 'completed', ['ci'], 'fixed 101'],
      ],
    );

    const status = await agentq(['status', '--project', paths.root]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /detectors \(newest run of each\):\nci {2}ran \S+ \(.* ago\): 4 line\(s\): 3 new task\(s\), 0 known, 1 skipped\n {2}line 3: priority: "sometime" is not one of critical, high, default, low/);
    const json = await agentqJson(['status', '--json', '--project', paths.root]);
    assert.deepEqual(json.detectors[0].problems, [{ line: 3, reason: 'priority: "sometime" is not one of critical, high, default, low' }]);

    // The next tick: the detector runs again and prints the same lines; nothing is taken twice.
    await dueNow(paths.dir, 'ci', Date.now() - 5 * 60_000);
    const again = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /detector  ci: 4 line\(s\), 0 new task\(s\), 3 known, 1 skipped\n/);
    assert.equal(fs.readFileSync(path.join(paths.root, 'detector.log'), 'utf8'), 'detector ran\ndetector ran\n');
    assert.equal((await agentqJson(['list', '--json', '--project', paths.root])).length, 3);
  });

  it('reports a detector that fails in agentq status and creates nothing', async () => {
    const paths = makeProject();
    fs.mkdirSync(paths.recurring, { recursive: true });
    const detect = `echo '${JSON.stringify({ prompt: 'half' })}'; echo "gh: HTTP 502" >&2; exit 3`;
    fs.writeFileSync(path.join(paths.recurring, 'flaky.md'), `---\n${YAML.stringify({ schedule: '* * * * *', detect, agent: 'command' })}---\n`);
    await dueNow(paths.dir, 'flaky', Date.now() - 10 * 60_000);
    const r = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /detector  flaky failed, nothing taken: detect: exited with code 3: gh: HTTP 502\n/);
    const status = await agentqJson(['status', '--json', '--project', paths.root]);
    assert.deepEqual(
      status.detectors.map((d: { name: string; exitCode: number; error: string; created: number }) => [d.name, d.exitCode, d.error, d.created]),
      [['flaky', 3, 'detect: exited with code 3: gh: HTTP 502', 0]],
    );
    assert.equal(status.counts.queued + status.counts.completed, 0);
  });
});
