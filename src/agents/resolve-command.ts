/**
 * Finding an agent's executable (Claude Code, Codex, Gemini CLI): one rule for every agent.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AgentQueueError } from '../core/errors.ts';

/** An agent CLI: its `agent:` name, executable name, display name and npm package. */
export interface AgentBinary {
  agent: string;
  bin: string;
  label: string;
  npmPackage: string;
}

export const CLAUDE: AgentBinary = { agent: 'claude', bin: 'claude', label: 'Claude Code CLI', npmPackage: '@anthropic-ai/claude-code' };
export const CODEX: AgentBinary = { agent: 'codex', bin: 'codex', label: 'Codex CLI', npmPackage: '@openai/codex' };
export const GEMINI: AgentBinary = { agent: 'gemini', bin: 'gemini', label: 'Gemini CLI', npmPackage: '@google/gemini-cli' };

/** Environment variable that overrides every other way of finding an agent: `AGENTQ_<AGENT>_COMMAND`. */
export function commandEnvVar(binary: AgentBinary): string {
  return `AGENTQ_${binary.agent.toUpperCase()}_COMMAND`;
}

/** Options of {@link resolveAgentCommand}. */
export interface ResolveCommandOptions {
  /** Environment to read `AGENTQ_<AGENT>_COMMAND` and `PATH` from. */
  env: Record<string, string | undefined>;
  /** `agents.<agent>.command` from config.yaml: an argv array or a string; null/undefined when unset. */
  configCommand?: string | string[] | null;
  /** The project directory (where `.agent-queue/` lives); relative paths resolve against it. */
  projectDir: string;
  /** Directory to start looking for this package's own `node_modules/.bin/<bin>`. Default: this module's directory. */
  packageDir?: string;
}

/** Where the command came from, for messages and `agentq doctor`-style output. */
export type CommandSource = 'env' | 'config' | 'path' | 'project' | 'package';

/**
 * The argv prefix that starts an agent's CLI, first match wins:
 * 1. `AGENTQ_<AGENT>_COMMAND`: if the whole value names an existing file it is one path
 *    (spaces allowed); otherwise it is split on whitespace (`"node /opt/claude/cli.js"`),
 *    no quoting. Used as given, not checked further.
 * 2. config `agents.<agent>.command`: an array is used as is; a string follows the same rule
 *    as the env var. Relative paths containing `/` resolve against `projectDir`.
 * 3. `<bin>` on `env.PATH` (absolute path of the first executable match).
 * 4. `<projectDir>/node_modules/.bin/<bin>`.
 * 5. `node_modules/.bin/<bin>` in this package or any directory above it (the dev
 *    dependency, or a hoisted install).
 *
 * @returns a non-empty argv prefix, e.g. `['/usr/local/bin/claude']`.
 * @throws AgentQueueError code `agent_not_found` when nothing is found, naming the places looked at.
 */
export function resolveAgentCommand(binary: AgentBinary, options: ResolveCommandOptions): string[] {
  return resolveAgentCommandWithSource(binary, options).command;
}

/** Like {@link resolveAgentCommand}, also saying which rule matched. */
export function resolveAgentCommandWithSource(
  binary: AgentBinary,
  options: ResolveCommandOptions,
): { command: string[]; source: CommandSource } {
  const { env, projectDir } = options;
  const envVar = commandEnvVar(binary);
  const fromEnv = env[envVar]?.trim();
  if (fromEnv) return { command: splitCommand(fromEnv, projectDir), source: 'env' };

  const config = options.configCommand;
  if (Array.isArray(config)) {
    const argv = config.filter((a) => typeof a === 'string');
    if (argv.length === 0 || argv[0] === '') {
      throw new AgentQueueError('agent_not_found', `agents.${binary.agent}.command in config is an empty list`);
    }
    return { command: [absolutize(argv[0]!, projectDir), ...argv.slice(1)], source: 'config' };
  }
  if (typeof config === 'string' && config.trim()) return { command: splitCommand(config.trim(), projectDir), source: 'config' };

  const onPath = findOnPath(binary.bin, env.PATH ?? '');
  if (onPath) return { command: [onPath], source: 'path' };

  const inProject = join(resolve(projectDir), 'node_modules', '.bin', binary.bin);
  if (isExecutableFile(inProject)) return { command: [inProject], source: 'project' };

  const start = options.packageDir ?? dirname(fileURLToPath(import.meta.url));
  for (let dir = resolve(start); ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', '.bin', binary.bin);
    if (isExecutableFile(candidate)) return { command: [candidate], source: 'package' };
    if (dirname(dir) === dir) break;
  }

  throw new AgentQueueError(
    'agent_not_found',
    `${binary.label} not found: set ${envVar} or agents.${binary.agent}.command in config, ` +
      `put "${binary.bin}" on PATH, or install it with "npm install ${binary.npmPackage}" ` +
      `(looked in PATH, ${inProject} and node_modules/.bin above ${start})`,
  );
}

/** One path if the whole string names an existing file, else whitespace-separated argv. */
function splitCommand(value: string, projectDir: string): string[] {
  const whole = absolutize(value, projectDir);
  if (exists(whole)) return [whole];
  const parts = value.split(/\s+/).filter(Boolean);
  return [absolutize(parts[0]!, projectDir), ...parts.slice(1)];
}

/** `./bin/x` or `bin/x` → absolute against projectDir; bare names (`claude`) stay for PATH lookup. */
function absolutize(command: string, projectDir: string): string {
  if (isAbsolute(command) || !command.includes('/')) return command;
  return resolve(projectDir, command);
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Absolute path of the first executable `name` in a PATH string, or null. */
export function findOnPath(name: string, pathValue: string): string | null {
  for (const dir of pathValue.split(delimiter)) {
    if (!dir) continue;
    const candidate = resolve(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  return null;
}
