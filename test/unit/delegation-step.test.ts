/**
 * The delegation lifecycle as a table: state × event → next state (or no move).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DELEGATION_END_STATES, DELEGATION_STATES, delegationStep, isOpenDelegation, preview, type DelegationEvent, type DelegationState } from '../../src/core/delegation.ts';

const remote = (state: string): DelegationEvent => ({ kind: 'remote', state });

const rows: Array<[DelegationState, DelegationEvent, DelegationState | null, string]> = [
  // The send's answer and later looks: forward only.
  ['pending', remote('submitted'), 'dispatched', 'the remote took the message and queued it'],
  ['dispatched', remote('submitted'), 'received', 'a later look finds it still holding the task'],
  ['received', remote('submitted'), null, 'still queued: no move'],
  ['in_progress', remote('submitted'), null, 'never backwards'],
  ['pending', remote('working'), 'in_progress', 'the answer already says working'],
  ['dispatched', remote('working'), 'in_progress', ''],
  ['received', remote('working'), 'in_progress', ''],
  ['in_progress', remote('working'), null, ''],
  ['input_required', remote('working'), 'in_progress', 'answered by someone else: it goes on'],
  ['input_required', remote('submitted'), null, ''],
  // The answer to message/send: as a remote report, but it always takes the message out of pending.
  ['pending', { kind: 'accepted', state: 'submitted' }, 'dispatched', ''],
  ['pending', { kind: 'accepted', state: 'working' }, 'in_progress', ''],
  ['pending', { kind: 'accepted', state: 'unknown' }, 'dispatched', 'the remote has the message, whatever it calls its task'],
  ['pending', { kind: 'accepted', state: 'completed' }, 'completed', ''],
  ['dispatched', { kind: 'accepted', state: 'unknown' }, null, ''],
  // Questions and answers.
  ['in_progress', remote('input-required'), 'input_required', ''],
  ['pending', remote('input-required'), 'input_required', 'asks at once'],
  ['input_required', remote('input-required'), null, ''],
  ['input_required', { kind: 'answer' }, 'pending', 'the answer goes out as a new message'],
  ['in_progress', { kind: 'answer' }, null, 'nothing was asked'],
  // Ends reported by the remote.
  ['in_progress', remote('completed'), 'completed', ''],
  ['dispatched', remote('completed'), 'completed', 'a quick remote: done before the first look'],
  ['in_progress', remote('failed'), 'failed', ''],
  ['pending', remote('rejected'), 'failed', 'the remote refused the task'],
  ['in_progress', remote('auth-required'), 'failed', 'agentq cannot log in for the remote'],
  ['in_progress', remote('canceled'), 'canceled', 'cancelled at the remote'],
  ['in_progress', remote('unknown'), null, ''],
  ['in_progress', remote('no-such-state'), null, ''],
  // Local decisions.
  ['pending', { kind: 'fail' }, 'failed', 'the remote refused the message, or stayed unreachable'],
  ['received', { kind: 'fail' }, 'failed', 'the remote lost the task'],
  ['input_required', { kind: 'cancel' }, 'canceled', ''],
  ['in_progress', { kind: 'cancel' }, 'canceled', ''],
  // An end never moves.
  ['completed', remote('failed'), null, ''],
  ['completed', { kind: 'cancel' }, null, ''],
  ['failed', remote('completed'), null, 'a late answer after giving up'],
  ['canceled', remote('completed'), null, ''],
  ['canceled', { kind: 'answer' }, null, ''],
];

describe('delegationStep: state × event → next state', () => {
  for (const [from, event, to, why] of rows) {
    const name = `${from} + ${'state' in event ? `${event.kind} ${event.state}` : event.kind} → ${to ?? 'no move'}${why ? ` (${why})` : ''}`;
    it(name, () => assert.equal(delegationStep(from, event), to));
  }

  it('every state: ends are final, fail and cancel end every open state', () => {
    for (const s of DELEGATION_STATES) {
      assert.equal(isOpenDelegation(s), !DELEGATION_END_STATES.includes(s));
      if (isOpenDelegation(s)) {
        assert.equal(delegationStep(s, { kind: 'fail' }), 'failed');
        assert.equal(delegationStep(s, { kind: 'cancel' }), 'canceled');
      } else {
        for (const e of [remote('working'), remote('completed'), { kind: 'fail' } as const, { kind: 'cancel' } as const]) assert.equal(delegationStep(s, e), null);
      }
    }
  });

  it('previews cut long text with an ellipsis', () => {
    assert.equal(preview('  short  '), 'short');
    const long = preview('x'.repeat(1000));
    assert.equal(long.length, 300);
    assert.ok(long.endsWith('…'));
  });
});
