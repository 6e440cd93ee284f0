/**
 * The client half of A2A for the `a2a` runner: reaching a remote A2A agent through the SDK
 * (`@a2a-js/sdk/client`: agent card, then its JSON-RPC or REST transport) with agentq's
 * rules around it: a bearer token, a time limit per request, and every error sorted into
 * transient (retried with backoff), lost (the remote does not know the task) or final.
 */
import { ClientFactory, ClientFactoryOptions, DefaultAgentCardResolver, JsonRpcTransportFactory, RestTransportFactory, TaskNotFoundError, type Client } from '@a2a-js/sdk/client';
import type { AgentCard } from '@a2a-js/sdk';

/** HTTP statuses that say "not now" rather than "no": retried (408, 429, 502, 503, 504). */
export const TRANSIENT_HTTP = new Set([408, 429, 502, 503, 504]);

/** Error codes of a connection that failed or dropped (Node's and undici's). */
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

/** An HTTP response whose status decides how the call is handled; `where` names the request. */
abstract class RemoteHttpError extends Error {
  constructor(
    readonly status: number,
    readonly where: string,
  ) {
    super(`HTTP ${status} from ${where}`);
    this.name = new.target.name;
  }
}

/** A response whose status says the remote cannot take the request now ({@link TRANSIENT_HTTP}). */
export class RemoteBusyError extends RemoteHttpError {}

/** HTTP 401 or 403: the remote refused agentq's credentials (or asks for some). */
export class RemoteAuthError extends RemoteHttpError {}

/** A request that did not get an answer within its time limit. */
export class RemoteTimeoutError extends Error {
  constructor(
    readonly where: string,
    readonly ms: number,
  ) {
    super(`no answer from ${where} within ${ms} ms`);
    this.name = 'RemoteTimeoutError';
  }
}

/** The URL does not serve an A2A agent card (404, not JSON, no endpoint): nothing to retry. */
export class NotAnAgentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotAnAgentError';
  }
}

/** How an error of a remote call is handled. */
export type ErrorKind = 'transient' | 'lost' | 'auth' | 'final';

/**
 * Sorts an error of a remote call: `transient` (a refused or dropped connection, a request
 * timeout, HTTP 408/429/502/503/504: try again later), `lost` (JSON-RPC `TaskNotFound`, -32001:
 * the remote does not know the task), `auth` (HTTP 401/403), else `final` (a JSON-RPC error
 * such as invalid params, another HTTP status, a response that is not A2A).
 */
export function errorKind(err: unknown): ErrorKind {
  if (err instanceof TaskNotFoundError) return 'lost';
  if (err instanceof RemoteAuthError) return 'auth';
  if (err instanceof RemoteBusyError || err instanceof RemoteTimeoutError) return 'transient';
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return 'transient';
    if (e instanceof RemoteBusyError || e instanceof RemoteTimeoutError) return 'transient';
  }
  // Node's fetch: `TypeError: fetch failed` with the socket error as its cause (checked above);
  // without a code it is still a network failure.
  if (err instanceof TypeError && err.message === 'fetch failed') return 'transient';
  return 'final';
}

/** An error's message with its innermost cause, e.g. `fetch failed: connect ECONNREFUSED 127.0.0.1:9`. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const parts = [err.message || err.name];
  for (let e = (err as { cause?: unknown }).cause, depth = 0; e instanceof Error && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e.message && !parts.some((p) => p.includes(e.message))) parts.push(e.message);
  }
  return parts.join(': ');
}

/** Where and how to reach a remote agent. */
export interface RemoteTarget {
  /** The remote as named (config `remotes` name, or the URL), for messages. */
  name: string;
  /** The agent's URL: its card is at `/.well-known/agent-card.json` below it, or the URL itself when it ends in `.json`. */
  url: string;
  /** Bearer token sent with every request; null: none. */
  token: string | null;
}

