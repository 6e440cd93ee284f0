/**
 * Reading the reset time out of Claude Code's usage-limit messages.
 *
 * Shapes handled (Claude Code 2.1.x; the CLI formats the time with
 * `toLocaleTimeString('en-US')` / `toLocaleString('en-US', { month: 'short', day: 'numeric' })`,
 * lower-cases AM/PM and appends the IANA zone in parentheses):
 * - `Claude AI usage limit reached|1759327200` — epoch seconds after the bar (older versions);
 * - `You've hit your limit · resets 5:50pm (Europe/Berlin)` — the next such clock time in that zone;
 * - `… resets 2pm (Asia/Shanghai)`, `… resets 17:50 (UTC)`;
 * - `… resets Oct 9, 2pm (Europe/Berlin)`, `… resets Jan 2, 2027, 10:30am (UTC)` — a date is
 *   given when the reset is more than 24 h away.
 */

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/** `Claude AI usage limit reached|<epoch s>` (the epoch may be 10 or 13 digits). */
const PIPE_EPOCH = /usage limit reached\s*\|\s*(\d{9,13})/i;

/**
 * `resets [at] [Mon D, [YYYY, ]]H[:MM][am|pm] [(Zone)]`. Whitespace before am/pm may be any
 * Unicode space (ICU prints U+202F).
 */
const RESETS =
  /\bresets?\s+(?:at\s+)?(?:([A-Za-z]{3})[a-z]*\.?\s+(\d{1,2})(?:,?\s*(\d{4}))?(?:,\s*|\s+at\s+|\s+))?(\d{1,2})(?::(\d{2}))?\s*([ap]\.?m\.?)?(?:\s*\(([^)]+)\))?/iu;

/** Options of {@link parseResetTime}. */
export interface ParseResetTimeOptions {
  /** IANA zone used when the text names none. Default: this machine's zone (Intl). */
  defaultTimeZone?: string;
}

/**
 * The reset time a usage-limit message announces, as epoch ms, or null when the text
 * carries none (or names a zone Intl does not know).
 *
 * @param text a `result` / assistant text from Claude Code (see the module doc for shapes).
 * @param now epoch ms the message was seen; a clock time without a date is the next
 *   occurrence of that time strictly after `now` in the named zone (so `resets 5:50pm`
 *   seen at 6pm means 5:50pm tomorrow).
 */
export function parseResetTime(text: string, now: number, options: ParseResetTimeOptions = {}): number | null {
  const pipe = PIPE_EPOCH.exec(text);
  if (pipe?.[1]) {
    const n = Number(pipe[1]);
    return pipe[1].length >= 13 ? n : n * 1000;
  }

  const m = RESETS.exec(text);
  if (!m) return null;
  const [, monthText, dayText, yearText, hourText, minuteText, meridiem, zoneText] = m;
  let hour = Number(hourText);
  const minute = minuteText === undefined ? 0 : Number(minuteText);
  if (minute > 59) return null;
  if (meridiem) {
    if (hour < 1 || hour > 12) return null;
    const pm = meridiem.toLowerCase().startsWith('p');
    hour = (hour % 12) + (pm ? 12 : 0);
  } else if (minuteText === undefined) {
    // A bare number ("resets 5") is too ambiguous to act on.
    return null;
  } else if (hour > 23) {
    return null;
  }

  const timeZone = zoneText?.trim() || options.defaultTimeZone || Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!isValidTimeZone(timeZone)) return null;

  const today = wallClock(now, timeZone);
  if (monthText !== undefined && dayText !== undefined) {
    const month = MONTHS.indexOf(monthText.toLowerCase());
    const day = Number(dayText);
    if (month < 0 || day < 1 || day > 31) return null;
    if (yearText !== undefined) return zonedTimeToEpoch(Number(yearText), month, day, hour, minute, timeZone);
    // No year: this year, or next year if that is more than a day in the past.
    let at = zonedTimeToEpoch(today.year, month, day, hour, minute, timeZone);
    if (at < now - 24 * 3600_000) at = zonedTimeToEpoch(today.year + 1, month, day, hour, minute, timeZone);
    return at;
  }

  let at = zonedTimeToEpoch(today.year, today.month, today.day, hour, minute, timeZone);
  if (at <= now) at = zonedTimeToEpoch(today.year, today.month, today.day + 1, hour, minute, timeZone);
  return at;
}

/** Whether Intl knows the IANA zone name. */
export function isValidTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
    return true;
  } catch {
    return false;
  }
}

interface WallClock {
  year: number;
  /** 0-based. */
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The wall-clock time of epoch ms `t` in `timeZone`. */
function wallClock(t: number, timeZone: string): WallClock {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  const parts: Record<string, number> = {};
  for (const p of f.formatToParts(new Date(t))) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  return {
    year: parts.year ?? 1970,
    month: (parts.month ?? 1) - 1,
    day: parts.day ?? 1,
    hour: (parts.hour ?? 0) % 24,
    minute: parts.minute ?? 0,
    second: parts.second ?? 0,
  };
}

/** Offset of `timeZone` from UTC at epoch ms `t`, ms (Berlin in summer: +7200000). */
function zoneOffset(t: number, timeZone: string): number {
  const w = wallClock(t, timeZone);
  const asUtc = Date.UTC(w.year, w.month, w.day, w.hour, w.minute, w.second);
  return asUtc - Math.floor(t / 1000) * 1000;
}

/**
 * Epoch ms of a wall-clock time in `timeZone` (month 0-based; day may overflow, as in
 * `Date.UTC`). A time skipped by a DST change resolves to the instant after the gap.
 */
export function zonedTimeToEpoch(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  timeZone: string,
): number {
  const guess = Date.UTC(year, month, day, hour, minute);
  const first = guess - zoneOffset(guess, timeZone);
  const second = guess - zoneOffset(first, timeZone);
  return first === second ? first : Math.max(first, second);
}
