/**
 * The `agentq` commands. Each opens the project (config + store), does one thing, and
 * returns an exit code: 0 success, 1 failure (or `run --once` with a task that did not
 * complete), 2 usage error. What only some commands use (the dispatcher and the agents' runners,
 * the live progress, the HTTP stack, the MCP SDK, the task-file schema and the YAML parser) is
 * imported by them when they run, and the config comes from its cache (config-cache.ts), so
 * that `agentq status`, `list`, `show` … start fast (see bench/cli-startup.ts).
 */
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../config/config.ts';
import { loadConfigCached } from '../config/config-cache.ts';
import { accountMap, formatOrigin, projectOrigin, projectPaths, type ProjectPaths } from '../config/project.ts';
import { formatDuration, parseDuration } from '../config/duration.ts';
import { AgentQueueError, NotFoundError, UsageError } from '../core/errors.ts';
import { isTerminal, TASK_STATES, VERIFY_TAIL_LINES, type AttemptOutput, type TaskState, type Verification } from '../core/types.ts';
import { openStore, type StoreOptions } from '../store/open-store.ts';
import { DISPATCHER_BUSY_TIMEOUT_MS } from '../scheduler/store-retry.ts';
import type { Store } from '../store/store.ts';
import { redactStoreUrl } from '../store/store-url.ts';
import { answerTask, cancelTask, delegationsReport, findTask, retryTask, statusSnapshot, usageReport } from '../ops/task-ops.ts';
import type { LogSource, LogStream } from '../ops/attempt-log.ts';
import { notifyStatus } from '../notify/status.ts';
import type { AgentqServer } from '../server/serve.ts';
import { attemptDispatcher, delegationRows, detectorLines, pauseLines, runningRows, taskDetail, taskTablePages, table } from './output.ts';
import { DELEGATION_STATES, type DelegationState } from '../core/delegation.ts';
import { parseTimeArg, parseUsageBy, renderUsage } from './usage-report.ts';

export interface GlobalOptions {
  project: string;
  store?: string;
  verbose?: boolean;
}

export interface Project {
  paths: ProjectPaths;
  config: Config;
  store: Store;
}

const out = (s: string) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);

/**
 * Opens a project that has `.agent-queue/inbox/` (made by `init`, or by hand). Its config comes
 * from the cache of the validated config.yaml (config-cache.ts) unless `cached` is false (`serve`,
 * which loads zod anyway for its request bodies, validates config.yaml itself); `'apart'`: on a
 * cache miss, validated in a child process (`run`, which would otherwise keep the schema loaded).
 * @throws ConfigError for an invalid config.yaml or store URL
 */
async function openProject(g: GlobalOptions, storeOptions: StoreOptions = {}, cached: boolean | 'apart' = true): Promise<Project> {
  const paths = projectPaths(g.project);
  if (!fs.existsSync(paths.inbox)) {
    throw new AgentQueueError('no_project', `${paths.root} is not an agent-queue project (no .agent-queue/inbox/): run "agentq init ${g.project}"`);
  }
  const config = cached ? await loadConfigCached(paths.root, { apart: cached === 'apart' }) : (await import('../config/config.ts')).loadConfig(paths.root);
  // The store in force (--store, else AGENTQ_STORE, else config), e.g. for agents' `agentq mcp`.
  config.store = g.store ?? process.env.AGENTQ_STORE ?? config.store;
  const store = await openStore(config.store, paths.root, storeOptions);
  return { paths, config, store };
}

/** Opens the project (see `openProject`), runs `fn`, and closes its store. */
export async function withProject<T>(g: GlobalOptions, fn: (p: Project) => Promise<T>): Promise<T> {
  const p = await openProject(g);
  try {
    return await fn(p);
  } finally {
    await p.store.close();
  }
}

export async function initCommand(dir: string): Promise<number> {
  const paths = projectPaths(dir);
  for (const d of [paths.inbox, paths.done, paths.failed, paths.logs]) fs.mkdirSync(d, { recursive: true });
  if (!fs.existsSync(paths.config)) fs.writeFileSync(paths.config, (await import('../config/config.ts')).CONFIG_TEMPLATE);
  out(`initialised ${paths.dir}\ndrop task files into ${paths.inbox}/ and run "agentq run"`);
  return 0;
}

/**
 * The labels of a repeatable label flag (`--label`, `submit --runs-on`), checked as `runs_on`
 * labels are and without repeats; null when none is given (config `labels` stand).
 * @throws UsageError naming the flag for a blank, multi-line or too long label
 */
async function labelFlags(values: readonly string[] | undefined, flag = '--label'): Promise<string[] | null> {
  if (!values || values.length === 0) return null;
  const { LABEL_SCHEMA } = await import('../config/task-file.ts');
  return [
    ...new Set(
      values.map((v) => {
        const parsed = LABEL_SCHEMA.safeParse(v);
        if (!parsed.success) throw new UsageError(`${flag}: ${parsed.error.issues[0]?.message ?? `${JSON.stringify(v)} is not a label`}`);
        return parsed.data;
      }),
    ),
  ];
}

