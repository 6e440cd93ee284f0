/**
 * The agent card of `agentq serve` (A2A protocol 0.3), served at
 * `/.well-known/agent-card.json`: who it is (the project), its JSON-RPC endpoint (`/a2a`),
 * streaming and push notifications, one skill per agent a task may name (with what config
 * says of it), and the bearer scheme when a token is set. The card itself is public, as A2A
 * clients expect to read it before they authenticate; it holds no secret.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { AgentCard, AgentSkill } from '@a2a-js/sdk';
import { agentConfig, type Config, type ProjectPaths } from '../../config/config.ts';
import { A2A_AGENT, AUTO_AGENT, KNOWN_AGENTS, PRIORITIES } from '../../core/types.ts';

/** The A2A protocol version the server speaks. */
export const A2A_PROTOCOL_VERSION = '0.3.0';

/** The path of the JSON-RPC endpoint. */
export const A2A_PATH = '/a2a';

/** The path of the agent card (A2A's well-known URI). */
export const AGENT_CARD_ROUTE = '/.well-known/agent-card.json';

const VERSION = (JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const AGENT_DESCRIPTIONS: Record<string, string> = {
  claude: 'Claude Code, headless: edits files and runs commands in the project (its own git worktree in a repository)',
  codex: 'OpenAI Codex CLI (`codex exec`) in the project',
  gemini: 'Gemini CLI in the project',
  openai: 'one streamed request to an OpenAI-compatible chat-completions API: a text answer, no file edits',
  command: 'a command (`metadata.command`, else config): the prompt on its stdin, its stdout the result',
};

/** What config says of an agent's models, e.g. `models: critical → opus, default → sonnet`. */
function modelNote(config: Config, agent: string): string {
  const a = agentConfig(config, agent);
  const models = PRIORITIES.filter((p) => a.models[p]).map((p) => `${p} → ${a.models[p]}`);
  if (models.length) return `; models: ${models.join(', ')}`;
  return a.model ? `; model: ${a.model}` : '';
}

/**
 * One skill per agent a task may name: each known agent (`a2a` only when config has
 * `remotes` to hand work on to), and `auto` when config has a `fallback`.
 */
export function agentSkills(config: Config): AgentSkill[] {
  const agents = KNOWN_AGENTS.filter((agent) => agent !== A2A_AGENT || Object.keys(config.remotes).length > 0);
  const skills: AgentSkill[] = agents.map((agent) => ({
    id: agent,
    name: agent,
    description: `Runs the message as a task on ${AGENT_DESCRIPTIONS[agent] ?? agent}${modelNote(config, agent)}. Select it with metadata.agent: "${agent}"${agent === 'claude' ? ' (the default)' : ''}.`,
    tags: ['agentq', agent],
    inputModes: ['text/plain'],
    outputModes: ['text/plain'],
  }));
  const fallback = PRIORITIES.filter((p) => config.fallback[p]?.length).map((p) => `${p}: ${config.fallback[p]!.join(', ')}`);
  if (fallback.length) {
    skills.push({
      id: AUTO_AGENT,
      name: AUTO_AGENT,
      description: `Runs the message on the first free agent of its priority's fallback list (${fallback.join('; ')}), failing over on a rate limit. Select it with metadata.agent: "auto".`,
      tags: ['agentq', AUTO_AGENT],
      inputModes: ['text/plain'],
      outputModes: ['text/plain'],
    });
  }
  return skills;
}

/**
 * The agent card.
 * @param url the JSON-RPC endpoint clients call (`…/a2a`)
 * @param token whether a bearer token is required (then the card declares the `bearer` scheme)
 */
export function agentCard(o: { config: Config; paths: ProjectPaths; url: string; token: boolean }): AgentCard {
  return {
    protocolVersion: A2A_PROTOCOL_VERSION,
    name: `agentq: ${path.basename(o.paths.root)}`,
    description:
      'agent-queue: a durable queue of tasks for AI coding agents. A message without taskId becomes a task: its text parts are the prompt, ' +
      'message.metadata holds task fields (priority, agent, model, timeout, max_cost_usd, name, tags, …, as in a task file); messageId is the idempotency key. ' +
      'The task id is the agentq task id. input-required carries the question; a message with that taskId answers it.',
    url: o.url,
    preferredTransport: 'JSONRPC',
    version: VERSION,
    capabilities: { streaming: true, pushNotifications: true, stateTransitionHistory: false },
    defaultInputModes: ['text/plain'],
    defaultOutputModes: ['text/plain'],
    skills: agentSkills(o.config),
    ...(o.token ? { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'The token of agentq serve (AGENTQ_TOKEN).' } }, security: [{ bearer: [] }] } : {}),
  };
}
