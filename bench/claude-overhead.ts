/**
 * `npm run bench:claude`: what agentq adds to a one-turn Claude Code task, against the same
 * CLI run directly, both on the project's scripted Messages API
 * (test/fixtures/fake-anthropic.ts, answering `done` at once) in the same run and the same
 * hermetic environment (test/fixtures/claude-env.ts).
 *
 * - direct (the reference): the real `claude` (node_modules/.bin/claude) spawned `--tasks`
 *   times with the argv and stdin the Claude runner builds (`ClaudeRunner.buildArgv`, model
 *   `sonnet` as the default routing gives, no MCP server), `c` in flight;
 * - direct + MCP: the same, each run also given agentq's MCP server as the runner gives it
 *   (an `McpHttpHost` in the bench's process): what Claude Code itself spends on an MCP server;
 * - agentq: `--tasks` queued `agent: claude` tasks run by the real `bin/agentq run --once -c c`
 *   (dist/ when fresh: built first when stale), once with agentq's MCP server
 *   (`agentq mcp`, the default) and once with `agents.claude.mcp: false`.
 * Each variant runs `--rounds` times, the variants taken in turn so the machine's load touches
 * each alike; the figures are medians over the rounds.
 *
 * Columns: `tasks/task` the time the batch's tasks took ÷ tasks (direct: the first spawn to
 * the last exit; agentq: the first claim to the last result file written: its ctime, set by the link that names it), the
 * per-task figure issue 13 targets; `wall/task` the batch's wall time ÷ tasks (agentq: spawn
 * to exit of `run --once`, its start-up and exit amortized); `p50 task` the median of one task
 * (direct: spawn to exit; agentq: the attempt's start to end as the store records it);
 * `overhead/task` and `overhead %`: (agentq − direct) of `tasks/task`, in ms and ÷ direct;
 * `incl. start/exit`: the same of `wall/task`. Then `run --once`'s own start-up (spawn → first
 * claim) and exit (last result file → exit), once per batch whatever its size, next to `node -e 0`.
 * Then the parts, next to `node -e 0`: what Claude Code waits for before its first turn
 * (`alwaysLoad`) until the server answers `initialize`: an `agentq mcp` process (stdio, what
 * each attempt started before) from spawn, and the dispatcher's MCP HTTP host
 * (src/mcp/http-host.ts, now) from `open`, with what its first tool call loads once per
 * dispatcher (node, the MCP SDK's HTTP transport and the tools' module; `initialize` and
 * `tools/list` are answered without them: src/mcp/quick-answers.ts).
 * Prints figures only (issue 13 target: ≤ 5 %, ≤ 35 ms per task); exits non-zero only when a
 * run is incorrect (a CLI failed, or a task did not complete).
 *
 * Options: --tasks 10, --concurrency 1,4, --rounds 2, --probes 5
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ClaudeRunner, mcpConfigJson } from '../src/agents/claude/claude-runner.ts';
import { AGENTQ_MCP_NAME } from '../src/mcp/attach.ts';
import { baseSpec } from '../src/config/task-file.ts';
import { loadConfig, projectPaths } from '../src/config/config.ts';
import { McpHttpHost } from '../src/mcp/http-host.ts';
import { openStore } from '../src/store/open-store.ts';
import { CLAUDE_BIN, claudeEnv, makeClaudeSandbox } from '../test/fixtures/claude-env.ts';
import { startFakeAnthropic } from '../test/fixtures/fake-anthropic.ts';
import { AGENTQ, makeProject, REPO_ROOT } from '../test/fixtures/project.ts';
// @ts-expect-error plain JavaScript module without types (bin/agentq's own check)
import { distState } from '../bin/build-state.mjs';
import { percentile, printTable, runMain } from './common.ts';

const { values } = parseArgs({
  options: {
    tasks: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '1,4' },
    rounds: { type: 'string', default: '2' },
    probes: { type: 'string', default: '5' },
  },
});
const TASKS = Number(values.tasks);
const CONCURRENCY = values.concurrency.split(',').map(Number);
const ROUNDS = Number(values.rounds);
const PROBES = Number(values.probes);
const MODEL = 'sonnet';
const STORE = 'sqlite:.agent-queue/agentq.db';

/**
 * One batch of `TASKS` tasks: its wall time, the part its tasks took (`tasksMs`: direct, the
 * wall; agentq, the first claim to the last result file) and each task's, ms; agentq also its
 * start-up (spawn → first claim) and exit (last result file → exit), ms.
 */
