/**
 * The A2A request handler of `agentq serve`: the SDK's `DefaultRequestHandler` with
 * agentq's store behind its `TaskStore` (an A2A task IS an agentq task: read from the store
 * at every call, so it survives a restart), an `AgentExecutor` that follows the task (it
 * never runs anything: the dispatcher does), and push configs in the store. What agentq
 * does differently is overridden here:
 * - `message/send`, `message/stream`: the message is taken in first (src/a2a/server/message.ts:
 *   validated, a task created or a question answered, idempotent by messageId), then the
 *   SDK follows the task (blocking send: until it ends or asks; stream: every change).
 *   A non-blocking send answers with the task as it is.
 * - `tasks/cancel`: `agentq cancel` (ops/task-ops.ts); for a running task it waits (at most
 *   lease + kill_grace + 5 s) until its dispatcher has stopped the agent.
 * - `tasks/resubscribe`: follows the task from the store and the dispatcher's events (also
 *   after a restart, and for tasks not created over A2A).
 * - params are checked first, so a malformed one is -32602 naming its field.
 */
import type {
  AgentCard,
  DeleteTaskPushNotificationConfigParams,
  GetTaskPushNotificationConfigParams,
  ListTaskPushNotificationConfigParams,
  Message,
  MessageSendParams,
  Task as A2aTask,
  TaskIdParams,
  TaskPushNotificationConfig,
  TaskQueryParams,
} from '@a2a-js/sdk';
import {
  A2AError,
  DefaultRequestHandler,
  ServerCallContext,
  type AgentExecutionEvent,
  type AgentExecutor,
  type ExecutionEventBus,
  type RequestContext,
  type TaskStore,
} from '@a2a-js/sdk/server';
import type { Config, ProjectPaths } from '../../config/config.ts';
import { isTerminal, type Task } from '../../core/types.ts';
import type { DispatcherEvents } from '../../events/events.ts';
import { cancelTask } from '../../ops/task-ops.ts';
import type { Store } from '../../store/store.ts';
import { invalidParams, taskNotFound } from './errors.ts';
import { followTask, waitForTask, type FollowDeps, type StreamEvent } from './follow.ts';
import { takeMessage } from './message.ts';
import { AgentqPushStore, NO_SENDER } from './push.ts';
import { isFinal, taskIdOf, toA2aTask } from './task-view.ts';

/** What the handler works with. */
export interface A2aHandlerDeps {
  store: Store;
  config: Config;
  paths: ProjectPaths;
  /** The dispatcher's events (followed, and told of tasks created, answered, cancelled). */
  events: DispatcherEvents;
  /** Called after a task was created or queued again, so the dispatcher claims it now. */
  wake: () => void;
  /** Called when push notifications may be due (a config saved, a task changed). */
  kickPushes: () => void;
  now?: () => number;
}

/** A call's context with the signal that ends what it follows (the client went away, the server closes). */
export class AgentqCallContext extends ServerCallContext {
  constructor(readonly signal: AbortSignal) {
    super();
  }
}

/** The signal of a call's context; a never-aborting one for other contexts. */
function signalOf(context: ServerCallContext | undefined): AbortSignal {
  return context instanceof AgentqCallContext ? context.signal : new AbortController().signal;
}

/** `params.id` (or another id field) as an agentq task id. @throws A2AError -32602 when missing, -32001 when it names no task */
function idParam(params: unknown, field: 'id' | 'taskId' = 'id'): number {
  const raw = (params as Record<string, unknown> | null)?.[field];
  if (raw === undefined) throw invalidParams(field, 'required');
  if (typeof raw !== 'string') throw invalidParams(field, `${JSON.stringify(raw)} is not a task id (a string)`);
  const id = taskIdOf(raw);
  if (id === null) throw taskNotFound(raw);
  return id;
}

/**
 * The SDK's `TaskStore` over agentq's store. `load` builds the A2A task from the agentq task
 * every time (with the history agentq can tell); `save` keeps nothing, since the A2A task is
 * derived: its state changes only through agentq (intake, the dispatcher, cancel, answer).
 */
export class AgentqTaskStore implements TaskStore {
  constructor(private readonly store: Store) {}

  async load(taskId: string): Promise<A2aTask | undefined> {
    const id = taskIdOf(taskId);
    const task = id === null ? null : await this.store.getTask(id);
    return task ? toA2aTask(task, { withHistory: true }) : undefined;
  }

  async save(): Promise<void> {}
}

/** The SDK's `AgentExecutor`: publishes the events of the task it is given (`followTask`) until its stream ends. */
export class AgentqExecutor implements AgentExecutor {
  constructor(
    private readonly deps: FollowDeps,
    private readonly onError: (err: Error) => void,
  ) {}

  execute = async (context: RequestContext, bus: ExecutionEventBus): Promise<void> => {
    try {
      const id = taskIdOf(context.taskId);
      if (id !== null) for await (const e of followTask(this.deps, id, signalOf(context.context))) bus.publish(e as AgentExecutionEvent);
    } catch (err) {
      this.onError(err as Error);
    } finally {
      bus.finished();
    }
  };

  /** Not used: `tasks/cancel` is {@link AgentqRequestHandler.cancelTask}. */
  cancelTask = async (): Promise<void> => {};
}

/** `params` with the message bound to `taskId` and no push config (already saved by the intake). */
function boundTo(params: MessageSendParams, task: Task): MessageSendParams {
  const { pushNotificationConfig: _saved, ...configuration } = params.configuration ?? {};
  return { ...params, configuration, message: { ...params.message, taskId: String(task.id) } };
}

/** Whether the SDK refused a task it found ended (it ended between our intake and its load). */
const endedMeanwhile = (err: unknown) => err instanceof A2AError && err.code === -32600 && /terminal state/.test(err.message);

