/**
 * The value types that cross module boundaries: task specs from intake, tasks and attempts
 * from the store, outcomes from runners.
 */

/** Task priority, highest first. */
export const PRIORITIES = ['critical', 'high', 'default', 'low'] as const;
export type Priority = (typeof PRIORITIES)[number];

/** Sort rank of a priority: 0 is the most urgent. */
export function priorityRank(p: Priority): number {
  return PRIORITIES.indexOf(p);
}

/**
 * Every state a task can be in. All but `queued`, `running`, `blocked` (its agent asked a
 * question) and `waiting` (its own run completed, its subtasks have not) are terminal.
 */
export const TASK_STATES = ['queued', 'running', 'blocked', 'waiting', 'completed', 'failed', 'timed_out', 'budget_exceeded', 'cancelled', 'invalid', 'duplicate'] as const;
export type TaskState = (typeof TASK_STATES)[number];
export const TERMINAL_STATES: readonly TaskState[] = ['completed', 'failed', 'timed_out', 'budget_exceeded', 'cancelled', 'invalid', 'duplicate'];
export function isTerminal(s: TaskState): boolean {
  return TERMINAL_STATES.includes(s);
}

/** Agents a task may name in `agent:` (each has a runner in src/agents/). */
export const KNOWN_AGENTS = ['claude', 'codex', 'gemini', 'openai', 'command', 'a2a'] as const;

/**
 * `agent: a2a`: the task is delegated to another A2A agent (its `remote`). In an `agent: auto`
 * `fallback` list, `a2a:NAME` names the agent of config `remotes.NAME`.
 */
export const A2A_AGENT = 'a2a';

/** `agent: auto`: the dispatcher picks from the priority's `fallback` list at each claim. */
export const AUTO_AGENT = 'auto';

/** Argv list (spawned without a shell) or one string run by `sh -c`. */
export type CommandSpec = string[] | string;

/**
 * A validated task as intake hands it to the store. Durations are ms, money USD.
 */
export interface TaskSpec {
  /** File name without `.md`; unique handle for `depends_on`. */
  name: string;
  title: string;
  priority: Priority;
  /** Runner name: `claude` or `command`. */
  agent: string;
  /** Model override; null lets routing decide. */
  model: string | null;
  /** Names of tasks that must complete first (resolved to ids by intake). */
  dependsOn: string[];
  /** Name of the task this one is a subtask of; the parent completes only when its subtasks have. */
  parent: string | null;
  /** Hard limit per attempt, ms. */
  timeoutMs: number;
  maxCostUsd: number | null;
  /** Extra attempts after the first failure. */
  retries: number;
  /** Base of the exponential retry backoff, ms; null: config `retry_backoff`. */
  retryBackoffMs: number | null;
  /** Whether a timed-out attempt may be retried (default: a timeout is final). */
  retryOnTimeout: boolean;
  /** Tasks of one group run at most `group_concurrency` at a time; null: no group. */
  concurrencyGroup: string | null;
  /** Earliest start, epoch ms (`run_at`); null: at once. */
  runAt: number | null;
  /** Where the agent runs; null: the project's default (worktree in a git repository). */
  workspace: 'inplace' | 'worktree' | null;
  /** What happens to a worktree branch after success; null: config `merge`. */
  merge: 'manual' | 'auto' | null;
  /**
   * Commands run by `sh -c`, in order, in a fresh worktree before the agent starts
   * (`workspace_setup`, e.g. `npm ci`); null: config `workspace_setup`; empty: none.
   */
  workspaceSetup: string[] | null;
  tags: string[];
  /** Labels a dispatcher must all hold to claim the task (`runs_on`, `agentq run --label`); empty: any dispatcher. */
  runsOn: string[];
  dedupKey: string | null;
  /** For `agent: command`. */
  command: CommandSpec | null;
  /** For `agent: a2a`: the A2A agent to delegate to, a `remotes` name from config or an http(s) URL. */
  remote: string | null;
  /**
   * When delegated: fields for the remote, sent as the A2A message's metadata over the ones
   * agentq sends (`remote_metadata`; for an agentq remote, its task fields); null: none.
   */
  remoteMetadata: Record<string, unknown> | null;
  /** claude: `--max-turns` (frontmatter `max_turns`); null: config's, else the CLI's default. */
  maxTurns: number | null;
  /** claude: `--allowedTools` (frontmatter `allowed_tools`); null: config's, else none. */
  allowedTools: string[] | null;
  /**
   * Commands run by `sh -c` in the task's workspace after the agent reports success, in
   * order (frontmatter `verify`); all must exit 0 for the task to complete. Null: config
   * `verify`; an empty list: none.
   */
  verify: string[] | null;
  /** Time limit of each `verify` command, ms; null: config `verify_timeout`. */
  verifyTimeoutMs: number | null;
  /** Failed verifications on one agent before an `agent: auto` task moves to the next of its `fallback` list; null: config `verify_retries`. */
  verifyRetries: number | null;
  /** An attempt whose agent shows no activity this long is stopped (`stalled`), ms; 0: never; null: config `stall_timeout`. */
  stallTimeoutMs: number | null;
  /** Frontmatter fields agent-queue does not know, kept as given. */
  extra: Record<string, unknown>;
  /** The prompt (Markdown body). */
  prompt: string;
  /** How the task arrived: `inbox` or `cli`. */
  source: string;
}

