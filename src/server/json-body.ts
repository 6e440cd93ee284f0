/**
 * How the API reads a JSON request body: the one parser for `application/json` (Fastify's
 * default one is replaced), so that every way a body can be unreadable gets its own 400
 * naming what is wrong instead of "not valid JSON" or a stack overflow deeper in.
 */
import { HttpError } from './errors.ts';

/** Deepest nesting a body may have: the top-level object or array is level 1. */
export const MAX_JSON_DEPTH = 64;

/** JSON is UTF-8 (RFC 8259); `fatal`: a byte sequence that is not UTF-8 throws instead of becoming U+FFFD. */
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Checks a `Content-Type` header's `charset` parameter: absent or `utf-8` (any case, quoted
 * or not).
 * @throws HttpError 415 (`unsupported_media_type`, field `content-type`) for another charset
 */
export function checkJsonCharset(contentType: string | undefined): void {
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(contentType ?? '')?.[1];
  if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
    throw new HttpError('unsupported_media_type', `content-type: charset ${JSON.stringify(charset)} is not utf-8 (JSON is UTF-8)`, 'content-type');
  }
}

/** `a.b.0` for a path of keys and indexes; `body` for the top level. */
const pathText = (path: readonly (string | number)[]) => (path.length === 0 ? 'body' : path.join('.'));

/** The problem of a number JSON.parse made of the text, if any: `1e309` becomes Infinity. */
const numberProblem = (e: unknown, path: () => readonly (string | number)[]) =>
  typeof e === 'number' && !Number.isFinite(e) ? { field: pathText(path()), message: `${pathText(path())}: a number too large to represent (it would be ${e})` } : null;

/**
 * The first problem of a parsed JSON value, found without recursion (an explicit stack, so
 * any depth is safe): nesting deeper than {@link MAX_JSON_DEPTH}, a number too large for a
 * double (`1e309`), or a key that would rewrite an object's prototype when the value is
 * merged or spread — `__proto__` anywhere, `constructor` holding an object with a
 * `prototype` key (the rule of Fastify's secure-json-parse, with the key's path).
 * @returns null when the value is fine, else the field (the key's path, `tags.0.__proto__`;
 *   for too deep nesting the top-level field or `body`) and the message
 */
export function jsonValueProblem(value: unknown): { field: string; message: string } | null {
  const atTop = numberProblem(value, () => []);
  if (atTop) return atTop;
  const stack: Array<{ value: unknown; path: (string | number)[] }> = [{ value, path: [] }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const v = item.value;
    if (v === null || typeof v !== 'object') continue;
    if (item.path.length >= MAX_JSON_DEPTH) {
      const top = item.path[0];
      return { field: top === undefined || typeof top === 'number' ? 'body' : top, message: `body: nests deeper than ${MAX_JSON_DEPTH} levels${typeof top === 'string' ? ` (in ${top})` : ''}` };
    }
    const entries: Array<[string | number, unknown]> = Array.isArray(v) ? v.map((e, i) => [i, e]) : Object.entries(v);
    for (const [k, e] of entries) {
      const path = () => [...item.path, k];
      const bad = numberProblem(e, path);
      if (bad) return bad;
      if (k === '__proto__' || (k === 'constructor' && e !== null && typeof e === 'object' && Object.hasOwn(e, 'prototype'))) {
        const field = pathText(k === '__proto__' ? path() : [...path(), 'prototype']);
        return { field, message: `${field}: forbidden key (a "__proto__" or "constructor.prototype" key could rewrite object prototypes)` };
      }
      if (e !== null && typeof e === 'object') stack.push({ value: e, path: path() });
    }
  }
  return null;
}

/**
 * Parses a request body sent as `application/json`.
 * @param raw the body's bytes as received (at most `serve.body_limit`, checked by Fastify)
 * @returns the parsed value (any JSON value: which shape a route accepts is its schema's business)
 * @throws HttpError 400 (`bad_request`, field `body` or the offending key's path) for an
 *   empty body, bytes that are not UTF-8, text that is not JSON (with the parser's reason),
 *   nesting deeper than {@link MAX_JSON_DEPTH}, a number too large for a double, and a
 *   `__proto__` / `constructor.prototype` key (see {@link jsonValueProblem})
 */
export function parseJsonBody(raw: Buffer): unknown {
  if (raw.length === 0) throw new HttpError('bad_request', 'body: empty, but the content type is application/json', 'body');
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    throw new HttpError('bad_request', 'body: not valid UTF-8 (JSON must be UTF-8)', 'body');
  }
  if (text.trim() === '') throw new HttpError('bad_request', 'body: empty (only white space), but the content type is application/json', 'body');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new HttpError('bad_request', `body: not valid JSON (${(err as Error).message})`, 'body');
  }
  const problem = jsonValueProblem(value);
  if (problem) throw new HttpError('bad_request', problem.message, problem.field);
  return value;
}
