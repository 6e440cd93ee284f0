/**
 * The storage interface. The scheduler, intake and CLI read and write only through it, so
 * two processes (a dispatcher and `agentq cancel`) agree without talking to each other.
 * Backends: SQLite (`sqlite:PATH`) and PostgreSQL (`postgres://…?schema=NAME`), both held to
 * one contract (test/contract/store/, run by `storeContract`). All times are epoch ms.
 */
import type { Delegation, DelegationState } from '../core/delegation.ts';
import { type AgentPause, type Attempt, type AttemptOutcome, type AttemptOutput, type Claim, type RunStats, type Task, type TaskOrigin, type TaskSpec, type TaskState, type Verification } from '../core/types.ts';
import type { UsageQuery, UsageRow } from './usage.ts';

/** A task to create. Invalid tasks are created directly in state `invalid`. */
export interface NewTask {
  spec: TaskSpec;
  /** Ids of the tasks this one depends on (resolved by intake). */
  dependsOnIds: number[];
  /** Dependencies inside the same `enqueue` call, as indexes of earlier entries. */
  dependsOnBatch?: number[];
  /** The parent's id, or its index among earlier entries of the same call. */
  parentId?: number | null;
  parentBatch?: number | null;
  /** Set for a task that ends at intake; the reason names the field (or the first task). */
  invalidReason?: string;
  /** The terminal state of such a task: `invalid` (default) or `duplicate`. */
  terminalState?: 'invalid' | 'duplicate';
  /** Intake key (file name + content hash) recorded in the same transaction. */
  intakeKey?: string;
  /** The checkout the task comes from (`Task.origin`), where its result file is written. Default null: none recorded (any checkout writes it). */
  origin?: TaskOrigin | null;
}

export interface ClaimOptions {
  workerId: string;
  /** This dispatcher's host name, recorded on the attempt (`Attempt.host`). Default null. */
  host?: string | null;
  now: number;
  leaseMs: number;
  /** Global limit of running tasks; the claim is refused when reached. */
  concurrency: number;
  /** Only claim tasks for these agents (the runners this dispatcher has). */
  agents: string[];
  /** This dispatcher's labels: only tasks whose every `runs_on` label is among them are claimed (a task without `runs_on`: by anyone). */
  labels: string[];
  /** Running tasks allowed per `concurrency_group`. Default 1. */
  groupConcurrency?: number;
  /** Running tasks allowed per agent; agents not listed have no limit of their own. */
  agentConcurrency?: Record<string, number>;
  /**
   * The account of each agent here (`accountOf`): a task is skipped while its agent's
   * account is paused. Agents not listed are their own account.
   */
  accounts?: Record<string, string>;
}

/** A terminal outcome written by `finish`. */
export interface FinishOutcome {
  state: Exclude<TaskState, 'queued' | 'running' | 'invalid'>;
  /** What the attempt row records (`completed`, `failed`, `timed_out`, `cancelled`). */
  attemptOutcome: AttemptOutcome;
  result?: string | null;
  reason?: string | null;
  exitCode?: number | null;
  stats: RunStats;
  /** Raw stdout log of the attempt. */
  logPath?: string | null;
  /** Where the attempt ran and what it left in git: replaces the task's record (every field); absent: the record is left as it is. */
  workspace?: WorkspaceRecord;
  /** The tails of the attempt's stdout and stderr logs, kept on its row; null or absent: none recorded. */
  output?: AttemptOutput | null;
  now: number;
}

/** One end of {@link AttemptStore.finishMany}: the attempt that ends its task, and how. */
export interface FinishItem {
  attemptId: string;
  outcome: FinishOutcome;
}

/** The agent an `agent: auto` attempt runs on, set after the claim. */
export interface AttemptAgent {
  agent: string;
  model: string | null;
}

/** Where the attempt that ends a task ran and what it left in git (`FinishOutcome.workspace`); the fields as on `Task`. */
export type WorkspaceRecord = Pick<Task, 'branch' | 'commits' | 'ranOn' | 'pushedTo' | 'pushError'>;

/** Putting a running task back in the queue. */
export interface RequeueOptions {
  /** `failed`, `timed_out`, `setup_failed`, `verify_failed` and `stalled` burn the attempt (a retry: `COUNTED_REQUEUE_OUTCOMES`); `rate_limited` and `interrupted` do not. */
  attemptOutcome: 'failed' | 'timed_out' | 'setup_failed' | 'verify_failed' | 'stalled' | 'rate_limited' | 'interrupted';
  reason: string;
  runAfter: number;
  exitCode?: number | null;
  stats?: RunStats;
  logPath?: string | null;
  /** As {@link FinishOutcome.output}. */
  output?: AttemptOutput | null;
  now: number;
}

/** Ending an attempt with a question (`block`). */
export interface BlockOptions {
  question: string;
  stats: RunStats;
  exitCode?: number | null;
  logPath?: string | null;
  /** As {@link FinishOutcome.output}. */
  output?: AttemptOutput | null;
  now: number;
}

/** One verify command's run, as {@link AttemptStore.recordVerification} records it (see `Verification`). */
export type NewVerification = Omit<Verification, 'attemptId' | 'taskId' | 'attemptNumber'>;

