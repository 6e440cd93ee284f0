/**
 * Delegations: a task handed to another A2A agent (`agent: a2a`, another `agentq serve` or any
 * A2A-speaking agent), one row per remote task in the store's ledger. The lifecycle is one
 * pure function, {@link delegationStep}; the `a2a` runner applies what it returns and the
 * store only records it.
 *
 * ```
 * pending ─► dispatched ─► received ─► in_progress ─► completed | failed
 *    │            └─────────────┴──────────┴──► input_required ─(answer)─► pending
 *    └─ any open state ─► failed (remote refused, lost it, unreachable) | canceled (local cancel)
 * ```
 */

/** Every state of a delegation, in lifecycle order. */
export const DELEGATION_STATES = ['pending', 'dispatched', 'received', 'in_progress', 'input_required', 'completed', 'failed', 'canceled'] as const;
export type DelegationState = (typeof DELEGATION_STATES)[number];

/** States a delegation ends in: its remote task is never looked at again. */
export const DELEGATION_END_STATES: readonly DelegationState[] = ['completed', 'failed', 'canceled'];

/** Whether a delegation in `state` is still open (its remote task may still change). */
export function isOpenDelegation(state: DelegationState): boolean {
  return !DELEGATION_END_STATES.includes(state);
}

/**
 * One delegation as the store holds it. Times are epoch ms; a `…At` of a state is the last
 * time the delegation entered it (null: never).
 */
export interface Delegation {
  /** Ledger id: a positive integer, increasing in creation order. */
  id: number;
  taskId: number;
  /**
   * The local attempt that created it; also the `messageId` of the first message sent, the
   * idempotency key that keeps a resend (after a crash between send and record) from making
   * a second remote task.
   */
  attemptId: string;
  /** The remote as the task named it: a `remotes` name from config, or the agent's URL. */
  remote: string;
  /** The A2A agent's URL (its agent card is found below it). */
  url: string;
  /** The remote task's id, once the remote answered the first message; null while `pending`. */
  remoteTaskId: string | null;
  /** The remote's `contextId` of that task. */
  contextId: string | null;
  /** `messageId` of the latest message sent (the attempt id of the attempt that sent it). */
  messageId: string;
  state: DelegationState;
  /** The remote task's A2A state as last seen (`submitted`, `working`, `input-required`, …). */
  remoteState: string | null;
  /** The latest error: a transient one being retried, or why it failed. */
  lastError: string | null;
  /** The first characters of the remote's result (completed) or question (input_required). */
  resultPreview: string | null;
  createdAt: number;
  dispatchedAt: number | null;
  receivedAt: number | null;
  inProgressAt: number | null;
  inputRequiredAt: number | null;
  /** When it ended (completed, failed or canceled). */
  finishedAt: number | null;
  /** The last time the remote showed progress (a new state or status), for `delegation_stuck_after`. */
  progressAt: number;
  /** The last time the row changed. */
  updatedAt: number;
  /**
   * sha256 (hex) of the token the remote's push notifications for it carry
   * (`X-A2A-Notification-Token`, to `POST /a2a/push/ID` of the delegating `agentq serve`);
   * null: no push notifications asked for (tracked by polling `tasks/get` only).
   */
  pushTokenSha256: string | null;
}

/** Longest {@link Delegation.resultPreview}, characters. */
export const RESULT_PREVIEW_CHARS = 300;

/** `text` cut to {@link RESULT_PREVIEW_CHARS} characters (a cut one ends with `…`). */
export function preview(text: string): string {
  const t = text.trim();
  return t.length <= RESULT_PREVIEW_CHARS ? t : `${t.slice(0, RESULT_PREVIEW_CHARS - 1)}…`;
}

/**
 * What happened to a delegation:
 * - `remote`: the remote reported its task in A2A state `state` (`tasks/get`, a push
 *   notification): `submitted`, `working`, `input-required`, `auth-required`, `completed`,
 *   `failed`, `rejected`, `canceled`, `unknown`;
 * - `accepted`: the remote answered `message/send` with its task in state `state`;
 * - `answer`: the local answer to the remote's question is about to be sent;
 * - `fail`: given up locally (the remote refused the message, lost the task, stayed
 *   unreachable past `delegation_stuck_after`);
 * - `cancel`: cancelled locally (`agentq cancel`, the task's timeout or budget); `tasks/cancel` is sent.
 */
export type DelegationEvent = { kind: 'remote'; state: string } | { kind: 'accepted'; state: string } | { kind: 'answer' } | { kind: 'fail' } | { kind: 'cancel' };

/**
 * The state a delegation in `from` moves to on `event`, or null when it does not move (pure).
 * An ended delegation never moves. Remote states:
 * - `submitted` (queued at the remote): `pending → dispatched` (the remote took the message),
 *   then `dispatched → received` (a later look finds it still holding the task); never backwards;
 * - `working` → `in_progress`;
 * - `input-required` → `input_required`;
 * - `completed` → `completed`; `failed`, `rejected`, `auth-required` (agentq cannot log in for
 *   the remote) → `failed`; `canceled` → `canceled`;
 * - `unknown` or anything else → no move.
 * `accepted` is `remote`, except that a `pending` delegation moves to `dispatched` at least
 * (the remote has the message, whatever state it names).
 * `answer` moves only `input_required → pending` (the answer is sent as a new message);
 * `fail` → `failed` and `cancel` → `canceled` from any open state.
 */
export function delegationStep(from: DelegationState, event: DelegationEvent): DelegationState | null {
  if (!isOpenDelegation(from)) return null;
  const to = target(from, event);
  return to === null || to === from ? null : to;
}

function target(from: DelegationState, event: DelegationEvent): DelegationState | null {
  switch (event.kind) {
    case 'answer':
      return from === 'input_required' ? 'pending' : null;
    case 'fail':
      return 'failed';
    case 'cancel':
      return 'canceled';
    case 'accepted': {
      const to = target(from, { kind: 'remote', state: event.state });
      return to === null && from === 'pending' ? 'dispatched' : to;
    }
    case 'remote':
      switch (event.state) {
        case 'submitted':
          if (from === 'pending') return 'dispatched';
          if (from === 'dispatched') return 'received';
          return null;
        case 'working':
          return 'in_progress';
        case 'input-required':
          return 'input_required';
        case 'completed':
          return 'completed';
        case 'failed':
        case 'rejected':
        case 'auth-required':
          return 'failed';
        case 'canceled':
          return 'canceled';
        default:
          return null;
      }
  }
}
