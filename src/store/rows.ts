/**
 * Rows → values, shared by every backend: SQLite and PostgreSQL hold the same columns (JSON
 * lists and objects as JSON text, times as epoch ms), so one mapping reads both. Numbers may
 * come as numbers or strings (PostgreSQL BIGINT), flags as 0/1 or booleans.
 */
import { isOpenDelegation, type Delegation, type DelegationState } from '../core/delegation.ts';
import { priorityRank, TERMINAL_STATES, type AgentPause, type Attempt, type AttemptOutcome, type AttemptOutput, type RunStats, type Task, type TaskOrigin, type TaskState, type Verification } from '../core/types.ts';
import type { A2aPush, AgentUsage, CallbackDelivery, CallbackTry, DelegationPatch, DetectorRun, NewTask, Notification, NotificationHealth, StaleClaim, WorkerInfo, WorkspaceRecord } from './store.ts';
import type { UsageRecord } from './usage.ts';

/** A database row, column name → value. */
export type Row = Record<string, unknown>;

export const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
export const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

/** A flag column: SQLite's 0/1 or PostgreSQL's boolean. */
export const flag = (v: unknown): boolean => v === true || Number(v) === 1;

export function statsFrom(row: Row, modelColumn: string): RunStats {
  return {
    sessionId: str(row.session_id),
    model: str(row[modelColumn]),
    costUsd: num(row.cost_usd),
    inputTokens: num(row.input_tokens),
    outputTokens: num(row.output_tokens),
    numTurns: num(row.num_turns),
  };
}

/**
 * `TERMINAL_STATES` as an SQL list of literals (`'completed', 'failed', …`): the states the
 * partial indexes of unreported tasks hold (SQLite: `tasks_running`, migration 023; PostgreSQL:
 * `tasks_unreported`, migration 003). A query
 * can use a partial index only when its own WHERE names the same terms, so `listUnreported`
 * writes these literals rather than bound parameters.
 */
export const TERMINAL_STATES_SQL = TERMINAL_STATES.map((s) => `'${s}'`).join(', ');

/** The origin columns of a task row (`origin_host`, `origin_root`): null when either is. */
export function originFrom(row: Row): TaskOrigin | null {
  const host = str(row.origin_host);
  const root = str(row.origin_root);
  return host === null || root === null ? null : { host, root };
}

export function toTask(row: Row, depIds: number[]): Task {
  const command = str(row.command);
  return {
    id: Number(row.id),
    name: String(row.name),
    title: String(row.title),
    priority: row.priority as Task['priority'],
    agent: String(row.agent),
    model: str(row.model),
    dependsOn: JSON.parse(String(row.depends_on)) as string[],
    dependsOnIds: depIds,
    parent: str(row.parent),
    parentId: num(row.parent_id),
    timeoutMs: Number(row.timeout_ms),
    maxCostUsd: num(row.max_cost_usd),
    retries: Number(row.retries),
    retryBackoffMs: num(row.retry_backoff_ms),
    retryOnTimeout: flag(row.retry_on_timeout),
    concurrencyGroup: str(row.concurrency_group),
    runAt: null,
    workspace: str(row.workspace) as Task['workspace'],
    merge: str(row.merge) as Task['merge'],
    workspaceSetup: row.workspace_setup ? (JSON.parse(String(row.workspace_setup)) as string[]) : null,
    tags: JSON.parse(String(row.tags)) as string[],
    runsOn: JSON.parse(String(row.runs_on)) as string[],
    dedupKey: str(row.dedup_key),
    command: command === null ? null : (JSON.parse(command) as Task['command']),
    remote: str(row.remote),
    remoteMetadata: row.remote_metadata ? (JSON.parse(String(row.remote_metadata)) as Record<string, unknown>) : null,
    maxTurns: num(row.max_turns),
    allowedTools: row.allowed_tools ? (JSON.parse(String(row.allowed_tools)) as string[]) : null,
    verify: row.verify === null || row.verify === undefined ? null : (JSON.parse(String(row.verify)) as string[]),
    verifyTimeoutMs: num(row.verify_timeout_ms),
    verifyRetries: num(row.verify_retries),
    stallTimeoutMs: num(row.stall_timeout_ms),
    extra: JSON.parse(String(row.extra)) as Record<string, unknown>,
    prompt: String(row.prompt),
    source: String(row.source),
    state: row.state as TaskState,
    attempts: Number(row.attempts),
    claims: Number(row.claims),
    cancelRequested: flag(row.cancel_requested),
    runAfter: Number(row.run_after),
    createdAt: Number(row.created_at),
    startedAt: num(row.started_at),
    finishedAt: num(row.finished_at),
    durationMs: num(row.duration_ms),
    runAgent: str(row.run_agent) ?? (Number(row.claims) > 0 ? String(row.agent) : null),
    stats: statsFrom(row, 'run_model'),
    result: str(row.result),
    failedReason: str(row.failed_reason),
    resultPath: str(row.result_path),
    origin: originFrom(row),
    question: str(row.question),
    answer: str(row.answer),
    takenOverAt: num(row.taken_over_at),
    branch: str(row.branch),
    commits: row.commits ? (JSON.parse(String(row.commits)) as Task['commits']) : [],
    ranOn: str(row.ran_on),
    pushedTo: str(row.pushed_to),
    pushError: str(row.push_error),
    lastActivityAt: num(row.last_activity_at),
  };
}

