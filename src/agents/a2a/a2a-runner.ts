/**
 * The `a2a` runner: delegates a task to a remote A2A agent (another `agentq serve`, or any
 * A2A-speaking agent) and tracks it to its end, with every step in the store's delegation
 * ledger (src/core/delegation.ts), so a dispatcher that restarts picks the remote task up
 * where it was instead of sending it again. No child process: one HTTP client.
 *
 * One attempt:
 * 1. the task's open delegation, if it has one (an earlier attempt was cut short, or the
 *    remote asked a question that has been answered) — else the remote is resolved (config
 *    `remotes.NAME`, or the task's URL), its agent card read, and a `pending` delegation
 *    recorded whose message id is the attempt id;
 * 2. `pending`: `message/send`, non-blocking, the message id the recorded one (a send that a
 *    crash cut off is repeated with the same id: the idempotency key), task fields in the
 *    message metadata; the answer (the remote task, usually `submitted`) moves the ledger on;
 * 3. then `tasks/get` with backoff until the remote task ends or asks a question;
 * 4. the ledger's end becomes the attempt's outcome.
 * Transient errors (refused or dropped connections, timeouts, HTTP 408/429/502/503/504) are
 * retried with backoff; a remote that stays unreachable (or forgets the task) fails the
 * attempt, retryably.
 */
import type { WriteStream } from 'node:fs';
import type { AgentCard, Message, MessageSendParams, Part, Task as RemoteTask } from '@a2a-js/sdk';
import type { Client } from '@a2a-js/sdk/client';
import { unknownRemote, type Config } from '../../config/config.ts';
import { delegationStep, preview, type Delegation, type DelegationEvent } from '../../core/delegation.ts';
import { isTerminal, type RunStats, type Task } from '../../core/types.ts';
import { formatDuration } from '../../config/duration.ts';
import type { DelegationPatch, DelegationStore, Store } from '../../store/store.ts';
import { closeLog, openLog } from '../log-stream.ts';
import { cancelled, timedOut } from '../outcomes.ts';
import { emptyStats, type AgentEvent, type AgentRunner, type RunOutcome, type RunRequest } from '../runner.ts';
import { newPushToken, pushTokenDigest, type DelegationPushes } from './pushes.ts';
import { connectRemote, describeError, errorKind, NotAnAgentError, type RemoteTarget } from './remote-client.ts';

/** Options of {@link A2ARunner}. */
export interface A2ARunnerOptions {
  /** The runner's name: `a2a` (the task's `remote`), or `a2a:NAME` for `remotes.NAME` (a `fallback` entry). */
  name: string;
  /** Config `remotes`: name → `{ url, token_env }`. */
  remotes: Config['remotes'];
  /** For `a2a:NAME`: the remote every task of this runner goes to, whatever its `remote`. */
  remote?: string | null;
  /** The dispatcher's environment, where `token_env` variables are read (not the agent environment). */
  env: Record<string, string | undefined>;
  /** `delegation_stuck_after`, ms: a remote that has not answered this long fails the attempt (retryable). */
  stuckAfterMs: number;
  /** `delegation_poll_max`, ms: the longest wait between two `tasks/get`. */
  pollMaxMs: number;
  /** The first wait between two `tasks/get` (and before a retry), ms, doubling while nothing changes. Default 250. */
  pollFirstMs?: number;
  /** Time limit of one HTTP request, ms. Default 30,000. */
  requestTimeoutMs?: number;
  /** Clock, epoch ms. Default Date.now. */
  now?: () => number;
  /**
   * The push notifications of this dispatcher (`agentq serve`): a remote whose card offers
   * push notifications is asked to POST its task's changes there, and each push makes the
   * attempt read the remote task at once; polling stays the fallback. Default none (polling only).
   */
  pushes?: DelegationPushes | null;
}

/** Longest `setTimeout` delay. */
const MAX_TIMER_MS = 2_147_483_647;

/** Why waiting stopped early. */
type Interrupt = 'abort' | 'deadline';

/** The text of the text parts of `parts`, joined by newlines. */
function textOf(parts: readonly Part[] | undefined): string {
  return (parts ?? [])
    .filter((p): p is Extract<Part, { kind: 'text' }> => p.kind === 'text')
    .map((p) => p.text)
    .join('\n');
}

