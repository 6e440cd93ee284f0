/**
 * The interactive form of an agent's session, for a person who takes a task over by hand
 * (`agentq attach`): the agent's own CLI resuming the session the headless attempts ran, or a
 * shell when the agent has no session to resume.
 */
import type { Config } from '../config/config.ts';
import { agentConfig } from '../config/project.ts';
import { CLAUDE, CODEX, GEMINI, resolveAgentCommand, type AgentBinary } from './resolve-command.ts';

/** What `agentq attach` runs in the task's workspace. */
export interface InteractiveSession {
  /** `resume`: the agent's CLI resuming `sessionId`; `shell`: a shell (no session to resume). */
  kind: 'resume' | 'shell';
  /** The command, argv (no shell), e.g. `['/usr/bin/claude', '--resume', 'ID']`. */
  argv: string[];
  /** Why a shell, when it is one (e.g. `openai has no session to resume`); null for `resume`. */
  why: string | null;
}

/** How each agent CLI resumes a session interactively, after its `agents.<name>.args`. */
const RESUME: Readonly<Record<string, { binary: AgentBinary; args: (sessionId: string) => string[] }>> = {
  claude: { binary: CLAUDE, args: (id) => ['--resume', id] },
  codex: { binary: CODEX, args: (id) => ['resume', id] },
  gemini: { binary: GEMINI, args: (id) => ['--resume', id] },
};

/**
 * The interactive session of a task's agent: `claude --resume SESSION`, `codex resume
 * SESSION`, `gemini --resume SESSION` (the CLI found as for its runner: `AGENTQ_<AGENT>_COMMAND`,
 * `agents.<name>.command`, PATH, `node_modules/.bin`; then `agents.<name>.args`), to run in the
 * directory the attempts ran in (the CLIs find their sessions by it). Agents without
 * sessions (`openai`, `command`), or a task with no session recorded, get the user's shell
 * (`$SHELL`, else `/bin/sh`).
 * @param agent the agent the task's attempts ran on (`runAgent`, else its `agent`)
 * @param sessionId the task's session id (`stats.sessionId`), null if none
 * @param env where `AGENTQ_<AGENT>_COMMAND`, `PATH` and `SHELL` are read
 * @param projectDir the project root (relative commands in config resolve against it)
 * @throws AgentQueueError `agent_not_found` when the agent's CLI cannot be found
 */
export function interactiveSession(
  agent: string,
  sessionId: string | null,
  config: Config,
  env: Record<string, string | undefined>,
  projectDir: string,
): InteractiveSession {
  const resume = RESUME[agent];
  const shell = env.SHELL?.trim() || '/bin/sh';
  if (!resume) return { kind: 'shell', argv: [shell], why: `${agent} has no session to resume` };
  if (!sessionId) return { kind: 'shell', argv: [shell], why: `no ${agent} session is recorded for the task` };
  const a = agentConfig(config, agent);
  const command = resolveAgentCommand(resume.binary, { env, configCommand: a.command ?? null, projectDir });
  return { kind: 'resume', argv: [...command, ...a.args, ...resume.args(sessionId)], why: null };
}
