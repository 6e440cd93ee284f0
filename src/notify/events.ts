/**
 * What a notification (`notify:` in config) can be about, and the event recorded for it.
 * An event is a snapshot taken when it is recorded (a store row per event and target, see
 * `NotificationStore`); it holds no secret: a blocked task's answer link is made when the
 * notification is sent.
 */
import type { AgentPause, Task } from '../core/types.ts';
import { callbackPayload, type CallbackPayload } from '../server/callbacks.ts';

/** The events a `notify:` target may list in `on:`. */
export const NOTIFY_EVENTS = ['completed', 'failed', 'blocked', 'budget_exceeded', 'agent_paused', 'queue_empty'] as const;
export type NotifyEventName = (typeof NOTIFY_EVENTS)[number];

/** One thing that happened, as recorded (JSON in the notification row) and sent. Times epoch ms. */
export interface NotifyEvent {
  event: NotifyEventName;
  /** When it happened (a task's end, the block, the pause's recording, the sweep that saw the queue empty). */
  at: number;
  /** The project's directory name (which queue this is, for people with several). */
  project: string;
  /** The task, as a `callback_url` body; null for `agent_paused` and `queue_empty`. */
  task: CallbackPayload | null;
  /** The task's title (null without a task). */
  title: string | null;
  /** How many times the task had been claimed (binds a blocked task's answer link to this question). */
  claims: number | null;
  /** `blocked`: the agent's question; else null. */
  question: string | null;
  /** `agent_paused`: the paused account (`agent`), until when, and why; else null. */
  pause: AgentPause | null;
}

/**
 * The event a task in this state is notified as: `completed`; `failed` for `failed`,
 * `timed_out` and `invalid` (a task file refused at intake); `budget_exceeded`; `blocked`.
 * Null for the rest: `cancelled` (a person's own doing), `duplicate`, and states that are not an end.
 */
export function taskEventName(state: Task['state']): NotifyEventName | null {
  switch (state) {
    case 'completed':
    case 'budget_exceeded':
    case 'blocked':
      return state;
    case 'failed':
    case 'timed_out':
    case 'invalid':
      return 'failed';
    default:
      return null;
  }
}

/**
 * The event of a task that ended or is blocked (see {@link taskEventName}) with the key that
 * makes it one notification however often it is recorded: for an end, the task id, its
 * claim count and its end time; for a block, the task id and claim count (one question per
 * attempt). Null when the task's state is not notified, and for a task taken over by hand
 * (blocked without a question until it is released). `now` (epoch ms) is the event's
 * time when the task has no end time (a block).
 */
export function taskEvent(task: Task, project: string, now: number): { key: string; event: NotifyEvent } | null {
  const name = taskEventName(task.state);
  if (name === null) return null;
  const blocked = name === 'blocked';
  // Taken over by hand (`agentq attach`): blocked without a question, a person's own doing.
  if (blocked && task.takenOverAt !== null) return null;
  const at = blocked ? now : (task.finishedAt ?? now);
  const key = blocked ? `blocked:task ${task.id}:claim ${task.claims}` : `${name}:task ${task.id}:claim ${task.claims}:at ${task.finishedAt ?? 0}`;
  return {
    key,
    event: { event: name, at, project, task: callbackPayload(task), title: task.title, claims: task.claims, question: blocked ? task.question : null, pause: null },
  };
}

/** The `agent_paused` event of a pause in force; one per account and end time. */
export function pauseEvent(pause: AgentPause, project: string, now: number): { key: string; event: NotifyEvent } {
  return {
    key: `agent_paused:${pause.agent}:until ${pause.until}`,
    event: { event: 'agent_paused', at: now, project, task: null, title: null, claims: null, question: null, pause },
  };
}

/** The `queue_empty` event of one empty spell, named by the store's queue mark (`Store.queueMark`). */
export function queueEmptyEvent(mark: string, project: string, now: number): { key: string; event: NotifyEvent } {
  return {
    key: `queue_empty:${mark}`,
    event: { event: 'queue_empty', at: now, project, task: null, title: null, claims: null, question: null, pause: null },
  };
}