/** The remote's status message text (its question, its reason for failing), or ''. */
export function statusText(task: RemoteTask): string {
  return textOf(task.status.message?.parts).trim();
}

/** The result of a completed remote task: the text of its artifacts, else of its status message. */
export function resultText(task: RemoteTask): string {
  const artifacts = (task.artifacts ?? []).map((a) => textOf(a.parts)).filter((t) => t !== '');
  return artifacts.length ? artifacts.join('\n\n') : statusText(task);
}

const numberOf = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : null);

/**
 * The run figures a remote reports in metadata (the task's, its status message's, its
 * artifacts'; also inside an `agentq` object): `cost_usd`, `input_tokens`, `output_tokens`,
 * `num_turns`, `model` (or camelCase: `costUsd`, …). The first value found wins.
 */
export function remoteStats(task: RemoteTask): Partial<RunStats> {
  const sources: Array<Record<string, unknown>> = [];
  const add = (m: unknown) => {
    if (m && typeof m === 'object' && !Array.isArray(m)) {
      sources.push(m as Record<string, unknown>);
      const nested = (m as Record<string, unknown>).agentq;
      if (nested && typeof nested === 'object' && !Array.isArray(nested)) sources.push(nested as Record<string, unknown>);
    }
  };
  add(task.metadata);
  add(task.status.message?.metadata);
  for (const a of task.artifacts ?? []) add(a.metadata);
  const pick = <T>(keys: string[], read: (v: unknown) => T | null): T | null => {
    for (const s of sources) for (const k of keys) if (read(s[k]) !== null) return read(s[k]);
    return null;
  };
  const stats: Partial<RunStats> = {};
  const cost = pick(['cost_usd', 'costUsd'], numberOf);
  const input = pick(['input_tokens', 'inputTokens'], numberOf);
  const output = pick(['output_tokens', 'outputTokens'], numberOf);
  const turns = pick(['num_turns', 'numTurns'], numberOf);
  const model = pick(['model'], (v) => (typeof v === 'string' && v ? v : null));
  if (cost !== null) stats.costUsd = cost;
  if (input !== null) stats.inputTokens = Math.round(input);
  if (output !== null) stats.outputTokens = Math.round(output);
  if (turns !== null) stats.numTurns = Math.round(turns);
  if (model !== null) stats.model = model;
  return stats;
}

/**
 * The task fields sent in the message metadata, by their task-file names (the remote, when it
 * is agentq, validates them by the same rules): `title`, `priority`, `timeout`, and when set
 * `model`, `max_cost_usd`, `tags`; then the task's `remote_metadata` over them (e.g. `agent`
 * and `command` for an agentq remote).
 */
export function taskMetadata(task: Pick<Task, 'title' | 'priority' | 'timeoutMs' | 'model' | 'maxCostUsd' | 'tags' | 'remoteMetadata'>): Record<string, unknown> {
  const m: Record<string, unknown> = { title: task.title, priority: task.priority, timeout: `${task.timeoutMs}ms` };
  if (task.model) m.model = task.model;
  if (task.maxCostUsd !== null) m.max_cost_usd = task.maxCostUsd;
  if (task.tags.length) m.tags = task.tags;
  return { ...m, ...(task.remoteMetadata ?? {}) };
}

/**
 * Runs an attempt by delegating it over A2A (see the module comment). Needs
 * `request.delegations` (the ledger). `canResume`: the answer to a remote's question goes to
 * the same remote task (as a follow-up `message/send` with its task id).
 *
 * Outcomes:
 * - remote `completed` → `completed`, `result` the text of its artifacts (else of its status
 *   message); stats: the remote task id as `sessionId`, cost, tokens, turns and model from
 *   its metadata when it reports them ({@link remoteStats});
 * - remote `failed`, `rejected`, `auth-required` → `failed` (not retryable), the reason naming
 *   the remote and carrying its status message;
 * - remote `input-required` → `question` with its status message (the task goes `blocked`;
 *   `agentq answer` sends the answer to the same remote task);
 * - remote `canceled` → `cancelled`, reason `remote NAME canceled its task …`;
 * - HTTP 401/403 from the remote → `auth_failed` (never retried), the delegation `failed`;
 * - no `remote` (task or runner), a name config does not know, a URL that is not an A2A
 *   agent, a message the remote refuses (a JSON-RPC error) → `failed`, not retryable;
 * - the remote forgets the task (`TaskNotFound`), or stays unreachable for `stuckAfterMs`
 *   → `failed`, retryable (the next attempt delegates anew);
 * - `request.signal` aborted by `cancel` or `budget` → `tasks/cancel` on the remote, the
 *   delegation `canceled`, `cancelled`; by `shutdown` or `lease_lost` → `cancelled` with the
 *   delegation left open (the next attempt resumes tracking it, no second send);
 * - `request.deadline` passed → `tasks/cancel`, delegation `canceled`, `timed_out`.
 * `stdoutLog` gets one JSON line per remote task state seen, `stderrLog` one line per error.
 * Never throws for remote failures; a store error (after the dispatcher's retries) propagates.
 */
