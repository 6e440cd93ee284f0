/**
 * The environment an agent's processes get: agentq's own, without agentq's secrets and
 * settings, filtered by config `agent_env`, plus the agent's explicit `env` and agentq's tags.
 */
import type { Config } from '../config/config.ts';
import { agentConfig } from '../config/project.ts';
import { globRegExp } from '../core/glob.ts';
import { CLAUDE, CODEX, GEMINI, commandEnvVar } from './resolve-command.ts';

/**
 * Variables agentq reads for itself: the API token of `agentq serve`, the store URL and where
 * each agent's CLI is. Never passed on from agentq's environment, whatever `agent_env` says
 * (an agent's `agents.<name>.env` may still set them explicitly).
 */
export const AGENTQ_OWN_ENV: readonly string[] = ['AGENTQ_TOKEN', 'AGENTQ_STORE', ...[CLAUDE, CODEX, GEMINI].map(commandEnvVar)];

/**
 * What every process needs to run (find programs, a home and temp directory, a locale),
 * passed on even when `agent_env.allow` does not name it.
 */
export const BASIC_ENV: readonly string[] = ['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'TMPDIR', 'TMP', 'TEMP', 'LANG', 'LC_*', 'TZ', 'TERM'];

/**
 * Each agent's own settings and credentials, passed on to that agent even when
 * `agent_env.allow` does not name them (the `openai` agent also gets its `api_key_env`).
 */
export const AGENT_NEEDED_ENV: Readonly<Record<string, readonly string[]>> = {
  claude: ['ANTHROPIC_*', 'CLAUDE_*'],
  codex: ['OPENAI_*', 'CODEX_*'],
  gemini: ['GEMINI_*', 'GOOGLE_*'],
  openai: ['OPENAI_*'],
};

/** Whether `name` matches one of `patterns` (`*` matches any run of characters; case matters). */
function matchesAny(name: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => (p.includes('*') ? globRegExp(p).test(name) : p === name));
}

/**
 * The environment of one attempt's agent processes.
 *
 * 1. From `base` (agentq's environment; `undefined` values skipped), a variable is dropped
 *    when its name is in {@link AGENTQ_OWN_ENV} or matches `config.agent_env.deny`; when
 *    `config.agent_env.allow` is not empty, only names matching it, {@link BASIC_ENV} or the
 *    agent's {@link AGENT_NEEDED_ENV} are kept (`deny` wins over all of these).
 * 2. `agents.<agentName>.env` from config is added over it, unfiltered.
 * 3. `tags` (the dispatcher's `AGENTQ_TASK_ID`, `AGENTQ_TASK_NAME`) are added last and cannot
 *    be removed or overridden. The runner adds `AGENTQ_ATTEMPT_ID`, the process tag, itself.
 *
 * Pure: reads nothing but its arguments, changes none of them.
 * @param base e.g. `process.env`
 * @param config parsed config (see `parseConfig`)
 * @param agentName the task's agent, e.g. `claude`, `command`
 * @param tags variables agentq sets for the agent, e.g. `{ AGENTQ_TASK_ID: '7' }`
 * @returns a new object: name → value
 */
export function agentEnv(
  base: Record<string, string | undefined>,
  config: Config,
  agentName: string,
  tags: Record<string, string>,
): Record<string, string> {
  const agent = agentConfig(config, agentName);
  const { deny, allow } = config.agent_env;
  const allowed =
    allow.length === 0
      ? null
      : [...allow, ...BASIC_ENV, ...(AGENT_NEEDED_ENV[agentName] ?? []), ...(agentName === 'openai' ? [agent.api_key_env] : [])];
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(base)) {
    if (value === undefined || AGENTQ_OWN_ENV.includes(name) || matchesAny(name, deny)) continue;
    if (allowed !== null && !matchesAny(name, allowed)) continue;
    env[name] = value;
  }
  return { ...env, ...agent.env, ...tags };
}
