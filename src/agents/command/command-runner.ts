/**
 * `agent: command` — runs any command on a task: the prompt goes to stdin, stdout is the
 * result, the exit code says whether it worked.
 */
import { AgentQueueError } from '../../core/errors.ts';
import type { CommandSpec } from '../../core/types.ts';
import { runAgentProcess, type AgentProcessResult } from '../agent-process.ts';
import { emptyStats, type AgentRunner, type RunOutcome, type RunRequest } from '../runner.ts';

/** Options of the `command` runner. */
export interface CommandRunnerOptions {
  /** Command for tasks without `command` (config `agents.command.command`): argv, or a string run by `sh -c`. */
  defaultCommand?: CommandSpec | null;
  /** SIGTERM→SIGKILL grace when stopping, ms. Default 5000. */
  graceMs?: number;
}

/** Reason given when neither the task nor the config names a command. */
export const NO_COMMAND_REASON = 'no command configured: set "command" in the task or agents.command.command in config';

/** Largest result kept, in UTF-16 code units; beyond it the start is cut (the full output stays in the stdout log). */
export const MAX_RESULT_CHARS = 1_000_000;

/** Longest stderr excerpt quoted in a failure reason, characters. */
const MAX_STDERR_EXCERPT = 500;

/** Turns a command spec into argv: a string runs via `sh -c`; empty specs give null. */
export function commandArgv(spec: CommandSpec | null | undefined): string[] | null {
  if (spec === null || spec === undefined) return null;
  if (typeof spec === 'string') return spec.trim() === '' ? null : ['sh', '-c', spec];
  return spec.length === 0 || spec[0] === '' ? null : [...spec];
}

/** Keeps the last `max` characters of stdout, line by line. */
class OutputTail {
  private lines: string[] = [];
  private chars = 0;
  private dropped = 0;
  constructor(private readonly max: number) {}
  add(line: string): void {
    this.lines.push(line);
    this.chars += line.length + 1;
    while (this.chars > this.max && this.lines.length > 1) {
      const first = this.lines.shift()!;
      this.chars -= first.length + 1;
      this.dropped += first.length + 1;
    }
  }
  text(logPath: string): string {
    const body = this.lines.join('\n').trimEnd();
    return this.dropped > 0 ? `[agentq: first ${this.dropped} characters cut; full output in ${logPath}]\n${body}` : body;
  }
}

/**
 * The `command` runner. The command is `task.command` if set, else `defaultCommand`; a
 * string runs via `sh -c`, an array is argv (no shell). The prompt is written to stdin; the
 * result is stdout with trailing whitespace trimmed.
 *
 * Outcomes: exit 0 → `completed`; non-zero exit or a signal we did not send → `failed`,
 * retryable; deadline → `timed_out`; `request.signal` aborted → `cancelled` (reason:
 * `String(signal.reason ?? 'cancelled')`); no command or a command that cannot be started →
 * `failed`, not retryable. Stats are always empty. `run` never throws for command failures.
 */
export class CommandRunner implements AgentRunner {
  readonly name = 'command';
  /** The command's own process is the work: its CPU time and writes count as activity for the stall watchdog. */
  readonly ownProcessIsWork = true;
  private readonly defaultCommand: CommandSpec | null;
  private readonly graceMs: number | undefined;

  /**
   * @param options.defaultCommand command for tasks without their own; default none.
   * @param options.graceMs SIGTERM→SIGKILL grace, ms; default 5000.
   */
  constructor(options: CommandRunnerOptions = {}) {
    this.defaultCommand = options.defaultCommand ?? null;
    this.graceMs = options.graceMs;
  }

  /** Runs the task's command once. Resolves with the outcome; rejects only on internal errors. */
  async run(request: RunRequest): Promise<RunOutcome> {
    const stats = emptyStats();
    const argv = commandArgv(request.task.command) ?? commandArgv(this.defaultCommand);
    if (argv === null) {
      return { kind: 'failed', reason: NO_COMMAND_REASON, retryable: false, exitCode: null, stats };
    }

    const output = new OutputTail(MAX_RESULT_CHARS);
    let lastStderr: string | null = null;
    let result: AgentProcessResult;
    try {
      result = await runAgentProcess(request, argv, {
        stdin: request.prompt,
        graceMs: this.graceMs,
        onStdoutLine: (line) => output.add(line),
        onStderrLine: (line) => {
          if (line.trim() !== '') lastStderr = line.trim();
        },
      });
    } catch (err) {
      if (err instanceof AgentQueueError && err.code === 'spawn_failed') {
        return { kind: 'failed', reason: err.message, retryable: false, exitCode: null, stats };
      }
      throw err;
    }

    const { exitCode } = result;
    switch (result.stoppedFor) {
      case 'timeout':
        return { kind: 'timed_out', reason: `command timed out after ${request.task.timeoutMs} ms`, exitCode, stats };
      case 'cancel':
        return { kind: 'cancelled', reason: String(request.signal.reason ?? 'cancelled'), exitCode, stats };
      case 'early':
        return { kind: 'failed', reason: result.earlyReason ?? 'stopped early', retryable: true, exitCode, stats };
      case null:
        break;
    }
    if (exitCode === 0) return { kind: 'completed', result: output.text(request.stdoutLog), exitCode, stats };

    const excerpt = lastStderr === null ? '' : `: ${truncate(lastStderr, MAX_STDERR_EXCERPT)}`;
    const reason =
      exitCode !== null
        ? `command exited with code ${exitCode}${excerpt}`
        : `command was killed by signal ${result.signal ?? 'unknown'}${excerpt}`;
    return { kind: 'failed', reason, retryable: true, exitCode, stats };
  }
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
