/**
 * The runner for the OpenAI Codex CLI (`codex exec --json`). Facts it relies on were
 * observed with Codex CLI 0.169; see /work/shared/reference/codex-headless.md and
 * ./stream-parser.ts.
 */
import { AgentQueueError } from '../../core/errors.ts';
import { runAgentProcess, type AgentProcessResult } from '../agent-process.ts';
import { cancelled, endedBeforeAnswer, signalled, spawnFailure } from '../outcomes.ts';
import type { AgentEvent, AgentRunner, RunOutcome, RunRequest } from '../runner.ts';
import { CodexStreamParser, type CodexSignal } from './stream-parser.ts';

/** Options of {@link CodexRunner}. */
export interface CodexRunnerOptions {
  /** Argv prefix that starts the CLI, e.g. from `resolveAgentCommand(CODEX, …)` (`['/usr/bin/codex']`). */
  command: string[];
  /**
   * Extra CLI arguments, placed after `exec` and before the prompt (e.g. the provider
   * config: `['-c', 'model_provider=local', '-c', 'model_providers.local={…}']`).
   */
  extraArgs?: string[];
  /** SIGTERM→SIGKILL grace when stopping the process tree, ms. Default: runAgentProcess's (5000). */
  graceMs?: number;
  /**
   * `--sandbox` value: `read-only`, `workspace-write` or `danger-full-access` (default:
   * headless runs are already isolated by agentq's workspace; codex's own default is
   * read-only, where writing commands fail but the run still "succeeds").
   */
  sandbox?: string;
}

/**
 * Runs `codex exec --json` for one attempt and maps what it printed to a {@link RunOutcome}.
 *
 * Argv: `[...command, 'exec', '--json', '--skip-git-repo-check', '--sandbox', sandbox,
 * ['-m', model], '-C', cwd, ...extraArgs, ['resume', threadId], '--', prompt]`. Resuming
 * puts `resume ID` last because codex 0.169 rejects `--sandbox` after `resume`. stdin is
 * closed at once (codex otherwise waits for EOF and appends stdin to the prompt).
 *
 * Outcomes:
 * - `cancelled` when `request.signal` aborted; `timed_out` when the deadline passed before
 *   a `turn.completed` line;
 * - stopped early on the first auth or rate-limit signal (`Reconnecting... 1/5 (unexpected
 *   status 401 …)`, `… 429 Too Many Requests`, usage limit, quota): `auth_failed` /
 *   `rate_limited` (`resetAt` from "try again at/in …", else null). Without this codex
 *   retries a 401 for ~7 s and a 429 with `Retry-After: N` for 5×N s;
 * - `turn.completed` and no `turn.failed` → `completed` with the last `agent_message`;
 * - `turn.failed` → `failed`, retryable, reason its message;
 * - nothing of that: `failed`, retryable, "exited with code N: <last stderr line>"; exit
 *   code 2 (usage error) is not retryable; the command cannot start: not retryable.
 * Stats: thread id as `sessionId`, tokens from `turn.completed` (cumulative over the
 * thread), `costUsd` null (codex reports no cost), `model` the requested one.
 * Never throws for agent failures.
 */
export class CodexRunner implements AgentRunner {
  readonly name = 'codex';
  readonly canResume = true;
  private readonly command: string[];
  private readonly extraArgs: string[];
  private readonly graceMs: number | undefined;
  private readonly sandbox: string;

  /** @throws AgentQueueError `agent_not_found` when `command` is empty. */
  constructor(options: CodexRunnerOptions) {
    if (options.command.length === 0 || !options.command[0]) {
      throw new AgentQueueError('agent_not_found', 'CodexRunner needs a command (see resolveAgentCommand)');
    }
    this.command = [...options.command];
    this.extraArgs = [...(options.extraArgs ?? [])];
    this.graceMs = options.graceMs;
    this.sandbox = options.sandbox ?? 'danger-full-access';
  }

  /** The argv this runner spawns for `request`. */
  buildArgv(request: Pick<RunRequest, 'model' | 'prompt' | 'resumeSessionId' | 'cwd'>): string[] {
    const argv = [...this.command, 'exec', '--json', '--skip-git-repo-check', '--sandbox', this.sandbox];
    if (request.model !== null) argv.push('-m', request.model);
    argv.push('-C', request.cwd, ...this.extraArgs);
    if (request.resumeSessionId) argv.push('resume', request.resumeSessionId);
    argv.push('--', request.prompt);
    return argv;
  }

  async run(request: RunRequest): Promise<RunOutcome> {
    const parser = new CodexStreamParser();
    let stopSignal: CodexSignal | null = null;
    let lastStderr: string | null = null;
    const emit = (event: AgentEvent): void => {
      try {
        request.onEvent?.(event);
      } catch {
        // A broken listener must not break the attempt.
      }
    };
    const statsNow = () => ({ ...parser.stats(), model: request.model });

    let proc: AgentProcessResult;
    try {
      proc = await runAgentProcess(request, this.buildArgv(request), {
        stdin: '',
        graceMs: this.graceMs,
        onStdoutLine: (line, stop) => {
          const parsed = parser.push(line);
          for (const event of parsed.events) {
            emit(event.type === 'session' ? { ...event, model: request.model } : event);
          }
          if (parsed.stop && !stopSignal) {
            stopSignal = parsed.stop;
            stop(parsed.stop.reason);
          }
        },
        onStderrLine: (line) => {
          const text = line.trim();
          if (!text || /^WARNING: proceeding, even though|^Reading additional input from stdin/.test(text)) return;
          lastStderr = text;
        },
      });
    } catch (err) {
      return spawnFailure(err, 'Codex', statsNow());
    }

    const base = { stats: statsNow(), exitCode: proc.exitCode };
    const state = parser.state;
    if (proc.stoppedFor === 'cancel') {
      return cancelled(request, base);
    }
    // A limit or auth signal wins even when the run ended by itself (codex exits after it).
    const stopped = signalled((stopSignal as CodexSignal | null) ?? state.stopSignal, base);
    if (stopped) return stopped;
    const completed = state.turnsCompleted > 0 && !state.turnFailed;
    const ended = endedBeforeAnswer(request, proc, base, null, completed ? (state.completedAt ?? Infinity) : null);
    if (ended) return ended;
    if (completed) return { ...base, kind: 'completed', result: state.lastAgentMessage ?? '' };
    if (state.turnFailed) {
      return { ...base, kind: 'failed', retryable: true, reason: state.failureMessage ?? state.lastError ?? 'codex reported turn.failed' };
    }
    const how =
      proc.exitCode !== null ? `exited with code ${proc.exitCode}` : proc.signal !== null ? `was killed by ${proc.signal}` : 'ended';
    const detail = lastStderr ?? state.lastError ?? (state.skippedLines > 0 ? `${state.skippedLines} unparsable stdout line(s)` : null);
    return {
      ...base,
      kind: 'failed',
      retryable: proc.exitCode !== 2,
      reason: `Codex ${how} without a completed turn${detail ? `: ${detail}` : ''}`,
    };
  }
}