/** The handler (see the module doc). */
export class AgentqRequestHandler extends DefaultRequestHandler {
  private readonly follow: FollowDeps;
  private readonly now: () => number;

  constructor(
    private readonly d: A2aHandlerDeps,
    card: AgentCard,
  ) {
    const follow: FollowDeps = { store: d.store, events: d.events, pollMs: d.config.poll_interval };
    const now = d.now ?? Date.now;
    super(
      card,
      new AgentqTaskStore(d.store),
      new AgentqExecutor(follow, (err) => d.events.emit('error', err)),
      undefined,
      new AgentqPushStore(d.store, d.kickPushes, now),
      NO_SENDER,
    );
    this.follow = follow;
    this.now = now;
  }

  private async current(task: Task): Promise<A2aTask> {
    return toA2aTask((await this.d.store.getTask(task.id)) ?? task);
  }

  private take(params: MessageSendParams): Promise<Task> {
    return takeMessage(params, { store: this.d.store, config: this.d.config, paths: this.d.paths, events: this.d.events, wake: this.d.wake, onPushSaved: this.d.kickPushes, now: this.now });
  }

  override async sendMessage(params: MessageSendParams, context?: ServerCallContext): Promise<Message | A2aTask> {
    const task = await this.take(params);
    if (params.configuration?.blocking === false || isFinal(task.state)) return this.current(task);
    try {
      return await super.sendMessage(boundTo(params, task), context);
    } catch (err) {
      if (endedMeanwhile(err)) return this.current(task);
      throw err;
    }
  }

  override async *sendMessageStream(params: MessageSendParams, context?: ServerCallContext): AsyncGenerator<Message | StreamEvent, void, undefined> {
    const task = await this.take(params);
    if (isFinal(task.state)) {
      yield await this.current(task);
      return;
    }
    let sent = false;
    try {
      for await (const e of super.sendMessageStream(boundTo(params, task), context)) {
        sent = true;
        yield e;
      }
    } catch (err) {
      if (sent || !endedMeanwhile(err)) throw err;
      yield await this.current(task);
    }
  }

  override async getTask(params: TaskQueryParams, context?: ServerCallContext): Promise<A2aTask> {
    idParam(params);
    const h = (params as { historyLength?: unknown }).historyLength;
    if (h !== undefined && (typeof h !== 'number' || !Number.isInteger(h) || h < 0)) throw invalidParams('historyLength', `${JSON.stringify(h)} is not a whole number ≥ 0`);
    return super.getTask(params, context);
  }

  override async cancelTask(params: TaskIdParams): Promise<A2aTask> {
    const id = idParam(params);
    const before = await this.d.store.getTask(id);
    if (!before) throw taskNotFound(params.id);
    if (isTerminal(before.state)) throw A2AError.taskNotCancelable(params.id);
    const { task, outcome } = await cancelTask(this.d.store, this.d.paths, id, this.now());
    if (outcome === 'cancelled') this.d.events.emit('task.finished', task);
    if (outcome === 'ended') throw A2AError.taskNotCancelable(params.id);
    let latest: Task | null = task;
    if (outcome === 'requested') {
      // Its dispatcher sees the request at its next heartbeat and stops the agent.
      const limit = this.d.config.lease + this.d.config.kill_grace + 5000;
      latest = await waitForTask(this.follow, id, (t) => isTerminal(t.state), limit);
    }
    if (latest && isTerminal(latest.state) && latest.state !== 'cancelled') throw A2AError.taskNotCancelable(params.id);
    return toA2aTask(latest ?? task);
  }

  override async *resubscribe(params: TaskIdParams, context?: ServerCallContext): AsyncGenerator<StreamEvent, void, undefined> {
    const id = idParam(params);
    if (!(await this.d.store.getTask(id))) throw taskNotFound(params.id);
    yield* followTask(this.follow, id, signalOf(context));
  }

  override async setTaskPushNotificationConfig(params: TaskPushNotificationConfig, context?: ServerCallContext): Promise<TaskPushNotificationConfig> {
    idParam(params, 'taskId');
    const config = (params as { pushNotificationConfig?: unknown }).pushNotificationConfig;
    if (typeof config !== 'object' || config === null) throw invalidParams('pushNotificationConfig', config === undefined ? 'required' : 'not an object with a url');
    return super.setTaskPushNotificationConfig(params, context);
  }

  override async getTaskPushNotificationConfig(params: TaskIdParams | GetTaskPushNotificationConfigParams, context?: ServerCallContext): Promise<TaskPushNotificationConfig> {
    const id = idParam(params);
    if (!(await this.d.store.getTask(id))) throw taskNotFound(params.id);
    const wanted = (params as GetTaskPushNotificationConfigParams).pushNotificationConfigId ?? params.id;
    if (typeof wanted !== 'string') throw invalidParams('pushNotificationConfigId', `${JSON.stringify(wanted)} is not a string`);
    if (!(await this.d.store.listA2aPushConfigs(id)).some((c) => c.id === wanted)) {
      throw invalidParams('pushNotificationConfigId', `task ${id} has no push notification config ${JSON.stringify(wanted)}`);
    }
    return super.getTaskPushNotificationConfig(params, context);
  }

  override async listTaskPushNotificationConfigs(params: ListTaskPushNotificationConfigParams, context?: ServerCallContext): Promise<TaskPushNotificationConfig[]> {
    idParam(params);
    return super.listTaskPushNotificationConfigs(params, context);
  }

  override async deleteTaskPushNotificationConfig(params: DeleteTaskPushNotificationConfigParams, context?: ServerCallContext): Promise<void> {
    idParam(params);
    return super.deleteTaskPushNotificationConfig(params, context);
  }
}
