/**
 * The runner contract for the `a2a` runner (HTTP, no child process) against a minimal A2A
 * agent made of the SDK's server classes (test/fixtures/a2a-peer.ts), with a real SQLite
 * store as the delegation ledger. It reports the remote task id as session, and the tokens
 * and cost the remote puts in its metadata. A2A has no rate-limit signal (a 429 is retried
 * as transient); HTTP 401 is an authentication failure; a task the remote fails is final.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { A2ARunner } from '../../src/agents/a2a/a2a-runner.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { startA2APeer, type A2APeer, type Behavior } from '../fixtures/a2a-peer.ts';
import { newTask } from '../fixtures/specs.ts';
import { runnerContract, type Behaviour } from './runner.contract.ts';

let peer: A2APeer;
let guarded: A2APeer;
let store: SqliteStore;
let runner: A2ARunner;
const scripts = new Map<string, Behavior>();

function behaviorFor(b: Behaviour): Behavior {
  switch (b.kind) {
    case 'answer':
      return { kind: 'complete', text: b.text, metadata: { cost_usd: 0.0123, input_tokens: 120, output_tokens: 45 } };
    case 'slow':
      return { kind: 'slow' };
    case 'failure':
      return { kind: 'fail', reason: 'the remote agent crashed' };
    default:
      throw new Error(`the a2a harness does not script ${b.kind}`);
  }
}

runnerContract('a2a', {
  capabilities: {
    process: false,
    reportsSession: true,
    reportsTokens: true,
    reportsCost: true,
    rateLimits: false,
    parsesResetAt: false,
    authFailures: true,
    failureRetryable: false,
  },
  async start() {
    peer = await startA2APeer({ script: (text) => scripts.get(text) ?? { kind: 'fail', reason: `unscripted: ${text}` } });
    guarded = await startA2APeer({ token: 'the-right-token' });
    store = new SqliteStore(path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-a2a-contract-')), 'agentq.db'));
    runner = new A2ARunner({
      name: 'a2a',
      remotes: { peer: { url: peer.url }, guarded: { url: guarded.url, token_env: 'GUARDED_TOKEN' } },
      env: { GUARDED_TOKEN: 'a-wrong-token' },
      stuckAfterMs: 30_000,
      pollMaxMs: 200,
      pollFirstMs: 20,
    });
  },
  async stop() {
    await Promise.all([peer.close(), guarded.close(), store.close()]);
  },
  async prepare(behaviour, base) {
    const remote = behaviour.kind === 'auth_failure' ? 'guarded' : 'peer';
    if (behaviour.kind !== 'auth_failure') scripts.set(base.prompt, behaviorFor(behaviour));
    // Each case's task is a task of the ledger's store (one open delegation per task).
    const [task] = await store.enqueue([newTask(`contract-${base.attemptId.slice(-8)}`, { agent: 'a2a', remote })], Date.now());
    return { runner, request: { ...base, task: { ...base.task, id: task!.id, agent: 'a2a', remote }, delegations: store } };
  },
  // The peer records a message/send on arrival.
  isMidRun: ({ request }) => peer.sends.some((s) => s.text === request.prompt),
});
