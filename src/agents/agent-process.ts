/**
 * The spawn/stop helper every runner uses: start the agent without a shell in its own
 * process group, tag it with the attempt id, log its output, deliver its stdout/stderr
 * lines, enforce the deadline and cancellation, and make sure nothing it started outlives
 * the attempt.
 */
import { statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { AgentQueueError } from '../core/errors.ts';
import { spawnAgent, type SpawnedProcess } from '../process/spawner.ts';
import { ATTEMPT_ID_ENV, markProcessCreation, readProcessInfo, stopProcesses, type StopReport, type StopTargets } from '../process/process-tree.ts';
import { LogFile } from './log-stream.ts';
import type { RunRequest } from './runner.ts';

/**
 * What {@link runAgentProcess} reads of a runner's request: enough to run any process of an
 * attempt (the agent, or the dispatcher's `workspace_setup` commands).
 */
export type ProcessRequest = Pick<RunRequest, 'attemptId' | 'cwd' | 'env' | 'deadline' | 'stdoutLog' | 'stderrLog' | 'signal' | 'onEvent'>;

export interface AgentProcessResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** Why we stopped it, if we did: deadline passed, request.signal aborted, or the runner asked (early stop). */
  stoppedFor: 'timeout' | 'cancel' | 'early' | null;
  /** The reason passed to stop() for an early stop. */
  earlyReason: string | null;
}

export interface AgentProcessOptions {
  /** Written to stdin, then stdin is closed. Without it stdin is closed at once. */
  stdin?: string;
  /** Called for each complete stdout line (UTF-8, without the newline). `stop` ends the run early (tree stopped, stoppedFor 'early'). */
  onStdoutLine?: (line: string, stop: (reason: string) => void) => void;
  onStderrLine?: (line: string, stop: (reason: string) => void) => void;
  /** SIGTERM→SIGKILL grace, ms. Default 5000. */
  graceMs?: number;
}

/** Default SIGTERM→SIGKILL grace, ms. */
export const DEFAULT_GRACE_MS = 5000;
/** SIGTERM→SIGKILL grace when `request.signal` aborts (cancel, shutdown), ms. */
export const CANCEL_GRACE_MS = 500;

/**
 * After the tree is gone, how long to wait for stdout/stderr to reach end-of-file before
 * giving up on them, ms. Only matters when a process we could not find (one that cleared
 * its environment and left the group) still holds the pipes.
 */
const PIPE_DRAIN_MS = 1000;

/** setTimeout's largest delay; longer deadlines are re-armed in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

type StopKind = NonNullable<AgentProcessResult['stoppedFor']>;

/** Splits a byte stream into UTF-8 lines on `\n` (a `\r` before it is kept). */
class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private buffer = '';
  private ended = false;
  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: Buffer): void {
    if (this.ended) return;
    const text = this.decoder.write(chunk);
    let start = 0;
    let nl = text.indexOf('\n');
    if (nl < 0) {
      this.buffer += text;
      return;
    }
    const first = this.buffer + text.slice(0, nl);
    this.buffer = '';
    this.onLine(first);
    start = nl + 1;
    while ((nl = text.indexOf('\n', start)) >= 0) {
      this.onLine(text.slice(start, nl));
      start = nl + 1;
    }
    this.buffer = text.slice(start);
  }

  /** Delivers a final line without a trailing newline. Idempotent. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    const rest = this.buffer + this.decoder.end();
    this.buffer = '';
    if (rest.length > 0) this.onLine(rest);
  }
}

function describeSpawnError(command: string, cwd: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') {
    let cwdOk = false;
    try {
      cwdOk = statSync(cwd).isDirectory();
    } catch {
      cwdOk = false;
    }
    if (!cwdOk) return `cannot start "${command}": working directory ${cwd} does not exist`;
    return `cannot start "${command}": ENOENT (command not found)`;
  }
  if (code === 'EACCES') return `cannot start "${command}": EACCES (permission denied)`;
  const message = err instanceof Error ? err.message : String(err);
  return `cannot start "${command}": ${code ? `${code} (${message})` : message}`;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Runs one agent process for an attempt and resolves when it and everything it started are
 * gone and every output line has been delivered.
 *
 * - Spawns `argv[0]` with `argv.slice(1)` without a shell, `detached` (it leads its own
 *   process group and session), in `request.cwd`, with env `{ ...request.env, AGENTQ_ATTEMPT_ID: request.attemptId }`,
 *   through this process's spawner (`process/spawner.ts`: a small helper process forks it,
 *   so the spawn does not cost in proportion to this process's memory nor block its event loop).
 * - Appends raw stdout/stderr bytes to `request.stdoutLog` / `request.stderrLog` (directories created).
 * - Emits `request.onEvent({ type: 'spawned', pid })` once started (a throwing `onEvent` is ignored).
 * - Stops the tree at `request.deadline` (epoch ms; a non-finite deadline means none) with
 *   `stoppedFor: 'timeout'`, when `request.signal` aborts with `'cancel'`, or when a line
 *   handler calls `stop(reason)` with `'early'`. The first reason wins. If the signal is
 *   already aborted or the deadline already passed, nothing is spawned and the result says so
 *   (`exitCode` and `signal` null).
 * - Stopping goes in stages: close stdin (confirmed by the spawner), SIGTERM the process group, every descendant and
 *   every process tagged with this attempt id, then SIGKILL whatever is left after
 *   `options.graceMs` (default 5000 ms).
 * - After the main process exits for any reason (including exit 0), remaining group members
 *   and tagged processes (e.g. `setsid` background commands) are stopped the same way.
 * - Lines are split on `\n` and decoded as UTF-8; a final line without a newline is delivered
 *   too. Lines may still arrive after a stop. A line handler that throws stops the run early
 *   with `earlyReason` `"stdout line handler threw: …"` (or stderr).
 *
 * @throws AgentQueueError with code `spawn_failed` when the process cannot be started
 *   (command not found, permission denied, missing working directory, empty argv, log file
 *   not writable). The message names the command, e.g. `cannot start "claude": ENOENT (command not found)`;
 *   the same line is appended to the stderr log when it is writable. Nothing is left running.
 */