/** Run figures, known after (part of) an attempt. USD, tokens, ms. */
export interface RunStats {
  sessionId: string | null;
  model: string | null;
  costUsd: number | null;
  inputTokens: number | null;
  outputTokens: number | null;
  numTurns: number | null;
}

/**
 * A checkout of a project on one machine: the host (`os.hostname()`) and the project root
 * (absolute, symbolic links resolved). Tasks record the one they came from (their origin);
 * their result files are written there.
 */
export interface TaskOrigin {
  host: string;
  root: string;
}

/** A task as the store holds it. Times are epoch ms. */
export interface Task extends TaskSpec {
  /** Task id: a positive integer, increasing in arrival order. */
  id: number;
  state: TaskState;
  /** Dependency task ids (same order as `dependsOn`). */
  dependsOnIds: number[];
  /** Id of the parent task (resolved from `parent`). */
  parentId: number | null;
  /** Attempts that count against `retries` (claims minus interrupted / rate-limited ones). */
  attempts: number;
  /** Earliest time the task may be claimed again. */
  runAfter: number;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  durationMs: number | null;
  /** Every claim ever made, including interrupted and rate-limited ones. */
  claims: number;
  /** Set by `agentq cancel` on a running task; the owning dispatcher stops it. */
  cancelRequested: boolean;
  /** The agent the latest attempt ran on (differs from `agent` for `agent: auto`). */
  runAgent: string | null;
  /** Figures of the latest attempt (the one that completed, for a completed task). */
  stats: RunStats;
  /** Final result text (completed) — the agent's last message. */
  result: string | null;
  failedReason: string | null;
  /** Path of the done/failed file once written, else null. */
  resultPath: string | null;
  /**
   * The checkout the task came from (inbox, recurring file, `agentq serve`; a subtask: its
   * parent's); its result file is written there. Null for tasks stored before agentq recorded it
   * (any checkout writes theirs).
   */
  origin: TaskOrigin | null;
  /**
   * The question the agent asked (state `blocked`), and the answer given for the next attempt.
   * `answer` with `question` null is the note of `agentq release` (a task taken over by hand
   * and handed back): the next attempt resumes the session with it as the prompt.
   */
  question: string | null;
  answer: string | null;
  /**
   * When a person took the task over by hand (`agentq attach`), epoch ms; null otherwise. On a
   * `running` task: its dispatcher is asked to stop the attempt (the task then goes `blocked`,
   * taken over); on a `blocked` task: taken over, until `agentq release` queues it again.
   */
  takenOverAt: number | null;
  /** Worktree branch of the last attempt, and the commits the task made on it. */
  branch: string | null;
  commits: Array<{ hash: string; subject: string }>;
  /** Host name of the machine whose dispatcher ran the attempt that ended the task (where `branch` lives); null until one ends it. */
  ranOn: string | null;
  /** `workspace_push`: where the branch was pushed, as the remote-tracking name a fetch gives it (`origin/agentq/fix`); null when not pushed. */
  pushedTo: string | null;
  /** `workspace_push`: why the push failed (one line: remote, branch, git's complaint); null when it did not fail. */
  pushError: string | null;
  /**
   * While it runs: when its agent last showed activity (output, a stream event, work in its
   * tool commands), as its dispatcher last recorded it with the lease heartbeat; set to the
   * start at the claim. Epoch ms; null before the first claim.
   */
  lastActivityAt: number | null;
}

