/**
 * `agentq list` at scale, through the real `bin/agentq` on a real SQLite file: 130k tasks
 * (one made by the store, the rest copied from it by one SQL statement: `projectWithTasks`).
 * Before paging, `list` spread every row into `Math.max` ("Maximum call stack size exceeded"
 * at ~130k) and read and printed every task at once.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import type { Task } from '../../src/core/types.ts';
import type { Store } from '../../src/store/store.ts';
import { AGENTQ, agentq, projectWithTasks } from '../fixtures/project.ts';

/** The ids of a `list` table's rows (the header left out). */
const tableIds = (stdout: string) =>
  stdout
    .trimEnd()
    .split('\n')
    .slice(1)
    .map((line) => Number(line.split(/\s+/)[0]));

describe('agentq list at 130k tasks', () => {
  const N = 130_000;
  let root: string;
  let store: Store;
  before(async () => {
    const made = await projectWithTasks(N);
    ({ store } = made);
    root = made.paths.root;
  });
  after(() => store.close());

  it('--all prints every task, newest first, each once', async () => {
    const r = await agentq(['list', '--all', '--project', root]);
    assert.equal(r.code, 0, r.stderr.slice(0, 2000));
    assert.equal(r.stderr, '');
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^ID\s+STATE\s+PRIORITY\s+AGENT\s+NAME/);
    const ids = tableIds(r.stdout);
    assert.equal(ids.length, N);
    assert.ok(
      ids.every((id, i) => id === N - i),
      'ids N … 1',
    );
    assert.match(lines[1]!, new RegExp(`^${N}\\s+queued\\s+default\\s+command\\s+t-${N}\\b`));
  });

  it('without --all prints the newest 100 and says how many there are', async () => {
    const r = await agentq(['list', '--project', root]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      tableIds(r.stdout),
      Array.from({ length: 100 }, (_, i) => N - i),
    );
    assert.equal(r.stderr, `agentq: the newest 100 of ${N} tasks shown; --limit N or --all for more\n`);
    const three = await agentq(['list', '--limit', '3', '--project', root]);
    assert.deepEqual(tableIds(three.stdout), [N, N - 1, N - 2]);
  });

  it('--all ends quietly (exit 0) when its reader goes away', async () => {
    const child = spawn(AGENTQ, ['list', '--all', '--project', root]);
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    await new Promise((resolve) => child.stdout.once('data', resolve));
    child.stdout.destroy();
    const code = await new Promise((resolve) => child.once('close', resolve));
    assert.equal(code, 0, stderr);
    assert.equal(stderr, '');
  });
});

describe('agentq list pages', () => {
  let root: string;
  let store: Store;
  // 1234 tasks: pages of 500 end inside the output; every 3rd completed.
  before(async () => {
    const made = await projectWithTasks(1234, 3);
    ({ store } = made);
    root = made.paths.root;
  });
  after(() => store.close());

  it('--json --all is the JSON array of every task, newest first, as the store has them', async () => {
    const r = await agentq(['list', '--json', '--all', '--project', root]);
    assert.equal(r.code, 0, r.stderr);
    const expected = await store.listTasks({ order: 'desc' });
    assert.equal(expected.length, 1234);
    assert.equal(r.stdout, `${JSON.stringify(expected, null, 2)}\n`, 'the same text as one JSON.stringify');
  });

  it('--jsonl --limit N crosses pages; --state keeps one state across pages', async () => {
    const r = await agentq(['list', '--jsonl', '--limit', '700', '--project', root]);
    assert.equal(r.code, 0, r.stderr);
    const ids = r.stdout.trimEnd().split('\n').map((line) => (JSON.parse(line) as Task).id);
    assert.deepEqual(
      ids,
      Array.from({ length: 700 }, (_, i) => 1234 - i),
    );
    assert.equal(r.stderr, 'agentq: the newest 700 of 1234 tasks shown; --limit N or --all for more\n');
    const done = await agentq(['list', '--jsonl', '--all', '--state', 'completed', '--project', root]);
    const completed = done.stdout.trimEnd().split('\n').map((line) => JSON.parse(line) as Task);
    assert.equal(completed.length, 411);
    assert.ok(completed.every((t, i) => t.state === 'completed' && t.id === 1233 - 3 * i));
    assert.equal(done.stderr, '');
  });

  it('an empty selection: "(no tasks)", [] and nothing', async () => {
    assert.equal((await agentq(['list', '--state', 'blocked', '--project', root])).stdout, '(no tasks)\n');
    assert.equal((await agentq(['list', '--state', 'blocked', '--json', '--project', root])).stdout, '[]\n');
    assert.equal((await agentq(['list', '--state', 'blocked', '--jsonl', '--project', root])).stdout, '');
  });

  it('refuses a bad --limit, --limit with --all, --json with --jsonl: usage, exit 2', async () => {
    for (const [args, message] of [
      [['--limit', '0'], /^agentq: --limit: "0" is not a whole number ≥ 1\n/],
      [['--limit', 'ten'], /^agentq: --limit: "ten" is not a whole number ≥ 1\n/],
      [['--limit', '5', '--all'], /^agentq: --limit: not with --all/],
      [['--json', '--jsonl'], /^agentq: --json and --jsonl: give one of them\n/],
    ] as const) {
      const r = await agentq(['list', ...args, '--project', root]);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, message);
      assert.match(r.stderr, /Usage: agentq/);
    }
  });
});
