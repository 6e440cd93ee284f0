/** The board: the newest tasks as columns by state, kept live by the event stream. */
import { useEffect, useState } from 'preact/hooks';
import type { Task } from '../api.ts';
import { fmtDuration, fmtRelative, fmtTime, fmtUsd } from '../format.ts';
import { BOARD_LIMIT, useLive } from '../live.ts';
import { TERMINAL_STATES } from '../../../src/core/types.ts';

const PRIORITY_RANK: Record<string, number> = { critical: 0, high: 1, default: 2, low: 3 };

interface Column {
  key: string;
  title: string;
  states: readonly string[];
  order: (a: Task, b: Task) => number;
}

const byFinishDesc = (a: Task, b: Task): number => (b.finishedAt ?? b.createdAt) - (a.finishedAt ?? a.createdAt) || b.id - a.id;

const COLUMNS: Column[] = [
  { key: 'queued', title: 'Queued', states: ['queued'], order: (a, b) => (PRIORITY_RANK[a.priority] ?? 9) - (PRIORITY_RANK[b.priority] ?? 9) || a.id - b.id },
  { key: 'running', title: 'Running', states: ['running'], order: (a, b) => (a.startedAt ?? 0) - (b.startedAt ?? 0) },
  { key: 'blocked', title: 'Blocked', states: ['blocked'], order: (a, b) => b.id - a.id },
  { key: 'waiting', title: 'Waiting', states: ['waiting'], order: (a, b) => b.id - a.id },
  { key: 'completed', title: 'Completed', states: ['completed'], order: byFinishDesc },
  // Every other end: failed, timed_out, budget_exceeded, cancelled, invalid, duplicate.
  { key: 'ended', title: 'Ended', states: TERMINAL_STATES.filter((s) => s !== 'completed'), order: byFinishDesc },
];

/** Cards shown per column before "N more". */
const COLUMN_CAP = 40;

function TaskCard({ task, progress }: { task: Task; progress: string | undefined }) {
  const now = Date.now();
  const agent = task.runAgent ?? task.agent;
  const model = task.stats?.model ?? task.model;
  let when: string;
  if (task.state === 'running') when = task.startedAt ? `started ${fmtRelative(task.startedAt, now)}` : 'starting';
  else if (task.state === 'queued') when = task.runAfter > now ? `runs ${fmtRelative(task.runAfter, now)}` : `queued ${fmtRelative(task.createdAt, now)}`;
  else if (task.finishedAt) when = `${fmtTime(task.finishedAt)} · ${fmtDuration(task.durationMs)}`;
  else when = fmtTime(task.createdAt);
  return (
    <a class={`card state-${task.state}`} href={`#/tasks/${task.id}`} aria-label={`#${task.id} ${task.title}`}>
      <div class="card-head">
        <span class="card-id">#{task.id}</span>
        <span class="card-title">{task.title}</span>
      </div>
      <div class="card-meta">
        {task.priority !== 'default' && <span class={`pill prio-${task.priority}`}>{task.priority}</span>}
        {TERMINAL_STATES.includes(task.state) && task.state !== 'completed' && <span class={`pill st-${task.state}`}>{task.state.replace('_', ' ')}</span>}
        <span>
          {agent}
          {task.remote ? ` → ${task.remote}` : ''}
          {model ? ` · ${model}` : ''}
        </span>
        {task.stats?.costUsd ? <span>{fmtUsd(task.stats.costUsd)}</span> : null}
      </div>
      <div class="card-when">{when}</div>
      {task.state === 'blocked' && task.question && <div class="card-question">{task.question}</div>}
      {task.state === 'running' && progress && <div class="card-progress">{progress}</div>}
      {task.tags.length > 0 && (
        <div class="card-tags">
          {task.tags.map((t) => (
            <span class="tag">{t}</span>
          ))}
        </div>
      )}
    </a>
  );
}

export function Board() {
  const live = useLive();
  const [filter, setFilter] = useState('');
  // Re-render now and then so "started 3 min ago" stays true between events.
  const [, setTick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => setTick((n) => n + 1), 10_000);
    return () => clearInterval(t);
  }, []);
  const needle = filter.trim().toLowerCase();
  const all = [...live.tasks.values()].filter(
    (t) => !needle || `#${t.id} ${t.name} ${t.title} ${t.agent} ${t.tags.join(' ')}`.toLowerCase().includes(needle),
  );
  return (
    <div class="board-page">
      <div class="toolbar">
        <h1>Board</h1>
        <label class="filter">
          Filter
          <input type="search" value={filter} placeholder="title, name, tag, agent" onInput={(e) => setFilter(e.currentTarget.value)} />
        </label>
        <a class="button primary" href="#/submit">
          New task
        </a>
      </div>
      {live.loadError && (
        <p class="error" role="alert">
          Could not load tasks: {live.loadError}
        </p>
      )}
      {!live.loaded && !live.loadError && <p class="muted">Loading…</p>}
      {live.loaded && live.tasks.size >= BOARD_LIMIT && <p class="muted">Showing the newest {BOARD_LIMIT} tasks.</p>}
      <div class="board">
        {COLUMNS.map((c) => {
          const tasks = all.filter((t) => c.states.includes(t.state)).sort(c.order);
          return (
            <section class={`column col-${c.key}`} aria-labelledby={`col-${c.key}`}>
              <h2 id={`col-${c.key}`}>
                {c.title} <span class="count">{tasks.length}</span>
              </h2>
              <div class="cards">
                {tasks.slice(0, COLUMN_CAP).map((t) => (
                  <TaskCard key={t.id} task={t} progress={live.progress.get(t.id)} />
                ))}
                {tasks.length > COLUMN_CAP && <p class="muted more">{tasks.length - COLUMN_CAP} more</p>}
                {tasks.length === 0 && <p class="muted empty">none</p>}
              </div>
            </section>
          );
        })}
      </div>
    </div>
  );
}
