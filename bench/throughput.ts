/**
 * `npm run bench`: throughput of the real CLI (`agentq run --once`) with a no-op agent
 * (`true`, run as argv without a shell), and the dispatcher's overhead per task against
 * spawning the same command directly with the same number in flight.
 *
 * Prints figures only; it never asserts timings. It exits non-zero only when a run is
 * incorrect (the CLI failed, or done/ does not hold one result file per task).
 *
 * Options (after `npm run bench --`):
 *   --cases 1000x2,1000x8,10000x2   tasks×concurrency to run (the default)
 *   --full                          also 10000x8
 *   --agentq PATH                   the CLI to measure (default bin/agentq of this checkout)
 *   --keep                          keep the temporary projects
 *
 * Columns:
 *   wall           `agentq run --once` from spawn to exit (startup, intake, dispatch, shutdown)
 *   intake         in-process `takeInInbox` of the same N files into a fresh store (the
 *                  first tick of the run does the same work; measured separately)
 *   direct spawn   N × spawn('true') with the same concurrency, stdin/stdout/stderr piped
 *   overhead/task  (wall − direct) / N
 *   steady/task    (wall − startup − intake − direct) / N: the per-task cost of dispatching
 *                  alone, with the fixed costs taken out
 *
 * Order: every case's `agentq run --once` and direct spawns first, then the intake timings,
 * then the projects are removed. Files removed (a case's project, the intake child's files)
 * make later file creations dearer on some file systems (ext4 without a journal skips every
 * inode freed in the last minute or more, one by one, when it allocates one), so the removals
 * of one measurement would tax the next; the inbox files a run takes in still tax its own
 * creations (logs, result files), as they would in use.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs as parseCli } from 'node:util';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { loadConfig, projectPaths, type ProjectPaths } from '../src/config/config.ts';
import { takeInInbox } from '../src/intake/inbox.ts';
import { openStore } from '../src/store/open-store.ts';
import { countResults, runMain, tailFile } from './common.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const NOOP_ARGV = ['true'];

interface Case {
  tasks: number;
  concurrency: number;
}

interface CaseResult extends Case {
  wallMs: number;
  intakeMs: number;
  directMs: number;
  doneFiles: number;
  exitCode: number | null;
  problem: string | null;
}

function parseArgs(argv: string[]): { cases: Case[]; agentq: string; keep: boolean } {
  let cases: Case[] = [
    { tasks: 1000, concurrency: 2 },
    { tasks: 1000, concurrency: 8 },
    { tasks: 10000, concurrency: 2 },
  ];
  let agentq = path.join(REPO_ROOT, 'bin', 'agentq');
  const { values } = parseCli({
    args: argv,
    options: { cases: { type: 'string' }, full: { type: 'boolean' }, agentq: { type: 'string' }, keep: { type: 'boolean' } },
  });
  if (values.cases !== undefined) {
    cases = values.cases.split(',').map((s) => {
      const m = /^(\d+)x(\d+)$/.exec(s.trim());
      if (!m) throw new Error(`--cases: ${JSON.stringify(s)} is not TASKSxCONCURRENCY (e.g. 1000x2)`);
      return { tasks: Number(m[1]), concurrency: Number(m[2]) };
    });
  }
  if (values.agentq !== undefined) agentq = path.resolve(values.agentq);
  const keep = values.keep === true;
  const full = values.full === true;
  if (full && !cases.some((c) => c.tasks === 10000 && c.concurrency === 8)) cases.push({ tasks: 10000, concurrency: 8 });
  return { cases, agentq, keep };
}

/** A fresh project with N settled task files for the no-op command agent. */
function makeBenchProject(tasks: number, concurrency: number): ProjectPaths {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-bench-'));
  const paths = projectPaths(root);
  fs.mkdirSync(paths.inbox, { recursive: true });
  fs.writeFileSync(paths.config, YAML.stringify({ concurrency, agents: { command: { command: NOOP_ARGV } } }));
  // mtime in the past, so intake's settle time (inbox_settle) does not count.
  const past = new Date(Date.now() - 60_000);
  const width = Math.max(5, String(tasks).length);
  for (let i = 1; i <= tasks; i++) {
    const file = path.join(paths.inbox, `t${String(i).padStart(width, '0')}.md`);
    fs.writeFileSync(file, `---\nagent: command\n---\nno-op task ${i}\n`);
    fs.utimesSync(file, past, past);
  }
  return paths;
}



