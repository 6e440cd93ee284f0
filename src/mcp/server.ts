/**
 * `agentq mcp`: agentq as an MCP server (stdio) for agents and other MCP clients, with the
 * tools `submit_task`, `list_tasks`, `get_task`, `answer_task`, `cancel_task`,
 * `delegate_task` (a task with `agent: a2a` for a remote A2A agent) and
 * `check_delegation_status` (a task's rows of the delegation ledger) on one project's store. Each tool validates its arguments by a zod schema with the messages of the
 * CLI and task files (`priority: "urgent" is not one of …`); a refusal or a failed action is
 * a tool error (`isError: true`) whose text is the message the CLI prints. Tasks are created
 * as POST /v1/tasks creates them (src/intake/direct.ts, `Store.enqueueRequest`); cancel and
 * answer go through src/ops/task-ops.ts.
 *
 * Run by the agent of a task T (the dispatcher's `AGENTQ_TASK_ID` and `AGENTQ_ATTEMPT_ID`
 * name T and one of its attempts in this store), every task it submits is a subtask of T, at most
 * `max_subtasks` of them (counted in the creating transaction).
 *
 * stdout carries the protocol only; every log line goes to stderr.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import { z } from 'zod';
import { projectOrigin, unknownRemote, type Config, type ProjectPaths } from '../config/config.ts';
import { validateFields } from '../config/task-file.ts';
import { AgentQueueError, InvalidTaskError } from '../core/errors.ts';
import { A2A_AGENT, TASK_STATES, type Task } from '../core/types.ts';
import { resolveDirect } from '../intake/direct.ts';
import { answerTask, cancelTask, delegationsReport, findTask } from '../ops/task-ops.ts';
import { DELEGATE_INPUT, TASK_INPUT, taskSpecFromInput } from '../server/task-body.ts';
import { isTransientStoreError, type Store } from '../store/store.ts';
import { LIST_LIMIT, MCP_SERVER_INFO, toolDescriptions, type RunningTask } from './quick-answers.ts';

/** What {@link createMcpServer} works on. */
export interface McpContext {
  store: Store;
  paths: ProjectPaths;
  /** `max_subtasks`, `max_queue_depth`, `default_timeout`, `default_retries` are read. */
  config: Config;
  /** The task whose agent runs this server ({@link runningTaskOf}); null: tasks get the parent they name, if any. */
  runningTask: RunningTask | null;
  /** Clock, epoch ms. Default `Date.now`. */
  now?: () => number;
  /** Where log lines go. Default stderr (never stdout: it carries the protocol). */
  log?: (line: string) => void;
}

/** `<value> is not <expected>`, the wording of every refusal (after `field: `). */
const notA = (expected: string) => ({ error: (iss: { input?: unknown }) => `${JSON.stringify(iss.input) ?? String(iss.input)} is not ${expected}` });

/** A task id (a whole number ≥ 1) or name, as the CLI takes it. */
const TASK_REF = z
  .union([z.number().int().min(1), z.string().trim().min(1)], notA('a task id (a whole number) or name'))
  .meta({ description: 'task id, or the newest task of that name' });

const TASK_ONLY = z.strictObject({ task: TASK_REF });
const ANSWER = z.strictObject({
  task: TASK_REF,
  answer: z
    .string(notA('a string'))
    .refine((a) => a.trim() !== '', { error: 'the answer text is empty' })
    .meta({ description: 'the answer to the question the blocked task asks' }),
});
const LIST = z.strictObject({
  state: z
    .enum(TASK_STATES, notA(`one of ${TASK_STATES.join(', ')}`))
    .optional()
    .meta({ description: 'only tasks in this state' }),
  parent: TASK_REF.optional().meta({ description: 'only the subtasks of this task (id or name)' }),
  limit: z
    .number(notA(`a whole number from 1 to ${LIST_LIMIT.max}`))
    .int(notA(`a whole number from 1 to ${LIST_LIMIT.max}`))
    .min(1, notA(`a whole number from 1 to ${LIST_LIMIT.max}`))
    .max(LIST_LIMIT.max, notA(`a whole number from 1 to ${LIST_LIMIT.max}`))
    .optional()
    .meta({ description: `most tasks returned, newest first (default ${LIST_LIMIT.default})` }),
});

/**
 * A tool's input for `McpServer.registerTool`: listed (tools/list) with the JSON Schema of
 * `schema`, but handed to the tool as sent, so the tool validates it itself by `schema`
 * (`validateFields`): refusals keep the CLI's wording (`field: <value> is not …`) and task
 * fields their raw values for the task-file rules (the SDK would pass zod's output, with
 * durations already turned into ms, and word refusals its own way). The JSON Schema is
 * zod's, for `io: 'input'`, given as the metadata of a pass-through object schema (zod's
 * JSON Schema generator puts an object's metadata over what it generates).
 */