export class A2ARunner implements AgentRunner {
  readonly name: string;
  readonly canResume = true;
  /** The remote agent works; its own queue watches it for stalls (see `AgentRunner.worksRemotely`). */
  readonly worksRemotely = true;
  private readonly o: Required<Omit<A2ARunnerOptions, 'remote' | 'pushes'>> & { remote: string | null; pushes: DelegationPushes | null };

  constructor(options: A2ARunnerOptions) {
    this.name = options.name;
    this.o = { pollFirstMs: 250, requestTimeoutMs: 30_000, now: Date.now, ...options, remote: options.remote ?? null, pushes: options.pushes ?? null };
  }

  /**
   * Where a remote named `remote` is: a `remotes` entry (its token read from `token_env`), or
   * a URL as given (no token).
   * @returns the target, or the reason it cannot be reached (an unknown name)
   */
  resolve(remote: string): RemoteTarget | string {
    const refused = unknownRemote(remote, this.o.remotes);
    if (refused) return refused;
    const entry = Object.hasOwn(this.o.remotes, remote) ? this.o.remotes[remote] : undefined;
    if (entry) return { name: remote, url: entry.url, token: entry.token_env ? (this.o.env[entry.token_env] ?? null) || null : null };
    return { name: remote, url: remote, token: null };
  }

  /**
   * Closes the open delegations whose task has ended while no attempt tracked them (cancelled
   * while blocked on the remote's question, finished by another agent of an `auto` list):
   * `tasks/cancel` on the remote (one try, best effort), then the delegation ends `canceled`,
   * its `lastError` saying why (and whether the remote could be told). At most 100 per call.
   */
  async sweep(store: Store): Promise<void> {
    for (const d of await store.listDelegations({ open: true, limit: 100 })) {
      const task = await store.getTask(d.taskId);
      if (task && !isTerminal(task.state)) continue;
      const resolved = this.resolve(d.remote);
      const target: RemoteTarget = { ...(typeof resolved === 'string' ? { name: d.remote, token: null } : resolved), url: d.url };
      const why = `task #${d.taskId} ended ${task?.state ?? '(gone)'} here while its delegation was open`;
      let told = 'no remote task to cancel';
      if (d.remoteTaskId) {
        try {
          const timeout = Math.min(this.o.requestTimeoutMs, 10_000);
          const { client } = await connectRemote(target, { requestTimeoutMs: timeout });
          await client.cancelTask({ id: d.remoteTaskId }, { signal: AbortSignal.timeout(timeout) });
          told = `tasks/cancel ${d.remoteTaskId} sent`;
        } catch (err) {
          told = `tasks/cancel ${d.remoteTaskId} failed: ${describeError(err)}`;
        }
      }
      const next = delegationStep(d.state, { kind: 'cancel' });
      if (next) await store.updateDelegation(d.id, d.state, { state: next, lastError: `${why}; ${told}` }, this.o.now());
    }
  }

  async run(request: RunRequest): Promise<RunOutcome> {
    const attempt = new Attempt(this, request, this.o);
    try {
      return await attempt.run();
    } finally {
      await attempt.close();
    }
  }
}

