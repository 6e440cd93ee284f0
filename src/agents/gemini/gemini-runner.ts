/**
 * The runner for Gemini CLI (`gemini -p PROMPT -o stream-json --yolo --skip-trust`).
 * Facts it relies on were observed with `@google/gemini-cli` 0.61.0; see
 * /work/shared/reference/gemini-headless.md and ./stream-parser.ts.
 */
import { AgentQueueError } from '../../core/errors.ts';
import { runAgentProcess, type AgentProcessResult } from '../agent-process.ts';
import { endedBeforeAnswer, signalled, spawnFailure } from '../outcomes.ts';
import type { AgentEvent, AgentRunner, RunOutcome, RunRequest } from '../runner.ts';
import { GeminiStreamParser, classifyResult, describeExitCode, type GeminiSignal } from './stream-parser.ts';

/** Options of {@link GeminiRunner}. */
export interface GeminiRunnerOptions {
  /** Argv prefix that starts the CLI, e.g. from `resolveAgentCommand(GEMINI, …)` (`['/usr/bin/gemini']`). */
  command: string[];
  /**
   * Extra CLI arguments, appended after the standard ones (e.g. `['--include-directories', '../lib']`).
   * `--approval-mode X` here does not replace `--yolo` (the CLI rejects both together).
   */
  extraArgs?: string[];
  /** SIGTERM→SIGKILL grace when stopping the process tree, ms. Default: runAgentProcess's (5000). */
  graceMs?: number;
}

/**
 * Runs Gemini CLI headless for one attempt and maps what it printed to a {@link RunOutcome}.
 *
 * Argv: `[...command, '-p', prompt, '-o', 'stream-json', '--yolo', '--skip-trust',
 * ['--resume', id], ['-m', model], ...extraArgs]`. `--yolo` is what makes the CLI offer its
 * shell and edit tools headless at all; `--skip-trust` lets it run in a folder it has not
 * seen (else exit 55). `-m` is left out when `request.model` is null (the CLI then uses
 * `auto`, which costs an extra rating call). The prompt is an argument (Gemini CLI 0.61 `-p`
 * takes its value; a prompt starting with `-` is passed as `-p=<prompt>`), stdin is closed.
 * `systemPromptAppend` is prepended to the prompt (the CLI has no flag for it).
 *
 * Reaching the API is the environment's job (`request.env`): `GEMINI_API_KEY`, optionally
 * `GOOGLE_GEMINI_BASE_URL` (server root without `/v1beta`), and `GEMINI_CLI_HOME` whose
 * `.gemini/settings.json` has `{"security":{"auth":{"selectedType":"gemini-api-key"}}}`.
 *
 * Outcomes:
 * - `cancelled` when `request.signal` aborted; `timed_out` when the deadline passed without
 *   a result line before it. The CLI's launcher ignores SIGTERM and relaunches itself as a
 *   child; runAgentProcess stops the whole process group and every process tagged with the
 *   attempt id, so nothing survives (killed, the CLI exits 0 without a result);
 * - stopped early on the first 429/quota or 401/403 signal, from stderr (`Attempt 1 failed
 *   with status 429…`: during retries stdout is silent, and the CLI would retry for ~3.5
 *   minutes) or an `error` event: `rate_limited` (`resetAt` from "retry in Xs" when given,
 *   else null) or `auth_failed`;
 * - a `result` line: `status: success` → `completed` with the assistant text after the last
 *   tool call; `status: error` → rate limit / auth texts as above, else `failed` (retryable
 *   unless the exit code says otherwise, e.g. 144 = HTTP 400, 53 turn limit);
 * - no result line: by exit code (see `describeExitCode`): 41 → `auth_failed`, 145/147 →
 *   `auth_failed`, 173 → `rate_limited`, 42/44/52/53/55 → `failed` not retryable, else
 *   `failed` retryable, with the last meaningful stderr line;
 * - the command cannot start (`spawn_failed`): `failed`, not retryable.
 * Events: `spawned`, `session` (init line), `progress` per tool call
 * (`run_shell_command: npm test`), `usage` on the result line. Cost: tokens only, `costUsd` null.
 * Never throws for agent failures.
 */
export class GeminiRunner implements AgentRunner {
  readonly name = 'gemini';
  /** `--resume SESSION_ID` works headless (same cwd); `systemPromptAppend` is prepended to the prompt. */
  readonly canResume = true;
  private readonly command: string[];
  private readonly extraArgs: string[];
  private readonly graceMs: number | undefined;

