/**
 * `.agent-queue/config.yaml`: schema, defaults and loading. Precedence: defaults → file →
 * environment (`AGENTQ_*`) → command-line flags (applied by the CLI).
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../core/errors.ts';
import { PRIORITIES, type Priority } from '../core/types.ts';
import { parseDuration } from './duration.ts';

const duration = (fallback: string) =>
  z
    .union([z.string(), z.number()])
    .default(fallback)
    .transform((v, ctx) => {
      const parsed = parseDuration(v);
      if (parsed === null) {
        ctx.addIssue({ code: 'custom', message: `not a duration: ${JSON.stringify(v)} (use e.g. 90s, 30m, 2h)` });
        return z.NEVER;
      }
      return parsed;
    });

const command = z.union([z.string().min(1), z.array(z.string()).min(1)]);

const agentSchema = z
  .object({
    /** Command that starts the agent (string: split on spaces for claude, `sh -c` for command). */
    command: command.optional(),
    /** Extra command-line arguments, after the standard ones (e.g. codex `-c` provider settings). */
    args: z.array(z.string()).default([]),
    /** Extra environment for the agent's processes (added to agentq's own). */
    env: z.record(z.string(), z.string()).default({}),
    /** claude: `--permission-mode` value. */
    permission_mode: z.string().default('bypassPermissions'),
    /** claude: model per priority; a task's `model` wins. */
    models: z.partialRecord(z.enum(PRIORITIES), z.string()).default({}),
    /** How long to pause the agent after a rate limit with no known reset time. */
    rate_limit_backoff: duration('60s'),
    /** Cap of the doubling rate-limit pause. */
    rate_limit_backoff_max: duration('1h'),
    /** Running tasks of this agent at once (within the global `concurrency`); none by default. */
    concurrency: z.number().int().min(1).optional(),
  })
  .loose();

const configSchema = z
  .object({
    /** Store URL: `sqlite:PATH` (relative to the project directory). */
    store: z.string().default('sqlite:.agent-queue/agentq.db'),
    /** Global limit of running tasks (across every dispatcher on the store). */
    concurrency: z.number().int().min(1).default(2),
    /** Per-attempt timeout when a task sets none. */
    default_timeout: duration('30m'),
    /** Retries when a task sets none. */
    default_retries: z.number().int().min(0).default(2),
    /** Running tasks per `concurrency_group` at once. */
    group_concurrency: z.number().int().min(1).default(1),
    /** Queued + running tasks past which intake leaves new files in the inbox; none by default. */
    max_queue_depth: z.number().int().min(1).optional(),
    /** Where tasks run when they set no `workspace`: worktree in a git repository, else inplace. */
    workspace: z.enum(['inplace', 'worktree']).optional(),
    /**
     * Tell agents (Claude Code: `--append-system-prompt`) that they may end an attempt with a
     * `<<question>> … <</question>>` block; the task then waits `blocked` for `agentq answer`.
     */
    questions: z.boolean().default(true),
    /** After a worktree task succeeds: keep its branch (`manual`) or merge it back (`auto`). */
    merge: z.enum(['manual', 'auto']).default('manual'),
    /** Retry backoff: base delay, doubled per attempt (with jitter), and its cap. */
    retry_backoff: duration('30s'),
    retry_backoff_max: duration('10m'),
    /** Lease length; a heartbeat renews it while the agent runs. */
    lease: duration('30s'),
    /** SIGTERM → SIGKILL grace when stopping an agent. */
    kill_grace: duration('5s'),
    /** How often the dispatcher polls the store and the inbox besides file events. */
    poll_interval: duration('1s'),
    /** A file must be unchanged this long before intake reads it. */
    inbox_settle: duration('300ms'),
    agents: z.record(z.string(), agentSchema).default({}),
    /**
     * `agent: auto`: the agents to try per priority, in order. The first that is not paused
     * and has room runs the task; a rate limit moves it on to the next (failover).
     */
    fallback: z.partialRecord(z.enum(PRIORITIES), z.array(z.string()).min(1)).default({}),
  })
  .loose();

/** Config with defaults applied. Durations are ms. */
export type Config = z.output<typeof configSchema>;
export type AgentConfig = z.output<typeof agentSchema>;