/** Runs `agentq run --once` on the project; resolves with its wall time and exit code. */
function runCli(agentq: string, paths: ProjectPaths, logFile: string): Promise<{ ms: number; code: number | null }> {
  return new Promise((resolve, reject) => {
    const log = fs.openSync(logFile, 'w');
    const t0 = performance.now();
    const child = spawn(agentq, ['run', '--once', '--project', paths.root], { stdio: ['ignore', log, log] });
    child.once('error', (err) => {
      fs.closeSync(log);
      reject(err);
    });
    child.once('exit', (code) => {
      const ms = performance.now() - t0;
      fs.closeSync(log);
      resolve({ ms, code });
    });
  });
}

/**
 * Time of an in-process intake (`takeInInbox`) of N task files into a fresh store. Runs in a
 * child process (this file with `--intake-child N`), so the memory it takes does not stay
 * in this process and slow down the direct spawns measured here (fork time grows with RSS).
 */
async function timeIntake(tasks: number): Promise<number> {
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--intake-child', String(tasks)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  const ms = Number(out.trim());
  if (code !== 0 || !Number.isFinite(ms)) throw new Error(`intake measurement failed (exit ${code}): ${out.trim()}`);
  return ms;
}

/** The `--intake-child N` side of timeIntake: prints the intake time in ms. */
async function intakeChild(tasks: number): Promise<number> {
  const paths = makeBenchProject(tasks, 2);
  try {
    const config = loadConfig(paths.root);
    const store = await openStore(config.store, paths.root);
    try {
      const t0 = performance.now();
      const { created } = await takeInInbox(paths, store, config, Date.now());
      const ms = performance.now() - t0;
      if (created.length !== tasks) throw new Error(`intake created ${created.length} tasks, expected ${tasks}`);
      process.stdout.write(`${ms}\n`);
      return 0;
    } finally {
      await store.close();
    }
  } finally {
    fs.rmSync(paths.root, { recursive: true, force: true });
  }
}