/** The task columns of the verify and stall fields (`verify` as JSON text), in the order of {@link verifyColumnValues}. */
export const VERIFY_TASK_COLUMNS = ['verify', 'verify_timeout_ms', 'verify_retries', 'stall_timeout_ms'] as const;

/** The values of {@link VERIFY_TASK_COLUMNS} for a new task, the same on every backend. */
export function verifyColumnValues(spec: Pick<Task, 'verify' | 'verifyTimeoutMs' | 'verifyRetries' | 'stallTimeoutMs'>): [string | null, number | null, number | null, number | null] {
  return [spec.verify === null ? null : JSON.stringify(spec.verify), spec.verifyTimeoutMs, spec.verifyRetries, spec.stallTimeoutMs];
}

/** The columns of a new task's row that both backends write, in {@link newTaskRow}'s order. */
export const NEW_TASK_COLUMNS = [
  'name', 'title', 'priority', 'priority_rank', 'agent', 'model', 'depends_on', 'timeout_ms',
  'max_cost_usd', 'retries', 'tags', 'dedup_key', 'command', 'extra', 'prompt', 'source', 'state', 'run_after',
  'created_at', 'finished_at', 'failed_reason', 'retry_backoff_ms', 'retry_on_timeout', 'concurrency_group',
  'workspace', 'merge', 'parent', 'parent_id', 'max_turns', 'allowed_tools', 'runs_on', 'origin_host', 'origin_root', 'remote', 'workspace_setup', 'remote_metadata',
  ...VERIFY_TASK_COLUMNS,
] as const;

/**
 * A new task's row, the columns of {@link NEW_TASK_COLUMNS} in that order (`retry_on_timeout`
 * a boolean): queued, `run_after` not before `now` (epoch ms); or ended at `now` in its
 * `terminalState` (default `invalid`) when it has an `invalidReason`. `parentId`: the
 * parent's id as the caller resolved it. The one mapping of a task's fields to columns.
 */
export function newTaskRow(t: NewTask, now: number, parentId: number | null): Row {
  const { spec, invalidReason, terminalState, origin = null } = t;
  const invalid = invalidReason !== undefined;
  const [verify, verifyTimeoutMs, verifyRetries, stallTimeoutMs] = verifyColumnValues(spec);
  return {
    name: spec.name,
    title: spec.title,
    priority: spec.priority,
    priority_rank: priorityRank(spec.priority),
    agent: spec.agent,
    model: spec.model,
    depends_on: JSON.stringify(spec.dependsOn),
    timeout_ms: spec.timeoutMs,
    max_cost_usd: spec.maxCostUsd,
    retries: spec.retries,
    tags: JSON.stringify(spec.tags),
    dedup_key: spec.dedupKey,
    command: spec.command === null ? null : JSON.stringify(spec.command),
    extra: JSON.stringify(spec.extra),
    prompt: spec.prompt,
    source: spec.source,
    state: invalid ? (terminalState ?? 'invalid') : 'queued',
    run_after: Math.max(now, spec.runAt ?? now),
    created_at: now,
    finished_at: invalid ? now : null,
    failed_reason: invalid ? invalidReason : null,
    retry_backoff_ms: spec.retryBackoffMs,
    retry_on_timeout: spec.retryOnTimeout,
    concurrency_group: spec.concurrencyGroup,
    workspace: spec.workspace,
    merge: spec.merge,
    parent: spec.parent,
    parent_id: parentId,
    max_turns: spec.maxTurns,
    allowed_tools: spec.allowedTools === null ? null : JSON.stringify(spec.allowedTools),
    runs_on: JSON.stringify(spec.runsOn),
    origin_host: origin?.host ?? null,
    origin_root: origin?.root ?? null,
    remote: spec.remote ?? null,
    workspace_setup: spec.workspaceSetup === null ? null : JSON.stringify(spec.workspaceSetup),
    remote_metadata: spec.remoteMetadata ? JSON.stringify(spec.remoteMetadata) : null,
    verify,
    verify_timeout_ms: verifyTimeoutMs,
    verify_retries: verifyRetries,
    stall_timeout_ms: stallTimeoutMs,
  };
}

