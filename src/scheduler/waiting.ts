/**
 * Why queued tasks are not running: when each can run next as far as time decides it
 * (`run_at`, retry backoff, an agent's pause, its dependencies' own waits), or that it cannot
 * without someone acting (a dependency waits for an answer, or this dispatcher lacks a label
 * of its `runs_on`). `agentq run --once` uses it to
 * state a long wait ("waiting until …") and to stop instead of waiting past `--max-wait`.
 */
import { AUTO_AGENT, type AgentPause, type Task } from '../core/types.ts';

/** One queued task's wait. */
export interface QueuedWait {
  task: Task;
  /** Earliest time it can run, epoch ms (≤ now: ready); null: not until someone acts. */
  until: number | null;
  /**
   * What it waits for, e.g. `run_at 2031-01-01T00:00:00.000Z`, `dependency "b" is blocked on a
   * question`, `runs_on [gpu]: no dispatcher here has every label`.
   */
  reason: string;
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * The wait of every queued task (pure).
 * @param queued the queued tasks
 * @param byId tasks their dependencies name that are not queued (any state), by id; a
 *   dependency found in neither is taken as ended (the dependent is failed by the settler)
 * @param pauses the pauses in force, by account
 * @param now epoch ms
 * @param labels the labels of the dispatcher asking: a task whose `runs_on` names one it lacks
 *   cannot run here (`until` null), whatever else it waits for
 * @param accounts the account of each agent here (`accountMap`); agents not listed are their own
 */
export function queuedWaits(
  queued: Task[],
  byId: ReadonlyMap<number, Task>,
  pauses: AgentPause[],
  now: number,
  labels: readonly string[] = [],
  accounts: Readonly<Record<string, string>> = {},
): QueuedWait[] {
  const held = new Set(labels);
  const queuedById = new Map(queued.map((t) => [t.id, t]));
  const pauseOf = new Map(pauses.filter((p) => p.until > now).map((p) => [p.agent, p]));
  const memo = new Map<number, Omit<QueuedWait, 'task'>>();
  const waitOf = (task: Task): Omit<QueuedWait, 'task'> => {
    const known = memo.get(task.id);
    if (known) return known;
    memo.set(task.id, { until: now, reason: 'ready' }); // dependencies are acyclic; this only guards
    let wait: Omit<QueuedWait, 'task'> = { until: now, reason: 'ready' };
    const later = (until: number | null, reason: string) => {
      if (wait.until === null) return;
      if (until === null || until > wait.until) wait = { until, reason };
    };
    if (task.runsOn.some((l) => !held.has(l))) later(null, `runs_on [${task.runsOn.join(', ')}]: no dispatcher here has every label`);
    if (task.runAfter > now) later(task.runAfter, `${task.claims === 0 ? 'run_at' : 'retry backoff until'} ${iso(task.runAfter)}`);
    const account = accounts[task.agent] ?? task.agent;
    const pause = task.agent === AUTO_AGENT ? undefined : pauseOf.get(account);
    const who = account === task.agent ? task.agent : `${task.agent} (account ${account})`;
    if (pause) later(pause.until, `${who} is paused until ${iso(pause.until)}: ${pause.reason}`);
    for (const id of task.dependsOnIds) {
      const dep = queuedById.get(id) ?? byId.get(id);
      if (!dep || dep.state === 'completed') continue;
      if (dep.state === 'queued') {
        const d = waitOf(dep);
        later(d.until, `dependency "${dep.name}": ${d.reason}`);
      } else if (dep.state === 'blocked') {
        later(null, `dependency "${dep.name}" is blocked on a question (agentq answer ${dep.id} "…")`);
      }
    }
    memo.set(task.id, wait);
    return wait;
  };
  return queued.map((task) => ({ task, ...waitOf(task) }));
}
