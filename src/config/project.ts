/**
 * A project's layout and origin, and the rules that read a loaded {@link Config} (accounts, an
 * agent's settings and their defaults, model aliases, the price table), without the config
 * schema: what the CLI's light commands (`status`, `list`, `show` …) and the dispatcher need,
 * loaded without zod and yaml (config.ts re-exports all of it).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Priority, TaskOrigin } from '../core/types.ts';
import { DEFAULT_PRICES, type PriceTable } from '../pricing/prices.ts';
import type { AgentConfig, Config } from './config.ts';

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
 * This checkout as a task's origin: `os.hostname()` and the project root with symbolic links
 * resolved (`fs.realpathSync`; the root as given while it does not exist yet), so two spellings
 * of one directory name one checkout.
 */
export function projectOrigin(paths: Pick<ProjectPaths, 'root'>): TaskOrigin {
  let root = paths.root;
  try {
    root = fs.realpathSync(paths.root);
  } catch {
    // Not created yet (or unreadable): the absolute path as given.
  }
  return { host: os.hostname(), root };
}

/** Whether two origins name the same checkout (same host, same root). */
export function sameOrigin(a: TaskOrigin, b: TaskOrigin): boolean {
  return a.host === b.host && a.root === b.root;
}

/**
 * Whether checkout `here` writes `task`'s result file: it is the task's origin, or the task
 * has none (stored before origins were recorded: any checkout writes it).
 */
export function writesResultHere(task: { origin: TaskOrigin | null }, here: TaskOrigin): boolean {
  return task.origin === null || sameOrigin(task.origin, here);
}

/** How a checkout is shown: `HOST:ROOT`. */
export function formatOrigin(origin: TaskOrigin): string {
  return `${origin.host}:${origin.root}`;
}

/**
 * The account key of `agent` here (`agents.<name>.account`, default the agent name): what
 * pauses, strikes and start buckets are stored under. Every reader and writer of them goes
 * through it.
 */
export function accountOf(config: Config, agent: string): string {
  return config.agents[agent]?.account ?? agent;
}

/** {@link accountOf} for each of `agents` whose account is not its own name (the claim's `accounts`). */
export function accountMap(config: Config, agents: Iterable<string>): Record<string, string> {
  const map: Record<string, string> = {};
  for (const agent of agents) {
    const account = accountOf(config, agent);
    if (account !== agent) map[agent] = account;
  }
  return map;
}

/** Default models per priority for Claude Code (issue #3: critical → opus, the rest sonnet). */
export const DEFAULT_CLAUDE_MODELS: Record<Priority, string> = {
  critical: 'opus',
  high: 'sonnet',
  default: 'sonnet',
  low: 'sonnet',
};

/**
 * Built-in model aliases per agent, resolved before the model is passed to the agent.
 * Claude Code resolves `opus`, `sonnet`, `haiku` itself, so claude has none here.
 */
export const MODEL_ALIASES: Record<string, Record<string, string>> = {
  gemini: { pro: 'gemini-2.5-pro', flash: 'gemini-2.5-flash', 'flash-lite': 'gemini-2.5-flash-lite' },
  codex: { codex: 'gpt-5-codex', mini: 'gpt-5-mini' },
  openai: { mini: 'gpt-5-mini', nano: 'gpt-5-nano' },
};

/** `model` with the agent's aliases (config's over the built-in ones) resolved; null stays null. */
export function resolveModelAlias(config: Config, agent: string, model: string | null): string | null {
  if (model === null) return null;
  return agentConfig(config, agent).aliases[model] ?? MODEL_ALIASES[agent]?.[model] ?? model;
}

/** The price table in force: {@link DEFAULT_PRICES} with config's `prices` added over it. */
export function priceTable(config: Config): PriceTable {
  const table: PriceTable = { ...DEFAULT_PRICES };
  for (const [pattern, p] of Object.entries(config.prices)) {
    table[pattern] = { input: p.input, output: p.output, cachedInput: p.cached_input, cacheWrite: p.cache_write };
  }
  return table;
}

/**
 * The settings of an agent that config.yaml does not name: every default of `agents.<name>`
 * (durations in ms). The schema's defaults (config.ts) are taken from here, and
 * {@link agentConfig} returns it as an `AgentConfig` (so a default the schema adds must be
 * added here). A new object at each call (callers may change theirs).
 */
export function defaultAgentConfig() {
  return {
    args: [] as string[],
    env: {} as Record<string, string>,
    permission_mode: 'bypassPermissions',
    models: {} as Partial<Record<Priority, string>>,
    api_key_env: 'OPENAI_API_KEY',
    aliases: {} as Record<string, string>,
    mcp: true,
    budgets: {} as { daily_usd?: number },
    rate_limit_backoff: 60_000,
    rate_limit_backoff_max: 3_600_000,
  };
}

/** Settings of one agent, with defaults ({@link defaultAgentConfig}) when config names none. */
export function agentConfig(config: Config, agent: string): AgentConfig {
  return config.agents[agent] ?? defaultAgentConfig();
}
