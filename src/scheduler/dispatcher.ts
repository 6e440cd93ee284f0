/**
 * The dispatcher: takes in the inbox, claims ready tasks from the store within the
 * store-wide limits and its own (`local_concurrency`, `run -c N`), runs each attempt through its agent runner, and turns the runner's
 * outcome into the task's next state (completed, retried, requeued after a rate limit,
 * failed, timed out, cancelled). It keeps leases alive with a heartbeat, and recovers the
 * running tasks of dispatchers that died (stopping their orphaned agent processes first).
 */
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { emptyStats, type AgentRunner, type RunOutcome } from '../agents/runner.ts';
import { agentEnv } from '../agents/agent-env.ts';
import { costOf, CostMeter, type PriceTable } from '../pricing/prices.ts';
import { budgetDay, budgetHolds } from './budgets.ts';
import type { Config } from '../config/config.ts';
import { accountMap, accountOf, agentConfig, DEFAULT_CLAUDE_MODELS, priceTable, projectOrigin, resolveModelAlias, type ProjectPaths } from '../config/project.ts';
import { AUTO_AGENT, type Attempt, type AttemptOutcome, type AttemptOutput, type Claim, type Task, type TaskOrigin, type Verification } from '../core/types.ts';
import { DispatcherEvents } from '../events/events.ts';
import { takeInInbox } from '../intake/inbox.ts';
import type { DetectorsResult } from '../intake/detect.ts';
import { fireRecurring, recurringFiles } from '../intake/recurring.ts';
import type { Notifier } from '../notify/notifier.ts';
import { findTaggedProcesses, isAlive, stopProcesses } from '../process/process-tree.ts';
import { startSpawner } from '../process/spawner.ts';
import { attemptLogFile, readOutputTail, verifyLogFile } from '../results/logs.ts';
import { LogFolders } from '../results/log-folders.ts';
import { removeStaleTempFiles } from '../results/result-file.ts';
import type { FinishOutcome, Store, WorkerInfo, WorkspaceRecord } from '../store/store.ts';
import { pushBranch } from '../workspace/push.ts';
import { recordSetup, runWorkspaceSetup, setupSucceeded } from '../workspace/setup.ts';
import { closeWorkspace, defaultWorkspaceMode, MergeError, openWorkspace, pruneWorktrees, type Workspace, type WorkspaceMode, type WorkspaceResult } from '../workspace/workspace.ts';
import { backoffMs } from './backoff.ts';
import { STORE_RETRY_MAX_MS, StoreRetry } from './store-retry.ts';
import { rateLimitReason, takeStart, type StartToken } from './rate-limit.ts';
import { Periodic } from './periodic.ts';
import { followUp } from './follow-up.ts';
import { workerIdOf } from './worker-id.ts';
import { Reporter } from './reporter.ts';
import { FinishBatcher } from './finish-batcher.ts';
import { ActivityWatch, stallDetail, stallTimeoutOf } from './stall.ts';
import { decide, parseQuestion, type CountedFailure, type DecideContext, type StopReason } from './transition.ts';
import {
  agentsOutOfVerifyRetries,
  currentRun,
  failedVerificationOf,
  remainingBudget,
  runVerifications,
  verifyCommandsOf,
  verifyFailureNote,
  verifyFailureReason,
  verifyRetriesOf,
  verifyTimeoutOf,
} from './verify.ts';
import { queuedWaits, type QueuedWait } from './waiting.ts';

export interface DispatcherOptions {
  paths: ProjectPaths;
  /** The dispatcher's calls on it that fail transiently (locked, disk full) are retried until they go through ({@link StoreRetry}). */
  store: Store;
  config: Config;
  /** Runners by agent name; tasks for other agents are never claimed. */
  runners: Map<string, AgentRunner>;
  /** Environment for agent processes. Default `process.env`. */
  env?: Record<string, string | undefined>;
  events?: DispatcherEvents;
  /** Clock, epoch ms. Default Date.now. */
  now?: () => number;
}


interface Running {
  claim: Claim;
  controller: AbortController;
  done: Promise<void>;
  /** The agent's activity (stall watchdog, `lastActivityAt`) while it runs. */
  activity?: ActivityWatch;
  /**
   * The attempt's agent and routed model being written ({@link Dispatcher.chooseAgent}) while
   * the agent starts; the attempt's later writes wait for it. Never rejects (a failure is reported).
   */
  recorded?: Promise<void>;
}

/**
 * Chooses the model for an attempt: the task's `model`, else config's `models` per
 * priority, else the agent's `model`, else the defaults (claude: opus for critical, sonnet
 * otherwise); then resolves the agent's aliases (`agents.<name>.aliases`, then {@link MODEL_ALIASES}).
 */
export function routeModel(task: Task, config: Config): string | null {
  const agent = agentConfig(config, task.agent);
  const chosen = task.model ?? agent.models[task.priority] ?? agent.model ?? (task.agent === 'claude' ? DEFAULT_CLAUDE_MODELS[task.priority] : null);
  return resolveModelAlias(config, task.agent, chosen);
}

/**
 * The most attempts one dispatcher runs at once: config `local_concurrency` (`agentq run -c N`),
 * capped by the store-wide `concurrency` (the claim counts every dispatcher's running tasks
 * against it); `concurrency` when `local_concurrency` is unset.
 */
export function localLimit(config: Pick<Config, 'concurrency' | 'local_concurrency'>): number {
  return Math.min(config.local_concurrency ?? config.concurrency, config.concurrency);
}

/** What agents are told about asking a person (Claude Code: `--append-system-prompt`). */
export const QUESTION_INSTRUCTIONS =
  'You run unattended under agent-queue. If you cannot go on without a decision or information ' +
  'that only a person can give, stop and end your final message with the question in a block ' +
  'of its own: <<question>>your question<</question>>. You will be resumed with the answer. ' +
  'Do not ask anything you can find out or decide yourself.';

/** Whether the inbox holds any task file (`*.md`, not hidden) but those in `except` (e.g. refused entries). */
function inboxHasFiles(paths: ProjectPaths, except: ReadonlyMap<string, unknown>): boolean {
  try {
    return fs.readdirSync(paths.inbox).some((f) => f.endsWith('.md') && !f.startsWith('.') && !except.has(f));
  } catch {
    return false;
  }
}

/** File-system errors that may pass by themselves (an attempt that met one is retried). */
const TRANSIENT_FS_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EMFILE', 'ENFILE', 'EAGAIN', 'EBUSY', 'ENOMEM']);

/** The output of an attempt that went back to the queue before its agent started. */
const NO_OUTPUT: AttemptOutput = { stdout: { text: '', bytes: 0 }, stderr: { text: '', bytes: 0 } };

/** Longest excerpt of an earlier failure's reason carried into the next prompt, in characters. */
const FAILURE_EXCERPT = 400;

/** Attempt outcomes that are the agent's failures, as a retry's failure summary names them. */
const FAILURE_WORDS: Partial<Record<AttemptOutcome, string>> = { failed: 'failed', timed_out: 'timed out', verify_failed: 'failed its verification', stalled: 'stalled' };

/**
 * The prompt of a retry: the task's prompt, then a short account of the earlier attempts
 * that failed, timed out, failed their verification or stalled, so the agent does not repeat
 * them (as claudomator does); the last failed verification in full (`verifications`: the
 * task's, see {@link verifyFailureNote}). Interrupted and rate-limited attempts are not the
 * agent's failures and are left out.
 */
export function withFailureSummary(prompt: string, attempts: Attempt[], verifications: readonly Verification[] = []): string {
  const failed = attempts.filter((a) => FAILURE_WORDS[a.outcome] !== undefined);
  if (failed.length === 0) return prompt;
  const lines = failed.map((a) => {
    const reason = (a.reason ?? 'no reason recorded').replace(/\s+/g, ' ').trim();
    const excerpt = reason.length > FAILURE_EXCERPT ? `${reason.slice(0, FAILURE_EXCERPT)}…` : reason;
    // The agent's exit code says nothing of a verification (the agent succeeded) or a stall (it was stopped).
    const code = a.exitCode === null || a.outcome === 'verify_failed' || a.outcome === 'stalled' ? '' : ` (exit code ${a.exitCode})`;
    return `- attempt ${a.number} ${FAILURE_WORDS[a.outcome]}${code}: ${excerpt}`;
  });
  const lastVerify = failed.filter((a) => a.outcome === 'verify_failed').at(-1);
  const verified = lastVerify ? failedVerificationOf(lastVerify, verifications) : null;
  const detail = verified ? `\n${verifyFailureNote(verified)}\n` : '';
  return `${prompt}\n\n---\nNote from agent-queue: this task was tried before and did not succeed.\n${lines.join('\n')}\nTake these failures into account and do not repeat what caused them.\n${detail}`;
}