/** Ending an attempt its dispatcher stopped because a person took the task over (`handOver`). */
export type HandOverOptions = Omit<BlockOptions, 'question'>;

/** What {@link AttemptStore.heartbeat} tells the dispatcher. */
export interface Heartbeat {
  /** False when the lease was lost: the attempt must stop and write nothing. */
  ok: boolean;
  /** `agentq cancel` asked to stop it. */
  cancelRequested: boolean;
  /** `agentq attach` asked to stop it (the task's `takenOverAt` is set): end it with `handOver`. */
  takeoverRequested: boolean;
}

/** Per-agent figures for `agentq status`: tokens and USD over attempts started since `since`. */
export interface AgentUsage {
  agent: string;
  running: number;
  attempts: number;
  costUsd: number;
  inputTokens: number;
  outputTokens: number;
}

export interface TaskFilter {
  state?: TaskState;
  /** Tasks that name this agent, or whose latest attempt ran on it. */
  agent?: string;
  /** Tasks carrying this tag. */
  tag?: string;
  priority?: Task['priority'];
  /** Only tasks with a smaller id (cursor pagination, with `order: 'desc'`). */
  beforeId?: number;
  /** By id: `asc` (arrival, the default) or `desc` (newest first). */
  order?: 'asc' | 'desc';
  limit?: number;
}

/** Where and how a task's `callback_url` delivery stands. Times epoch ms. */
export interface CallbackDelivery {
  taskId: number;
  url: string;
  /** `pending` until it is delivered (2xx) or given up (4xx, or out of tries). */
  state: 'pending' | 'delivered' | 'failed';
  /** Tries made so far. */
  attempts: number;
  lastError: string | null;
  deliveredAt: number | null;
  /** Earliest next try; null: as soon as the task is terminal. */
  nextTryAt: number | null;
}

/** What `enqueueRequest` records beside the task (POST /v1/tasks). */
export interface RequestOptions {
  /** `Idempotency-Key` header and sha256 (hex) of the canonical body. */
  idempotency?: { key: string; bodySha256: string } | null;
  /** http(s) URL POSTed once the task is terminal. */
  callbackUrl?: string | null;
  /**
   * The most subtasks the task's parent (`NewTask.parentId`) may have (config
   * `max_subtasks`): counted in the creating transaction, with the parent locked, so
   * concurrent requests never pass it together. Null or left out: no limit.
   */
  maxSubtasks?: number | null;
}

/**
 * The outcome of `enqueueRequest`: `created` a new task; or the idempotency key was
 * already used, with the same body (`replayed`: the first task) or another (`conflict`:
 * the first task, nothing created).
 */
export type RequestResult = { kind: 'created' | 'replayed' | 'conflict'; task: Task };

/**
 * The outcome of `answerRequest`: `answered` (the task is queued again with the answer); or
 * the idempotency key was already used, with the same body (`replayed`) or another
 * (`conflict`), nothing changed; `task` is the task the key names.
 */
export type AnswerResult = { kind: 'answered' | 'replayed' | 'conflict'; task: Task };

/** One result of {@link Store.claimDueCallbacks}: the delivery and its (terminal) task. */
export interface DueCallback {
  delivery: CallbackDelivery;
  task: Task;
}

/** The result of one delivery try: of a callback, or of a notification. */
export interface CallbackTry {
  /**
   * `delivered` (2xx), `retry` (5xx or connection error: pending again at `nextTryAt`),
   * `failed` (4xx or out of tries: final), `released` (not tried, e.g. shutdown: due again
   * at `nextTryAt`, the try not counted).
   */
  outcome: 'delivered' | 'retry' | 'failed' | 'released';
  error?: string | null;
  nextTryAt?: number | null;
  now: number;
}

/**
 * A notification to record: one event for one `notify:` target. `key` and `target` make it
 * one row however often it is recorded (see {@link NotificationStore.recordNotifications}).
 */
export interface NewNotification {
  /** What happened, once, e.g. `completed:task 7:claim 2:at 1700000000000` (src/notify/events.ts). */
  key: string;
  /** The target's id: a hash of its kind and destination (`targetId` in src/notify/targets.ts), never the URL itself. */
  target: string;
  /** The event's name (`completed`, `blocked`, … `queue_empty`). */
  event: string;
  /** The task it is about; null for `agent_paused` and `queue_empty`. */
  taskId: number | null;
  /** The event as JSON text (no secrets). */
  payload: string;
}

/** A recorded notification and where its delivery stands (as a callback's). Times epoch ms. */
export interface Notification extends NewNotification {
  id: number;
  /** `pending` until delivered or given up (`failed`). */
  state: 'pending' | 'delivered' | 'failed';
  /** Tries made so far. */
  attempts: number;
  /** The error of the last try; null once delivered. */
  lastError: string | null;
  /** When the last counted try ended. */
  lastTryAt: number | null;
  deliveredAt: number | null;
  /** Earliest next try; null: at once. */
  nextTryAt: number | null;
  createdAt: number;
}