/**
 * The value of a count flag (`--concurrency`, `--limit`): digits only, a whole number ≥ 1.
 * @throws UsageError naming `flag` for anything else
 */
function countFlag(flag: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`${flag}: ${JSON.stringify(value)} is not a whole number ≥ 1`);
  return n;
}

/**
 * The value of `-c/--concurrency N`: this dispatcher's own limit of running tasks (config
 * `local_concurrency`); null when the flag is not given.
 * @throws UsageError naming the flag for anything but a whole number ≥ 1
 */
function concurrencyFlag(value: string | undefined): number | null {
  return value === undefined ? null : countFlag('--concurrency', value);
}

/**
 * Sets this dispatcher's own limit (`-c N`, else config `local_concurrency` stands) and
 * prints one notice on stderr when it is above the store-wide `concurrency`, which then caps it.
 */
function applyLocalConcurrency(config: Config, flag: number | null): void {
  if (flag !== null) config.local_concurrency = flag;
  const local = config.local_concurrency;
  if (local !== undefined && local > config.concurrency) {
    const source = flag !== null ? `-c ${local}` : `local_concurrency ${local}`;
    process.stderr.write(`agentq: ${source}: the store-wide limit (config concurrency: ${config.concurrency}) caps this dispatcher at ${config.concurrency} running tasks\n`);
  }
}

/**
 * `agentq run`: the dispatcher until SIGINT or SIGTERM (with `--once`, until nothing is left
 * that can run within `--max-wait`). `-c N`: at most N running tasks in this process, within
 * the store-wide config `concurrency`.
 * @throws UsageError for a bad `--concurrency`, `--max-wait` (or it without `--once`), `--label`
 */
export async function runCommand(g: GlobalOptions, o: { once?: boolean; concurrency?: string; maxWait?: string; label?: string[] }): Promise<number> {
  const labels = await labelFlags(o.label);
  const localConcurrency = concurrencyFlag(o.concurrency);
  let maxWaitMs: number | undefined;
  if (o.maxWait !== undefined) {
    if (!o.once) throw new UsageError('--max-wait: only with --once');
    maxWaitMs = parseDuration(o.maxWait) ?? undefined;
    if (maxWaitMs === undefined) throw new UsageError(`--max-wait: ${JSON.stringify(o.maxWait)} is not a duration such as 10m or 24h`);
  }
  // The agents' spawner starts while the rest loads and the store opens (the dispatcher's start would, later).
  (await import('../process/spawner.ts')).startSpawner();
  // The project opens while the rest loads: a config.yaml not cached yet is validated by a child process meanwhile.
  const [p, { Dispatcher }, { DEFAULT_MAX_WAIT, DispatchLoop }, { createRunners }, { attachProgress }] = await Promise.all([
    openProject(g, { busyTimeoutMs: DISPATCHER_BUSY_TIMEOUT_MS }, 'apart'),
    import('../scheduler/dispatcher.ts'),
    import('../scheduler/loop.ts'),
    import('../agents/registry.ts'),
    import('./progress.ts'),
  ]);
  applyLocalConcurrency(p.config, localConcurrency);
  if (labels) p.config.labels = labels;
  for (const d of [p.paths.done, p.paths.failed, p.paths.logs]) fs.mkdirSync(d, { recursive: true });
  const dispatcher = new Dispatcher({ paths: p.paths, store: p.store, config: p.config, runners: createRunners(p.config, p.paths, process.env) });
  const detach = attachProgress(dispatcher.events, process.stderr, dispatcher.origin);
  const loop = new DispatchLoop(dispatcher, p.paths, p.config, { once: o.once === true, maxWaitMs });
  let stopping: Promise<void> | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) {
      process.stderr.write(`agentq: ${sig} again: exiting now\n`);
      process.exit(130);
    }
    process.stderr.write(`agentq: ${sig}: stopping (running tasks are stopped and requeued)\n`);
    stopping = dispatcher.stop();
    loop.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await dispatcher.start();
    await loop.run();
    if (stopping) await stopping;
    else await dispatcher.drain();
    if (!o.once) return 0;
    const states: TaskState[] = [];
    for (const id of dispatcher.touched) states.push((await p.store.getTask(id))?.state ?? 'failed');
    // Queued ones are those left queued past --max-wait, listed below.
    const failed = states.filter((s) => s !== 'completed' && s !== 'queued').length;
    const left: string[] = [];
    for (const [file, reason] of dispatcher.refusedFiles) left.push(`inbox/${file} not taken in: ${reason}`);
    for (const w of loop.unrunnable) {
      const when = w.until === null ? 'cannot run until someone acts' : `cannot run within --max-wait ${formatDuration(maxWaitMs ?? DEFAULT_MAX_WAIT)}`;
      left.push(`#${w.task.id} ${w.task.name} left queued: ${when}: ${w.reason}`);
    }
    for (const line of left) process.stderr.write(`agentq: ${line}\n`);
    const queued = loop.unrunnable.length ? `, ${loop.unrunnable.length} left queued` : '';
    process.stderr.write(`agentq: ${states.filter((s) => s === 'completed').length} completed, ${failed} not completed${queued}\n`);
    return failed === 0 && left.length === 0 ? 0 : 1;
  } catch (err) {
    // The loop failed: stop the running attempts (their tasks requeued) before the store is
    // closed under them, or their outcomes would be lost ("The database connection is not open").
    await (stopping ?? dispatcher.stop()).catch((e: unknown) => dispatcher.events.emit('error', e as Error));
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    detach();
    await p.store.close();
  }
}

