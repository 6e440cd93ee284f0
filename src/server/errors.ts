/**
 * HTTP errors of the API and their one body shape (the contract's
 * `{"error": {"code", "message", "field"}}`), and the mapping from everything a request can
 * throw (Fastify's parser and validation errors, agent-queue's own errors) to a status.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AgentQueueError, InvalidTaskError, NotFoundError } from '../core/errors.ts';
import { isTransientStoreError } from '../store/store.ts';
import { pathOf } from './request-url.ts';

/** The error codes of the API and their HTTP status. */
export const ERROR_STATUS = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  gone: 410,
  payload_too_large: 413,
  unsupported_media_type: 415,
  too_many_requests: 429,
  internal: 500,
  unavailable: 503,
} as const;
export type ErrorCode = keyof typeof ERROR_STATUS;

/** The body of every 4xx/5xx answer. `field`: the offending field's JSON path (`priority`, `tags.1`, a header or query name), else null. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; field: string | null };
}

/** An error a route throws on purpose: `code` decides the status. */
export class HttpError extends Error {
  readonly code: ErrorCode;
  readonly field: string | null;
  constructor(code: ErrorCode, message: string, field: string | null = null) {
    super(message);
    this.name = 'HttpError';
    this.code = code;
    this.field = field;
  }
  get statusCode(): number {
    return ERROR_STATUS[this.code];
  }
}

/**
 * The 404 of a request that matches no route: `METHOD PATH: no such route` (the path without
 * its query), and why when the path is refused for its form (see `pathProblem`).
 */
export function noRoute(method: string, url: string, why?: string): HttpError {
  return new HttpError('not_found', `${method} ${pathOf(url)}: no such route${why ? ` (${why})` : ''}`);
}

interface AjvIssue {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** `/tags/1` → `tags.1`; an Ajv `required`/`additionalProperties` issue names the property. */
function fieldOf(issue: AjvIssue): string | null {
  const base = (issue.instancePath ?? '').split('/').filter(Boolean).join('.');
  const prop = issue.params?.missingProperty ?? issue.params?.additionalProperty;
  const name = typeof prop === 'string' ? (base ? `${base}.${prop}` : prop) : base;
  return name || null;
}

/** A human message for an Ajv issue, naming the field first as task-file messages do. */
function ajvMessage(issue: AjvIssue, context: string | undefined, field: string | null): string {
  const where = field ?? (context === 'body' ? 'body' : (context ?? 'request'));
  if (issue.keyword === 'additionalProperties') return `${where}: unknown field`;
  if (issue.keyword === 'required') return `${where}: required`;
  if (issue.keyword === 'enum' && Array.isArray(issue.params?.allowedValues)) {
    return `${where}: not one of ${(issue.params.allowedValues as unknown[]).join(', ')}`;
  }
  return `${where}: ${issue.message ?? 'invalid'}`;
}

/** Maps any error to the status and body the client gets. */
export function toHttpError(err: unknown): { status: number; body: ErrorBody } {
  const make = (code: ErrorCode, message: string, field: string | null = null) => ({ status: ERROR_STATUS[code], body: { error: { code, message, field } } });
  if (err instanceof HttpError) return make(err.code, err.message, err.field);
  if (err instanceof InvalidTaskError) return make('bad_request', err.message, err.field);
  if (err instanceof NotFoundError) return make('not_found', err.message);
  if (err instanceof AgentQueueError) {
    if (err.code === 'not_blocked') return make('conflict', err.message);
    if (err.code === 'queue_full') return make('too_many_requests', err.message);
    if (err.code === 'usage') return make('bad_request', err.message);
  }
  if (isTransientStoreError(err)) return make('unavailable', `store unavailable (${(err as Error).message}); try again shortly`);
  const fe = err as FastifyError & { validation?: AjvIssue[]; field?: unknown };
  if (fe.code === 'FST_ERR_VALIDATION') {
    const ctx = fe.validationContext;
    const issue = fe.validation?.[0];
    if (issue) {
      const field = fieldOf(issue);
      return make('bad_request', ajvMessage(issue, ctx, field), field);
    }
    return make('bad_request', fe.message, typeof fe.field === 'string' ? fe.field : null);
  }
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return make('payload_too_large', `body: larger than the limit (serve.body_limit)`, 'body');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return fe.statusCode === 415
        ? make('unsupported_media_type', 'content-type: send application/json', 'content-type')
        : make('bad_request', fe.message);
  }
  if (fe.statusCode === 413) return make('payload_too_large', 'body: larger than the limit (serve.body_limit)', 'body');
  if (fe.statusCode === 415) return make('unsupported_media_type', 'content-type: send application/json', 'content-type');
  if (fe.statusCode === 404) return make('not_found', fe.message);
  // Other client errors Fastify detects (a bad header, …): 400 with its message.
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) return make('bad_request', fe.message);
  return make('internal', 'internal error (see the server log)');
}

/** Fastify error handler: every error becomes {@link ErrorBody}; 5xx are logged. */
export function errorHandler(err: Error, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = toHttpError(err);
  if (status >= 500) request.log.error({ err }, 'request failed');
  if (status === 401) void reply.header('www-authenticate', 'Bearer');
  if (status === 503) void reply.header('retry-after', '1');
  void reply.code(status).type('application/json; charset=utf-8').send(body);
}
