/**
 * Fuzz of the inbox: hundreds of generated hostile entries (bad frontmatter, odd values,
 * binary and non-UTF-8 content, unterminated blocks, links out of the project, FIFOs,
 * folders, odd names) beside good tasks in one inbox, taken in by the real `bin/agentq`.
 * Every entry ends as a task (queued and run, or ended with a reason) or is refused with a
 * reason; the good ones run; nothing outside the project is read.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { agentq, makeProject } from '../fixtures/project.ts';
import { prng } from '../fixtures/prng.ts';

const SEED = Number(process.env.AGENTQ_FUZZ_SEED ?? 14);
const MARKER = 'OUTSIDE-MARKER-7f3a';

/** Values that pass a naive check but mean nothing, or are of the wrong kind. */
const ODD_VALUES: unknown[] = [0, -1, 1e308, '.inf', '-.inf', '.nan', 'Infinity', '', ' ', null, [], {}, [[]], 'x'.repeat(5000), true, '2026-02-30', '1e308s', -0, 0.0000001, '💥', '\u0000'];
const FIELDS = ['title', 'priority', 'agent', 'model', 'depends_on', 'timeout', 'max_cost_usd', 'retries', 'tags', 'dedup_key', 'command', 'retry_backoff', 'retry_on_timeout', 'concurrency_group', 'run_at', 'workspace', 'merge', 'parent', 'max_turns', 'allowed_tools'];

const RAW_BAD: Array<(r: () => number) => string | Buffer> = [
  () => '---\ntitle: never closed\npriority: high\nThe body that must not run.',
  () => '---\n: : :\n---\nbad yaml',
  () => '---\n- a list\n---\nnot a mapping',
  () => '---\na: &a [1,2]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d]\n---\nalias bomb',
  () => '---\ntitle: !!binary aGVsbG8=\n---\nyaml tag',
  () => '---\n---\n',
  () => '',
  () => '\uFEFF---\ntitle: bom\n---\n   \n',
  (r) => Buffer.from(Array.from({ length: 64 + Math.floor(r() * 512) }, () => Math.floor(r() * 256))),
  () => Buffer.from([0x2d, 0x2d, 0x2d, 0x0a, 0xff, 0xfe, 0x0a, 0x2d, 0x2d, 0x2d, 0x0a, 0x63, 0x61, 0x66, 0xe9]),
  () => 'binary\u0000inside a prompt',
  () => '---\r\ntitle: crlf\r\ntimeout: 0\r\n---\r\nbody',
  () => '---\nrun_at: 2026-02-30\n---\nimpossible date',
  () => '---\nmax_cost_usd: .inf\n---\ninfinite budget',
  () => '---\ntimeout: 1e308\n---\nforever',
];

