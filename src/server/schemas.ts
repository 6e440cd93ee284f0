/**
 * JSON schemas of the API's values (shared schemas, referenced as `Task#`, …), used to
 * serialize responses and to generate /openapi.json. Objects allow further properties, so
 * a field the store adds later is passed through, not dropped.
 */
import { DELEGATION_STATES } from '../core/delegation.ts';
import { PRIORITIES, TASK_STATES } from '../core/types.ts';
import { ERROR_STATUS } from './errors.ts';

type JsonSchema = Record<string, unknown>;
const nul = (type: string | string[]): JsonSchema => ({ type: [...(Array.isArray(type) ? type : [type]), 'null'] });
const ms = (description: string): JsonSchema => ({ type: ['integer', 'null'], description: `${description}, epoch ms` });

const statsSchema: JsonSchema = {
  type: 'object',
  additionalProperties: true,
  properties: {
    sessionId: nul('string'),
    model: nul('string'),
    costUsd: { ...nul('number'), description: 'USD' },
    inputTokens: nul('integer'),
    outputTokens: nul('integer'),
    numTurns: nul('integer'),
  },
};

/** A task as the store holds it (src/core/types.ts `Task`). */
export const taskSchema: JsonSchema = {
  $id: 'Task',
  type: 'object',
  additionalProperties: true,
  description: 'A task (src/core/types.ts Task). Times are epoch ms, money USD.',
  properties: {
    id: { type: 'integer' },
    name: { type: 'string' },
    title: { type: 'string' },
    state: { type: 'string', enum: [...TASK_STATES] },
    priority: { type: 'string', enum: [...PRIORITIES] },
    agent: { type: 'string' },
    runAgent: nul('string'),
    model: nul('string'),
    tags: { type: 'array', items: { type: 'string' } },
    runsOn: { type: 'array', items: { type: 'string' }, description: 'labels a dispatcher must all hold to claim it (runs_on)' },
    dependsOn: { type: 'array', items: { type: 'string' } },
    dependsOnIds: { type: 'array', items: { type: 'integer' } },
    parent: nul('string'),
    parentId: nul('integer'),
    timeoutMs: { type: 'number' },
    maxCostUsd: nul('number'),
    retries: { type: 'integer' },
    retryBackoffMs: nul('number'),
    retryOnTimeout: { type: 'boolean' },
    concurrencyGroup: nul('string'),
    runAt: nul('number'),
    workspace: nul('string'),
    merge: nul('string'),
    workspaceSetup: { anyOf: [{ type: 'array', items: { type: 'string' } }, { type: 'null' }], description: 'workspace_setup commands; null: config' },
    dedupKey: nul('string'),
    command: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }, { type: 'null' }] },
    remote: { ...nul('string'), description: 'agent: a2a — the remote A2A agent: a name of config remotes, or its URL' },
    extra: { type: 'object', additionalProperties: true },
    prompt: { type: 'string' },
    source: { type: 'string', description: 'inbox, cli, recurring or api' },
    attempts: { type: 'integer', description: 'attempts that count against retries' },
    claims: { type: 'integer', description: 'every claim, including interrupted and rate-limited ones' },
    runAfter: { type: 'integer', description: 'earliest next claim, epoch ms' },
    createdAt: { type: 'integer', description: 'epoch ms' },
    startedAt: ms('latest start'),
    finishedAt: ms('end'),
    durationMs: nul('number'),
    cancelRequested: { type: 'boolean' },
    stats: statsSchema,
    result: nul('string'),
    failedReason: nul('string'),
    resultPath: nul('string'),
    origin: {
      type: ['object', 'null'],
      additionalProperties: true,
      description: 'the checkout the task came from, where its result file is written (null: stored before agentq recorded it)',
      properties: { host: { type: 'string' }, root: { type: 'string', description: 'project root, symbolic links resolved' } },
    },
    question: nul('string'),
    answer: nul('string'),
    takenOverAt: { ...nul('integer'), description: 'epoch ms a person took the task over by hand (agentq attach); blocked until agentq release' },
    branch: nul('string'),
    commits: { type: 'array', items: { type: 'object', additionalProperties: true, properties: { hash: { type: 'string' }, subject: { type: 'string' } } } },
    ranOn: { ...nul('string'), description: 'host name of the machine that ran the attempt that ended it' },
    pushedTo: { ...nul('string'), description: 'workspace_push: REMOTE/BRANCH the branch was pushed to' },
    pushError: { ...nul('string'), description: 'workspace_push: why the push failed' },
    verify: { anyOf: [{ type: 'array', items: { type: 'string' } }, { type: 'null' }], description: 'verify commands (null: config verify; []: none)' },
    verifyTimeoutMs: { ...nul('number'), description: 'verify_timeout, ms (null: config)' },
    verifyRetries: { ...nul('integer'), description: 'verify_retries (null: config)' },
    stallTimeoutMs: { ...nul('number'), description: 'stall_timeout, ms; 0: off (null: config)' },
    lastActivityAt: ms("while running: its agent's last activity, as its dispatcher last recorded it"),
  },
};

