/**
 * `npm run bench:api`: POST /v1/tasks throughput of a real `agentq serve` (bin/agentq, a
 * dispatcher and the HTTP API in one process, SQLite store), driven by autocannon's
 * programmatic API with a distinct body per request (name and prompt numbered by
 * `setupRequest`).
 *
 * Two modes, each case on a fresh project and server:
 *   queue  every task has `run_at` a day ahead: it is stored and stays queued. Each POST
 *          still wakes the dispatch loop, whose tick finds nothing ready; that is part of
 *          what a POST costs in `agentq serve`.
 *   run    `agent: command`, `command: ["true"]`: the dispatcher (config `concurrency: 2`)
 *          claims and runs the tasks in the same process while the POSTs arrive (spawns,
 *          attempt rows, result files), so this is intake under a busy dispatcher. The
 *          queue grows when POSTs outpace it; `ran` is how many finished meanwhile.
 *
 * Each case first sends a warm-up batch (max(200, 20 × connections) requests, not
 * measured), takes its rate, then sends rate × duration requests (autocannon `amount`, so
 * every request sent is answered before the run ends and the tally is exact).
 *
 * Prints figures only; it never asserts timings. It exits 1 when a run is incorrect: the
 * store must hold exactly one task per 201 answer (warm-up included), every answer a 201.
 *
 * Options (`node --import tsx bench/api-throughput.ts …`, or `npm run bench:api -- …`):
 *   --duration 10         seconds per measured run (approximately, see above)
 *   --connections 1,10,50 concurrent connections (autocannon `connections`, pipelining 1)
 *   --modes queue,run     which modes
 *   --keep                keep the temporary projects
 *
 * Columns: req/s = answered requests / run time (first request to last response); p50,
 * p99, max = response latency as autocannon's client times it (ms, request written to
 * response read, on the same machine; taken from its `response` events, since its
 * histogram keeps whole milliseconds).
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import type { TaskState } from '../src/core/types.ts';
import { loadConfig } from '../src/config/config.ts';
import { openStore } from '../src/store/open-store.ts';
import { makeProject } from '../test/fixtures/project.ts';
import { runMain } from './common.ts';
import { mib, startServe } from './serve-process.ts';

type Mode = 'queue' | 'run';

interface CaseResult {
  mode: Mode;
  connections: number;
  requests: number;
  seconds: number;
  rps: number;
  p50: number;
  p99: number;
  max: number;
  non2xx: number;
  errors: number;
  created: number;
  stored: number;
  ran: number;
  rssBytes: number;
  problem: string | null;
}

function options(argv: string[]): { duration: number; connections: number[]; modes: Mode[]; keep: boolean } {
  const { values } = parseArgs({
    args: argv,
    options: { duration: { type: 'string' }, connections: { type: 'string' }, modes: { type: 'string' }, keep: { type: 'boolean' } },
  });
  const duration = Number(values.duration ?? 10);
  if (!(duration > 0)) throw new Error(`--duration: ${values.duration} is not a number of seconds`);
  const connections = (values.connections ?? '1,10,50').split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n) || n < 1) throw new Error(`--connections: ${JSON.stringify(s)} is not a positive integer`);
    return n;
  });
  const modes = (values.modes ?? 'queue,run').split(',').map((s) => {
    if (s !== 'queue' && s !== 'run') throw new Error(`--modes: ${JSON.stringify(s)} is not queue or run`);
    return s as Mode;
  });
  return { duration, connections, modes, keep: values.keep === true };
}

/** One autocannon run: its result, plus each response's latency (ms, sub-ms precision) and the run's wall time. */
interface Run {
  result: autocannon.Result;
  latencies: number[];
  /** ms from the start to the last response (autocannon's own `duration` is rounded up to its 1 s sample tick). */
  wallMs: number;
}

/** Runs autocannon: `amount` POST /v1/tasks, each with the next numbered body. */
function post(url: string, connections: number, amount: number, body: () => Record<string, unknown>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const latencies: number[] = [];
    const t0 = performance.now();
    let last = t0;
    const instance = autocannon(
      {
        url,
        connections,
        amount,
        timeout: 30,
        requests: [
          {
            method: 'POST',
            path: '/v1/tasks',
            headers: { 'content-type': 'application/json' },
            setupRequest: (req) => ({ ...req, body: JSON.stringify(body()) }),
          },
        ],
      },
      (err, result) => (err ? reject(err) : resolve({ result, latencies, wallMs: last - t0 })),
    );
    // autocannon's histogram keeps whole milliseconds; the response event has the hrtime figure.
    instance.on('response', (_client, _status, _bytes, ms) => {
      latencies.push(ms);
      last = performance.now();
    });
  });
}

/** The q-quantile (0..1) of ascending `sorted` (nearest rank); NaN when empty. */
function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

