/**
 * `npm run bench` (part): crash-recovery time of the real CLI. `agentq run` works through
 * 200 queued tasks of a slow-ish no-op agent (`sleep 0.2`, concurrency 8); it is SIGKILLed
 * mid-run (after 50, 100 and 150 results, one run each, once every slot's agent is running)
 * and restarted at once with
 * `agentq run --once`. Measured from the restart (the spawn of the new process):
 *
 *   registered   the new dispatcher's row appears in the store (process start-up; recovery runs next)
 *   requeued     every task the kill interrupted is back in the queue (its attempt closed
 *                `interrupted`), seen by polling the store every 5 ms (so it can read a few ms
 *                later than re-claimed, which is the store's own timestamp)
 *   re-claimed   the first interrupted task is claimed again (attempts.started_at of its attempt 2)
 *   re-started   the first interrupted task's agent runs again (its first command, $EPOCHREALTIME)
 *   all done     `run --once` exits with every task completed (total)
 *
 * The `sleep 0.2` agents the kill leaves behind have ended by the time the new dispatcher
 * recovers (start-up takes longer), so one more run (`+setsid`) has every agent also leave a
 * `setsid sleep 30` behind, which recovery must find by its tag and stop before requeueing.
 *
 * Prints figures only; it never asserts timings. It exits non-zero only when a run is
 * incorrect: `run --once` failed, done/ does not hold one file per task, a task did not
 * complete exactly once, an interrupted attempt was counted, or an agent process survived.
 *
 * Options (`node --import tsx bench/crash-recovery.ts …`, or `npm run bench:crash -- …`):
 *   --tasks 200          tasks per run
 *   --kill-at 50,100,150 result files in done/ at the SIGKILL, one run each
 *   --leftovers-at 100   the +setsid run's kill point (0: no such run)
 *   --concurrency 8
 *   --agentq PATH        the CLI to measure (default bin/agentq of this checkout)
 *   --keep               keep the temporary projects
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs as parseCli } from 'node:util';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import YAML from 'yaml';
import { projectPaths, type ProjectPaths } from '../src/config/config.ts';
import { countResults, runMain } from './common.ts';
import { killWithEnv, pidsWithEnv } from '../test/fixtures/procs.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The slow-ish no-op agent: prints when its first command ran (epoch s, µs), then sleeps 0.2 s. */
const AGENT_ARGV = ['bash', '-c', 'echo $EPOCHREALTIME; sleep 0.2'];
/** The same agent leaving a tool command behind in a session of its own (as Claude Code's Bash tool does). */
const LEFTOVER_ARGV = ['bash', '-c', 'echo $EPOCHREALTIME; setsid sleep 30 & sleep 0.2'];

interface Options {
  tasks: number;
  killAt: number[];
  leftoversAt: number | null;
  concurrency: number;
  agentq: string;
  keep: boolean;
}

