/**
 * What agentq's MCP server answers without the MCP SDK: the running task of an attempt
 * ({@link runningTaskOf}), the tools' descriptions (one text for both paths), and the messages
 * an MCP client sends before it calls a tool — `initialize`, `notifications/initialized`,
 * `tools/list`, `ping` — answered from plain data by the dispatcher's HTTP host
 * (src/mcp/http-host.ts), so an agent that calls no tool never makes the dispatcher load the
 * SDK, zod and the tools (≈250 ms of CPU) nor build an SDK server per request (≈3 ms of CPU
 * each, four per Claude Code attempt). The answers are the SDK's own, byte for byte as JSON
 * values (test/unit/mcp-quick-answers.test.ts); anything else goes to the SDK.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Config } from '../config/config.ts';
import type { TaskOrigin } from '../core/types.ts';
import type { Store } from '../store/store.ts';
import { TOOL_INPUT_SCHEMAS } from './tool-schemas.ts';

/** The task whose agent runs this server: its id and name. */
export interface RunningTask {
  id: number;
  name: string;
  /** Its origin checkout: its subtasks' too (their result files are written there). */
  origin: TaskOrigin | null;
}

/**
 * The task the environment's agentq tags name, if they name it and one of its attempts in `store`:
 * `AGENTQ_TASK_ID` (the task) and `AGENTQ_ATTEMPT_ID` (one of its attempts), as the dispatcher
 * gives every agent process. Both must match, so an agent of another project's queue (whose
 * task ids mean other tasks here) files no subtasks of a stranger.
 * @returns null when either is unset or they name nothing in this store
 */
export async function runningTaskOf(store: Store, env: Record<string, string | undefined>): Promise<RunningTask | null> {
  const id = Number(env.AGENTQ_TASK_ID);
  const attemptId = env.AGENTQ_ATTEMPT_ID;
  if (!Number.isSafeInteger(id) || id < 1 || !attemptId) return null;
  const task = await store.getTask(id);
  if (!task || !(await store.listAttempts(task.id)).some((a) => a.id === attemptId)) return null;
  return { id: task.id, name: task.name, origin: task.origin };
}

/** Tasks `list_tasks` returns at most, and by default. */
export const LIST_LIMIT = { max: 500, default: 50 } as const;

/** The server's name and version in `initialize`. */
export const MCP_SERVER_INFO = { name: 'agentq', version: '1' } as const;

/**
 * The protocol versions the SDK speaks, newest first (its `SUPPORTED_PROTOCOL_VERSIONS`; the
 * test fails when an SDK upgrade changes them): `initialize` answers the client's version when
 * it is one of them, else the newest.
 */
export const MCP_PROTOCOL_VERSIONS: readonly string[] = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05', '2024-10-07'];

/** The tools, in the order the server registers and lists them. */
export type ToolName = keyof typeof TOOL_INPUT_SCHEMAS;

/** Each tool's description for the agent of `runningTask` (null: none), by tool name, in listing order. */
export function toolDescriptions(runningTask: RunningTask | null, config: Pick<Config, 'max_subtasks' | 'remotes'>): Record<ToolName, string> {
  const inTask = runningTask ? ` Run by the agent of task ${runningTask.id} "${runningTask.name}": every task submitted is its subtask (parent set; the task completes only once its subtasks have), at most ${config.max_subtasks} of them.` : '';
  const remotes = Object.keys(config.remotes);
  return {
    submit_task: `Add a task to the agentq queue: the prompt and the fields of a task file (priority, agent, model, depends_on, timeout, max_cost_usd, tags, …), validated by the same rules. A dispatcher runs it.${inTask}`,
    delegate_task: `Hand a task to another queue or A2A agent: submit_task with agent a2a and the remote (${remotes.length ? `a name of config remotes: ${remotes.join(', ')}; ` : ''}or the http(s) URL of an A2A agent). remote_metadata holds the remote's own task fields (e.g. {"agent": "codex"}). A dispatcher sends it and tracks the remote task; check_delegation_status shows how it goes.${inTask}`,
    list_tasks: `List tasks of the agentq queue, newest first (at most ${LIST_LIMIT.max}; default ${LIST_LIMIT.default}), optionally by state or parent.`,
    get_task: 'One task of the agentq queue by id or name, with its attempts and subtasks (as agentq show --json).',
    answer_task: "Answer a blocked task's question; it is queued again and resumes its agent's session.",
    cancel_task: 'Cancel a queued or blocked task at once, or stop a running one (its dispatcher stops the agent).',
    check_delegation_status:
      "A delegated task's rows of the delegation ledger, newest first: state (pending, dispatched, received, in_progress, input_required, completed, failed, canceled), remote, remote task id, the result's or question's first characters, the last error; with the task's own state (as agentq delegations --json).",
  };
}