/** How the deliveries of one target stand, for `agentq status`. */
export interface NotificationHealth {
  /** The target's id ({@link NewNotification.target}). */
  target: string;
  delivered: number;
  /** Not delivered yet (due, leased or waiting for a retry). */
  pending: number;
  /** Of those pending, the ones whose last try failed. */
  retrying: number;
  /** Given up (out of tries, or refused by the receiver). */
  failed: number;
  /** The newest error of its notifications (the one whose last try ended last), and when. */
  lastError: string | null;
  lastErrorAt: number | null;
  lastDeliveredAt: number | null;
}

/**
 * How busy the queue is, in one read: `active` tasks (queued, running or waiting for
 * subtasks) and a `mark` that changes whenever a task is created or an attempt starts
 * (`<newest task id>:<attempts>`; `0:0` for a store that never had work), so one empty
 * spell of the queue has one mark.
 */
export interface QueueMark {
  active: number;
  mark: string;
}

/** A one-time answer link's token, as stored: its sha256, never the token. */
export interface AnswerToken {
  /** sha256 (hex) of the token. */
  tokenSha256: string;
  taskId: number;
  /** The task's claim count when it blocked: the token answers that question only. */
  claims: number;
  /** Epoch ms after which it is refused. */
  expiresAt: number;
}

/**
 * The result of {@link NotificationStore.answerWithToken}: `answered` (the task is queued
 * again with the answer), or refused: `unknown` (no such token for this task), `used`
 * (spent: this link or another of the same question answered it), `expired`, `closed` (the
 * task no longer waits on that question: answered another way, cancelled, asked again, taken
 * over by hand).
 */
export type TokenAnswer = { outcome: 'answered'; task: Task } | { outcome: 'unknown' | 'used' | 'expired' | 'closed' };

/**
 * A token bucket of agent starts (see {@link Store.takeRateToken}): at most `capacity`
 * tokens, `refillPerMs` tokens gained per ms, continuously.
 */
export interface RateBucket {
  /** Most tokens the bucket holds (the burst), ≥ 1. */
  capacity: number;
  /** Tokens gained per ms, > 0 (e.g. `60/h` → 60 / 3_600_000). */
  refillPerMs: number;
}

/** The result of {@link Store.takeRateToken}. */
export interface RateToken {
  /** Whether a token was taken (the start may go ahead). */
  taken: boolean;
  /** Tokens left in the bucket afterwards (fractional). */
  tokens: number;
  /** When (epoch ms) the bucket holds a whole token again: `now` if it still does. */
  nextTokenAt: number;
}

export interface WorkerInfo {
  id: string;
  host: string;
  pid: number;
  startedAt: number;
  heartbeatAt: number;
  /** The dispatcher's labels (`agentq run --label`), matched against tasks' `runs_on`. */
  labels: string[];
  /** The project root it dispatches for (realpath; with `host`, its checkout: see `TaskOrigin`); null for a row an older agentq wrote. */
  root: string | null;
}

/** A running task whose dispatcher is gone or whose lease expired. */
export interface StaleClaim {
  task: Task;
  attemptId: string;
  workerId: string;
  leaseExpiresAt: number;
}

/** Tasks: creation, lookup, the user's actions, and the rules that follow other tasks (subtasks, dependencies). */
export interface TaskStore {
  /**
   * Creates tasks (and their intake keys) in one transaction; returns the created ones in
   * order. An entry whose intake key is already recorded (another dispatcher took the same
   * file in first; see `intakeKey`) is skipped, so a file never becomes two tasks.
   */
  enqueue(tasks: NewTask[], now: number): Promise<Task[]>;
  /** The oldest queued or running task with this `dedup_key`, if any. */
  findActiveByDedupKey(key: string): Promise<Task | null>;
  /** The newest task with that name, if any. */
  findByName(name: string): Promise<Task | null>;
  /** By id, or the newest task with that name. */
  getTask(idOrName: string | number): Promise<Task | null>;
  listTasks(filter?: TaskFilter): Promise<Task[]>;
  countByState(): Promise<Record<TaskState, number>>;
  /** The subtasks of a task, in arrival order. */
  listSubtasks(taskId: number): Promise<Task[]>;
  /**
   * Cancels a task: a queued or blocked one at once (returns it `cancelled`), a running one by setting
   * `cancelRequested` for its dispatcher. Terminal tasks are returned unchanged.
   */
  cancel(taskId: number, now: number): Promise<Task>;
  /** Requeues a terminal, not completed task with a fresh retry budget; keeps its history. */
  retry(taskId: number, now: number): Promise<Task>;
  /**
   * Queues a `blocked` task again with the answer to its question.
   * @throws NotFoundError for an unknown id; AgentQueueError `not_blocked` if it asks nothing
   *   (also when it is taken over by hand: that one is handed back by {@link release}).
   */
  answer(taskId: number, answer: string, now: number): Promise<Task>;
  /**
   * Takes a task over by hand (`agentq attach`). A `blocked` or `queued` task at once: it
   * waits `blocked` with `takenOverAt` = `now`, its question and answer cleared, its session id
   * kept. A `running` one by setting `takenOverAt` for its dispatcher, whose heartbeat sees it
   * (`takeoverRequested`) and which then stops the attempt and ends it with {@link
   * AttemptStore.handOver}. A task already taken over keeps its time; any other task is
   * returned unchanged. Cleared by {@link release}, `cancel`, `retry` and every end (`finish`).
   * @throws NotFoundError for an unknown id
   */
  takeOver(taskId: number, now: number): Promise<Task>;
  /**
   * Hands a task taken over by hand back to the agents (`agentq release`): queued again at
   * `now`, `takenOverAt` cleared, `answer` = `note` with `question` null, so its next attempt
   * resumes the agent's session with the note as the prompt.
   * @throws NotFoundError for an unknown id; AgentQueueError `not_taken_over` (nothing changed)
   *   unless it is `blocked` and taken over
   */
  release(taskId: number, note: string, now: number): Promise<Task>;
  /**
   * Ends `waiting` parents whose subtasks have all ended, as `parentVerdict` says (cascading
   * up through parents that are subtasks themselves). Returns the parents it ended.
   */
  settleParents(now: number): Promise<Task[]>;
  /** Fails queued tasks whose dependency ended in any state but `completed`, with the reason `dependencyFailure` (src/core/lifecycle.ts) gives. */
  failBlockedDependents(now: number): Promise<Task[]>;
  /**
   * Tasks in any terminal state (`TERMINAL_STATES`, `invalid` and `duplicate` included) whose
   * done/failed file is not written yet, by id. With `origin`: only those from that checkout
   * and those with no origin recorded (the ones that checkout writes); without it, all of them.
   * Served by a partial index of the unreported terminal tasks, so its cost does not grow with
   * the history.
   */
  listUnreported(origin?: TaskOrigin): Promise<Task[]>;
  setResultPath(taskId: number, path: string): Promise<void>;
}