/**
 * `agentq mcp`: the MCP server (stdio) of the project's store (src/mcp/server.ts), until
 * stdin ends. Run by an agent of a task (its `AGENTQ_TASK_ID` and `AGENTQ_ATTEMPT_ID` name
 * the task and one of its attempts here), what it submits are that task's subtasks. stdout
 * carries the protocol only: everything else goes to stderr.
 */
export async function mcpCommand(g: GlobalOptions): Promise<number> {
  // The MCP SDK is loaded only by `mcp`.
  const [{ runningTaskOf }, { serveMcp }] = await Promise.all([import('../mcp/quick-answers.ts'), import('../mcp/server.ts')]);
  return withProject(g, async ({ paths, config, store }) => {
    const runningTask = await runningTaskOf(store, process.env);
    const parent = runningTask ? `; tasks submitted are subtasks of #${runningTask.id} ${runningTask.name} (at most ${config.max_subtasks})` : '';
    process.stderr.write(`agentq mcp: serving ${paths.root} (store ${redactStoreUrl(config.store)}) on stdio${parent}\n`);
    await serveMcp({ store, paths, config, runningTask });
    return 0;
  });
}

/**
 * `agentq serve`: the dispatcher (as `run`) and the HTTP API in one process until SIGINT or
 * SIGTERM; then no new requests or claims, running tasks are stopped and requeued.
 * Host and port: flags, else config `serve.host` / `serve.port` (127.0.0.1:8765); `-c N` and
 * `--label` as for {@link runCommand}.
 * @throws UsageError for a bad `--host`, `--port`, `--concurrency` or `--label`
 */
export async function serveCommand(g: GlobalOptions, o: { host?: string; port?: string; label?: string[]; concurrency?: string }): Promise<number> {
  const labels = await labelFlags(o.label);
  const localConcurrency = concurrencyFlag(o.concurrency);
  let port: number | undefined;
  if (o.port !== undefined) {
    port = Number(o.port);
    if (!/^\d+$/.test(o.port) || port > 65535) throw new UsageError(`--port: ${JSON.stringify(o.port)} is not a port number (0-65535)`);
  }
  if (o.host !== undefined && o.host.trim() === '') throw new UsageError('--host: empty');
  // The HTTP stack (Fastify, swagger, prom-client) is loaded only by `serve`.
  const [{ AgentqServer }, { resolveToken }, { attachProgress }] = await Promise.all([import('../server/serve.ts'), import('../server/auth.ts'), import('./progress.ts')]);
  const p = await openProject(g, { busyTimeoutMs: DISPATCHER_BUSY_TIMEOUT_MS }, false);
  applyLocalConcurrency(p.config, localConcurrency);
  if (labels) p.config.labels = labels;
  const host = o.host ?? p.config.serve.host;
  const token = resolveToken(process.env, p.config.serve.token);
  let server: AgentqServer | null = null;
  let detach = () => {};
  let stopping: Promise<void> | null = null;
  let signalled: (sig: NodeJS.Signals) => void = () => {};
  const signal = new Promise<NodeJS.Signals>((resolve) => (signalled = resolve));
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) {
      process.stderr.write(`agentq: ${sig} again: exiting now\n`);
      process.exit(130);
    }
    process.stderr.write(`agentq: ${sig}: stopping (no new requests; running tasks are stopped and requeued)\n`);
    stopping = server ? server.close('stop') : Promise.resolve();
    signalled(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    server = await AgentqServer.start({
      paths: p.paths,
      config: p.config,
      store: p.store,
      host,
      port: port ?? p.config.serve.port,
      token,
      ...(g.verbose ? { logger: { level: 'info', stream: process.stderr } } : {}),
      onDispatcher: (d) => (detach = attachProgress(d.events, process.stderr, d.origin)),
    });
    out(`agentq serve: listening on ${server.url}${token ? ' (token required)' : ''}`);
    // Runs until a signal, or until the dispatch loop fails.
    await Promise.race([signal, server.loopDone]);
    if (!stopping) await server.close('stop');
    await stopping;
    await server.loopDone;
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (server && !stopping) await server.close('stop').catch(() => {});
    detach();
    await p.store.close();
  }
}