/** A quick answer: 200 with a JSON-RPC response body, or 202 (a notification) without one. */
export type QuickAnswer = { status: 200; body: string } | { status: 202 };

/** What a quick `tools/list` needs: the running task of the request's attempt, and the config. */
export interface QuickContext {
  runningTask: () => Promise<RunningTask | null>;
  config: Pick<Config, 'max_subtasks' | 'remotes'>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isId = (v: unknown): v is string | number => typeof v === 'string' || (typeof v === 'number' && Number.isInteger(v));
const response = (id: string | number, result: unknown): QuickAnswer => ({ status: 200, body: JSON.stringify({ result, jsonrpc: '2.0', id }) });

/**
 * The answer to `message` (a POSTed JSON body) when it is a well-formed `initialize`,
 * `notifications/initialized`, `tools/list` or `ping` whose headers the SDK's stateless
 * JSON-response transport accepts (Accept: application/json and text/event-stream;
 * Content-Type: application/json; a supported `mcp-protocol-version`, if any); null for
 * anything else, which the SDK answers (errors included).
 */
export async function quickAnswer(message: unknown, headers: IncomingHttpHeaders, ctx: QuickContext): Promise<QuickAnswer | null> {
  const accept = headers.accept ?? '';
  if (!accept.includes('application/json') || !accept.includes('text/event-stream')) return null;
  if ((headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase() !== 'application/json') return null;
  if (!isObject(message) || message.jsonrpc !== '2.0' || typeof message.method !== 'string') return null;
  const { id, method, params } = message;
  if (method === 'initialize') {
    if (!isId(id) || !isObject(params) || typeof params.protocolVersion !== 'string' || !isObject(params.capabilities)) return null;
    const info = params.clientInfo;
    if (!isObject(info) || typeof info.name !== 'string' || typeof info.version !== 'string') return null;
    const protocolVersion = MCP_PROTOCOL_VERSIONS.includes(params.protocolVersion) ? params.protocolVersion : MCP_PROTOCOL_VERSIONS[0];
    return response(id, { protocolVersion, capabilities: { tools: { listChanged: true } }, serverInfo: MCP_SERVER_INFO });
  }
  const version = headers['mcp-protocol-version'];
  if (version !== undefined && !MCP_PROTOCOL_VERSIONS.includes(String(version))) return null;
  if (params !== undefined && !isObject(params)) return null;
  if (method === 'notifications/initialized') return 'id' in message ? null : { status: 202 };
  if (!isId(id)) return null;
  if (method === 'ping') return response(id, {});
  if (method === 'tools/list') {
    const descriptions = toolDescriptions(await ctx.runningTask(), ctx.config);
    // `execution`: the SDK's default for a tool registered without task support.
    const tools = (Object.keys(TOOL_INPUT_SCHEMAS) as ToolName[]).map((name) => ({ name, description: descriptions[name], inputSchema: TOOL_INPUT_SCHEMAS[name], execution: { taskSupport: 'forbidden' } }));
    return response(id, { tools });
  }
  return null;
}