/** Attempts: the claim, the lease and its heartbeat, and how an attempt ends. */
export interface AttemptStore {
  /**
   * Claims the next ready task in one transaction: queued, `runAfter` passed, its agent's
   * account (`accounts`, else the agent's name) not paused, every `runs_on` label among `labels`, every dependency completed, fewer than
   * `concurrency` running (and fewer than `groupConcurrency` of its group, fewer than its
   * agent's limit); highest priority first,
   * then arrival. Opens an attempt, counts it, sets the lease. Null if none.
   */
  claim(options: ClaimOptions): Promise<Claim | null>;
  /**
   * Claims up to `max` tasks in one transaction (one round trip on PostgreSQL), as that many
   * {@link claim}s in a row would: each by the same rule, in claim order (priority, then
   * arrival), every limit counting the tasks claimed before it in the batch (so fewer than
   * `max` when a limit is reached or nothing more is ready), each with its own attempt, lease
   * and fencing id. `claim(o)` is `claimMany(o, 1)`. Empty when none (or `max` < 1).
   */
  claimMany(options: ClaimOptions, max: number): Promise<Claim[]>;
  /**
   * Renews the lease of an attempt. `ok` false when the lease was lost (the attempt must
   * stop and write nothing); `cancelRequested` when `agentq cancel` asked, `takeoverRequested`
   * when `agentq attach` did (see {@link Heartbeat}). `lastActivityAt` (epoch ms), when
   * given, becomes the task's `lastActivityAt` in the same statement; absent or null leaves
   * it as it is.
   */
  heartbeat(attemptId: string, now: number, leaseMs: number, lastActivityAt?: number | null): Promise<Heartbeat>;
  /** Records the agent an attempt runs on (for `agent: auto`), on the attempt and as the task's `runAgent`. */
  setAttemptAgent(attemptId: string, agent: AttemptAgent): Promise<void>;
  /** Records live run figures (session id, model) on the attempt and task. */
  recordStats(attemptId: string, stats: Partial<RunStats>): Promise<void>;
  /**
   * Ends a task. Refused (returns null) if `attemptId` no longer holds the lease. A
   * `completed` task becomes what `parentVerdict` (src/core/lifecycle.ts) makes of its
   * subtasks, in the same transaction: `waiting` while one is open, `failed` naming one that ended badly.
   */
  finish(attemptId: string, outcome: FinishOutcome): Promise<Task | null>;
  /**
   * Ends several tasks at once, each as {@link finish} would, in one transaction (one
   * round trip on PostgreSQL in the common case, one work notification for the batch):
   * one result per item, in order — the task, or null when its attempt no longer holds the
   * lease (an attempt named twice: the later one null, as a second `finish` would be).
   * `finish(id, o)` is `finishMany([{ attemptId: id, outcome: o }])`. Empty for no items.
   */
  finishMany(items: readonly FinishItem[]): Promise<Array<Task | null>>;
  /** Puts a running task back in the queue. Refused (null) if the lease is lost. */
  requeue(attemptId: string, options: RequeueOptions): Promise<Task | null>;
  /** Ends an attempt with a question: the task waits `blocked`. Refused (null) if the lease is lost. */
  block(attemptId: string, options: BlockOptions): Promise<Task | null>;
  /**
   * Ends an attempt its dispatcher stopped for a takeover ({@link TaskStore.takeOver}): the
   * attempt `interrupted` with the reason `taken over` (not counted against `retries`), the
   * task `blocked`, taken over (`takenOverAt` kept), question and answer cleared, its session
   * id kept (or recorded from `stats`). Refused (null) if the lease is lost.
   */
  handOver(attemptId: string, options: HandOverOptions): Promise<Task | null>;
  /**
   * Records one verify command's run for an attempt. Refused (returns false, nothing
   * recorded) unless the attempt still holds its task's lease. A `number` already recorded
   * for the attempt is replaced.
   */
  recordVerification(attemptId: string, verification: NewVerification): Promise<boolean>;
  /** A task's verifications, by attempt number then `number`. */
  listVerifications(taskId: number): Promise<Verification[]>;
  /** A task's attempts, by number (without their output: {@link attemptOutput}). */
  listAttempts(taskId: number): Promise<Attempt[]>;
  /**
   * The stdout and stderr tails recorded when the attempt ended (`output` of `finish`,
   * `requeue`, `block`); null for an unknown id, a running attempt, or one ended without them.
   */
  attemptOutput(attemptId: string): Promise<AttemptOutput | null>;
  /** Running tasks with their attempt and owning worker, for recovery, by task id. */
  listRunning(): Promise<StaleClaim[]>;
}