/** One attempt's state: the request, the ledger row, the logs, the last remote task seen. */
class Attempt {
  private readonly stats: RunStats = emptyStats();
  private logs: { out: WriteStream; err: WriteStream } | null = null;
  private last: RemoteTask | null = null;
  private lastLogged = '';
  private client: Client | null = null;
  private card: AgentCard | null = null;
  private target: RemoteTarget | null = null;
  /** Stops listening for the delegation's push notifications. */
  private unsubscribe: (() => void) | null = null;
  /** A push arrived while no wait was under way: the next wait ends at once. */
  private pushed = false;
  /** Ends the wait under way early (a push arrived). */
  private wakeUp: (() => void) | null = null;
  /** Last time the remote answered (or showed progress), epoch ms. */
  private contactAt: number;
  /** The last error reported to the ledger (the same one is recorded once). */
  private lastError: string | null = null;

  constructor(
    private readonly runner: A2ARunner,
    private readonly request: RunRequest,
    private readonly o: Required<Omit<A2ARunnerOptions, 'remote' | 'pushes'>> & { remote: string | null; pushes: DelegationPushes | null },
  ) {
    this.contactAt = o.now();
  }

  private get ledger(): DelegationStore {
    return this.request.delegations!;
  }

  private emit(event: AgentEvent): void {
    try {
      this.request.onEvent?.(event);
    } catch {
      // A broken listener must not break the attempt.
    }
  }

  private base() {
    return { stats: { ...this.stats }, exitCode: null };
  }

  private failed(reason: string, retryable: boolean): RunOutcome {
    this.logError(reason);
    return { ...this.base(), kind: 'failed', reason, retryable };
  }

  private logError(line: string): void {
    this.logs?.err.write(`${new Date(this.o.now()).toISOString()} ${line}\n`);
  }

  private logTask(task: RemoteTask | Message): void {
    const line = JSON.stringify(task);
    if (line === this.lastLogged) return;
    this.lastLogged = line;
    this.logs?.out.write(`${line}\n`);
  }

  async close(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (!this.logs) return;
    await Promise.all([closeLog(this.logs.out), closeLog(this.logs.err)]);
  }

  async run(): Promise<RunOutcome> {
    const { request } = this;
    if (!request.delegations) return this.failed('a2a: no delegation ledger was given to the runner (agentq bug)', false);
    try {
      const out = await openLog(request.stdoutLog);
      this.logs = { out, err: await openLog(request.stderrLog).catch(async (err: unknown) => (await closeLog(out), Promise.reject(err))) };
    } catch (err) {
      return this.failed(`a2a: cannot open the attempt log: ${describeError(err)}`, false);
    }

    let d = await this.ledger.openDelegation(request.task.id);
    const named = d?.remote ?? this.o.remote ?? request.task.remote;
    if (!named) return this.failed('remote: not set: agent: a2a needs remote: NAME (a key of remotes in config.yaml) or remote: URL', false);
    const resolved = this.runner.resolve(named);
    // A delegation under way keeps the URL it was sent to.
    const target: RemoteTarget | string = d ? { ...(typeof resolved === 'string' ? { name: d.remote, token: null } : resolved), url: d.url } : resolved;
    if (typeof target === 'string') return this.failed(target, false);
    this.target = target;

    const connected = await this.connect(d);
    if (connected !== null) return connected;
    if (!d) d = (await this.ledger.createDelegation({ taskId: request.task.id, attemptId: request.attemptId, remote: target.name, url: target.url, now: this.o.now() })).delegation;
    if (d.remoteTaskId) this.session(d.remoteTaskId);
    const delegationId = d.id;
    this.unsubscribe = this.o.pushes?.subscribe(delegationId, () => this.onPush()) ?? null;
    return this.drive(d);
  }

