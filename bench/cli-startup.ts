/**
 * `npm run bench:cli`: how fast the CLI starts and how much memory it takes, next to a bare
 * `node -e 0` measured in the same run. `agentq --help`, `agentq status` and `agentq list` on a
 * project with a small SQLite store (`--tasks`, 20 queued), each from the compiled build
 * (dist/, what bin/agentq runs; "after") and from the TypeScript sources through tsx
 * (`AGENTQ_FROM_SOURCES=1`, how every command ran before dist/; "before"). For each: the median
 * of `--runs` runs (all commands taken in turn, so a change in the machine's load touches each
 * alike) of the wall time, the CPU time (user + system) and the peak RSS (a preloaded module
 * reports `process.resourceUsage()` at exit), with the ratios to `node -e 0`.
 * Then `agentq list --all` on `--list-tasks` tasks (100k; 0 skips it), once per build.
 * Prints figures only (targets of issue 13: --help and status ≤ 0.2 s, i.e. ≤ 2× a 0.1 s
 * `node -e 0`; RSS ≤ 60 MiB). dist/ is built first when stale (scripts/build.mjs).
 *
 * Options: --runs 15, --tasks 20, --list-tasks 100000
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { AGENTQ, makeProject, projectWithTasks, REPO_ROOT } from '../test/fixtures/project.ts';
import { baseSpec } from '../src/config/task-file.ts';
import { openStore } from '../src/store/open-store.ts';
import { runMain } from './common.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' }, tasks: { type: 'string', default: '20' }, 'list-tasks': { type: 'string', default: '100000' } } });
const RUNS = Number(values.runs);
const TASKS = Number(values.tasks);
const LIST_TASKS = Number(values['list-tasks']);

/** One run's figures: wall ms, CPU ms, peak RSS in MiB. */
interface Sample {
  wallMs: number;
  cpuMs: number;
  rssMiB: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<number> {
  const build = spawnSync(process.execPath, [path.join(REPO_ROOT, 'scripts', 'build.mjs')], { encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`npm run build failed:\n${build.stdout}${build.stderr}`);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-bench-cli-'));
  const usageFile = path.join(tmp, 'usage.jsonl');
  const preload = path.join(tmp, 'report-usage.mjs');
  fs.writeFileSync(
    preload,
    `import fs from 'node:fs';
process.on('exit', () => {
  const u = process.resourceUsage();
  fs.appendFileSync(${JSON.stringify(usageFile)}, JSON.stringify({ cpuMs: (u.userCPUTime + u.systemCPUTime) / 1000, rssMiB: u.maxRSS / 1024 }) + '\\n');
});
`,
  );

  const paths = makeProject();
  const store = await openStore('sqlite:.agent-queue/agentq.db', paths.root);
  await store.enqueue(
    Array.from({ length: TASKS }, (_, i) => ({ spec: { ...baseSpec(`t-${i}`, 'x'), agent: 'command', command: 'true' }, dependsOnIds: [] })),
    Date.now(),
  );
  await store.close();

  /** Runs `node [--import preload] ARGS` once; its figures. */
  const sample = (args: string[], env: Record<string, string>): Sample => {
    fs.rmSync(usageFile, { force: true });
    const started = performance.now();
    const r = spawnSync(process.execPath, ['--import', preload, ...args], { env: { ...process.env, AGENTQ_FROM_SOURCES: '', ...env }, encoding: 'utf8', maxBuffer: 1 << 30 });
    const wallMs = performance.now() - started;
    if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
    const usage = JSON.parse(fs.readFileSync(usageFile, 'utf8').trim().split('\n').at(-1)!) as { cpuMs: number; rssMiB: number };
    return { wallMs, ...usage };
  };

  const sources = { AGENTQ_FROM_SOURCES: '1' };
  const cases: Array<{ label: string; args: string[]; env: Record<string, string> }> = [{ label: 'node -e 0', args: ['-e', '0'], env: {} }];
  for (const [name, args] of [
    ['--help', ['--help']],
    ['status', ['-p', paths.root, 'status']],
    ['list', ['-p', paths.root, 'list']],
  ] as const) {
    cases.push({ label: `agentq ${name} (sources, before)`, args: [AGENTQ, ...args], env: sources });
    cases.push({ label: `agentq ${name} (dist, after)`, args: [AGENTQ, ...args], env: {} });
  }
  // Warm-up (file cache; the config cache of the dist build), not counted.
  for (const c of cases) sample(c.args, c.env);
  const samples = cases.map(() => [] as Sample[]);
  for (let i = 0; i < RUNS; i++) cases.forEach((c, k) => samples[k]!.push(sample(c.args, c.env)));

  const load = os.loadavg()[0]!.toFixed(1);
  const fig = (s: Sample[]) => ({ wall: median(s.map((x) => x.wallMs)), cpu: median(s.map((x) => x.cpuMs)), rss: median(s.map((x) => x.rssMiB)) });
  const ref = fig(samples[0]!);
  console.log(`CLI start-up: median of ${RUNS} runs each, ${os.cpus().length} cores, load ${load}; ratios to node -e 0 in the same run`);
  console.log('targets (issue 13): agentq --help, agentq status ≤ 0.2 s (≤ 2× a 0.1 s node -e 0); CLI RSS ≤ 60 MiB\n');
  const row = (cells: string[]) => console.log(`${cells[0]!.padEnd(34)}${cells.slice(1).map((c) => c.padStart(9)).join('')}`);
  row(['command', 'wall ms', '× node', 'CPU ms', '× node', 'RSS MiB']);
  cases.forEach((c, k) => {
    const f = fig(samples[k]!);
    row([c.label, f.wall.toFixed(0), (f.wall / ref.wall).toFixed(2), f.cpu.toFixed(0), (f.cpu / ref.cpu).toFixed(2), f.rss.toFixed(0)]);
  });

  if (LIST_TASKS > 0) {
    const big = await projectWithTasks(LIST_TASKS);
    await big.store.close();
    console.log(`\nagentq list --all on ${LIST_TASKS} tasks (one run each; before paging: 5.8 s, 646 MiB at 100k, and "Maximum call stack size exceeded" at ~130k)`);
    row(['command', 'wall ms', '', 'CPU ms', '', 'RSS MiB']);
    for (const [label, env] of [
      ['agentq list --all (sources)', sources],
      ['agentq list --all (dist)', {}],
    ] as const) {
      const s = sample([AGENTQ, '-p', big.paths.root, 'list', '--all'], env);
      row([label, s.wallMs.toFixed(0), '', s.cpuMs.toFixed(0), '', s.rssMiB.toFixed(0)]);
    }
    fs.rmSync(big.paths.root, { recursive: true, force: true });
  }
  fs.rmSync(paths.root, { recursive: true, force: true });
  fs.rmSync(tmp, { recursive: true, force: true });
  return 0;
}

runMain(main);