async function runCase(mode: Mode, connections: number, duration: number, keep: boolean): Promise<CaseResult> {
  const paths = makeProject({ concurrency: 2 });
  const server = await startServe(paths.root);
  const runAt = new Date(Date.now() + 24 * 3600_000).toISOString();
  let n = 0;
  const body = () => {
    n++;
    return {
      name: `bench-${n}`,
      prompt: `Bench task ${n} (${mode}, ${connections} connections).`,
      agent: 'command',
      command: ['true'],
      ...(mode === 'queue' ? { run_at: runAt } : {}),
    };
  };
  const problems: string[] = [];
  let created = 0;
  const tally = (r: autocannon.Result, what: string) => {
    const c201 = r.statusCodeStats?.['201']?.count ?? 0;
    created += c201;
    if (r.non2xx > 0 || r.errors > 0 || c201 !== r.requests.total) {
      const codes = Object.entries(r.statusCodeStats ?? {}).map(([code, s]) => `${code}×${s.count ?? 0}`).join(' ');
      problems.push(`${what}: ${r.non2xx} non-2xx, ${r.errors} errors (${r.timeouts} timeouts); statuses ${codes}`);
    }
  };
  let run: Run;
  let rssBytes = 0;
  try {
    const warm = await post(server.url, connections, Math.max(200, 20 * connections), body);
    tally(warm.result, 'warm-up');
    const warmRate = warm.result.requests.total / Math.max(warm.wallMs / 1000, 0.001);
    run = await post(server.url, connections, Math.max(connections, Math.round(warmRate * duration)), body);
    tally(run.result, 'run');
    rssBytes = await server.rssBytes();
  } catch (err) {
    process.stderr.write(`${server.output()}\n`);
    throw err;
  } finally {
    const code = await server.stop();
    if (code !== 0) problems.push(`agentq serve exited ${code}: ${server.output().slice(-2000)}`);
  }
  const config = loadConfig(paths.root);
  const store = await openStore(config.store, paths.root);
  let counts: Record<TaskState, number>;
  try {
    counts = await store.countByState();
  } finally {
    await store.close();
  }
  const stored = Object.values(counts).reduce((a, b) => a + b, 0);
  if (stored !== created) problems.push(`the store holds ${stored} tasks for ${created} answers 201`);
  if (mode === 'queue' && stored !== counts.queued) problems.push(`queue mode: ${stored - counts.queued} tasks left the queue`);
  if (!keep) fs.rmSync(paths.root, { recursive: true, force: true });
  else process.stdout.write(`  kept ${paths.root}\n`);
  const { result, wallMs } = run;
  const sorted = [...run.latencies].sort((a, b) => a - b);
  return {
    mode,
    connections,
    requests: result.requests.total,
    seconds: wallMs / 1000,
    rps: result.requests.total / Math.max(wallMs / 1000, 0.001),
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    max: quantile(sorted, 1),
    non2xx: result.non2xx,
    errors: result.errors,
    created,
    stored,
    ran: counts.completed + counts.failed,
    rssBytes,
    problem: problems.length ? problems.join('; ') : null,
  };
}

async function main(): Promise<number> {
  const o = options(process.argv.slice(2));
  process.stdout.write(
    `POST /v1/tasks on a real agentq serve (autocannon, ~${o.duration} s per run, distinct bodies; node ${process.version}, ${process.platform})\n` +
      `  queue: run_at a day ahead (tasks stay queued); run: agent command ["true"], the dispatcher runs them meanwhile (concurrency 2)\n\n`,
  );
  const header = ['mode', 'conns', 'requests', 'secs', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'non-2xx', 'errors', '201s', 'in store', 'ran', 'server RSS', 'check'];
  const rows: string[][] = [];
  const results: CaseResult[] = [];
  for (const mode of o.modes) {
    for (const c of o.connections) {
      const r = await runCase(mode, c, o.duration, o.keep);
      results.push(r);
      rows.push([
        r.mode,
        String(r.connections),
        String(r.requests),
        r.seconds.toFixed(1),
        r.rps.toFixed(0),
        r.p50.toFixed(2),
        r.p99.toFixed(2),
        r.max.toFixed(1),
        String(r.non2xx),
        String(r.errors),
        String(r.created),
        String(r.stored),
        String(r.ran),
        mib(r.rssBytes),
        r.problem ? 'FAIL' : 'ok',
      ]);
      process.stdout.write(`  ${mode} × ${c}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms${r.problem ? ` — ${r.problem}` : ''}\n`);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  process.stdout.write(`\n${line(header)}\n${rows.map(line).join('\n')}\n`);
  process.stdout.write(`\n("201s" and "in store" count the warm-up too; "ran" = tasks that finished while the server was up.)\n`);
  const failed = results.filter((r) => r.problem);
  for (const r of failed) process.stdout.write(`FAIL ${r.mode} × ${r.connections}: ${r.problem}\n`);
  return failed.length ? 1 : 0;
}

runMain(main);
