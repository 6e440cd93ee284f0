/**
 * The runner for Claude Code (`claude -p … --output-format stream-json --verbose`).
 * Facts it relies on were observed with Claude Code 2.1.197; see
 * /work/shared/reference/claude-code-headless.md and ./stream-parser.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentQueueError } from '../../core/errors.ts';
import type { McpAttachment, McpOpened, McpServerSpec } from '../../mcp/attach.ts';
import { runAgentProcess, type AgentProcessResult } from '../agent-process.ts';
import { endedBeforeAnswer, signalled, spawnFailure } from '../outcomes.ts';
import type { AgentEvent, AgentRunner, RunOutcome, RunRequest } from '../runner.ts';
import { ClaudeStreamParser, classifyResult, type ClaudeSignal } from './stream-parser.ts';

/** Options of {@link ClaudeRunner}. */
export interface ClaudeRunnerOptions {
  /** Argv prefix that starts the CLI, e.g. from `resolveAgentCommand(CLAUDE, …)` (`['/usr/bin/claude']`). */
  command: string[];
  /**
   * `--permission-mode` value. Default `bypassPermissions` (headless runs cannot answer
   * permission prompts). As root the CLI refuses it unless the env has `IS_SANDBOX=1`.
   */
  permissionMode?: string;
  /** Extra CLI arguments, appended after the standard ones (e.g. `['--debug']`). */
  extraArgs?: string[];
  /** `--max-turns` for tasks that set no `max_turns` (config `agents.claude.max_turns`). Default: none. */
  maxTurns?: number;
  /** `--allowedTools` for tasks that set no `allowed_tools` (config `agents.claude.allowed_tools`). Default: none. */
  allowedTools?: string[];
  /** SIGTERM→SIGKILL grace when stopping the process tree, ms. Default: runAgentProcess's (5000). */
  graceMs?: number;
  /**
   * How the prompt reaches the CLI. Default `stdin`: written to stdin (then EOF), which the
   * CLI reads in `-p` mode when no prompt argument is given. This keeps prompts out of `ps`,
   * has no argv size limit (one argument may not exceed 128 KiB on Linux: E2BIG) and
   * allows prompts that start with `-` (as `-p PROMPT` the CLI rejects `- item` as
   * "unknown option"). `argv`: passed as the last argument after `--`.
   */
  promptVia?: 'stdin' | 'argv';
  /**
   * MCP servers every attempt gets, by name (e.g. `agentq`: the dispatcher's `McpHttpHost`,
   * unless config `agents.claude.mcp` is false): each opened for the attempt before the CLI
   * starts and closed once it has exited, their declarations written to an `--mcp-config` file
   * (mode 0600 in a private temp directory, removed when the attempt ends: it holds the
   * attempt's bearer token, which argv would show to `ps`), and their tools allowed with one
   * `--allowedTools mcp__<name>` rule each (a permission mode other than `bypassPermissions`
   * would refuse them in a headless run). Default none.
   */
  mcpServers?: Record<string, McpAttachment>;
}

/** Stderr texts of usage errors that another attempt cannot fix (Claude Code 2.1). */
const PERMANENT_STDERR: { re: RegExp; hint: string }[] = [
  {
    re: /cannot be used with root\/sudo privileges/i,
    hint: ' (running as root: set IS_SANDBOX=1 in the environment, or use another permission mode)',
  },
  { re: /^error: (unknown option|option '.*' argument|missing required argument|too many arguments)/i, hint: '' },
];

/**
 * Runs Claude Code headless for one attempt and maps what it printed to a {@link RunOutcome}.
 *
 * Argv: `[...command, '-p', '--output-format', 'stream-json', '--verbose', ['--resume', id],
 * ['--append-system-prompt', text], '--model', model, '--max-budget-usd', task.maxCostUsd,
 * ['--max-turns', n], ['--allowedTools', ...rules], '--permission-mode', mode, ...extraArgs]`
 * (`max_turns` / `allowed_tools` from the task, else the runner's options); `--model`
 * is left out when `request.model` is null, `--max-budget-usd` when the task sets no
 * `max_cost_usd` (the CLI then uses its default, `claude-opus-4-8` in 2.1.197). The prompt goes to
 * stdin (see {@link ClaudeRunnerOptions.promptVia}).
 *
 * Outcomes:
 * - `cancelled` when `request.signal` aborted; `timed_out` when the deadline passed, unless a
 *   `result` line had arrived before it (a result after the deadline does not count: the CLI
 *   goes on and reports success after SIGTERM killed its tool command);
 * - stopped early on a stream signal: `system/api_retry` 401/403 → `auth_failed`
 *   ("authentication failed (HTTP 401 …)"), 429/529 or a `rate_limit_event` with status
 *   `rejected` → `rate_limited` (`resetAt` from `resetsAt`, else null). Without this the
 *   CLI retries 10 times over ~3 minutes;
 * - a `result` line: rate-limit texts → `rate_limited` (reset parsed from the text),
 *   `api_error_status` 401/403 or "Not logged in" → `auth_failed`, `is_error: false` →
 *   `completed` with the result text, `is_error: true` → `failed`, retryable, reason the
 *   result text (prefixed with the subtype unless `success`); a billing error ("Credit
 *   balance is too low") is not retryable;
 * - no result line: `failed`, retryable, "exited with code N: <last stderr line>", except
 *   CLI usage errors (unknown option, root without IS_SANDBOX) which are not retryable;
 * - the command cannot start (`spawn_failed`): `failed`, not retryable.
 * Events: `spawned` (from runAgentProcess), `session` once the session id is known,
 * `progress` per tool use ("Bash: npm test"), `usage` on the result line.
 * Never throws for agent failures.
 */
