/**
 * Taking a task over by hand and handing it back, on the store (`agentq attach`, `agentq
 * release`): the headless attempt of a running task is stopped by its dispatcher, which sees
 * the request in its heartbeat; the task then waits `blocked`, taken over, until released.
 */
import os from 'node:os';
import { realpathSync } from 'node:fs';
import { AgentQueueError, UsageError } from '../core/errors.ts';
import { DEFAULT_RELEASE_NOTE } from '../core/takeover.ts';
import { isTerminal, type Task } from '../core/types.ts';
import type { Store } from '../store/store.ts';
import { findTask } from './task-ops.ts';

/** Options of {@link takeOverTask}. */
export interface TakeOverOptions {
  /** Clock, epoch ms. */
  now: () => number;
  /** Longest wait for the dispatcher of a running task to stop its attempt, ms. */
  waitMs: number;
  /** Store poll while waiting, ms. Default 200. */
  pollMs?: number;
  /** This machine's host name (`os.hostname()` by default). */
  host?: string;
  /** This checkout's project root (realpath), to refuse a task whose dispatcher runs from another checkout here; null: not checked. */
  root?: string | null;
  /** Called once when a running task's dispatcher has been asked to stop it (before the wait). */
  onStopping?: (task: Task) => void;
}

/** What {@link takeOverTask} did. */
export interface TakenOver {
  /** The task, `blocked` and taken over (`takenOverAt` set). */
  task: Task;
  /** `stopped`: a running attempt was stopped; `blocked`: it was blocked (on a question, or already taken over: `again`). */
  how: 'stopped' | 'blocked' | 'again';
}

/**
 * Takes a task over by hand ({@link Store.takeOver}). A `blocked` task at once; a `running`
 * one by asking its dispatcher, then waiting (polling the store) until it has stopped the
 * attempt — the dispatcher's lease keeper sees the request within `min(lease / 3,
 * poll_interval)` and stops the process tree within `kill_grace`; a dead dispatcher's task is
 * rescued after its lease, then taken over as it comes back to the queue. The worktree is kept.
 * Refused before anything changes when the task ran on another host (its workspace is
 * there), or from another checkout here while that dispatcher is registered.
 * @param ref task id or name
 * @throws NotFoundError for an unknown task; AgentQueueError `not_attachable` for a task
 *   neither running nor blocked, one that ran elsewhere, one that ended before its attempt
 *   could be stopped, or one still running after `waitMs` (the request stays: it is taken
 *   over once its dispatcher gets to it)
 */
export async function takeOverTask(store: Store, ref: string | number, o: TakeOverOptions): Promise<TakenOver> {
  const task = await findTask(store, ref);
  const label = `#${task.id} ${task.name}`;
  if (task.state !== 'running' && task.state !== 'blocked') {
    throw new AgentQueueError('not_attachable', `${label} is ${task.state}: only a running or blocked task can be taken over`);
  }
  await refuseElsewhere(store, task, o.host ?? os.hostname(), o.root ?? null);
  if (task.state === 'blocked' && task.takenOverAt !== null) return { task, how: 'again' };
  let current = await store.takeOver(task.id, o.now());
  if (current.state === 'blocked') return { task: current, how: 'blocked' };
  o.onStopping?.(current);
  const until = o.now() + o.waitMs;
  for (;;) {
    if (current.state === 'blocked' && current.takenOverAt !== null) return { task: current, how: 'stopped' };
    // Requeued meanwhile (a retry, a rescue): taken over at once now.
    if (current.state === 'queued') current = await store.takeOver(task.id, o.now());
    else if (isTerminal(current.state) || current.state === 'waiting' || current.takenOverAt === null) {
      throw new AgentQueueError('not_attachable', `${label} ended ${current.state} before its attempt could be stopped; nothing was taken over`);
    } else if (o.now() >= until) {
      throw new AgentQueueError(
        'not_attachable',
        `${label} is still running: its dispatcher has not stopped it within ${Math.round(o.waitMs / 1000)}s (is it running?). The takeover stays requested; run agentq attach ${task.id} again once it is blocked`,
      );
    } else {
      await new Promise((r) => setTimeout(r, o.pollMs ?? 200));
      current = await findTask(store, task.id);
    }
  }
}

/** Refuses a task whose latest attempt ran on another host, or (while its dispatcher is registered) from another checkout here. */
async function refuseElsewhere(store: Store, task: Task, host: string, root: string | null): Promise<void> {
  const last = (await store.listAttempts(task.id)).at(-1);
  if (!last) return;
  const label = `#${task.id} ${task.name}`;
  if (last.host !== null && last.host !== host) {
    throw new AgentQueueError('not_attachable', `${label} ran on host ${last.host}: take it over there (its workspace and session are on that machine)`);
  }
  const worker = (await store.listWorkers()).find((w) => w.id === last.workerId);
  if (root !== null && worker?.root && realpathOr(worker.root) !== realpathOr(root)) {
    throw new AgentQueueError('not_attachable', `${label} runs from the checkout ${worker.root}: take it over there (agentq --project ${worker.root} attach ${task.id})`);
  }
}

function realpathOr(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/**
 * Hands a task taken over by hand back to the agents ({@link Store.release}): queued again;
 * its next attempt resumes the agent's session with `note` as the prompt (default
 * {@link DEFAULT_RELEASE_NOTE}), or, for agents that cannot resume, gets its prompt with the note.
 * @param ref task id or name
 * @throws UsageError `--note: …` for a blank note; NotFoundError for an unknown task;
 *   AgentQueueError `not_taken_over` when it is not taken over
 */
export async function releaseTask(store: Store, ref: string | number, note: string | undefined, now: number): Promise<Task> {
  if (note !== undefined && note.trim() === '') throw new UsageError('--note: the note is empty (leave --note out for the default note)');
  const task = await findTask(store, ref);
  return store.release(task.id, note ?? DEFAULT_RELEASE_NOTE, now);
}
