import ms from 'ms';

/**
 * The longest duration {@link parseDuration} accepts unless told otherwise: 100 years in ms
 * (a `ms` year is 365.25 days). Far past any sane setting, and small enough that
 * `Date.now() + d` stays an exact integer and a valid Date.
 */
export const MAX_DURATION_MS = 100 * 365.25 * 86_400_000;

/**
 * Parses a duration such as `90s`, `30m`, `1.5h`, `500ms` (via the `ms` library) into
 * milliseconds. A bare number (or a string of digits) is taken as seconds.
 * @param value the value as written (a number of seconds or a string)
 * @param maxMs the largest duration accepted, ms; default {@link MAX_DURATION_MS}
 * @returns whole milliseconds from 1 to `maxMs`; null for anything else: not a duration,
 *   zero, negative, less than 1 ms once rounded, not finite (`.inf`, `1e308` seconds), or
 *   longer than `maxMs`. Never throws.
 */
export function parseDuration(value: unknown, maxMs: number = MAX_DURATION_MS): number | null {
  let raw: number | undefined;
  if (typeof value === 'number') raw = value * 1000;
  else if (typeof value === 'string') {
    const text = value.trim();
    if (/^\d+(\.\d+)?$/.test(text)) raw = Number(text) * 1000;
    // `ms` throws on an empty string and gives up past 100 characters.
    else if (text !== '' && text.length <= 100) raw = ms(text as ms.StringValue) as number | undefined;
  }
  if (typeof raw !== 'number' || !Number.isFinite(raw)) return null;
  const rounded = Math.round(raw);
  return rounded >= 1 && rounded <= maxMs ? rounded : null;
}

/** Formats ms for people: `850ms`, `12.3s`, `4m 05s`, `2h 10m`. */
export function formatDuration(msValue: number): string {
  if (msValue < 1000) return `${Math.round(msValue)}ms`;
  const s = msValue / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}
