/**
 * `npm run bench:rss`: the memory of a dispatcher (`agentq run`, from the compiled build) left
 * running, next to a bare Node measured in the same run. Targets of issue 13: dispatcher RSS
 * ≤ 60 MiB idle and ≤ 100 MiB with 100k queued tasks.
 *
 *   node -e 0                 peak RSS of a Node that does nothing and exits (the floor)
 *   node, idle                RSS of a Node left running with a timer (same reading as below)
 *   agentq run, empty         a dispatcher on a project whose store holds nothing
 *   agentq run, not cached    the same, its config.yaml not cached yet (the cache file removed
 *                             before each start: validated by a child process, as after an edit)
 *   agentq run, N queued      the same with N queued tasks that cannot run yet (`run_at` a
 *                             day ahead: each tick's claim finds nothing)
 *   agentq status, N queued   peak RSS of the command (it exits)
 *
 * A process left running is read from /proc/PID/status after `--settle` ms (its ticks,
 * checkpoints and timers have run by then): VmRSS (now) and VmHWM (its peak so far), then
 * stopped with SIGTERM. A command that exits reports `process.resourceUsage().maxRSS` from a
 * preloaded module. Each row is the median of `--runs` runs, all cases taken in turn. Prints
 * figures only. Linux only (/proc).
 *
 * Options: --runs 3, --queued 100000, --settle 4000
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { configCacheFile } from '../src/config/config-cache.ts';
import { baseSpec } from '../src/config/task-file.ts';
import { openStore } from '../src/store/open-store.ts';
import { AGENTQ, makeProject, REPO_ROOT } from '../test/fixtures/project.ts';
import { runMain } from './common.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, queued: { type: 'string', default: '100000' }, settle: { type: 'string', default: '4000' } } });
const RUNS = Number(values.runs);
const QUEUED = Number(values.queued);
const SETTLE_MS = Number(values.settle);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1]!;

/** MiB of a `kB` line of /proc/PID/status. */
function statusMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`/proc/${pid}/status: no ${field}`);
  return Number(m[1]) / 1024;
}

/** A project whose store holds `n` queued `command` tasks due a day from now (none when 0). */
async function projectOf(n: number): Promise<string> {
  const paths = makeProject({ poll_interval: '1s' });
  const store = await openStore('sqlite:.agent-queue/agentq.db', paths.root);
  if (n > 0) {
    await store.enqueue([{ spec: { ...baseSpec('t-1', 'x'), agent: 'command', command: 'true', runAt: Date.now() + 86_400_000 }, dependsOnIds: [] }], Date.now());
  }
  await store.close();
  if (n > 1) {
    const db = new Database(path.join(paths.dir, 'agentq.db'));
    const columns = (db.prepare("SELECT name FROM pragma_table_xinfo('tasks') WHERE hidden = 0 AND name NOT IN ('id', 'name')").pluck().all() as string[]).join(', ');
    db.prepare(
      `INSERT INTO tasks (name, ${columns})
       WITH RECURSIVE k(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM k WHERE i < ?)
       SELECT 't-' || i, ${columns} FROM k, tasks WHERE tasks.id = 1`,
    ).run(n);
    db.close();
  }
  return paths.root;
}

interface Reading {
  rss: number;
  hwm: number;
}