export class ClaudeRunner implements AgentRunner {
  readonly name = 'claude';
  readonly canResume = true;
  private readonly command: string[];
  private readonly permissionMode: string;
  private readonly extraArgs: string[];
  private readonly graceMs: number | undefined;
  private readonly promptVia: 'stdin' | 'argv';
  private readonly maxTurns: number | null;
  private readonly allowedTools: string[] | null;
  private readonly mcpServers: Record<string, McpAttachment>;

  /** @throws AgentQueueError `agent_not_found` when `command` is empty. */
  constructor(options: ClaudeRunnerOptions) {
    if (options.command.length === 0 || !options.command[0]) {
      throw new AgentQueueError('agent_not_found', 'ClaudeRunner needs a command (see resolveAgentCommand)');
    }
    this.command = [...options.command];
    this.permissionMode = options.permissionMode ?? 'bypassPermissions';
    this.extraArgs = [...(options.extraArgs ?? [])];
    this.graceMs = options.graceMs;
    this.promptVia = options.promptVia ?? 'stdin';
    this.maxTurns = options.maxTurns ?? null;
    this.allowedTools = options.allowedTools ?? null;
    this.mcpServers = { ...(options.mcpServers ?? {}) };
  }

  /**
   * The argv this runner spawns for `request` (the prompt is included only with `promptVia: 'argv'`).
   * @param mcpConfigFile the attempt's `--mcp-config` file ({@link ClaudeRunnerOptions.mcpServers}); null: none
   */
  buildArgv(
    request: Pick<RunRequest, 'model' | 'prompt' | 'resumeSessionId' | 'systemPromptAppend'> & { task?: Partial<Pick<RunRequest['task'], 'maxCostUsd' | 'maxTurns' | 'allowedTools'>> },
    mcpConfigFile: string | null = null,
  ): string[] {
    const argv = [...this.command, '-p', '--output-format', 'stream-json', '--verbose'];
    if (request.resumeSessionId) argv.push('--resume', request.resumeSessionId);
    if (request.systemPromptAppend) argv.push('--append-system-prompt', request.systemPromptAppend);
    if (request.model !== null) argv.push('--model', request.model);
    const budget = request.task?.maxCostUsd;
    if (typeof budget === 'number' && budget > 0) argv.push('--max-budget-usd', String(budget));
    const maxTurns = request.task?.maxTurns ?? this.maxTurns;
    if (maxTurns !== null) argv.push('--max-turns', String(maxTurns));
    const mcp = mcpConfigFile === null ? [] : Object.keys(this.mcpServers).map((name) => `mcp__${name}`);
    const tools = [...(request.task?.allowedTools ?? this.allowedTools ?? []), ...mcp];
    // Variadic in the CLI: one argument per rule (rules such as `Bash(git log:*)` hold spaces).
    if (tools.length > 0) argv.push('--allowedTools', ...tools);
    // Variadic too: the next option ends it.
    if (mcpConfigFile !== null) argv.push('--mcp-config', mcpConfigFile);
    argv.push('--permission-mode', this.permissionMode, ...this.extraArgs);
    if (this.promptVia === 'argv') argv.push('--', request.prompt);
    return argv;
  }