describe('inbox fuzz', () => {
  it(`every hostile entry is taken in with a reason or refused; good tasks run; nothing outside is read (seed ${SEED})`, async () => {
    const r = prng(SEED);
    const pick = <T>(list: T[]): T => list[Math.floor(r() * list.length)]!;
    const paths = makeProject({ concurrency: 8, inbox_settle: '1ms', poll_interval: '50ms', default_timeout: '20s' });
    const outsideDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-outside-'));
    const past = new Date(Date.now() - 10_000);
    const good: string[] = [];
    const entries: string[] = []; // file names as intake reports them
    let i = 0;
    const next = () => `e${String(i++).padStart(3, '0')}`;
    const write = (file: string, content: string | Buffer) => {
      const full = path.join(paths.inbox, file);
      fs.writeFileSync(full, content);
      fs.utimesSync(full, past, past);
      entries.push(file);
    };
    for (let n = 0; n < 80; n++) {
      const name = next();
      write(`${name}.md`, `---\nagent: command\ncommand: echo ran-${name}\ntimeout: 20s\n---\nrun me\n`);
      good.push(name);
    }
    for (let n = 0; n < 120; n++) {
      const fm: Record<string, unknown> = { agent: 'command', command: 'echo odd' };
      for (let k = 0; k < 1 + Math.floor(r() * 3); k++) fm[pick(FIELDS)] = pick(ODD_VALUES);
      write(`${next()}.md`, `---\n${JSON.stringify(fm)}\n---\nodd values\n`);
    }
    for (let n = 0; n < 45; n++) write(`${next()}.md`, pick(RAW_BAD)(r));
    for (const odd of ['with space', '-leading-dash', 'ünïcödé', 'a'.repeat(180), 'dots..x', 'semi;colon', '$(touch pwned)']) write(`${odd}.md`, '---\nagent: command\ncommand: echo name\n---\nodd name\n');
    for (let n = 0; n < 12; n++) {
      const target = path.join(outsideDir, `secret-${n}.md`);
      fs.writeFileSync(target, `---\nagent: command\ncommand: echo ${MARKER}\n---\n${MARKER}\n`);
      const kind = n % 4;
      const file = `${next()}.md`;
      const full = path.join(paths.inbox, file);
      if (kind === 0) fs.symlinkSync(target, full);
      else if (kind === 1) fs.linkSync(target, full);
      else if (kind === 2) fs.symlinkSync(path.relative(paths.inbox, target), full);
      else fs.symlinkSync('/etc/passwd', full);
      entries.push(file);
    }
    for (let n = 0; n < 4; n++) {
      const file = `${next()}.md`;
      if (n % 2) fs.mkdirSync(path.join(paths.inbox, file));
      else execFileSync('mkfifo', [path.join(paths.inbox, file)]);
      entries.push(file);
    }
    const bigName = `${next()}.md`;
    write(bigName, Buffer.alloc(2 * 1024 * 1024, 'a'));
    const badName = Buffer.concat([Buffer.from(`${paths.inbox}/`), Buffer.from([0x7a, 0xc3, 0x28, 0x2e, 0x6d, 0x64])]);
    fs.writeFileSync(badName, 'x');
    fs.utimesSync(badName, past, past);
    entries.push(Buffer.from([0x7a, 0xc3, 0x28, 0x2e, 0x6d, 0x64]).toString('utf8'));
    fs.writeFileSync(path.join(outsideDir, 'untouched.md'), MARKER);

    // A hostile file that parses names no agent runs Claude Code: a stand-in that fails at once.
    const run = await agentq(['run', '--once', '--max-wait', '5s', '--project', paths.root], { AGENTQ_CLAUDE_COMMAND: '/bin/false' }, 240_000);
    assert.notEqual(run.code, null, `run --once exited by itself: ${run.stderr}`);
    assert.ok(run.code === 0 || run.code === 1, run.stderr);

    const db = new Database(path.join(paths.dir, 'agentq.db'), { readonly: true });
    const rows = db.prepare('SELECT name, state, failed_reason FROM tasks').all() as Array<{ name: string; state: string; failed_reason: string | null }>;
    db.close();
    const byName = new Map(rows.map((t) => [t.name, t]));
    const refused = new Set([...run.stderr.matchAll(/inbox\/(.+?) not taken in: \S/g)].map((m) => m[1]!));
    let taken = 0;
    let ended = 0;
    for (const file of entries) {
      const task = byName.get(file.slice(0, -3));
      if (refused.has(file)) {
        assert.equal(task, undefined, `${file} refused and taken in`);
        continue;
      }
      assert.ok(task, `${file}: neither a task nor refused`);
      taken++;
      if (task.state !== 'completed') {
        ended++;
        assert.ok(task.failed_reason, `${file}: ${task.state} without a reason`);
        if (task.state === 'invalid') assert.match(task.failed_reason, /^[a-z_]+: /, `${file}: the reason names the field`);
      }
    }
    assert.equal(rows.length, taken, 'no task that no entry accounts for');
    for (const name of good) assert.equal(byName.get(name)?.state, 'completed', `good task ${name}`);
    assert.ok(refused.has(bigName));
    // Store (with its WAL), results and logs: the marker of the files outside is in none of them.
    const grep = spawnSync('grep', ['-rla', MARKER, paths.dir, '--exclude-dir=inbox'], { encoding: 'utf8' });
    assert.equal(grep.status, 1, `the marker reached: ${grep.stdout}`);
    console.log(`inbox fuzz (seed ${SEED}): ${entries.length} entries, ${taken} taken in (${taken - ended} completed, ${ended} ended with a reason), ${refused.size} refused`);
  });
});