/** One attempt (src/core/types.ts `Attempt`). */
export const attemptSchema: JsonSchema = {
  $id: 'Attempt',
  type: 'object',
  additionalProperties: true,
  properties: {
    id: { type: 'string', description: 'UUID; the lease token and AGENTQ_ATTEMPT_ID' },
    taskId: { type: 'integer' },
    number: { type: 'integer' },
    workerId: { type: 'string' },
    host: { ...nul('string'), description: 'host name of the machine that ran it' },
    agent: { type: 'string' },
    model: nul('string'),
    outcome: { type: 'string', description: 'running, completed, failed, timed_out, setup_failed, verify_failed, stalled, budget_exceeded, cancelled, rate_limited, interrupted or blocked' },
    reason: nul('string'),
    exitCode: nul('integer'),
    startedAt: { type: 'integer' },
    finishedAt: nul('integer'),
    durationMs: nul('number'),
    logPath: nul('string'),
    stats: statsSchema,
  },
};

/** One verify command run after an attempt's agent reported success (src/core/types.ts `Verification`). */
export const verificationSchema: JsonSchema = {
  $id: 'Verification',
  type: 'object',
  additionalProperties: true,
  properties: {
    attemptId: { type: 'string' },
    taskId: { type: 'integer' },
    attemptNumber: { type: 'integer' },
    number: { type: 'integer', description: "1-based position in the task's verify list" },
    command: { type: 'string' },
    exitCode: { ...nul('integer'), description: 'null: killed (timed out, stopped) or ended by a signal' },
    timedOut: { type: 'boolean' },
    durationMs: { type: 'number' },
    outputPath: { ...nul('string'), description: 'its output log on the host that ran it' },
    outputTail: { type: 'string', description: 'the last 200 lines of its output' },
    startedAt: { type: 'integer', description: 'epoch ms' },
  },
};

/** A live dispatcher on the store, as `agentq status --json` lists it (`WorkerInfo` + its running count). */
export const workerSchema: JsonSchema = {
  $id: 'Worker',
  type: 'object',
  additionalProperties: true,
  properties: {
    id: { type: 'string', description: 'HOST:PID:RANDOM; attempts name it as workerId' },
    host: { type: 'string' },
    pid: { type: 'integer' },
    root: { type: 'string', description: 'its project root (realpath): the checkout it writes result files in' },
    labels: { type: 'array', items: { type: 'string' }, description: 'its labels (agentq run --label), matched against runs_on' },
    running: { type: 'integer', description: 'its running attempts' },
    startedAt: { type: 'integer', description: 'epoch ms' },
    heartbeatAt: { type: 'integer', description: 'last heartbeat, epoch ms' },
  },
};

/** One delegation of the ledger (src/core/delegation.ts `Delegation`), with its task's name. */
export const delegationSchema: JsonSchema = {
  $id: 'Delegation',
  type: 'object',
  additionalProperties: true,
  description: 'A task handed to a remote A2A agent (agent: a2a). Times are epoch ms; a `…At` is when it last entered that state.',
  properties: {
    id: { type: 'integer' },
    taskId: { type: 'integer' },
    taskName: nul('string'),
    attemptId: { type: 'string', description: 'the delegating attempt; the first messageId (idempotency key)' },
    remote: { type: 'string', description: 'as the task named it: a name of config remotes, or the URL' },
    url: { type: 'string' },
    remoteTaskId: nul('string'),
    contextId: nul('string'),
    messageId: { type: 'string', description: 'the latest message sent' },
    state: { type: 'string', enum: [...DELEGATION_STATES] },
    remoteState: { ...nul('string'), description: 'the A2A task state last seen' },
    lastError: nul('string'),
    resultPreview: { ...nul('string'), description: 'the first 300 characters of the result (or of the question)' },
    createdAt: { type: 'integer' },
    dispatchedAt: ms('dispatched'),
    receivedAt: ms('received'),
    inProgressAt: ms('in progress'),
    inputRequiredAt: ms('input required'),
    finishedAt: ms('ended'),
    progressAt: { type: 'integer', description: 'last progress the remote showed, epoch ms' },
    updatedAt: { type: 'integer' },
  },
};

/** A task's callback delivery. */
export const callbackSchema: JsonSchema = {
  $id: 'Callback',
  type: 'object',
  additionalProperties: false,
  properties: {
    url: { type: 'string' },
    state: { type: 'string', enum: ['pending', 'delivered', 'failed'] },
    attempts: { type: 'integer', description: 'tries made' },
    lastError: nul('string'),
    deliveredAt: nul('integer'),
  },
};

/** The body of every 4xx/5xx. */
export const errorSchema: JsonSchema = {
  $id: 'Error',
  type: 'object',
  additionalProperties: false,
  properties: {
    error: {
      type: 'object',
      additionalProperties: false,
      properties: {
        code: { type: 'string', enum: Object.keys(ERROR_STATUS) },
        message: { type: 'string' },
        field: { ...nul('string'), description: 'the offending field (JSON path, header or query name), else null' },
      },
    },
  },
};

export const SHARED_SCHEMAS = [taskSchema, attemptSchema, verificationSchema, workerSchema, delegationSchema, callbackSchema, errorSchema];

export const ref = (id: string): JsonSchema => ({ $ref: `${id}#` });

/** Response schemas of the error statuses a route can answer with. */
export function errorResponses(...statuses: number[]): Record<string, JsonSchema> {
  const out: Record<string, JsonSchema> = {};
  for (const s of statuses) out[String(s)] = { description: 'error', ...ref('Error') };
  return out;
}