  /** Reads the agent card (retrying transient errors); an outcome when it ends the attempt, else null. */
  private async connect(d: Delegation | null): Promise<RunOutcome | null> {
    const target = this.target!;
    let wait = this.o.pollFirstMs;
    for (;;) {
      try {
        ({ client: this.client, card: this.card } = await connectRemote(target, { requestTimeoutMs: this.o.requestTimeoutMs, signal: this.request.signal }));
        return null;
      } catch (err) {
        const stopped = this.interrupted();
        if (stopped) return d ? this.stop(d, stopped) : this.stoppedBeforeDelegating(stopped);
        if (err instanceof NotAnAgentError) {
          if (d) await this.end(d, { kind: 'fail' }, { lastError: err.message });
          return this.failed(err.message, false);
        }
        const reason = `remote ${target.name}: cannot read the agent card at ${target.url}: ${describeError(err)}`;
        if (errorKind(err) === 'auth') return this.authFailed(d, reason);
        if (errorKind(err) !== 'transient') {
          if (d) await this.end(d, { kind: 'fail' }, { lastError: reason });
          return this.failed(reason, false);
        }
        const given = this.gaveUp(reason);
        if (given) {
          if (d) await this.end(d, { kind: 'fail' }, { lastError: given });
          return this.failed(given, true);
        }
        if (d) d = await this.noteError(d, reason);
        else this.logError(reason);
        const why = await this.sleep(wait);
        if (why) return d ? this.stop(d, why) : this.stoppedBeforeDelegating(why);
        wait = Math.min(wait * 2, this.o.pollMaxMs);
      }
    }
  }

  /** Moves the delegation on until the attempt has an outcome. */
  private async drive(start: Delegation): Promise<RunOutcome> {
    let d = start;
    let wait = this.o.pollFirstMs;
    for (;;) {
      const stopped = this.interrupted();
      if (stopped) return this.stop(d, stopped);
      switch (d.state) {
        case 'pending': {
          const sent = await this.send(d);
          if ('kind' in sent) return sent;
          d = sent.delegation;
          wait = this.o.pollFirstMs;
          continue;
        }
        case 'input_required': {
          // Look again: the question (full text) and whether it still stands.
          const seen = await this.look(d);
          if ('kind' in seen) return seen;
          d = seen.delegation;
          if (d.state !== 'input_required') continue;
          const question = (this.last ? statusText(this.last) : (d.resultPreview ?? '')) || `remote ${d.remote} needs input (input-required, no question text)`;
          const answer = this.request.task.answer;
          // The task's answer is for this question when the task was blocked on it (not on an earlier one).
          if (answer !== null && (this.request.task.question ?? '').trim() === question) {
            const moved = await this.ledger.updateDelegation(d.id, 'input_required', { state: 'pending', messageId: this.request.attemptId }, this.o.now());
            d = moved ?? (await this.reload(d));
            continue;
          }
          return { ...this.base(), kind: 'question', question };
        }
        case 'completed':
        case 'failed':
        case 'canceled':
          return this.outcomeOfEnd(d);
        default: {
          const why = await this.sleep(wait);
          if (why) return this.stop(d, why);
          const seen = await this.look(d);
          if ('kind' in seen) return seen;
          wait = seen.changed ? this.o.pollFirstMs : Math.min(wait * 2, this.o.pollMaxMs);
          d = seen.delegation;
        }
      }
    }
  }

  /** The outcome of an ended delegation, from the last remote task seen. */
  private outcomeOfEnd(d: Delegation): RunOutcome {
    const task = this.last;
    if (task) Object.assign(this.stats, remoteStats(task), { sessionId: task.id });
    const remoteSaid = task ? statusText(task) : '';
    switch (d.state) {
      case 'completed':
        return { ...this.base(), kind: 'completed', result: task ? resultText(task) : (d.resultPreview ?? '') };
      case 'canceled':
        return { ...this.base(), kind: 'cancelled', reason: `remote ${d.remote} canceled its task ${d.remoteTaskId ?? ''}${remoteSaid ? `: ${remoteSaid}` : ''}`.replace(/ {2,}/g, ' ') };
      default: {
        const state = task?.status.state ?? 'failed';
        const reason = d.lastError ?? `remote ${d.remote} ended its task ${d.remoteTaskId ?? ''} ${state}${remoteSaid ? `: ${remoteSaid}` : ''}`.replace(/ {2,}/g, ' ');
        return this.failed(reason, false);
      }
    }
  }

