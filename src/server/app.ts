/**
 * The HTTP API of `agentq serve` (Fastify): routes, JSON schemas (served as /openapi.json),
 * auth, errors, live events, logs, metrics and the dashboard's static files. It works on
 * the store it is given and reports what it changes through the dispatcher's events; it
 * does not run tasks itself (src/server/serve.ts puts a dispatcher beside it).
 * The contract: /tmp/h/api.md, kept in README.md ("agentq serve").
 */
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import fastifyStatic from '@fastify/static';
import fastifySwagger from '@fastify/swagger';
import { Ajv } from 'ajv';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { accountMap, projectOrigin, type Config, type ProjectPaths } from '../config/config.ts';
import { InvalidTaskError, UsageError } from '../core/errors.ts';
import { isTerminal, PRIORITIES, TASK_STATES, type Task } from '../core/types.ts';
import type { DispatcherEvents } from '../events/events.ts';
import { resolveDirect } from '../intake/direct.ts';
import { answerTask, cancelTask, delegationsReport, findTask, retryTask, statusSnapshot, usageReport } from '../ops/task-ops.ts';
import { locateLog, streamAttemptLog, type LogStream } from '../ops/attempt-log.ts';
import { tailIsCut } from '../results/logs.ts';
import { DELEGATION_STATES, type DelegationState } from '../core/delegation.ts';
import type { CallbackDelivery, Store } from '../store/store.ts';
import { answerTokenSha256 } from '../notify/answer-link.ts';
import { notifyStatus } from '../notify/status.ts';
import { ANSWER_LINK_ROUTE, authorize, isProtectedPath, isProtectedRoute, usesAnswerLink } from './auth.ts';
import { answerPage, ANSWER_PAGE_HEADERS } from './answer-page.ts';
import { errorHandler, HttpError, noRoute } from './errors.ts';
import type { EventHub, HubEvent } from './event-hub.ts';
import { checkJsonCharset, parseJsonBody } from './json-body.ts';
import type { Metrics } from './metrics.ts';
import { pathOf, pathProblem, REDACTED, redactUrl } from './request-url.ts';
import { errorResponses, ref, SHARED_SCHEMAS } from './schemas.ts';
import { bodySha256, taskBodySchema, taskRequestFromBody } from './task-body.ts';

export interface AppOptions {
  store: Store;
  config: Config;
  paths: ProjectPaths;
  /** Bearer token every API request must carry; null: none (then only loopback callers, see auth.ts). */
  token: string | null;
  /** The dispatcher's events: the API reports tasks it creates or changes here (`task.created`, …). */
  events: DispatcherEvents;
  /** Numbered events for GET /v1/events (fed from `events` by `bridgeDispatcherEvents`). */
  hub: EventHub;
  metrics: Metrics;
  /** Called after a task was created or requeued, so the dispatcher claims it now. */
  wake?: () => void;
  /** The built dashboard (`web/dist`); null or missing: `/` says how to build it. */
  webDist?: string | null;
  /** Interval of the `: ping` comment on open event streams, ms. Default 15,000. */
  pingMs?: number;
  /**
   * Fastify's logger option. Default: off. Whatever it says, the `authorization` header is
   * redacted, and so are the values of secret-looking query parameters in the logged URL
   * (`?token=…`, see `redactUrl`), also through a `serializers.req` of its own.
   */
  logger?: FastifyServerOptions['logger'];
  now?: () => number;
}

/** Largest buffered output of an event stream before the slow client is dropped (it reconnects with Last-Event-ID), bytes. */
const MAX_STREAM_BACKLOG = 4 * 1024 * 1024;

const API_VERSION = '1';

/** Encodes the pagination cursor: the id the next page starts below. */
const encodeCursor = (id: number) => Buffer.from(`b:${id}`).toString('base64url');
function decodeCursor(cursor: string): number {
  const m = /^b:(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m) throw new HttpError('bad_request', `cursor: ${JSON.stringify(cursor)} is not a cursor this server gave`, 'cursor');
  return Number(m[1]);
}

/** Why a valid-looking answer link is refused (410). */
const ANSWER_LINK_GONE = {
  used: 'this answer link was used already (the question is answered)',
  expired: 'this answer link has expired',
  closed: 'the task no longer waits on the question of this link',
} as const;