/**
 * Everything one attempt runs with, resolved once after its claim: the agent (its runner;
 * `agent: auto` resolved in `claim.task.agent`) and its routed model, the prompt, where it
 * runs, its logs and its limits.
 */
export interface AttemptPlan {
  claim: Claim;
  runner: AgentRunner;
  /** The routed model ({@link routeModel}); null: the agent's own default. Recorded on the attempt row from the start. */
  model: string | null;
  /** The task's prompt with the failure history of earlier attempts, or the answer to its question. */
  prompt: string;
  /** Session to resume (the answer to a question, a failed verification, a stall; for runners that can). */
  resumeSessionId: string | null;
  workspace: Workspace;
  stdoutLog: string;
  stderrLog: string;
  /** When the attempt times out, epoch ms (`timeout` after the claim). */
  deadline: number;
  /** Budget of the attempt, USD (`max_cost_usd`; with `verify`, what earlier attempts left of it); null: none. */
  maxCostUsd: number | null;
  /** The agent's environment ({@link agentEnv}). */
  env: Record<string, string>;
}

export class Dispatcher {
  readonly events: DispatcherEvents;
  readonly workerId: string;
  private readonly o: Required<Omit<DispatcherOptions, 'events'>>;
  private readonly running = new Map<string, Running>();
  /** Ids of tasks this dispatcher took in or ran (for `run --once`'s exit code). */
  readonly touched = new Set<number>();
  private stopping = false;
  private pumping: Promise<void> | null = null;
  private pumpAgain = false;
  /** A pump asked for by a tick (or a wake-up), not only by an ended attempt: see {@link pump}. */
  private pumpTick = false;
  /** The last tick's pump stopped at this dispatcher's share with its local limit not reached: see {@link pump}. */
  private heldBack = false;
  /** Per-agent running limits from config (`agents.<name>.concurrency`). */
  private readonly agentLimits: Record<string, number>;
  /** The account of each agent with a runner here whose account is not its name (`agents.<name>.account`). */
  private readonly accounts: Record<string, string>;
  /**
   * Whether {@link pump} claims every free slot in one call: no agent here has a `rate_limit`
   * (whose start token, taken as an attempt launches, may pause its account before the next
   * claim; with one, claims go one at a time).
   */
  private readonly claimsInBatches: boolean;
  /** Inbox files last reported as waiting for room in the queue. */
  private deferredReported = '';
  /** Recurring-file problems last reported. */
  private problemsReported = '';
  /** The round of detectors running now (recurring files with `detect:`), started by {@link tick}; null when none runs. */
  private detecting: Promise<void> | null = null;
  /** Aborted by {@link stop}: a detector running is stopped. */
  private readonly detectorsStop = new AbortController();
  /** Detector-file problems last reported. */
  private detectorProblemsReported = '';
  /** Inbox files still being written at the last intake (the CLI then looks again after `inbox_settle`). */
  unsettledFiles: string[] = [];
  /** Which inbox files are known complete, taken in without waiting `inbox_settle` (set by the dispatch loop's inbox watch: `InboxWatch.complete`). */
  inboxComplete: ((file: string, identity: string) => boolean) | undefined;
  /**
   * Called when an attempt ended here and none runs any more (the claims it made room for
   * found nothing): `run --once`'s loop looks at once whether everything is done, instead of at
   * its next poll.
   */
  onAllEnded: (() => void) | undefined;
  /** Inbox entries refused at the last intake (symlinks, FIFOs, …), file → reason; each reported once. */
  readonly refusedFiles = new Map<string, string>();
  /** {@link agentEnvOf}'s environments by agent. */
  private readonly agentEnvs = new Map<string, Record<string, string>>();
  /** The live dispatchers on the store ({@link shareLimit}) when last counted (epoch ms); null before the first count. */
  private live: { count: number; at: number } | null = null;
  /** Counts the tasks this dispatcher took in or ended outside an attempt (intake, recurring, dependents, parents): a tick that claimed first claims again when it moved. */
  private workMade = 0;
  /** Serialises inbox intake between the tick and completing attempts. */
  private intakeLock: Promise<void> = Promise.resolve();
  /** The project's default workspace mode, found once. */
  private defaultMode: Promise<WorkspaceMode> | null = null;
  /** Model prices (defaults + config `prices`), USD per million tokens. */
  private readonly prices: PriceTable;
  /** The lease keeper and the rescuer, running from {@link start} to {@link stop} / {@link drain}. */
  private services: Periodic[] = [];
  /** The first error a service failed with; the next {@link tick} throws it. */
  private failure: Error | null = null;
  /** Retries store calls through outages; `this.o.store` is the store wrapped by it. */
  readonly storeRetry: StoreRetry;
  /** When this dispatcher was created, epoch ms. */
  private readonly createdAt: number;
  /** This checkout (`projectOrigin`): the origin of the tasks it takes in, and of the result files it writes. */
  readonly origin: TaskOrigin;
  /** Writes the result files of this checkout's tasks (see {@link Reporter}). */
  private readonly reporter: Reporter;
  /** The runners' sweep under way ({@link sweepRunners}), if any. */
  private sweeping: Promise<void> | null = null;
  /** The reports under way of tasks whose attempt ended here ({@link reportEnded}): awaited by {@link idle}, {@link drain} and {@link stop}. */
  private readonly reporting = new Set<Promise<void>>();
  /**
   * `notify:` targets: ends recorded by the {@link Reporter}, the rest swept from the store,
   * delivered (src/notify/). Made by {@link start} when config has `notify:` targets (its code
   * is loaded only then); null without them.
   */
  private notifier: Notifier | null = null;
  /** The store as given, not retried through outages: the notifier's deliveries are claimed on it (a failed call waits for the next poll). */
  private readonly deliveryStore: Store;
  /** Records attempts' ends, those asked while one batch is under way together in the next (`finishMany`). */
  private readonly finisher: FinishBatcher;
  /** Attempts' log folders, a spare one made ahead (src/results/log-folders.ts). */
  private readonly logFolders: LogFolders;

  constructor(options: DispatcherOptions) {
    const now = options.now ?? Date.now;
    this.storeRetry = new StoreRetry(
      {
        unavailable: (error, retryInMs) => this.events.emit('store.unavailable', error, retryInMs),
        back: (outageMs) => this.events.emit('store.back', outageMs),
      },
      now,
    );
    this.o = { env: process.env, now, ...options, store: this.storeRetry.wrap(options.store) };
    this.deliveryStore = options.store;
    this.createdAt = now();
    this.finisher = new FinishBatcher(this.o.store);
    this.logFolders = new LogFolders(this.o.paths.logs);
    this.events = options.events ?? new DispatcherEvents();
    this.workerId = workerIdOf(os.hostname(), process.pid);
    this.prices = priceTable(this.o.config);
    this.agentLimits = Object.fromEntries(
      Object.entries(this.o.config.agents).flatMap(([name, a]) => (a.concurrency === undefined ? [] : [[name, a.concurrency]])),
    );
    this.accounts = accountMap(this.o.config, this.o.runners.keys());
    this.claimsInBatches = [...this.o.runners.keys()].every((a) => agentConfig(this.o.config, a).rate_limit === undefined);
    this.origin = projectOrigin(this.o.paths);
    this.reporter = new Reporter({
      paths: this.o.paths,
      store: this.o.store,
      origin: this.origin,
      events: this.events,
      leaseMs: this.o.config.lease,
      now: this.o.now,
      workerId: this.workerId,
      leaseLapsed: (expiresAt, at) => this.leaseLapsed(expiresAt, at),
      recordEnd: async (task) => this.notifier?.taskEnded(task),
    });
  }

  /**
   * Calls `onWork` when any process on the store may have made work claimable (see
   * `Store.watchWork`); resolves with the function that ends the watch, or null when the
   * store cannot tell (SQLite: the poll and inbox events do).
   */
  async watchWork(onWork: () => void): Promise<(() => Promise<void>) | null> {
    return this.o.store.watchWork ? this.o.store.watchWork(onWork) : null;
  }

  get runningCount(): number {
    return this.running.size;
  }

