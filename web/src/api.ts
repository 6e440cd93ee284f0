/**
 * HTTP access to `agentq serve` (the contract: JSON bodies, errors as
 * `{"error":{"code","message","field"}}`, `Authorization: Bearer TOKEN` when a token is set).
 *
 * The token is asked for once: the first 401 raises a token request (shown by the app as a
 * dialog); every call that got a 401 waits for it, then is sent again. The token is kept in
 * sessionStorage (this tab only, gone when it closes) and never in the URL.
 */
import type { Attempt, Task, Verification } from '../../src/core/types.ts';

export type { Attempt, Task, Verification };

const TOKEN_KEY = 'agentq.token';

/** An error response of the API, or a network failure (`status` 0, code `network`). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** JSON path of the offending request field (`priority`, `tags.0`), else null. */
    readonly field: string | null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** What the token dialog shows: `rejected` when a token was sent and the server refused it. */
export interface TokenRequest {
  rejected: boolean;
}

let pending: { request: TokenRequest; resolve: () => void; promise: Promise<void> } | null = null;
const tokenListeners = new Set<(r: TokenRequest | null) => void>();

/** The token of this tab's session, else null. */
export function getToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

/** Subscribes to token requests (null: answered). Returns the unsubscribe function. */
export function onTokenRequest(listener: (r: TokenRequest | null) => void): () => void {
  tokenListeners.add(listener);
  if (pending) listener(pending.request);
  return () => tokenListeners.delete(listener);
}

/** Stores the token for this tab and resends every call that waits for it. */
export function provideToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token.trim());
  const p = pending;
  pending = null;
  for (const l of tokenListeners) l(null);
  p?.resolve();
}

function waitForToken(rejected: boolean): Promise<void> {
  if (!pending) {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    pending = { request: { rejected }, resolve, promise };
    for (const l of tokenListeners) l(pending.request);
  }
  return pending.promise;
}

/**
 * `fetch` with the session's token; a 401 waits for a token from the dialog and tries again.
 * Other statuses are returned as they are. Throws ApiError(0, 'network') when the server is
 * unreachable, and the AbortError of `init.signal`.
 */
export async function apiFetch(path: string, init: RequestInit = {}): Promise<Response> {
  for (;;) {
    const token = getToken();
    const headers = new Headers(init.headers);
    if (token) headers.set('Authorization', `Bearer ${token}`);
    let res: Response;
    try {
      res = await fetch(path, { ...init, headers });
    } catch (e) {
      if (init.signal?.aborted) throw e;
      throw new ApiError(0, 'network', `cannot reach the server (${(e as Error).message})`, null);
    }
    if (res.status !== 401) return res;
    await res.body?.cancel().catch(() => {});
    // Another call may have got the token meanwhile: send again at once.
    if (getToken() !== token) continue;
    await waitForToken(token !== null);
    if (init.signal?.aborted) throw new DOMException('aborted', 'AbortError');
  }
}

/** Sends a request and parses the JSON answer; a non-2xx status throws ApiError with the body's code, message and field. */
export async function apiJson<T>(path: string, init: RequestInit = {}): Promise<T> {
  const res = await apiFetch(path, { ...init, headers: { Accept: 'application/json', ...(init.headers as Record<string, string> | undefined) } });
  const text = await res.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!res.ok) {
    const err = (body as { error?: { code?: unknown; message?: unknown; field?: unknown } } | null)?.error;
    throw new ApiError(
      res.status,
      typeof err?.code === 'string' ? err.code : `http_${res.status}`,
      typeof err?.message === 'string' ? err.message : `${res.status} ${res.statusText || 'error'}${text && !err ? `: ${text.slice(0, 200)}` : ''}`,
      typeof err?.field === 'string' && err.field !== '' ? err.field : null,
    );
  }
  return body as T;
}

/** POST with a JSON body (or none: cancel and retry send no body at all). */
export function apiPost<T>(path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  return apiJson<T>(path, body === undefined ? { method: 'POST', headers } : { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

/** GET /v1/tasks/:id. */
export interface TaskDetail {
  task: Task;
  attempts: Attempt[];
  /** Its verify runs (older servers: absent). */
  verifications?: Verification[];
  callback: { url: string; state: 'pending' | 'delivered' | 'failed'; attempts: number; lastError: string | null; deliveredAt: number | null } | null;
}

/** One agent's row of GET /v1/status (money USD, tokens since local midnight, times epoch ms). */
export interface AgentStatus {
  agent: string;
  /** The agent's account (`agents.<name>.account`), when it is not the agent's name. */
  account?: string;
  running: number;
  attempts: number;
  costUsd: number;
  inputTokens: number;
  outputTokens: number;
  pausedUntil?: number | null;
  pauseReason?: string | null;
}

/** GET /v1/status (`agentq status --json`). */
export interface StatusBody {
  counts: Record<string, number>;
  agents: AgentStatus[];
  /** Pauses as `agentq status --json` lists them (older servers); merged into `agents`. */
  pausedAgents?: Array<{ agent: string; until: number; reason: string }>;
  /** Live dispatchers (older servers: without host, labels or running). */
  workers?: WorkerStatus[];
}

/** A live dispatcher in GET /v1/status (times epoch ms). */
export interface WorkerStatus {
  id: string;
  host?: string;
  pid?: number;
  /** Its labels (`agentq run --label`), matched against tasks' `runs_on`. */
  labels?: string[];
  /** Its running attempts. */
  running?: number;
  startedAt?: number;
  heartbeatAt?: number;
}

/** One row of GET /v1/usage (`agentq usage --json`); absent dimensions are missing or null. */
export interface UsageRow {
  day?: string | null;
  agent?: string | null;
  model?: string | null;
  tag?: string | null;
  attempts: number;
  completed?: number;
  costUsd: number;
  inputTokens: number;
  outputTokens: number;
}

export interface UsageBody {
  since: number | string | null;
  until: number | string | null;
  rows: UsageRow[];
  total?: UsageRow;
}