/** The callback as the API shows it. */
function callbackView(c: CallbackDelivery | null) {
  return c && { url: c.url, state: c.state, attempts: c.attempts, lastError: c.lastError, deliveredAt: c.deliveredAt };
}

/** What a request logs (Fastify's default fields), its URL redacted. */
interface LoggedRequest {
  method: string;
  url: string;
  headers?: Record<string, unknown>;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number };
}

/** The logger option with the redactions every log gets (see {@link AppOptions.logger}). */
function safeLogger(option: AppOptions['logger']): FastifyServerOptions['logger'] {
  if (option === undefined || option === false) return false;
  const given = typeof option === 'object' ? option : {};
  const req = given.serializers?.req as ((r: LoggedRequest) => Record<string, unknown>) | undefined;
  return {
    ...given,
    redact: { paths: ['req.headers.authorization', 'headers.authorization', 'request.headers.authorization'], censor: REDACTED },
    serializers: {
      ...given.serializers,
      req: (r: LoggedRequest) => {
        const out = req
          ? req(r)
          : { method: r.method, url: r.url, version: r.headers?.['accept-version'], host: r.host, remoteAddress: r.ip, remotePort: r.socket?.remotePort };
        return typeof out.url === 'string' ? { ...out, url: redactUrl(out.url) } : out;
      },
    },
  } as FastifyServerOptions['logger'];
}