/** Spawns the no-op command N times, `concurrency` at a time, as the runner does (piped stdio, own group). */
async function timeDirect(tasks: number, concurrency: number): Promise<number> {
  const runOne = () =>
    new Promise<void>((resolve, reject) => {
      const child = spawn(NOOP_ARGV[0]!, NOOP_ARGV.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
      child.once('error', reject);
      child.stdin!.on('error', () => {});
      child.stdout!.resume();
      child.stderr!.resume();
      child.stdin!.end('no-op task\n');
      child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${NOOP_ARGV.join(' ')} exited ${code}`))));
    });
  let started = 0;
  const worker = async () => {
    while (started < tasks) {
      started++;
      await runOne();
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, tasks) }, worker));
  return performance.now() - t0;
}

/** One case's `agentq run --once` and direct spawns; its intake is timed later ({@link main}), its project removed by the caller. */
async function runCase(c: Case, agentq: string): Promise<{ result: Omit<CaseResult, 'intakeMs'>; paths: ProjectPaths }> {
  const say = (s: string) => process.stderr.write(`  ${s}\n`);
  process.stderr.write(`${c.tasks} tasks, concurrency ${c.concurrency}:\n`);
  say('writing task files…');
  const paths = makeBenchProject(c.tasks, c.concurrency);
  const logFile = path.join(paths.root, 'agentq-run.log');
  say(`agentq run --once (${paths.root})…`);
  const run = await runCli(agentq, paths, logFile);
  const doneFiles = countResults(paths.done);
  let problem: string | null = null;
  if (run.code !== 0) problem = `agentq exited ${run.code}`;
  else if (doneFiles !== c.tasks) problem = `done/ holds ${doneFiles} result files, expected ${c.tasks}`;
  if (problem) {
    say(`WARNING: ${problem}; last lines of ${logFile}:\n${tailFile(logFile, 10).replace(/^/gm, '    ')}`);
  } else {
    say(`${(run.ms / 1000).toFixed(1)} s; ${tailFile(logFile, 1)}`);
  }
  say(`direct spawn of "${NOOP_ARGV.join(' ')}" ×${c.tasks}, ${c.concurrency} in flight…`);
  const directMs = await timeDirect(c.tasks, c.concurrency);
  return { result: { ...c, wallMs: run.ms, directMs, doneFiles, exitCode: run.code, problem }, paths };
}

/** `agentq run --once` on an empty project: process start, module loading, one tick, shutdown. */
async function timeStartup(agentq: string): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const paths = makeBenchProject(0, 2);
    try {
      const r = await runCli(agentq, paths, path.join(paths.root, 'agentq-run.log'));
      if (r.code !== 0) throw new Error(`agentq run --once on an empty project exited ${r.code}: ${tailFile(path.join(paths.root, 'agentq-run.log'), 5)}`);
      times.push(r.ms);
    } finally {
      fs.rmSync(paths.root, { recursive: true, force: true });
    }
  }
  return times.sort((a, b) => a - b)[1]!; // median of 3
}

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

const sec = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
const perTask = (ms: number, n: number) => `${(ms / n).toFixed(2)} ms`;

async function main(): Promise<number> {
  if (process.argv[2] === '--intake-child') return intakeChild(Number(process.argv[3]));
  const { cases, agentq, keep } = parseArgs(process.argv.slice(2));
  const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  const header = `agent-queue bench (node ${process.version}, ${os.cpus().length} cpus, ${os.platform()} ${os.release()}, load avg ${load} at start)`;
  process.stderr.write(`${header}\nCLI: ${agentq}\nagent: ${JSON.stringify(NOOP_ARGV)} (argv, no shell)\n\n`);

  process.stderr.write('startup: agentq run --once on an empty project (median of 3)…\n');
  const startupMs = await timeStartup(agentq);
  const runs: Array<Awaited<ReturnType<typeof runCase>>> = [];
  for (const c of cases) runs.push(await runCase(c, agentq));
  // After every run (see the module comment: the files they create and remove tax later creations).
  const results: CaseResult[] = [];
  for (const { result } of runs) {
    process.stderr.write(`in-process intake of ${result.tasks} files (child process)…\n`);
    results.push({ ...result, intakeMs: await timeIntake(result.tasks) });
  }
  for (const { result, paths } of runs) {
    if (!keep && !result.problem) fs.rmSync(paths.root, { recursive: true, force: true });
    else process.stderr.write(`kept ${paths.root}\n`);
  }

  const rows = results.map((r) => [
    String(r.tasks),
    String(r.concurrency),
    sec(r.wallMs),
    (r.tasks / (r.wallMs / 1000)).toFixed(0),
    sec(r.intakeMs),
    sec(r.directMs),
    (r.tasks / (r.directMs / 1000)).toFixed(0),
    perTask(r.wallMs - r.directMs, r.tasks),
    perTask(r.wallMs - startupMs - r.intakeMs - r.directMs, r.tasks),
    r.problem ? `WARNING: ${r.problem}` : 'ok',
  ]);
  const out = [
    '',
    header,
    `CLI startup + shutdown, empty queue: ${sec(startupMs)}`,
    table(['tasks', 'concurrency', 'wall', 'tasks/s', 'intake', 'direct spawn', 'direct/s', 'overhead/task', 'steady/task', 'check'], rows),
    '',
    'wall: `agentq run --once` end to end; intake: in-process takeInInbox of the same files;',
    'overhead/task = (wall − direct) / tasks; steady/task = (wall − startup − intake − direct) / tasks.',
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  const bad = results.filter((r) => r.problem);
  if (bad.length) {
    process.stdout.write(`\nWARNING: ${bad.length} run(s) incorrect: ${bad.map((r) => `${r.tasks}x${r.concurrency}: ${r.problem}`).join('; ')}\n`);
    return 1;
  }
  return 0;
}

runMain(main);