export async function runAgentProcess(
  request: ProcessRequest,
  argv: string[],
  options: AgentProcessOptions = {},
): Promise<AgentProcessResult> {
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  const command = argv[0];
  if (command === undefined || command === '') {
    throw new AgentQueueError('spawn_failed', 'cannot start an empty command');
  }
  if (request.signal.aborted) {
    return { exitCode: null, signal: null, stoppedFor: 'cancel', earlyReason: null };
  }
  if (Number.isFinite(request.deadline) && request.deadline <= Date.now()) {
    return { exitCode: null, signal: null, stoppedFor: 'timeout', earlyReason: null };
  }

  let stdoutLog: LogFile;
  let stderrLog: LogFile;
  try {
    stdoutLog = new LogFile(request.stdoutLog);
  } catch (err) {
    throw new AgentQueueError('spawn_failed', `cannot start "${command}": cannot open log ${request.stdoutLog}: ${describe(err)}`, { cause: err });
  }
  try {
    stderrLog = new LogFile(request.stderrLog);
  } catch (err) {
    stdoutLog.close();
    throw new AgentQueueError('spawn_failed', `cannot start "${command}": cannot open log ${request.stderrLog}: ${describe(err)}`, { cause: err });
  }

  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(request.env)) if (value !== undefined) env[key] = value;
  env[ATTEMPT_ID_ENV] = request.attemptId;

  const failSpawn = async (err: unknown): Promise<never> => {
    const message = describeSpawnError(command, request.cwd, err);
    stderrLog.write(`agentq: ${message}\n`);
    stdoutLog.close();
    stderrLog.close();
    throw new AgentQueueError('spawn_failed', message, { cause: err });
  };

  // Everything the agent starts is created after this: its sweeps read only those processes.
  const createdAfter = markProcessCreation();
  let child: SpawnedProcess;
  try {
    // The prompt goes with the start (the spawner writes it, then EOF): no round trip more before the agent reads it.
    child = await spawnAgent(command, argv.slice(1), { cwd: request.cwd, env, input: options.stdin ?? '' });
  } catch (err) {
    return failSpawn(err);
  }
  const { pid, stdin, stdout, stderr, exited } = child;
  const taggedStartedFrom = readProcessInfo(pid)?.startTime;

  let stoppedFor: StopKind | null = null;
  let earlyReason: string | null = null;
  let hasExited = false;
  let stopping: Promise<void> | null = null;
  let deadlineTimer: NodeJS.Timeout | null = null;

  const noteSurvivors = (report: StopReport): void => {
    if (report.survivors.length > 0) {
      stderrLog.write(`agentq: processes still alive after SIGKILL: ${report.survivors.join(', ')}\n`);
    }
  };
  const stopTree = (targets: StopTargets, grace = graceMs): Promise<void> =>
    stopProcesses(targets, grace).then(noteSurvivors, (err: unknown) => {
      stderrLog.write(`agentq: stopping the process tree failed: ${describe(err)}\n`);
    });
  const isOurs = (tag: string): boolean => tag === request.attemptId;

  const stop = (kind: StopKind, reason: string | null): void => {
    if (stoppedFor !== null) return;
    stoppedFor = kind;
    earlyReason = kind === 'early' ? reason : null;
    if (hasExited) return; // the post-exit sweep is already stopping everything
    // A cancel (user or shutdown) is a request to stop now: a short grace, so it ends within ~2 s.
    const grace = kind === 'cancel' ? Math.min(graceMs, CANCEL_GRACE_MS) : graceMs;
    // Stdin closed first (its pipe is the spawner's: closed once it says so), then the signals.
    stopping = child.closeStdin().then(() => stopTree({ pids: [pid], processGroups: [pid], descendantsOf: [pid], tagged: isOurs, taggedStartedFrom, createdAfter }, grace));
  };
  const stopEarly = (reason: string): void => stop('early', String(reason));

  // Deadline, re-armed in steps for delays beyond setTimeout's range.
  const armDeadline = (): void => {
    deadlineTimer = null;
    if (!Number.isFinite(request.deadline)) return;
    const ms = request.deadline - Date.now();
    if (ms <= 0) stop('timeout', null);
    else deadlineTimer = setTimeout(armDeadline, Math.min(ms, MAX_TIMER_MS));
  };
  const onAbort = (): void => stop('cancel', null);
  request.signal.addEventListener('abort', onAbort, { once: true });
  if (request.signal.aborted) onAbort(); // aborted while the logs were being opened
  armDeadline();

  try {
    request.onEvent?.({ type: 'spawned', pid });
  } catch {
    // A broken listener must not leak the process.
  }

  // Output: raw bytes to the logs, lines to the handlers.
  const lineHandler = (
    handler: AgentProcessOptions['onStdoutLine'],
    name: string,
  ): ((line: string) => void) => (line) => {
    if (!handler) return;
    try {
      handler(line, stopEarly);
    } catch (err) {
      stopEarly(`${name} line handler threw: ${describe(err)}`);
    }
  };
  const stdoutLines = new LineSplitter(lineHandler(options.onStdoutLine, 'stdout'));
  const stderrLines = new LineSplitter(lineHandler(options.onStderrLine, 'stderr'));
  const pipeClosed = (stream: Readable, log: LogFile, lines: LineSplitter): Promise<void> =>
    new Promise<void>((resolve) => {
      stream.on('data', (chunk: Buffer) => {
        log.write(chunk);
        lines.push(chunk);
      });
      stream.once('end', () => lines.end());
      stream.once('close', () => resolve());
      stream.on('error', () => {});
    });
  const stdoutClosed = pipeClosed(stdout, stdoutLog, stdoutLines);
  const stderrClosed = pipeClosed(stderr, stderrLog, stderrLines);

  // Input: the prompt and EOF went with the start (written by the spawner; EPIPE, an agent that does not read stdin, is ignored there).
  stdin.on('error', () => {});

  const exit = await exited;
  hasExited = true;
  if (deadlineTimer !== null) clearTimeout(deadlineTimer);
  request.signal.removeEventListener('abort', onAbort);
  stdin.destroy();

  // Sweep: background commands (group members, setsid'd tagged processes) never outlive the attempt.
  if (stopping !== null) await stopping;
  await stopTree({ processGroups: [pid], tagged: isOurs, taggedStartedFrom, createdAfter });

  // The pipes reach EOF once every holder is gone; give up on them if something we could not find holds them.
  let drainTimer: NodeJS.Timeout | null = null;
  const drained = await Promise.race([
    Promise.all([stdoutClosed, stderrClosed]).then(() => true),
    new Promise<boolean>((resolve) => {
      drainTimer = setTimeout(() => resolve(false), PIPE_DRAIN_MS);
    }),
  ]);
  if (drainTimer !== null) clearTimeout(drainTimer);
  if (!drained) {
    stderrLog.write('agentq: output pipes still held open by an unknown process; stopped reading\n');
    stdout.destroy();
    stderr.destroy();
  }
  stdoutLines.end();
  stderrLines.end();
  stdoutLog.close();
  stderrLog.close();

  return { exitCode: exit.code, signal: exit.signal, stoppedFor, earlyReason };
}
