/**
 * The A2A routes of `agentq serve`, on its Fastify app (src/server/app.ts):
 * - `GET /.well-known/agent-card.json`: the agent card (src/a2a/server/card.ts), open to
 *   anyone like `/healthz` (A2A clients read it before they authenticate; it holds no secret).
 * - `POST /a2a`: JSON-RPC 2.0 through the SDK's `JsonRpcTransportHandler` and agentq's
 *   request handler (src/a2a/server/handler.ts), behind the API's auth (src/server/auth.ts:
 *   the bearer token when one is set, else loopback only). `message/stream` and
 *   `tasks/resubscribe` answer with Server-Sent Events (`data: {jsonrpc, id, result}` per
 *   event, an error as `event: error`, `: ping` comments), the others with one JSON-RPC
 *   response. A body that is not JSON is -32700 (HTTP 400, as the SDK's own server does);
 *   every other error is a JSON-RPC error with HTTP 200.
 */
import type { A2AResponse } from '@a2a-js/sdk';
import { A2AError, JsonRpcTransportHandler } from '@a2a-js/sdk/server';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { parseJsonBody } from '../../server/json-body.ts';
import { A2A_PATH, AGENT_CARD_ROUTE, agentCard } from './card.ts';
import { AgentqCallContext, AgentqRequestHandler, type A2aHandlerDeps } from './handler.ts';

export interface A2aRoutesOptions extends A2aHandlerDeps {
  /** Whether the API needs a bearer token (the card then says so). */
  token: string | null;
  /** Interval of the `: ping` comment on open streams, ms. Default 15,000. */
  pingMs?: number;
}

/** Largest buffered output of a stream before the slow client is dropped (it can `tasks/resubscribe`), bytes. */
const MAX_STREAM_BACKLOG = 4 * 1024 * 1024;

const STREAM_METHODS = new Set(['message/stream', 'tasks/resubscribe']);

/** A JSON-RPC error response. */
const errorResponse = (id: unknown, err: A2AError) => ({ jsonrpc: '2.0' as const, id: typeof id === 'string' || typeof id === 'number' ? id : null, error: err.toJSONRPCError() });

/** The request's JSON-RPC id and method, as far as it has them. */
function rpcOf(body: unknown): { id: unknown; method: unknown } {
  const b = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  return { id: b.id, method: b.method };
}

/** The JSON-RPC endpoint's URL for a request: `serve.public_url` (no trailing slash, see config) + `/a2a`, else the URL the request came to. */
function endpointUrl(o: A2aRoutesOptions, request: FastifyRequest): string {
  const base = o.config.serve.public_url;
  if (base) return `${base}${A2A_PATH}`;
  return `${request.protocol}://${request.host || 'localhost'}${A2A_PATH}`;
}

/**
 * Adds the A2A routes to `app` (before it listens). Open calls end when the app closes.
 */
export async function registerA2aRoutes(app: FastifyInstance, o: A2aRoutesOptions): Promise<void> {
  const card = (url: string) => agentCard({ config: o.config, paths: o.paths, url, token: o.token !== null });
  const handler = new AgentqRequestHandler(o, card(`http://127.0.0.1${A2A_PATH}`));
  const transport = new JsonRpcTransportHandler(handler);
  const open = new Set<AbortController>();
  app.addHook('preClose', async () => {
    for (const c of open) c.abort();
  });

  app.get(
    AGENT_CARD_ROUTE,
    { schema: { security: [], summary: 'The A2A agent card (protocol 0.3): skills, capabilities, the JSON-RPC endpoint /a2a, security' } },
    async (request) => card(endpointUrl(o, request)),
  );

  /** Sends a streamed answer as Server-Sent Events until it ends, the client goes or the server closes. */
  async function sendStream(reply: FastifyReply, stream: AsyncGenerator<unknown>, id: unknown, abort: AbortController): Promise<void> {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.flushHeaders();
    const ping = setInterval(() => res.write(': ping\n\n'), o.pingMs ?? 15_000);
    try {
      for await (const event of stream) {
        if (abort.signal.aborted) break;
        res.write(`data: ${JSON.stringify(event)}\n\n`);
        if (res.writableLength > MAX_STREAM_BACKLOG) break;
      }
    } catch (err) {
      const e = err instanceof A2AError ? err : A2AError.internalError(err instanceof Error ? err.message : String(err));
      if (!abort.signal.aborted) res.write(`event: error\ndata: ${JSON.stringify(errorResponse(id, e))}\n\n`);
    } finally {
      abort.abort();
      clearInterval(ping);
      res.end();
    }
  }

  await app.register(async (scope) => {
    // The body is read here, so that one that is not JSON is a JSON-RPC parse error.
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
    scope.post(
      A2A_PATH,
      {
        schema: {
          summary: 'A2A JSON-RPC 2.0 endpoint (protocol 0.3)',
          description:
            'message/send, message/stream (SSE), tasks/get, tasks/cancel, tasks/resubscribe (SSE), tasks/pushNotificationConfig/set|get|list|delete. See /.well-known/agent-card.json and README "Delegating to another queue".',
        },
      },
      async (request, reply) => {
        let body: unknown;
        try {
          body = parseJsonBody(request.body as Buffer);
        } catch (err) {
          return reply.code(400).send(errorResponse(null, A2AError.parseError((err as Error).message)));
        }
        const { id, method } = rpcOf(body);
        const abort = new AbortController();
        open.add(abort);
        reply.raw.on('close', () => abort.abort());
        let result: A2AResponse | AsyncGenerator<unknown>;
        try {
          result = await transport.handle(body, new AgentqCallContext(abort.signal));
        } catch (err) {
          open.delete(abort);
          return reply.send(errorResponse(id, A2AError.internalError((err as Error).message)));
        }
        if (typeof (result as AsyncGenerator<unknown>)[Symbol.asyncIterator] === 'function') {
          try {
            await sendStream(reply, result as AsyncGenerator<unknown>, id, abort);
          } finally {
            open.delete(abort);
          }
          return reply;
        }
        open.delete(abort);
        // A streaming method refused before its stream began: as an event, for clients that read only streams.
        if (typeof method === 'string' && STREAM_METHODS.has(method) && 'error' in (result as object) && /text\/event-stream/.test(request.headers.accept ?? '')) {
          reply.hijack();
          reply.raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
          reply.raw.end(`event: error\ndata: ${JSON.stringify(result)}\n\n`);
          return reply;
        }
        return reply.code(200).send(result);
      },
    );
  });
}
