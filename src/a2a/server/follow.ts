/**
 * Following one task as it changes, for A2A streams (`message/stream`, `tasks/resubscribe`)
 * and blocking `message/send`: the dispatcher's typed events (src/events/events.ts: started,
 * progress, requeued, blocked, waiting, finished…) as they happen, and the store every
 * `pollMs` for what other processes on the store did (another dispatcher ran it, `agentq
 * cancel` from a shell). Changes are reported once per task version (`state:claims`).
 */
import type { Task as A2aTask, TaskArtifactUpdateEvent, TaskStatusUpdateEvent } from '@a2a-js/sdk';
import type { AgentEvent } from '../../agents/runner.ts';
import type { Claim, Task } from '../../core/types.ts';
import type { DispatcherEvents } from '../../events/events.ts';
import { taskVersion } from '../../store/rows.ts';
import type { Store } from '../../store/store.ts';
import { isFinal, resultEvent, statusEvent, toA2aTask } from './task-view.ts';

/** What a follower needs. */
export interface FollowDeps {
  store: Store;
  events: DispatcherEvents;
  /** How often the store is read besides the events, ms (config `poll_interval`). */
  pollMs: number;
}

/** One change of a followed task: its new value (with why, for a requeue), or a progress line of its agent. */
export type TaskChange = { kind: 'task'; task: Task; note?: string } | { kind: 'progress'; text: string };

/** An A2A stream event. */
export type StreamEvent = A2aTask | TaskStatusUpdateEvent | TaskArtifactUpdateEvent;

/**
 * The changes of task `taskId` from the moment of the call (listening starts at once, before
 * the first `next()`) until `signal` aborts: every dispatcher event of the task, and a store
 * read every `pollMs`. Not deduplicated (see {@link followTask}). Store errors of a poll are
 * skipped (the next poll tries again). Everything it set up is released when `signal`
 * aborts, whether or not the generator was ever read.
 */
export function taskChanges(d: FollowDeps, taskId: number, signal: AbortSignal): AsyncGenerator<TaskChange> {
  const queue: TaskChange[] = [];
  let wake: (() => void) | null = null;
  const push = (c: TaskChange) => {
    queue.push(c);
    wake?.();
  };
  const onTask = (task: Task, note?: string) => {
    if (task.id === taskId) push(note === undefined ? { kind: 'task', task } : { kind: 'task', task, note });
  };
  const on = {
    started: (claim: Claim) => onTask(claim.task),
    progress: (claim: Claim, e: AgentEvent) => {
      if (claim.task.id === taskId && e.type === 'progress') push({ kind: 'progress', text: e.text });
    },
    requeued: (task: Task, reason: string) => onTask(task, reason),
    recovered: (task: Task) => onTask(task, 'recovered: its dispatcher stopped while it ran'),
    task: (task: Task) => onTask(task),
  };
  /** Adds (`on`) or removes (`off`) the listeners above: one list, so the two never differ. */
  const listen = (method: 'on' | 'off') => {
    d.events[method]('task.started', on.started);
    d.events[method]('task.progress', on.progress);
    d.events[method]('task.requeued', on.requeued);
    d.events[method]('task.recovered', on.recovered);
    d.events[method]('task.blocked', on.task);
    d.events[method]('task.waiting', on.task);
    d.events[method]('task.finished', on.task);
  };
  listen('on');
  let polling = false;
  const poll = setInterval(() => {
    if (polling) return;
    polling = true;
    d.store
      .getTask(taskId)
      .then((t) => t && push({ kind: 'task', task: t }))
      .catch(() => {})
      .finally(() => (polling = false));
  }, d.pollMs);
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    clearInterval(poll);
    listen('off');
    wake?.();
  };
  if (signal.aborted) release();
  else signal.addEventListener('abort', release, { once: true });
  return (async function* drain(): AsyncGenerator<TaskChange> {
    try {
      while (!released) {
        const next = queue.shift();
        if (next) {
          yield next;
          continue;
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
      }
    } finally {
      signal.removeEventListener('abort', release);
      release();
    }
  })();
}

/**
 * The A2A events of a task, until its stream ends or `signal` aborts: first the task as it
 * is (`kind: task`); then a status-update per new version (`submitted` with the reason of a
 * requeue, `working`, …) and per progress line while it runs (`working` with the line as
 * its message); at the end (a terminal state, or `input-required` with the question) the
 * result's artifact-update (completed), the whole task again (its metadata: cost, tokens)
 * and a status-update with `final: true`. Ends at once after the first event when the task
 * is already there; yields nothing for an unknown id.
 */
export async function* followTask(d: FollowDeps, taskId: number, signal: AbortSignal): AsyncGenerator<StreamEvent> {
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  if (signal.aborted) return;
  signal.addEventListener('abort', onAbort);
  // Listening before the first read: no change falls between them.
  const changes = taskChanges(d, taskId, stop.signal);
  try {
    const first = await d.store.getTask(taskId);
    if (!first) return;
    yield toA2aTask(first);
    if (isFinal(first.state)) return;
    let last = first;
    for await (const c of changes) {
      if (c.kind === 'progress') {
        if (last.state === 'running') yield statusEvent(last, { text: c.text });
        continue;
      }
      const t = c.task;
      if (taskVersion(t) === taskVersion(last)) continue;
      last = t;
      if (isFinal(t.state)) {
        if (t.state === 'completed') yield resultEvent(t);
        yield toA2aTask(t);
        yield statusEvent(t, { final: true });
        return;
      }
      yield statusEvent(t, { text: c.note ?? null });
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    stop.abort();
  }
}

/**
 * Waits until task `taskId` satisfies `done` (checked on its current value first), at most
 * `timeoutMs`; returns its latest value (null for an unknown id).
 */
export async function waitForTask(d: FollowDeps, taskId: number, done: (t: Task) => boolean, timeoutMs: number): Promise<Task | null> {
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), timeoutMs);
  const changes = taskChanges(d, taskId, stop.signal);
  try {
    let latest = await d.store.getTask(taskId);
    if (!latest || done(latest)) return latest;
    for await (const c of changes) {
      if (c.kind !== 'task') continue;
      latest = c.task;
      if (done(latest)) break;
    }
    return latest;
  } finally {
    clearTimeout(timer);
    stop.abort();
  }
}
