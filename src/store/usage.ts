/**
 * Spend summaries (`agentq usage`, issue 5): attempts grouped by local day, agent, model and
 * task tag, with their cost and tokens. The types of {@link Store.usage} and the grouping
 * every backend shares: a backend reads the attempts of the window as {@link UsageRecord}s
 * and hands them to {@link summarizeUsage}, so the day cut (time zones) and the tag split
 * behave the same on every backend.
 */
import { AgentQueueError } from '../core/errors.ts';

/** What a usage row can be grouped by. */
export const USAGE_DIMENSIONS = ['day', 'agent', 'model', 'tag'] as const;
export type UsageDimension = (typeof USAGE_DIMENSIONS)[number];

/** The window and grouping of {@link Store.usage}. Times are epoch ms. */
export interface UsageQuery {
  /** Attempts that started at or after this moment (inclusive). */
  since: number;
  /** Attempts that started before this moment (exclusive). Default: no end. */
  until?: number;
  /**
   * IANA time zone (`Europe/Berlin`) in which an attempt's start is cut into a `day`.
   * Default: the process's local zone (the `TZ` environment variable, else the system's).
   */
  timeZone?: string;
  /**
   * The dimensions to group by, in this order; a dimension left out is summed over and its
   * key is absent from the rows. Default: all four (`day`, `agent`, `model`, `tag`). Without
   * `tag` every attempt counts once; with it, an attempt of a task with several tags counts
   * once under each of them (untagged tasks under `tag: null`), so rows then add up to more
   * than the total. `[]` gives one row: the total (no row when nothing started).
   */
  by?: readonly UsageDimension[];
}

/**
 * One group of attempts. Keys of the dimensions grouped by are present; the figures are
 * sums over the attempts of the group that started inside the window (running ones too).
 */
export interface UsageRow {
  /** Local day of the attempt's start in the query's time zone, `YYYY-MM-DD`. */
  day?: string;
  /** The agent the attempt ran on (for `agent: auto`, the one it was routed to). */
  agent?: string;
  /** The model the agent reported, else the one it was started with; null if neither is known (e.g. `command`). */
  model?: string | null;
  /** One tag of the attempt's task; null for a task without tags. */
  tag?: string | null;
  /** Attempts started (any outcome, including running and interrupted ones). */
  attempts: number;
  /** Attempts whose outcome is `completed`. */
  completed: number;
  /**
   * USD: the sum of the attempts' `cost_usd` (what the agent reported, or the price table's
   * figure for token-only agents); unknown costs count 0. Rounded to 1e-9 USD.
   */
  costUsd: number;
  /** Input tokens reported (unknown: 0). */
  inputTokens: number;
  /** Output tokens reported (unknown: 0). */
  outputTokens: number;
}

/** One attempt as a backend reads it for {@link summarizeUsage}. */
export interface UsageRecord {
  /** Epoch ms. */
  startedAt: number;
  agent: string;
  model: string | null;
  outcome: string;
  costUsd: number | null;
  inputTokens: number | null;
  outputTokens: number | null;
  /** The task's tags (read only when grouping by tag; pass [] otherwise). */
  tags: readonly string[];
}

/**
 * A function giving the `YYYY-MM-DD` day of an epoch-ms moment in `timeZone` (default: the
 * process's local zone), via `Intl.DateTimeFormat`.
 * @throws AgentQueueError `invalid_time_zone` for a zone Intl does not know.
 */
export function dayFormatter(timeZone?: string): (ms: number) => string {
  let format: Intl.DateTimeFormat;
  try {
    format = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
  } catch (err) {
    throw new AgentQueueError('invalid_time_zone', `time zone ${JSON.stringify(timeZone)} is not known`, { cause: err });
  }
  return (ms) => {
    const parts = format.formatToParts(ms);
    const part = (type: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === type)?.value ?? '';
    return `${part('year')}-${part('month')}-${part('day')}`;
  };
}

/** The time zone `dayFormatter(timeZone)` cuts days in (resolves the default to a name). */
export function resolvedTimeZone(timeZone?: string): string {
  return timeZone ?? Intl.DateTimeFormat().resolvedOptions().timeZone;
}

const round = (usd: number) => Math.round(usd * 1e9) / 1e9;

/** Nulls last, then ascending (locale-independent). */
function compareKeys(a: string | null | undefined, b: string | null | undefined): number {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  return a < b ? -1 : 1;
}

/**
 * Groups attempts into {@link UsageRow}s as `query` says (its `by`, `timeZone`; records are
 * taken as already inside the window). Rows are sorted by the dimensions in `by` order,
 * ascending, nulls last.
 * @throws AgentQueueError `invalid_time_zone` (see {@link dayFormatter}).
 */
export function summarizeUsage(records: Iterable<UsageRecord>, query: UsageQuery): UsageRow[] {
  const by = query.by ?? USAGE_DIMENSIONS;
  const withDay = by.includes('day');
  const withTag = by.includes('tag');
  const dayOf = withDay ? dayFormatter(query.timeZone) : null;
  const groups = new Map<string, UsageRow>();
  for (const r of records) {
    const tags: Array<string | null> = withTag && r.tags.length ? [...new Set(r.tags)] : [null];
    for (const tag of tags) {
      const keys: Partial<Record<UsageDimension, string | null>> = {};
      for (const d of by) {
        if (d === 'day') keys.day = dayOf!(r.startedAt);
        else if (d === 'agent') keys.agent = r.agent;
        else if (d === 'model') keys.model = r.model;
        else if (d === 'tag') keys.tag = tag;
      }
      const id = JSON.stringify(by.map((d) => keys[d]));
      let row = groups.get(id);
      if (!row) {
        row = { ...(keys as Pick<UsageRow, UsageDimension>), attempts: 0, completed: 0, costUsd: 0, inputTokens: 0, outputTokens: 0 };
        groups.set(id, row);
      }
      row.attempts += 1;
      if (r.outcome === 'completed') row.completed += 1;
      row.costUsd += r.costUsd ?? 0;
      row.inputTokens += r.inputTokens ?? 0;
      row.outputTokens += r.outputTokens ?? 0;
    }
  }
  const rows = [...groups.values()];
  for (const row of rows) row.costUsd = round(row.costUsd);
  return rows.sort((a, b) => {
    for (const d of by) {
      const c = compareKeys(a[d], b[d]);
      if (c) return c;
    }
    return 0;
  });
}
