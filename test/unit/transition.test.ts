/**
 * The lifecycle policy as a table: runner outcome × task × context → transition.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyStats, type RunOutcome } from '../../src/agents/runner.ts';
import { decide, parseQuestion, type DecideContext, type Transition } from '../../src/scheduler/transition.ts';

const NOW = 1_000_000;
const ctx: DecideContext = { now: NOW, stopReason: null, questions: true, retryDelayMs: 30_000, account: 'claude', strikes: 0, rateLimitBackoff: { base: 60_000, max: 3_600_000 }, spentUsd: 0 };
const task = { agent: 'claude', attempts: 1, retries: 2, retryOnTimeout: false, maxCostUsd: 0.5 };
const out = (o: Record<string, unknown>): RunOutcome => ({ stats: emptyStats(), exitCode: null, ...o }) as RunOutcome;

const rows: Array<[string, RunOutcome, Partial<typeof task>, Partial<DecideContext>, Transition]> = [
  ['completed', out({ kind: 'completed', result: 'done' }), {}, {}, { kind: 'complete', result: 'done', clearStrikes: true }],
  ['completed with a question', out({ kind: 'completed', result: 'x <<question>> Which DB? <</question>>' }), {}, {}, { kind: 'block', question: 'Which DB?', clearStrikes: true }],
  ['a question when questions are off', out({ kind: 'completed', result: '<<question>>Q<</question>>' }), {}, { questions: false }, { kind: 'complete', result: '<<question>>Q<</question>>', clearStrikes: true }],
  ['retryable failure, attempts left', out({ kind: 'failed', reason: 'exit 1', retryable: true }), {}, {}, { kind: 'requeue', attemptOutcome: 'failed', reason: 'exit 1', runAfter: NOW + 30_000 }],
  ['retryable failure, last attempt', out({ kind: 'failed', reason: 'exit 1', retryable: true }), { attempts: 3 }, {}, { kind: 'end', state: 'failed', reason: 'exit 1' }],
  ['final failure', out({ kind: 'failed', reason: 'bad flag', retryable: false }), {}, {}, { kind: 'end', state: 'failed', reason: 'bad flag' }],
  ['auth failure is never retried', out({ kind: 'auth_failed', reason: '401' }), {}, {}, { kind: 'end', state: 'failed', reason: '401' }],
  [
    'rate limit with a stated reset',
    out({ kind: 'rate_limited', reason: '429', resetAt: NOW + 5_000 }),
    {},
    { strikes: 3 },
    { kind: 'requeue', attemptOutcome: 'rate_limited', reason: '429', runAfter: NOW, pause: { account: 'claude', until: NOW + 5_000, reason: '429', strikes: 4 } },
  ],
  [
    "rate limit on an agent with an account: the account is paused, not the agent's name",
    out({ kind: 'rate_limited', reason: '429', resetAt: NOW + 5_000 }),
    {},
    { account: 'team-a' },
    { kind: 'requeue', attemptOutcome: 'rate_limited', reason: '429', runAfter: NOW, pause: { account: 'team-a', until: NOW + 5_000, reason: '429', strikes: 1 } },
  ],
  [
    'rate limit without a reset: backoff doubles per strike',
    out({ kind: 'rate_limited', reason: '429', resetAt: null }),
    {},
    { strikes: 2 },
    { kind: 'requeue', attemptOutcome: 'rate_limited', reason: '429', runAfter: NOW, pause: { account: 'claude', until: NOW + 240_000, reason: '429', strikes: 3 } },
  ],
  [
    'rate limit backoff is capped',
    out({ kind: 'rate_limited', reason: '429', resetAt: null }),
    {},
    { strikes: 20 },
    { kind: 'requeue', attemptOutcome: 'rate_limited', reason: '429', runAfter: NOW, pause: { account: 'claude', until: NOW + 3_600_000, reason: '429', strikes: 21 } },
  ],
  ['timeout is final by default', out({ kind: 'timed_out', reason: 'after 1s' }), {}, {}, { kind: 'end', state: 'timed_out', reason: 'after 1s' }],
  ['timeout retried with retry_on_timeout', out({ kind: 'timed_out', reason: 'after 1s' }), { retryOnTimeout: true }, {}, { kind: 'requeue', attemptOutcome: 'timed_out', reason: 'after 1s', runAfter: NOW + 30_000 }],
  ['timeout with retry_on_timeout, no attempts left', out({ kind: 'timed_out', reason: 'after 1s' }), { retryOnTimeout: true, attempts: 3 }, {}, { kind: 'end', state: 'timed_out', reason: 'after 1s' }],
  [
    'workspace_setup failed, attempts left: retried after the backoff, the attempt counted',
    out({ kind: 'setup_failed', reason: 'workspace_setup: "npm ci" exited with code 1' }),
    {},
    {},
    { kind: 'requeue', attemptOutcome: 'setup_failed', reason: 'workspace_setup: "npm ci" exited with code 1', runAfter: NOW + 30_000 },
  ],
  [
    'workspace_setup failed on the last attempt: the task fails, the attempt records setup_failed',
    out({ kind: 'setup_failed', reason: 'workspace_setup: "npm ci" exited with code 1' }),
    { attempts: 3 },
    {},
    { kind: 'end', state: 'failed', reason: 'workspace_setup: "npm ci" exited with code 1', attemptOutcome: 'setup_failed' },
  ],
  ['budget exceeded by the agent', out({ kind: 'budget_exceeded', reason: 'max budget' }), {}, {}, { kind: 'end', state: 'budget_exceeded', reason: 'max budget' }],
  ['cancelled by the user', out({ kind: 'cancelled', reason: 'stopped' }), {}, { stopReason: 'cancel' }, { kind: 'end', state: 'cancelled', reason: 'cancelled by user' }],
  ['cancelled elsewhere (a remote agent\'s task): the runner\'s reason', out({ kind: 'cancelled', reason: 'remote b canceled the task' }), {}, {}, { kind: 'end', state: 'cancelled', reason: 'remote b canceled the task' }],
  ['a question asked outright (a remote agent): blocked', out({ kind: 'question', question: 'Which DB?' }), {}, {}, { kind: 'block', question: 'Which DB?', clearStrikes: true }],
  ['a question asked outright blocks even when questions are off', out({ kind: 'question', question: 'Which DB?' }), {}, { questions: false }, { kind: 'block', question: 'Which DB?', clearStrikes: true }],
  ['stopped by shutdown: requeued, attempt not used', out({ kind: 'cancelled', reason: 'stopped' }), {}, { stopReason: 'shutdown' }, { kind: 'requeue', attemptOutcome: 'interrupted', reason: 'dispatcher shut down', runAfter: NOW }],
  ['lease lost: nothing recorded', out({ kind: 'cancelled', reason: 'stopped' }), {}, { stopReason: 'lease_lost' }, { kind: 'none' }],
  ['stopped for a takeover (agentq attach): handed over, not ended', out({ kind: 'cancelled', reason: 'stopped' }), { attempts: 3 }, { stopReason: 'takeover' }, { kind: 'hand_over' }],
  ['a takeover that came too late: the completion stands', out({ kind: 'completed', result: 'done' }), {}, { stopReason: 'takeover' }, { kind: 'complete', result: 'done', clearStrikes: true }],
  [
    'stopped by the budget watch',
    out({ kind: 'cancelled', reason: 'stopped' }),
    {},
    { stopReason: 'budget', spentUsd: 0.51234 },
    { kind: 'end', state: 'budget_exceeded', reason: 'budget exceeded: $0.5123 spent of max_cost_usd $0.5; the agent was stopped' },
  ],
  ['a budget stop that came too late: the completion stands', out({ kind: 'completed', result: 'done' }), {}, { stopReason: 'budget' }, { kind: 'complete', result: 'done', clearStrikes: true }],
  ['completed and verified (no failure)', out({ kind: 'completed', result: 'done' }), {}, { verifyFailure: null }, { kind: 'complete', result: 'done', clearStrikes: true }],
  [
    'completed but a verify command failed: retried at once, the attempt verify_failed',
    out({ kind: 'completed', result: 'done' }),
    {},
    { verifyFailure: 'verify failed: `npm test` exited with code 1' },
    { kind: 'requeue', attemptOutcome: 'verify_failed', reason: 'verify failed: `npm test` exited with code 1', runAfter: NOW },
  ],
  [
    'verify failed on the last attempt: ends failed, the attempt verify_failed',
    out({ kind: 'completed', result: 'done' }),
    { attempts: 3 },
    { verifyFailure: 'verify failed: x' },
    { kind: 'end', state: 'failed', reason: 'verify failed: x', attemptOutcome: 'verify_failed' },
  ],
  ['a question is asked, not verified', out({ kind: 'completed', result: '<<question>>Which?<</question>>' }), {}, { verifyFailure: 'verify failed: x' }, { kind: 'block', question: 'Which?', clearStrikes: true }],
  [
    'stopped by the stall watchdog: retried after the backoff, the attempt stalled',
    out({ kind: 'cancelled', reason: 'stopped' }),
    {},
    { stopReason: 'stall', stopDetail: 'no activity for 5.0s' },
    { kind: 'requeue', attemptOutcome: 'stalled', reason: 'stalled: no activity for 5.0s; the agent was stopped', runAfter: NOW + 30_000 },
  ],
  [
    'stalled on the last attempt: ends failed, the attempt stalled',
    out({ kind: 'cancelled', reason: 'stopped' }),
    { attempts: 3 },
    { stopReason: 'stall', stopDetail: 'no activity for 10m 00s' },
    { kind: 'end', state: 'failed', reason: 'stalled: no activity for 10m 00s; the agent was stopped', attemptOutcome: 'stalled' },
  ],
  ['a stall stop that came too late: the completion stands', out({ kind: 'completed', result: 'done' }), {}, { stopReason: 'stall' }, { kind: 'complete', result: 'done', clearStrikes: true }],
];

describe('decide: outcome → transition', () => {
  for (const [name, outcome, t, c, expected] of rows) {
    it(name, () => assert.deepEqual(decide(outcome, { ...task, ...t }, { ...ctx, ...c }), expected));
  }

  it('parses the question block of a result', () => {
    assert.equal(parseQuestion('a <<question>>\n Which one? \n<</question>> b'), 'Which one?');
    assert.equal(parseQuestion('<<question>>  <</question>>'), null);
    assert.equal(parseQuestion('no question'), null);
  });
});