interface RunResult {
  killAt: number;
  leftovers: boolean;
  doneAtKill: number;
  interrupted: number;
  orphansAtKill: number;
  leftoversStopped: number;
  registeredMs: number;
  requeuedMs: number;
  reclaimedMs: number;
  restartedMs: number;
  totalMs: number;
  problem: string | null;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { tasks: 200, killAt: [50, 100, 150], leftoversAt: 100, concurrency: 8, agentq: path.join(REPO_ROOT, 'bin', 'agentq'), keep: false };
  const int = (s: string, what: string) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${what}: ${JSON.stringify(s)} is not a whole number ≥ 1`);
    return n;
  };
  const { values } = parseCli({
    args: argv,
    options: {
      tasks: { type: 'string' },
      'kill-at': { type: 'string' },
      'leftovers-at': { type: 'string' },
      concurrency: { type: 'string' },
      agentq: { type: 'string' },
      keep: { type: 'boolean' },
    },
  });
  if (values.tasks !== undefined) o.tasks = int(values.tasks, '--tasks');
  if (values['kill-at'] !== undefined) o.killAt = values['kill-at'].split(',').map((s) => int(s.trim(), '--kill-at'));
  if (values['leftovers-at'] !== undefined) o.leftoversAt = values['leftovers-at'] === '0' ? null : int(values['leftovers-at'], '--leftovers-at');
  if (values.concurrency !== undefined) o.concurrency = int(values.concurrency, '--concurrency');
  if (values.agentq !== undefined) o.agentq = path.resolve(values.agentq);
  o.keep = values.keep === true;
  for (const k of [...o.killAt, o.leftoversAt ?? 0]) if (k >= o.tasks) throw new Error(`--kill-at ${k}: must be below --tasks ${o.tasks}`);
  return o;
}

/** Epoch ms with sub-millisecond resolution. */
const nowMs = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));
const say = (s: string) => process.stderr.write(`  ${s}\n`);

function makeProject(tasks: number, concurrency: number, argv: string[]): ProjectPaths {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-crash-'));
  const paths = projectPaths(root);
  fs.mkdirSync(paths.inbox, { recursive: true });
  fs.writeFileSync(paths.config, YAML.stringify({ concurrency, workspace: 'inplace', agents: { command: { command: argv } } }));
  // mtime in the past, so intake's settle time does not count.
  const past = new Date(Date.now() - 60_000);
  for (let i = 0; i < tasks; i++) {
    const file = path.join(paths.inbox, `t${String(i).padStart(4, '0')}.md`);
    fs.writeFileSync(file, `---\nagent: command\n---\nno-op task ${i}\n`);
    fs.utimesSync(file, past, past);
  }
  return paths;
}


function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}

async function until(check: () => boolean, timeoutMs: number, what: string, child?: ChildProcess, everyMs = 10): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) throw new Error(`agentq exited (${child.exitCode ?? child.signalCode}) while waiting for ${what}`);
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

async function runOnce(o: Options, killAt: number, leftovers: boolean): Promise<RunResult> {
  process.stderr.write(`${o.tasks} tasks, concurrency ${o.concurrency}, SIGKILL at ${killAt} results${leftovers ? ', agents leave a setsid child' : ''}:\n`);
  const paths = makeProject(o.tasks, o.concurrency, leftovers ? LEFTOVER_ARGV : AGENT_ARGV);
  const marker = crypto.randomUUID();
  const env = { ...process.env, LC_ALL: 'C', AGENTQ_BENCH_MARK: marker };
  const dbFile = path.join(paths.dir, 'agentq.db');
  let db: Database.Database | null = null;
  const children: ChildProcess[] = [];
  const r: RunResult = {
    killAt,
    leftovers,
    doneAtKill: 0,
    interrupted: 0,
    orphansAtKill: 0,
    leftoversStopped: 0,
    registeredMs: Number.NaN,
    requeuedMs: Number.NaN,
    reclaimedMs: Number.NaN,
    restartedMs: Number.NaN,
    totalMs: Number.NaN,
    problem: null,
  };
  let stderr = '';
  try {
    say('agentq run…');
    const first = spawn(o.agentq, ['run', '--project', paths.root], { env, stdio: 'ignore' });
    children.push(first);
    await until(() => countResults(paths.done) >= killAt, 120_000, `${killAt} results`, first);
    // Mid-attempt: the agents run in step (same length), so wait until every slot's agent is up.
    await until(() => pidsWithEnv('AGENTQ_BENCH_MARK', marker, true).length >= o.concurrency, 30_000, `${o.concurrency} agents running`, first);
    first.kill('SIGKILL');
    await exited(first);
    r.doneAtKill = countResults(paths.done);
    r.orphansAtKill = pidsWithEnv('AGENTQ_BENCH_MARK', marker, true).length;

    db = new Database(dbFile, { readonly: true, fileMustExist: true, timeout: 5000 });
    const interrupted = db.prepare("SELECT id, lease_token FROM tasks WHERE state = 'running'").all() as Array<{ id: number; lease_token: string }>;
    r.interrupted = interrupted.length;
    const tokens = interrupted.map((t) => t.lease_token);
    const ids = interrupted.map((t) => t.id);
    const openAttempts = db.prepare(`SELECT count(*) AS n FROM attempts WHERE outcome = 'running' AND id IN (${tokens.map(() => '?').join(', ') || "''"})`);
    say(`SIGKILL with ${r.doneAtKill} results, ${r.interrupted} tasks running, ${r.orphansAtKill} agent processes left behind; agentq run --once…`);

    const t0 = nowMs();
    const second = spawn(o.agentq, ['run', '--once', '--project', paths.root], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(second);
    second.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const registered = db.prepare('SELECT count(*) AS n FROM workers WHERE pid = ?');
    await until(() => Number((registered.get(second.pid) as { n: number }).n) > 0, 60_000, 'the dispatcher to register', second, 5);
    r.registeredMs = nowMs() - t0;
    await until(() => Number((openAttempts.get(...tokens) as { n: number }).n) === 0, 60_000, 'the interrupted tasks to be requeued', second, 5);
    r.requeuedMs = nowMs() - t0;
    const code = await exited(second);
    r.totalMs = nowMs() - t0;

    // Figures of the interrupted tasks' second attempts, from the store.
    const again = db
      .prepare(`SELECT min(a.started_at) AS claimed FROM attempts a WHERE a.number = 2 AND a.task_id IN (${ids.map(() => '?').join(', ') || '0'})`)
      .get(...ids) as { claimed: number | null };
    if (again.claimed !== null) r.reclaimedMs = again.claimed - t0;
    const results = db.prepare(`SELECT result FROM tasks WHERE id IN (${ids.map(() => '?').join(', ') || '0'})`).all(...ids) as Array<{ result: string | null }>;
    const starts = results.map((x) => Number(String(x.result ?? '').trim().replace(',', '.')) * 1000).filter((x) => Number.isFinite(x) && x > 0);
    if (starts.length) r.restartedMs = Math.min(...starts) - t0;
    r.leftoversStopped = [...stderr.matchAll(/stopped (\d+) leftover process/g)].reduce((n, m) => n + Number(m[1]), 0);

    // Correctness.
    const problems: string[] = [];
    if (code !== 0) problems.push(`agentq run --once exited ${code}`);
    if (countResults(paths.done) !== o.tasks) problems.push(`done/ holds ${countResults(paths.done)} files, expected ${o.tasks}`);
    if (countResults(paths.failed) !== 0) problems.push(`failed/ holds ${countResults(paths.failed)} files`);
    const rows = db.prepare('SELECT id, state, attempts, claims FROM tasks').all() as Array<{ id: number; state: string; attempts: number; claims: number }>;
    if (rows.length !== o.tasks) problems.push(`${rows.length} tasks in the store, expected ${o.tasks}`);
    const notDone = rows.filter((t) => t.state !== 'completed');
    if (notDone.length) problems.push(`${notDone.length} task(s) not completed (#${notDone[0]!.id} ${notDone[0]!.state})`);
    const counted = rows.filter((t) => t.attempts !== 1);
    if (counted.length) problems.push(`${counted.length} task(s) with ${counted[0]!.attempts} counted attempts`);
    const completions = db.prepare("SELECT task_id, count(*) AS n FROM attempts WHERE outcome = 'completed' GROUP BY task_id HAVING n <> 1").all();
    if (completions.length) problems.push(`${completions.length} task(s) completed more than once`);
    if (r.interrupted > 0 && !ids.every((id) => rows.find((t) => t.id === id)?.claims === 2)) problems.push('an interrupted task was not claimed exactly twice');
    const survivors = pidsWithEnv('AGENTQ_BENCH_MARK', marker, false);
    if (survivors.length) problems.push(`${survivors.length} process(es) survived: ${survivors.join(', ')}`);
    if (problems.length) r.problem = problems.join('; ');
  } catch (err) {
    r.problem = (err as Error).message;
  } finally {
    db?.close();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    killWithEnv('AGENTQ_BENCH_MARK', marker);
  }
  fs.writeFileSync(path.join(paths.root, 'agentq-run-once.log'), stderr);
  if (r.problem) say(`WARNING: ${r.problem}\n${tail(stderr, 8).replace(/^/gm, '    ')}`);
  else say(`requeued after ${r.requeuedMs.toFixed(0)} ms, all done after ${(r.totalMs / 1000).toFixed(2)} s`);
  if (!o.keep && !r.problem) fs.rmSync(paths.root, { recursive: true, force: true });
  else say(`kept ${paths.root}`);
  return r;
}

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

