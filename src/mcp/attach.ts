/**
 * How agents started by a dispatcher reach agentq's MCP server: the `agentq mcp` command of
 * this checkout (bin/agentq under the node running agentq) on the dispatcher's project and
 * store. The Claude runner declares it to Claude Code through `--mcp-config`.
 */
import { fileURLToPath } from 'node:url';

/** This checkout's `bin/agentq`. */
export const AGENTQ_BIN = fileURLToPath(new URL('../../bin/agentq', import.meta.url));

/** The name agentq's server has in an agent's MCP configuration: its tools are `mcp__agentq__<tool>`. */
export const AGENTQ_MCP_NAME = 'agentq';

/** A stdio MCP server as an MCP client's configuration declares it (Claude Code's `mcpServers` entries). */
export interface McpServerSpec {
  /** The program, e.g. node's path. */
  command: string;
  args: string[];
  /** Variables added to the environment the client starts it with. */
  env?: Record<string, string>;
  /**
   * Claude Code (2.1): connect it before the first turn (waiting up to `MCP_CONNECT_TIMEOUT_MS`,
   * 5 s) and offer its tools from the first request, instead of connecting in the background
   * and deferring its tools behind the tool search.
   */
  alwaysLoad?: boolean;
}

/**
 * The `agentq mcp` server of a dispatcher: `node bin/agentq mcp --project ROOT --store URL`,
 * so it opens the dispatcher's own store (`AGENTQ_STORE` is not passed on to agents), loaded
 * before the agent's first turn (`alwaysLoad`). It inherits the agent's environment, whose
 * `AGENTQ_TASK_ID` and `AGENTQ_ATTEMPT_ID` make what the agent submits its task's subtasks.
 * @param projectRoot absolute project directory
 * @param storeUrl the store in force (a relative `sqlite:` path is relative to the project)
 */
export function agentqMcpServer(projectRoot: string, storeUrl: string): McpServerSpec {
  return { command: process.execPath, args: [AGENTQ_BIN, 'mcp', '--project', projectRoot, '--store', storeUrl], alwaysLoad: true };
}
