/**
 * `npm run bench` (part): claim latency of the real CLI, from a task's enqueue (and from the
 * moment its file lands in the inbox) to its agent process starting, at 1, 2 and 8 workers.
 *
 * Prints figures only; it never asserts timings. It exits non-zero only when a run is
 * incorrect (the CLI failed, or a task did not complete exactly once).
 *
 * The agent is `bash -c 'echo $EPOCHREALTIME'` (argv, no shell in between): its result is
 * the moment its first command ran (µs), so "agent start" includes exec and bash start-up
 * (the reference line gives that cost without agentq). Every other time comes from the
 * store (`.agent-queue/agentq.db`): `tasks.created_at` (enqueue: the intake tick that
 * recorded the task) and `attempts.started_at` (claim). The project uses the default
 * `poll_interval` (1s) and `inbox_settle` (300ms).
 *
 * Cases:
 *   trickle   one `agentq run` watching the inbox; task files land at a fixed rate (5/s),
 *             each moved in atomically (temp name, then rename)
 *   burst     the same `agentq run`, then 200 files land at once (all queued by one intake
 *             tick, so enqueue→start is mostly the wait for a free slot)
 *   procs     N separate `agentq run` processes on one store (global `concurrency` N); 200
 *             tasks are recorded in the store directly (an in-process intake of a staging
 *             folder, so no inbox event wakes the dispatchers: they find the tasks on their
 *             next poll)
 *
 * Columns (p50 / p99 over the case's tasks, ms):
 *   drop→enqueue   file renamed into the inbox → tasks.created_at (settle + waiting for a tick)
 *   enqueue→claim  tasks.created_at → attempts.started_at of attempt 1
 *   claim→start    attempts.started_at → the agent's first command ($EPOCHREALTIME)
 *   enqueue→start  the claim latency asked for: enqueue → agent start
 *   drop→start     file drop → agent start, everything included
 *
 * Options (`node --import tsx bench/claim-latency.ts …`, or `npm run bench:latency -- …`):
 *   --workers 1,2,8      concurrency of the single-process cases (default 1,2,8)
 *   --procs 2,8          process counts of the multi-process case (default 2,8; "" to skip)
 *   --trickle 50@5       tasks@rate-per-second of the trickle (default 50@5)
 *   --burst 200          tasks of the burst and procs cases (default 200)
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
import { loadConfig, projectPaths, type ProjectPaths } from '../src/config/config.ts';
import { takeInInbox } from '../src/intake/inbox.ts';
import { openStore } from '../src/store/open-store.ts';
import { countResults, percentile, runMain, tailFile } from './common.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The no-op agent: prints when its first command ran (epoch seconds, µs). */
const AGENT_ARGV = ['bash', '-c', 'echo $EPOCHREALTIME'];

interface Options {
  workers: number[];
  procs: number[];
  trickleTasks: number;
  tricklePerSec: number;
  burst: number;
  agentq: string;
  keep: boolean;
}

/** One task's timeline, epoch ms. `drop` is null for tasks recorded without the inbox. */
interface Sample {
  name: string;
  drop: number | null;
  enqueue: number;
  claim: number;
  start: number;
  worker: string;
}

interface CaseResult {
  mode: string;
  workers: string;
  samples: Sample[];
  spread: string;
  problem: string | null;
}