/** A `verifications` row, with its attempt's `attempt_number`. */
export function toVerification(row: Row): Verification {
  return {
    attemptId: String(row.attempt_id),
    taskId: Number(row.task_id),
    attemptNumber: Number(row.attempt_number),
    number: Number(row.number),
    command: String(row.command),
    exitCode: num(row.exit_code),
    timedOut: flag(row.timed_out),
    durationMs: Number(row.duration_ms),
    outputPath: str(row.output_path),
    outputTail: String(row.output_tail),
    startedAt: Number(row.started_at),
  };
}

/**
 * The attempt columns {@link toAttempt} reads, for `SELECT`s of many attempts: all but the
 * output tails (up to 128 KiB a row), which {@link toAttemptOutput} reads one attempt at a time.
 */
export const ATTEMPT_COLUMNS =
  'id, task_id, number, worker_id, host, agent, model, outcome, reason, exit_code, started_at, finished_at, duration_ms, log_path, session_id, cost_usd, input_tokens, output_tokens, num_turns';

export function toAttempt(row: Row): Attempt {
  return {
    id: String(row.id),
    taskId: Number(row.task_id),
    number: Number(row.number),
    workerId: String(row.worker_id),
    host: str(row.host),
    agent: String(row.agent),
    model: str(row.model),
    outcome: row.outcome as AttemptOutcome,
    reason: str(row.reason),
    exitCode: num(row.exit_code),
    startedAt: Number(row.started_at),
    finishedAt: num(row.finished_at),
    durationMs: num(row.duration_ms),
    logPath: str(row.log_path),
    stats: statsFrom(row, 'model'),
  };
}

/** The stored output of an attempt row (`stdout_tail`, `stdout_bytes`, `stderr_tail`, `stderr_bytes`); null when none was recorded. */
export function toAttemptOutput(row: Row): AttemptOutput | null {
  if (row.stdout_tail === null || row.stdout_tail === undefined) return null;
  return {
    stdout: { text: String(row.stdout_tail), bytes: Number(row.stdout_bytes ?? 0) },
    stderr: { text: String(row.stderr_tail ?? ''), bytes: Number(row.stderr_bytes ?? 0) },
  };
}

/** The values of the output columns `stdout_tail, stdout_bytes, stderr_tail, stderr_bytes` that end an attempt, in that order; all null for no output. */
export function outputValues(output: AttemptOutput | null | undefined): [string | null, number | null, string | null, number | null] {
  return output ? [output.stdout.text, output.stdout.bytes, output.stderr.text, output.stderr.bytes] : [null, null, null, null];
}

export function toCallback(row: Row): CallbackDelivery {
  return {
    taskId: Number(row.task_id),
    url: String(row.url),
    state: row.state as CallbackDelivery['state'],
    attempts: Number(row.attempts),
    lastError: str(row.last_error),
    deliveredAt: num(row.delivered_at),
    nextTryAt: num(row.next_try_at),
  };
}

/**
 * The columns one delivery try writes (callbacks, A2A pushes and notifications alike): the new `state`
 * (`delivered`, `failed`, else `pending`), whether the try is `counted` (a `released` one is
 * not, and keeps the last error: `keepError`), the `error` to record (null once delivered),
 * `deliveredAt` and `nextTryAt` (null unless pending; a pending one without a time is due now).
 */
export function tryColumns(t: CallbackTry): { state: 'pending' | 'delivered' | 'failed'; counted: 0 | 1; keepError: boolean; error: string | null; deliveredAt: number | null; nextTryAt: number | null } {
  const state = t.outcome === 'delivered' ? 'delivered' : t.outcome === 'failed' ? 'failed' : 'pending';
  const counted = t.outcome === 'released' ? 0 : 1;
  return {
    state,
    counted,
    keepError: counted === 0,
    error: t.outcome === 'delivered' ? null : (t.error ?? null),
    deliveredAt: t.outcome === 'delivered' ? t.now : null,
    nextTryAt: state === 'pending' ? (t.nextTryAt ?? t.now) : null,
  };
}