/** Moves a file into the inbox atomically (temp name, then rename) without overwriting. */
function placeInInbox(paths: ProjectPaths, name: string, content: string): string {
  const target = path.join(paths.inbox, `${name}.md`);
  const tmp = path.join(paths.inbox, `.${name}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, content, { flag: 'wx' });
  try {
    fs.linkSync(tmp, target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new AgentQueueError('exists', `${target} already exists in the inbox: rename the task`);
    throw err;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  return target;
}

export interface SubmitOptions {
  title?: string;
  prompt?: string;
  name?: string;
  priority?: string;
  agent?: string;
  /** For `--agent a2a`: the remote (config `remotes` name or URL). */
  remote?: string;
  model?: string;
  dependsOn?: string[];
  timeout?: string;
  /** `--runs-on`, repeatable: the task's `runs_on` labels. */
  runsOn?: string[];
}

/**
 * `agentq submit`: copies FILE into the inbox, or writes a task file from `--prompt` and the
 * field flags (`--runs-on` → `runs_on`, …), under a free name.
 * @throws UsageError for FILE with `--prompt`/`--title`/`--runs-on`, neither, a bad `--name` or `--runs-on` label
 */
export async function submitCommand(g: GlobalOptions, file: string | undefined, o: SubmitOptions): Promise<number> {
  const paths = projectPaths(g.project);
  if (!fs.existsSync(paths.inbox)) throw new AgentQueueError('no_project', `${paths.root} has no .agent-queue/inbox/: run "agentq init"`);
  const runsOn = await labelFlags(o.runsOn, '--runs-on');
  let target: string;
  if (file !== undefined) {
    if (o.prompt !== undefined || o.title !== undefined) throw new UsageError('give either FILE or --title/--prompt, not both');
    if (runsOn) throw new UsageError('--runs-on: only with --prompt (a task FILE sets runs_on in its frontmatter)');
    if (!file.endsWith('.md')) throw new UsageError(`${file}: a task file must end in .md`);
    const name = o.name ?? path.basename(file, '.md');
    target = placeInInbox(paths, name, fs.readFileSync(file, 'utf8'));
  } else {
    if (!o.prompt) throw new UsageError('submit needs a FILE or --prompt TEXT');
    const [{ default: YAML }, { TASK_NAME, taskNameFrom }] = await Promise.all([import('yaml'), import('../config/task-file.ts')]);
    const base = o.name ?? taskNameFrom(o.title ?? o.prompt);
    if (!TASK_NAME.test(base)) throw new UsageError(`--name: ${JSON.stringify(base)} is not a valid task name`);
    const fm: Record<string, unknown> = {};
    if (o.title) fm.title = o.title;
    if (o.priority) fm.priority = o.priority;
    if (o.agent) fm.agent = o.agent;
    if (o.remote) fm.remote = o.remote;
    if (o.model) fm.model = o.model;
    if (o.dependsOn?.length) fm.depends_on = o.dependsOn;
    if (o.timeout) fm.timeout = o.timeout;
    if (runsOn) fm.runs_on = runsOn;
    const content = `${Object.keys(fm).length ? `---\n${YAML.stringify(fm)}---\n\n` : ''}${o.prompt}\n`;
    let name = base;
    for (let n = 2; ; n++) {
      try {
        target = placeInInbox(paths, name, content);
        break;
      } catch (err) {
        if (!(err instanceof AgentQueueError && err.code === 'exists') || o.name) throw err;
        name = `${base}-${n}`;
      }
    }
  }
  out(`submitted ${path.relative(process.cwd(), target) || target}`);
  return 0;
}

/** `agentq list` without `--limit` or `--all`: the newest 100 tasks. */
export const LIST_DEFAULT_LIMIT = 100;
/** Tasks per store query of `agentq list` (keyset pages: `listTasks({ beforeId, order: 'desc', limit })`). */
const LIST_PAGE = 500;

export interface ListOptions {
  state?: string;
  /** `--limit N`: the newest N (default {@link LIST_DEFAULT_LIMIT}). */
  limit?: string;
  /** `--all`: every task. */
  all?: boolean;
  /** One JSON array. */
  json?: boolean;
  /** One JSON object per line. */
  jsonl?: boolean;
}

/**
 * `agentq list`: tasks newest first, the newest `--limit N` (default 100) or, with `--all`,
 * every one; `--state` keeps one state. Read in pages of {@link LIST_PAGE} (keyset: each page
 * the tasks below the last id printed) and printed page by page, so time and memory per page
 * stay flat at any queue size. Output: a table (header once; each column as wide as its widest
 * cell so far), `--json` one JSON array (as `JSON.stringify(tasks, null, 2)`, written as it
 * streams), `--jsonl` one compact JSON task per line. When more tasks match than `--limit`
 * shows, one line on stderr says how many there are. A reader that goes away (`| head`) ends
 * it quietly (exit 0).
 * @throws UsageError for a bad `--state` or `--limit`, `--limit` with `--all`, `--json` with `--jsonl`
 */
export async function listCommand(g: GlobalOptions, o: ListOptions): Promise<number> {
  if (o.state !== undefined && !(TASK_STATES as readonly string[]).includes(o.state)) {
    throw new UsageError(`--state: ${JSON.stringify(o.state)} is not one of ${TASK_STATES.join(', ')}`);
  }
  if (o.json && o.jsonl) throw new UsageError('--json and --jsonl: give one of them');
  if (o.all && o.limit !== undefined) throw new UsageError('--limit: not with --all (which lists every task)');
  const limit = o.limit === undefined ? LIST_DEFAULT_LIMIT : countFlag('--limit', o.limit);
  const state = o.state as TaskState | undefined;
  return withProject(g, async ({ store }) => {
    const stdout = new StdoutWriter();
    const tablePage = taskTablePages();
    let printed = 0;
    let beforeId: number | undefined;
    let more = false;
    try {
      if (o.json) stdout.write('[');
      for (;;) {
        const want = o.all ? LIST_PAGE : Math.min(LIST_PAGE, limit - printed);
        // One more than wanted tells, at the end of --limit, whether more match.
        const page = await store.listTasks({ ...(state ? { state } : {}), ...(beforeId !== undefined ? { beforeId } : {}), order: 'desc', limit: want + 1 });
        more = page.length > want;
        const tasks = more ? page.slice(0, want) : page;
        if (tasks.length) {
          let text: string;
          if (o.json) text = tasks.map((t, i) => `${printed + i === 0 ? '\n' : ',\n'}${JSON.stringify(t, null, 2).replace(/^/gm, '  ')}`).join('');
          else if (o.jsonl) text = `${tasks.map((t) => JSON.stringify(t)).join('\n')}\n`;
          else text = `${tablePage(tasks)}\n`;
          if (!(await stdout.write(text))) return 0;
          printed += tasks.length;
          beforeId = tasks.at(-1)!.id;
        }
        if (!more || (!o.all && printed >= limit)) break;
      }
      if (o.json) await stdout.write(printed ? '\n]\n' : ']\n');
      else if (!o.jsonl && printed === 0) await stdout.write('(no tasks)\n');
    } finally {
      stdout.release();
    }
    if (more) {
      const counts = await store.countByState();
      const total = state ? counts[state] : Object.values(counts).reduce((a, b) => a + b, 0);
      process.stderr.write(`agentq: the newest ${printed} of ${total} ${state ? `${state} ` : ''}tasks shown; --limit N or --all for more\n`);
    }
    return 0;
  });
}

/**
 * `agentq delegations [--state S] [--limit N] [--json]`: the delegation ledger, newest first,
 * with each one's result preview or error.
 * @throws UsageError for a state that is not a delegation state or a limit that is not 1–1000
 */
export async function delegationsCommand(g: GlobalOptions, o: { state?: string; limit?: string; json?: boolean }): Promise<number> {
  if (o.state !== undefined && !(DELEGATION_STATES as readonly string[]).includes(o.state)) {
    throw new UsageError(`--state: ${JSON.stringify(o.state)} is not one of ${DELEGATION_STATES.join(', ')}`);
  }
  const limit = o.limit === undefined ? 100 : Number(o.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError(`--limit: ${JSON.stringify(o.limit)} is not a whole number from 1 to 1000`);
  return withProject(g, async ({ store }) => {
    const rows = await delegationsReport(store, { ...(o.state ? { state: o.state as DelegationState } : {}), limit });
    out(o.json ? JSON.stringify(rows, null, 2) : rows.length ? delegationRows(rows, Date.now()) : '(no delegations)');
    return 0;
  });
}

/**
 * stdout for long output: each write waits while the pipe is full (a slow reader), and yields
 * to the event loop so that a reader that went away (EPIPE, `agentq list --all | head`) is seen;
 * then `write` returns false and the caller stops.
 */
class StdoutWriter {
  private gone = false;
  private readonly onError = (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    this.gone = true;
  };

  constructor() {
    process.stdout.on('error', this.onError);
  }

  /** Writes `text`; false when the reader has gone (nothing more should be written). */
  async write(text: string): Promise<boolean> {
    if (this.gone) return false;
    if (!process.stdout.write(text)) await once(process.stdout, 'drain').catch(() => {});
    await new Promise<void>((resolve) => setImmediate(resolve));
    return !this.gone;
  }

  /** Stops listening for stdout's errors; after a gone reader, later writes stay quiet. */
  release(): void {
    if (!this.gone) process.stdout.off('error', this.onError);
  }
}

/**
 * `agentq show ID`: one task (its fields, `runs_on` among them), its attempts with the host and
 * labels of the dispatcher each ran on (labels while it is registered), its verify runs, its
 * subtask tree, its origin checkout (and where its result file is when that is another
 * checkout), and its result or prompt. `--json`: the task as stored (`origin` included),
 * `attemptHistory` (each with `dispatcher: { host, labels }`, null where unknown),
 * `verifications` (`Verification`) and `subtasks`.
 */
export async function showCommand(g: GlobalOptions, ref: string, o: { json?: boolean }): Promise<number> {
  return withProject(g, async ({ store, paths }) => {
    const task = await findTask(store, ref);
    const attempts = await store.listAttempts(task.id);
    const verifications = await store.listVerifications(task.id);
    const tree: string[] = [];
    const walk = async (id: number, depth: number) => {
      for (const sub of await store.listSubtasks(id)) {
        tree.push(`${'  '.repeat(depth)}└─ #${sub.id} ${sub.name} [${sub.state}]${sub.failedReason ? ` ${sub.failedReason}` : ''}`);
        await walk(sub.id, depth + 1);
      }
    };
    await walk(task.id, 0);
    const workers = new Map((await store.listWorkers()).map((w) => [w.id, w]));
    if (o.json) {
      const subtasks = (await store.listSubtasks(task.id)).map((t) => ({ id: t.id, name: t.name, state: t.state }));
      const attemptHistory = attempts.map((a) => ({ ...a, dispatcher: attemptDispatcher(a, workers) }));
      out(JSON.stringify({ ...task, attemptHistory, verifications, subtasks }, null, 2));
    } else out(taskDetail(task, attempts, { subtaskTree: tree, workers, here: projectOrigin(paths), verifications }));
    return 0;
  });
}