  /**
   * `message/send` of a pending delegation: the prompt (first message), or the task's answer
   * (a follow-up on the remote task), with the recorded message id. Transient errors are
   * retried with backoff.
   */
  private async send(d: Delegation): Promise<{ delegation: Delegation } | RunOutcome> {
    const { task } = this.request;
    const followUp = d.remoteTaskId !== null;
    const text = followUp ? (task.answer ?? this.request.prompt) : this.request.prompt;
    // Push notifications, when this dispatcher has an address and the remote offers them: a
    // fresh token for each first send (its hash in the ledger before the send, so the first
    // push is recognized; a resend replaces the remote's config, which has a fixed id).
    const pushUrl = followUp || this.card?.capabilities?.pushNotifications !== true ? null : (this.o.pushes?.urlFor(d.id) ?? null);
    let push: { id: string; url: string; token: string } | null = null;
    if (pushUrl) {
      push = { id: `agentq-delegation-${d.id}`, url: pushUrl, token: newPushToken() };
      d = (await this.ledger.updateDelegation(d.id, d.state, { pushTokenSha256: pushTokenDigest(push.token) }, this.o.now())) ?? (await this.reload(d));
      if (d.state !== 'pending') return { delegation: d };
    }
    const params: MessageSendParams = {
      message: {
        kind: 'message',
        role: 'user',
        messageId: d.messageId,
        parts: [{ kind: 'text', text }],
        // The task fields go with the first message only: a follow-up answers a question (an
        // agentq remote refuses fields there, they were set by the first one).
        ...(followUp ? { taskId: d.remoteTaskId!, ...(d.contextId ? { contextId: d.contextId } : {}) } : { metadata: taskMetadata(task) }),
      },
      configuration: { blocking: false, acceptedOutputModes: ['text/plain', 'text/markdown', 'application/json'], ...(push ? { pushNotificationConfig: push } : {}) },
    };
    let wait = this.o.pollFirstMs;
    for (;;) {
      try {
        const answer = await this.client!.sendMessage(params, { signal: this.sendSignal() });
        this.touch();
        this.logTask(answer);
        if (answer.kind === 'message') {
          // An agent that answers at once, without a task.
          const result = textOf(answer.parts);
          this.last = null;
          const ended = await this.end(d, { kind: 'remote', state: 'completed' }, { remoteState: 'completed', resultPreview: preview(result), progress: true });
          return ended.state === 'completed' ? { ...this.base(), kind: 'completed', result } : { delegation: ended };
        }
        this.last = answer;
        this.session(answer.id);
        return { delegation: await this.apply(d, answer, { remoteTaskId: answer.id, contextId: answer.contextId ?? null, lastError: null }, true, true) };
      } catch (err) {
        const stopped = this.interrupted();
        if (stopped) return this.stop(d, stopped);
        const kind = errorKind(err);
        if (kind === 'auth') return this.authFailed(d, `remote ${d.remote}: message/send: ${describeError(err)}`);
        if (kind === 'lost') {
          const reason = `remote ${d.remote} no longer knows its task ${d.remoteTaskId} (message/send: task not found); delegating anew`;
          await this.end(d, { kind: 'fail' }, { lastError: reason });
          return this.failed(reason, true);
        }
        if (kind === 'final') {
          const reason = `remote ${d.remote} refused the message (message/send): ${describeError(err)}`;
          await this.end(d, { kind: 'fail' }, { lastError: reason });
          return this.failed(reason, false);
        }
        const reason = `remote ${d.remote}: message/send: ${describeError(err)}`;
        const given = this.gaveUp(reason);
        if (given) {
          await this.end(d, { kind: 'fail' }, { lastError: given });
          return this.failed(given, true);
        }
        d = await this.noteError(d, reason);
        const why = await this.sleep(wait);
        if (why) return this.stop(d, why);
        wait = Math.min(wait * 2, this.o.pollMaxMs);
      }
    }
  }

