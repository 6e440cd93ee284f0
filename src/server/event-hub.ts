/**
 * The live events of GET /v1/events: every state change the dispatcher reports (its typed
 * events, src/events/events.ts), numbered and kept in a ring buffer of the last 10,000, so a
 * client that reconnects with `Last-Event-ID` gets what it missed, or `reset` when its id
 * has left the buffer (or comes from an earlier server process).
 */
import type { AgentEvent } from '../agents/runner.ts';
import type { Task } from '../core/types.ts';
import type { DispatcherEventMap, DispatcherEvents } from '../events/events.ts';
import type { Store } from '../store/store.ts';

/** The event names of the API, with their `data`. */
export interface ApiEventMap {
  'task.created': { task: Task };
  'task.started': { task: Task; attemptId: string; agent: string; model: string | null };
  'task.progress': { taskId: number; attemptId: string; text: string };
  'task.requeued': { task: Task; reason: string };
  'task.blocked': { task: Task };
  'task.waiting': { task: Task };
  'task.finished': { task: Task };
  'agent.paused': { agent: string; until: number; reason: string };
  'agent.resumed': { agent: string };
}
export type ApiEventName = keyof ApiEventMap;

/** One numbered event, its data already serialized. */
export interface HubEvent {
  id: number;
  event: ApiEventName;
  /** `data` as JSON text. */
  data: string;
}

/** Default number of events kept for `Last-Event-ID` replay. */
export const EVENT_BUFFER = 10_000;

/** What a reconnecting client is sent first. */
export type Replay = { reset: false; events: HubEvent[] } | { reset: true; events: [] };

/**
 * Numbers and buffers events and fans them out to subscribers.
 * Ids are integers that increase by one per event; the first is `firstId` (default: the
 * start time in ms × 1000, so the ids of a later server process are larger than those of
 * an earlier one, and an old client's id is recognised as unknown: `reset`).
 */
export class EventHub {
  private readonly ring: Array<HubEvent | undefined>;
  private start = 0;
  private size = 0;
  private next: number;
  private readonly subscribers = new Set<(e: HubEvent) => void>();

  constructor(o: { capacity?: number; firstId?: number } = {}) {
    this.ring = new Array<HubEvent | undefined>(o.capacity ?? EVENT_BUFFER);
    this.next = o.firstId ?? Date.now() * 1000;
  }

  /** Id of the newest event; `firstId - 1` before the first. */
  get lastId(): number {
    return this.next - 1;
  }

  /** Numbers, buffers and sends an event to every subscriber; returns it. */
  publish<K extends ApiEventName>(event: K, data: ApiEventMap[K]): HubEvent {
    const e: HubEvent = { id: this.next++, event, data: JSON.stringify(data) };
    const cap = this.ring.length;
    if (this.size < cap) this.ring[(this.start + this.size++) % cap] = e;
    else {
      this.ring[this.start] = e;
      this.start = (this.start + 1) % cap;
    }
    for (const fn of this.subscribers) fn(e);
    return e;
  }

  /** Calls `fn` for every later event; returns the unsubscribe function. */
  subscribe(fn: (e: HubEvent) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /**
   * The events after `lastId` still buffered; `reset` when events after it have left the
   * buffer, or the id was never given by this hub (older process, or from the future).
   */
  since(lastId: number): Replay {
    const oldest = this.size ? this.ring[this.start]!.id : this.next;
    if (!Number.isInteger(lastId) || lastId < oldest - 1 || lastId > this.lastId) return { reset: true, events: [] };
    const events: HubEvent[] = [];
    const skip = lastId - (oldest - 1);
    for (let i = skip; i < this.size; i++) events.push(this.ring[(this.start + i) % this.ring.length]!);
    return { reset: false, events };
  }
}

/**
 * Publishes the dispatcher's events under the API's names: `task.recovered` becomes
 * `task.requeued` (reason: recovered), `task.progress` carries only the agent's progress
 * text. `agent.resumed` is published when a pause ends: a timer at its `until` looks in the
 * store, and waits on when the pause was extended. Returns the function that detaches it.
 */
export function bridgeDispatcherEvents(events: DispatcherEvents, hub: EventHub, store: Store, now: () => number = Date.now): () => void {
  const timers = new Map<string, NodeJS.Timeout>();
  let closed = false;
  const watchPause = (agent: string, until: number) => {
    clearTimeout(timers.get(agent));
    const t = setTimeout(
      () => {
        timers.delete(agent);
        store
          .listPauses(now())
          .then((pauses) => {
            if (closed) return;
            const still = pauses.find((p) => p.agent === agent);
            if (still) watchPause(agent, still.until);
            else hub.publish('agent.resumed', { agent });
          })
          .catch(() => {});
      },
      Math.max(0, until - now()) + 10,
    );
    t.unref();
    timers.set(agent, t);
  };
  const on: { [K in keyof DispatcherEventMap]?: (...args: DispatcherEventMap[K]) => void } = {
    'task.created': (task) => hub.publish('task.created', { task }),
    'task.started': (claim, model) => hub.publish('task.started', { task: claim.task, attemptId: claim.attempt.id, agent: claim.task.agent, model }),
    'task.progress': (claim, e: AgentEvent) => {
      if (e.type === 'progress') hub.publish('task.progress', { taskId: claim.task.id, attemptId: claim.attempt.id, text: e.text });
    },
    'task.requeued': (task, reason) => hub.publish('task.requeued', { task, reason }),
    'task.recovered': (task) => hub.publish('task.requeued', { task, reason: 'recovered: its dispatcher stopped while it ran' }),
    'task.blocked': (task) => hub.publish('task.blocked', { task }),
    'task.waiting': (task) => hub.publish('task.waiting', { task }),
    'task.finished': (task) => hub.publish('task.finished', { task }),
    'agent.paused': (pause) => {
      hub.publish('agent.paused', { agent: pause.agent, until: pause.until, reason: pause.reason });
      watchPause(pause.agent, pause.until);
    },
  };
  for (const [name, fn] of Object.entries(on)) events.on(name as never, fn as never);
  // Pauses already in force (set before this process started): announce their end too.
  store
    .listPauses(now())
    .then((pauses) => {
      if (!closed) for (const p of pauses) if (!timers.has(p.agent)) watchPause(p.agent, p.until);
    })
    .catch(() => {});
  return () => {
    closed = true;
    for (const [name, fn] of Object.entries(on)) events.off(name as never, fn as never);
    for (const t of timers.values()) clearTimeout(t);
    timers.clear();
  };
}