const ms = (v: number) => (Number.isFinite(v) ? `${v.toFixed(0)} ms` : '–');
const sec = (v: number) => (Number.isFinite(v) ? `${(v / 1000).toFixed(2)} s` : '–');
const median = (values: number[]) => {
  const s = values.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : Number.NaN;
};

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  const header = `agent-queue crash recovery (node ${process.version}, ${os.cpus().length} cpus, ${os.platform()} ${os.release()}, load avg ${load} at start)`;
  process.stderr.write(`${header}\nCLI: ${o.agentq}\nagent: ${JSON.stringify(AGENT_ARGV)} (argv, no shell)\n\n`);
  const started = nowMs();
  const results: RunResult[] = [];
  for (const k of o.killAt) results.push(await runOnce(o, k, false));
  const plain = [...results];
  const rows = results.map((r) => [
    String(r.killAt),
    String(r.interrupted),
    String(r.orphansAtKill),
    String(r.leftoversStopped),
    ms(r.registeredMs),
    ms(r.requeuedMs),
    ms(r.reclaimedMs),
    ms(r.restartedMs),
    sec(r.totalMs),
    r.problem ? `WARNING: ${r.problem}` : 'ok',
  ]);
  if (plain.length > 1) {
    const m = (f: (r: RunResult) => number) => median(plain.map(f));
    rows.push(['median', '', '', '', ms(m((r) => r.registeredMs)), ms(m((r) => r.requeuedMs)), ms(m((r) => r.reclaimedMs)), ms(m((r) => r.restartedMs)), sec(m((r) => r.totalMs)), '']);
  }
  if (o.leftoversAt !== null) {
    const r = await runOnce(o, o.leftoversAt, true);
    results.push(r);
    rows.push([
      `${r.killAt} +setsid`,
      String(r.interrupted),
      String(r.orphansAtKill),
      String(r.leftoversStopped),
      ms(r.registeredMs),
      ms(r.requeuedMs),
      ms(r.reclaimedMs),
      ms(r.restartedMs),
      sec(r.totalMs),
      r.problem ? `WARNING: ${r.problem}` : 'ok',
    ]);
  }
  const out = [
    '',
    header,
    `crash recovery: ${o.tasks} tasks, agent sleep 0.2 s, concurrency ${o.concurrency}; SIGKILL, then agentq run --once at once; times from the restart`,
    `(+setsid: every agent also leaves \`setsid sleep 30\` behind, so recovery has to stop live leftovers before requeueing)`,
    table(['killed at', 'interrupted', 'orphans', 'stopped', 'registered', 'requeued', 're-claimed', 're-started', 'all done', 'check'], rows),
    '',
    'killed at: results in done/ at the SIGKILL; interrupted: tasks running then; orphans: their agent processes alive after the kill;',
    'stopped: leftovers recovery had to stop; registered: the new dispatcher in the store (start-up); requeued: every interrupted',
    'task queued again; re-claimed / re-started: the first of them claimed / its agent running again; all done: run --once exits.',
    `(${((nowMs() - started) / 1000).toFixed(0)} s)`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  const bad = results.filter((r) => r.problem);
  if (bad.length) {
    process.stdout.write(`\nWARNING: ${bad.length} run(s) incorrect: ${bad.map((r) => `kill at ${r.killAt}: ${r.problem}`).join('; ')}\n`);
    return 1;
  }
  return 0;
}

runMain(main);