  async run(request: RunRequest): Promise<RunOutcome> {
    const parser = new ClaudeStreamParser();
    let stopSignal: ClaudeSignal | null = null;
    let lastStderr: string | null = null;
    let permanentStderr: string | null = null;
    const emit = (event: AgentEvent): void => {
      try {
        request.onEvent?.(event);
      } catch {
        // A broken listener must not break the attempt.
      }
    };

    let proc: AgentProcessResult;
    let mcpDir: string | null = null;
    const opened: Array<[string, McpOpened]> = [];
    try {
      for (const [name, attachment] of Object.entries(this.mcpServers)) {
        opened.push([name, await attachment.open({ taskId: request.task.id, attemptId: request.attemptId })]);
      }
      mcpDir = opened.length > 0 ? fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-mcp-')) : null;
      const mcpConfigFile = mcpDir === null ? null : path.join(mcpDir, 'mcp.json');
      if (mcpConfigFile !== null) fs.writeFileSync(mcpConfigFile, mcpConfigJson(Object.fromEntries(opened.map(([name, o]) => [name, o.spec]))), { mode: 0o600 });
      proc = await runAgentProcess(request, this.buildArgv(request, mcpConfigFile), {
        stdin: this.promptVia === 'stdin' ? request.prompt : undefined,
        graceMs: this.graceMs,
        onStdoutLine: (line, stop) => {
          const parsed = parser.push(line);
          for (const event of parsed.events) emit(event);
          if (parsed.stop && !stopSignal) {
            stopSignal = parsed.stop;
            stop(parsed.stop.reason);
          }
        },
        onStderrLine: (line) => {
          const text = line.trim();
          if (!text) return;
          lastStderr = text;
          const permanent = PERMANENT_STDERR.find((p) => p.re.test(text));
          if (permanent && !permanentStderr) permanentStderr = `${text}${permanent.hint}`;
        },
      });
    } catch (err) {
      return spawnFailure(err, 'Claude Code', parser.stats());
    } finally {
      if (mcpDir !== null) fs.rmSync(mcpDir, { recursive: true, force: true });
      await Promise.all(opened.map(([, o]) => o.close()));
    }

    const stats = parser.stats();
    const base = { stats, exitCode: proc.exitCode };
    const state = parser.state;

    const ended = endedBeforeAnswer(request, proc, base, stopSignal as ClaudeSignal | null, state.hasResult ? (state.resultAt ?? Infinity) : null);
    if (ended) return ended;

    if (state.hasResult) {
      const limited = signalled(classifyResult(state, Date.now()), base);
      if (limited) return limited;
      if (state.isError === false) {
        return { ...base, kind: 'completed', result: state.result ?? state.lastAssistantText ?? '' };
      }
      const text = state.result?.trim() || state.lastAssistantText?.trim() || '';
      const subtype = state.subtype && state.subtype !== 'success' ? state.subtype : null;
      const reason = text
        ? subtype
          ? `${subtype}: ${text}`
          : text
        : `Claude Code reported an error (${state.subtype ?? 'no subtype'})`;
      // The CLI stopped at `--max-budget-usd` (the task's max_cost_usd).
      if (state.subtype === 'error_max_budget_usd') {
        const spent = state.costUsd !== null ? `$${state.costUsd.toFixed(4)} spent, ` : '';
        return { ...base, kind: 'budget_exceeded', reason: `Claude Code stopped at its budget (${spent}max_cost_usd $${request.task.maxCostUsd ?? '?'})` };
      }
      // A billing error is final.
      const final = state.assistantError === 'billing_error';
      return { ...base, kind: 'failed', retryable: !final, reason };
    }

    // No result line.
    const how =
      proc.exitCode !== null
        ? `exited with code ${proc.exitCode}`
        : proc.signal !== null
          ? `was killed by ${proc.signal}`
          : 'ended';
    if (permanentStderr) {
      return { ...base, kind: 'failed', retryable: false, reason: `Claude Code ${how}: ${permanentStderr}` };
    }
    const detail = lastStderr ?? (state.skippedLines > 0 ? `${state.skippedLines} unparsable stdout line(s)` : null);
    return {
      ...base,
      kind: 'failed',
      retryable: true,
      reason: `Claude Code ${how} without a result${detail ? `: ${detail}` : ''}`,
    };
  }
}

/** Claude Code's `--mcp-config` JSON declaring `servers` (stdio or http). */
export function mcpConfigJson(servers: Record<string, McpServerSpec>): string {
  const mcpServers = Object.fromEntries(
    Object.entries(servers).map(([name, s]) => [
      name,
      {
        ...(s.type === 'http' ? { type: 'http', url: s.url, headers: s.headers ?? {} } : { type: 'stdio', command: s.command, args: s.args, env: s.env ?? {} }),
        ...(s.alwaysLoad ? { alwaysLoad: true } : {}),
      },
    ]),
  );
  return `${JSON.stringify({ mcpServers }, null, 2)}\n`;
}