/**
 * Agents: pauses and rate-limit strikes, start buckets, spend. Pauses, strikes and buckets
 * are keyed by account (`agents.<name>.account`, default the agent's name: `accountOf` in
 * src/config/config.ts); the `agent` of an {@link AgentPause} and the `agent` arguments
 * here are that key. Spend is per agent.
 */
export interface AgentStore {
  /** Pauses an agent (replacing an earlier pause); `strikes` counts consecutive limits. */
  pauseAgent(pause: AgentPause, strikes?: number): Promise<void>;
  /** Consecutive rate limits of an agent since its last completed task. */
  agentStrikes(agent: string): Promise<number>;
  /** Resets an agent's strike count (one of its tasks completed). */
  clearAgentStrikes(agent: string): Promise<void>;
  listPauses(now: number): Promise<AgentPause[]>;
  /**
   * Pauses an agent until `pause.until` unless it is already paused that long or longer (a
   * longer pause, e.g. a usage limit, is kept with its reason); never changes its strikes.
   * One atomic step. Returns whether the pause was set.
   */
  extendPause(pause: AgentPause): Promise<boolean>;
  /**
   * Takes one token from an agent's start bucket (`agents.<name>.rate_limit`), in one
   * atomic step across every handle on the store: the bucket first gains
   * `refillPerMs × (now − last update)` tokens, capped at `capacity` (a bucket never used
   * starts full; a clock behind the last update adds nothing), then loses one if it holds
   * at least one. Never takes more tokens than the bucket held, however many dispatchers
   * ask at once.
   * @throws AgentQueueError `invalid_bucket` unless capacity ≥ 1 and refillPerMs > 0.
   */
  takeRateToken(agent: string, bucket: RateBucket, now: number): Promise<RateToken>;
  /** Running attempts, and attempts, cost and tokens since `since` (epoch ms), per agent. */
  agentUsage(since: number): Promise<AgentUsage[]>;
  /**
   * Spend of the attempts started in `[since, until)`, grouped by local day, agent, model
   * and task tag (`agentq usage`); see {@link UsageQuery} for the grouping, the day cut and
   * how tags split an attempt, {@link UsageRow} for the figures (USD, tokens).
   * @throws AgentQueueError `invalid_time_zone` for an unknown `timeZone`.
   */
  usage(query: UsageQuery): Promise<UsageRow[]>;
}

/** Workers: the dispatchers on the store and their liveness. */
export interface WorkerStore {
  /** Records a dispatcher with its labels; registering an id again only renews its `heartbeatAt`. */
  registerWorker(worker: WorkerInfo): Promise<void>;
  /** Sets a worker's `heartbeatAt` to `now` (epoch ms); an unknown id changes nothing. */
  workerHeartbeat(workerId: string, now: number): Promise<void>;
  /** Forgets a worker (its clean exit); an unknown id changes nothing. */
  removeWorker(workerId: string): Promise<void>;
  /** Every registered worker, oldest `startedAt` first. */
  listWorkers(): Promise<WorkerInfo[]>;
}

