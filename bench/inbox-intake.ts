/**
 * `npm run bench:intake`: inbox intake throughput. N settled task files (mtime in the past)
 * taken in by `takeInInbox` into a fresh SQLite store, next to a reference measured in the
 * same run on the same files: read + sha256 + one insert transaction (a task row and an
 * intake-key row per file, better-sqlite3, WAL) + unlink. The reference keeps the same
 * durability rule as the store: its transaction commits with `synchronous = FULL` (the WAL
 * fsynced before a file is removed, as an `enqueue` carrying intake keys does), and only the
 * intake is timed in both (the store is opened and migrated, the database created, before).
 *
 * Rounds alternate agentq and the reference, each on a fresh project; the median of each is
 * printed with the ratio reference ÷ agentq (1 = as fast as the reference), in wall time and
 * in CPU time (this process's user + system, all its threads: less swayed by other processes
 * on a loaded machine, which lengthen both wall times unevenly). Figures only,
 * never asserted; it exits non-zero only when a run is incorrect (not every file became
 * exactly one task, or files were left in the inbox).
 *
 * Options: --files N (default 10000), --rounds R (default 3), --profile (one agentq run
 * under the inspector's CPU profiler, written to $TMPDIR/inbox-intake.cpuprofile),
 * --baseline DIR (also time the takeInInbox of another checkout's sources, DIR/src, in the
 * same rounds: e.g. `git archive COMMIT src | tar -x -C tmp/before`, inside this checkout so
 * its packages resolve).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { Session } from 'node:inspector/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { loadConfig, projectPaths, type ProjectPaths } from '../src/config/config.ts';
import { takeInInbox } from '../src/intake/inbox.ts';
import { openStore } from '../src/store/open-store.ts';
import { printTable, runMain } from './common.ts';

/** Where --profile writes the CPU profile. */
const PROFILE_FILE = path.join(os.tmpdir(), 'inbox-intake.cpuprofile');

/** A fresh project whose inbox holds `n` settled task files. */
function makeProject(n: number): ProjectPaths {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-intake-bench-'));
  const paths = projectPaths(root);
  fs.mkdirSync(paths.inbox, { recursive: true });
  fs.writeFileSync(paths.config, 'agents:\n  command:\n    command: ["true"]\n');
  const past = new Date(Date.now() - 60_000);
  const width = Math.max(5, String(n).length);
  for (let i = 1; i <= n; i++) {
    const file = path.join(paths.inbox, `t${String(i).padStart(width, '0')}.md`);
    fs.writeFileSync(file, `---\nagent: command\npriority: high\n---\nno-op task ${i}\n`);
    fs.utimesSync(file, past, past);
  }
  return paths;
}

/** The modules an intake is timed with: this checkout's, or a baseline's (--baseline). */
interface Intake {
  loadConfig: typeof loadConfig;
  openStore: typeof openStore;
  takeInInbox: typeof takeInInbox;
}

const current: Intake = { loadConfig, openStore, takeInInbox };

/** The modules of the checkout at `dir` (its `src/`). */
async function baselineIntake(dir: string): Promise<Intake> {
  const load = (f: string) => import(pathToFileURL(path.resolve(dir, 'src', f)).href);
  const [config, store, inbox] = await Promise.all([load('config/config.ts'), load('store/open-store.ts'), load('intake/inbox.ts')]);
  return { loadConfig: config.loadConfig, openStore: store.openStore, takeInInbox: inbox.takeInInbox };
}

/** A timed run: wall time and CPU time (user + system, all threads of this process), ms. */
interface Timing {
  ms: number;
  cpuMs: number;
}

/** Starts a {@link Timing}; the function returned ends it. */
function startTiming(): () => Timing {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  return () => {
    const ms = performance.now() - t0;
    const c = process.cpuUsage(c0);
    return { ms, cpuMs: (c.user + c.system) / 1000 };
  };
}

/** agentq: `takeInInbox` of the project's inbox. */
async function timeAgentq(n: number, profile: Session | null, { loadConfig, openStore, takeInInbox } = current): Promise<Timing> {
  const paths = makeProject(n);
  try {
    const config = loadConfig(paths.root);
    const store = await openStore(config.store, paths.root);
    try {
      if (profile) await profile.post('Profiler.start');
      const done = startTiming();
      const { created } = await takeInInbox(paths, store, config, Date.now());
      const timing = done();
      if (profile) {
        const { profile: p } = await profile.post('Profiler.stop');
        fs.writeFileSync(PROFILE_FILE, JSON.stringify(p));
      }
      const left = fs.readdirSync(paths.inbox).length;
      if (created.length !== n || left !== 0) throw new Error(`agentq: ${created.length} tasks of ${n} files, ${left} left in the inbox`);
      return timing;
    } finally {
      await store.close();
    }
  } finally {
    fs.rmSync(paths.root, { recursive: true, force: true });
  }
}