/**
 * `agentq sync`: writes every missing result file of this checkout's tasks (those whose origin
 * it is, and those without one: `Store.listUnreported`) and exits; no dispatcher loop, no
 * claims. A task another live dispatcher ended moments ago and writes itself is left to it
 * (see `Reporter.writeMissing`). Prints each file written, then how many.
 * @returns 0, or 1 when a file could not be written (each error printed)
 */
export async function syncCommand(g: GlobalOptions): Promise<number> {
  const [{ DispatcherEvents }, { Reporter }, { Notifier }] = await Promise.all([import('../events/events.ts'), import('../scheduler/reporter.ts'), import('../notify/notifier.ts')]);
  return withProject(g, async ({ store, paths, config }) => {
    const origin = projectOrigin(paths);
    const events = new DispatcherEvents();
    events.on('error', () => {}); // the failures come back from writeMissing, printed below
    // Ends not recorded yet (a dispatcher stopped before their file) are recorded for `notify:`; the next dispatcher delivers them.
    const notifier = new Notifier({ store, config, paths, events });
    const reporter = new Reporter({ paths, store, origin, events, leaseMs: config.lease, now: Date.now, workerId: null, recordEnd: (task) => notifier.taskEnded(task) });
    const { written, deferred, failed } = await reporter.writeMissing();
    const shown = (file: string) => path.relative(process.cwd(), file) || file;
    for (const t of written) out(`wrote     ${shown(t.resultPath!)} (#${t.id} ${t.name}, ${t.state})`);
    for (const t of deferred) out(`left      #${t.id} ${t.name} to the dispatcher that has just ended it (it writes the file)`);
    for (const { task, error } of failed) process.stderr.write(`agentq: #${task.id} ${task.name}: result file not written: ${error.message}\n`);
    out(`agentq sync: ${written.length} result file(s) written in ${formatOrigin(origin)}${failed.length ? `; ${failed.length} could not be written` : ''}`);
    return failed.length ? 1 : 0;
  });
}