/** Starts `node ARGS`, waits `SETTLE_MS`, reads its RSS, stops it (SIGTERM) and waits for its exit. `before` runs just before the start. */
async function readRunning(args: string[], before?: () => void): Promise<Reading> {
  before?.();
  const child = spawn(process.execPath, args, { env: { ...process.env, AGENTQ_FROM_SOURCES: '' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  if (child.exitCode !== null) throw new Error(`node ${args.join(' ')} exited ${child.exitCode} before it was read: ${stderr}`);
  const reading = { rss: statusMiB(child.pid!, 'VmRSS'), hwm: statusMiB(child.pid!, 'VmHWM') };
  child.kill('SIGTERM');
  await exited;
  return reading;
}

async function main(): Promise<number> {
  if (!fs.existsSync('/proc/self/status')) throw new Error('needs /proc (Linux)');
  const build = spawnSync(process.execPath, [path.join(REPO_ROOT, 'scripts', 'build.mjs')], { encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`npm run build failed:\n${build.stdout}${build.stderr}`);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-bench-rss-'));
  const usageFile = path.join(tmp, 'usage.jsonl');
  const preload = path.join(tmp, 'report-usage.mjs');
  fs.writeFileSync(preload, `import fs from 'node:fs';\nprocess.on('exit', () => fs.writeFileSync(${JSON.stringify(usageFile)}, String(process.resourceUsage().maxRSS / 1024)));\n`);
  /** Peak RSS (MiB) of `node --import preload ARGS`, which exits. */
  const readExited = (args: string[]): number => {
    fs.rmSync(usageFile, { force: true });
    const r = spawnSync(process.execPath, ['--import', preload, ...args], { env: { ...process.env, AGENTQ_FROM_SOURCES: '' }, encoding: 'utf8', maxBuffer: 1 << 30 });
    if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
    return Number(fs.readFileSync(usageFile, 'utf8'));
  };

  const empty = await projectOf(0);
  const full = await projectOf(QUEUED);
  const running: Array<[string, string[], (() => void)?]> = [
    ['node, idle (a timer)', ['-e', 'setInterval(() => {}, 1000)']],
    ['agentq run, empty store', [AGENTQ, '-p', empty, 'run']],
    ['agentq run, empty store, config not cached', [AGENTQ, '-p', empty, 'run'], () => fs.rmSync(configCacheFile(empty), { force: true })],
    [`agentq run, ${QUEUED} queued (run_at ahead)`, [AGENTQ, '-p', full, 'run']],
  ];
  const exiting: Array<[string, string[]]> = [
    ['node -e 0', ['-e', '0']],
    [`agentq status, ${QUEUED} queued`, [AGENTQ, '-p', full, 'status']],
  ];
  // Warm-up (file cache, the config cache of the dist build), not counted.
  for (const [, args] of exiting) readExited(args);
  readExited([AGENTQ, '-p', empty, 'status']);
  const runningReadings = running.map(() => [] as Reading[]);
  const exitingPeaks = exiting.map(() => [] as number[]);
  for (let i = 0; i < RUNS; i++) {
    for (const [k, [, args]] of exiting.entries()) exitingPeaks[k]!.push(readExited(args));
    for (const [k, [, args, before]] of running.entries()) runningReadings[k]!.push(await readRunning(args, before));
  }

  const bare = median(exitingPeaks[0]!);
  const idle = median(runningReadings[0]!.map((r) => r.rss));
  console.log(`dispatcher memory (dist build), median of ${RUNS} runs, read ${SETTLE_MS} ms after start; ${os.cpus().length} cores, load ${os.loadavg()[0]!.toFixed(1)}`);
  console.log('targets (issue 13): agentq run ≤ 60 MiB idle, ≤ 100 MiB at 100k queued; ratios to node -e 0 (peak) and to an idle node (RSS) of this run\n');
  const row = (cells: string[]) => console.log(`${cells[0]!.padEnd(46)}${cells.slice(1).map((c) => c.padStart(13)).join('')}`);
  row(['process', 'RSS MiB', 'peak MiB', '× node -e 0', '× idle node']);
  for (const [k, [label]] of exiting.entries()) {
    const peak = median(exitingPeaks[k]!);
    row([label, '', peak.toFixed(1), (peak / bare).toFixed(2), '']);
  }
  for (const [k, [label]] of running.entries()) {
    const rss = median(runningReadings[k]!.map((r) => r.rss));
    const hwm = median(runningReadings[k]!.map((r) => r.hwm));
    row([label, rss.toFixed(1), hwm.toFixed(1), (hwm / bare).toFixed(2), (rss / idle).toFixed(2)]);
  }
  for (const dir of [empty, full, tmp]) fs.rmSync(dir, { recursive: true, force: true });
  return 0;
}

runMain(main);