/** The reference: read + hash + one insert transaction + unlink. */
function timeReference(n: number): Timing {
  const paths = makeProject(n);
  try {
    const db = new Database(path.join(paths.dir, 'reference.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL'); // as the store's enqueue of intake keys: the WAL on disk before the unlinks
    db.exec(`CREATE TABLE tasks (id INTEGER PRIMARY KEY, name TEXT NOT NULL, prompt TEXT NOT NULL, state TEXT NOT NULL, created_at INTEGER NOT NULL);
      CREATE TABLE intake (key TEXT PRIMARY KEY, task_id INTEGER NOT NULL REFERENCES tasks(id), file_removed INTEGER NOT NULL DEFAULT 0);`);
    const insertTask = db.prepare("INSERT INTO tasks (name, prompt, state, created_at) VALUES (?, ?, 'queued', ?) RETURNING id");
    const insertKey = db.prepare('INSERT INTO intake (key, task_id) VALUES (?, ?)');
    try {
      const done = startTiming();
      const files = fs.readdirSync(paths.inbox);
      const read = files.map((f) => {
        const content = fs.readFileSync(path.join(paths.inbox, f));
        return { f, content, key: crypto.createHash('sha256').update(content).digest('hex') };
      });
      const now = Date.now();
      db.transaction(() => {
        for (const r of read) {
          const { id } = insertTask.get(r.f.slice(0, -3), r.content.toString('utf8'), now) as { id: number };
          insertKey.run(`${r.key}:${r.f}`, id);
        }
      })();
      for (const r of read) fs.unlinkSync(path.join(paths.inbox, r.f));
      const timing = done();
      if (fs.readdirSync(paths.inbox).length !== 0) throw new Error('reference: files left in the inbox');
      return timing;
    } finally {
      db.close();
    }
  } finally {
    fs.rmSync(paths.root, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { files: { type: 'string' }, rounds: { type: 'string' }, profile: { type: 'boolean' }, baseline: { type: 'string' } },
  });
  const baseline = values.baseline === undefined ? null : await baselineIntake(values.baseline);
  const n = Number(values.files ?? 10_000);
  const rounds = Number(values.rounds ?? 3);
  const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  process.stdout.write(`agent-queue inbox intake (node ${process.version}, ${os.cpus().length} cpus, load avg ${load} at start)\n`);
  if (values.profile) {
    const session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    const { ms } = await timeAgentq(n, session);
    process.stdout.write(`profiled run: ${ms.toFixed(0)} ms → ${PROFILE_FILE}\n`);
    return 0;
  }
  const agentq: Timing[] = [];
  const before: Timing[] = [];
  const reference: Timing[] = [];
  for (let r = 0; r < rounds; r++) {
    agentq.push(await timeAgentq(n, null));
    if (baseline) before.push(await timeAgentq(n, null, baseline));
    reference.push(timeReference(n));
  }
  const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const row = (label: string, runs: Timing[]) => {
    const m = median(runs.map((t) => t.ms));
    const ref = median(reference.map((t) => t.ms));
    const cpu = median(runs.map((t) => t.cpuMs));
    const refCpu = median(reference.map((t) => t.cpuMs));
    const rounds = (xs: Timing[], k: keyof Timing) => xs.map((x) => x[k].toFixed(0)).join(', ');
    return [
      label,
      String(n),
      fmt(m),
      fmt(ref),
      (ref / m).toFixed(2),
      fmt(cpu),
      fmt(refCpu),
      (refCpu / cpu).toFixed(2),
      `${((m * 1000) / n).toFixed(0)} µs`,
      `${rounds(runs, 'ms')} / ${rounds(reference, 'ms')} ms`,
    ];
  };
  printTable(
    ['takeInInbox', 'files', 'time', 'reference', 'ratio (ref ÷ time)', 'cpu', 'ref cpu', 'cpu ratio', 'per file', 'rounds (time / reference)'],
    [row('this checkout', agentq), ...(baseline ? [row(`baseline ${values.baseline}`, before)] : [])],
  );
  process.stdout.write('reference: read + sha256 + one insert transaction (task row + key row per file; synchronous = FULL, as the store commits an intake) + unlink, better-sqlite3, same files, same run; medians; cpu: user + system time of this process.\n');
  return 0;
}

runMain(main);