/**
 * Prints the output of an attempt's verify commands: this checkout's `N.verify-K.log`, else
 * the last lines the store kept of it.
 */
function printVerifyLogs(verifications: readonly Verification[]): void {
  for (const v of verifications) {
    const local = v.outputPath !== null && fs.existsSync(v.outputPath) ? v.outputPath : null;
    out(`==> attempt ${v.attemptNumber} verify ${v.number} (${local ?? `its last ${VERIFY_TAIL_LINES} lines, kept in the store`}) <==`);
    process.stdout.write(local ? fs.readFileSync(local) : v.outputTail);
  }
}

/**
 * `agentq logs ID`: the raw output of a task's attempts (and of their verify commands). Each log comes from this checkout's
 * file, or, when the attempt ran elsewhere (another machine or checkout) or its file was
 * removed, from the tail the store kept when it ended (see src/ops/attempt-log.ts).
 * - No `--attempt`, no `-f`: every attempt's stdout and stderr (only stderr with `stderr`),
 *   each under a `==> attempt N stdout (WHERE) <==` line naming the file or the store's copy.
 * - `--attempt N`: that attempt's stdout (or stderr), raw; with `-f`, followed until the
 *   attempt ends. `-f` alone: the newest attempt's, then each retry's, until the task ends.
 *   A log not read from a file here is announced by one `agentq: …` line on stderr; one
 *   that runs on another host is printed from the store once it ends.
 * Returns 1 when `--attempt N`'s log is neither here nor in the store.
 * @throws UsageError for an `--attempt` that is not a whole number ≥ 1; NotFoundError for an unknown task or attempt
 */
