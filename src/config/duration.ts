import ms from 'ms';

/**
 * Parses a duration such as `90s`, `30m`, `1.5h`, `500ms` (via the `ms` library) into
 * milliseconds. A bare number is taken as seconds. Returns null for anything else,
 * including zero and negative durations.
 */
export function parseDuration(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) && value > 0 ? Math.round(value * 1000) : null;
  if (typeof value !== 'string') return null;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return parseDuration(Number(text));
  let parsed: number | undefined;
  try {
    parsed = ms(text as ms.StringValue) as number | undefined;
  } catch {
    return null; // `ms` throws on an empty or over-long string
  }
  return typeof parsed === 'number' && Number.isFinite(parsed) && parsed > 0 ? Math.round(parsed) : null;
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