/** What one attempt ended as. */
export type AttemptOutcome =
  | 'running'
  | 'completed'
  | 'failed'
  | 'timed_out'
  | 'budget_exceeded'
  | 'cancelled'
  | 'rate_limited'
  | 'interrupted'
  | 'blocked'
  /** `workspace_setup` failed (non-zero exit, timeout, could not start); the agent did not run. */
  | 'setup_failed'
  /** The agent reported success but a `verify` command failed. */
  | 'verify_failed'
  /** The agent showed no activity for `stall_timeout` and was stopped. */
  | 'stalled';

/**
 * The outcomes of an attempt that put its task back in the queue and count against its
 * `retries` (`Task.attempts` keeps them); `rate_limited` and `interrupted` do not count.
 */
export const COUNTED_REQUEUE_OUTCOMES: readonly AttemptOutcome[] = ['failed', 'timed_out', 'setup_failed', 'verify_failed', 'stalled'];

/** One claim of a task: a row per attempt, kept forever as history. */
export interface Attempt {
  /**
   * Random UUID. Doubles as the lease's fencing token (a result is refused unless the
   * task's lease still names this attempt) and as the `AGENTQ_ATTEMPT_ID` process tag.
   */
  id: string;
  taskId: number;
  /** 1-based claim number, counting every claim. */
  number: number;
  workerId: string;
  /** The host name of the machine whose dispatcher claimed it (null for attempts older than the column whose worker id did not name one). */
  host: string | null;
  agent: string;
  model: string | null;
  outcome: AttemptOutcome;
  reason: string | null;
  exitCode: number | null;
  startedAt: number;
  finishedAt: number | null;
  /** Raw stdout log of the attempt (stderr beside it, `.stderr.log`). */
  logPath: string | null;
  durationMs: number | null;
  stats: RunStats;
}

/** Most bytes of each output stream (stdout, stderr) of an attempt that the store keeps: the last 64 KiB. */
export const OUTPUT_TAIL_BYTES = 64 * 1024;

/** The end of one output stream of an attempt, as the store keeps it (see `readOutputTail`, src/results/logs.ts). */
export interface OutputTail {
  /**
   * The last {@link OUTPUT_TAIL_BYTES} bytes of the log (fewer when a code point would be
   * split: the cut starts at a whole one) as text; bytes that are not UTF-8, and NUL, read as
   * U+FFFD (PostgreSQL text holds no NUL).
   */
  text: string;
  /** Size of the whole log, in bytes: past {@link OUTPUT_TAIL_BYTES}, `text` is only its end. */
  bytes: number;
}

/** The stdout and stderr tails of an ended attempt (`Store.attemptOutput`). */
export interface AttemptOutput {
  stdout: OutputTail;
  stderr: OutputTail;
}

/**
 * One `verify` command run after an attempt's agent reported success (`Store.recordVerification`).
 * Durations ms, times epoch ms.
 */
export interface Verification {
  attemptId: string;
  taskId: number;
  /** The attempt's 1-based claim number. */
  attemptNumber: number;
  /** 1-based position of the command in the attempt's `verify` list. */
  number: number;
  command: string;
  /** Exit code; null when it was killed (`timedOut`, or stopped with the attempt) or ended by a signal. */
  exitCode: number | null;
  /** Whether it ran past `verify_timeout` and was stopped. */
  timedOut: boolean;
  durationMs: number;
  /** Its combined stdout and stderr log (`N.verify-K.log` in the attempt log folder) on the host that ran it; null when none was written. */
  outputPath: string | null;
  /** The end of that output: its last {@link VERIFY_TAIL_LINES} lines, at most {@link OUTPUT_TAIL_BYTES} bytes. */
  outputTail: string;
  startedAt: number;
}

/** Lines of a verification's output kept in the store and handed to the agent after a failure. */
export const VERIFY_TAIL_LINES = 200;

/** A claim: the task and the attempt just opened for it. */
export interface Claim {
  task: Task;
  attempt: Attempt;
}

/** An agent paused after a rate limit, until `until` (epoch ms). */
export interface AgentPause {
  /** The account paused (`agents.<name>.account`, default the agent's name): every agent on it waits. */
  agent: string;
  until: number;
  reason: string;
}
