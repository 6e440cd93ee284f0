/**
 * The dispatcher's MCP server over HTTP (src/mcp/http-host.ts), driven by the MCP SDK's own
 * streamable-HTTP client on a real SQLite store: a token names its attempt (what it submits
 * is that task's subtask; a token of an attempt unknown to the store files free tasks), no
 * token or a closed attempt's token is refused, and the host stops with its last attempt.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { loadConfig } from '../../src/config/config.ts';
import { baseSpec } from '../../src/config/task-file.ts';
import type { McpHttpSpec, McpOpened } from '../../src/mcp/attach.ts';
import { McpHttpHost } from '../../src/mcp/http-host.ts';
import { openStore } from '../../src/store/open-store.ts';
import { agentq, makeProject } from '../fixtures/project.ts';

/** The http declaration an attempt got. */
function httpSpec(opened: McpOpened): McpHttpSpec {
  assert.equal(opened.spec.type, 'http');
  return opened.spec as McpHttpSpec;
}

/** An SDK client connected to the attempt's declaration (url + its headers). */
async function connect(opened: McpOpened): Promise<Client> {
  const spec = httpSpec(opened);
  const client = new Client({ name: 'agentq-test', version: '1' });
  await client.connect(new StreamableHTTPClientTransport(new URL(spec.url), { requestInit: { headers: spec.headers ?? {} } }));
  return client;
}

const INITIALIZE = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } };

/** A POST of `initialize` (or `body`) with `headers`; its HTTP status. */
async function initializeStatus(url: string, headers: Record<string, string>, method = 'POST', body: Record<string, unknown> = INITIALIZE): Promise<number> {
  const res = await fetch(url, {
    method,
    headers: { ...headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    ...(method === 'POST' ? { body: JSON.stringify(body) } : {}),
  });
  await res.arrayBuffer();
  return res.status;
}

const submitted = (r: CallToolResult) => {
  assert.notEqual(r.isError, true, JSON.stringify(r.content));
  return (r.structuredContent as { task: { id: number; parentId: number | null } }).task;
};

describe('McpHttpHost', () => {
  it("serves an attempt's token (its task's subtasks), refuses others, and stops with the last attempt", async () => {
    const paths = makeProject();
    const store = await openStore('sqlite:.agent-queue/agentq.db', paths.root);
    await store.enqueue([{ spec: { ...baseSpec('parent', 'Parent.', 'cli'), agent: 'command', command: 'true', timeoutMs: 60_000 }, dependsOnIds: [] }], Date.now());
    await store.close();
    assert.equal((await agentq(['run', '--once', '--project', paths.root])).code, 0);
    const check = await openStore('sqlite:.agent-queue/agentq.db', paths.root);
    const [attempt] = await check.listAttempts(1);
    assert.ok(attempt);

    const logged: string[] = [];
    const host = new McpHttpHost({ paths, config: loadConfig(paths.root), log: (line) => logged.push(line), lingerMs: 300 });
    const mine = await host.open({ taskId: 1, attemptId: attempt.id });
    const stranger = await host.open({ taskId: 1, attemptId: 'not-an-attempt-here' });
    const url = httpSpec(mine).url;
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
    assert.equal(httpSpec(stranger).url, url, 'one host for every open attempt');
    assert.notDeepEqual(httpSpec(mine).headers, httpSpec(stranger).headers, 'a token per attempt');
    assert.equal(mine.spec.alwaysLoad, true);

    const agent = await connect(mine);
    const { tools } = await agent.listTools();
    assert.match(tools.find((t) => t.name === 'submit_task')!.description!, /Run by the agent of task 1 "parent": every task submitted is its subtask/);
    const sub = submitted((await agent.callTool({ name: 'submit_task', arguments: { prompt: 'Part.', name: 'part', agent: 'command', command: 'cat' } })) as CallToolResult);
    assert.equal(sub.parentId, 1);
    assert.equal((await check.getTask(sub.id))?.parentId, 1, 'in the store');
    const strangerClient = await connect(stranger);
    const free = submitted((await strangerClient.callTool({ name: 'submit_task', arguments: { prompt: 'Free.', name: 'free', agent: 'command', command: 'cat' } })) as CallToolResult);
    assert.equal(free.parentId, null, 'an attempt the store does not know files no subtasks');

    assert.equal(await initializeStatus(url, {}), 401, 'no token');
    assert.equal(await initializeStatus(url, { Authorization: 'Bearer not-a-token' }), 401);
    assert.equal(await initializeStatus(url, httpSpec(mine).headers!, 'GET'), 405, 'stateless: POST only');
    assert.equal(await initializeStatus(url, httpSpec(mine).headers!), 200);

    await agent.close();
    await strangerClient.close();
    await mine.close();
    assert.equal(await initializeStatus(url, httpSpec(mine).headers!), 401, "a closed attempt's token is refused");
    assert.equal(await initializeStatus(url, httpSpec(stranger).headers!), 200, 'the other attempt is still served');
    await stranger.close();
    assert.equal(host.openAttempts, 0);
    // It lingers: the next attempt, opened soon after, is served by the same host.
    const next = await host.open({ taskId: 1, attemptId: attempt.id });
    assert.equal(httpSpec(next).url, url, 'the lingering host serves the next attempt');
    assert.equal(await initializeStatus(url, httpSpec(next).headers!), 200);
    await next.close();
    const stopped = async () => fetch(url, { method: 'POST' }).then(() => false, () => true);
    for (let waited = 0; !(await stopped()) && waited < 10_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
    assert.ok(await stopped(), 'the host stopped once it had lingered with no attempt open');

    const again = await host.open({ taskId: 1, attemptId: attempt.id });
    assert.equal(await initializeStatus(httpSpec(again).url, httpSpec(again).headers!), 200, 'and starts again for the next');
    await again.close();
    await check.close();
    assert.ok(logged.some((l) => l.includes('created #2 part')), logged.join('\n'));
  });

  it('a store it cannot open: the host listens, answers initialize (no store needed), and each request needing the store gets 500 with the reason (logged)', async () => {
    const paths = makeProject();
    const logged: string[] = [];
    const host = new McpHttpHost({ paths, config: { ...loadConfig(paths.root), store: 'nosuch:store' }, log: (line) => logged.push(line) });
    const opened = await host.open({ taskId: 1, attemptId: 'a' });
    assert.equal(await initializeStatus(httpSpec(opened).url, httpSpec(opened).headers!), 200);
    assert.equal(await initializeStatus(httpSpec(opened).url, { ...httpSpec(opened).headers!, 'mcp-protocol-version': '2025-06-18' }, 'POST', { jsonrpc: '2.0', id: 2, method: 'tools/list' }), 500);
    assert.ok(logged.some((l) => l.includes('unsupported URL')), logged.join('\n'));
    await opened.close();
    assert.equal(host.openAttempts, 0);
  });
});