export async function logsCommand(g: GlobalOptions, ref: string, o: { follow?: boolean; attempt?: string; stderr?: boolean }): Promise<number> {
  const wanted = o.attempt === undefined ? undefined : Number(o.attempt);
  if (wanted !== undefined && !(/^\d+$/.test(o.attempt!) && wanted >= 1 && Number.isSafeInteger(wanted))) {
    throw new UsageError(`--attempt: ${JSON.stringify(o.attempt)} is not an attempt number (1, 2, …)`);
  }
  const stream: LogStream = o.stderr ? 'stderr' : 'stdout';
  const { describeSource, locateLog, storedLabel, streamAttemptLog } = await import('../ops/attempt-log.ts');
  const here = os.hostname();
  const note = (line: string) => process.stderr.write(`agentq: ${line}\n`);
  return withProject(g, async ({ store, paths }) => {
    const task = await findTask(store, ref);
    const attempts = await store.listAttempts(task.id);
    const verifications = wanted === undefined && !o.follow ? await store.listVerifications(task.id) : [];
    /** Prints one log raw; false when it is neither here nor stored. */
    const printOne = async (number: number): Promise<boolean> => {
      let found = true;
      const onSource = (source: LogSource) => {
        if (source.kind !== 'file') note(describeSource(source, `attempt ${number}'s ${stream}`, here));
        if (source.kind === 'none') found = false;
      };
      for await (const chunk of streamAttemptLog(store, paths, task, number, stream, { follow: o.follow === true, onSource })) process.stdout.write(chunk);
      return found;
    };
    if (wanted !== undefined) {
      if (!attempts.some((a) => a.number === wanted)) {
        throw new NotFoundError(`task ${task.id} has no attempt ${wanted} (${attempts.length ? `it has 1 to ${attempts.length}` : 'none yet'})`);
      }
      return (await printOne(wanted)) ? 0 : 1;
    }
    if (!o.follow) {
      if (attempts.length === 0) out('(no attempts yet)');
      for (const a of attempts) {
        let output: Promise<AttemptOutput | null> | undefined;
        const stored = () => (output ??= store.attemptOutput(a.id));
        let noted = false;
        for (const s of o.stderr ? (['stderr'] as const) : (['stdout', 'stderr'] as const)) {
          const source = await locateLog(store, paths, task, a, s, stored);
          if (source.kind === 'file') {
            if (fs.statSync(source.file).size === 0) continue;
            out(`==> attempt ${a.number} ${s} (${source.file}) <==`);
            process.stdout.write(fs.readFileSync(source.file));
          } else if (source.kind === 'stored') {
            if (source.tail.text === '') continue;
            out(`==> attempt ${a.number} ${s} (${storedLabel(source, here)}) <==`);
            process.stdout.write(source.tail.text);
          } else if (!noted) {
            noted = true;
            note(describeSource(source, `attempt ${a.number}'s log`, here));
          }
        }
        if (!o.stderr) printVerifyLogs(verifications.filter((v) => v.attemptId === a.id));
      }
      return 0;
    }
    // Follow: the newest attempt until it ends, then each next one, until the task ends.
    let number = 0;
    for (;;) {
      const latest = (await store.listAttempts(task.id)).at(-1);
      if (latest && latest.number !== number) {
        number = latest.number;
        out(`==> attempt ${number} ${stream} <==`);
        await printOne(number);
        continue;
      }
      const current = await store.getTask(task.id);
      if (!current || isTerminal(current.state)) return 0;
      await new Promise((r) => setTimeout(r, 250));
    }
  });
}

export async function cancelCommand(g: GlobalOptions, ref: string): Promise<number> {
  return withProject(g, async ({ store, paths }) => {
    const { task, outcome } = await cancelTask(store, paths, (await findTask(store, ref)).id, Date.now());
    if (outcome === 'requested') out(`cancelling #${task.id} ${task.name}: its dispatcher stops the agent`);
    else if (outcome === 'cancelled') out(`cancelled #${task.id} ${task.name}${task.resultPath === null && task.origin ? ` (its result file goes to its origin checkout ${formatOrigin(task.origin)})` : ''}`);
    else {
      out(`#${task.id} ${task.name} already ended ${task.state}`);
      return 1;
    }
    return 0;
  });
}

export async function retryCommand(g: GlobalOptions, ref: string): Promise<number> {
  return withProject(g, async ({ store }) => {
    const { task, before, retried } = await retryTask(store, (await findTask(store, ref)).id, Date.now());
    if (!retried) {
      out(`#${task.id} ${task.name} is ${before}: only failed, timed-out or cancelled tasks can be retried`);
      return 1;
    }
    out(`requeued #${task.id} ${task.name} (earlier attempts kept in its history)`);
    return 0;
  });
}

export async function answerCommand(g: GlobalOptions, ref: string, text: string): Promise<number> {
  return withProject(g, async ({ store }) => {
    const task = await answerTask(store, ref, text, Date.now());
    out(`answered #${task.id} ${task.name}: queued again${task.stats.sessionId ? ` (resumes session ${task.stats.sessionId})` : ''}`);
    return 0;
  });
}