  /**
   * How many attempts this dispatcher runs at once at most: config `local_concurrency`
   * (`run -c N`), capped by the store-wide `concurrency`; without it, `concurrency`.
   */
  get localLimit(): number {
    return localLimit(this.o.config);
  }

  /** The cadence of the lease keeper and the rescuer, ms: `min(lease / 3, poll_interval)`. */
  private get serviceIntervalMs(): number {
    return Math.min(this.o.config.lease / 3, this.o.config.poll_interval);
  }

  /** Registers this dispatcher and recovers the tasks of dead ones; starts the spawner of its agents ({@link startSpawner}). Call once, first. */
  async start(): Promise<void> {
    startSpawner();
    const now = this.o.now();
    await this.o.store.registerWorker({
      id: this.workerId,
      host: os.hostname(),
      pid: process.pid,
      startedAt: now,
      heartbeatAt: now,
      labels: this.o.config.labels,
      root: this.origin.root,
    });
    await this.recover();
    await this.holdOverBudget();
    removeStaleTempFiles(this.o.paths, (pid) => pid === process.pid || isAlive(pid));
    this.logFolders.start(isAlive);
    // In a git repository, keep .agent-queue/ out of `git status` and agents' commits.
    await openWorkspace({ projectRoot: this.o.paths.root, taskId: 0, taskName: 'agentq', mode: 'inplace' });
    if ((await this.workspaceMode()) === 'worktree' || fs.existsSync(path.join(this.o.paths.dir, 'worktrees'))) {
      // Worktrees of tasks that will not run again (a crash left them): commit leftovers, keep the branch.
      await pruneWorktrees(this.o.paths.root, {
        keepTask: async (id) => {
          const t = await this.o.store.getTask(id);
          // Blocked tasks run again too (an answer, a release); one taken over by hand is being worked in.
          return t !== null && (t.state === 'queued' || t.state === 'running' || t.state === 'blocked');
        },
      }).catch((err: unknown) => this.events.emit('error', err as Error));
    }
    // Services on cadences of their own: leases renewed (and cancel requests seen) however
    // long `poll_interval` is; dead dispatchers' tasks rescued.
    const every = this.serviceIntervalMs;
    // A service that fails for good (transient store errors are retried below it) fails the loop at its next tick, as a tick's own error does.
    const report = (err: unknown) => {
      if (this.failure === null) this.failure = err instanceof Error ? err : new Error(String(err));
      else this.events.emit('error', err instanceof Error ? err : new Error(String(err)));
    };
    this.services = [new Periodic('lease keeper', every, () => this.keepLeases(), report), new Periodic('rescuer', every, () => this.recover(), report)];
    for (const service of this.services) service.start();
    if (this.o.config.notify.length > 0) {
      const { Notifier } = await import('../notify/notifier.ts');
      this.notifier = new Notifier({ store: this.o.store, deliveryStore: this.deliveryStore, config: this.o.config, paths: this.o.paths, events: this.events, env: this.o.env, now: this.o.now });
      this.notifier.start();
    }
  }

  /** Stops the services {@link start} started (after the attempts have ended) and leaves the worker table. */
  private async leave(): Promise<void> {
    await this.notifier?.stop();
    await Promise.all(this.services.map((service) => service.stop()));
    await this.sweeping;
    await this.logFolders.close();
    await this.o.store.removeWorker(this.workerId);
  }


  /**
   * The lease keeper's step: renews this dispatcher's worker row and the lease of each
   * running attempt, and stops an attempt whose lease is lost or whose task a user cancelled
   * or took over (`agentq attach`).
   */
  async keepLeases(): Promise<void> {
    const now = this.o.now();
    await this.o.store.workerHeartbeat(this.workerId, now);
    for (const r of this.running.values()) {
      const beat = await this.o.store.heartbeat(r.claim.attempt.id, now, this.o.config.lease, r.activity?.lastActivityAt() ?? null);
      if (!beat.ok) r.controller.abort('lease_lost' satisfies StopReason);
      else if (beat.cancelRequested) r.controller.abort('cancel' satisfies StopReason);
      else if (beat.takeoverRequested) r.controller.abort('takeover' satisfies StopReason);
    }
  }

  /**
   * Whether a lease that expired at `expiresAt` counts as lost. A store outage stops every
   * heartbeat, so a lease is judged by its expiry only once this dispatcher has reached the
   * store for a whole `lease` (plus the longest retry backoff, within which the owner's
   * retries get through) since it started and since its last outage ended: the owner, if
   * alive, has renewed it by then.
   */
  private leaseLapsed(expiresAt: number, now: number): boolean {
    const watchingSince = Math.max(this.createdAt, this.storeRetry.lastBackAt ?? 0);
    return expiresAt <= now && now >= watchingSince + this.o.config.lease + STORE_RETRY_MAX_MS;
  }

  /**
   * Requeues running tasks whose dispatcher is gone (its process is dead on this host, or
   * its lease lapsed: see {@link leaseLapsed}), after stopping every process tagged with
   * their attempt id. The interrupted attempt does not count against `retries`.
   */
  async recover(): Promise<Task[]> {
    const now = this.o.now();
    const host = os.hostname();
    const workers = new Map((await this.o.store.listWorkers()).map((w) => [w.id, w]));
    const recovered: Task[] = [];
    const gone = new Set<string>();
    for (const w of workers.values()) {
      // Dispatchers on this host whose process is gone (killed, crashed): forget them.
      if (w.id !== this.workerId && w.host === host && !isAlive(w.pid)) {
        await this.o.store.removeWorker(w.id);
        gone.add(w.id);
      }
    }
    this.countLive([...workers.values()].filter((w) => !gone.has(w.id)), now);
    for (const stale of await this.o.store.listRunning()) {
      if (stale.workerId === this.workerId) continue;
      const w = workers.get(stale.workerId);
      const deadHere = w !== undefined && w.host === host && !isAlive(w.pid);
      const orphanedRow = w === undefined;
      if (!deadHere && !orphanedRow && !this.leaseLapsed(stale.leaseExpiresAt, now)) continue;
      const leftovers = await findTaggedProcesses((tag) => tag === stale.attemptId);
      if (leftovers.length) await stopProcesses((tag) => tag === stale.attemptId, this.o.config.kill_grace);
      // The attempt's logs are here when it ran in this checkout (its number is the task's claim count).
      const here = fs.existsSync(attemptLogFile(this.o.paths, stale.task, stale.task.claims, 'stdout'));
      const task = await this.o.store.requeue(stale.attemptId, {
        attemptOutcome: 'interrupted',
        reason: `dispatcher ${stale.workerId} stopped while the attempt ran`,
        runAfter: now,
        output: here ? this.outputOf(stale.task, stale.task.claims) : null,
        now,
      });
      if (task) {
        recovered.push(task);
        this.events.emit('task.recovered', task, leftovers.map((p) => p.pid));
      }
    }
    return recovered;
  }