  /**
   * One `tasks/get` of the delegation's remote task, applied to the ledger. A transient error
   * is recorded (the caller waits and looks again) unless the remote has been silent past
   * `stuckAfterMs`; a task the remote does not know fails the attempt, retryably.
   */
  private async look(d: Delegation): Promise<{ delegation: Delegation; changed: boolean } | RunOutcome> {
    if (!d.remoteTaskId) return { delegation: d, changed: false };
    try {
      const task = await this.client!.getTask({ id: d.remoteTaskId, historyLength: 0 }, { signal: this.request.signal });
      this.touch();
      this.logTask(task);
      const before = this.last;
      this.last = task;
      const said = statusText(task);
      if (said && (before === null || statusText(before) !== said) && task.status.state === 'working') this.emit({ type: 'progress', text: said });
      const changed = before === null || before.status.state !== task.status.state || before.status.timestamp !== task.status.timestamp || said !== statusText(before);
      const next = await this.apply(d, task, { lastError: null }, changed);
      return { delegation: next, changed: changed || next.state !== d.state };
    } catch (err) {
      const stopped = this.interrupted();
      if (stopped) return this.stop(d, stopped);
      const kind = errorKind(err);
      if (kind === 'auth') return this.authFailed(d, `remote ${d.remote}: tasks/get ${d.remoteTaskId}: ${describeError(err)}`);
      if (kind === 'lost') {
        const reason = `remote ${d.remote} lost its task ${d.remoteTaskId} (tasks/get: task not found); delegating anew`;
        await this.end(d, { kind: 'fail' }, { lastError: reason });
        return this.failed(reason, true);
      }
      const reason = `remote ${d.remote}: tasks/get ${d.remoteTaskId}: ${describeError(err)}`;
      const given = this.gaveUp(reason);
      if (given) {
        await this.end(d, { kind: 'fail' }, { lastError: given });
        return this.failed(given, true);
      }
      return { delegation: await this.noteError(d, reason), changed: false };
    }
  }

  /**
   * Records what the remote task shows: its state (through {@link delegationStep}), previews,
   * `extra`. `accepted`: `task` is the answer to `message/send` (see {@link DelegationEvent}).
   */
  private async apply(d: Delegation, task: RemoteTask, extra: DelegationPatch, progress = true, accepted = false): Promise<Delegation> {
    const state = task.status.state;
    const next = delegationStep(d.state, { kind: accepted ? 'accepted' : 'remote', state });
    const said = state === 'completed' ? resultText(task) : statusText(task);
    const patch: DelegationPatch = { ...extra, remoteState: state, progress };
    if (next !== null) patch.state = next;
    if (said && (next === 'completed' || next === 'input_required' || next === 'failed' || next === 'canceled')) patch.resultPreview = preview(said);
    if (next === 'failed' || next === 'canceled') patch.lastError = `remote ${d.remote} ended its task ${task.id} ${state}${said ? `: ${said}` : ''}`;
    const same = (k: 'remoteTaskId' | 'contextId' | 'lastError' | 'remoteState') => patch[k] === undefined || patch[k] === d[k];
    if (next === null && !progress && same('remoteTaskId') && same('contextId') && same('lastError') && same('remoteState')) return d;
    this.lastError = patch.lastError ?? null;
    return (await this.ledger.updateDelegation(d.id, d.state, patch, this.o.now())) ?? (await this.reload(d));
  }

  /** The remote refused the credentials (HTTP 401/403): the delegation fails, the attempt ends `auth_failed`. */
  private async authFailed(d: Delegation | null, said: string): Promise<RunOutcome> {
    const token = this.target?.token ? 'the token of its token_env' : 'no token (set remotes.NAME.token_env)';
    const reason = `${said}: the remote refused agentq's credentials (${token})`;
    if (d) await this.end(d, { kind: 'fail' }, { lastError: reason });
    this.logError(reason);
    return { ...this.base(), kind: 'auth_failed', reason };
  }

  /** Ends the delegation on a local decision (`fail`, `cancel`); the row as it ends up. */
  private async end(d: Delegation, event: DelegationEvent, patch: DelegationPatch): Promise<Delegation> {
    const next = delegationStep(d.state, event);
    if (next === null) return d;
    return (await this.ledger.updateDelegation(d.id, d.state, { ...patch, state: next }, this.o.now())) ?? (await this.reload(d));
  }

  /** Records a transient error on the delegation (once per distinct message) and logs it. */
  private async noteError(d: Delegation, reason: string): Promise<Delegation> {
    this.logError(reason);
    if (this.lastError === reason) return d;
    this.lastError = reason;
    return (await this.ledger.updateDelegation(d.id, d.state, { lastError: reason }, this.o.now())) ?? (await this.reload(d));
  }

  /** The row as the store has it now (another writer moved it). */
  private async reload(d: Delegation): Promise<Delegation> {
    return (await this.ledger.getDelegation(d.id)) ?? d;
  }

  /** The reason to give up when the remote has not answered for `stuckAfterMs`, else null. */
  private gaveUp(reason: string): string | null {
    const silent = this.o.now() - this.contactAt;
    if (silent < this.o.stuckAfterMs) return null;
    return `${reason}; no answer for ${formatDuration(silent)} (delegation_stuck_after ${formatDuration(this.o.stuckAfterMs)})`;
  }