/** Builds the Fastify app (not listening yet). */
export async function buildApp(o: AppOptions): Promise<FastifyInstance> {
  const now = o.now ?? Date.now;
  const { store, paths } = o;
  /** This checkout: the origin of the tasks POSTed here (their result files are written here). */
  const here = projectOrigin(paths);
  const app = Fastify({
    logger: safeLogger(o.logger),
    bodyLimit: o.config.serve.body_limit,
    return503OnClosing: true,
    // Errors of the router get the error body too: a URL it cannot decode is 400; a path
    // parameter longer than it matches (Fastify's maxParamLength) names no task, 404.
    frameworkErrors: (err, request, reply) => {
      const mapped =
        err.code === 'FST_ERR_BAD_URL'
          ? new HttpError('bad_request', `path: ${JSON.stringify(pathOf(request.url))} has an invalid %-escape (not two hex digits, or not UTF-8)`, 'path')
          : err.code === 'FST_ERR_MAX_PARAM_LENGTH'
            ? noRoute(request.method, request.url, `a path parameter longer than ${request.server.initialConfig.maxParamLength} characters`)
            : err;
      errorHandler(mapped, request, reply);
    },
  });
  // JSON only: a body of any other type is 415 (Fastify would read text/plain too). JSON
  // bodies are read by parseJsonBody: a precise 400 for each way one can be unreadable.
  app.removeContentTypeParser(['text/plain', 'application/json']);
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    try {
      checkJsonCharset(request.headers['content-type']);
      done(null, parseJsonBody(body as Buffer));
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  // Bodies are validated as sent (no coercion, unknown fields refused); query strings and
  // params are text, so their numbers are coerced.
  const bodyAjv = new Ajv({ strict: false, coerceTypes: false, useDefaults: true, removeAdditional: false, allErrors: false });
  const textAjv = new Ajv({ strict: false, coerceTypes: true, useDefaults: true, removeAdditional: false, allErrors: false });
  for (const s of SHARED_SCHEMAS) {
    bodyAjv.addSchema(s);
    textAjv.addSchema(s);
  }
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodyAjv : textAjv).compile(schema));
  app.setErrorHandler(errorHandler);
  for (const s of SHARED_SCHEMAS) app.addSchema(s);

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'agent-queue API',
        version: API_VERSION,
        description:
          'The HTTP API of `agentq serve`: submit and manage tasks, follow events. With a token configured, every /v1 route and /metrics need `Authorization: Bearer TOKEN`.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });

  // A path that is not normalized names nothing (404), whatever route the router or the
  // static files would make of it; then the token check, by the matched route.
  app.addHook('onRequest', async (request) => {
    const problem = pathProblem(request.url);
    if (problem) throw noRoute(request.method, request.url, problem);
    if (isProtectedRoute(request.routeOptions.url) && !usesAnswerLink(request)) authorize(request, o.token);
  });

  // Open streams (events, log follows) are ended when the server closes.
  const openStreams = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of [...openStreams]) end();
  });

  const open = { security: [] };

  app.get('/healthz', { schema: { ...open, summary: 'Liveness', response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } } } } } }, async () => ({ ok: true }));

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  app.get(
    '/metrics',
    { schema: { summary: 'Prometheus metrics (text format)', response: { 200: { description: 'text/plain; version=0.0.4', type: 'string' }, ...errorResponses(401, 403) } } },
    async (_request, reply) => {
      const text = await o.metrics.registry.metrics();
      return reply.type(o.metrics.registry.contentType).send(text);
    },
  );

  // --- tasks -------------------------------------------------------------------------
  const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', description: 'task id, or the newest task of that name' } } };
  const taskOnly = { type: 'object', properties: { task: ref('Task') } };

  const bodySchema = taskBodySchema();
  app.post<{ Body: Record<string, unknown>; Headers: { 'idempotency-key'?: string } }>(
    '/v1/tasks',
    {
      schema: {
        summary: 'Create a task',
        description:
          'The body has the task-file fields (snake_case) and `prompt`; validated by the rules of task files. `Idempotency-Key`: a repeat with the same key and body returns the first task (200); another body with the same key is 409.',
        headers: { type: 'object', properties: { 'idempotency-key': { type: 'string', minLength: 1, maxLength: 255 } } },
        body: bodySchema,
        response: { 200: taskOnly, 201: taskOnly, ...errorResponses(400, 401, 403, 409, 413, 415, 429) },
      },
      // The body is validated by the zod schema its JSON Schema is generated from (TASK_BODY),
      // then by the task-file rules: the messages of task files, naming the field.
      validatorCompiler: ({ schema, httpPart }) => {
        if (httpPart !== 'body') return textAjv.compile(schema);
        return (body: unknown) => {
          try {
            taskRequestFromBody(body, o.config);
          } catch (err) {
            if (err instanceof InvalidTaskError) return { error: err };
            throw err;
          }
          return { value: body };
        };
      },
    },
    async (request, reply) => {
      const { spec, callbackUrl } = taskRequestFromBody(request.body, o.config);
      const key = request.headers['idempotency-key'];
      const idempotency = key === undefined ? null : { key, bodySha256: bodySha256(request.body) };
      const conflict = (taskId: number) =>
        new HttpError('conflict', `idempotency-key: ${JSON.stringify(key)} was used for another body (task ${taskId})`, 'idempotency-key');
      // A repeat is answered before anything else (even with the queue full since).
      const known = idempotency && (await store.findIdempotencyKey(idempotency.key));
      if (known) {
        if (known.bodySha256 !== idempotency.bodySha256) throw conflict(known.taskId);
        return reply.code(200).send({ task: await findTask(store, known.taskId) });
      }
      const newTask = await resolveDirect(store, o.config, spec, here);
      // The key is checked again in the transaction: of two concurrent first uses, one creates.
      const result = await store.enqueueRequest(newTask, { idempotency, callbackUrl }, now());
      if (result.kind === 'conflict') throw conflict(result.task.id);
      if (result.kind === 'replayed') return reply.code(200).send({ task: result.task });
      o.events.emit('task.created', result.task);
      o.wake?.();
      return reply.code(201).header('location', `/v1/tasks/${result.task.id}`).send({ task: result.task });
    },
  );

  app.get<{ Querystring: { state?: Task['state']; agent?: string; tag?: string; priority?: Task['priority']; limit: number; cursor?: string } }>(
    '/v1/tasks',
    {
      schema: {
        summary: 'List tasks, newest first',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            state: { type: 'string', enum: [...TASK_STATES] },
            agent: { type: 'string', minLength: 1 },
            tag: { type: 'string', minLength: 1 },
            priority: { type: 'string', enum: [...PRIORITIES] },
            limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
            cursor: { type: 'string', description: 'nextCursor of the previous page' },
          },
        },
        response: {
          200: { type: 'object', properties: { tasks: { type: 'array', items: ref('Task') }, nextCursor: { type: ['string', 'null'] } } },
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const q = request.query;
      const rows = await store.listTasks({
        ...(q.state ? { state: q.state } : {}),
        ...(q.agent ? { agent: q.agent } : {}),
        ...(q.tag ? { tag: q.tag } : {}),
        ...(q.priority ? { priority: q.priority } : {}),
        ...(q.cursor ? { beforeId: decodeCursor(q.cursor) } : {}),
        order: 'desc',
        limit: q.limit + 1,
      });
      const tasks = rows.slice(0, q.limit);
      return { tasks, nextCursor: rows.length > q.limit ? encodeCursor(tasks.at(-1)!.id) : null };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/tasks/:id',
    {
      schema: {
        summary: 'One task with its attempts, its verify runs and callback',
        params: idParams,
        response: {
          200: {
            type: 'object',
            properties: {
              task: ref('Task'),
              attempts: { type: 'array', items: ref('Attempt') },
              verifications: { type: 'array', items: ref('Verification') },
              callback: { anyOf: [ref('Callback'), { type: 'null' }] },
            },
          },
          ...errorResponses(401, 403, 404),
        },
      },
    },
    async (request) => {
      const task = await findTask(store, request.params.id);
      return { task, attempts: await store.listAttempts(task.id), verifications: await store.listVerifications(task.id), callback: callbackView(await store.getCallback(task.id)) };
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/tasks/:id/cancel',
    {
      schema: {
        summary: 'Cancel a task (a running one is stopped by its dispatcher)',
        description: 'A queued or blocked task ends cancelled at once; a running one gets cancelRequested and ends when its dispatcher has stopped the agent. 409 when it had already ended otherwise.',
        params: idParams,
        response: { 200: taskOnly, ...errorResponses(401, 403, 404, 409) },
      },
    },
    async (request) => {
      const { task, outcome } = await cancelTask(store, paths, (await findTask(store, request.params.id)).id, now());
      if (outcome === 'ended') throw new HttpError('conflict', `task ${task.id} already ended ${task.state}`);
      if (outcome === 'cancelled') o.events.emit('task.finished', task);
      return { task };
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/tasks/:id/retry',
    {
      schema: {
        summary: 'Requeue a failed, timed-out or cancelled task',
        params: idParams,
        response: { 200: taskOnly, ...errorResponses(401, 403, 404, 409) },
      },
    },
    async (request) => {
      const { task, before, retried } = await retryTask(store, (await findTask(store, request.params.id)).id, now());
      if (!retried) throw new HttpError('conflict', `task ${task.id} is ${before}: only failed, timed-out or cancelled tasks can be retried`);
      o.events.emit('task.requeued', task, 'retry requested');
      o.wake?.();
      return { task };
    },
  );

  const answerLinkQuery = {
    type: 'object',
    properties: {
      token: { type: 'string', minLength: 1, description: "an answer link's one-time token: then no other credential is needed (see README, Notifications)" },
    },
  };
  app.post<{ Params: { id: string }; Body: { answer: string }; Querystring: { token?: string } }>(
    ANSWER_LINK_ROUTE,
    {
      schema: {
        summary: "Answer a blocked task's question; it runs again",
        description:
          'With `?token=` (the one-time token of an answer link from a `blocked` notification) no other credential is needed: the token must be this task\'s, unused and unexpired (else 401 or 410), and is spent by the answer.',
        params: idParams,
        querystring: answerLinkQuery,
        body: { type: 'object', required: ['answer'], additionalProperties: false, properties: { answer: { type: 'string', minLength: 1, pattern: '\\S' } } },
        response: { 200: taskOnly, ...errorResponses(400, 401, 403, 404, 409, 410, 413, 415) },
      },
    },
    async (request) => {
      let task: Task;
      if (request.query.token !== undefined) {
        // A caller with only a link learns nothing of other tasks: an unknown one is 401 too.
        const id = (await store.getTask(request.params.id))?.id;
        if (id === undefined) throw new HttpError('unauthorized', `token: not an answer link of task ${request.params.id}`, 'token');
        const r = await store.answerWithToken(id, answerTokenSha256(request.query.token), request.body.answer, now());
        if (r.outcome === 'unknown') throw new HttpError('unauthorized', `token: not an answer link of task ${id}`, 'token');
        if (r.outcome !== 'answered') throw new HttpError('gone', `token: ${ANSWER_LINK_GONE[r.outcome]}`, 'token');
        task = r.task;
      } else {
        task = await answerTask(store, request.params.id, request.body.answer, now());
      }
      o.events.emit('task.requeued', task, 'answered');
      o.wake?.();
      return { task };
    },
  );

  // What an answer link opens in a browser: a form that POSTs to the same URL. It shows no
  // task data (the question is in the notification), so it checks nothing itself.
  app.get<{ Params: { id: string }; Querystring: { token: string } }>(
    ANSWER_LINK_ROUTE,
    {
      schema: {
        summary: 'The answer form of an answer link (HTML)',
        params: idParams,
        querystring: { ...answerLinkQuery, required: ['token'] },
        response: { 200: { description: 'text/html', type: 'string' }, ...errorResponses(400, 401, 403) },
      },
    },
    async (request, reply) => reply.headers(ANSWER_PAGE_HEADERS).type('text/html; charset=utf-8').send(answerPage(request.params.id)),
  );

  app.get<{ Params: { id: string }; Querystring: { attempt?: number; follow?: string; stream?: LogStream } }>(
    '/v1/tasks/:id/logs',
    {
      schema: {
        summary: "An attempt's agent output (stdout or stderr log), streamed",
        description:
          'The newest attempt unless `attempt` is given; stdout unless `stream=stderr`. With follow=1 the answer stays open and streams what is written until the attempt ends. ' +
          "A log that is not on the server's machine (the attempt ran on another host or checkout, or its file was removed) is answered with the last 64 KiB the store kept when the attempt ended; " +
          'with follow=1, an attempt running elsewhere is waited for and its stored tail sent once it ends. ' +
          '`X-Agentq-Log-Source` says where the answer comes from: `file`, `store` (then `X-Agentq-Log-Host`, the host that ran it, `X-Agentq-Log-Bytes`, the whole log\'s size, and `X-Agentq-Log-Truncated`), `elsewhere` (running on `X-Agentq-Log-Host`) or `none` (nothing kept: an empty answer).',
        params: idParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            attempt: { type: 'integer', minimum: 1 },
            follow: { type: 'string', enum: ['0', '1', 'true', 'false'] },
            stream: { type: 'string', enum: ['stdout', 'stderr'] },
          },
        },
        response: { 200: { description: 'text/plain stream', type: 'string' }, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const task = await findTask(store, request.params.id);
      const follow = request.query.follow === '1' || request.query.follow === 'true';
      const stream: LogStream = request.query.stream ?? 'stdout';
      const wanted = request.query.attempt;
      const attempts = await store.listAttempts(task.id);
      const known = wanted === undefined ? attempts.at(-1) : attempts.find((a) => a.number === wanted);
      if (wanted !== undefined && !known) throw new HttpError('not_found', `task ${task.id} has no attempt ${wanted}`, 'attempt');
      if (known) {
        // Where the answer starts from, in its headers (a log followed from elsewhere may end up read from the store).
        const source = await locateLog(store, paths, task, known, stream);
        reply.header('x-agentq-log-source', source.kind === 'stored' ? 'store' : source.kind);
        if (source.kind !== 'file' && source.host !== null) reply.header('x-agentq-log-host', source.host);
        if (source.kind === 'stored') reply.header('x-agentq-log-bytes', String(source.tail.bytes)).header('x-agentq-log-truncated', String(tailIsCut(source.tail)));
      }
      const abort = new AbortController();
      const end = () => abort.abort();
      openStreams.add(end);
      reply.raw.on('close', end); // the client went away (or the answer is complete)
      async function* body(): AsyncGenerator<Buffer> {
        try {
          // An empty first chunk sends the headers now: a followed log may write nothing for long.
          if (follow) yield Buffer.alloc(0);
          let number = known?.number;
          // No attempt yet: with follow, wait for the first one (or the task's end).
          while (number === undefined) {
            number = (await store.listAttempts(task.id)).at(-1)?.number;
            if (number !== undefined || !follow || abort.signal.aborted) break;
            const t = await store.getTask(task.id);
            if (!t || isTerminal(t.state)) break;
            await new Promise((r) => setTimeout(r, 250));
          }
          if (number === undefined) return;
          yield* streamAttemptLog(store, paths, task, number, stream, { follow, signal: abort.signal });
        } finally {
          openStreams.delete(end);
        }
      }
      return reply
        .type('text/plain; charset=utf-8')
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        .send(Readable.from(body()));
    },
  );

  // --- delegations --------------------------------------------------------------------
  app.get<{ Querystring: { state?: DelegationState; limit: number; cursor?: string } }>(
    '/v1/delegations',
    {
      schema: {
        summary: 'The delegation ledger (tasks handed to remote A2A agents), newest first — as `agentq delegations --json`',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            state: { type: 'string', enum: [...DELEGATION_STATES] },
            limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
            cursor: { type: 'string', description: 'nextCursor of the previous page' },
          },
        },
        response: {
          200: { type: 'object', properties: { delegations: { type: 'array', items: ref('Delegation') }, nextCursor: { type: ['string', 'null'] } } },
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const q = request.query;
      const rows = await delegationsReport(store, {
        ...(q.state ? { state: q.state } : {}),
        ...(q.cursor ? { beforeId: decodeCursor(q.cursor) } : {}),
        limit: q.limit + 1,
      });
      const delegations = rows.slice(0, q.limit);
      return { delegations, nextCursor: rows.length > q.limit ? encodeCursor(delegations.at(-1)!.id) : null };
    },
  );

  // --- status, usage -----------------------------------------------------------------
  app.get(
    '/v1/status',
    {
      schema: {
        summary: 'Counts per state, running tasks, agents (today, pauses), dispatchers — as `agentq status --json`',
        response: {
          200: {
            type: 'object',
            additionalProperties: true,
            properties: {
              counts: { type: 'object', additionalProperties: { type: 'integer' } },
              running: { type: 'array', items: ref('Task') },
              pausedAgents: { type: 'array', items: { type: 'object', additionalProperties: true } },
              agents: {
                type: 'array',
                items: {
                  type: 'object',
                  additionalProperties: true,
                  properties: {
                    agent: { type: 'string' },
                    running: { type: 'integer' },
                    attempts: { type: 'integer' },
                    costUsd: { type: 'number' },
                    inputTokens: { type: 'integer' },
                    outputTokens: { type: 'integer' },
                    pausedUntil: { type: ['integer', 'null'] },
                    pauseReason: { type: ['string', 'null'] },
                  },
                },
              },
              workers: { type: 'array', items: ref('Worker'), description: 'live dispatchers on the store' },
              notify: {
                type: 'array',
                description: '`notify:` targets: deliveries, the newest error, `failing` when the newest try failed',
                items: { type: 'object', additionalProperties: true, properties: { label: { type: 'string' }, failing: { type: 'boolean' }, lastError: { type: ['string', 'null'] } } },
              },
              detectors: {
                type: 'array',
                items: { type: 'object', additionalProperties: true },
                description: 'the newest run of each detector: name, tick, ranAt, durationMs, exitCode, error, problems [{line, reason}], lines, created, known',
              },
            },
          },
          ...errorResponses(401, 403),
        },
      },
    },
    async () => ({ ...(await statusSnapshot(store, now(), accountMap(o.config, Object.keys(o.config.agents)))), notify: await notifyStatus(store, o.config) }),
  );

  const usageFigures = {
    attempts: { type: 'integer' },
    completed: { type: 'integer' },
    costUsd: { type: 'number', description: 'USD' },
    inputTokens: { type: 'integer' },
    outputTokens: { type: 'integer' },
  };
  app.get<{ Querystring: { since?: string; until?: string; by?: string } }>(
    '/v1/usage',
    {
      schema: {
        summary: 'Spend and tokens of the attempts started in a window, grouped — as `agentq usage --json`',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            since: { type: 'string', description: '7d, 24h, 2026-11-01 or an ISO time; default: local midnight 7 days ago' },
            until: { type: 'string', description: 'as since; default: now' },
            by: { type: 'string', description: 'comma-separated: day, agent, model, tag (default day,agent,model)' },
          },
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: true,
            properties: {
              since: { type: 'string' },
              until: { type: 'string' },
              timeZone: { type: 'string' },
              by: { type: 'array', items: { type: 'string' } },
              rows: {
                type: 'array',
                items: {
                  type: 'object',
                  additionalProperties: true,
                  properties: { day: { type: 'string' }, agent: { type: 'string' }, model: { type: ['string', 'null'] }, tag: { type: ['string', 'null'] }, ...usageFigures },
                },
              },
              total: { type: 'object', additionalProperties: true, properties: usageFigures },
            },
          },
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      try {
        return await usageReport(store, request.query, now(), { since: 'since', until: 'until' });
      } catch (err) {
        if (err instanceof UsageError) throw new HttpError('bad_request', err.message.replace(/^--/, ''), /^-*(\w+)/.exec(err.message)?.[1] ?? null);
        throw err;
      }
    },
  );

  // --- events ------------------------------------------------------------------------
  app.get<{ Querystring: { lastEventId?: string } }>(
    '/v1/events',
    {
      schema: {
        summary: 'Server-Sent Events: every state change',
        description:
          'Events: task.created, task.started, task.progress, task.requeued, task.blocked, task.waiting, task.finished, agent.paused, agent.resumed; `id` is an increasing integer. Send `Last-Event-ID` (header, or ?lastEventId=) to get the events after it that are still buffered (the last 10,000), or `reset` first when it is older. A `: ping` comment every 15 s.',
        querystring: { type: 'object', additionalProperties: false, properties: { lastEventId: { type: 'string', pattern: '^\\d+$' } } },
        headers: { type: 'object', properties: { 'last-event-id': { type: 'string' } } },
        response: { 200: { description: 'text/event-stream', type: 'string' }, ...errorResponses(401, 403) },
      },
    },
    (request, reply) => {
      const lastHeader = request.headers['last-event-id'];
      const last = (typeof lastHeader === 'string' && lastHeader.trim() !== '' ? lastHeader : undefined) ?? request.query.lastEventId;
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.flushHeaders();
      let closed = false;
      const send = (e: HubEvent | { id: number; event: string; data: string }) => {
        if (closed) return;
        res.write(`id: ${e.id}\nevent: ${e.event}\ndata: ${e.data}\n\n`);
        if (res.writableLength > MAX_STREAM_BACKLOG) end(); // too slow: it reconnects and replays
      };
      // Replay and subscribe in one synchronous step: no event falls between them.
      if (last !== undefined) {
        const replay = o.hub.since(/^\d+$/.test(last.trim()) ? Number(last.trim()) : Number.NaN);
        if (replay.reset) send({ id: o.hub.lastId, event: 'reset', data: '{}' });
        else for (const e of replay.events) send(e);
      }
      const unsubscribe = o.hub.subscribe(send);
      const ping = setInterval(() => res.write(': ping\n\n'), o.pingMs ?? 15_000);
      function end() {
        if (closed) return;
        closed = true;
        unsubscribe();
        clearInterval(ping);
        openStreams.delete(end);
        res.end();
      }
      openStreams.add(end);
      res.on('close', end);
    },
  );

  // --- dashboard ---------------------------------------------------------------------
  const dist = o.webDist && fs.existsSync(path.join(o.webDist, 'index.html')) ? o.webDist : null;
  if (dist) {
    await app.register(fastifyStatic, { root: dist, prefix: '/', dotfiles: 'ignore', index: ['index.html'], schemaHide: true });
  } else {
    app.get('/', { schema: { hide: true } }, async (_request, reply) =>
      reply.type('text/plain; charset=utf-8').send('agentq serve: the dashboard is not built. Run `npm run build:web`, then restart `agentq serve`. The API is at /v1 (see /openapi.json).\n'),
    );
  }
  app.setNotFoundHandler((request, reply) => {
    const url = pathOf(request.url);
    // The dashboard is a single-page app: its routes are index.html.
    if (dist && (request.method === 'GET' || request.method === 'HEAD') && !isProtectedPath(url) && url !== '/openapi.json') {
      return reply.type('text/html; charset=utf-8').sendFile('index.html');
    }
    throw noRoute(request.method, request.url);
  });

  return app;
}


