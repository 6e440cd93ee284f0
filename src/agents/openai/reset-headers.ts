/**
 * When an OpenAI-compatible API says a rate limit ends, from the headers of its HTTP 429.
 *
 * Headers read, first usable one wins:
 * 1. `retry-after-ms` — milliseconds (OpenAI's API and its SDKs);
 * 2. `Retry-After` (RFC 9110 §10.2.3) — delay-seconds (`7`, `1.5` accepted too) or an
 *    HTTP-date (`Wed, 21 Oct 2026 07:28:00 GMT`);
 * 3. `x-ratelimit-reset-requests` / `x-ratelimit-reset-tokens` (OpenAI, Groq, many
 *    gateways) — Go-style durations until the bucket refills: `1s`, `6m0s`, `2m59.56s`,
 *    `20ms`, `1h0m0s`. When `x-ratelimit-remaining-requests` / `-tokens` is `0`, that
 *    bucket's reset is the one used (both empty, or neither said: the later of the two).
 */

/** Anything with a case-insensitive `get`, e.g. a fetch `Headers`. */
export interface HeaderSource {
  get(name: string): string | null;
}

/** Longest delay believed, ms (a year): larger values are treated as unreadable. */
const MAX_DELAY_MS = 365 * 24 * 3600 * 1000;

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A Go-style duration (`1s`, `6m0s`, `2m59.56s`, `1h2m3.5s`, `20ms`; units ns, us/µs, ms,
 * s, m, h, d) or a bare number of seconds, as ms (rounded up to a whole ms). Null for
 * anything else, negatives, or more than a year.
 */
export function parseResetDuration(value: string | null | undefined): number | null {
  const text = value?.trim();
  if (!text) return null;
  if (/^\d+(?:\.\d+)?$/.test(text)) return bounded(Number(text) * 1000);
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)/gy;
  let total = 0;
  let end = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    end = re.lastIndex;
  }
  return end === text.length && end > 0 ? bounded(total) : null;
}

/**
 * `Retry-After` as an epoch ms: delay-seconds added to `now`, or an HTTP-date (any form
 * `Date.parse` reads, which covers IMF-fixdate, RFC 850 and asctime). A date in the past
 * gives `now`. Null when unreadable.
 *
 * @param now epoch ms the response was received.
 */
export function parseRetryAfter(value: string | null | undefined, now: number): number | null {
  const text = value?.trim();
  if (!text) return null;
  if (/^\d+(?:\.\d+)?$/.test(text)) {
    const ms = bounded(Number(text) * 1000);
    return ms === null ? null : now + ms;
  }
  // An HTTP-date names a weekday or a month; refuse bare tokens Date.parse would guess at.
  if (!/[a-z]{3}/i.test(text)) return null;
  const at = Date.parse(text);
  if (Number.isNaN(at) || at - now > MAX_DELAY_MS) return null;
  return Math.max(at, now);
}

/**
 * When the limit a 429 reports is over, as epoch ms, from its headers (see the module doc
 * for the order), or null when none of them says.
 *
 * @param now epoch ms the response was received.
 */
export function resetAtFromHeaders(headers: HeaderSource | null | undefined, now: number): number | null {
  if (!headers) return null;
  const retryAfterMs = headers.get('retry-after-ms')?.trim();
  if (retryAfterMs && /^\d+(?:\.\d+)?$/.test(retryAfterMs)) {
    const ms = bounded(Number(retryAfterMs));
    if (ms !== null) return now + ms;
  }
  const retryAfter = parseRetryAfter(headers.get('retry-after'), now);
  if (retryAfter !== null) return retryAfter;
  const buckets = (['requests', 'tokens'] as const)
    .map((b) => ({
      delay: parseResetDuration(headers.get(`x-ratelimit-reset-${b}`)),
      empty: headers.get(`x-ratelimit-remaining-${b}`)?.trim() === '0',
    }))
    .filter((b): b is { delay: number; empty: boolean } => b.delay !== null);
  if (buckets.length === 0) return null;
  const chosen = buckets.some((b) => b.empty) ? buckets.filter((b) => b.empty) : buckets;
  return now + Math.max(...chosen.map((b) => b.delay));
}

function bounded(ms: number): number | null {
  if (!Number.isFinite(ms) || ms < 0 || ms > MAX_DELAY_MS) return null;
  return Math.ceil(ms);
}
