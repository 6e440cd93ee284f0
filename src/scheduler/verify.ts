/**
 * The verification gate (`verify`): after an agent reports success, its task's verify
 * commands run by `sh -c` in the attempt's workspace, one after the other, each within
 * `verify_timeout`, with the agent's environment. All exit 0 → the task completes; the
 * first that does not ends the attempt `verify_failed` (the rest are not run), and the next
 * attempt is handed the failure: it resumes the agent's session with
 * {@link verifyFailureNote} where the runner can, else it starts afresh with the same in its
 * failure history. For `agent: auto`, an agent with `verify_retries` failed verifications
 * is passed over for the next of the task's `fallback` list ({@link agentsOutOfVerifyRetries}).
 * A task with `verify` spends at most `max_cost_usd` over all its attempts ({@link remainingBudget}).
 *
 * Each command's output (stdout and stderr together) goes to `N.verify-K.log` in the
 * attempt's log folder; each run is recorded in the store (`Store.recordVerification`) with
 * its last {@link VERIFY_TAIL_LINES} lines as it ends.
 */
import { runAgentProcess } from '../agents/agent-process.ts';
import type { Config } from '../config/config.ts';
import { formatDuration } from '../config/duration.ts';
import { VERIFY_TAIL_LINES, type Attempt, type Task, type Verification } from '../core/types.ts';
import { readOutputTail } from '../results/logs.ts';
import type { NewVerification } from '../store/store.ts';

/** The verify commands of a task: its own `verify` (an empty list: none), else config's. */
export function verifyCommandsOf(task: Pick<Task, 'verify'>, config: Pick<Config, 'verify'>): string[] {
  return task.verify ?? config.verify;
}

/** The time limit of each verify command of a task, ms: its `verify_timeout`, else config's. */
export function verifyTimeoutOf(task: Pick<Task, 'verifyTimeoutMs'>, config: Pick<Config, 'verify_timeout'>): number {
  return task.verifyTimeoutMs ?? config.verify_timeout;
}

/** How many failed verifications on one agent an `agent: auto` task allows before moving on: its `verify_retries`, else config's. */
export function verifyRetriesOf(task: Pick<Task, 'verifyRetries'>, config: Pick<Config, 'verify_retries'>): number {
  return task.verifyRetries ?? config.verify_retries;
}

/** The last `lines` lines of `text` (a final newline does not start a line of its own). */
export function lastLines(text: string, lines = VERIFY_TAIL_LINES): string {
  const parts = text.split('\n');
  const trailing = parts.at(-1) === '' ? 1 : 0;
  return parts.length - trailing <= lines ? text : parts.slice(-(lines + trailing)).join('\n');
}

/** What {@link runVerifications} needs. */
export interface VerifyRun {
  /** The commands, in order; each runs as `sh -c COMMAND`. */
  commands: readonly string[];
  /** The attempt's id: the `AGENTQ_ATTEMPT_ID` tag of every process a command starts. */
  attemptId: string;
  /** The attempt's workspace. */
  cwd: string;
  /** The agent's environment (`agentEnv`). */
  env: Record<string, string>;
  /** Time limit of each command, ms. */
  timeoutMs: number;
  /** SIGTERM→SIGKILL grace when a command is stopped, ms. */
  graceMs: number;
  /** The log file of command `k` (1-based). */
  logFile: (k: number) => string;
  /** Aborted when the attempt is stopped (cancel, shutdown, lost lease): the running command is stopped, no other starts. */
  signal: AbortSignal;
  /** Records a command's run (`Store.recordVerification`) as it ends. */
  record: (run: NewVerification) => Promise<unknown>;
  /** Called as each command starts. */
  onStart?: (command: string, k: number) => void;
  /** Clock, epoch ms. Default Date.now. */
  now?: () => number;
}

/**
 * How the verification of an attempt went: `passed` (every command exited 0; also with no
 * commands), `failed` (the first command that did not: the runs so far, the last one failing),
 * or `stopped` (the attempt was stopped while a command ran: its run is not judged).
 */
export type VerifyResult = { kind: 'passed'; runs: NewVerification[] } | { kind: 'failed'; runs: NewVerification[]; failed: NewVerification } | { kind: 'stopped'; runs: NewVerification[] };

/**
 * Runs an attempt's verify commands in order until one fails (see the module comment),
 * recording each run. Never throws for a command that fails or cannot start (`sh` missing:
 * a failed run, exit code null, the reason in its output).
 * @throws what `record` throws (a store that is broken for good)
 */
