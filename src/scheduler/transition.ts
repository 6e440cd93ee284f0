/**
 * The lifecycle policy of an attempt's end, as one pure function: what a runner's outcome
 * means for the task ({@link decide}). The dispatcher only applies the {@link Transition}
 * it returns (store calls, worktree closing, events); no rule about retries, rate-limit
 * pauses, questions or budgets lives anywhere else.
 */
import type { RunOutcome } from '../agents/runner.ts';
import type { Task } from '../core/types.ts';

/**
 * Why the dispatcher itself stopped a running attempt (its runner then reports `cancelled`):
 * a user's cancel, its own shutdown, a lost lease, the `max_cost_usd` watch, a takeover
 * (`agentq attach`), or the stall watchdog (`stall_timeout` without activity, see
 * src/scheduler/stall.ts).
 */
export type StopReason = 'cancel' | 'shutdown' | 'lease_lost' | 'budget' | 'takeover' | 'stall';

/** The attempt outcomes of the agent's own failures that are retried while attempts remain, else end the task failed (the attempt row keeps the outcome). */
export type CountedFailure = 'setup_failed' | 'verify_failed' | 'stalled';

/** What happens to the task after an attempt. Times epoch ms. */
export type Transition =
  /** Completed with the agent's result. `clearStrikes`: the agent's rate-limit strikes end. */
  | { kind: 'complete'; result: string; clearStrikes: true }
  /** The agent asked a question: the task waits `blocked` for an answer (`agentq answer`). */
  | { kind: 'block'; question: string; clearStrikes: true }
  /** Back in the queue, not before `runAfter`. A `failed`/`timed_out`/`setup_failed`/`verify_failed`/`stalled` attempt counts against `retries` (`COUNTED_REQUEUE_OUTCOMES`); `rate_limited`/`interrupted` do not. */
  | {
      kind: 'requeue';
      attemptOutcome: 'failed' | 'timed_out' | CountedFailure | 'rate_limited' | 'interrupted';
      reason: string;
      runAfter: number;
      /** Pause the agent's account first (a rate limit): which, until when, why, and its strikes in a row after this one. */
      pause?: { account: string; until: number; reason: string; strikes: number };
    }
  /** A person took the task over (`agentq attach`): it waits `blocked`, taken over, the attempt not counted (`Store.handOver`). */
  | { kind: 'hand_over' }
  /** The task ends in `state` with `reason`; `attemptOutcome`: what its attempt row records when not `state` itself (a last setup failure, failed verification or stall). */
  | { kind: 'end'; state: 'failed' | 'timed_out' | 'cancelled' | 'budget_exceeded'; reason: string; attemptOutcome?: CountedFailure }
  /** Nothing to record: the lease is lost (another dispatcher owns the task now). */
  | { kind: 'none' };

/** What {@link decide} needs besides the outcome and the task. */
export interface DecideContext {
  /** Epoch ms. */
  now: number;
  /** Why the dispatcher stopped the attempt, if it did. */
  stopReason: StopReason | null;
  /** Whether agents may end with a question (config `questions`); then `parseQuestion` applies. */
  questions: boolean;
  /** Backoff before a retry, ms (the caller draws it: `retry_backoff` doubled per attempt, with jitter). */
  retryDelayMs: number;
  /** Whose usage limit the agent runs on (`accountOf`): the key a rate limit pauses. */
  account: string;
  /** The account's rate limits in a row before this one. */
  strikes: number;
  /** Pause after a rate limit with no stated reset: `base` doubled per strike, at most `max`, ms. */
  rateLimitBackoff: { base: number; max: number };
  /** USD spent by the attempt, for the reason of a `budget` stop. */
  spentUsd: number;
  /**
   * Why the verification of a `completed` outcome failed (the failing `verify` command, its
   * exit code), or null/absent: it passed or there was none to run.
   */
  verifyFailure?: string | null;
  /** What the dispatcher says about a `stall` stop (how long the agent was quiet): the reason of the `stalled` attempt. */
  stopDetail?: string | null;
}

/** The question in an agent's final message (`<<question>> … <</question>>`), else null. */
export function parseQuestion(result: string): string | null {
  const m = /<<question>>([\s\S]*?)<<\/question>>/.exec(result);
  const q = m?.[1]?.trim();
  return q ? q : null;
}

/** Whether the task has an attempt left: `attempts` counts the one that just ended. */
const canRetry = (task: Pick<Task, 'attempts' | 'retries'>) => task.attempts <= task.retries;

