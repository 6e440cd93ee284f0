/** Reading agents' JSON-lines output: narrow `unknown` values without throwing. */

export type Json = Record<string, unknown>;

/** The value if it is a plain JSON object, else null. */
export function obj(v: unknown): Json | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : null;
}

export function str(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

/** A finite number, else null. */
export function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/**
 * One output line as a JSON object, or null when it is not one (blank, truncated, text).
 * Agents split or interleave lines at times (Claude Code 2.1.74 wrote a `rate_limit_event`
 * into another line), so a bad line must never end the parse.
 */
export function parseJsonLine(line: string): Json | null {
  const text = line.trim();
  if (!text.startsWith('{')) return null;
  try {
    return obj(JSON.parse(text));
  } catch {
    return null;
  }
}