  /** @throws AgentQueueError `agent_not_found` when `command` is empty. */
  constructor(options: GeminiRunnerOptions) {
    if (options.command.length === 0 || !options.command[0]) {
      throw new AgentQueueError('agent_not_found', 'GeminiRunner needs a command (see resolveAgentCommand)');
    }
    this.command = [...options.command];
    this.extraArgs = [...(options.extraArgs ?? [])];
    this.graceMs = options.graceMs;
  }

  /** The argv this runner spawns for `request`. */
  buildArgv(request: Pick<RunRequest, 'model' | 'prompt' | 'resumeSessionId' | 'systemPromptAppend'>): string[] {
    const prompt = request.systemPromptAppend ? `${request.systemPromptAppend}\n\n${request.prompt}` : request.prompt;
    // yargs would read a value starting with "-" as an option; the `=` form keeps it a value.
    const argv = [...this.command, ...(prompt.startsWith('-') ? [`-p=${prompt}`] : ['-p', prompt])];
    argv.push('-o', 'stream-json', '--yolo', '--skip-trust');
    if (request.resumeSessionId) argv.push('--resume', request.resumeSessionId);
    if (request.model !== null) argv.push('-m', request.model);
    argv.push(...this.extraArgs);
    return argv;
  }

  async run(request: RunRequest): Promise<RunOutcome> {
    const parser = new GeminiStreamParser();
    let stopSignal: GeminiSignal | null = null;
    /** The last few meaningful stderr lines (a fatal error often spans two). */
    const stderrTail: string[] = [];
    const emit = (event: AgentEvent): void => {
      try {
        request.onEvent?.(event);
      } catch {
        // A broken listener must not break the attempt.
      }
    };
    const maybeStop = (signal: GeminiSignal | null, stop: (reason: string) => void): void => {
      if (!signal || stopSignal) return;
      stopSignal = signal;
      stop(signal.reason);
    };

    let proc: AgentProcessResult;
    try {
      proc = await runAgentProcess(request, this.buildArgv(request), {
        graceMs: this.graceMs,
        onStdoutLine: (line, stop) => {
          const parsed = parser.push(line);
          for (const event of parsed.events) emit(event);
          maybeStop(parsed.stop, stop);
        },
        onStderrLine: (line, stop) => {
          const text = line.trim();
          if (!text) return;
          if (!isNoise(text)) {
            stderrTail.push(text);
            if (stderrTail.length > 2) stderrTail.shift();
          }
          maybeStop(parser.pushStderr(text), stop);
        },
      });
    } catch (err) {
      return spawnFailure(err, 'Gemini CLI', parser.stats());
    }

    const stats = parser.stats();
    const base = { stats, exitCode: proc.exitCode };
    const state = parser.state;

    const ended = endedBeforeAnswer(request, proc, base, stopSignal as GeminiSignal | null, state.hasResult ? (state.resultAt ?? Infinity) : null);
    if (ended) return ended;

    const exit = describeExitCode(proc.exitCode);
    if (state.hasResult) {
      if (state.status === 'success') return { ...base, kind: 'completed', result: state.finalText };
      const limited = signalled(classifyResult(state, Date.now()), base);
      if (limited) return limited;
      if (exit.kind === 'auth_failed') return { ...base, kind: 'auth_failed', reason: `Gemini CLI: ${exit.reason}` };
      const text = state.errorMessage?.trim() || state.errors.at(-1) || `Gemini CLI reported status ${state.status ?? 'unknown'}`;
      return { ...base, kind: 'failed', retryable: exit.retryable, reason: `${text} (${exit.reason})` };
    }

    // No result line.
    const detail = (stderrTail.length > 0 ? stderrTail.join(' ') : null) ?? (state.skippedLines > 0 ? `${state.skippedLines} unparsable stdout line(s)` : null);
    const how = proc.signal !== null && proc.exitCode === null ? `was killed by ${proc.signal}` : exit.reason;
    const reason = `Gemini CLI ${how} without a result${detail ? `: ${detail}` : ''}`;
    if (exit.kind === 'auth_failed') return { ...base, kind: 'auth_failed', reason };
    if (exit.kind === 'rate_limited') return { ...base, kind: 'rate_limited', reason, resetAt: null };
    return { ...base, kind: 'failed', retryable: exit.retryable, reason };
  }
}

/** stderr lines the CLI prints on every run (Gemini CLI 0.61); not worth quoting in a reason. */
function isNoise(text: string): boolean {
  return /^(Warning: 256-color|YOLO mode is enabled|Ripgrep is not available|\[STARTUP\]|Loaded cached credentials)/.test(text);
}