export function toNotification(row: Row): Notification {
  return {
    id: Number(row.id),
    key: String(row.key),
    target: String(row.target),
    event: String(row.event),
    taskId: num(row.task_id),
    payload: String(row.payload),
    state: row.state as Notification['state'],
    attempts: Number(row.attempts),
    lastError: str(row.last_error),
    lastTryAt: num(row.last_try_at),
    deliveredAt: num(row.delivered_at),
    nextTryAt: num(row.next_try_at),
    createdAt: Number(row.created_at),
  };
}

/** A row of the per-target sums (`delivered`, `pending`, `retrying`, `failed`, `last_error`, `last_error_at`, `last_delivered_at`). */
export function toNotificationHealth(row: Row): NotificationHealth {
  return {
    target: String(row.target),
    delivered: Number(row.delivered),
    pending: Number(row.pending),
    retrying: Number(row.retrying),
    failed: Number(row.failed),
    lastError: str(row.last_error),
    lastErrorAt: num(row.last_error_at),
    lastDeliveredAt: num(row.last_delivered_at),
  };
}

/**
 * A task's version for A2A pushes: its state and its claim count, `state:claims`. It changes
 * with every state change and with every new attempt (blocked → answered → blocked again is
 * a new version), so a push config is due whenever it differs from the one last pushed.
 */
export function taskVersion(task: Pick<Task, 'state' | 'claims'>): string {
  return `${task.state}:${task.claims}`;
}

/** {@link taskVersion} in SQL (both backends), over the `tasks` row aliased `t`. */
export const TASK_VERSION_SQL = "(t.state || ':' || t.claims)";

export function toA2aPush(row: Row): A2aPush {
  const auth = str(row.authentication);
  return {
    taskId: Number(row.task_id),
    id: String(row.config_id),
    url: String(row.url),
    token: str(row.token),
    authentication: auth === null ? null : (JSON.parse(auth) as A2aPush['authentication']),
    createdAt: Number(row.created_at),
    pushedVersion: str(row.pushed_version),
    attempts: Number(row.attempts),
    lastError: str(row.last_error),
    deliveredAt: num(row.delivered_at),
    nextTryAt: num(row.next_try_at),
  };
}

export function toDetectorRun(row: Row): DetectorRun {
  return {
    name: String(row.name),
    tick: Number(row.tick),
    ranAt: Number(row.ran_at),
    durationMs: Number(row.duration_ms),
    exitCode: num(row.exit_code),
    error: str(row.error),
    problems: JSON.parse(String(row.problems)) as DetectorRun['problems'],
    lines: Number(row.lines),
    created: Number(row.created),
    known: Number(row.known),
  };
}

/** A {@link DetectorRun} as `detector_runs` column → value (`problems` as JSON text), the same on every backend. */
export function detectorRunColumns(r: DetectorRun): Array<[string, unknown]> {
  return [
    ['name', r.name],
    ['tick', r.tick],
    ['ran_at', r.ranAt],
    ['duration_ms', r.durationMs],
    ['exit_code', r.exitCode],
    ['error', r.error],
    ['problems', JSON.stringify(r.problems)],
    ['lines', r.lines],
    ['created', r.created],
    ['known', r.known],
  ];
}

export function toWorker(row: Row): WorkerInfo {
  return {
    id: String(row.id),
    host: String(row.host),
    pid: Number(row.pid),
    startedAt: Number(row.started_at),
    heartbeatAt: Number(row.heartbeat_at),
    labels: JSON.parse(String(row.labels)) as string[],
    root: str(row.root),
  };
}

/** A running task's row as the rescuer reads it: who holds the lease, and until when. */
export function toStaleClaim(row: Row, task: Task): StaleClaim {
  return { task, attemptId: String(row.lease_token), workerId: String(row.lease_owner), leaseExpiresAt: Number(row.lease_expires_at) };
}

export function toPause(row: Row): AgentPause {
  return { agent: String(row.agent), until: Number(row.until), reason: String(row.reason) };
}

/** A row of the per-agent sums (`running`, `attempts`, `cost`, `input`, `output`). */
export function toAgentUsage(row: Row): AgentUsage {
  return {
    agent: String(row.agent),
    running: Number(row.running),
    attempts: Number(row.attempts),
    costUsd: Number(row.cost),
    inputTokens: Number(row.input),
    outputTokens: Number(row.output),
  };
}

