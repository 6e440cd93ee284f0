/**
 * The typed event map the dispatcher emits; the CLI's progress display (and later SSE)
 * subscribe to it. Listeners must not throw.
 */
import { EventEmitter } from 'node:events';
import type { AgentEvent, RunOutcome } from '../agents/runner.ts';
import type { AgentPause, Claim, Task } from '../core/types.ts';
import type { RefusedEntry } from '../intake/inbox.ts';
import type { DetectorRun } from '../store/store.ts';

export interface DispatcherEventMap {
  /** Intake recorded a task (queued, or invalid). */
  'task.created': [task: Task];
  /** An attempt was claimed and its agent is starting. */
  'task.started': [claim: Claim, model: string | null];
  /** Live agent events (session id, tool use). */
  'task.progress': [claim: Claim, event: AgentEvent];
  /** An attempt ended and the task went back to the queue. */
  'task.requeued': [task: Task, reason: string];
  /** A parent's own run completed; it waits for its subtasks. */
  'task.waiting': [task: Task];
  /** An attempt ended with a question (the task waits for `agentq answer`), or was stopped because a person took the task over (`takenOverAt` set; it waits for `agentq release`). */
  'task.blocked': [task: Task];
  /** A task reached a terminal state; `resultPath` is set once its file is written. */
  'task.finished': [task: Task];
  /** Inbox files left waiting in the inbox (e.g. the queue is full); emitted when the set changes. */
  'intake.deferred': [files: string[], reason: string];
  /** Inbox entries intake will not read (symlinks, FIFOs, …), left in place; each entry once. */
  'intake.refused': [entries: RefusedEntry[]];
  /** A detector (a recurring file with `detect:`) ran: the tasks it created came as `task.created`; `run.error` and `run.problems` say what it could not take. */
  'detector.ran': [run: DetectorRun];
  /** `run --once` has nothing to run but this task, which cannot run before `until` (epoch ms). */
  'task.delayed': [task: Task, until: number, reason: string];
  /** `workspace_push`: the branch of a task that is ending, with `commits` commits, was pushed; `pushedTo` is `REMOTE/BRANCH`. */
  'task.pushed': [task: Task, pushedTo: string, commits: number];
  /** `workspace_push`: a push of an ending task's branch failed; tried again in `retryInMs` ms, or null: given up (recorded as the task's `pushError`). */
  'task.push_failed': [task: Task, error: string, retryInMs: number | null];
  /** An agent was paused after a rate limit. */
  'agent.paused': [pause: AgentPause];
  /** A running task of a dead dispatcher was requeued. */
  'task.recovered': [task: Task, killedPids: number[]];
  /** The store stopped answering (locked past the busy timeout, disk full…): calls wait and retry; the first try again is in `retryInMs` ms. Once per outage. */
  'store.unavailable': [error: Error, retryInMs: number];
  /** The store answers again after an outage of `outageMs` ms. */
  'store.back': [outageMs: number];
  /** Something went wrong that the dispatcher survived (I/O error…). */
  'error': [error: Error];
  /** The outcome of an attempt as the runner reported it (for logs). */
  'attempt.outcome': [claim: Claim, outcome: RunOutcome];
}

export class DispatcherEvents extends EventEmitter<DispatcherEventMap> {}
