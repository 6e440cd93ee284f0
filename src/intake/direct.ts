/**
 * Direct intake (POST /v1/tasks, the MCP tool `submit_task`): one validated TaskSpec → a `NewTask` for the store,
 * without the inbox. Dependencies and the parent resolve to the newest stored task of that
 * name, `dedup_key` and `max_queue_depth` apply as in the inbox (src/intake/inbox.ts),
 * with the same messages; what the inbox would record as an `invalid` task is refused.
 */
import type { Config } from '../config/config.ts';
import { AgentQueueError, InvalidTaskError } from '../core/errors.ts';
import type { Task, TaskOrigin, TaskSpec } from '../core/types.ts';
import type { NewTask, Store } from '../store/store.ts';
import { activeHolder, duplicateReason, subtaskOrigin, unknownDependencyReason, unknownParentReason } from './inbox.ts';

/** The queue holds `max_queue_depth` queued and running tasks: try again later (HTTP 429). */
export class QueueFullError extends AgentQueueError {
  constructor(maxDepth: number) {
    super('queue_full', `the queue is full (max_queue_depth ${maxDepth} queued and running tasks): try again later`);
  }
}

/**
 * Resolves a spec's `depends_on` and `parent` names to stored tasks and checks its
 * `dedup_key` and the queue depth. `here` is the checkout that takes the request in (the
 * `agentq serve` process's, `projectOrigin`): the task's origin, where its result file is
 * written; a subtask's is its parent's ({@link subtaskOrigin}).
 * @param known.parent the parent when the caller knows it (the task whose agent runs
 *   `agentq mcp`): taken as is instead of resolving `spec.parent` by name, since names repeat;
 *   the subtask's origin is that parent's
 * @returns the task to enqueue; with `invalidReason` and `terminalState: 'duplicate'` when a
 *   queued or running task holds its `dedup_key` (it is recorded, ended, as in the inbox)
 * @throws InvalidTaskError (`depends_on`, `parent`) for a name no stored task has;
 *   QueueFullError past `max_queue_depth`
 */
export async function resolveDirect(
  store: Store,
  config: Pick<Config, 'max_queue_depth'>,
  spec: TaskSpec,
  here: TaskOrigin,
  known: { parent?: Pick<Task, 'id' | 'origin'> } = {},
): Promise<NewTask> {
  const dependsOnIds: number[] = [];
  for (const dep of spec.dependsOn) {
    const found = await store.findByName(dep);
    if (!found) throw new InvalidTaskError('depends_on', unknownDependencyReason(dep));
    dependsOnIds.push(found.id);
  }
  let parentId: number | null = known.parent?.id ?? null;
  let origin = known.parent ? subtaskOrigin(known.parent.origin, here) : here;
  if (spec.parent !== null && parentId === null) {
    const found = await store.findByName(spec.parent);
    if (!found) throw new InvalidTaskError('parent', unknownParentReason(spec.parent));
    parentId = found.id;
    origin = subtaskOrigin(found.origin, here);
  }
  if (spec.dedupKey !== null) {
    const active = await store.findActiveByDedupKey(spec.dedupKey);
    if (active) return { spec, dependsOnIds: [], parentId: null, invalidReason: duplicateReason(spec.dedupKey, activeHolder(active)), terminalState: 'duplicate', origin: here };
  }
  if (config.max_queue_depth !== undefined) {
    const counts = await store.countByState();
    if (counts.queued + counts.running >= config.max_queue_depth) throw new QueueFullError(config.max_queue_depth);
  }
  return { spec, dependsOnIds, parentId, origin };
}