function listedAs(schema: z.ZodObject): z.ZodObject {
  let listed = LISTED.get(schema);
  if (!listed) {
    const { $schema: _dialect, ...jsonSchema } = z.toJSONSchema(schema, { io: 'input', target: 'draft-7' });
    listed = z.looseObject({}).meta(jsonSchema);
    LISTED.set(schema, listed);
  }
  return listed;
}

/**
 * {@link listedAs} per schema, made once per process: the dispatcher's HTTP host
 * (http-host.ts) makes a server per request, and converting the seven tools' schemas took
 * more CPU than the rest of the request.
 */
const LISTED = new WeakMap<z.ZodObject, z.ZodObject>();

/** A task as `list_tasks` shows it: what tells tasks apart, without the prompt and result. */
function taskLine(t: Task) {
  return {
    id: t.id,
    name: t.name,
    title: t.title,
    state: t.state,
    priority: t.priority,
    agent: t.agent,
    remote: t.remote,
    parent: t.parent,
    parentId: t.parentId,
    tags: t.tags,
    question: t.question,
    failedReason: t.failedReason,
    createdAt: new Date(t.createdAt).toISOString(),
    finishedAt: t.finishedAt === null ? null : new Date(t.finishedAt).toISOString(),
  };
}

/**
 * A tool's answer: the text content is `message` (what the CLI would print) and `data` as
 * JSON; the structured content is `{ message, ...data }` (Claude Code hands a model the
 * structured content instead of the text when there is one).
 */
function answer(message: string, data: Record<string, unknown>): CallToolResult {
  return { content: [{ type: 'text', text: `${message}\n${JSON.stringify(data, null, 2)}` }], structuredContent: { message, ...data } };
}

/** A tool error with the message the CLI prints for `err` (without its `agentq: ` prefix). */
function toolError(err: unknown): CallToolResult {
  const text = isTransientStoreError(err)
    ? `store unavailable (${(err as Error).message}): another process holds its write lock, the disk is full, or the database server cannot be reached; try again`
    : err instanceof Error
      ? err.message
      : String(err);
  return { content: [{ type: 'text', text }], isError: true };
}

/**
 * The JSON Schema validator of every server {@link createMcpServer} makes in this process, made
 * at the first: without one the SDK makes an Ajv instance per `McpServer` (3–6 ms each on a
 * loaded machine), and the dispatcher's HTTP host (src/mcp/http-host.ts) makes a server per
 * request, four of them before a Claude Code attempt's first turn.
 */
let sharedValidator: AjvJsonSchemaValidator | null = null;

/**
 * The MCP server of one project's store, its tools registered (not yet connected).
 * @returns an `McpServer`; `connect` it to a transport (see {@link serveMcp})
 */