/** Intake: inbox files, recurring ticks and HTTP requests, each taken in once. */
export interface IntakeStore {
  /** The intake record of a key: whether the inbox file was removed after recording. */
  getIntake(key: string): Promise<{ taskId: number; fileRemoved: boolean } | null>;
  /** Marks the inbox files of these intake keys removed, in one transaction (keys not recorded are left alone). */
  markIntakeRemoved(keys: readonly string[]): Promise<void>;
  /** Intake keys whose inbox file was recorded but not yet marked removed. */
  listPendingIntake(): Promise<string[]>;
  /** The newest tick of a recurring file already handled, or null if it was never seen. */
  getRecurringTick(name: string): Promise<number | null>;
  /**
   * Records a recurring file's tick, creating its task in the same transaction. Returns the
   * task, or null (nothing created) when this tick or a later one was already recorded, so
   * several dispatchers create one task per tick. `task` null only records the tick.
   */
  recordRecurringTick(name: string, tick: number, task: NewTask | null, now: number): Promise<Task | null>;
  /**
   * Records `tick` as a recurring file's newest tick when it is later than the one recorded
   * (or none is), in one atomic step. Returns whether this call did: of several dispatchers
   * claiming one tick, one gets true (a detector runs once per tick).
   */
  claimRecurringTick(name: string, tick: number): Promise<boolean>;
  /**
   * Creates one task from an HTTP request (or an MCP `submit_task`) in one transaction, with
   * its idempotency key and callback. A key already recorded creates nothing: `replayed` when
   * its body hash matches, else `conflict`; either returns the task the key first created.
   * @throws SubtaskLimitError (nothing created) when `options.maxSubtasks` is set and the
   *   task's parent already has that many subtasks (any state)
   */
  enqueueRequest(task: NewTask, options: RequestOptions, now: number): Promise<RequestResult>;
  /** What an `Idempotency-Key` was first used for, if it was. */
  findIdempotencyKey(key: string): Promise<{ bodySha256: string; taskId: number } | null>;
  /**
   * Answers a blocked task from a request (an A2A follow-up message), recording its
   * idempotency key in the same transaction, so a retried request never answers twice. A key
   * already recorded changes nothing: `replayed` when its body hash matches, else `conflict`.
   * @throws NotFoundError for an unknown id; AgentQueueError `not_blocked` (nothing recorded)
   *   when the task asks nothing and the key is new
   */
  answerRequest(taskId: number, answer: string, idempotency: { key: string; bodySha256: string }, now: number): Promise<AnswerResult>;
}

/** One line of a detector's output that was skipped: its 1-based number and why. */
export interface DetectorProblem {
  line: number;
  reason: string;
}

/** A detector's run (a recurring file with `detect:`, src/intake/detect.ts). Times epoch ms. */
export interface DetectorRun {
  /** The recurring file's name without `.md`. */
  name: string;
  /** The schedule tick it ran for. */
  tick: number;
  ranAt: number;
  durationMs: number;
  /** The command's exit code; null when it was killed or could not start. */
  exitCode: number | null;
  /** Why the run gave no task at all (a non-zero exit, its time limit, too much output, could not start); null when it exited 0. */
  error: string | null;
  /** The lines skipped, in order. */
  problems: DetectorProblem[];
  /** Task lines printed (blank lines aside). */
  lines: number;
  /** Tasks the run created. */
  created: number;
  /** Lines whose key this detector had taken in before (no task made). */
  known: number;
}

/** A task a detector's line asks for, under the line's key (its `dedup_key`, else a hash of the line). */
export interface DetectedTask {
  key: string;
  task: NewTask;
}

/** Detectors: their newest runs and the keys they took in. */
export interface DetectorStore {
  /** Which of `keys` the detector `name` has taken in already (in any order). */
  knownDetectorKeys(name: string, keys: string[]): Promise<string[]>;
  /**
   * Records a detector's run, replacing its previous one, and in the same transaction creates
   * the task of each entry whose key the detector has not taken in yet, recording the key
   * with it: a key is taken in once, however many runs or dispatchers print it. The stored
   * `created` is the number of tasks made; `known` is `run.known` plus the entries whose key
   * was taken in meanwhile. Returns the created tasks, in order.
   */
  recordDetectorRun(run: Omit<DetectorRun, 'created'>, entries: DetectedTask[], now: number): Promise<Task[]>;
  /** The newest run of every detector that ran, by name. */
  listDetectorRuns(): Promise<DetectorRun[]>;
}

/** Callbacks: `callback_url` deliveries, leased and retried. */
export interface CallbackStore {
  /** The callback delivery of a task, if it has a `callback_url`. */
  getCallback(taskId: number): Promise<CallbackDelivery | null>;
  /**
   * Pending deliveries whose task is terminal and whose `nextTryAt` passed (or is null),
   * at most `limit`; each is leased by moving its `nextTryAt` to `now + leaseMs`, so another
   * process on the store does not try it at the same time.
   */
  claimDueCallbacks(now: number, leaseMs: number, limit: number): Promise<DueCallback[]>;
  /** Records the result of a callback try (see {@link CallbackTry}). */
  recordCallbackTry(taskId: number, outcome: CallbackTry): Promise<CallbackDelivery | null>;
}

/** A delegation to record (see {@link DelegationStore.createDelegation}). */
export interface NewDelegation {
  taskId: number;
  /** The attempt delegating: also the first message's id (the idempotency key). */
  attemptId: string;
  /** The remote as the task named it (a `remotes` name, or the URL). */
  remote: string;
  /** The A2A agent's URL. */
  url: string;
  now: number;
}

/**
 * A change to a delegation (see {@link DelegationStore.updateDelegation}); a field left out
 * stays as it is. `state` is the one {@link delegationStep} (src/core/delegation.ts) gave.
 */
export interface DelegationPatch {
  state?: DelegationState;
  remoteTaskId?: string;
  contextId?: string | null;
  messageId?: string;
  remoteState?: string | null;
  lastError?: string | null;
  resultPreview?: string | null;
  /** sha256 (hex) of the push notification token, see {@link Delegation.pushTokenSha256}. */
  pushTokenSha256?: string | null;
  /** The remote showed progress: `progressAt` becomes `now`. */
  progress?: boolean;
}