  private touch(): void {
    this.contactAt = this.o.now();
  }

  private session(remoteTaskId: string): void {
    if (this.stats.sessionId === remoteTaskId) return;
    this.stats.sessionId = remoteTaskId;
    this.emit({ type: 'session', sessionId: remoteTaskId, model: null });
  }

  /**
   * The signal of a `message/send`: aborted by a shutdown or a lost lease only (the delegation
   * stays open and the same message goes again later). A cancel, a budget stop or the deadline
   * let the send finish (each request is bounded by `requestTimeoutMs`), so that the remote task
   * it created is known and cancelled rather than left running.
   */
  private sendSignal(): AbortSignal {
    const own = new AbortController();
    const { signal } = this.request;
    const follow = () => {
      if (signal.reason === 'shutdown' || signal.reason === 'lease_lost') own.abort(signal.reason);
    };
    if (signal.aborted) follow();
    else signal.addEventListener('abort', follow, { once: true });
    return own.signal;
  }

  /** Why the attempt must stop now (its signal aborted, its deadline passed), else null. */
  private interrupted(): Interrupt | null {
    if (this.request.signal.aborted) return 'abort';
    if (this.o.now() >= this.request.deadline) return 'deadline';
    return null;
  }

  /**
   * Waits `ms` (at most until the deadline); resolves early with why, if the attempt must stop,
   * or with null when a push notification arrives (one that came since the last wait ends it at once).
   */
  private sleep(ms: number): Promise<Interrupt | null> {
    return new Promise((resolve) => {
      const { signal, deadline } = this.request;
      if (signal.aborted) return resolve('abort');
      const left = deadline - this.o.now();
      if (left <= 0) return resolve('deadline');
      if (this.pushed) {
        this.pushed = false;
        return resolve(null);
      }
      const toDeadline = left <= ms;
      const timer = setTimeout(() => finish(toDeadline ? 'deadline' : null), Math.min(ms, left, MAX_TIMER_MS));
      const onAbort = () => finish('abort');
      const finish = (why: Interrupt | null) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.wakeUp = null;
        resolve(why);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.wakeUp = () => finish(null);
    });
  }

  /** A push notification of the delegation arrived: the wait under way (or the next one) ends now. */
  private onPush(): void {
    if (this.wakeUp) this.wakeUp();
    else this.pushed = true;
  }

  /** Stopped before any delegation was recorded: nothing to cancel at the remote. */
  private stoppedBeforeDelegating(why: Interrupt): RunOutcome {
    return why === 'deadline' ? timedOut(this.request, this.base()) : cancelled(this.request, this.base());
  }

  /**
   * The attempt stops: by `cancel` or `budget` or its deadline, the remote task is cancelled
   * (`tasks/cancel`, best effort) and the delegation ends `canceled`; by `shutdown` or a lost
   * lease it stays open, for the next attempt to resume.
   */
  private async stop(d: Delegation, why: Interrupt): Promise<RunOutcome> {
    const reason = this.request.signal.reason;
    const keepOpen = why === 'abort' && (reason === 'shutdown' || reason === 'lease_lost');
    if (!keepOpen) {
      let error: string | null = null;
      if (d.remoteTaskId && this.client) {
        try {
          const task = await this.client.cancelTask({ id: d.remoteTaskId }, { signal: AbortSignal.timeout(Math.min(this.o.requestTimeoutMs, 10_000)) });
          this.logTask(task);
        } catch (err) {
          error = `remote ${d.remote}: tasks/cancel ${d.remoteTaskId}: ${describeError(err)}`;
          this.logError(error);
        }
      }
      const local = why === 'deadline' ? 'the task timed out here' : reason === 'budget' ? 'the task went over its budget here' : 'the task was cancelled here';
      await this.end(d, { kind: 'cancel' }, { lastError: error ?? local });
    }
    const outcome = why === 'deadline' ? timedOut(this.request, this.base()) : cancelled(this.request, this.base());
    return why === 'deadline' ? { ...outcome, reason: (outcome as { reason: string }).reason.replace('process tree stopped', 'remote task cancelled') } as RunOutcome : outcome;
  }
}