/** Options of {@link connectRemote}. */
export interface ConnectOptions {
  /** Time limit of each HTTP request, ms. */
  requestTimeoutMs: number;
  /** Aborts the card request (and, through the client's fetch, every later one). */
  signal?: AbortSignal;
}

/**
 * The fetch every request to the remote goes through: adds `Authorization: Bearer` when a
 * token is set, bounds the request by `timeoutMs` (a {@link RemoteTimeoutError}, unless the
 * caller's own signal aborted it), and turns a status of {@link TRANSIENT_HTTP} into a
 * {@link RemoteBusyError}, 401 and 403 into a {@link RemoteAuthError}, before the SDK reads it.
 */
export function remoteFetch(token: string | null, timeoutMs: number): typeof fetch {
  const wrapped = async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const headers = new Headers(init.headers);
    if (token) headers.set('authorization', `Bearer ${token}`);
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    const where = `${init.method ?? 'GET'} ${typeof input === 'string' ? input : input instanceof URL ? input.href : input.url}`;
    let response: Response;
    try {
      response = await fetch(input, { ...init, headers, signal });
    } catch (err) {
      if (timeout.aborted && !init.signal?.aborted) throw new RemoteTimeoutError(where, timeoutMs);
      throw err;
    }
    if (TRANSIENT_HTTP.has(response.status)) {
      await response.body?.cancel().catch(() => {});
      throw new RemoteBusyError(response.status, where);
    }
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel().catch(() => {});
      throw new RemoteAuthError(response.status, where);
    }
    return response;
  };
  return wrapped as typeof fetch;
}

/**
 * Reads the remote's agent card and makes an SDK client on the transport it offers
 * (JSON-RPC or HTTP+JSON), every request through {@link remoteFetch}.
 * @returns the client and the card
 * @throws NotAnAgentError when the URL does not serve an A2A agent card (HTTP 404 or another
 *   status that is not transient, a body that is not JSON, a card without an endpoint URL,
 *   no transport agentq speaks); transient and auth errors as they come (see {@link errorKind})
 */
export async function connectRemote(target: RemoteTarget, options: ConnectOptions): Promise<{ client: Client; card: AgentCard }> {
  const fetchImpl = remoteFetch(target.token, options.requestTimeoutMs);
  const cardFetch: typeof fetch = ((input: string | URL | Request, init?: RequestInit) =>
    fetchImpl(input, { ...init, headers: { accept: 'application/json', ...init?.headers }, ...(options.signal ? { signal: options.signal } : {}) })) as typeof fetch;
  const cardUrl = /\.json$/i.test(new URL(target.url).pathname) ? target.url : new URL('.well-known/agent-card.json', target.url.endsWith('/') ? target.url : `${target.url}/`).href;
  const resolver = new DefaultAgentCardResolver({ fetchImpl: cardFetch });
  let card: AgentCard;
  try {
    card = await resolver.resolve(cardUrl, '');
  } catch (err) {
    if (errorKind(err) !== 'final') throw err;
    if (options.signal?.aborted) throw err;
    const said = err instanceof SyntaxError ? 'its answer is not JSON' : describeError(err).replace(/^Failed to fetch Agent Card from \S+: /, 'HTTP ');
    throw new NotAnAgentError(`remote ${target.name}: ${target.url} is not an A2A agent: GET ${cardUrl}: ${said}`);
  }
  if (typeof card !== 'object' || card === null || typeof card.url !== 'string' || !card.url) {
    throw new NotAnAgentError(`remote ${target.name}: ${target.url} is not an A2A agent: ${cardUrl} is not an agent card (no "url" of its endpoint)`);
  }
  const factory = new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new JsonRpcTransportFactory({ fetchImpl }), new RestTransportFactory({ fetchImpl })],
      // Non-blocking sends: the answer is the task as soon as the remote has it.
      clientConfig: { polling: true },
    }),
  );
  try {
    return { client: await factory.createFromAgentCard(card), card };
  } catch (err) {
    throw new NotAnAgentError(`remote ${target.name}: ${target.url}: ${describeError(err)}`);
  }
}
