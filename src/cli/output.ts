/**
 * Rendering for the CLI: task tables, one-task detail, pauses (the live progress of `run` and
 * `serve` is in progress.ts, so the other commands do not load it).
 */
import { formatOrigin, sameOrigin } from '../config/project.ts';
import { formatDuration } from '../config/duration.ts';
import { isTerminal, type AgentPause, type Attempt, type Task, type TaskOrigin, type Verification } from '../core/types.ts';
import type { DelegationView } from '../ops/task-ops.ts';
import { hostOfWorker } from '../scheduler/worker-id.ts';
import type { DetectorRun, WorkerInfo } from '../store/store.ts';

/** A cost cell: `$0.0123`, empty when unknown. */
export const cost = (usd: number | null) => (usd === null ? '' : `$${usd.toFixed(4)}`);

/**
 * Each column's width: the widest of `start` (the header's, or the widths of the pages so far)
 * and the rows' cells. A loop, not `Math.max(...cells)`: a spread of 130k cells overflows the stack.
 */
function columnWidths(start: readonly number[], rows: readonly string[][]): number[] {
  const widths = [...start];
  for (const row of rows) {
    for (let i = 0; i < widths.length; i++) widths[i] = Math.max(widths[i]!, (row[i] ?? '').length);
  }
  return widths;
}