function parseList(s: string): number[] {
  return s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)
    .map((x) => {
      const n = Number(x);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${JSON.stringify(x)} is not a whole number ≥ 1`);
      return n;
    });
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    workers: [1, 2, 8],
    procs: [2, 8],
    trickleTasks: 50,
    tricklePerSec: 5,
    burst: 200,
    agentq: path.join(REPO_ROOT, 'bin', 'agentq'),
    keep: false,
  };
  const { values } = parseCli({
    args: argv,
    options: {
      workers: { type: 'string' },
      procs: { type: 'string' },
      trickle: { type: 'string' },
      burst: { type: 'string' },
      agentq: { type: 'string' },
      keep: { type: 'boolean' },
    },
  });
  if (values.workers !== undefined) o.workers = parseList(values.workers);
  if (values.procs !== undefined) o.procs = parseList(values.procs);
  if (values.trickle !== undefined) {
    const m = /^(\d+)@(\d+(?:\.\d+)?)$/.exec(values.trickle);
    if (!m) throw new Error('--trickle: give TASKS@PER_SECOND, e.g. 50@5');
    o.trickleTasks = Number(m[1]);
    o.tricklePerSec = Number(m[2]);
  }
  if (values.burst !== undefined) o.burst = parseList(values.burst)[0] ?? o.burst;
  if (values.agentq !== undefined) o.agentq = path.resolve(values.agentq);
  o.keep = values.keep === true;
  return o;
}

/** Epoch ms with sub-millisecond resolution. */
const nowMs = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));
const say = (s: string) => process.stderr.write(`  ${s}\n`);

function makeProject(concurrency: number): ProjectPaths {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-latency-'));
  const paths = projectPaths(root);
  fs.mkdirSync(paths.inbox, { recursive: true });
  fs.writeFileSync(paths.config, YAML.stringify({ concurrency, workspace: 'inplace', agents: { command: { command: AGENT_ARGV } } }));
  return paths;
}

const taskText = (name: string) => `---\nagent: command\n---\nno-op task ${name}\n`;

/** Moves a task file into the inbox atomically; returns the moment it became visible. */
function dropTask(inbox: string, name: string): number {
  const tmp = path.join(inbox, `.${name}.tmp`);
  fs.writeFileSync(tmp, taskText(name));
  const t = nowMs();
  fs.renameSync(tmp, path.join(inbox, `${name}.md`));
  return t;
}



/** Read-only look at the store of a running project (WAL: readers never block the dispatcher). */
function withDb<T>(paths: ProjectPaths, fn: (db: Database.Database) => T): T | null {
  const file = path.join(paths.dir, 'agentq.db');
  if (!fs.existsSync(file)) return null;
  let db: Database.Database | null = null;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true, timeout: 5000 });
    return fn(db);
  } catch {
    return null;
  } finally {
    db?.close();
  }
}

async function until(check: () => boolean, timeoutMs: number, what: string, child?: ChildProcess): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) throw new Error(`agentq exited (${child.exitCode ?? child.signalCode}) while waiting for ${what}`);
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

function startAgentq(agentq: string, paths: ProjectPaths, logFile: string): ChildProcess {
  const log = fs.openSync(logFile, 'a');
  const child = spawn(agentq, ['run', '--project', paths.root], { stdio: ['ignore', log, log], env: { ...process.env, LC_ALL: 'C' } });
  fs.closeSync(log);
  return child;
}

/** SIGTERM (a clean stop), then wait for the exit code. */
async function stopAgentq(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  return exited;
}

const workerCount = (paths: ProjectPaths) => withDb(paths, (db) => Number((db.prepare('SELECT count(*) AS n FROM workers').get() as { n: number }).n)) ?? 0;

/** Every task's first attempt, with the agent's start time from its result. */
function readSamples(paths: ProjectPaths, drops: Map<string, number>): { samples: Sample[]; problems: string[] } {
  const problems: string[] = [];
  const rows =
    withDb(paths, (db) =>
      db
        .prepare(
          `SELECT t.name, t.state, t.created_at, t.result, t.claims, a.started_at AS claimed, a.worker_id
           FROM tasks t LEFT JOIN attempts a ON a.task_id = t.id AND a.number = 1 ORDER BY t.id`,
        )
        .all(),
    ) ?? [];
  const samples: Sample[] = [];
  const seen = new Set<string>();
  for (const r of rows as Array<Record<string, unknown>>) {
    const name = String(r.name);
    if (seen.has(name)) problems.push(`task ${name} recorded twice`);
    seen.add(name);
    if (r.state !== 'completed') {
      problems.push(`task ${name} ended ${String(r.state)}`);
      continue;
    }
    if (Number(r.claims) !== 1) problems.push(`task ${name} claimed ${String(r.claims)} times`);
    const start = Number(String(r.result ?? '').trim().replace(',', '.')) * 1000;
    if (!Number.isFinite(start) || start <= 0) {
      problems.push(`task ${name}: no start time in its result (${JSON.stringify(r.result)})`);
      continue;
    }
    samples.push({ name, drop: drops.get(name) ?? null, enqueue: Number(r.created_at), claim: Number(r.claimed), start, worker: String(r.worker_id) });
  }
  for (const name of drops.keys()) if (!seen.has(name)) problems.push(`task ${name} was never recorded`);
  return { samples, problems };
}

function summarize(problems: string[]): string | null {
  if (problems.length === 0) return null;
  return `${problems.length} problem(s): ${problems.slice(0, 3).join('; ')}${problems.length > 3 ? '; …' : ''}`;
}

/** How the first attempts spread over the dispatchers (procs case). */
function spreadOf(samples: Sample[]): string {
  const per = new Map<string, number>();
  for (const s of samples) per.set(s.worker, (per.get(s.worker) ?? 0) + 1);
  return [...per.values()].sort((a, b) => b - a).join('/');
}

/** Single `agentq run`, concurrency N: warm-up, trickle, burst. */
async function runSingle(o: Options, concurrency: number): Promise<CaseResult[]> {
  process.stderr.write(`${concurrency} worker(s): one agentq run, concurrency ${concurrency}\n`);
  const paths = makeProject(concurrency);
  const logFile = path.join(paths.root, 'agentq-run.log');
  const child = startAgentq(o.agentq, paths, logFile);
  const results: CaseResult[] = [];
  let problem: string | null = null;
  try {
    await until(() => workerCount(paths) >= 1, 30_000, 'the dispatcher to register', child);
    // Warm-up (module caches, JIT, the watcher): not measured.
    const warm = new Map<string, number>();
    for (let i = 0; i < 3; i++) warm.set(`warm-${i}`, dropTask(paths.inbox, `warm-${i}`));
    await until(() => countResults(paths.done) >= warm.size, 30_000, 'the warm-up tasks', child);

    const trickle = new Map<string, number>();
    const every = 1000 / o.tricklePerSec;
    say(`trickle: ${o.trickleTasks} tasks, one every ${every.toFixed(0)} ms…`);
    const t0 = nowMs();
    for (let i = 0; i < o.trickleTasks; i++) {
      await sleep(t0 + i * every - nowMs());
      const name = `trickle-${String(i).padStart(4, '0')}`;
      trickle.set(name, dropTask(paths.inbox, name));
    }
    await until(() => countResults(paths.done) >= warm.size + trickle.size, 60_000, 'the trickle to finish', child);

    const burst = new Map<string, number>();
    say(`burst: ${o.burst} task files at once…`);
    for (let i = 0; i < o.burst; i++) {
      const name = `burst-${String(i).padStart(4, '0')}`;
      burst.set(name, dropTask(paths.inbox, name));
    }
    await until(() => countResults(paths.done) >= warm.size + trickle.size + burst.size, 120_000, 'the burst to finish', child);

    const code = await stopAgentq(child);
    if (code !== 0) problem = `agentq exited ${code} after SIGTERM`;
    const { samples, problems } = readSamples(paths, new Map([...warm, ...trickle, ...burst]));
    if (countResults(paths.done) !== warm.size + trickle.size + burst.size) problems.push(`done/ holds ${countResults(paths.done)} files, expected ${warm.size + trickle.size + burst.size}`);
    problem ??= summarize(problems);
    const label = `${concurrency} (concurrency)`;
    results.push({ mode: 'trickle', workers: label, samples: samples.filter((s) => trickle.has(s.name)), spread: '', problem });
    results.push({ mode: 'burst', workers: label, samples: samples.filter((s) => burst.has(s.name)), spread: '', problem });
  } catch (err) {
    problem = (err as Error).message;
    results.push({ mode: 'trickle+burst', workers: `${concurrency} (concurrency)`, samples: [], spread: '', problem });
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  if (problem) say(`WARNING: ${problem}; last lines of ${logFile}:\n${tailFile(logFile, 8).replace(/^/gm, '    ')}`);
  if (!o.keep && !problem) fs.rmSync(paths.root, { recursive: true, force: true });
  else say(`kept ${paths.root}`);
  return results;
}

/** N `agentq run` processes on one store; the tasks are recorded straight into the store. */
async function runProcs(o: Options, procs: number): Promise<CaseResult> {
  process.stderr.write(`${procs} worker(s): ${procs} agentq run processes on one store, concurrency ${procs}\n`);
  const paths = makeProject(procs);
  const logFile = path.join(paths.root, 'agentq-run.log');
  // The store exists before the dispatchers start, so they do not race to create it.
  const config = loadConfig(paths.root);
  const store = await openStore(config.store, paths.root);
  const children: ChildProcess[] = [];
  let problem: string | null = null;
  let samples: Sample[] = [];
  try {
    for (let i = 0; i < procs; i++) children.push(startAgentq(o.agentq, paths, logFile));
    await until(() => workerCount(paths) >= procs, 60_000, `${procs} dispatchers to register`);
    await sleep(1500); // every dispatcher past its first tick
    const staging = path.join(paths.root, 'staging');
    fs.mkdirSync(staging);
    const past = new Date(Date.now() - 60_000);
    const names: string[] = [];
    for (let i = 0; i < o.burst; i++) {
      const name = `procs-${String(i).padStart(4, '0')}`;
      const file = path.join(staging, `${name}.md`);
      fs.writeFileSync(file, taskText(name));
      fs.utimesSync(file, past, past);
      names.push(name);
    }
    say(`${o.burst} tasks recorded in the store by an in-process intake…`);
    const { created } = await takeInInbox({ ...paths, inbox: staging }, store, config, Date.now());
    if (created.length !== o.burst) throw new Error(`intake created ${created.length} tasks, expected ${o.burst}`);
    await until(() => countResults(paths.done) >= o.burst, 120_000, 'the tasks to finish');
    const codes = await Promise.all(children.map(stopAgentq));
    const bad = codes.filter((c) => c !== 0);
    if (bad.length) problem = `${bad.length} agentq process(es) exited non-zero after SIGTERM (${bad.join(', ')})`;
    const read = readSamples(paths, new Map(names.map((n) => [n, Number.NaN])));
    samples = read.samples.map((s) => ({ ...s, drop: null }));
    if (countResults(paths.done) !== o.burst) read.problems.push(`done/ holds ${countResults(paths.done)} files, expected ${o.burst}`);
    problem ??= summarize(read.problems);
  } catch (err) {
    problem = (err as Error).message;
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await store.close();
  }
  if (problem) say(`WARNING: ${problem}; last lines of ${logFile}:\n${tailFile(logFile, 8).replace(/^/gm, '    ')}`);
  if (!o.keep && !problem) fs.rmSync(paths.root, { recursive: true, force: true });
  else say(`kept ${paths.root}`);
  return { mode: 'procs', workers: `${procs} (processes)`, samples, spread: spreadOf(samples), problem };
}

/** Reference: node spawn → bash's first command, without agentq (median of 20). */
async function directSpawnMs(): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = nowMs();
    const child = spawn(AGENT_ARGV[0]!, AGENT_ARGV.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], detached: true, env: { ...process.env, LC_ALL: 'C' } });
    child.stdin!.on('error', () => {}); // EPIPE: bash does not read its stdin
    child.stdin!.end('no-op\n');
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.resume();
    await new Promise((r) => child.once('close', r));
    times.push(Number(out.trim().replace(',', '.')) * 1000 - t0);
  }
  return percentile(times, 50);
}


function fmt(ms: number): string {
  if (!Number.isFinite(ms)) return '–';
  return ms < 10 ? ms.toFixed(1) : ms.toFixed(0);
}

function cell(values: number[]): string {
  if (values.length === 0) return '–';
  return `${fmt(percentile(values, 50))} / ${fmt(percentile(values, 99))}`;
}

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  const header = `agent-queue claim latency (node ${process.version}, ${os.cpus().length} cpus, ${os.platform()} ${os.release()}, load avg ${load} at start)`;
  process.stderr.write(`${header}\nCLI: ${o.agentq}\nagent: ${JSON.stringify(AGENT_ARGV)} (argv, no shell)\n\n`);
  const started = nowMs();
  const spawnRef = await directSpawnMs();
  const results: CaseResult[] = [];
  for (const n of o.workers) results.push(...(await runSingle(o, n)));
  for (const n of o.procs) results.push(await runProcs(o, n));

  const rows = results.map((r) => {
    const dropped = r.samples.filter((s) => s.drop !== null);
    return [
      r.mode,
      r.workers,
      String(r.samples.length),
      dropped.length ? cell(dropped.map((s) => s.enqueue - s.drop!)) : '–',
      cell(r.samples.map((s) => s.claim - s.enqueue)),
      cell(r.samples.map((s) => s.start - s.claim)),
      cell(r.samples.map((s) => s.start - s.enqueue)),
      dropped.length ? cell(dropped.map((s) => s.start - s.drop!)) : '–',
      r.spread,
      r.problem ? `WARNING: ${r.problem}` : 'ok',
    ];
  });
  const out = [
    '',
    header,
    `claim latency, ms, p50 / p99 (nearest rank); trickle ${o.trickleTasks} tasks at ${o.tricklePerSec}/s; burst ${o.burst} at once; poll_interval 1s, inbox_settle 300ms (defaults)`,
    table(['case', 'workers', 'n', 'drop→enqueue', 'enqueue→claim', 'claim→start', 'enqueue→start', 'drop→start', 'per process', 'check'], rows),
    '',
    `enqueue = tasks.created_at (the intake tick); claim = attempts.started_at; start = the agent's first command ($EPOCHREALTIME);`,
    `drop = the task file renamed into the inbox. Reference: node spawn → bash's first command without agentq, median ${fmt(spawnRef)} ms.`,
    `procs: tasks recorded straight into the store, found by each dispatcher's poll; "per process" = first attempts per dispatcher.`,
    `(${((nowMs() - started) / 1000).toFixed(0)} s)`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  const bad = results.filter((r) => r.problem);
  if (bad.length) {
    process.stdout.write(`\nWARNING: ${bad.length} case(s) incorrect: ${bad.map((r) => `${r.mode} ${r.workers}: ${r.problem}`).join('; ')}\n`);
    return 1;
  }
  return 0;
}

runMain(main);