export async function runVerifications(o: VerifyRun): Promise<VerifyResult> {
  const now = o.now ?? Date.now;
  const runs: NewVerification[] = [];
  for (const [i, command] of o.commands.entries()) {
    if (o.signal.aborted) return { kind: 'stopped', runs };
    const k = i + 1;
    const log = o.logFile(k);
    o.onStart?.(command, k);
    const startedAt = now();
    let exitCode: number | null = null;
    let timedOut = false;
    let failure: string | null = null;
    try {
      const proc = await runAgentProcess(
        { attemptId: o.attemptId, cwd: o.cwd, env: o.env, deadline: startedAt + o.timeoutMs, stdoutLog: log, stderrLog: log, signal: o.signal },
        ['sh', '-c', command],
        { graceMs: o.graceMs },
      );
      if (proc.stoppedFor === 'cancel') return { kind: 'stopped', runs };
      timedOut = proc.stoppedFor === 'timeout';
      exitCode = timedOut ? null : proc.exitCode;
    } catch (err) {
      failure = err instanceof Error ? err.message : String(err);
    }
    let tail = '';
    try {
      tail = lastLines(readOutputTail(log).text);
    } catch {
      // An unreadable log leaves the tail empty; the run is still judged by its exit code.
    }
    const run: NewVerification = {
      number: k,
      command,
      exitCode,
      timedOut,
      durationMs: now() - startedAt,
      outputPath: failure === null ? log : null,
      outputTail: failure === null ? tail : `agentq: ${failure}\n`,
      startedAt,
    };
    runs.push(run);
    await o.record(run);
    if (exitCode !== 0) return { kind: 'failed', runs, failed: run };
  }
  return { kind: 'passed', runs };
}

/** How a failed verify command ended, e.g. `exited with code 1`, `timed out after 10m 00s`. */
export function verifyEnd(v: Pick<Verification, 'exitCode' | 'timedOut'>, timeoutMs?: number): string {
  if (v.timedOut) return `timed out${timeoutMs === undefined ? '' : ` after ${formatDuration(timeoutMs)}`} and was stopped`;
  return v.exitCode === null ? 'could not run or was killed' : `exited with code ${v.exitCode}`;
}

/** The reason of a `verify_failed` attempt: `verify failed: \`npm test\` exited with code 1`. */
export function verifyFailureReason(v: Pick<Verification, 'command' | 'exitCode' | 'timedOut'>, timeoutMs?: number): string {
  return `verify failed: \`${v.command}\` ${verifyEnd(v, timeoutMs)}`;
}

/**
 * What the agent is told about a failed verification, to fix it: the command, how it ended
 * (its exit code) and the last {@link VERIFY_TAIL_LINES} lines of its output. The prompt of a
 * resumed session, and part of a fresh attempt's failure history.
 */
export function verifyFailureNote(v: Pick<Verification, 'command' | 'exitCode' | 'timedOut' | 'outputTail'>): string {
  const output = v.outputTail.trimEnd();
  return (
    'Note from agent-queue: you reported the task done, but its verification failed.\n' +
    `The command \`${v.command}\` (run by sh -c in the workspace) ${verifyEnd(v)}.\n` +
    (output ? `The last ${VERIFY_TAIL_LINES} lines of its output (stdout and stderr):\n\n\`\`\`\n${output}\n\`\`\`\n` : 'It printed nothing.\n') +
    '\nFix the cause so that the command passes (do not change the check itself to make it pass), then report the task done again.'
  );
}

/** The failed verification of a `verify_failed` attempt (its last run), or null. */
export function failedVerificationOf(attempt: Pick<Attempt, 'id'>, verifications: readonly Verification[]): Verification | null {
  return verifications.filter((v) => v.attemptId === attempt.id && v.exitCode !== 0).at(-1) ?? null;
}

/** Attempt outcomes that do not count against `retries` (the store gives the attempt back). */
const UNCOUNTED: ReadonlySet<string> = new Set(['interrupted', 'rate_limited', 'running']);

/**
 * The earlier attempts of the task's current run of retries: those since the last
 * `agentq retry` (which starts a fresh retry budget), found as the last `counted` attempts
 * that count against `retries` and those after them.
 * @param earlier the task's attempts before the one starting, by number
 * @param counted attempts counted before this one: the task's `attempts` less the one its claim counted
 */
export function currentRun<A extends Pick<Attempt, 'outcome'>>(earlier: readonly A[], counted: number): A[] {
  let i = earlier.length;
  for (let n = 0; i > 0 && n < counted; ) {
    i--;
    if (!UNCOUNTED.has(earlier[i]!.outcome)) n++;
  }
  return earlier.slice(i);
}

/** The agents that have had `retries` or more failed verifications on this task (`verify_failed` attempts): an `agent: auto` task passes them over. */
export function agentsOutOfVerifyRetries(attempts: readonly Pick<Attempt, 'agent' | 'outcome'>[], retries: number): Set<string> {
  const failed = new Map<string, number>();
  for (const a of attempts) if (a.outcome === 'verify_failed') failed.set(a.agent, (failed.get(a.agent) ?? 0) + 1);
  return new Set([...failed].filter(([, n]) => n >= retries).map(([agent]) => agent));
}

/**
 * The budget left for the next attempt of a task with `verify`, USD: `max_cost_usd` less what
 * its earlier attempts spent (the verify loop's resumed attempts and fallbacks spend it
 * together). Null without `max_cost_usd`; the task's budget unchanged without verify commands.
 */
export function remainingBudget(maxCostUsd: number | null, verifying: boolean, attempts: readonly Pick<Attempt, 'stats' | 'outcome'>[]): number | null {
  if (maxCostUsd === null || !verifying) return maxCostUsd;
  const spent = attempts.filter((a) => a.outcome !== 'running').reduce((sum, a) => sum + (a.stats.costUsd ?? 0), 0);
  return maxCostUsd - spent;
}
