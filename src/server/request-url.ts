/**
 * Rules about a request's URL as received (`request.url`: path and query, not decoded):
 * which paths are not normalized (and so name nothing).
 */

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
 * segment, also percent-encoded (`%2e`), an empty segment (`//`; a trailing `/` is fine),
 * a NUL byte (`%00`). The router and the static file server read such paths differently
 * (one literally, one resolved), so they are answered 404 before either sees them.
 * Invalid %-escapes are left to the router (400, `FST_ERR_BAD_URL`).
 */
export function pathProblem(url: string): string | null {
  const segments = pathOf(url).split('/').slice(1);
  for (const [i, raw] of segments.entries()) {
    const s = decode(raw);
    if (s === null) continue;
    if (s === '' && i < segments.length - 1) return 'an empty path segment ("//")';
    if (s === '.' || s === '..') return `a "${s}" path segment`;
    if (s.includes('\0')) return 'a NUL byte in the path';
  }
  return null;
}
