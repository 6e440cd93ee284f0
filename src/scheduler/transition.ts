/**
 * The lifecycle policy of an attempt's end, as one pure function: what a runner's outcome
 * means for the task ({@link decide}). The dispatcher only applies the {@link Transition}
 * it returns (store calls, worktree closing, events); no rule about retries, rate-limit
 * pauses, questions or budgets lives anywhere else.
 */
import type { RunOutcome } from '../agents/runner.ts';
import type { Task } from '../core/types.ts';

/** Why the dispatcher itself stopped a running attempt (its runner then reports `cancelled`); `takeover`: `agentq attach`. */
export type StopReason = 'cancel' | 'shutdown' | 'lease_lost' | 'budget' | 'takeover';

/** What happens to the task after an attempt. Times epoch ms. */
export type Transition =
  /** Completed with the agent's result. `clearStrikes`: the agent's rate-limit strikes end. */
  | { kind: 'complete'; result: string; clearStrikes: true }
  /** The agent asked a question: the task waits `blocked` for an answer (`agentq answer`). */
  | { kind: 'block'; question: string; clearStrikes: true }
  /** Back in the queue, not before `runAfter`. A `failed`/`timed_out` attempt counts against `retries`; `rate_limited`/`interrupted` do not. */
  | {
      kind: 'requeue';
      attemptOutcome: 'failed' | 'timed_out' | 'setup_failed' | 'rate_limited' | 'interrupted';
      reason: string;
      runAfter: number;
      /** Pause the agent's account first (a rate limit): which, until when, why, and its strikes in a row after this one. */
      pause?: { account: string; until: number; reason: string; strikes: number };
    }
  /** A person took the task over (`agentq attach`): it waits `blocked`, taken over, the attempt not counted (`Store.handOver`). */
  | { kind: 'hand_over' }
  /** The task ends in `state` with `reason`; `attemptOutcome`: what its attempt row records when not `state` itself. */
  | { kind: 'end'; state: 'failed' | 'timed_out' | 'cancelled' | 'budget_exceeded'; reason: string; attemptOutcome?: 'setup_failed' }
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
 * - completed: `complete`, or `block` when the result asks a question; question: `block`;
 * - failed: retried after `retryDelayMs` while retryable and attempts remain, else ends failed;
 *   auth_failed always ends failed;
 * - rate_limited: the agent's account (`ctx.account`) is paused until the stated reset, else
 *   for the doubling backoff, and the task goes back to the queue at once without using an attempt;
 * - timed_out: retried only with `retry_on_timeout`, else ends timed_out;
 * - setup_failed (`workspace_setup`): retried after `retryDelayMs` while attempts remain, else
 *   ends failed; either way the attempt records `setup_failed`;
 * - cancelled: by shutdown → back in the queue (interrupted); by a lost lease → nothing; by
 *   the budget watch → ends budget_exceeded; by a takeover → handed over (blocked, taken over);
 *   by the user → ends cancelled by user; not by the dispatcher (a remote agent's task was
 *   cancelled there) → ends cancelled with the runner's reason.
 */
export function decide(outcome: RunOutcome, task: Pick<Task, 'agent' | 'attempts' | 'retries' | 'retryOnTimeout' | 'maxCostUsd'>, ctx: DecideContext): Transition {
  const { now } = ctx;
  /** Back in the queue after the backoff while `allowed` and attempts remain, else the end in `state`. */
  const retryOrEnd = (state: 'failed' | 'timed_out', reason: string, allowed: boolean): Transition =>
    allowed && canRetry(task) ? { kind: 'requeue', attemptOutcome: state, reason, runAfter: now + ctx.retryDelayMs } : { kind: 'end', state, reason };
  switch (outcome.kind) {
    case 'completed': {
      const question = ctx.questions ? parseQuestion(outcome.result) : null;
      return question === null ? { kind: 'complete', result: outcome.result, clearStrikes: true } : { kind: 'block', question, clearStrikes: true };
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
      return canRetry(task)
        ? { kind: 'requeue', attemptOutcome: 'setup_failed', reason: outcome.reason, runAfter: now + ctx.retryDelayMs }
        : { kind: 'end', state: 'failed', reason: outcome.reason, attemptOutcome: 'setup_failed' };
    case 'cancelled':
      switch (ctx.stopReason) {
        case 'shutdown':
          return { kind: 'requeue', attemptOutcome: 'interrupted', reason: 'dispatcher shut down', runAfter: now };
        case 'lease_lost':
          return { kind: 'none' };
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