interface Batch {
  wallMs: number;
  tasksMs: number;
  taskMs: number[];
  startMs?: number;
  exitMs?: number;
}

/**
 * Runs `argv` with `stdin` written then closed, in a process group of its own as the runner
 * spawns agents (runAgentProcess: `detached`; Claude Code runs in flight in one shared group
 * took 3× as long here); resolves with its wall time, rejects on a non-zero exit.
 */
function run(argv: string[], env: Record<string, string>, cwd: string, stdin = ''): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(argv[0]!, argv.slice(1), { env, cwd, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.stdin.end(stdin);
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(performance.now() - started);
      else reject(new Error(`${argv.slice(0, 3).join(' ')} … exited ${code}: ${err.trim() || out.trim().split('\n').at(-1)}`));
    });
  });
}

/** `count` jobs with `inFlight` at a time; each job's result in start order. */
async function pool<T>(count: number, inFlight: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await job(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, worker));
  return results;
}

/**
 * The reference: `TASKS` direct `claude -p` runs, `inFlight` at a time, with the runner's argv,
 * in a fresh directory per batch as agentq's batches get a fresh project (Claude Code keeps
 * per-directory state in its config dir). `withMcp`: each run also gets agentq's MCP server
 * the way the runner gives it (an {@link McpHttpHost} in this process, its `--mcp-config`
 * file): what Claude Code itself spends on connecting it and on its tools.
 */
async function directBatch(env: Record<string, string>, inFlight: number, round: number, withMcp = false): Promise<Batch> {
  const paths = makeProject({ workspace: 'inplace' });
  const host = withMcp ? new McpHttpHost({ paths, config: loadConfig(paths.root), log: () => {} }) : null;
  const runner = new ClaudeRunner({ command: [CLAUDE_BIN], ...(host ? { mcpServers: { [AGENTQ_MCP_NAME]: host } } : {}) });
  try {
    const started = performance.now();
    const taskMs = await pool(TASKS, inFlight, async (i) => {
      const prompt = `Say done (direct ${withMcp ? 'mcp' : ''} ${inFlight}/${round}/${i}).`;
      if (!host) return run(runner.buildArgv({ prompt, model: MODEL }), env, paths.root, prompt);
      const opened = await host.open({ taskId: 0, attemptId: `direct-${i}` });
      const file = path.join(paths.dir, `mcp-${i}.json`);
      fs.writeFileSync(file, mcpConfigJson({ [AGENTQ_MCP_NAME]: opened.spec }), { mode: 0o600 });
      try {
        return await run(runner.buildArgv({ prompt, model: MODEL }, file), env, paths.root, prompt);
      } finally {
        await opened.close();
      }
    });
    const wallMs = performance.now() - started;
    return { wallMs, tasksMs: wallMs, taskMs };
  } finally {
    fs.rmSync(paths.root, { recursive: true, force: true });
  }
}

/** `TASKS` claude tasks through `agentq run --once -c inFlight` on a fresh project; `mcp`: agentq's MCP server on. */
async function agentqBatch(env: Record<string, string>, inFlight: number, mcp: boolean, round: number): Promise<Batch> {
  const paths = makeProject({ workspace: 'inplace', concurrency: Math.max(inFlight, 1), agents: { claude: { mcp } } });
  try {
    const store = await openStore(STORE, paths.root);
    await store.enqueue(
      Array.from({ length: TASKS }, (_, i) => ({ spec: { ...baseSpec(`t-${i}`, `Say done (agentq ${mcp ? 'mcp' : 'no-mcp'} ${inFlight}/${round}/${i}).`, 'cli'), agent: 'claude', timeoutMs: 120_000 }, dependsOnIds: [] })),
      Date.now(),
    );
    await store.close();
    const spawnedAt = Date.now();
    const wallMs = await run([process.execPath, AGENTQ, 'run', '--once', '-c', String(inFlight), '--project', paths.root], env, paths.root);
    const exitedAt = spawnedAt + wallMs;
    const check = await openStore(STORE, paths.root);
    try {
      const tasks = await check.listTasks({});
      const notDone = tasks.filter((t) => t.state !== 'completed' || t.resultPath === null);
      if (tasks.length !== TASKS || notDone.length > 0) throw new Error(`agentq: ${notDone.length} of ${tasks.length} tasks not completed or without a result file: ${notDone.map((t) => `${t.name} ${t.state} ${t.failedReason ?? ''}`).join('; ')}`);
      const attempts = (await Promise.all(tasks.map((t) => check.listAttempts(t.id)))).flat();
      const firstClaim = Math.min(...attempts.map((a) => a.startedAt));
      const lastResult = Math.max(...tasks.map((t) => fs.statSync(t.resultPath!).ctimeMs));
      return {
        wallMs,
        tasksMs: lastResult - firstClaim,
        taskMs: attempts.map((a) => (a.finishedAt ?? a.startedAt) - a.startedAt),
        startMs: firstClaim - spawnedAt,
        exitMs: exitedAt - lastResult,
      };
    } finally {
      await check.close();
    }
  } finally {
    fs.rmSync(paths.root, { recursive: true, force: true });
  }
}

