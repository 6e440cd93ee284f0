/**
 * Detectors with a real SQLite store and real `sh` processes, on a controlled clock: the
 * lines a detector prints become tasks (the file's fields as defaults), a bad line is skipped
 * and reported with its number, a key is taken in once across runs, a run that fails or
 * times out creates nothing, and one dispatcher runs each tick.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { parseConfig } from '../../src/config/config.ts';
import { fireDetectors, isDetectorFile, readDetectorFile, readDetectorOutput } from '../../src/intake/detect.ts';
import { fireRecurring } from '../../src/intake/recurring.ts';
import { isAlive } from '../../src/process/process-tree.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { makeProject } from '../fixtures/project.ts';

const config = parseConfig({ default_retries: 1, kill_grace: 200 });
const T0 = Date.parse('2026-11-23T10:02:00Z');
const MIN = 60_000;

/** A project with recurring files (frontmatter, body) and a store; `fire(at)` runs the detectors at that time. */
function setup(files: Record<string, [Record<string, unknown>, string]>, env: Record<string, string | undefined> = process.env) {
  const paths = makeProject();
  fs.mkdirSync(paths.recurring, { recursive: true });
  for (const [name, [fm, body]] of Object.entries(files)) fs.writeFileSync(path.join(paths.recurring, name), `---\n${YAML.stringify(fm)}---\n${body}`);
  const db = path.join(paths.dir, 'agentq.db');
  const store = new SqliteStore(db);
  const fire = (at: number, s = store) => fireDetectors({ paths, store: s, config, env, now: () => at });
  return { paths, store, fire, second: () => new SqliteStore(db) };
}