/** How long `agentq status` waits for the store's write lock before it reports the store busy, in ms. */
const STATUS_WRITE_PROBE_MS = 1_000;

/**
 * `agentq status`: counts per state, running tasks (each with its agent's last activity, as
 * its dispatcher recorded it with the lease heartbeat), paused agents, today's use per agent,
 * dispatchers (with their labels and the age of their last heartbeat), the newest run of each
 * detector (its error, the lines it skipped), `notify:` targets (deliveries, the newest error,
 * FAILING when the newest try failed). Also says when the store is busy:
 * another process has held its write lock for {@link STATUS_WRITE_PROBE_MS} (dispatchers
 * then wait and retry); `--json` adds `store: { busy: reason | null }`.
 */
export async function statusCommand(g: GlobalOptions, o: { json?: boolean }): Promise<number> {
  return withProject(g, async ({ store, config }) => {
    const now = Date.now();
    const accounts = accountMap(config, Object.keys(config.agents));
    const snapshot = await statusSnapshot(store, now, accounts);
    const notify = await notifyStatus(store, config);
    const busy = await store.probeWrite(STATUS_WRITE_PROBE_MS);
    const { counts, running, pausedAgents: pauses, agents, workers, detectors } = snapshot;
    if (o.json) {
      out(JSON.stringify({ ...snapshot, notify, store: { busy } }, null, 2));
      return 0;
    }
    if (busy) out(`store: busy (${busy}): another process holds its write lock; dispatchers wait and retry\n`);
    out(TASK_STATES.map((s) => `${s}: ${counts[s]}`).join('  '));
    out(running.length ? `\nrunning:\n${runningRows(running, now)}` : '\nrunning: none');
    out(pauses.length ? `\npaused agents:\n${pauseLines(pauses, now, accounts).join('\n')}` : '\npaused agents: none');
    if (agents.length) {
      out(
        `\nagents today (since local midnight):\n${table(
          ['AGENT', 'RUNNING', 'ATTEMPTS', 'SPEND', 'TOKENS IN', 'TOKENS OUT', 'PAUSED UNTIL'],
          agents.map((a) => [
            a.account === undefined ? a.agent : `${a.agent} (account ${a.account})`,
            String(a.running),
            String(a.attempts),
            `$${a.costUsd.toFixed(4)}`,
            String(a.inputTokens),
            String(a.outputTokens),
            a.pausedUntil === null ? '-' : new Date(a.pausedUntil).toISOString(),
          ]),
        )}`,
      );
    }
    out(
      workers.length
        ? `\ndispatchers:\n${table(
            ['ID', 'HOST', 'PID', 'RUNNING', 'LABELS', 'LAST HEARTBEAT'],
            workers.map((w) => [
              w.id,
              w.host,
              String(w.pid),
              String(w.running),
              w.labels.join(', ') || '-',
              `${new Date(w.heartbeatAt).toISOString()} (${formatDuration(Math.max(0, now - w.heartbeatAt))} ago)`,
            ]),
          )}`
        : '\ndispatchers: none',
    );
    if (detectors.length) out(`\ndetectors (newest run of each):\n${detectorLines(detectors, now).join('\n')}`);
    if (notify.length) {
      const ago = (at: number) => `${formatDuration(Math.max(0, now - at))} ago`;
      out(
        `\nnotifications:\n${table(
          ['TARGET', 'ON', 'DELIVERED', 'PENDING', 'FAILED', 'LAST ERROR'],
          notify.map((n) => [
            n.label,
            n.on.join(', ') || '-',
            String(n.delivered),
            n.retrying ? `${n.pending} (${n.retrying} retrying)` : String(n.pending),
            String(n.failed),
            n.lastError === null ? '-' : `${n.failing ? 'FAILING: ' : ''}${n.lastError.replace(/\s+/g, ' ').slice(0, 120)} (${ago(n.lastErrorAt ?? now)})`,
          ]),
        )}`,
      );
    }
    return 0;
  });
}

/**
 * `agentq usage`: spend (USD) and tokens of the attempts started in a window, grouped by
 * `--by` (default day, agent, model; days cut in the process's local time zone, `TZ`).
 * `--since` defaults to local midnight 7 days ago, `--until` to now.
 * @throws UsageError for a bad `--since`/`--until`/`--by`, or `--until` not after `--since`.
 */
export async function usageCommand(g: GlobalOptions, o: { since?: string; until?: string; by?: string; json?: boolean }): Promise<number> {
  const now = Date.now();
  // Flags are checked before the project is opened (a usage error needs no store).
  if (o.since !== undefined) parseTimeArg('--since', o.since, now);
  if (o.until !== undefined) parseTimeArg('--until', o.until, now);
  if (o.by !== undefined) parseUsageBy(o.by);
  return withProject(g, async ({ store }) => {
    const report = await usageReport(store, o, now);
    if (o.json) out(JSON.stringify(report, null, 2));
    else out(renderUsage({ ...report, since: Date.parse(report.since), until: Date.parse(report.until) }));
    return 0;
  });
}
