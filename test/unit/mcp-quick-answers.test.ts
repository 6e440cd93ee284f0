/**
 * The messages the dispatcher's MCP host answers without the SDK (src/mcp/quick-answers.ts)
 * get the answers the SDK's server (createMcpServer) gives, as JSON values: initialize for
 * each protocol version and an unknown one, tools/list for an agent's task and remotes
 * (src/mcp/tool-schemas.ts is stale when this fails: scripts/gen-mcp-tool-schemas.ts), ping;
 * and what the SDK must answer itself (tool calls, odd headers, batches) is left to it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, describe, it } from 'node:test';
import { LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';
import { loadConfig } from '../../src/config/config.ts';
import { MCP_PROTOCOL_VERSIONS, quickAnswer, type QuickAnswer, type RunningTask } from '../../src/mcp/quick-answers.ts';
import { sdkAnswer } from '../fixtures/mcp-raw.ts';
import { makeProject } from '../fixtures/project.ts';

const paths = makeProject({ remotes: { other: { url: 'http://127.0.0.1:9/a2a' } } });
after(() => fs.rmSync(paths.root, { recursive: true, force: true }));
const config = loadConfig(paths.root);
const task: RunningTask = { id: 7, name: 'parent-task', origin: null };
const headers = { accept: 'application/json, text/event-stream', 'content-type': 'application/json', 'mcp-protocol-version': '2025-11-25' };

/** The quick answer's JSON-RPC body, parsed (null when it leaves the message to the SDK). */
async function quick(message: Record<string, unknown>, runningTask: RunningTask | null = task, h: Record<string, string> = headers): Promise<unknown> {
  const a: QuickAnswer | null = await quickAnswer(message, h, { runningTask: async () => runningTask, config });
  return a === null ? null : a.status === 202 ? 202 : JSON.parse(a.body);
}
const sdk = (message: Record<string, unknown>, runningTask: RunningTask | null = task) => sdkAnswer({ store: null as never, paths, config, runningTask, log: () => {} }, message);

describe('quick MCP answers', () => {
  it('speak the protocol versions the SDK speaks', () => {
    assert.deepEqual(MCP_PROTOCOL_VERSIONS, SUPPORTED_PROTOCOL_VERSIONS);
    assert.equal(MCP_PROTOCOL_VERSIONS[0], LATEST_PROTOCOL_VERSION);
  });

  it('answer initialize as the SDK does, for every version and an unknown one', async () => {
    for (const protocolVersion of [...SUPPORTED_PROTOCOL_VERSIONS, '2099-01-01']) {
      const message = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion, capabilities: { roots: {} }, clientInfo: { name: 'claude-code', version: '2' } } };
      assert.deepEqual(await quick(message), await sdk(message), protocolVersion);
    }
  });

  it('answer tools/list as the SDK does, for an agent of a task and for none (tool-schemas.ts is current)', async () => {
    for (const runningTask of [task, null]) {
      const message = { jsonrpc: '2.0', id: 'l', method: 'tools/list' };
      const expected = await sdk(message, runningTask);
      assert.ok((expected as { result: { tools: unknown[] } }).result.tools.length >= 7);
      assert.deepEqual(await quick(message, runningTask), expected, 'stale? node --import tsx scripts/gen-mcp-tool-schemas.ts');
    }
  });

  it('answer ping and notifications/initialized', async () => {
    const ping = { jsonrpc: '2.0', id: 3, method: 'ping' };
    assert.deepEqual(await quick(ping), await sdk(ping));
    assert.equal(await quick({ jsonrpc: '2.0', method: 'notifications/initialized' }), 202);
  });

  it('leave to the SDK tool calls, other methods, batches, bad headers and malformed messages', async () => {
    const list = { jsonrpc: '2.0', id: 1, method: 'tools/list' };
    const left = [
      [{ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'list_tasks', arguments: {} } }, headers],
      [{ jsonrpc: '2.0', id: 1, method: 'resources/list' }, headers],
      [list, { ...headers, accept: 'application/json' }],
      [list, { ...headers, 'content-type': 'text/plain' }],
      [list, { ...headers, 'mcp-protocol-version': '1999-01-01' }],
      [{ ...list, jsonrpc: '1.0' }, headers],
      [{ ...list, params: [] }, headers],
      [{ jsonrpc: '2.0', id: 1, method: 'notifications/initialized' }, headers],
      [{ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {} } }, headers],
    ] as const;
    for (const [message, h] of left) assert.equal(await quick(message, task, h), null, JSON.stringify([message, h]));
    assert.equal(await quickAnswer([list], headers, { runningTask: async () => task, config }), null);
  });
});
