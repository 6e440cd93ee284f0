/**
 * A project's layout and origin, and the rules that read a loaded {@link Config}, without the
 * config schema: what the CLI's light commands (`status`, `list`, `show` …) need, loaded
 * without zod and yaml (config.ts re-exports all of it).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TaskOrigin } from '../core/types.ts';
import type { Config } from './config.ts';

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