/** A shell command printing `lines` (each as given), one per line. */
const printing = (...lines: string[]) => lines.map((l) => `printf '%s\\n' '${l.replace(/'/g, `'\\''`)}'`).join('; ');

const GOOD = [
  JSON.stringify({ name: 'fix-ci-101', prompt: 'CI run 101 failed on main.', dedup_key: 'ci-101', priority: 'high' }),
  JSON.stringify({ prompt: 'CI run 102 failed on main.', dedup_key: 'ci-102', tags: ['ci'] }),
];

describe('detectors', () => {
  it('makes a task of each good line with the file as defaults, and skips a bad line reporting its number and reason', async () => {
    const { store, fire } = setup({
      'ci.md': [
        { schedule: '*/5 * * * *', timezone: 'UTC', detect: printing(GOOD[0]!, '{"prompt": "oops", ', '', GOOD[1]!, JSON.stringify({ prompt: 'Stale TODO in a.ts' })), priority: 'low', agent: 'command', owner: 'ops' },
        'Investigate and fix what is described below.\n',
      ],
    });
    assert.deepEqual((await fire(T0)).runs, [], 'first sight only records the time');
    const { runs, problems } = await fire(T0 + 5 * MIN);
    assert.deepEqual(problems, []);
    assert.equal(runs.length, 1);
    const { run, created } = runs[0]!;
    assert.deepEqual(
      created.map((t) => [t.name, t.priority, t.agent, t.dedupKey, t.tags, t.source]),
      [
        ['fix-ci-101', 'high', 'command', 'ci-101', [], 'detector'],
        ['ci-run-102-failed-on-main', 'low', 'command', 'ci-102', ['ci'], 'detector'],
        ['stale-todo-in-a-ts', 'low', 'command', null, [], 'detector'],
      ],
    );
    assert.equal(created[0]!.prompt, 'Investigate and fix what is described below.\n\nCI run 101 failed on main.');
    assert.deepEqual(created[0]!.extra, { owner: 'ops', detector: 'ci', tick: '2026-11-23T10:05:00.000Z' });
    assert.match(run.problems[0]?.reason ?? '', /^not JSON: Expected double-quoted property name/);
    assert.deepEqual({ ...run, durationMs: 0, problems: run.problems.map((p) => p.line) }, {
      name: 'ci',
      tick: Date.parse('2026-11-23T10:05:00Z'),
      ranAt: T0 + 5 * MIN,
      durationMs: 0,
      exitCode: 0,
      error: null,
      problems: [2],
      lines: 4,
      created: 3,
      known: 0,
    });
    assert.deepEqual(await store.listDetectorRuns(), [{ ...run, durationMs: (await store.listDetectorRuns())[0]!.durationMs }], 'the run is in the store for agentq status');
  });

  it('takes a key in once: the next tick creates nothing for the lines it printed before, with or without dedup_key', async () => {
    const { store, fire } = setup({ 'ci.md': [{ schedule: '* * * * *', detect: printing(...GOOD, '{"prompt": "no key"}'), agent: 'command' }, ''] });
    await fire(T0);
    assert.equal((await fire(T0 + MIN)).runs[0]!.created.length, 3);
    // The tasks are still queued, or long done: either way nothing new.
    const again = (await fire(T0 + 2 * MIN)).runs[0]!;
    assert.deepEqual([again.created.length, again.run.known, again.run.lines], [0, 3, 3]);
    assert.equal((await store.listTasks()).length, 3);
  });

  it('reports every kind of bad line by number and takes the rest', async () => {
    const { paths, fire } = setup({
      'mixed.md': [
        {
          schedule: '* * * * *',
          agent: 'command',
          detect: printing(
            '[1, 2]',
            '{"prompt": "x", "colour": "red"}',
            '{"prompt": "x", "priority": "urgent"}',
            '{"title": "no prompt anywhere"}',
            GOOD[0]!,
            JSON.stringify({ prompt: 'same key', dedup_key: 'ci-101' }),
            '{"prompt": "after a missing task", "depends_on": ["nope"]}',
            '{"prompt": "fine", "name": "fine"}',
          ),
        },
        '',
      ],
    });
    await fire(T0);
    const { run, created } = (await fire(T0 + MIN)).runs[0]!;
    assert.deepEqual(created.map((t) => t.name), ['fix-ci-101', 'fine']);
    assert.deepEqual(
      run.problems.map((p) => [p.line, p.reason.replace(/ \(known: .*\)$/, '')]),
      [
        [1, 'not a JSON object of task fields'],
        [2, 'colour: unknown field'],
        [3, 'priority: "urgent" is not one of critical, high, default, low'],
        [4, 'prompt: missing (the line has none and the detector file no body)'],
        [6, 'dedup_key: "ci-101" is the key of line 5 already'],
        [7, 'depends_on: "nope" names no task in this project'],
      ],
    );
    assert.ok(fs.existsSync(path.join(paths.logs, 'detectors', 'mixed.stdout.log')), 'the output is logged');
  });

  it('creates nothing from a run that fails or times out, and says why', async () => {
    const { store, fire } = setup({
      'failing.md': [{ schedule: '* * * * *', agent: 'command', detect: `${printing(GOOD[0]!)}; echo "gh: not logged in" >&2; exit 4` }, ''],
      'slow.md': [{ schedule: '* * * * *', agent: 'command', detect_timeout: '1s', detect: `${printing(GOOD[1]!)}; sleep 60 & echo $! > slow.pid; wait` }, ''],
    });
    await fire(T0);
    const { runs } = await fire(T0 + MIN);
    assert.deepEqual(
      runs.map((r) => [r.run.name, r.run.exitCode, r.run.error, r.created.length]),
      [
        ['failing', 4, 'detect: exited with code 4: gh: not logged in', 0],
        ['slow', null, 'detect: timed out after 1000 ms (detect_timeout); stopped', 0],
      ],
    );
    assert.deepEqual(await store.listTasks(), [], 'nothing half-created');
    assert.deepEqual(await store.knownDetectorKeys('failing', ['ci-101']), [], 'its keys are not taken: the next run may take them');
    const pid = Number(fs.readFileSync(path.join(path.dirname(store.db.name), '..', 'slow.pid'), 'utf8'));
    assert.equal(isAlive(pid), false, "the detector's processes are gone");
  });

  it("runs with an agent's environment, never agentq's token, and once per tick across dispatchers", async () => {
    const { paths, store, fire, second } = setup(
      { 'env.md': [{ schedule: '* * * * *', agent: 'command', detect: 'echo run >> runs.log; printf \'{"prompt": "token=[%s] detector=%s"}\\n\' "$AGENTQ_TOKEN" "$AGENTQ_DETECTOR"' }, ''] },
      { ...process.env, AGENTQ_TOKEN: 'secret' },
    );
    await fire(T0);
    const other = second();
    const [a, b] = await Promise.all([fire(T0 + MIN), fire(T0 + MIN, other)]);
    assert.equal(a.runs.length + b.runs.length, 1);
    assert.equal(fs.readFileSync(path.join(paths.root, 'runs.log'), 'utf8'), 'run\n');
    assert.deepEqual((await store.listTasks()).map((t) => t.prompt), ['token=[] detector=env']);
  });

  it('leaves detector files to detectors and reports a bad one naming the field; recurring files are unaffected', async () => {
    const { paths, store, fire } = setup({
      'bad.md': [{ schedule: '* * * * *', detect: ['gh', 'run', 'list'] }, ''],
      'slowpoke.md': [{ schedule: '* * * * *', detect: 'true', detect_timeout: '2h' }, ''],
      'plain.md': [{ schedule: '* * * * *', agent: 'command' }, 'A plain recurring task.\n'],
    });
    await fire(T0);
    const r = await fire(T0 + MIN);
    assert.deepEqual(r.problems, [
      'recurring/bad.md: detect: ["gh","run","list"] is not a command (a string run by sh -c that prints one JSON task per line)',
      'recurring/slowpoke.md: detect_timeout: "2h" is not a duration from 1ms to 1h, such as 30s or 5m',
    ]);
    await fireRecurring(paths, store, config, T0);
    const plain = await fireRecurring(paths, store, config, T0 + MIN);
    assert.deepEqual(plain.problems, [], 'detector files are not recurring task files');
    assert.deepEqual(plain.created.map((t) => t.name), ['plain-20261123T1003']);
  });

  it('reads files and output as documented', () => {
    assert.equal(isDetectorFile('---\ndetect: ./find-work\n---\n'), true);
    assert.equal(isDetectorFile('---\nschedule: "* * * * *"\n---\nx'), false);
    assert.equal(isDetectorFile('no frontmatter'), false);
    const file = readDetectorFile('d', '---\nschedule: "* * * * *"\ndetect: ./x\nretries: 3\n---\n', config);
    assert.deepEqual([file.command, file.timeoutMs, file.fields, file.body], ['./x', 60_000, { retries: 3 }, '']);
    assert.throws(() => readDetectorFile('d', '---\nschedule: "* * * * *"\ndetect: ./x\ndepends_on: [a]\n---\n', config), /^InvalidTaskError: depends_on: not supported in a detector file/);
    assert.throws(() => readDetectorFile('d', '---\nschedule: "* * * * *"\ndetect: ./x\nretries: lots\n---\n', config), /retries: "lots" is not a whole number/);
    const out = readDetectorOutput(file, `${'{"prompt": "p"}\n'.repeat(2)}\n\n{"prompt": "q"}\n`, T0, config);
    assert.deepEqual(out.specs.map((s) => [s.line, s.task.retries]), [[1, 3], [5, 3]]);
    assert.deepEqual(out.problems, [{ line: 2, reason: 'the same as line 1' }]);
    assert.equal(out.lines, 3);
  });
});