/**
 * The task's next step after an attempt ended with `outcome` (pure).
 * - completed: `complete`, or `block` when the result asks a question; with a `verifyFailure`,
 *   retried at once (attempt `verify_failed`) while attempts remain, else ends failed;
 * - question: `block`;
 * - failed: retried after `retryDelayMs` while retryable and attempts remain, else ends failed;
 *   auth_failed always ends failed;
 * - rate_limited: the agent's account (`ctx.account`) is paused until the stated reset, else
 *   for the doubling backoff, and the task goes back to the queue at once without using an attempt;
 * - timed_out: retried only with `retry_on_timeout`, else ends timed_out;
 * - setup_failed (`workspace_setup`): retried after `retryDelayMs` while attempts remain, else
 *   ends failed; either way the attempt records `setup_failed`;
 * - cancelled: by shutdown → back in the queue (interrupted); by a lost lease → nothing; by
 *   the budget watch → ends budget_exceeded; by a takeover → handed over (blocked, taken over);
 *   by the stall watchdog → retried after `retryDelayMs` (attempt `stalled`) while attempts
 *   remain, else ends failed; by the user → ends cancelled by user; not by the dispatcher (a
 *   remote agent's task was cancelled there) → ends cancelled with the runner's reason.
 */
export function decide(outcome: RunOutcome, task: Pick<Task, 'agent' | 'attempts' | 'retries' | 'retryOnTimeout' | 'maxCostUsd'>, ctx: DecideContext): Transition {
  const { now } = ctx;
  /** Back in the queue after the backoff while `allowed` and attempts remain, else the end in `state`. */
  const retryOrEnd = (state: 'failed' | 'timed_out', reason: string, allowed: boolean): Transition =>
    allowed && canRetry(task) ? { kind: 'requeue', attemptOutcome: state, reason, runAfter: now + ctx.retryDelayMs } : { kind: 'end', state, reason };
  /** Back in the queue after `delayMs` while attempts remain, else the task ends failed; the attempt records `attemptOutcome` either way. */
  const againOrFail = (attemptOutcome: CountedFailure, reason: string, delayMs: number): Transition =>
    canRetry(task) ? { kind: 'requeue', attemptOutcome, reason, runAfter: now + delayMs } : { kind: 'end', state: 'failed', reason, attemptOutcome };
  switch (outcome.kind) {
    case 'completed': {
      const question = ctx.questions ? parseQuestion(outcome.result) : null;
      if (question !== null) return { kind: 'block', question, clearStrikes: true };
      // The agent's own work did not pass: hand it back at once (no backoff: nothing transient to wait out).
      if (ctx.verifyFailure) return againOrFail('verify_failed', ctx.verifyFailure, 0);
      return { kind: 'complete', result: outcome.result, clearStrikes: true };
    }
    case 'question':
      return { kind: 'block', question: outcome.question, clearStrikes: true };
    case 'failed':
      return retryOrEnd('failed', outcome.reason, outcome.retryable);
    case 'auth_failed':
      return { kind: 'end', state: 'failed', reason: outcome.reason };
    case 'rate_limited': {
      const backoff = Math.min(ctx.rateLimitBackoff.base * 2 ** ctx.strikes, ctx.rateLimitBackoff.max);
      const pause = { account: ctx.account, until: outcome.resetAt ?? now + backoff, reason: outcome.reason, strikes: ctx.strikes + 1 };
      return { kind: 'requeue', attemptOutcome: 'rate_limited', reason: outcome.reason, runAfter: now, pause };
    }
    case 'timed_out':
      return retryOrEnd('timed_out', outcome.reason, task.retryOnTimeout);
    case 'budget_exceeded':
      return { kind: 'end', state: 'budget_exceeded', reason: outcome.reason };
    case 'setup_failed':
      return againOrFail('setup_failed', outcome.reason, ctx.retryDelayMs);
    case 'cancelled':
      switch (ctx.stopReason) {
        case 'shutdown':
          return { kind: 'requeue', attemptOutcome: 'interrupted', reason: 'dispatcher shut down', runAfter: now };
        case 'lease_lost':
          return { kind: 'none' };
        case 'stall':
          return againOrFail('stalled', `stalled: ${ctx.stopDetail ?? 'no activity'}; the agent was stopped`, ctx.retryDelayMs);
        case 'takeover':
          return { kind: 'hand_over' };
        case 'budget':
          return {
            kind: 'end',
            state: 'budget_exceeded',
            reason: `budget exceeded: $${ctx.spentUsd.toFixed(4)} spent of max_cost_usd $${task.maxCostUsd ?? '?'}; the agent was stopped`,
          };
        case null:
          return { kind: 'end', state: 'cancelled', reason: outcome.reason };
        default:
          return { kind: 'end', state: 'cancelled', reason: 'cancelled by user' };
      }
  }
}
