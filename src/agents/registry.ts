/**
 * Builds the runners a dispatcher uses, from config and the environment.
 */
import type { Config } from '../config/config.ts';
import { agentConfig, type ProjectPaths } from '../config/project.ts';
import { AgentQueueError } from '../core/errors.ts';
import { A2A_AGENT } from '../core/types.ts';
import { AGENTQ_MCP_NAME } from '../mcp/attach.ts';
import { CommandRunner } from './command/command-runner.ts';
import { CLAUDE, CODEX, GEMINI, resolveAgentCommand } from './resolve-command.ts';
import { emptyStats, type AgentRunner, type RunOutcome, type RunRequest } from './runner.ts';
import type { Store } from '../store/store.ts';
import type { DelegationPushes } from './a2a/pushes.ts';

/** What the dispatcher reads of a runner before it runs (see {@link AgentRunner}), given to a {@link LazyRunner} as the runner it makes has them. */
type RunnerTraits = Pick<AgentRunner, 'canResume' | 'ownProcessIsWork' | 'worksRemotely'>;

/**
 * A runner whose set-up (e.g. loading its module, finding the agent's binary, loading an SDK)
 * happens at the first run, so an idle dispatcher loads the code of no agent's runner; a set-up
 * error fails that attempt (non-retryable) with its message instead of stopping the dispatcher.
 */
class LazyRunner implements AgentRunner {
  private runner: AgentRunner | null = null;
  readonly canResume: boolean;
  readonly ownProcessIsWork: boolean;
  readonly worksRemotely: boolean;
  constructor(
    readonly name: string,
    private readonly create: () => AgentRunner | Promise<AgentRunner>,
    traits: RunnerTraits = {},
  ) {
    this.canResume = traits.canResume === true;
    this.ownProcessIsWork = traits.ownProcessIsWork === true;
    this.worksRemotely = traits.worksRemotely === true;
  }
  async run(request: RunRequest): Promise<RunOutcome> {
    try {
      this.runner ??= await this.create();
    } catch (err) {
      if (!(err instanceof AgentQueueError)) throw err;
      return { kind: 'failed', reason: err.message, retryable: false, stats: emptyStats(), exitCode: null };
    }
    return this.runner.run(request);
  }
}

/**
 * The lazy `a2a` runner, which also sweeps the delegation ledger ({@link AgentRunner.sweep}):
 * the SDK is loaded only once a task delegates or an open delegation needs closing.
 */
class LazySweepingRunner extends LazyRunner {
  constructor(
    name: string,
    private readonly loaded: { runner: AgentRunner | null; load: () => Promise<AgentRunner> },
  ) {
    super(name, async () => (loaded.runner ??= await loaded.load()), { canResume: true, worksRemotely: true });
  }
  async sweep(store: Store): Promise<void> {
    if (!this.loaded.runner && (await store.listDelegations({ open: true, limit: 1 })).length === 0) return;
    this.loaded.runner ??= await this.loaded.load();
    await this.loaded.runner.sweep?.(store);
  }
}

/**
 * The runners by agent name. Claude Code gets agentq's MCP server (`McpHttpHost`: served by
 * this process on this project and `config.store`, the store in force) unless `agents.claude.mcp` is false. Agents: claude, codex, gemini, openai, command, and `a2a` (a task's
 * `remote`) with one `a2a:NAME` per entry of config `remotes` (for `fallback` lists).
 * @param env the dispatcher's environment: where agents' commands and the remotes'
 *   `token_env` variables are looked up
 * @param options.delegationPushes the push notifications of `agentq serve` for the `a2a`
 *   runners (default none: delegations are tracked by polling)
 */
export function createRunners(
  config: Config,
  paths: ProjectPaths,
  env: Record<string, string | undefined>,
  options: { delegationPushes?: DelegationPushes | null } = {},
): Map<string, AgentRunner> {
  const claude = agentConfig(config, 'claude');
  const command = agentConfig(config, 'command');
  const codex = agentConfig(config, 'codex');
  const gemini = agentConfig(config, 'gemini');
  const openai = agentConfig(config, 'openai');
  return new Map<string, AgentRunner>([
    [
      'claude',
      new LazyRunner(
        'claude',
        async () =>
          new (await import('./claude/claude-runner.ts')).ClaudeRunner({
            command: resolveAgentCommand(CLAUDE, { env, configCommand: claude.command ?? null, projectDir: paths.root }),
            permissionMode: claude.permission_mode,
            maxTurns: claude.max_turns,
            allowedTools: claude.allowed_tools,
            extraArgs: claude.args,
            graceMs: config.kill_grace,
            mcpServers: claude.mcp ? { [AGENTQ_MCP_NAME]: new (await import('../mcp/http-host.ts')).McpHttpHost({ paths, config }) } : {},
          }),
        { canResume: true },
      ),
    ],
    [
      'codex',
      new LazyRunner(
        'codex',
        async () =>
          new (await import('./codex/codex-runner.ts')).CodexRunner({
            command: resolveAgentCommand(CODEX, { env, configCommand: codex.command ?? null, projectDir: paths.root }),
            extraArgs: codex.args,
            graceMs: config.kill_grace,
          }),
        { canResume: true },
      ),
    ],
    [
      'gemini',
      new LazyRunner(
        'gemini',
        async () =>
          new (await import('./gemini/gemini-runner.ts')).GeminiRunner({
            command: resolveAgentCommand(GEMINI, { env, configCommand: gemini.command ?? null, projectDir: paths.root }),
            extraArgs: gemini.args,
            graceMs: config.kill_grace,
          }),
        { canResume: true },
      ),
    ],
    // No base_url: each attempt fails (not retryable) with a message naming agents.openai.base_url.
    // The OpenAI SDK is loaded only when an openai task runs (it adds ~0.1 s to every start).
    [
      'openai',
      new LazyRunner('openai', async () => {
        const { OpenAIRunner } = await import('./openai/openai-runner.ts');
        return new OpenAIRunner({ baseUrl: openai.base_url ?? '', apiKeyEnv: openai.api_key_env });
      }),
    ],
    ['command', new CommandRunner({ defaultCommand: command.command ?? null, graceMs: config.kill_grace })],
    // Delegation over A2A; the SDK is loaded only when a task delegates.
    ...[null, ...Object.keys(config.remotes)].map((remote): [string, AgentRunner] => {
      const name = remote === null ? A2A_AGENT : `${A2A_AGENT}:${remote}`;
      const load = async () => {
        const { A2ARunner } = await import('./a2a/a2a-runner.ts');
        return new A2ARunner({
          name,
          remote,
          remotes: config.remotes,
          env,
          stuckAfterMs: config.delegation_stuck_after,
          pollMaxMs: config.delegation_poll_max,
          pushes: options.delegationPushes ?? null,
        });
      };
      // One runner (the plain `a2a`) sweeps the ledger for all.
      return [name, remote === null ? new LazySweepingRunner(name, { runner: null, load }) : new LazyRunner(name, load, { canResume: true, worksRemotely: true })];
    }),
  ]);
}