  /**
   * One round of the loop's cadence (`poll_interval`, or a wake-up): take in the inbox, fail
   * tasks whose dependency failed, end parents whose subtasks ended, write missing result
   * files, then claim what can run. Leases and rescue run on cadences of their own
   * ({@link keepLeases}, {@link recover}), started by {@link start}. `claimFirst` (a wake-up by
   * the store's `watchWork`: work is waiting there): claim first, then (once the attempts
   * claimed have asked for their process) the rest, then claim
   * again only if the rest made work (tasks taken in, tasks ended by it).
   * @throws the error a service failed with since the last tick (a store that is broken for good)
   */
  async tick(o: { claimFirst?: boolean } = {}): Promise<void> {
    if (this.failure) throw this.failure;
    // Woken by work another process committed: it is claimed before the rest of the round, which it does not need.
    if (o.claimFirst) {
      await this.pump();
      // The attempts just launched ask for their process within this turn of the event loop
      // (an in-place workspace needs no I/O first): the rest of the round (a directory read,
      // store calls) comes after, not in their way.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const made = this.workMade;
    const now = this.o.now();
    if (!this.stopping) await this.takeIn(now);
    this.startDetectors();
    await this.settleDependents();
    await this.settleParents();
    await this.writeResults();
    // In the background: a remote that is slow to answer must not hold up claims.
    this.sweeping ??= this.sweepRunners().finally(() => (this.sweeping = null));
    if (!o.claimFirst) await this.pump();
    else if (this.workMade !== made) await this.pump({ refill: true }); // not a tick's pump: that was the first
  }

  /** Lets runners tidy up on the store ({@link AgentRunner.sweep}: the a2a runner closes orphaned delegations); a failure is reported, not thrown. */
  private async sweepRunners(): Promise<void> {
    for (const runner of this.o.runners.values()) {
      if (!runner.sweep) continue;
      try {
        await runner.sweep(this.o.store);
      } catch (err) {
        this.events.emit('error', err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  /**
   * Takes in the inbox and fires recurring files, one pass at a time (two passes over the
   * same file would record it twice). Returns how many inbox files were still being written.
   */
  private takeIn(now: number): Promise<number> {
    const run = this.intakeLock.then(() => this.takeInOnce(now));
    this.intakeLock = run.then(
      () => {},
      () => {},
    );
    return run;
  }

  /** Whether a round of detectors is running (`run --once` waits for it). */
  get detectorsRunning(): boolean {
    return this.detecting !== null;
  }

  /**
   * Starts a round of the detectors whose schedule ticked (src/intake/detect.ts) unless one
   * is still running. It runs beside the ticks, never holding up intake or claims; the tasks
   * it creates are announced and claimed as soon as it ends, each run is announced
   * (`detector.ran`), and problems with detector files are reported once.
   */
  private startDetectors(): void {
    if (this.detecting !== null || this.stopping) return;
    // detect.ts (and with it the task-file schema: zod, yaml) is loaded once there are recurring files.
    let round: Promise<DetectorsResult>;
    try {
      round =
        recurringFiles(this.o.paths).length === 0
          ? Promise.resolve({ runs: [], problems: [] })
          : import('../intake/detect.ts').then(({ fireDetectors }) =>
              fireDetectors({ paths: this.o.paths, store: this.o.store, config: this.o.config, env: this.o.env, now: this.o.now, signal: this.detectorsStop.signal }),
            );
    } catch (err) {
      round = Promise.reject(err as Error);
    }
    this.detecting = round
      .then(async ({ runs, problems }) => {
        for (const { run, created } of runs) {
          for (const t of created) {
            this.touched.add(t.id);
            this.events.emit('task.created', t);
          }
          this.events.emit('detector.ran', run);
        }
        const text = problems.join('\n');
        if (text !== this.detectorProblemsReported && text) this.events.emit('error', new Error(text));
        this.detectorProblemsReported = text;
        if (runs.some((r) => r.created.length > 0)) await this.pump();
      })
      .catch((err: unknown) => {
        this.events.emit('error', err instanceof Error ? err : new Error(String(err)));
      })
      .finally(() => {
        this.detecting = null;
      });
  }

  /**
   * Intake for a task whose agent has just exited: subtasks it filed must be known before
   * the task is judged done. Files it wrote are complete (the writer is gone) but may be too
   * fresh for the settle check; if an unsettled inbox file names this task as its `parent`,
   * wait one `inbox_settle` and take in once more. Other files never hold the task up, and
   * the intake lock is not held while waiting.
   */
  private async takeInAfterAgent(task: Task): Promise<void> {
    if (!this.inboxHasWork()) return; // the common case: nothing filed, nothing to do
    await this.takeIn(this.o.now());
    const namesParent = new RegExp(`^parent:\\s*["']?${task.name.replace(/[.]/g, '\\.')}["']?\\s*$`, 'm');
    const filed = this.unsettledFiles.some((f) => {
      try {
        return namesParent.test(fs.readFileSync(path.join(this.o.paths.inbox, f), 'utf8'));
      } catch {
        return false;
      }
    });
    if (!filed) return;
    await new Promise((r) => setTimeout(r, this.o.config.inbox_settle));
    await this.takeIn(this.o.now());
  }

  private async takeInOnce(now: number): Promise<number> {
    const { created, deferred, unsettled, refused } = await takeInInbox(this.o.paths, this.o.store, this.o.config, now, this.inboxComplete);
    const fresh = refused.filter((e) => this.refusedFiles.get(e.file) !== e.reason);
    this.refusedFiles.clear();
    for (const e of refused) this.refusedFiles.set(e.file, e.reason);
    if (fresh.length) this.events.emit('intake.refused', fresh);
    this.workMade += created.length;
    for (const t of created) {
      this.touched.add(t.id);
      this.events.emit('task.created', t);
    }
    const recurring = await fireRecurring(this.o.paths, this.o.store, this.o.config, now);
    this.workMade += recurring.created.length;
    for (const t of recurring.created) {
      this.touched.add(t.id);
      this.events.emit('task.created', t);
    }
    const problems = recurring.problems.join('\n');
    if (problems !== this.problemsReported && problems) this.events.emit('error', new Error(problems));
    this.problemsReported = problems;
    const key = deferred.join('\n');
    if (key !== this.deferredReported && deferred.length) {
      this.events.emit('intake.deferred', deferred, `the queue is full (max_queue_depth ${this.o.config.max_queue_depth})`);
    }
    this.deferredReported = key;
    this.unsettledFiles = unsettled;
    return unsettled.length;
  }

  /**
   * Claims and starts attempts until a limit or the queue is exhausted, every free slot in one
   * claim (`claimMany`; one at a time with a `rate_limit` here: {@link claimsInBatches}), each
   * launched in claim order: this dispatcher runs
   * at most {@link localLimit} attempts; the claim itself keeps every limit shared through the
   * store (`concurrency` across every dispatcher, groups, agents). While other dispatchers
   * run on the store it claims only up to its share of `concurrency` ({@link shareLimit}), so
   * the first one up does not take every slot and then each freed one back at once (the
   * others find slots only on their own ticks); past its share only on a tick that follows a
   * tick where it held back, the others having had a poll interval to take the free slots
   * (so slots that nobody else can use are still used, every other tick). `refill`: asked
   * for because an attempt of this dispatcher ended, not a tick.
   */
  pump(o: { refill?: boolean } = {}): Promise<void> {
    if (!o.refill) this.pumpTick = true;
    if (this.pumping) {
      this.pumpAgain = true;
      return this.pumping;
    }
    const run = async () => {
      // Yield first, so `this.pumping` is set before the loop can finish.
      await Promise.resolve();
      try {
        do {
          this.pumpAgain = false;
          const share = await this.shareLimit();
          const tick = this.pumpTick;
          this.pumpTick = false;
          const limit = tick && this.heldBack ? this.localLimit : share;
          if (tick) this.heldBack = limit < this.localLimit;
          while (!this.stopping && this.running.size < limit) {
            const max = this.claimsInBatches ? limit - this.running.size : 1;
            const claims = await this.o.store.claimMany(
              {
                workerId: this.workerId,
                host: os.hostname(),
                now: this.o.now(),
                leaseMs: this.o.config.lease,
                concurrency: this.o.config.concurrency,
                agents: [...this.o.runners.keys(), AUTO_AGENT],
                labels: this.o.config.labels,
                groupConcurrency: this.o.config.group_concurrency,
                agentConcurrency: this.agentLimits,
                accounts: this.accounts,
              },
              max,
            );
            if (claims.length === 0) break;
            // Before the next claim: each attempt's agent and start token are settled, so an
            // agent whose `rate_limit` bucket it emptied is paused and not claimed for again
            // (with a `rate_limit` here, batches of one).
            for (const claim of claims) await this.launch(claim);
            // A batch that came back short took all the store had for this dispatcher: a claim
            // now would find nothing, one more round trip before the next (work committed
            // since is claimed by the pump its wake-up, a tick or an attempt's end asks for).
            if (this.claimsInBatches && claims.length < max) break;
          }
        } while (this.pumpAgain && !this.stopping);
      } finally {
        this.pumping = null;
      }
    };
    this.pumping = run();
    return this.pumping;
  }

  /**
   * This dispatcher's share of the store-wide `concurrency` among the live dispatchers on the
   * store (those whose heartbeat is younger than `lease`, this one included), rounded up, at
   * most {@link localLimit}. Alone on the store (or with `local_concurrency` limits that leave
   * room for every dispatcher) it is its local limit. The count is at most one rescuer period
   * old (`min(lease / 3, poll_interval)`; {@link recover} counts too), so a pump reads no
   * worker rows on its way to the claim.
   */
  private async shareLimit(): Promise<number> {
    const now = this.o.now();
    // Counted by the rescuer on its cadence; read here only when that count is older than it.
    if (this.live === null || now - this.live.at >= this.serviceIntervalMs) this.countLive(await this.o.store.listWorkers(), now);
    return Math.min(this.localLimit, Math.ceil(this.o.config.concurrency / Math.max(1, this.live!.count)));
  }

  /** Counts the live dispatchers among `workers` (read at `now`): this one, and those whose heartbeat is younger than `lease`. */
  private countLive(workers: readonly WorkerInfo[], now: number): void {
    this.live = { count: workers.filter((w) => w.id === this.workerId || now - w.heartbeatAt <= this.o.config.lease).length, at: now };
  }

  /** Starts an attempt; resolves once its agent is chosen and its start token taken (or it went back to the queue). */
  private launch(claim: Claim): Promise<void> {
    this.touched.add(claim.task.id);
    const controller = new AbortController();
    const entry: Running = { claim, controller, done: Promise.resolve() };
    this.running.set(claim.attempt.id, entry);
    let starting = () => {};
    const started = new Promise<void>((resolve) => (starting = resolve));
    entry.done = this.runAttempt(claim, controller.signal, starting)
      // Whatever failed on the way, the attempt ends here instead of holding its slot as `running`.
      .catch((err: unknown) => {
        const failed = { claim: entry.claim, model: routeModel(entry.claim.task, this.o.config), stdoutLog: null, workspace: null };
        return this.settle(failed, this.preparationFailed(entry.claim, 'agentq', err), null);
      })
      .catch((err: unknown) => {
        this.events.emit('error', err instanceof Error ? err : new Error(String(err)));
      })
      .finally(() => {
        starting();
        this.running.delete(claim.attempt.id);
        void this.pump({ refill: true })
          .then(() => {
            if (this.running.size === 0) this.onAllEnded?.();
          })
          .catch((err: unknown) => this.events.emit('error', err as Error));
      });
    return started;
  }

  /** The workspace mode of a task: its own (`chosen`), else config, else worktree in a git repository. */
  private async workspaceMode(chosenByTask: Task['workspace'] = null): Promise<WorkspaceMode> {
    const chosen = chosenByTask ?? this.o.config.workspace;
    if (chosen) return chosen;
    this.defaultMode ??= defaultWorkspaceMode(this.o.paths.root);
    return this.defaultMode;
  }

  /**
   * The agent for an `agent: auto` attempt: from the priority's `fallback` list (default
   * `[claude]`), the agents with a runner whose account is not paused and below their own
   * concurrency; of those the one running fewest tasks here, then list order (as
   * claudomator's pickAgent). Null when none can take it now. `exclude`: agents already
   * found out of start tokens for this attempt.
   */
  private async pickAgent(task: Task, exclude: ReadonlySet<string> = new Set()): Promise<string | null> {
    const list = (this.o.config.fallback[task.priority] ?? ['claude']).filter((a) => this.o.runners.has(a) && !exclude.has(a));
    const paused = new Set((await this.o.store.listPauses(this.o.now())).map((p) => p.agent));
    const runningOn = (a: string) => [...this.running.values()].filter((r) => r.claim.task.agent === a).length;
    const free = list.filter((a) => !paused.has(accountOf(this.o.config, a)) && runningOn(a) < (this.agentLimits[a] ?? Infinity));
    if (free.length === 0) return null;
    return free.reduce((best, a) => (runningOn(a) < runningOn(best) ? a : best));
  }

  /** Runs one attempt; calls `starting` once the agent and its start token are settled. */
  private async runAttempt(claimed: Claim, signal: AbortSignal, starting: () => void): Promise<void> {
    const chosen = await this.chooseAgent(claimed);
    if (!chosen) return;
    starting();
    this.events.emit('task.started', chosen.claim, chosen.model);
    const plan = await this.planAttempt(chosen.claim, chosen.model);
    if (!plan) return;
    const { claim, runner, model } = plan;
    const { task, attempt } = claim;
    const setupFailed = await this.setUpWorkspace(plan, signal);
    if (setupFailed) {
      this.events.emit('attempt.outcome', claim, setupFailed);
      await this.settle(plan, setupFailed, signal.aborted ? (signal.reason as StopReason) : null);
      return;
    }
    // max_cost_usd: price each model response as it streams; past the budget, stop the agent.
    const meter = new CostMeter(this.prices);
    let sessionModel: string | null = null;
    // stall_timeout: the agent's activity is watched while it runs; a stall stops it (never a remote agent's: its own queue watches it).
    let stalled: string | null = null;
    const stallMs = runner.worksRemotely ? 0 : stallTimeoutOf(task, this.o.config);
    const activity = new ActivityWatch({
      timeoutMs: stallMs,
      logs: [plan.stdoutLog, plan.stderrLog],
      ownProcessIsWork: runner.ownProcessIsWork === true,
      onStall: (quietMs) => {
        stalled = stallDetail(quietMs, stallMs);
        this.running.get(attempt.id)?.controller.abort('stall' satisfies StopReason);
      },
    });
    const entry = this.running.get(attempt.id);
    if (entry) entry.activity = activity;
    activity.start();
    const outcome = await runner.run({
      // With verify, the budget is what the task's earlier attempts left of max_cost_usd.
      task: plan.maxCostUsd === task.maxCostUsd ? task : { ...task, maxCostUsd: plan.maxCostUsd },
      attemptId: attempt.id,
      prompt: plan.prompt,
      resumeSessionId: plan.resumeSessionId,
      systemPromptAppend: this.o.config.questions ? QUESTION_INSTRUCTIONS : null,
      model,
      cwd: plan.workspace.cwd,
      env: plan.env,
      deadline: plan.deadline,
      stdoutLog: plan.stdoutLog,
      stderrLog: plan.stderrLog,
      signal,
      delegations: this.o.store,
      onEvent: (event) => {
        activity.touch();
        if (event.type === 'spawned') activity.setPid(event.pid);
        this.events.emit('task.progress', claim, event);
        if (event.type === 'turn') {
          const usd = meter.add(event.model ?? sessionModel ?? model, event.usage);
          if (plan.maxCostUsd !== null && usd > plan.maxCostUsd && !signal.aborted) {
            this.running.get(attempt.id)?.controller.abort('budget' satisfies StopReason);
          }
        }
        if (event.type === 'session') {
          sessionModel = event.model;
          // After the routed model's write, which this one overrides.
          void Promise.resolve(entry?.recorded)
            .then(() => this.o.store.recordStats(attempt.id, { sessionId: event.sessionId, model: event.model }))
            .catch((err: unknown) => this.events.emit('error', err as Error));
        }
      },
    });
    activity.stop();
    // Agents that report tokens only (Codex, Gemini, OpenAI-compatible) are priced here.
    const s = outcome.stats;
    if (s.costUsd === null && meter.priced) s.costUsd = meter.usd;
    else if (s.costUsd === null && (s.inputTokens !== null || s.outputTokens !== null)) {
      s.costUsd = costOf(s.model ?? model, { inputTokens: s.inputTokens ?? 0, outputTokens: s.outputTokens ?? 0 }, this.prices);
    }
    this.events.emit('attempt.outcome', claim, outcome);
    const verified = await this.verifyAttempt(plan, outcome, signal);
    await this.settle(plan, verified.outcome, verified.stopReason, outcome.stats.costUsd ?? meter.usd, { verifyFailure: verified.failure, stopDetail: stalled });
    if ((outcome.stats.costUsd ?? 0) > 0) await this.holdOverBudget();
  }

  /**
   * The verification gate (src/scheduler/verify.ts): after an agent reported success (and
   * asked no question), its task's verify commands run in the attempt's workspace. Gives the
   * outcome to settle (`cancelled` when the attempt was stopped during a command), its stop
   * reason, and why the verification failed (null: passed, or nothing to verify). A stall or
   * budget stop that came after the success does not stop the verification: it runs under a
   * fresh controller (the lease keeper's cancel reaches it).
   */
  private async verifyAttempt(plan: AttemptPlan, outcome: RunOutcome, signal: AbortSignal): Promise<{ outcome: RunOutcome; stopReason: StopReason | null; failure: string | null }> {
    const stopReason = signal.aborted ? (signal.reason as StopReason) : null;
    const { task, attempt } = plan.claim;
    const commands = verifyCommandsOf(task, this.o.config);
    const asks = this.o.config.questions && outcome.kind === 'completed' && parseQuestion(outcome.result) !== null;
    if (outcome.kind !== 'completed' || commands.length === 0 || asks || (stopReason !== null && stopReason !== 'stall' && stopReason !== 'budget')) {
      return { outcome, stopReason, failure: null };
    }
    const entry = this.running.get(attempt.id);
    let verifySignal = signal;
    if (signal.aborted && entry) {
      entry.controller = new AbortController();
      verifySignal = entry.controller.signal;
    }
    const timeoutMs = verifyTimeoutOf(task, this.o.config);
    const result = await runVerifications({
      commands,
      attemptId: attempt.id,
      cwd: plan.workspace.cwd,
      env: plan.env,
      timeoutMs,
      graceMs: this.o.config.kill_grace,
      logFile: (k) => verifyLogFile(this.o.paths, task, attempt.number, k),
      signal: verifySignal,
      record: (run) => this.o.store.recordVerification(attempt.id, run),
      onStart: (command, k) => this.events.emit('task.progress', plan.claim, { type: 'progress', text: `verify ${k}/${commands.length}: ${command}` }),
      now: this.o.now,
    });
    if (result.kind === 'stopped') {
      return { outcome: { ...outcome, kind: 'cancelled', reason: 'stopped during verification' }, stopReason: verifySignal.reason as StopReason, failure: null };
    }
    return { outcome, stopReason, failure: result.kind === 'failed' ? verifyFailureReason(result.failed, timeoutMs) : null };
  }

  /**
   * The agent of a claimed attempt, with its start token (`rate_limit`) taken: the task's
   * own, or for `agent: auto` the first free agent of its `fallback` list that has a token
   * (one without is paused and skipped). The routed model is recorded on the attempt row.
   * Null when the task went back to the queue instead (no agent free, out of start tokens),
   * its attempt not counted.
   */
  private async chooseAgent(claimed: Claim): Promise<{ claim: Claim; model: string | null } | null> {
    const store = this.o.store;
    let claim = claimed;
    if (claimed.task.agent === AUTO_AGENT) {
      // Agents that failed verification verify_retries times on this task are passed over; when every one has, the task fails.
      const { spent, last } = await this.outOfVerifyRetries(claimed);
      const list = (this.o.config.fallback[claimed.task.priority] ?? ['claude']).filter((a) => this.o.runners.has(a));
      if (spent.size > 0 && list.every((a) => spent.has(a))) {
        const reason = `verify failed ${verifyRetriesOf(claimed.task, this.o.config)} times on every agent of the fallback list (${list.join(', ')}); the last: ${last ?? 'verify failed'}`;
        const outcome: RunOutcome = { kind: 'failed', retryable: false, reason, stats: emptyStats(), exitCode: null };
        this.events.emit('attempt.outcome', claimed, outcome);
        await this.settle({ claim: claimed, model: null, stdoutLog: null, workspace: null }, outcome, null);
        return null;
      }
      const outOfTokens = new Set<string>(spent);
      let chosen = await this.pickAgent(claimed.task, outOfTokens);
      while (chosen !== null && !(await this.takeStartToken(chosen)).taken) {
        outOfTokens.add(chosen);
        chosen = await this.pickAgent(claimed.task, outOfTokens);
      }
      if (chosen === null) {
        // Every agent of the list is paused or full: back in the queue, no attempt used.
        const pauses = await store.listPauses(this.o.now());
        const runAfter = Math.min(this.o.now() + this.o.config.poll_interval, ...pauses.map((p) => p.until));
        const requeued = await store.requeue(claimed.attempt.id, { attemptOutcome: 'interrupted', reason: 'agent: auto: no agent of the fallback list is free', runAfter: Math.max(runAfter, this.o.now()), output: NO_OUTPUT, now: this.o.now() });
        if (requeued) this.events.emit('task.requeued', requeued, 'agent: auto: every agent of the fallback list is paused or busy');
        return null;
      }
      // The attempt runs as if the task named the agent; routing picks that agent's model.
      claim = { ...claimed, task: { ...claimed.task, agent: chosen, model: null } };
      this.running.get(claimed.attempt.id)!.claim = claim;
    } else {
      const start = await this.takeStartToken(claimed.task.agent);
      if (!start.taken) {
        // Out of start tokens (another dispatcher took the last): back in the queue, no attempt used.
        const now = this.o.now();
        const reason = `${claimed.task.agent}: ${rateLimitReason(agentConfig(this.o.config, claimed.task.agent), start.nextTokenAt)}`;
        const requeued = await store.requeue(claimed.attempt.id, { attemptOutcome: 'interrupted', reason, runAfter: Math.max(start.nextTokenAt, now), output: NO_OUTPUT, now });
        if (requeued) this.events.emit('task.requeued', requeued, reason);
        return null;
      }
    }
    const model = routeModel(claim.task, this.o.config);
    // Not awaited: nothing before the agent's start needs it; the attempt's later writes wait for it (see `Running.recorded`).
    this.running.get(claimed.attempt.id)!.recorded = store
      .setAttemptAgent(claim.attempt.id, { agent: claim.task.agent, model })
      .catch((err: unknown) => {
        this.events.emit('error', err instanceof Error ? err : new Error(String(err)));
      });
    return { claim, model };
  }

  /**
   * For `agent: auto` with verify commands: the agents with `verify_retries` failed
   * verifications in the task's current run of retries (see {@link agentsOutOfVerifyRetries}),
   * and the reason of the last one.
   */
  private async outOfVerifyRetries({ task, attempt }: Claim): Promise<{ spent: Set<string>; last: string | null }> {
    if (task.claims <= 1 || verifyCommandsOf(task, this.o.config).length === 0) return { spent: new Set(), last: null };
    const run = currentRun((await this.o.store.listAttempts(task.id)).filter((a) => a.number < attempt.number), task.attempts - 1);
    return { spent: agentsOutOfVerifyRetries(run, verifyRetriesOf(task, this.o.config)), last: run.filter((a) => a.outcome === 'verify_failed').at(-1)?.reason ?? null };
  }

  /**
   * Resolves everything the attempt runs with ({@link AttemptPlan}): its log folder, its
   * workspace, its prompt (the failure history of earlier attempts, or the answer to its
   * question), environment, deadline and budget. A step that fails settles the attempt
   * (see {@link preparationFailed}) and gives null.
   */
  private async planAttempt(claim: Claim, model: string | null): Promise<AttemptPlan | null> {
    const { task, attempt } = claim;
    const runner = this.o.runners.get(task.agent)!;
    const stdoutLog = attemptLogFile(this.o.paths, task, attempt.number, 'stdout');
    try {
      this.logFolders.prepare(path.dirname(stdoutLog), attempt.number);
    } catch (err) {
      await this.settle({ claim, model, stdoutLog: null, workspace: null }, this.preparationFailed(claim, 'logs', err), null);
      return null;
    }
    let workspace: Workspace;
    try {
      const mode = await this.workspaceMode(task.workspace);
      // In place needs no git work per attempt (start() keeps .agent-queue/ out of git once).
      workspace =
        mode === 'inplace'
          ? { mode, cwd: this.o.paths.root, branch: null, worktree: null, base: null, reused: false }
          : await openWorkspace({ projectRoot: this.o.paths.root, taskId: task.id, taskName: task.name, mode });
    } catch (err) {
      await this.settle({ claim, model, stdoutLog, workspace: null }, this.preparationFailed(claim, 'workspace', err), null);
      return null;
    }
    const earlier = task.claims > 1 ? (await this.o.store.listAttempts(task.id)).filter((a) => a.number < attempt.number) : [];
    const verifications = earlier.some((a) => a.outcome === 'verify_failed') ? await this.o.store.listVerifications(task.id) : [];
    const fresh = task.claims > 1 ? withFailureSummary(task.prompt, earlier, verifications) : task.prompt;
    // After a failed verification, a stall, an answer or a release: the session resumed with what follows, or a fresh prompt that says it.
    const { prompt, resumeSessionId } = followUp(task, fresh, earlier, verifications, runner.canResume === true);
    // With verify, resumed attempts and fallbacks spend max_cost_usd together.
    const maxCostUsd = remainingBudget(task.maxCostUsd, verifyCommandsOf(task, this.o.config).length > 0, currentRun(earlier, task.attempts - 1));
    if (maxCostUsd !== null && maxCostUsd <= 0) {
      const reason = `budget exceeded: earlier attempts spent max_cost_usd $${task.maxCostUsd ?? '?'} (with verify, it covers every attempt)`;
      await this.settle({ claim, model, stdoutLog, workspace }, { kind: 'budget_exceeded', reason, stats: emptyStats(), exitCode: null }, null);
      return null;
    }
    return {
      claim,
      runner,
      model,
      prompt,
      resumeSessionId,
      workspace,
      stdoutLog,
      stderrLog: attemptLogFile(this.o.paths, task, attempt.number, 'stderr'),
      deadline: attempt.startedAt + task.timeoutMs,
      maxCostUsd,
      env: { ...this.agentEnvOf(task.agent), AGENTQ_TASK_ID: String(task.id), AGENTQ_TASK_NAME: task.name },
    };
  }

  /** The environment of `agent`'s attempts before their task's tags ({@link agentEnv} of this dispatcher's env and config), worked out once per agent. */
  private agentEnvOf(agent: string): Record<string, string> {
    let env = this.agentEnvs.get(agent);
    if (env === undefined) this.agentEnvs.set(agent, (env = agentEnv(this.o.env, this.o.config, agent, {})));
    return env;
  }

  /**
   * `workspace_setup` (the task's, else config's) in a worktree that has not been set up
   * with these commands yet: a fresh one, or one reused from an attempt whose setup failed or
   * was cut short (see src/workspace/setup.ts). Runs with the agent's environment, process tag
   * and log files; the agent's `timeout` starts after it (`plan.deadline` moves by its time).
   * Never in place. Returns the outcome that ends the attempt instead of the agent
   * (`setup_failed`, or `cancelled` when stopped), or null when the agent may start.
   */
  private async setUpWorkspace(plan: AttemptPlan, signal: AbortSignal): Promise<RunOutcome | null> {
    const { claim, workspace } = plan;
    const commands = claim.task.workspaceSetup ?? this.o.config.workspace_setup;
    if (workspace.mode !== 'worktree' || workspace.worktree === null || commands.length === 0) return null;
    if (await setupSucceeded(workspace.worktree, commands)) return null;
    const setup = await runWorkspaceSetup({
      commands,
      timeoutMs: this.o.config.workspace_setup_timeout,
      graceMs: this.o.config.kill_grace,
      attemptId: claim.attempt.id,
      cwd: workspace.cwd,
      env: plan.env,
      stdoutLog: plan.stdoutLog,
      stderrLog: plan.stderrLog,
      signal,
      onCommand: (command) => this.events.emit('task.progress', claim, { type: 'progress', text: `workspace_setup: ${command}` }),
    });
    plan.deadline += setup.ms;
    if (setup.kind === 'done') {
      await recordSetup(workspace.worktree, commands);
      return null;
    }
    return { kind: setup.kind === 'failed' ? 'setup_failed' : 'cancelled', reason: setup.reason, exitCode: setup.exitCode, stats: emptyStats() };
  }

  /**
   * Takes a start token of `agent` (`agents.<name>.rate_limit`; always granted without one)
   * from its account's bucket. A bucket left empty pauses the account until its next token
   * (see {@link takeStart}).
   */
  private async takeStartToken(agent: string): Promise<StartToken> {
    const start = await takeStart(this.o.store, accountOf(this.o.config, agent), agentConfig(this.o.config, agent), this.o.now());
    if (start.pause) this.events.emit('agent.paused', start.pause);
    return start;
  }

  /**
   * Pauses the agents whose daily budget (or the project's) is spent until the next budget
   * day starts (`budgets.day_start`); running tasks finish, queued ones wait (or fail over
   * with `agent: auto`). A longer pause (e.g. a usage limit) is kept, and so are the agent's
   * rate-limit strikes.
   */
  private async holdOverBudget(): Promise<void> {
    const c = this.o.config;
    if (c.budgets.daily_usd === undefined && !Object.values(c.agents).some((a) => a.budgets.daily_usd !== undefined)) return;
    const now = this.o.now();
    const usage = await this.o.store.agentUsage(budgetDay(now, c.budgets.day_start).start);
    for (const hold of budgetHolds(c, [...this.o.runners.keys()], usage, now)) {
      const pause = { agent: hold.account, until: hold.until, reason: hold.reason };
      if (await this.o.store.extendPause(pause)) this.events.emit('agent.paused', pause);
    }
  }

  /**
   * Applies what {@link decide} makes of a runner outcome. A task that ends closes its
   * worktree first (commit leftovers, merge with `merge: auto`, or push with
   * `workspace_push`), so the result file names the branch, commits and push; a merge
   * conflict fails a completed task, a failed push does not. A requeued or blocked task keeps
   * its worktree for the next attempt; a lost lease touches nothing.
   */
  private async settle(
    plan: Pick<AttemptPlan, 'claim' | 'model'> & { stdoutLog: string | null; workspace: Workspace | null },
    outcome: RunOutcome,
    stopReason: StopReason | null,
    spentUsd = outcome.stats.costUsd ?? 0,
    judged: Pick<DecideContext, 'verifyFailure' | 'stopDetail'> = {},
  ): Promise<void> {
    const { claim, workspace } = plan;
    const { task, attempt } = claim;
    await this.running.get(attempt.id)?.recorded;
    const store = this.o.store;
    const now = this.o.now();
    const agent = agentConfig(this.o.config, task.agent);
    const account = accountOf(this.o.config, task.agent);
    const step = decide(outcome, task, {
      now,
      stopReason,
      questions: this.o.config.questions,
      retryDelayMs: this.retryDelay(task),
      account,
      strikes: outcome.kind === 'rate_limited' ? await store.agentStrikes(account) : 0,
      rateLimitBackoff: { base: agent.rate_limit_backoff, max: agent.rate_limit_backoff_max },
      spentUsd,
      ...judged,
    });
    if (step.kind === 'none') return;
    const stats = { ...outcome.stats, model: outcome.stats.model ?? plan.model };
    const base = { stats, exitCode: outcome.exitCode, logPath: plan.stdoutLog, output: this.outputOf(task, attempt.number), now };
    let finished: Task | null = null;
    switch (step.kind) {
      case 'block': {
        await store.clearAgentStrikes(account);
        const blocked = await store.block(attempt.id, { question: step.question, ...base });
        if (blocked) this.events.emit('task.blocked', blocked);
        return;
      }
      case 'hand_over': {
        // Taken over by hand: the worktree stays for the person and the next attempt.
        const taken = await store.handOver(attempt.id, base);
        if (taken) this.events.emit('task.blocked', taken);
        return;
      }
      case 'requeue': {
        if (step.pause) {
          const { strikes, account: paused, ...rest } = step.pause;
          const pause = { agent: paused, ...rest };
          await store.pauseAgent(pause, strikes);
          this.events.emit('agent.paused', pause);
        }
        const requeued = await store.requeue(attempt.id, { ...base, attemptOutcome: step.attemptOutcome, reason: step.reason, runAfter: step.runAfter });
        if (requeued) this.events.emit('task.requeued', requeued, step.reason);
        return;
      }
      case 'complete':
        await store.clearAgentStrikes(account);
        await this.takeInAfterAgent(task); // subtasks it filed count before it is judged done
        finished = await this.end(claim, workspace, base, 'completed', null, step.result);
        break;
      case 'end':
        finished = await this.end(claim, workspace, base, step.state, step.reason, null, step.attemptOutcome);
        break;
    }
    if (finished?.state === 'waiting') this.events.emit('task.waiting', finished);
    else if (finished) {
      this.reportEnded(finished);
      if (finished.state !== 'completed') await this.settleDependents();
      if (finished.parentId !== null) await this.settleParents();
    }
  }

  /**
   * Ends an attempt's task in `state`: closes a worktree first (a merge that fails turns
   * `completed` into `failed`, naming the conflict) and, with `workspace_push`, pushes its
   * branch (see {@link pushTaskBranch}); then records the end with where it ran and what it
   * left in git (`FinishOutcome.workspace`, fenced like the end). `attemptOutcome`: what the
   * attempt row records when not the task's state (`setup_failed`, `verify_failed`, `stalled`). Null when the lease is lost
   * (nothing recorded: the dispatcher that holds it now records its own).
   */
  private async end(
    { task, attempt }: Claim,
    workspace: Workspace | null,
    base: Pick<FinishOutcome, 'stats' | 'exitCode' | 'logPath' | 'output' | 'now'>,
    state: 'completed' | 'failed' | 'timed_out' | 'cancelled' | 'budget_exceeded',
    reason: string | null,
    result: string | null = null,
    attemptOutcome: CountedFailure | null = null,
  ): Promise<Task | null> {
    let failure = reason;
    const record: WorkspaceRecord = { branch: null, commits: [], ranOn: os.hostname(), pushedTo: null, pushError: null };
    if (workspace?.mode === 'worktree') {
      const remote = this.o.config.workspace_push ?? null;
      // A checkout that pushes is a worker's: the branch goes to the remote for the checkout the task came from; merging it here would only make this one's branch diverge.
      const merge = remote !== null ? 'manual' : (task.merge ?? this.o.config.merge);
      let closed: WorkspaceResult | null = null;
      try {
        closed = await closeWorkspace(workspace, { projectRoot: this.o.paths.root, success: state === 'completed', title: task.title, merge });
      } catch (err) {
        if (err instanceof MergeError) closed = err.result;
        if (state === 'completed') failure = (err as Error).message;
        else this.events.emit('error', err as Error);
      }
      record.branch = closed?.branch ?? workspace.branch;
      record.commits = closed?.commits ?? [];
      if (remote !== null && closed?.branch && closed.commits.length > 0) {
        Object.assign(record, await this.pushTaskBranch(task, closed.branch, closed.commits.length, remote));
      }
    }
    const finalState = state === 'completed' && failure !== null ? 'failed' : state;
    return this.finisher.finish(attempt.id, {
      ...base,
      state: finalState,
      attemptOutcome: attemptOutcome ?? finalState,
      reason: failure,
      result: finalState === 'completed' ? result : null,
      workspace: record,
    });
  }

  /**
   * `workspace_push`: pushes a closed worktree's branch to `remote` (transient failures tried
   * again, see `pushBranch`), announcing each failed try and the outcome as events. A failed
   * push leaves the task's end as it is; it is recorded as `pushError`.
   */
  private async pushTaskBranch(task: Task, branch: string, commits: number, remote: string): Promise<Pick<WorkspaceRecord, 'pushedTo' | 'pushError'>> {
    const pushed = await pushBranch({
      cwd: this.o.paths.root,
      branch,
      remote,
      onRetry: (error, retryInMs) => this.events.emit('task.push_failed', task, error, retryInMs),
    });
    if (pushed.ok) {
      this.events.emit('task.pushed', task, pushed.pushedTo, commits);
      return { pushedTo: pushed.pushedTo, pushError: null };
    }
    this.events.emit('task.push_failed', task, pushed.error, null);
    return { pushedTo: null, pushError: pushed.error };
  }

  /**
   * The tails of attempt `number`'s stdout and stderr logs in this checkout, to keep on its
   * row (a log never written reads as empty); null when a log cannot be read (reported).
   * Read once as the attempt ends: two short reads from the end of each file.
   */
  private outputOf(task: Pick<Task, 'id' | 'name'>, number: number): AttemptOutput | null {
    try {
      return {
        stdout: readOutputTail(attemptLogFile(this.o.paths, task, number, 'stdout')),
        stderr: readOutputTail(attemptLogFile(this.o.paths, task, number, 'stderr')),
      };
    } catch (err) {
      this.events.emit('error', err instanceof Error ? err : new Error(String(err)));
      return null;
    }
  }

  /**
   * The outcome of an attempt that failed before or around its agent, at `step` (`logs`,
   * `workspace`, `agentq`): retried like an agent failure when the cause may pass (a full
   * disk, too many open files), final otherwise (a name the file system refuses).
   */
  private preparationFailed(claim: Claim, step: string, err: unknown): RunOutcome {
    const message = err instanceof Error ? err.message : String(err);
    const reason = message.startsWith(`${step}:`) ? message : `${step}: ${message}`;
    const outcome: RunOutcome = { kind: 'failed', reason, retryable: TRANSIENT_FS_ERRORS.has((err as NodeJS.ErrnoException).code ?? ''), stats: emptyStats(), exitCode: null };
    this.events.emit('attempt.outcome', claim, outcome);
    return outcome;
  }

  /** Backoff before the next attempt: the task's `retry_backoff` (else config), doubled per attempt, with jitter. */
  private retryDelay(task: Task): number {
    return backoffMs(task.attempts, task.retryBackoffMs ?? this.o.config.retry_backoff, this.o.config.retry_backoff_max);
  }

  /** Ends `waiting` parents whose subtasks have all ended, and reports them. */
  private async settleParents(): Promise<void> {
    for (const t of await this.o.store.settleParents(this.o.now())) {
      this.workMade++;
      await this.report(t);
      if (t.state !== 'completed') await this.settleDependents();
    }
  }

  /** Fails queued tasks whose dependency ended without completing, and reports them. */
  private async settleDependents(): Promise<void> {
    for (const t of await this.o.store.failBlockedDependents(this.o.now())) {
      this.workMade++;
      this.touched.add(t.id);
      await this.report(t);
    }
  }

  /**
   * Reports a task that just ended: its result file is written here if this checkout is its
   * origin (see {@link Reporter.report}); else its origin's agentq writes it.
   */
  private async report(task: Task): Promise<void> {
    await this.reporter.report(task);
  }

  /**
   * Reports the task an attempt of this dispatcher just ended ({@link report}) beside the
   * attempts, not before its slot is free: the next claim and its agent's start do not wait
   * for the result file's write and fsyncs (its end is committed already; a crash before the
   * file is written leaves it to the next tick's {@link writeResults}). Tracked in
   * {@link reporting} until written; a failure is an `error` event.
   */
  private reportEnded(task: Task): void {
    const reported: Promise<void> = this.report(task)
      .catch((err: unknown) => {
        this.events.emit('error', err instanceof Error ? err : new Error(String(err)));
      })
      .finally(() => this.reporting.delete(reported));
    this.reporting.add(reported);
  }

  /** Resolves once the reports under way of the tasks ended here ({@link reportEnded}), and any started meanwhile, are done. */
  private async reportsDone(): Promise<void> {
    while (this.reporting.size > 0) await Promise.all(this.reporting);
  }

  /**
   * Writes every missing result file of this checkout's tasks (after a crash, an earlier I/O
   * error, or a task another checkout's dispatcher ended; see {@link Reporter.writeMissing}).
   */
  async writeResults(): Promise<void> {
    await this.reporter.writeMissing();
  }

  /** Whether the inbox holds task files to take in (refused entries left aside). */
  inboxHasWork(): boolean {
    return inboxHasFiles(this.o.paths, this.refusedFiles);
  }

  /**
   * The waits of the queued tasks while nothing runs on the store (see {@link queuedWaits});
   * null while something runs (here or in another dispatcher), since that may change them.
   */
  async queueWaits(): Promise<QueuedWait[] | null> {
    const store = this.o.store;
    if (this.running.size > 0 || (await store.countByState()).running > 0) return null;
    const now = this.o.now();
    const queued = await store.listTasks({ state: 'queued' });
    const queuedIds = new Set(queued.map((t) => t.id));
    const byId = new Map<number, Task>();
    for (const id of new Set(queued.flatMap((t) => t.dependsOnIds))) {
      const dep = queuedIds.has(id) ? null : await store.getTask(id);
      if (dep) byId.set(id, dep);
    }
    return queuedWaits(queued, byId, await store.listPauses(now), now, this.o.config.labels, this.accounts);
  }

  /** True when the store holds no queued or running task (after ending parents whose subtasks ended) and no detector runs. */
  async idle(): Promise<boolean> {
    await this.reportsDone();
    await this.settleParents();
    const counts = await this.o.store.countByState();
    return counts.queued === 0 && counts.running === 0 && this.running.size === 0 && this.detecting === null;
  }

  /**
   * Stops cleanly: no new claims; running attempts are stopped (process tree) and their
   * tasks requeued without using up an attempt; a detector running is stopped (its run
   * creates nothing). Resolves when they have all ended.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    // Before waiting for the pump: a claim it waits on may be retrying through a store outage.
    for (const r of this.running.values()) r.controller.abort('shutdown' satisfies StopReason);
    await this.pumping;
    for (const r of this.running.values()) r.controller.abort('shutdown' satisfies StopReason);
    this.detectorsStop.abort();
    await Promise.all([...this.running.values()].map((r) => r.done));
    await this.reportsDone();
    await this.detecting;
    await this.leave();
  }

  /** Waits for the attempts and the detectors running now to end by themselves (no new claims). */
  async drain(): Promise<void> {
    this.stopping = true;
    await this.pumping;
    await Promise.all([...this.running.values()].map((r) => r.done));
    await this.reportsDone();
    await this.detecting;
    await this.notifier?.flush();
    await this.leave();
  }
}
