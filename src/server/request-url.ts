/**
 * Rules about a request's URL as received (`request.url`: path and query, not decoded):
 * which paths are not normalized (and so name nothing), and how a URL is written to the log
 * without the secrets a client put in its query string.
 */

/** Marker that replaces a secret query value in the log. */
export const REDACTED = '[redacted]';

/** Query parameter names that look like they carry a secret (`token`, `access_token`, `api_key`, `password`, `auth`, …). */
const SECRET_PARAM = /token|key|secret|passw|pwd|auth|credential|session|cookie|signature|^sig$/i;

/** Whether a query parameter's (decoded) name looks like it carries a secret. */
export function isSecretParam(name: string): boolean {
  return SECRET_PARAM.test(name);
}

/** Percent-decodes a URL component; null when its %-escapes are not valid UTF-8. */
function decode(component: string): string | null {
  try {
    return decodeURIComponent(component);
  } catch {
    return null;
  }
}

/** The path of a request URL: before `?`, without the scheme and host of an absolute-form target (`GET http://h/p`). */
export function pathOf(url: string): string {
  const target = url.split('?')[0] ?? '';
  return target.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, '');
}

/**
 * Why a request path is not normalized, or null when it is. Not normalized: a `.` or `..`
 * segment, also percent-encoded (`%2e`) or between backslashes or encoded slashes
 * (`\..\`, `..%2f`), an empty segment (`//`; a trailing `/` is fine), a NUL byte (`%00`).
 * The router and the static file server read such paths differently (one literally, one
 * resolved), so they are answered 404 before either sees them. Invalid %-escapes are left
 * to the router (400, `FST_ERR_BAD_URL`).
 */
export function pathProblem(url: string): string | null {
  const segments = pathOf(url).split('/').slice(1);
  for (const [i, raw] of segments.entries()) {
    const s = decode(raw);
    if (s === null) continue;
    if (s === '' && i < segments.length - 1) return 'an empty path segment ("//")';
    if (s.includes('\0')) return 'a NUL byte in the path';
    const dots = s.split(/[/\\]/).find((p) => p === '.' || p === '..');
    if (dots !== undefined) return `a "${dots}" path segment`;
  }
  return null;
}

/**
 * A request URL for the log: the value of every query parameter whose name looks secret
 * ({@link isSecretParam}, judged on the decoded name) is replaced by {@link REDACTED}, and
 * so is the `user:password@` of an absolute-form target; the path and the other parameters
 * are kept as sent. A name that cannot be decoded counts as secret.
 */
export function redactUrl(rawUrl: string): string {
  const url = rawUrl.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, `$1${REDACTED}@`);
  const q = url.indexOf('?');
  if (q < 0) return url;
  const params = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const rawName = eq < 0 ? pair : pair.slice(0, eq);
      const name = decode(rawName.replace(/\+/g, ' '));
      return eq >= 0 && (name === null || isSecretParam(name)) ? `${rawName}=${REDACTED}` : pair;
    });
  return `${url.slice(0, q)}?${params.join('&')}`;
}
