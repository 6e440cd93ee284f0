/**
 * The outcome shapes every CLI runner returns the same way: a command that cannot start,
 * a cancel, a timeout, and a stop on a rate-limit or authentication signal.
 */
import { AgentQueueError } from '../core/errors.ts';
import type { RunStats } from '../core/types.ts';
import type { AgentProcessResult } from './agent-process.ts';
import type { RunOutcome, RunRequest } from './runner.ts';

/** What a stream parser reports to stop a run early. */
export type StopSignal = { kind: 'auth_failed'; reason: string } | { kind: 'rate_limited'; reason: string; resetAt: number | null };

type Base = { stats: RunStats; exitCode: number | null };

/**
 * `runAgentProcess` threw: a command that cannot start (`spawn_failed`) is final, anything
 * else is worth another attempt. `label` names the agent, e.g. "Claude Code".
 */
export function spawnFailure(err: unknown, label: string, stats: RunStats): RunOutcome {
  const message = err instanceof Error ? err.message : String(err);
  const spawnFailed = err instanceof AgentQueueError && err.code === 'spawn_failed';
  return { kind: 'failed', retryable: !spawnFailed, reason: spawnFailed ? message : `running ${label} failed: ${message}`, stats, exitCode: null };
}

/** `request.signal` was aborted (reason `cancel`, `shutdown`…) and the tree stopped. */
export function cancelled(request: RunRequest, base: Base): RunOutcome {
  return { ...base, kind: 'cancelled', reason: `cancelled${describeAbortReason(request.signal.reason)}` };
}

/** The deadline passed and the tree was stopped. */
export function timedOut(request: RunRequest, base: Base): RunOutcome {
  const limit = request.task?.timeoutMs;
  return { ...base, kind: 'timed_out', reason: `timed out${typeof limit === 'number' ? ` after ${formatMs(limit)}` : ''} (deadline passed; process tree stopped)` };
}

/**
 * How a CLI run ended before its answer is judged, or null when the caller judges it:
 * cancelled; stopped early on a stream `signal` (else for another reason: failed,
 * retryable); timed out, unless the agent gave its final answer by the deadline (the CLIs
 * can go on and report success after their tool command was killed). `answeredAt`: when
 * the final answer arrived (epoch ms; `Infinity` if unknown), null without one.
 */
export function endedBeforeAnswer(
  request: RunRequest,
  proc: Pick<AgentProcessResult, 'stoppedFor' | 'earlyReason'>,
  base: Base,
  signal: StopSignal | null,
  answeredAt: number | null,
): RunOutcome | null {
  if (proc.stoppedFor === 'cancel') return cancelled(request, base);
  if (proc.stoppedFor === 'early') {
    return signalled(signal, base) ?? { ...base, kind: 'failed', retryable: true, reason: `stopped: ${proc.earlyReason ?? 'unknown reason'}` };
  }
  if (proc.stoppedFor === 'timeout' && (answeredAt === null || answeredAt > request.deadline)) return timedOut(request, base);
  return null;
}

/** The outcome a stop signal stands for, or null without one. */
export function signalled(signal: StopSignal | null | undefined, base: Base): RunOutcome | null {
  if (signal?.kind === 'auth_failed') return { ...base, kind: 'auth_failed', reason: signal.reason };
  if (signal?.kind === 'rate_limited') return { ...base, kind: 'rate_limited', reason: signal.reason, resetAt: signal.resetAt };
  return null;
}

function describeAbortReason(reason: unknown): string {
  if (reason === undefined || reason === null) return '';
  if (typeof reason === 'string') return reason ? ` (${reason})` : '';
  if (reason instanceof Error) return reason.name === 'AbortError' ? '' : ` (${reason.message})`;
  return ` (${String(reason)})`;
}

function formatMs(ms: number): string {
  if (ms % 60_000 === 0 && ms >= 60_000) return `${ms / 60_000} min`;
  if (ms % 1000 === 0) return `${ms / 1000} s`;
  return `${ms} ms`;
}