/** One line of a table: cells padded to `widths`, two spaces apart, no trailing blanks. */
const tableLine = (cells: readonly string[], widths: readonly number[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();

/** A fixed-width table; columns sized to their content. */
export function table(headers: string[], rows: string[][]): string {
  const widths = columnWidths(
    headers.map((h) => h.length),
    rows,
  );
  return [tableLine(headers, widths), ...rows.map((r) => tableLine(r, widths))].join('\n');
}

const TASK_HEADERS = ['ID', 'STATE', 'PRIORITY', 'AGENT', 'NAME', 'ATTEMPTS', 'DURATION', 'COST', 'REASON'];

/** A task's cells under {@link TASK_HEADERS}. */
function taskCells(t: Task): string[] {
  return [
    String(t.id),
    stateLabel(t),
    t.priority,
    t.agent,
    t.name,
    String(t.claims),
    t.durationMs === null ? '' : formatDuration(t.durationMs),
    cost(t.stats.costUsd),
    (t.failedReason ?? '').split('\n')[0]!.slice(0, 80),
  ];
}

/**
 * A task's state as the CLI shows it: `blocked (taken over)` for a task a person took over by
 * hand (`agentq attach`), `running (taking over)` while its dispatcher is being asked to stop it.
 */
export function stateLabel(task: Pick<Task, 'state' | 'takenOverAt'>): string {
  if (task.takenOverAt === null) return task.state;
  if (task.state === 'blocked') return 'blocked (taken over)';
  return task.state === 'running' ? 'running (taking over)' : task.state;
}

export function taskRows(tasks: Task[]): string {
  return table(TASK_HEADERS, tasks.map(taskCells));
}

/**
 * The task table of `agentq list`, rendered page by page as the pages are read: call it with
 * each page; the first page's text starts with the header. Each column is as wide as the
 * widest cell so far, so the rows of later pages line up unless one of them brings a longer cell.
 * @returns a function from one page of tasks to its lines (no trailing newline)
 */
export function taskTablePages(): (tasks: readonly Task[]) => string {
  let widths: number[] | null = null;
  return (tasks) => {
    const rows = tasks.map(taskCells);
    const first = widths === null;
    widths = columnWidths(widths ?? TASK_HEADERS.map((h) => h.length), rows);
    const lines = rows.map((r) => tableLine(r, widths!));
    return (first ? [tableLine(TASK_HEADERS, widths), ...lines] : lines).join('\n');
  };
}

/**
 * The running tasks of `agentq status`: id, agent, name, attempt, how long it runs, and
 * when its agent last showed activity (`lastActivityAt`, recorded with the lease heartbeat;
 * see src/scheduler/stall.ts) and how long ago.
 */
export function runningRows(tasks: Task[], now: number): string {
  const ago = (ms: number | null) => (ms === null ? '' : formatDuration(Math.max(0, now - ms)));
  return table(
    ['ID', 'AGENT', 'NAME', 'ATTEMPT', 'RUNNING', 'LAST ACTIVITY'],
    tasks.map((t) => [
      String(t.id),
      t.runAgent ?? t.agent,
      t.name,
      String(t.claims),
      ago(t.startedAt),
      t.lastActivityAt === null ? '-' : `${new Date(t.lastActivityAt).toISOString()} (${ago(t.lastActivityAt)} ago)`,
    ]),
  );
}

/** The delegation ledger as a table: what each delegated task became at its remote, with the result preview or the error. */
export function delegationRows(rows: DelegationView[], now: number): string {
  return table(
    ['ID', 'TASK', 'REMOTE', 'STATE', 'REMOTE TASK', 'UPDATED', 'RESULT / ERROR'],
    rows.map((d) => [
      String(d.id),
      `#${d.taskId}${d.taskName ? ` ${d.taskName}` : ''}`,
      d.remote.length > 40 ? `${d.remote.slice(0, 39)}…` : d.remote,
      d.state,
      d.remoteTaskId ?? '-',
      `${formatDuration(Math.max(0, now - d.updatedAt))} ago`,
      ((d.state === 'completed' || d.state === 'input_required' ? d.resultPreview : (d.lastError ?? d.resultPreview)) ?? '').replace(/\s+/g, ' ').slice(0, 80),
    ]),
  );
}

/** Whether `task` comes from a checkout other than `here` (its result file is written there). */
export function fromElsewhere(task: Pick<Task, 'origin'>, here: TaskOrigin | null): task is { origin: TaskOrigin } {
  return task.origin !== null && here !== null && !sameOrigin(task.origin, here);
}

/** The `result_file` line of {@link taskDetail}: the path, and where it is when that is another checkout. */
function resultFileLine(task: Task, here: TaskOrigin | null): string {
  if (!fromElsewhere(task, here)) return task.resultPath ?? '-';
  const there = formatOrigin(task.origin);
  if (task.resultPath !== null) return `${task.resultPath} (in the origin checkout ${there}, not this one)`;
  return isTerminal(task.state) ? `- (not written yet: agentq run, serve or sync in ${there} writes it)` : `- (written in the origin checkout ${there})`;
}

/** What {@link taskDetail} shows besides the task and its attempts. */
export interface TaskDetailExtras {
  /** Pre-rendered lines of its subtask tree; none: no tree. */
  subtaskTree?: string[];
  /** The registered dispatchers, for the host and labels of each attempt's ({@link attemptDispatcher}). */
  workers?: ReadonlyMap<string, WorkerInfo>;
  /** The checkout showing it, so a task from another one says where its result file is; null: not known. */
  here?: TaskOrigin | null;
  /** Its verify runs (a table under the attempts'; none: no table). */
  verifications?: readonly Verification[];
}

/** The dispatcher an attempt ran on, as far as it is known. */
export interface AttemptDispatcher {
  /** Its host (from its worker row, else from its id); null when the id does not tell. */
  host: string | null;
  /** Its labels while it is registered (live); null once it has left the worker table. */
  labels: string[] | null;
}

/** The dispatcher of an attempt: its host (recorded on the attempt; for older rows, its worker row or id) and, while its worker row is registered, its labels. */
export function attemptDispatcher(attempt: Pick<Attempt, 'workerId' | 'host'>, workers: ReadonlyMap<string, WorkerInfo>): AttemptDispatcher {
  const w = workers.get(attempt.workerId);
  return { host: attempt.host ?? w?.host ?? hostOfWorker(attempt.workerId), labels: w ? w.labels : null };
}

/**
 * One task in full: its fields, its attempts, and `extras` ({@link TaskDetailExtras}): its subtask tree, the dispatchers, the checkout
 * showing it, its verify runs.
 */
export function taskDetail(task: Task, attempts: Attempt[], extras: TaskDetailExtras = {}): string {
  const { subtaskTree = [], workers = new Map<string, WorkerInfo>(), here = null, verifications = [] } = extras;
  const iso = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString());
  const fields: Array<[string, unknown]> = [
    ['id', task.id],
    ['name', task.name],
    ['title', task.title],
    ['state', stateLabel(task)],
    ['priority', task.priority],
    ['agent', task.agent],
    ['model', task.stats.model ?? task.model ?? '(routing)'],
    ['depends_on', task.dependsOn.join(', ') || '-'],
    ['runs_on', task.runsOn.join(', ') || '-'],
    ...(task.parent ? ([['parent', `${task.parent}${task.parentId === null ? '' : ` (task ${task.parentId})`}`]] as Array<[string, unknown]>) : []),
    ['timeout', formatDuration(task.timeoutMs)],
    ...(task.verify !== null ? ([['verify', task.verify.length ? task.verify.join(' && ') : '(none)']] as Array<[string, unknown]>) : []),
    ...(task.stallTimeoutMs !== null ? ([['stall_timeout', task.stallTimeoutMs === 0 ? 'off' : formatDuration(task.stallTimeoutMs)]] as Array<[string, unknown]>) : []),
    ['retries', task.retries],
    ['attempts', `${task.claims} (${task.attempts} counted)`],
    ['session_id', task.stats.sessionId ?? '-'],
    ['cost_usd', task.stats.costUsd ?? '-'],
    ['tokens', task.stats.inputTokens === null ? '-' : `${task.stats.inputTokens} in / ${task.stats.outputTokens ?? 0} out`],
    ['created_at', iso(task.createdAt)],
    ['started_at', iso(task.startedAt)],
    ['finished_at', iso(task.finishedAt)],
    ['failed_reason', task.failedReason ?? '-'],
    ...(task.takenOverAt !== null ? ([['taken_over', `${iso(task.takenOverAt)}${task.state === 'blocked' ? ` (by hand: agentq release ${task.id} hands it back)` : ''}`]] as Array<[string, unknown]>) : []),
    ...(task.question === null && task.answer !== null ? ([['release_note', task.answer]] as Array<[string, unknown]>) : []),
    ...(task.question ? ([['question', task.question], ['answer', task.answer ?? (task.state === 'blocked' ? '(waiting: agentq answer)' : '-')]] as Array<[string, unknown]>) : []),
    ...(task.ranOn ? ([['ran_on', task.ranOn]] as Array<[string, unknown]>) : []),
    ...(task.branch ? ([['branch', task.branch], ['commits', task.commits.map((c) => `${c.hash.slice(0, 12)} ${c.subject}`).join('; ') || '-']] as Array<[string, unknown]>) : []),
    ...(task.pushedTo ? ([['pushed_to', task.pushedTo]] as Array<[string, unknown]>) : []),
    ...(task.pushError ? ([['push_error', task.pushError]] as Array<[string, unknown]>) : []),
    ['origin', task.origin === null ? '- (not recorded: from an older agentq)' : `${formatOrigin(task.origin)}${fromElsewhere(task, here) ? ' (another checkout)' : ''}`],
    ['result_file', resultFileLine(task, here)],
    ['tags', task.tags.join(', ') || '-'],
    ...Object.entries(task.extra).map(([k, v]): [string, unknown] => [k, typeof v === 'string' ? v : JSON.stringify(v)]),
  ];
  const head = fields.map(([k, v]) => `${`${k}:`.padEnd(15)}${String(v)}`).join('\n');
  const tries = attempts.length
    ? table(
        ['#', 'OUTCOME', 'AGENT', 'MODEL', 'HOST', 'LABELS', 'EXIT', 'DURATION', 'COST', 'REASON'],
        attempts.map((a) => [
          String(a.number),
          a.outcome,
          a.agent,
          a.stats.model ?? a.model ?? '',
          ...dispatcherCells(attemptDispatcher(a, workers), a.workerId),
          a.exitCode === null ? '' : String(a.exitCode),
          a.durationMs === null ? '' : formatDuration(a.durationMs),
          cost(a.stats.costUsd),
          (a.reason ?? '').split('\n')[0]!.slice(0, 80),
        ]),
      )
    : '(no attempts yet)';
  const verified = verifications.length
    ? `\nverifications:\n${table(
        ['#', 'VERIFY', 'EXIT', 'DURATION', 'COMMAND', 'OUTPUT'],
        verifications.map((v) => [
          String(v.attemptNumber),
          String(v.number),
          v.timedOut ? 'timeout' : v.exitCode === null ? 'killed' : String(v.exitCode),
          formatDuration(v.durationMs),
          v.command.split('\n')[0]!.slice(0, 60),
          v.outputPath ?? '-',
        ]),
      )}\n`
    : '';
  const body = task.state === 'completed' ? `\n--- result ---\n${task.result ?? ''}` : `\n--- prompt ---\n${task.prompt}`;
  const subtasks = subtaskTree.length ? `\nsubtasks:\n#${task.id} ${task.name} [${task.state}]\n${subtaskTree.join('\n')}\n` : '';
  return `${head}\n\n${tries}\n${verified}${subtasks}${body}\n`;
}

/** The HOST and LABELS cells of an attempt: `(gone)` for the labels of a dispatcher no longer registered. */
function dispatcherCells(d: AttemptDispatcher, workerId: string): [string, string] {
  return [d.host ?? workerId, d.labels === null ? '(gone)' : d.labels.join(', ') || '-'];
}

/**
 * One line per pause. `accounts`: the account of each agent whose account is not its name; a
 * pause of such an account is shown as `team-a (account of claude)`.
 */
export function pauseLines(pauses: AgentPause[], now: number, accounts: Readonly<Record<string, string>> = {}): string[] {
  const named = (key: string) => {
    const agents = Object.keys(accounts).filter((a) => accounts[a] === key);
    return agents.length ? `${key} (account of ${agents.join(', ')})` : key;
  };
  return pauses.map((p) => `${named(p.agent)} paused until ${new Date(p.until).toISOString()} (${formatDuration(p.until - now)} left): ${p.reason}`);
}

/**
 * `agentq status`'s lines for detectors' newest runs: one per detector (when it ran, what it
 * took or why it failed), then one per line it skipped, indented, with the line's number.
 */
export function detectorLines(runs: DetectorRun[], now: number): string[] {
  return runs.flatMap((r) => {
    const when = `${new Date(r.ranAt).toISOString()} (${formatDuration(Math.max(0, now - r.ranAt))} ago)`;
    const what = r.error !== null ? `failed, nothing taken: ${r.error}` : `${r.lines} line(s): ${r.created} new task(s), ${r.known} known, ${r.problems.length} skipped`;
    return [`${r.name}  ran ${when}: ${what}`, ...r.problems.map((p) => `  line ${p.line}: ${p.reason}`)];
  });
}
