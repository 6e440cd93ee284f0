/**
 * What the CLI commands, the HTTP API and the MCP server do on the store: cancel, answer, retry, the status
 * snapshot (`agentq status --json`, GET /v1/status) and the usage report (`agentq usage
 * --json`, GET /v1/usage).
 */
import { DEFAULT_USAGE_BY, localMidnightDaysAgo, parseTimeArg, parseUsageBy, type UsageTotal } from '../cli/usage-report.ts';
import { projectOrigin, writesResultHere, type ProjectPaths } from '../config/project.ts';
import { NotFoundError, UsageError } from '../core/errors.ts';
import type { Delegation } from '../core/delegation.ts';
import type { AgentPause, Task, TaskState } from '../core/types.ts';
import type { AgentUsage, DelegationFilter, DetectorRun, Store, WorkerInfo } from '../store/store.ts';
import { resolvedTimeZone, type UsageDimension, type UsageRow } from '../store/usage.ts';

/** A task by id or name. @throws NotFoundError naming the reference */
export async function findTask(store: Store, ref: string | number): Promise<Task> {
  const task = await store.getTask(ref);
  if (!task) throw new NotFoundError(`no task ${JSON.stringify(String(ref))} (give a task id or name)`);
  return task;
}

/** A delegation as `agentq delegations` and GET /v1/delegations show it: the ledger row (less its push token's hash) and its task's name. */
export type DelegationView = Omit<Delegation, 'pushTokenSha256'> & { taskName: string | null };

/**
 * The delegation ledger, newest first (`agentq delegations`, GET /v1/delegations), each with
 * its task's name; `state` filters, `limit` (default 100) bounds, `beforeId` pages.
 */
export async function delegationsReport(store: Store, filter: DelegationFilter = {}): Promise<DelegationView[]> {
  const rows = await store.listDelegations(filter);
  const names = new Map<number, string | null>();
  for (const id of new Set(rows.map((d) => d.taskId))) names.set(id, (await store.getTask(id))?.name ?? null);
  return rows.map(({ pushTokenSha256: _hash, ...d }) => ({ ...d, taskName: names.get(d.taskId) ?? null }));
}

/**
 * Cancels a task (`store.cancel`): a queued or blocked one ends `cancelled` at once, and
 * its failed/ file is written here when this checkout (`paths`) is its origin (else its
 * origin's agentq writes it: `run`, `serve` or `sync` there); a running one is marked for its dispatcher, which stops
 * the agent. `outcome`: `cancelled`, `requested` (running), or `ended` (it had already
 * ended otherwise; nothing changed).
 */
export async function cancelTask(store: Store, paths: ProjectPaths, id: number, now: number): Promise<{ task: Task; outcome: 'cancelled' | 'requested' | 'ended' }> {
  let task = await store.cancel(id, now);
  if (task.state === 'cancelled' && task.resultPath === null && writesResultHere(task, projectOrigin(paths))) {
    // The result-file writer (and the YAML parser) loaded only here: `agentq status` uses this module too.
    const { resultExtras, writeResultFile } = await import('../results/result-file.ts');
    const file = await writeResultFile(paths, task, await resultExtras(store, task));
    await store.setResultPath(task.id, file);
    task = { ...task, resultPath: file };
  }
  return { task, outcome: task.state === 'running' ? 'requested' : task.state === 'cancelled' ? 'cancelled' : 'ended' };
}

/**
 * Requeues a failed, timed-out or cancelled task (`store.retry`, fresh retry budget,
 * history kept). `retried` is false when its state allows no retry (`before` says which).
 */
export async function retryTask(store: Store, id: number, now: number): Promise<{ task: Task; before: TaskState; retried: boolean }> {
  const before = (await findTask(store, id)).state;
  const task = await store.retry(id, now);
  return { task, before, retried: task.state === 'queued' && before !== 'queued' };
}

/**
 * Answers a `blocked` task's question (`store.answer`): it is queued again, and its next
 * attempt resumes the agent's session with `text`.
 * @param ref task id or name
 * @throws UsageError `answer: the answer text is empty` for blank text; NotFoundError for an
 *   unknown task; AgentQueueError `not_blocked` when it asks nothing
 */
export async function answerTask(store: Store, ref: string | number, text: string, now: number): Promise<Task> {
  if (text.trim() === '') throw new UsageError('answer: the answer text is empty');
  return store.answer((await findTask(store, ref)).id, text, now);
}

/** An agent's figures today and its pause (if paused now). */
export interface AgentStatus extends AgentUsage {
  /** The agent's account (`agents.<name>.account`), present only when it is not the agent's name. */
  account?: string;
  /** Epoch ms the pause of the agent's account ends; null when it is not paused. */
  pausedUntil: number | null;
  pauseReason: string | null;
}