/** Default models per priority for Claude Code (issue #3: critical → opus, the rest sonnet). */
export const DEFAULT_CLAUDE_MODELS: Record<Priority, string> = {
  critical: 'opus',
  high: 'sonnet',
  default: 'sonnet',
  low: 'sonnet',
};

/** Paths of a project's `.agent-queue` directory. */
export interface ProjectPaths {
  root: string;
  dir: string;
  config: string;
  inbox: string;
  done: string;
  failed: string;
  logs: string;
  recurring: string;
}

export function projectPaths(projectDir: string): ProjectPaths {
  const root = path.resolve(projectDir);
  const dir = path.join(root, '.agent-queue');
  return {
    root,
    dir,
    config: path.join(dir, 'config.yaml'),
    inbox: path.join(dir, 'inbox'),
    done: path.join(dir, 'done'),
    failed: path.join(dir, 'failed'),
    logs: path.join(dir, 'logs'),
    recurring: path.join(dir, 'recurring'),
  };
}

/**
 * Validates a parsed config object. Throws ConfigError naming the field and the value.
 */
export function parseConfig(raw: unknown, source = 'config'): Config {
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.join('.') || '(top level)';
    throw new ConfigError(`${source}: ${where}: ${issue?.message ?? 'invalid'}`);
  }
  return result.data;
}

/**
 * Loads `.agent-queue/config.yaml` if present (defaults otherwise).
 * Throws ConfigError on malformed YAML or invalid values.
 */
export function loadConfig(projectDir: string): Config {
  const file = projectPaths(projectDir).config;
  let raw: unknown = {};
  if (fs.existsSync(file)) {
    try {
      raw = YAML.parse(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      throw new ConfigError(`${file}: malformed YAML: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  return parseConfig(raw, file);
}

/** Settings of one agent, with defaults when config names none. */
export function agentConfig(config: Config, agent: string): AgentConfig {
  return config.agents[agent] ?? agentSchema.parse({});
}

/** The commented config file `agentq init` writes. */
export const CONFIG_TEMPLATE = `# agent-queue settings. Every line is optional; the values shown are the defaults.

# Where the queue lives. sqlite:PATH is relative to the project directory.
# store: sqlite:.agent-queue/agentq.db

# How many tasks run at once (across every dispatcher sharing the store).
# concurrency: 2

# Per-attempt timeout and retries for tasks that set none.
# default_timeout: 30m
# default_retries: 2
# group_concurrency: 1    # running tasks per concurrency_group
# max_queue_depth: 1000   # past it, new inbox files wait in the inbox (default: no limit)
# workspace: worktree     # default: worktree in a git repository, else inplace
# merge: manual           # or auto: merge a worktree task's branch back after success
# questions: true         # agents may ask a person: <<question>> … <</question>> → blocked
# retry_backoff: 30s      # first retry waits ~30s, doubling per attempt (with jitter)
# retry_backoff_max: 10m

# Lease on a running task, renewed by a heartbeat; a crashed dispatcher's tasks are
# requeued once it expires (at once when the dispatcher's process is gone).
# lease: 30s
# kill_grace: 5s          # SIGTERM -> SIGKILL grace when stopping an agent
# poll_interval: 1s
# inbox_settle: 300ms     # a file must be unchanged this long before it is read

# fallback:               # for agent: auto, per priority (default: [claude])
#   critical: [claude]
#   default: [claude, command]
# agents:
#   claude:
#     command: claude                    # or AGENTQ_CLAUDE_COMMAND; default: PATH, then node_modules/.bin
#     permission_mode: bypassPermissions
#     models: { critical: opus, high: sonnet, default: sonnet, low: sonnet }
#     rate_limit_backoff: 60s            # pause after a rate limit with no known reset time,
#     rate_limit_backoff_max: 1h         # doubling with each limit in a row, up to this
#     concurrency: 2                     # at most this many claude tasks at once
#   codex:
#     command: codex                     # else AGENTQ_CODEX_COMMAND, PATH, node_modules/.bin/codex
#     args: []                           # extra arguments, e.g. -c model_provider=…
#     env: {}                            # extra environment for the agent
#   command:
#     command: ["sh", "-c", "cat"]       # the default for tasks with agent: command
`;
