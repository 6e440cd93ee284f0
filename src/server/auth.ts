/**
 * Who may call the API. A configured token (`AGENTQ_TOKEN`, else config `serve.token`) is
 * required as `Authorization: Bearer TOKEN` on every API route (`/v1/*`, `/metrics`, the A2A
 * endpoint `/a2a`), on loopback too; `/healthz`, `/openapi.json`, the A2A agent card
 * (`/.well-known/agent-card.json`) and the dashboard's static files are open; an answer
 * link's one-time token opens its one route instead ({@link usesAnswerLink}). The
 * token is compared in constant time (sha256 digests, `crypto.timingSafeEqual`), and never
 * logged or stored. Without a token the server listens only on loopback, and browsers
 * are kept out of the API: a request whose `Host` is not a loopback name (DNS rebinding)
 * or whose `Origin` is a page not on this machine (cross-site request forgery) is 403.
 */
import crypto from 'node:crypto';
import net from 'node:net';
import type { FastifyRequest } from 'fastify';
import { UsageError } from '../core/errors.ts';
import { HttpError } from './errors.ts';
import { PUSH_ROUTE } from '../agents/a2a/pushes.ts';

/** The token in force: `AGENTQ_TOKEN` if set and not empty, else config's `serve.token`, else null. */
export function resolveToken(env: Record<string, string | undefined>, configToken: string | undefined): string | null {
  const fromEnv = env.AGENTQ_TOKEN?.trim();
  if (fromEnv) return fromEnv;
  return configToken?.trim() || null;
}

/** Whether `host` names only this machine: `localhost`, 127.0.0.0/8, `::1`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) return h === '::1' || /^::ffff:127\./.test(h);
  return false;
}

/**
 * Refuses to listen beyond loopback without a token.
 * @throws UsageError (exit code 2) naming the host and what to set
 */
export function checkBind(host: string, token: string | null): void {
  if (token === null && !isLoopbackHost(host)) {
    throw new UsageError(
      `serve: refusing to listen on ${host} without a token: anyone who can reach it could run tasks. ` +
        'Set AGENTQ_TOKEN (or serve.token in .agent-queue/config.yaml) so every request needs "Authorization: Bearer TOKEN", or listen on 127.0.0.1',
    );
  }
}

const digest = (s: string) => crypto.createHash('sha256').update(s, 'utf8').digest();

/** Constant-time token check (equal-length sha256 digests; the token's length leaks nothing). */
export function tokenMatches(given: string, expected: string): boolean {
  return crypto.timingSafeEqual(digest(given), digest(expected));
}

/**
 * Routes anyone may call: liveness, the OpenAPI document, the A2A agent card, the dashboard's
 * files, and the push notifications of delegations (each checks its delegation's own token).
 */
const OPEN_ROUTES = new Set(['/healthz', '/openapi.json', '/.well-known/agent-card.json', '/', '/*', PUSH_ROUTE]);

/**
 * Whether the route a request matched is behind the token: every route but
 * {@link OPEN_ROUTES}. Decided by the matched route (`request.routeOptions.url`), not the
 * raw URL, because the router decodes the path (`/%761/tasks` matches `/v1/tasks`); no
 * match (404, the dashboard's own paths) is open.
 */
export function isProtectedRoute(route: string | undefined): boolean {
  return route !== undefined && !OPEN_ROUTES.has(route);
}

/** The one route an answer link's one-time token opens (`?token=`, see src/notify/answer-link.ts). */
export const ANSWER_LINK_ROUTE = '/v1/tasks/:id/answer';

/**
 * Whether a request carries an answer link's one-time token (`?token=`) on
 * {@link ANSWER_LINK_ROUTE}: then the main token (and, without one, the Host/Origin checks) is
 * not asked for, and the route itself accepts nothing but that one-time token, for that task.
 * Every other route ignores a `token` query parameter.
 */
export function usesAnswerLink(request: FastifyRequest): boolean {
  return request.routeOptions.url === ANSWER_LINK_ROUTE && typeof (request.query as Record<string, unknown> | undefined)?.token === 'string';
}

/** Whether a raw path names the API (`/v1/…`), `/metrics` or the A2A endpoint (`/a2a`) (for the 404 handler: JSON, not the dashboard). */
export function isProtectedPath(url: string): boolean {
  const p = url.split('?')[0] ?? '';
  return p === '/v1' || p.startsWith('/v1/') || p === '/metrics' || p === '/a2a' || p.startsWith('/a2a/');
}

/** The `Host` header's host name, without port or brackets. */
function hostName(hostHeader: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(hostHeader) ?? /^([^:]+)(?::\d+)?$/.exec(hostHeader);
  return m?.[1] ?? hostHeader;
}

/**
 * The onRequest check for a protected path.
 * @throws HttpError 401 (`unauthorized`) for a missing or wrong token; 403 (`forbidden`)
 *   without a token for a non-loopback `Host` or a cross-site browser request
 */
export function authorize(request: FastifyRequest, token: string | null): void {
  if (token !== null) {
    const header = request.headers.authorization ?? '';
    const m = /^Bearer[ \t]+(.+)$/i.exec(header);
    if (!m) throw new HttpError('unauthorized', 'authorization: missing; send "Authorization: Bearer TOKEN"', 'authorization');
    if (!tokenMatches(m[1]!.trim(), token)) throw new HttpError('unauthorized', 'authorization: wrong token', 'authorization');
    return;
  }
  const host = request.headers.host ?? '';
  if (!isLoopbackHost(hostName(host))) {
    throw new HttpError('forbidden', `host: ${JSON.stringify(host)} is not a loopback name; without a token only localhost may call the API`, 'host');
  }
  // Browsers send Origin on every cross-origin request but simple GETs (whose answers they do not let a page read).
  const origin = request.headers.origin;
  if (origin === undefined) return;
  let local = false;
  try {
    const u = new URL(origin);
    local = u.host === host || isLoopbackHost(u.hostname);
  } catch {
    local = false; // "null" (sandboxed pages, file:) and garbage
  }
  if (!local) throw new HttpError('forbidden', `origin: requests from ${origin} are refused; without a token only pages on localhost may call the API`, 'origin');
}