/** An attempt row (with its task's `tags` when `withTags`) as `summarizeUsage` reads it. */
export function toUsageRecord(row: Row, withTags: boolean): UsageRecord {
  return {
    startedAt: Number(row.started_at),
    agent: String(row.agent),
    model: str(row.model),
    outcome: String(row.outcome),
    costUsd: num(row.cost_usd),
    inputTokens: num(row.input_tokens),
    outputTokens: num(row.output_tokens),
    tags: withTags ? (JSON.parse(String(row.tags)) as string[]) : [],
  };
}

/** A {@link WorkspaceRecord} as task column → value (`commits` as JSON text), the same on every backend. */
export function workspaceColumns(r: WorkspaceRecord): Array<[string, unknown]> {
  return [
    ['branch', r.branch],
    ['commits', JSON.stringify(r.commits)],
    ['ran_on', r.ranOn],
    ['pushed_to', r.pushedTo],
    ['push_error', r.pushError],
  ];
}

/** A workspace record with nothing in it (what a task that records none holds). */
export const EMPTY_WORKSPACE: WorkspaceRecord = { branch: null, commits: [], ranOn: null, pushedTo: null, pushError: null };

/** The task columns a workspace record is kept in, in {@link workspaceColumns}'s order. */
export const WORKSPACE_COLUMNS: readonly string[] = workspaceColumns(EMPTY_WORKSPACE).map(([c]) => c);

/**
 * The figures of `stats` that are known (not null or undefined), as column → value, for the
 * attempt row and for the task row (whose model column is `run_model`); both empty when
 * nothing is known. The same columns on every backend.
 */
export function knownStatsColumns(stats: Partial<RunStats>): { attempt: Array<[string, unknown]>; task: Array<[string, unknown]> } {
  const cols: Array<[keyof RunStats, string]> = [
    ['sessionId', 'session_id'],
    ['costUsd', 'cost_usd'],
    ['inputTokens', 'input_tokens'],
    ['outputTokens', 'output_tokens'],
    ['numTurns', 'num_turns'],
  ];
  const known = cols.filter(([k]) => stats[k] !== undefined && stats[k] !== null).map(([k, col]): [string, unknown] => [col, stats[k]]);
  const model = stats.model === undefined || stats.model === null ? [] : [stats.model];
  return { attempt: [...known, ...model.map((m): [string, unknown] => ['model', m])], task: [...known, ...model.map((m): [string, unknown] => ['run_model', m])] };
}

export function toDelegation(row: Row): Delegation {
  return {
    id: Number(row.id),
    taskId: Number(row.task_id),
    attemptId: String(row.attempt_id),
    remote: String(row.remote),
    url: String(row.url),
    remoteTaskId: str(row.remote_task_id),
    contextId: str(row.context_id),
    messageId: String(row.message_id),
    state: row.state as DelegationState,
    remoteState: str(row.remote_state),
    lastError: str(row.last_error),
    resultPreview: str(row.result_preview),
    createdAt: Number(row.created_at),
    dispatchedAt: num(row.dispatched_at),
    receivedAt: num(row.received_at),
    inProgressAt: num(row.in_progress_at),
    inputRequiredAt: num(row.input_required_at),
    finishedAt: num(row.finished_at),
    progressAt: Number(row.progress_at),
    updatedAt: Number(row.updated_at),
    pushTokenSha256: str(row.push_token_sha256),
  };
}

/** The column recording when a delegation entered each state (the ends share `finished_at`; `pending` keeps `created_at`). */
const DELEGATION_STATE_COLUMN: Partial<Record<DelegationState, string>> = {
  dispatched: 'dispatched_at',
  received: 'received_at',
  in_progress: 'in_progress_at',
  input_required: 'input_required_at',
};

/**
 * The columns a {@link DelegationPatch} sets, as column → value, the same on every backend:
 * the fields given, the new state's time column, `progress_at` when `progress`, and always
 * `updated_at`.
 */
export function delegationPatchColumns(patch: DelegationPatch, now: number): Array<[string, unknown]> {
  const cols: Array<[string, unknown]> = [];
  const set = (col: string, v: unknown) => {
    if (v !== undefined) cols.push([col, v]);
  };
  set('state', patch.state);
  set('remote_task_id', patch.remoteTaskId);
  set('context_id', patch.contextId);
  set('message_id', patch.messageId);
  set('remote_state', patch.remoteState);
  set('last_error', patch.lastError);
  set('result_preview', patch.resultPreview);
  set('push_token_sha256', patch.pushTokenSha256);
  if (patch.state !== undefined) {
    const column = isOpenDelegation(patch.state) ? DELEGATION_STATE_COLUMN[patch.state] : 'finished_at';
    if (column) set(column, now);
  }
  if (patch.progress) set('progress_at', now);
  set('updated_at', now);
  return cols;
}