/** The data of `agentq status --json` and GET /v1/status. */
export interface StatusSnapshot {
  /** Tasks per state. */
  counts: Record<TaskState, number>;
  running: Task[];
  /** Pauses in force, by account (`agent` is the account: the agent's name unless `agents.<name>.account` names another). */
  pausedAgents: AgentPause[];
  /** Per agent (with a running task, an attempt since local midnight, or a paused account): running, attempts, USD and tokens since local midnight, its account's pause. */
  agents: AgentStatus[];
  /** Live dispatchers on the store, each with how many tasks it runs now. */
  workers: Array<WorkerInfo & { running: number }>;
  /** The newest run of each detector (a recurring file with `detect:`), by name: its error and the lines it skipped. */
  detectors: DetectorRun[];
}

/**
 * Reads the status snapshot; "today" is since local midnight of `now` (epoch ms).
 * @param accounts the account of each agent whose account is not its name (`accountMap` of
 *   the config); a pause of an account shows on its agents' rows
 */
export async function statusSnapshot(store: Store, now: number, accounts: Readonly<Record<string, string>> = {}): Promise<StatusSnapshot> {
  const counts = await store.countByState();
  const running = await store.listTasks({ state: 'running' });
  const pausedAgents = await store.listPauses(now);
  const runningOn = new Map<string, number>();
  for (const r of await store.listRunning()) runningOn.set(r.workerId, (runningOn.get(r.workerId) ?? 0) + 1);
  const workers = (await store.listWorkers()).map((w) => ({ ...w, running: runningOn.get(w.id) ?? 0 }));
  const midnight = new Date(now);
  midnight.setHours(0, 0, 0, 0);
  const usage = await store.agentUsage(midnight.getTime());
  const paused = new Map(pausedAgents.map((p) => [p.agent, p]));
  const accountOf = (agent: string) => accounts[agent] ?? agent;
  const row = (a: AgentUsage): AgentStatus => {
    const account = accountOf(a.agent);
    const p = paused.get(account);
    return { ...a, ...(account === a.agent ? {} : { account }), pausedUntil: p?.until ?? null, pauseReason: p?.reason ?? null };
  };
  const agents: AgentStatus[] = usage.map(row);
  for (const p of pausedAgents) {
    // A paused account without a row: a row for each agent on it here (else for the account itself).
    const on = Object.keys(accounts).filter((a) => accounts[a] === p.agent);
    for (const agent of on.length ? on : [p.agent]) {
      if (!agents.some((a) => a.agent === agent)) agents.push(row({ agent, running: 0, attempts: 0, costUsd: 0, inputTokens: 0, outputTokens: 0 }));
    }
  }
  agents.sort((a, b) => a.agent.localeCompare(b.agent));
  return { counts, running, pausedAgents, agents, workers, detectors: await store.listDetectorRuns() };
}

/** The JSON of `agentq usage --json` and GET /v1/usage. */
export interface UsageReport {
  /** ISO 8601. */
  since: string;
  until: string;
  timeZone: string;
  by: UsageDimension[];
  rows: UsageRow[];
  /** The figures of every attempt in the window, each counted once. */
  total: UsageTotal;
}

/**
 * The usage report: attempts started in `[since, until)` grouped by `by` (`store.usage`).
 * `since`/`until` as `agentq usage` takes them (`7d`, `2026-11-01`, an ISO time; default:
 * local midnight 7 days ago, and now), `by` a comma list (default `day,agent,model`).
 * @param names how errors name the inputs (`--since` for the CLI, `since` for the API)
 * @throws UsageError naming the input for a value it cannot read, or `until` not after `since`
 */
export async function usageReport(
  store: Store,
  o: { since?: string; until?: string; by?: string },
  now: number,
  names: { since: string; until: string } = { since: '--since', until: '--until' },
): Promise<UsageReport> {
  const since = o.since === undefined ? localMidnightDaysAgo(now, 7) : parseTimeArg(names.since, o.since, now);
  const until = o.until === undefined ? now : parseTimeArg(names.until, o.until, now);
  if (until <= since) throw new UsageError(`${names.until} (${new Date(until).toISOString()}) is not after ${names.since} (${new Date(since).toISOString()})`);
  const by = o.by === undefined ? [...DEFAULT_USAGE_BY] : parseUsageBy(o.by);
  const rows = await store.usage({ since, until, by });
  const [sum] = await store.usage({ since, until, by: [] });
  const total = sum ?? { attempts: 0, completed: 0, costUsd: 0, inputTokens: 0, outputTokens: 0 };
  return { since: new Date(since).toISOString(), until: new Date(until).toISOString(), timeZone: resolvedTimeZone(), by, rows, total };
}