/** Which delegations {@link DelegationStore.listDelegations} returns, newest first. */
export interface DelegationFilter {
  state?: DelegationState;
  /** Only open delegations (not completed, failed or canceled). */
  open?: boolean;
  taskId?: number;
  /** Only delegations with a smaller id (cursor pagination). */
  beforeId?: number;
  limit?: number;
}

/** Delegations: the ledger of tasks handed to remote A2A agents (src/core/delegation.ts). */
export interface DelegationStore {
  /**
   * Records a delegation in state `pending` (`messageId` = `attemptId`, `progressAt` = `now`),
   * unless its task already has an open one (not completed, failed or canceled): then nothing
   * is created and that one is returned (`created: false`). One atomic step, so a task never
   * has two open delegations.
   */
  createDelegation(d: NewDelegation): Promise<{ delegation: Delegation; created: boolean }>;
  /** The open delegation of a task (at most one), or null. */
  openDelegation(taskId: number): Promise<Delegation | null>;
  getDelegation(id: number): Promise<Delegation | null>;
  /**
   * Applies `patch` if the delegation is still in state `expected` (compare and set), in one
   * atomic step: a new state also sets its `…At` time (`finishedAt` for an end) to `now`;
   * `updatedAt` is always `now`. Null (nothing changed) when the delegation is gone or has
   * moved on from `expected`.
   */
  updateDelegation(id: number, expected: DelegationState, patch: DelegationPatch, now: number): Promise<Delegation | null>;
  /** Delegations matching `filter`, newest (highest id) first; `limit` default 100. */
  listDelegations(filter?: DelegationFilter): Promise<Delegation[]>;
}

/**
 * Who is told of an A2A task's changes (A2A protocol 0.3 `PushNotificationConfig`, set by
 * `tasks/pushNotificationConfig/set` or a message's `configuration.pushNotificationConfig`).
 */
export interface A2aPushConfig {
  /** The agentq task (its A2A task id is this id as text). */
  taskId: number;
  /** The config's id within its task: the client's, else the task id as text. */
  id: string;
  /** http(s) URL POSTed with the A2A task (JSON) when the task changes. */
  url: string;
  /** Sent as `X-A2A-Notification-Token`; null: none. */
  token: string | null;
  /** How to authenticate to `url` (`schemes`, e.g. `["Bearer"]`, and `credentials`); null: none. */
  authentication: { schemes: string[]; credentials: string | null } | null;
}

/** A push config and where its delivery stands. Times epoch ms. */
export interface A2aPush extends A2aPushConfig {
  createdAt: number;
  /**
   * The task version (`taskVersion`: `state:claims`) last delivered or given up on; null:
   * nothing yet (a config set or replaced is due at once with the task as it is).
   */
  pushedVersion: string | null;
  /** Tries for the version being delivered (0 once a new version is claimed). */
  attempts: number;
  lastError: string | null;
  deliveredAt: number | null;
  /** Earliest next try; null: as soon as the task's version differs from `pushedVersion`. */
  nextTryAt: number | null;
}

/** One result of {@link A2aPushStore.claimDueA2aPushes}: the config, its task now and that task's version. */
export interface DueA2aPush {
  push: A2aPush;
  task: Task;
  /** `taskVersion(task)`: what a successful try records as pushed. */
  version: string;
}

/** A2A push notifications: configs per task, each pushed once per version of its task, leased and retried. */
export interface A2aPushStore {
  /**
   * Sets a task's push config `config.id` (replacing one with that id: its delivery starts
   * over, so the task as it is now is pushed to the new URL).
   */
  saveA2aPushConfig(config: A2aPushConfig, now: number): Promise<void>;
  /** A task's push configs, oldest first. */
  listA2aPushConfigs(taskId: number): Promise<A2aPush[]>;
  /** Removes one; returns whether it existed. */
  deleteA2aPushConfig(taskId: number, configId: string): Promise<boolean>;
  /**
   * Configs whose task's version differs from the one they last pushed and whose
   * `nextTryAt` passed (or is null), at most `limit`; each is leased by moving its
   * `nextTryAt` to `now + leaseMs`, its `attempts` starting at 0 for a version not tried yet.
   */
  claimDueA2aPushes(now: number, leaseMs: number, limit: number): Promise<DueA2aPush[]>;
  /**
   * Records a try of `version` (see {@link CallbackTry}: `delivered` and `failed` record the
   * version as pushed, `retry` waits for `nextTryAt`, `released` is not counted). Ignored
   * (null) when a later claim took the config for another version, or it is gone.
   */
  recordA2aPushTry(taskId: number, configId: string, version: string, outcome: CallbackTry): Promise<A2aPush | null>;
}

/**
 * Notifications (`notify:` targets): a row per event and target, recorded idempotently,
 * leased and retried like callbacks; the queue mark of `queue_empty`; the one-time tokens
 * of answer links.
 */
