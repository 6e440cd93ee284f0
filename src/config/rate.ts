/**
 * Rates for `agents.<name>.rate_limit` (issue #5): `N/UNIT` or `N/DURATION`, e.g. `60/h`,
 * `500/d`, `10/m`, `5/30s`, `100/5h`. The token bucket they describe is
 * `src/scheduler/rate-limit.ts`.
 */
import { parseDuration } from './duration.ts';

/** A parsed rate: at most `count` starts per `windowMs`. */
export interface Rate {
  /** Starts per window, an integer ≥ 1. */
  count: number;
  /** The window, ms. */
  windowMs: number;
  /** The rate as written, without spaces, for messages: `60/h`. */
  text: string;
}

/**
 * Parses `N/UNIT` (`60/h`: the unit alone means one of it) or `N/DURATION` (`5/30s`,
 * `100/5h`; any duration {@link parseDuration} takes, a bare number being seconds). `N` is
 * an integer ≥ 1. Spaces around the parts are allowed. Returns null for anything else.
 */
export function parseRate(value: unknown): Rate | null {
  if (typeof value !== 'string') return null;
  const text = value.trim();
  const m = /^(\d+)\s*\/\s*(\S.*)$/.exec(text);
  if (!m) return null;
  const count = Number(m[1]);
  const per = m[2]!.trim();
  const windowMs = parseDuration(/^[a-z]+$/i.test(per) ? `1${per}` : per);
  if (!Number.isSafeInteger(count) || count < 1 || windowMs === null) return null;
  return { count, windowMs, text: `${count}/${per}` };
}