const INITIALIZE = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } };

/** `agentq mcp` over stdio (what the Claude runner declared before the HTTP host) from spawn to its answer to `initialize`, ms. */
function stdioInitialize(env: Record<string, string>, projectRoot: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [AGENTQ, 'mcp', '--project', projectRoot], { env, cwd: projectRoot, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let answered = 0;
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d) => {
      out += d;
      if (!answered && out.includes('\n')) {
        answered = performance.now() - started;
        child.stdin.end();
      }
    });
    child.on('error', reject);
    child.on('close', (code) => (answered ? resolve(answered) : reject(new Error(`agentq mcp exited ${code} without answering: ${err.trim()}`))));
    child.stdin.write(`${JSON.stringify(INITIALIZE)}\n`);
  });
}

/** The dispatcher's {@link McpHttpHost}: `open` for an attempt (the host started) to its answer to `initialize`, then closed (the host stopped); ms. */
async function httpInitialize(projectRoot: string): Promise<number> {
  const host = new McpHttpHost({ paths: projectPaths(projectRoot), config: loadConfig(projectRoot), log: () => {} });
  const started = performance.now();
  const opened = await host.open({ taskId: 1, attemptId: 'bench' });
  if (opened.spec.type !== 'http') throw new Error('the host declared no http server');
  const res = await fetch(opened.spec.url, {
    method: 'POST',
    headers: { ...opened.spec.headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify(INITIALIZE),
  });
  const body = (await res.json()) as { result?: unknown };
  const ms = performance.now() - started;
  await opened.close();
  if (!body.result) throw new Error(`initialize over http failed: ${res.status} ${JSON.stringify(body)}`);
  return ms;
}

const med = (xs: number[]) => percentile(xs, 50);

async function main(): Promise<number> {
  if (distState() !== 'fresh') {
    const build = spawnSync(process.execPath, [path.join(REPO_ROOT, 'scripts', 'build.mjs')], { encoding: 'utf8' });
    if (build.status !== 0) throw new Error(`npm run build failed:\n${build.stdout}${build.stderr}`);
  }
  const fake = await startFakeAnthropic({ defaultTurns: [{ text: 'done' }] });
  const sandbox = makeClaudeSandbox('agentq-bench-claude-');
  const env = claudeEnv(fake.url, sandbox.config);
  try {
    // Warm-up, not counted: the file cache, the CLI's first-run files in its config dir.
    await directBatch(env, 2, -1);

    const variants = [
      { label: 'claude -p (direct)', batch: (c: number, r: number) => directBatch(env, c, r) },
      { label: 'claude -p + agentq MCP (direct)', batch: (c: number, r: number) => directBatch(env, c, r, true) },
      { label: 'agentq, mcp on', batch: (c: number, r: number) => agentqBatch(env, c, true, r) },
      { label: 'agentq, mcp off', batch: (c: number, r: number) => agentqBatch(env, c, false, r) },
    ];
    const results = new Map<string, Batch[]>();
    for (let r = 0; r < ROUNDS; r++) {
      for (const c of CONCURRENCY) {
        for (const v of variants) {
          const key = `${c}:${v.label}`;
          results.set(key, [...(results.get(key) ?? []), await v.batch(c, r)]);
        }
      }
    }

    // Was every Claude run answered by the same model (the argv matched)?
    const models = [...new Set(fake.turnRequests().map((q) => (q.body as { model?: string }).model))];
    const load = os.loadavg()[0]!.toFixed(1);
    console.log(`Claude Code one-turn tasks: ${TASKS} per batch, medians of ${ROUNDS} round(s), ${os.cpus().length} cores, load ${load}; model(s) asked: ${models.join(', ')}`);
    console.log('target (issue 13): overhead ≤ 5 % and ≤ 35 ms per task against claude -p run directly\n');
    const rows: string[][] = [];
    const ends: string[][] = [];
    for (const c of CONCURRENCY) {
      const ref = results.get(`${c}:${variants[0]!.label}`)!;
      const refWall = med(ref.map((b) => b.wallMs));
      const refTasks = med(ref.map((b) => b.tasksMs));
      for (const v of variants) {
        const batches = results.get(`${c}:${v.label}`)!;
        const wall = med(batches.map((b) => b.wallMs));
        const tasks = med(batches.map((b) => b.tasksMs));
        const task = med(batches.flatMap((b) => b.taskMs));
        const isRef = v === variants[0];
        rows.push([
          String(c),
          v.label,
          (tasks / TASKS).toFixed(0),
          (wall / TASKS).toFixed(0),
          task.toFixed(0),
          isRef ? '(ref)' : ((tasks - refTasks) / TASKS).toFixed(0),
          isRef ? '(ref)' : `${(((tasks - refTasks) / refTasks) * 100).toFixed(1)} %`,
          isRef ? '(ref)' : `${((wall - refWall) / TASKS).toFixed(0)} ms, ${(((wall - refWall) / refWall) * 100).toFixed(1)} %`,
        ]);
        if (batches[0]!.startMs !== undefined) {
          ends.push([String(c), v.label, med(batches.map((b) => b.startMs!)).toFixed(0), med(batches.map((b) => b.exitMs!)).toFixed(0)]);
        }
      }
    }
    printTable(['in flight', 'variant', 'tasks/task ms', 'wall/task ms', 'p50 task ms', 'overhead/task ms', 'overhead %', 'incl. start/exit'], rows);
    console.log('\nagentq run --once itself, once per batch (ms):');
    printTable(['in flight', 'variant', 'start: spawn → first claim', 'exit: last result file → exit'], ends);

    // The parts: agentq's MCP server start-up, next to a bare node.
    const probeProject = makeProject({ workspace: 'inplace' });
    const store = await openStore(STORE, probeProject.root);
    await store.close();
    const nodeMs: number[] = [];
    const stdioMs: number[] = [];
    const httpMs: number[] = [];
    const loadMs: number[] = [];
    // What the host loads at its first tool call, once per dispatcher: node with the MCP SDK's HTTP transport and the tools' module (dist/).
    const loadSdk = `await import(${JSON.stringify(import.meta.resolve('@modelcontextprotocol/sdk/server/streamableHttp.js'))}); await import(${JSON.stringify(pathToFileURL(path.join(REPO_ROOT, 'dist', 'mcp', 'server.js')).href)});`;
    for (let i = 0; i < PROBES; i++) {
      nodeMs.push(await run([process.execPath, '-e', '0'], env, probeProject.root));
      loadMs.push(await run([process.execPath, '--input-type=module', '-e', loadSdk], env, probeProject.root));
      stdioMs.push(await stdioInitialize(env, probeProject.root));
      httpMs.push(await httpInitialize(probeProject.root));
    }
    fs.rmSync(probeProject.root, { recursive: true, force: true });
    console.log(`\nparts (median of ${PROBES}):`);
    const part = (label: string, xs: number[]) => [label, med(xs).toFixed(0), (med(xs) / med(nodeMs)).toFixed(2)];
    printTable(
      ['part', 'ms', '× node -e 0'],
      [
        part('node -e 0', nodeMs),
        part('agentq mcp (stdio process, before): spawn → initialize answered', stdioMs),
        part('MCP http host (in the dispatcher, after): open (host started) → initialize answered', httpMs),
        part('node + MCP SDK http transport + tools module (the host\'s first tool call, once per dispatcher)', loadMs),
      ],
    );
    return 0;
  } finally {
    await fake.close();
    sandbox.cleanup();
  }
}

runMain(main);