export interface NotificationStore {
  /**
   * Records notifications in one transaction; a row whose (`key`, `target`) is already
   * recorded is skipped, so recording an event again (after a crash, by another dispatcher)
   * never makes a second delivery. Returns the rows created (in the order given).
   */
  recordNotifications(rows: NewNotification[], now: number): Promise<Notification[]>;
  /**
   * Pending notifications of these targets whose `nextTryAt` passed (or is null), oldest
   * first, at most `limit`; each is leased by moving its `nextTryAt` to `now + leaseMs`, so
   * another process does not try it at the same time.
   */
  claimDueNotifications(targets: string[], now: number, leaseMs: number, limit: number): Promise<Notification[]>;
  /** Records the result of a try (outcomes as for callbacks: {@link CallbackTry}); null for an unknown id. */
  recordNotificationTry(id: number, outcome: CallbackTry): Promise<Notification | null>;
  /** Per target that has notifications, how its deliveries stand; by target id. */
  notificationHealth(): Promise<NotificationHealth[]>;
  /** The queue's {@link QueueMark} (one consistent read). */
  queueMark(): Promise<QueueMark>;
  /** Stores an answer link's token (hashed); tokens expired more than a day before `now` are deleted. */
  addAnswerToken(token: AnswerToken, now: number): Promise<void>;
  /**
   * Answers a blocked task with a one-time token, in one transaction: the token (by its
   * sha256) must be this task's, unused and unexpired, and the task still `blocked` on the
   * question it was made for (not taken over by hand); then every token of that question is spent and the task is
   * queued again with the answer, as {@link TaskStore.answer} does. See {@link TokenAnswer}.
   */
  answerWithToken(taskId: number, tokenSha256: string, answer: string, now: number): Promise<TokenAnswer>;
}

/**
 * The whole storage interface a backend implements: the entity interfaces above, one
 * contract suite part each (test/contract/store/), plus health and closing.
 */
export interface Store extends TaskStore, AttemptStore, AgentStore, WorkerStore, IntakeStore, DetectorStore, CallbackStore, A2aPushStore, DelegationStore, NotificationStore {
  /**
   * Whether a write transaction can start within `waitMs` (ms): null if so, else why not,
   * e.g. `database is locked` while another process holds the write lock. Writes nothing.
   * @throws errors that are not {@link isTransientStoreError}
   */
  probeWrite(waitMs: number): Promise<string | null>;
  /**
   * Optional: calls `onWork` soon after any handle on the store (this process or another)
   * commits work that may be claimable now: a queued task created or queued again, or an
   * ended attempt (a slot freed, dependents or parents maybe ready); or a task that ended
   * otherwise (a parent settled, a dependent failed, a queued task cancelled), whose result
   * file its origin checkout's dispatcher then writes. A hint, not a count:
   * `onWork` may be called for nothing or once for many, and a change made while the watch
   * was cut is missed (then `onWork` is called once it is back), so dispatchers keep polling.
   * Resolves once watching (or after a first failed try, retrying in the background) with the
   * function that ends the watch. PostgreSQL: `LISTEN`/`NOTIFY`. SQLite has none (same-host
   * inbox events wake its dispatchers).
   */
  watchWork?(onWork: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** SQLite result codes (and their extended forms, `SQLITE_IOERR_WRITE`…) of a store that is busy or out of space, not broken. */
const TRANSIENT_SQLITE = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|PROTOCOL)(_|$)/;
/**
 * PostgreSQL SQLSTATEs of a server that is unreachable, busy or restarting, not of a broken
 * statement: class 08 (connection exception), 40001 (serialization failure), 40P01 (deadlock
 * detected), 55P03 (lock not available: `lock_timeout`), 57P01–57P03 (admin or crash
 * shutdown, cannot connect now), class 53 (insufficient resources: disk full, out of memory,
 * too many connections).
 */
const TRANSIENT_POSTGRES = /^(08[0-9A-Z]{3}|40001|40P01|55P03|57P0[123]|53[0-9A-Z]{3})$/;
/** Node system error codes of a full disk or quota, or of a database server that cannot be reached. */
const TRANSIENT_ERRNO = new Set(['ENOSPC', 'EDQUOT', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/**
 * Whether a store call failed for a reason that passes: the database is locked by another
 * process (SQLITE_BUSY, SQLITE_LOCKED; PostgreSQL's lock timeout, serialization failure or
 * deadlock), the disk is full (SQLITE_FULL, ENOSPC, EDQUOT, PostgreSQL class 53), the file could
 * not be read, written or opened (SQLITE_IOERR*, SQLITE_CANTOPEN, SQLITE_PROTOCOL), or the
 * database server cannot be reached or is restarting (PostgreSQL class 08, 57P01–57P03;
 * ECONNREFUSED, ECONNRESET…). The same call may be tried again later: every Store method is
 * all-or-nothing. Anything else (a constraint, a bug, a closed store) is not transient. Reads
 * `err.code` (better-sqlite3's `SqliteError`, pg's `DatabaseError` SQLSTATE, Node's system
 * errors); never throws.
 */
export function isTransientStoreError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (TRANSIENT_SQLITE.test(code) || TRANSIENT_POSTGRES.test(code) || TRANSIENT_ERRNO.has(code));
}
