/**
 * How agents started by a dispatcher reach agentq's MCP server: an MCP server declaration per
 * attempt ({@link McpAttachment}), which the Claude runner writes to Claude Code's
 * `--mcp-config` file. agentq's own is served over HTTP by the dispatcher's process
 * (src/mcp/http-host.ts), so no process starts per attempt.
 */

/** The name agentq's server has in an agent's MCP configuration: its tools are `mcp__agentq__<tool>`. */
export const AGENTQ_MCP_NAME = 'agentq';

/** What every MCP server declaration may add. */
interface McpServerSpecBase {
  /**
   * Claude Code (2.1): connect it before the first turn (waiting up to `MCP_CONNECT_TIMEOUT_MS`,
   * 5 s) and offer its tools from the first request, instead of connecting in the background
   * and deferring its tools behind the tool search.
   */
  alwaysLoad?: boolean;
}

/** A stdio MCP server as an MCP client's configuration declares it (Claude Code's `mcpServers` entries). */
export interface McpStdioSpec extends McpServerSpecBase {
  type?: 'stdio';
  /** The program, e.g. node's path. */
  command: string;
  args: string[];
  /** Variables added to the environment the client starts it with. */
  env?: Record<string, string>;
}

/** A streamable-HTTP MCP server as Claude Code's `mcpServers` entries declare it. */
export interface McpHttpSpec extends McpServerSpecBase {
  type: 'http';
  /** Its endpoint, e.g. `http://127.0.0.1:41234/mcp`. */
  url: string;
  /** Headers sent with every request (e.g. `Authorization: Bearer …`). */
  headers?: Record<string, string>;
}

/** An MCP server declaration. */
export type McpServerSpec = McpStdioSpec | McpHttpSpec;

/** The attempt an MCP server is opened for. */
export interface McpAttempt {
  taskId: number;
  attemptId: string;
}

/** One attempt's access to an MCP server: its declaration, and what ends it once the agent has exited. */
export interface McpOpened {
  spec: McpServerSpec;
  /** Ends the access (never throws). */
  close(): Promise<void>;
}

/** An MCP server the runner gives each attempt: opened before the agent starts, closed after it ends. */
export interface McpAttachment {
  /** @throws when the server cannot be made ready (the attempt then fails to start) */
  open(attempt: McpAttempt): Promise<McpOpened>;
}

/** An attachment that declares the same `spec` for every attempt (e.g. a stdio server the agent starts itself). */
export function fixedMcp(spec: McpServerSpec): McpAttachment {
  return { open: async () => ({ spec, close: async () => {} }) };
}
