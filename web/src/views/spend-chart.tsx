/** Spend per day (USD) as an inline SVG bar chart, from GET /v1/usage?by=day. */
import type { UsageRow } from '../api.ts';
import { fmtTokens, fmtUsd } from '../format.ts';

export interface DaySpend {
  day: string;
  costUsd: number;
  inputTokens: number;
  outputTokens: number;
  attempts: number;
}

/** `YYYY-MM-DD` of a Date in the browser's time zone. */
function localDay(d: Date): string {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/** The next calendar day of a `YYYY-MM-DD` string (no time zone involved). */
function nextDay(day: string): string {
  const [y, m, d] = day.split('-').map(Number) as [number, number, number];
  const t = new Date(Date.UTC(y, m - 1, d + 1));
  return t.toISOString().slice(0, 10);
}

/**
 * Sums the usage rows per day and fills the days without spend with zeros, from
 * `days - 1` days before today (local) through today.
 */
export function spendPerDay(rows: UsageRow[], days: number, now = new Date()): DaySpend[] {
  const by = new Map<string, DaySpend>();
  for (const r of rows) {
    if (!r.day) continue;
    const day = String(r.day).slice(0, 10);
    const d = by.get(day) ?? { day, costUsd: 0, inputTokens: 0, outputTokens: 0, attempts: 0 };
    d.costUsd += r.costUsd ?? 0;
    d.inputTokens += r.inputTokens ?? 0;
    d.outputTokens += r.outputTokens ?? 0;
    d.attempts += r.attempts ?? 0;
    by.set(day, d);
  }
  const start = new Date(now);
  start.setDate(start.getDate() - (days - 1));
  let day = localDay(start);
  const known = [...by.keys()].sort();
  if (known[0] && known[0] < day) day = known[0];
  const last = [localDay(now), known[known.length - 1] ?? ''].sort()[1]!;
  const out: DaySpend[] = [];
  for (let i = 0; i < 400 && day <= last; i++, day = nextDay(day)) out.push(by.get(day) ?? { day, costUsd: 0, inputTokens: 0, outputTokens: 0, attempts: 0 });
  return out;
}

/** A round upper bound for the axis: 1, 2 or 5 × 10^n. */
function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export function SpendChart({ days }: { days: DaySpend[] }) {
  const W = 720;
  const H = 220;
  const pad = { l: 52, r: 8, t: 16, b: 34 };
  const max = niceMax(Math.max(0, ...days.map((d) => d.costUsd)));
  const bw = (W - pad.l - pad.r) / Math.max(1, days.length);
  const y = (v: number): number => pad.t + (H - pad.t - pad.b) * (1 - v / max);
  const total = days.reduce((s, d) => s + d.costUsd, 0);
  const every = Math.ceil(days.length / 14);
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`Spend per day over ${days.length} days, ${fmtUsd(total)} in all`}>
        {[0, 0.5, 1].map((f) => (
          <g class="grid">
            <line x1={pad.l} x2={W - pad.r} y1={y(max * f)} y2={y(max * f)} />
            <text x={pad.l - 6} y={y(max * f) + 4} text-anchor="end">
              {fmtUsd(max * f)}
            </text>
          </g>
        ))}
        {days.map((d, i) => {
          const x = pad.l + i * bw;
          const h = H - pad.b - y(d.costUsd);
          return (
            <g class="bar">
              <title>{`${d.day}: ${fmtUsd(d.costUsd)}, ${fmtTokens(d.inputTokens)} in / ${fmtTokens(d.outputTokens)} out tokens, ${d.attempts} attempts`}</title>
              <rect x={x + bw * 0.15} y={H - pad.b - Math.max(h, d.costUsd > 0 ? 1 : 0)} width={bw * 0.7} height={Math.max(h, d.costUsd > 0 ? 1 : 0)} />
              {i % every === 0 && (
                <text class="label" x={x + bw / 2} y={H - pad.b + 16} text-anchor="middle">
                  {d.day.slice(5)}
                </text>
              )}
            </g>
          );
        })}
      </svg>
      <figcaption>
        {fmtUsd(total)} over the last {days.length} days · {fmtTokens(days.reduce((s, d) => s + d.inputTokens, 0))} tokens in, {fmtTokens(days.reduce((s, d) => s + d.outputTokens, 0))} out
      </figcaption>
    </figure>
  );
}
