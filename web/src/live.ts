/**
 * The live view of the queue: the newest tasks (GET /v1/tasks) kept current by the event
 * stream (GET /v1/events). Events that arrive while the list is being fetched are applied
 * again on top of the fetched list, in order, so nothing between the two is lost.
 */
import { useEffect, useState } from 'preact/hooks';
import { apiJson, type Task } from './api.ts';
import { openEventStream, type ConnectionState } from './sse.ts';

/** How many of the newest tasks the board loads (the API's maximum page). */
export const BOARD_LIMIT = 500;

interface Snapshot {
  tasks: Map<number, Task>;
  /** The last progress line of each task's running attempt. */
  progress: Map<number, string>;
  /** Bumped on every event that carries a task (detail views reload on a change). */
  taskVersion: Map<number, number>;
  /** Bumped on every event that changes agent status or spend. */
  agentsVersion: number;
  connection: ConnectionState;
  loaded: boolean;
  loadError: string | null;
}

type Listener = () => void;

class LiveQueue {
  readonly s: Snapshot = {
    tasks: new Map(),
    progress: new Map(),
    taskVersion: new Map(),
    agentsVersion: 0,
    connection: 'connecting',
    loaded: false,
    loadError: null,
  };
  version = 0;
  private listeners = new Set<Listener>();
  private buffer: Array<[string, unknown]> | null = null;
  private started = false;
  private fetching: Promise<void> | null = null;
  private fallback: ReturnType<typeof setTimeout> | undefined;

  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    this.start();
    return () => this.listeners.delete(l);
  }

  private changed(): void {
    this.version++;
    for (const l of this.listeners) l();
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    openEventStream({
      url: '/v1/events',
      onState: (c) => {
        this.s.connection = c;
        this.changed();
      },
      onOpen: (resumed) => {
        clearTimeout(this.fallback);
        if (!resumed || !this.s.loaded) void this.refetch();
      },
      onEvent: (name, data) => {
        if (name === 'reset') {
          void this.refetch();
          return;
        }
        this.buffer?.push([name, data]);
        this.apply(name, data);
        this.changed();
      },
    });
    // Should the stream's headers be slow to come, load the list anyway.
    this.fallback = setTimeout(() => void this.refetch(), 2000);
  }

  /** Loads the newest tasks, then replays the events that arrived meanwhile. */
  refetch(): Promise<void> {
    if (this.fetching) return this.fetching;
    this.buffer = [];
    this.fetching = (async () => {
      try {
        const body = await apiJson<{ tasks: Task[] }>(`/v1/tasks?limit=${BOARD_LIMIT}`);
        const tasks = new Map<number, Task>();
        for (const t of body.tasks) tasks.set(t.id, t);
        this.s.tasks = tasks;
        for (const [name, data] of this.buffer ?? []) this.apply(name, data);
        this.s.loaded = true;
        this.s.loadError = null;
        this.s.agentsVersion++;
        for (const id of tasks.keys()) this.bump(id);
      } catch (e) {
        this.s.loadError = (e as Error).message;
      } finally {
        this.buffer = null;
        this.fetching = null;
        this.changed();
      }
    })();
    return this.fetching;
  }

  private bump(id: number): void {
    this.s.taskVersion.set(id, (this.s.taskVersion.get(id) ?? 0) + 1);
  }

  /** Applies one event of the contract (task.*, agent.*) to the snapshot. */
  private apply(name: string, data: unknown): void {
    const d = (data ?? {}) as { task?: Task; taskId?: number; text?: string };
    if (d.task && typeof d.task.id === 'number') {
      this.s.tasks.set(d.task.id, d.task);
      this.bump(d.task.id);
      if (name === 'task.started' || name === 'task.finished' || name === 'task.requeued' || name === 'task.blocked') this.s.progress.delete(d.task.id);
    }
    if (name === 'task.progress' && typeof d.taskId === 'number') {
      // Only the board's card line: the task itself did not change (no detail reload).
      if (typeof d.text === 'string' && d.text.trim() !== '') this.s.progress.set(d.taskId, d.text.trim().split('\n').pop()!.slice(0, 200));
    }
    if (name !== 'task.progress') this.s.agentsVersion++;
  }

  /**
   * Shows a task this client just created before its `task.created` event arrives. A task
   * already known is left alone: the API's answer may be older than an event that overtook
   * it (the dispatcher can start a task before the POST's answer is read).
   */
  putNew(task: Task): void {
    if (this.s.tasks.has(task.id)) return;
    this.s.tasks.set(task.id, task);
    this.bump(task.id);
    this.changed();
  }
}

export const live = new LiveQueue();

/** Re-renders on every change of the live queue; returns its snapshot. */
export function useLive(): Snapshot {
  const [, setV] = useState(0);
  useEffect(() => live.subscribe(() => setV(live.version)), []);
  return live.s;
}