export function createMcpServer(ctx: McpContext): McpServer {
  const { store, paths, config, runningTask } = ctx;
  const now = ctx.now ?? Date.now;
  const log = ctx.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const server = new McpServer({ ...MCP_SERVER_INFO }, { capabilities: { tools: {} }, jsonSchemaValidator: (sharedValidator ??= new AjvJsonSchemaValidator()) });

  /** Registers a tool whose handler gets its arguments validated by `schema`; every throw is a tool error. */
  const tool = <S extends z.ZodObject>(
    name: string,
    description: string,
    schema: S,
    handler: (args: z.output<S>, raw: Record<string, unknown>) => Promise<CallToolResult>,
  ) =>
    server.registerTool(name, { description, inputSchema: listedAs(schema) }, async (raw: Record<string, unknown>) => {
      try {
        return await handler(validateFields(schema, raw), raw);
      } catch (err) {
        if (!(err instanceof AgentQueueError) && !isTransientStoreError(err)) log(`agentq mcp: ${name}: ${(err as Error)?.stack ?? String(err)}`);
        return toolError(err);
      }
    });

  const text = toolDescriptions(runningTask, config);

  /** Creates the task of `fields` (a tool's arguments) as POST /v1/tasks does; a subtask of the running task, if any. */
  const submit = async (fields: Record<string, unknown>): Promise<CallToolResult> => {
    if (runningTask) {
      const given = fields.parent;
      if (given !== undefined && given !== null && given !== runningTask.name && given !== String(runningTask.id)) {
        throw new InvalidTaskError('parent', `parent: ${JSON.stringify(given)} is not this agent's task ${runningTask.id} "${runningTask.name}" (an agent files subtasks of its own task only)`);
      }
      fields = { ...fields, parent: runningTask.name };
    }
    const spec = taskSpecFromInput(fields, config);
    const newTask = await resolveDirect(store, config, spec, projectOrigin(paths), runningTask ? { parent: runningTask } : {});
    const { task } = await store.enqueueRequest(newTask, { maxSubtasks: config.max_subtasks }, now());
    log(`agentq mcp: created #${task.id} ${task.name} (${task.state})${task.parentId !== null ? `, subtask of #${task.parentId}` : ''}`);
    const what = task.state === 'duplicate' ? `recorded #${task.id} ${task.name} as duplicate: ${task.failedReason}` : `created #${task.id} ${task.name} (${task.state})`;
    const sub = task.parentId !== null ? `, a subtask of #${task.parentId} ${task.parent}` : '';
    const remote = task.agent === A2A_AGENT ? `, delegated to ${task.remote}` : '';
    return answer(`${what}${remote}${sub}`, { task: taskLine(task) });
  };

  tool('submit_task', text.submit_task, TASK_INPUT, async (_valid, raw) => submit(raw));

  tool(
    'delegate_task',
    text.delegate_task,
    DELEGATE_INPUT,
    async (valid, raw) => {
      const refused = unknownRemote(valid.remote, config.remotes);
      if (refused) throw new InvalidTaskError('remote', refused);
      return submit({ ...raw, agent: A2A_AGENT });
    },
  );

  tool(
    'list_tasks',
    text.list_tasks,
    LIST,
    async (o) => {
      const limit = o.limit ?? LIST_LIMIT.default;
      const tasks =
        o.parent !== undefined
          ? (await store.listSubtasks((await findTask(store, o.parent)).id)).filter((t) => !o.state || t.state === o.state).reverse().slice(0, limit)
          : await store.listTasks({ ...(o.state ? { state: o.state } : {}), order: 'desc', limit });
      return answer(`${tasks.length} task${tasks.length === 1 ? '' : 's'}`, { tasks: tasks.map(taskLine) });
    },
  );

  tool('get_task', text.get_task, TASK_ONLY, async (o) => {
    const task = await findTask(store, o.task);
    const attempts = await store.listAttempts(task.id);
    const subtasks = (await store.listSubtasks(task.id)).map((t) => ({ id: t.id, name: t.name, state: t.state }));
    return answer(`#${task.id} ${task.name}: ${task.state}`, { task: { ...task, attemptHistory: attempts, subtasks } });
  });

  tool('answer_task', text.answer_task, ANSWER, async (o) => {
    const task = await answerTask(store, o.task, o.answer, now());
    return answer(`answered #${task.id} ${task.name}: queued again${task.stats.sessionId ? ` (resumes session ${task.stats.sessionId})` : ''}`, { task: taskLine(task) });
  });

  tool('cancel_task', text.cancel_task, TASK_ONLY, async (o) => {
    const { task, outcome } = await cancelTask(store, paths, (await findTask(store, o.task)).id, now());
    if (outcome === 'ended') throw new AgentQueueError('already_ended', `#${task.id} ${task.name} already ended ${task.state}`);
    const text = outcome === 'requested' ? `cancelling #${task.id} ${task.name}: its dispatcher stops the agent` : `cancelled #${task.id} ${task.name}`;
    return answer(text, { task: taskLine(task) });
  });

  tool(
    'check_delegation_status',
    text.check_delegation_status,
    TASK_ONLY,
    async (o) => {
      const task = await findTask(store, o.task);
      const delegations = await delegationsReport(store, { taskId: task.id });
      const [latest] = delegations;
      const said = latest ? `delegated to ${latest.remote}: ${latest.state}${latest.remoteTaskId ? ` (remote task ${latest.remoteTaskId})` : ''}` : task.agent === A2A_AGENT ? `not sent yet (delegated to ${task.remote})` : `not delegated (agent ${task.runAgent ?? task.agent})`;
      return answer(`#${task.id} ${task.name} is ${task.state}, ${said}`, { task: taskLine(task), delegations });
    },
  );

  return server;
}

/**
 * Serves {@link createMcpServer} over stdio until stdin ends (the client went away) or the
 * transport closes.
 * @returns once the server is closed (the caller closes the store)
 */
export async function serveMcp(ctx: McpContext): Promise<void> {
  const server = createMcpServer(ctx);
  const transport = new StdioServerTransport();
  const closed = new Promise<void>((resolve) => {
    transport.onclose = () => resolve();
    const end = () => void server.close().finally(resolve);
    process.stdin.once('end', end);
    process.stdin.once('close', end);
  });
  await server.connect(transport);
  await closed;
}
