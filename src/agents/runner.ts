/**
 * The runner contract: one adapter per agent (claude, command, …) behind one interface.
 * A runner starts the agent, parses its output, and reports what happened; the scheduler
 * decides what an outcome means for the task (retry, requeue, pause the agent, fail).
 */
import type { RunStats, Task } from '../core/types.ts';
import type { TokenUsage } from '../pricing/prices.ts';
import type { DelegationStore, Store } from '../store/store.ts';

/** Everything a runner needs for one attempt. */
export interface RunRequest {
  task: Task;
  /** Attempt id; runners tag the child's environment with it (`AGENTQ_ATTEMPT_ID`). */
  attemptId: string;
  /** The prompt to send (the task body, possibly with additions). */
  prompt: string;
  /**
   * Resume this agent session instead of starting a new one (Claude Code `--resume`), e.g.
   * to give the agent the answer to its question; `prompt` is then the answer. Runners that
   * cannot resume ignore it (the dispatcher then puts the question and answer in `prompt`).
   */
  resumeSessionId?: string | null;
  /** Instructions added to the agent's system prompt (Claude Code `--append-system-prompt`). */
  systemPromptAppend?: string | null;
  /** The model routing chose (alias or full id); null when the agent has no models. */
  model: string | null;
  /** Working directory of the agent process. */
  cwd: string;
  /** Environment for the child, already including the parent's environment. */
  env: Record<string, string | undefined>;
  /** Epoch ms after which the attempt is stopped and ends `timed_out`. */
  deadline: number;
  /** Files that receive the raw stdout / stderr of the attempt (appended). */
  stdoutLog: string;
  stderrLog: string;
  /** Aborted on `agentq cancel` or dispatcher shutdown; `signal.reason` says which. */
  signal: AbortSignal;
  /** Live events (session id known, progress), for status lines and the store. */
  onEvent?: (event: AgentEvent) => void;
  /**
   * The delegation ledger, for runners that hand the task to a remote agent (`a2a`): the
   * dispatcher's store (its calls retried through store outages). Other runners ignore it.
   */
  delegations?: DelegationStore;
}

/** Live events a runner reports while the agent runs. */
export type AgentEvent =
  | { type: 'spawned'; pid: number }
  | { type: 'session'; sessionId: string; model: string | null }
  | { type: 'progress'; text: string }
  | { type: 'usage'; stats: Partial<RunStats> }
  /**
   * One model response's tokens as it streams (Claude Code: each assistant message's
   * `usage`, counted once per message id; Codex: `turn.completed`); the dispatcher prices
   * them to watch `max_cost_usd`. `model` is the full model id when the agent says it.
   */
  | { type: 'turn'; model: string | null; usage: TokenUsage };

/**
 * How an attempt ended, as the runner saw it.
 * - `completed`: the agent finished successfully; `result` is its final text.
 * - `failed`: it did not; `retryable` says whether another attempt may help.
 * - `auth_failed`: credentials refused (401/403); never retried.
 * - `rate_limited`: the agent hit a rate/usage limit; `resetAt` (epoch ms) when known.
 * - `timed_out`: the deadline passed and the process tree was stopped.
 * - `cancelled`: `signal` was aborted and the process tree was stopped.
 * - `budget_exceeded`: the agent stopped itself at the task's budget (Claude Code
 *   `--max-budget-usd`, result subtype `error_max_budget_usd`); never retried.
 * - `question`: the agent asked a person `question` and waits for the answer (a remote A2A
 *   agent's `input-required`); the task goes `blocked`, whatever config `questions` says.
 *   (CLI agents ask in their result text instead, see `parseQuestion`.)
 * - `setup_failed`: never a runner's: the dispatcher's `workspace_setup` failed before the
 *   agent started (src/workspace/setup.ts); retried while attempts remain.
 */
export type RunOutcome = { stats: RunStats; exitCode: number | null } & (
  | { kind: 'completed'; result: string }
  | { kind: 'failed'; reason: string; retryable: boolean }
  | { kind: 'auth_failed'; reason: string }
  | { kind: 'rate_limited'; reason: string; resetAt: number | null }
  | { kind: 'timed_out'; reason: string }
  | { kind: 'cancelled'; reason: string }
  | { kind: 'budget_exceeded'; reason: string }
  | { kind: 'question'; question: string }
  | { kind: 'setup_failed'; reason: string }
);

/** One agent adapter. `run` never throws for agent failures: it returns an outcome. */
export interface AgentRunner {
  /** The `agent:` name tasks use to pick this runner. */
  readonly name: string;
  /** Whether `resumeSessionId` and `systemPromptAppend` are honoured. */
  readonly canResume?: boolean;
  /**
   * Whether the agent's own process working (its CPU time, its writes) is progress for the
   * stall watchdog (src/scheduler/stall.ts), as for `agent: command`, whose process is the
   * work. Default false: agent CLIs keep ticking while they wait on a model or a tool, so only
   * their output, stream events and their descendants' (tool commands') work count.
   */
  readonly ownProcessIsWork?: boolean;
  /**
   * Whether the attempt's work runs elsewhere while the runner only waits on it (as `a2a`,
   * whose remote agent's own queue watches it): the stall watchdog leaves such attempts
   * alone, since a remote task may work long without anything to see here. Default false.
   */
  readonly worksRemotely?: boolean;
  run(request: RunRequest): Promise<RunOutcome>;
  /**
   * Optional housekeeping on the dispatcher's cadence (each tick), with its store: the `a2a`
   * runner closes the open delegations of tasks that ended while none of their attempts ran
   * (cancelled while blocked on a remote question, or finished by another agent), cancelling
   * their remote tasks. Must not throw for remote failures.
   */
  sweep?(store: Store): Promise<void>;
}

/** Empty run stats. */
export function emptyStats(): RunStats {
  return { sessionId: null, model: null, costUsd: null, inputTokens: null, outputTokens: null, numTurns: null };
}
