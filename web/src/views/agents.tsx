/**
 * Agents and spend: per-agent status from GET /v1/status (running, spend and tokens today,
 * paused until when and why, in local time), the dispatchers (host, labels, running, last
 * heartbeat), and spend per day from GET /v1/usage?by=day.
 */
import { useEffect, useState } from 'preact/hooks';
import { apiJson, type AgentStatus, type StatusBody, type UsageBody, type WorkerStatus } from '../api.ts';
import { fmtRelative, fmtTime, fmtTokens, fmtUsd } from '../format.ts';
import { useLive } from '../live.ts';
import { SpendChart, spendPerDay } from './spend-chart.tsx';

const SPEND_DAYS = 14;
/** Refresh even without events (pause countdowns, other dispatchers' spend). */
const POLL_MS = 15_000;

/** The agent rows with their pauses merged in (from `agents[].pausedUntil` or `pausedAgents`, keyed by account). */
function withPauses(s: StatusBody, now: number): AgentStatus[] {
  const rows = new Map<string, AgentStatus>(s.agents.map((a) => [a.agent, { ...a }]));
  for (const p of s.pausedAgents ?? []) {
    if (s.agents.some((a) => a.account === p.agent)) continue; // the pause of those agents' account, already on their rows
    const row = rows.get(p.agent) ?? { agent: p.agent, running: 0, attempts: 0, costUsd: 0, inputTokens: 0, outputTokens: 0 };
    if (row.pausedUntil == null) {
      row.pausedUntil = p.until;
      row.pauseReason = p.reason;
    }
    rows.set(p.agent, row);
  }
  for (const r of rows.values()) if (r.pausedUntil != null && r.pausedUntil <= now) r.pausedUntil = null;
  return [...rows.values()].sort((a, b) => a.agent.localeCompare(b.agent));
}

/** Loads `path` now, after every change of `version` (at most once a second) and every POLL_MS. */
function usePolled<T>(path: string, version: number): { data: T | null; error: string | null } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => setTick((n) => n + 1), POLL_MS);
    return () => clearInterval(t);
  }, []);
  useEffect(() => {
    let gone = false;
    const timer = setTimeout(() => {
      apiJson<T>(path)
        .then((d) => {
          if (!gone) {
            setData(d);
            setError(null);
          }
        })
        .catch((e: unknown) => {
          if (!gone) setError((e as Error).message);
        });
    }, data === null ? 0 : 1000);
    return () => {
      gone = true;
      clearTimeout(timer);
    };
  }, [path, version, tick]);
  return { data, error };
}

/** The live dispatchers on the store: host, pid, labels, running attempts, last heartbeat. */
function Dispatchers({ workers, now }: { workers: WorkerStatus[]; now: number }) {
  return (
    <>
      <h2 id="dispatchers-h">Dispatchers</h2>
      <div class="table-wrap">
        <table class="dispatchers" aria-labelledby="dispatchers-h">
          <thead>
            <tr>
              <th scope="col">Host</th>
              <th scope="col">PID</th>
              <th scope="col">Labels</th>
              <th scope="col">Running</th>
              <th scope="col">Last heartbeat</th>
            </tr>
          </thead>
          <tbody>
            {workers.length === 0 && (
              <tr>
                <td colSpan={5} class="muted">
                  No dispatcher is running.
                </td>
              </tr>
            )}
            {workers.map((w) => (
              <tr>
                <th scope="row" title={w.id}>
                  {w.host ?? w.id}
                </th>
                <td>{w.pid ?? '–'}</td>
                <td>{w.labels?.length ? w.labels.join(', ') : '–'}</td>
                <td>{w.running ?? '–'}</td>
                <td>{w.heartbeatAt ? <time dateTime={new Date(w.heartbeatAt).toISOString()}>{fmtRelative(w.heartbeatAt, now)}</time> : '–'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

export function AgentsView() {
  const live = useLive();
  const status = usePolled<StatusBody>('/v1/status', live.agentsVersion);
  const usage = usePolled<UsageBody>(`/v1/usage?since=${SPEND_DAYS}d&by=day`, live.agentsVersion);
  const now = Date.now();
  const agents = status.data ? withPauses(status.data, now) : [];
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return (
    <div class="page">
      <h1>Agents</h1>
      {status.error && (
        <p class="error" role="alert">
          Could not load the status: {status.error}
        </p>
      )}
      {status.data && (
        <>
          <ul class="counts" aria-label="Tasks by state">
            {Object.entries(status.data.counts)
              .filter(([, n]) => n > 0)
              .map(([state, n]) => (
                <li class={`pill st-${state}`}>
                  {state.replace('_', ' ')}: {n}
                </li>
              ))}
          </ul>
          <div class="table-wrap">
            <table class="agents">
              <caption>Today since local midnight; times in your time zone ({tz}).</caption>
              <thead>
                <tr>
                  <th scope="col">Agent</th>
                  <th scope="col">Status</th>
                  <th scope="col">Running</th>
                  <th scope="col">Attempts</th>
                  <th scope="col">Spend today</th>
                  <th scope="col">Tokens in</th>
                  <th scope="col">Tokens out</th>
                  <th scope="col">Paused until</th>
                </tr>
              </thead>
              <tbody>
                {agents.length === 0 && (
                  <tr>
                    <td colSpan={8} class="muted">
                      No agent has run today.
                    </td>
                  </tr>
                )}
                {agents.map((a) => (
                  <tr>
                    <th scope="row">{a.account === undefined ? a.agent : `${a.agent} (account ${a.account})`}</th>
                    <td>
                      {a.pausedUntil != null ? (
                        <span class="pill st-paused">paused</span>
                      ) : a.running > 0 ? (
                        <span class="pill st-running">running</span>
                      ) : (
                        <span class="pill st-idle">idle</span>
                      )}
                    </td>
                    <td>{a.running}</td>
                    <td>{a.attempts}</td>
                    <td>{fmtUsd(a.costUsd)}</td>
                    <td>{fmtTokens(a.inputTokens)}</td>
                    <td>{fmtTokens(a.outputTokens)}</td>
                    <td>
                      {a.pausedUntil != null ? (
                        <>
                          <time dateTime={new Date(a.pausedUntil).toISOString()}>{fmtTime(a.pausedUntil)}</time> ({fmtRelative(a.pausedUntil, now)})
                          {a.pauseReason && <div class="muted reason">{a.pauseReason}</div>}
                        </>
                      ) : (
                        '–'
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {status.data.workers && <Dispatchers workers={status.data.workers} now={now} />}
        </>
      )}
      <h2>Spend per day</h2>
      {usage.error && (
        <p class="error" role="alert">
          Could not load usage: {usage.error}
        </p>
      )}
      {usage.data && <SpendChart days={spendPerDay(usage.data.rows, SPEND_DAYS)} />}
      {!usage.data && !usage.error && <p class="muted">Loading…</p>}
    </div>
  );
}
