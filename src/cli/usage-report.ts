/**
 * `agentq usage` (issue 5): parsing its `--since`/`--until`/`--by` flags and rendering the
 * spend summary that {@link Store.usage} returns, as a table with a total row or as JSON.
 */
import { parseDuration } from '../config/duration.ts';
import { UsageError } from '../core/errors.ts';
import { USAGE_DIMENSIONS, type UsageDimension, type UsageRow } from '../store/usage.ts';
import { table } from './output.ts';

/** `--by` when not given. */
export const DEFAULT_USAGE_BY: readonly UsageDimension[] = ['day', 'agent', 'model'];

/** The figures of a {@link UsageRow} without its keys: what the total row holds. */
export type UsageTotal = Pick<UsageRow, 'attempts' | 'completed' | 'costUsd' | 'inputTokens' | 'outputTokens'>;

/**
 * Parses a `--since`/`--until` value into epoch ms, in the process's local time zone:
 * - a duration back from `now` with a unit (`7d`, `24h`, `90m`; the `ms` library's syntax),
 * - a date `YYYY-MM-DD`: that day's local midnight,
 * - an ISO 8601 time `2026-11-01T09:30` (local) or with a zone (`…Z`, `…+01:00`).
 * @throws UsageError naming `flag` and the value for anything else (a bare number, `2026-02-30`).
 */
export function parseTimeArg(flag: string, value: string, now: number): number {
  const text = value.trim();
  const refuse = () =>
    new UsageError(`${flag}: ${JSON.stringify(value)} is not a duration back from now (7d, 24h), a date (2026-11-01) or an ISO time (2026-11-01T09:00:00Z)`);
  const date = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (date) {
    const [y, m, d] = [Number(date[1]), Number(date[2]), Number(date[3])];
    const midnight = new Date(y, m - 1, d);
    if (midnight.getFullYear() !== y || midnight.getMonth() !== m - 1 || midnight.getDate() !== d) throw refuse();
    return midnight.getTime();
  }
  if (/^\d{4}-\d{2}-\d{2}T/.test(text)) {
    const t = Date.parse(text);
    if (Number.isNaN(t)) throw refuse();
    return t;
  }
  // A bare number would be seconds to parseDuration: too easy to mistake for a date here.
  const back = /[a-z]/i.test(text) ? parseDuration(text) : null;
  if (back === null) throw refuse();
  return now - back;
}

/** Local midnight `days` days before `now`'s day (the default `--since`: 7 days). */
export function localMidnightDaysAgo(now: number, days: number): number {
  const d = new Date(now);
  d.setDate(d.getDate() - days);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

/**
 * Parses `--by` (`day,agent,model,tag`, comma-separated, any order, repeats ignored).
 * @throws UsageError naming the first value that is not a dimension, or for an empty list.
 */
export function parseUsageBy(value: string): UsageDimension[] {
  const by: UsageDimension[] = [];
  for (const part of value.split(',').map((p) => p.trim())) {
    if (part === '') continue;
    if (!(USAGE_DIMENSIONS as readonly string[]).includes(part)) {
      throw new UsageError(`--by: ${JSON.stringify(part)} is not one of ${USAGE_DIMENSIONS.join(', ')}`);
    }
    if (!by.includes(part as UsageDimension)) by.push(part as UsageDimension);
  }
  if (by.length === 0) throw new UsageError(`--by: ${JSON.stringify(value)} names no dimension (${USAGE_DIMENSIONS.join(', ')})`);
  return by;
}

/** `$0.0123` (USD, 4 decimals). */
export const formatUsd = (usd: number): string => `$${usd.toFixed(4)}`;
/** `1,234,567`. */
export const formatCount = (n: number): string => n.toLocaleString('en-US');

/** `YYYY-MM-DD HH:MM` in the process's local time zone. */
function localStamp(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** The report as people read it: a heading line, one line per row, and a TOTAL line. */
export function renderUsage(o: { since: number; until: number; timeZone: string; by: readonly UsageDimension[]; rows: UsageRow[]; total: UsageTotal }): string {
  const heading = `spend from ${localStamp(o.since)} to ${localStamp(o.until)} (${o.timeZone}), by ${o.by.join(', ')}`;
  if (o.rows.length === 0) return `${heading}\n(no attempts started in this window)`;
  const key = (row: UsageRow, d: UsageDimension): string => {
    const v = row[d];
    if (d === 'tag' && v === null) return '(untagged)';
    return v === null || v === undefined ? '-' : v;
  };
  const figures = (f: UsageTotal) => [String(f.attempts), String(f.completed), formatUsd(f.costUsd), formatCount(f.inputTokens), formatCount(f.outputTokens)];
  const lines = table(
    [...o.by.map((d) => d.toUpperCase()), 'ATTEMPTS', 'COMPLETED', 'COST', 'TOKENS IN', 'TOKENS OUT'],
    [...o.rows.map((r) => [...o.by.map((d) => key(r, d)), ...figures(r)]), ['TOTAL', ...o.by.slice(1).map(() => ''), ...figures(o.total)]],
  );
  const note = o.by.includes('tag') ? '\n(an attempt of a task with several tags counts under each of them; TOTAL counts it once)' : '';
  return `${heading}\n${lines}${note}`;
}
