/**
 * `agentq mcp` driven by the MCP SDK's own client (`Client` + `StdioClientTransport`) over a
 * real `bin/agentq mcp` process on a temp project: the tools and their schemas, tasks created
 * with their fields, refusals as tool errors with the CLI's messages, get / list / cancel /
 * answer, subtasks (with `max_subtasks`) when the environment names a task's attempt, and
 * delegation: `delegate_task` to a remote A2A agent (a minimal one made of the SDK's server
 * classes, test/fixtures/a2a-peer.ts) run by a real dispatcher, followed by
 * `check_delegation_status`.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { KNOWN_AGENTS } from '../../src/core/types.ts';
import { startA2APeer, type A2APeer } from '../fixtures/a2a-peer.ts';
import { AGENTQ, agentq, agentqJson, makeProject } from '../fixtures/project.ts';

/** The environment of this test less agentq's own variables (an agent's tags are added per case). */
function baseEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('AGENTQ_')) env[k] = v;
  return { ...env, ...extra };
}

const clients: Client[] = [];
let peer: A2APeer | null = null;
after(async () => {
  for (const c of clients) await c.close();
  await peer?.close();
});

/** An SDK client connected to `bin/agentq mcp --project ROOT`; its stderr collected in `stderr()`. */
async function connect(root: string, env: Record<string, string> = {}): Promise<{ client: Client; stderr: () => string }> {
  const transport = new StdioClientTransport({ command: AGENTQ, args: ['mcp', '--project', root], env: baseEnv(env), stderr: 'pipe' });
  let err = '';
  transport.stderr?.on('data', (d: Buffer) => (err += d));
  const client = new Client({ name: 'agentq-test', version: '1' });
  await client.connect(transport);
  clients.push(client);
  return { client, stderr: () => err };
}

async function call(client: Client, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

/** The text of a tool result. */
const text = (r: CallToolResult) => r.content.map((c) => (c.type === 'text' ? c.text : '')).join('');

/** The tool error's text; fails when the call succeeded. */
function errorText(r: CallToolResult): string {
  assert.equal(r.isError, true, `expected a tool error, got: ${text(r)}`);
  return text(r);
}

/** The structured content of a successful call. */
function data<T = any>(r: CallToolResult): T {
  assert.notEqual(r.isError, true, text(r));
  return r.structuredContent as T;
}

describe('agentq mcp (MCP SDK client over stdio)', { concurrency: false }, () => {
  it('lists its seven tools; submit_task takes the task-file fields, prompt and name (JSON Schema from the one zod schema)', async () => {
    const paths = makeProject();
    const { client, stderr } = await connect(paths.root);
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), ['answer_task', 'cancel_task', 'check_delegation_status', 'delegate_task', 'get_task', 'list_tasks', 'submit_task']);
    const submit = tools.find((t) => t.name === 'submit_task')!;
    const props = submit.inputSchema.properties as Record<string, any>;
    for (const field of ['prompt', 'name', 'title', 'priority', 'agent', 'model', 'depends_on', 'timeout', 'max_cost_usd', 'retries', 'tags', 'runs_on', 'dedup_key', 'command', 'retry_backoff', 'retry_on_timeout', 'concurrency_group', 'run_at', 'workspace', 'merge', 'parent', 'max_turns', 'allowed_tools', 'remote', 'remote_metadata']) {
      assert.ok(props[field], `submit_task takes ${field}`);
    }
    assert.ok(!('callback_url' in props), 'no callback_url: nothing to call back over stdio');
    assert.deepEqual(submit.inputSchema.required, ['prompt']);
    assert.equal((submit.inputSchema as { additionalProperties?: unknown }).additionalProperties, false);
    assert.match(JSON.stringify(props.priority), /"critical","high","default","low"/);
    const get = tools.find((t) => t.name === 'get_task')!;
    assert.deepEqual(get.inputSchema.required, ['task']);
    const delegate = tools.find((t) => t.name === 'delegate_task')!;
    assert.deepEqual(delegate.inputSchema.required, ['prompt', 'remote']);
    const delegateProps = delegate.inputSchema.properties as Record<string, unknown>;
    assert.ok(!('agent' in delegateProps) && 'remote_metadata' in delegateProps && 'priority' in delegateProps, 'the task fields but agent (it is a2a)');
    assert.deepEqual(tools.find((t) => t.name === 'check_delegation_status')!.inputSchema.required, ['task']);
    assert.match(stderr(), /agentq mcp: serving .* on stdio/, 'its log goes to stderr (stdout is the protocol)');
  });

  it('submit_task creates the task with its fields, as POST /v1/tasks does; get_task and list_tasks read it back', async () => {
    const paths = makeProject();
    const { client } = await connect(paths.root);
    const first = data(await call(client, 'submit_task', { prompt: 'Build it.', name: 'build', agent: 'command', command: ['sh', '-c', 'echo built'] }));
    assert.equal(first.task.name, 'build');
    const r = await call(client, 'submit_task', {
      prompt: 'Write the release notes.',
      title: 'Release notes',
      priority: 'high',
      agent: 'command',
      command: 'cat',
      depends_on: ['build'],
      timeout: '90s',
      max_cost_usd: 2.5,
      retries: 1,
      retry_backoff: 10,
      retry_on_timeout: true,
      tags: ['docs', 'release'],
      runs_on: 'gpu',
      dedup_key: 'notes-v2',
      concurrency_group: 'docs',
      run_at: '2099-12-01',
      workspace: 'inplace',
      merge: 'auto',
      max_turns: 7,
      allowed_tools: ['Read'],
    });
    assert.match(text(r), /^created #2 release-notes \(queued\)/, 'the name comes from the title');
    const shown = await agentqJson(['show', 'release-notes', '--json', '--project', paths.root]);
    assert.equal(shown.title, 'Release notes');
    assert.equal(shown.priority, 'high');
    assert.equal(shown.agent, 'command');
    assert.equal(shown.command, 'cat');
    assert.deepEqual(shown.dependsOn, ['build']);
    assert.deepEqual(shown.dependsOnIds, [first.task.id]);
    assert.equal(shown.timeoutMs, 90_000);
    assert.equal(shown.maxCostUsd, 2.5);
    assert.equal(shown.retries, 1);
    assert.equal(shown.retryBackoffMs, 10_000);
    assert.equal(shown.retryOnTimeout, true);
    assert.deepEqual(shown.tags, ['docs', 'release']);
    assert.deepEqual(shown.runsOn, ['gpu']);
    assert.equal(shown.dedupKey, 'notes-v2');
    assert.equal(shown.concurrencyGroup, 'docs');
    assert.equal(shown.runAfter, Date.parse('2099-12-01T00:00:00Z'));
    assert.equal(shown.workspace, 'inplace');
    assert.equal(shown.merge, 'auto');
    assert.equal(shown.maxTurns, 7);
    assert.deepEqual(shown.allowedTools, ['Read']);
    assert.equal(shown.source, 'mcp');
    assert.equal(shown.parent, null, 'outside a task: no parent');
    assert.equal(shown.prompt, 'Write the release notes.');

    const got = data(await call(client, 'get_task', { task: 'release-notes' }));
    assert.equal(got.task.id, 2);
    assert.equal(got.task.prompt, 'Write the release notes.');
    assert.deepEqual(got.task.attemptHistory, []);
    assert.deepEqual(data(await call(client, 'get_task', { task: 1 })).task.name, 'build');
    const listed = data(await call(client, 'list_tasks', {}));
    assert.deepEqual(listed.tasks.map((t: { name: string }) => t.name), ['release-notes', 'build'], 'newest first');
    assert.deepEqual(data(await call(client, 'list_tasks', { limit: 1 })).tasks.length, 1);
    assert.deepEqual(data(await call(client, 'list_tasks', { state: 'completed' })).tasks, []);

    // The task runs under a dispatcher like any other.
    const run = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(run.code, 1, 'release-notes waits for run_at and a gpu label');
    assert.equal(data(await call(client, 'get_task', { task: 'build' })).task.state, 'completed');
    assert.equal(data(await call(client, 'get_task', { task: 'build' })).task.result, 'built');
  });

  it('refuses bad arguments as tool errors naming the field, with the messages of task files and the CLI; nothing is created', async () => {
    const paths = makeProject();
    const { client } = await connect(paths.root);
    const refusals: Array<[Record<string, unknown>, string]> = [
      [{ prompt: 'x', priority: 'urgent' }, 'priority: "urgent" is not one of critical, high, default, low'],
      [{ priority: 'high' }, 'prompt: required'],
      [{ prompt: '   ' }, 'prompt: empty'],
      [{ prompt: 'x', timeout: '3 weeks' }, 'timeout: "3 weeks" is not a duration from 1ms to 7d, such as 90s or 30m (a number is seconds)'],
      [{ prompt: 'x', agent: 'robot' }, `agent: "robot" is not a known agent (${KNOWN_AGENTS.join(', ')}) or auto`],
      [{ prompt: 'x', name: '../etc' }, 'name: "../etc" is not a task name (letters, digits, ".", "_", "-", starting with a letter or digit)'],
      [{ prompt: 'x', depends_on: ['nothing-here'] }, 'depends_on: "nothing-here" names no task in this project'],
      [{ prompt: 'x', parent: 'nobody' }, 'parent: "nobody" names no task in this project'],
      [{ prompt: 'x', retries: 1.5 }, 'retries: 1.5 is not a whole number from 0 to 100'],
    ];
    for (const [args, message] of refusals) assert.equal(errorText(await call(client, 'submit_task', args)), message, JSON.stringify(args));
    assert.match(errorText(await call(client, 'submit_task', { prompt: 'x', callback_url: 'http://127.0.0.1/' })), /^callback_url: unknown field \(known: prompt, name, title, priority, /);
    assert.equal(errorText(await call(client, 'get_task', { task: 'ghost' })), 'no task "ghost" (give a task id or name)');
    assert.equal(errorText(await call(client, 'get_task', { task: 2.5 })), 'task: 2.5 is not a task id (a whole number) or name');
    assert.equal(errorText(await call(client, 'get_task', {})), 'task: undefined is not a task id (a whole number) or name');
    assert.equal(errorText(await call(client, 'list_tasks', { state: 'sleeping' })), 'state: "sleeping" is not one of queued, running, blocked, waiting, completed, failed, timed_out, budget_exceeded, cancelled, invalid, duplicate');
    assert.equal(errorText(await call(client, 'list_tasks', { limit: 501 })), 'limit: 501 is not a whole number from 1 to 500');
    assert.equal(errorText(await call(client, 'cancel_task', { task: 1, force: true })), 'force: unknown field (known: task)');
    assert.deepEqual(data(await call(client, 'list_tasks', {})).tasks, [], 'nothing was created');
  });

  it('the refusals are the ones the CLI and the inbox give', async () => {
    const paths = makeProject();
    const { client } = await connect(paths.root);
    const viaMcp = errorText(await call(client, 'submit_task', { prompt: 'x', name: 'bad', priority: 'urgent', retries: 1000 }));
    const fs = await import('node:fs');
    fs.writeFileSync(`${paths.inbox}/bad.md`, '---\npriority: urgent\nretries: 1000\n---\nx\n');
    const run = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(run.code, 1);
    const shown = await agentqJson(['show', 'bad', '--json', '--project', paths.root]);
    assert.equal(shown.state, 'invalid');
    assert.equal(viaMcp, shown.failedReason);
    const cli = await agentq(['show', 'ghost', '--project', paths.root]);
    assert.equal(errorText(await call(client, 'get_task', { task: 'ghost' })), cli.stderr.trim().replace(/^agentq: /, ''));
  });

  it('cancel_task and answer_task act as agentq cancel and agentq answer, with their messages', async () => {
    const paths = makeProject();
    const { client } = await connect(paths.root);
    data(await call(client, 'submit_task', { prompt: 'Wait for me.', name: 'later', agent: 'command', command: 'cat', run_at: '2099-01-01' }));
    assert.equal(text(await call(client, 'cancel_task', { task: 'later' })).split('\n')[0], 'cancelled #1 later');
    const cancelled = data(await call(client, 'get_task', { task: 'later' })).task;
    assert.deepEqual([cancelled.state, cancelled.failedReason], ['cancelled', 'cancelled by user']);

    data(await call(client, 'submit_task', { prompt: 'Ask.', name: 'asker', agent: 'command', command: ['sh', '-c', 'echo "<<question>>Which colour?<</question>>"'] }));
    data(await call(client, 'submit_task', { prompt: 'Quick.', name: 'quick', agent: 'command', command: 'cat' }));
    assert.equal(errorText(await call(client, 'answer_task', { task: 'asker', answer: 'Blue' })), 'task 2 is queued, not blocked on a question');
    const run = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(run.code, 1, 'blocked');
    assert.equal(errorText(await call(client, 'cancel_task', { task: 'quick' })), '#3 quick already ended completed');
    const cli = await agentq(['cancel', 'quick', '--project', paths.root]);
    assert.deepEqual([cli.code, cli.stdout.trim()], [1, '#3 quick already ended completed'], 'as agentq cancel says it');
    assert.equal(data(await call(client, 'get_task', { task: 'asker' })).task.question, 'Which colour?');
    assert.equal(errorText(await call(client, 'answer_task', { task: 'asker', answer: '  ' })), 'answer: the answer text is empty');
    const answered = await call(client, 'answer_task', { task: 'asker', answer: 'Blue' });
    assert.equal(text(answered).split('\n')[0], 'answered #2 asker: queued again');
    const after = data(await call(client, 'get_task', { task: 'asker' })).task;
    assert.deepEqual([after.state, after.answer], ['queued', 'Blue']);
  });

  it("run with a task's AGENTQ_TASK_ID and AGENTQ_ATTEMPT_ID, what it submits are that task's subtasks, at most max_subtasks", async () => {
    const paths = makeProject({ max_subtasks: 3 });
    const seed = await connect(paths.root);
    data(await call(seed.client, 'submit_task', { prompt: 'Parent.', name: 'parent', agent: 'command', command: 'cat' }));
    data(await call(seed.client, 'submit_task', { prompt: 'Other.', name: 'other', agent: 'command', command: 'cat' }));
    assert.equal((await agentq(['run', '--once', '--project', paths.root])).code, 0);
    const parent = await agentqJson(['show', 'parent', '--json', '--project', paths.root]);
    const attemptId: string = parent.attemptHistory[0].id;

    // Tags that name no attempt of that task here (another project's agent): no parent.
    const stranger = await connect(paths.root, { AGENTQ_TASK_ID: String(parent.id), AGENTQ_ATTEMPT_ID: 'not-an-attempt-here' });
    assert.equal(data(await call(stranger.client, 'submit_task', { prompt: 'Free.', name: 'free', agent: 'command', command: 'cat' })).task.parentId, null);

    const agent = await connect(paths.root, { AGENTQ_TASK_ID: String(parent.id), AGENTQ_TASK_NAME: 'parent', AGENTQ_ATTEMPT_ID: attemptId });
    assert.match(agent.stderr(), /subtasks of #1 parent \(at most 3\)/);
    const { tools } = await agent.client.listTools();
    assert.match(tools.find((t) => t.name === 'submit_task')!.description!, /Run by the agent of task 1 "parent": every task submitted is its subtask/);
    for (const n of [1, 2]) {
      const r = await call(agent.client, 'submit_task', { prompt: `Part ${n}.`, name: `part-${n}`, agent: 'command', command: 'cat' });
      assert.match(text(r), new RegExp(`^created #\\d+ part-${n} \\(queued\\), a subtask of #1 parent`));
    }
    data(await call(agent.client, 'submit_task', { prompt: 'Part 3.', name: 'part-3', parent: 'parent', agent: 'command', command: 'cat' }));
    assert.equal(
      errorText(await call(agent.client, 'submit_task', { prompt: 'Part 4.', name: 'part-4', agent: 'command', command: 'cat' })),
      'max_subtasks: task 1 "parent" already has 3 subtasks, the most one task may have (config max_subtasks 3); this one was not created',
    );
    assert.equal(
      errorText(await call(agent.client, 'submit_task', { prompt: 'Sneak.', name: 'sneak', parent: 'other', agent: 'command', command: 'cat' })),
      'parent: "other" is not this agent\'s task 1 "parent" (an agent files subtasks of its own task only)',
    );
    const subs = data(await call(agent.client, 'list_tasks', { parent: 'parent' })).tasks;
    assert.deepEqual(subs.map((t: { name: string; parentId: number }) => [t.name, t.parentId]), [['part-3', 1], ['part-2', 1], ['part-1', 1]]);
    const all = data(await call(agent.client, 'list_tasks', { limit: 500 })).tasks.map((t: { name: string }) => t.name);
    assert.ok(!all.includes('part-4') && !all.includes('sneak'), 'refused: nothing created');
  });
  it('delegate_task files a task for a remote A2A agent (agent a2a); check_delegation_status follows its ledger rows', async () => {
    peer = await startA2APeer({ script: (text) => (text.startsWith('far:') ? { kind: 'complete', text: 'done far away' } : { kind: 'fail', reason: `unscripted: ${text}` }) });
    const paths = makeProject({ poll_interval: '100ms', delegation_poll_max: '200ms', remotes: { peer: { url: peer.url } } });
    const { client } = await connect(paths.root);
    // Refused, nothing created: an unknown remote (named as the runner names it), no remote, an agent.
    assert.equal(
      errorText(await call(client, 'delegate_task', { prompt: 'x', remote: 'nosuch' })),
      'remote: "nosuch" is not a remote of config.yaml (remotes: peer); name one of them or give the URL of an A2A agent',
    );
    assert.equal(errorText(await call(client, 'delegate_task', { prompt: 'x' })), 'remote: required');
    assert.match(errorText(await call(client, 'delegate_task', { prompt: 'x', remote: 'peer', agent: 'claude' })), /^agent: unknown field \(known: prompt, name, /);
    assert.match(errorText(await call(client, 'delegate_task', { prompt: 'x', remote: 'peer', remote_metadata: ['agent'] })), /^remote_metadata: \["agent"\] is not an object of fields for the remote/);
    assert.deepEqual(data(await call(client, 'list_tasks', {})).tasks, [], 'nothing was created');

    const made = await call(client, 'delegate_task', { prompt: 'far: please.', name: 'far', remote: 'peer', priority: 'high', remote_metadata: { agent: 'command', command: 'make' } });
    assert.equal(text(made).split('\n')[0], 'created #1 far (queued), delegated to peer');
    assert.deepEqual([data(made).task.agent, data(made).task.remote], ['a2a', 'peer']);
    const byUrl = data(await call(client, 'delegate_task', { prompt: 'far: by URL.', name: 'far-url', remote: peer.url }));
    assert.equal(byUrl.task.remote, peer.url);
    data(await call(client, 'submit_task', { prompt: 'Local.', name: 'local', agent: 'command', command: 'cat' }));
    const waiting = await call(client, 'check_delegation_status', { task: 'far' });
    assert.equal(text(waiting).split('\n')[0], '#1 far is queued, not sent yet (delegated to peer)');
    assert.deepEqual(data(waiting).delegations, []);

    const run = await agentq(['run', '--once', '--project', paths.root]);
    assert.equal(run.code, 0, run.stderr);
    const status = await call(client, 'check_delegation_status', { task: 1 });
    const [row] = data(status).delegations;
    assert.equal(data(status).delegations.length, 1);
    assert.deepEqual([row.taskId, row.taskName, row.remote, row.url, row.state, row.remoteState, row.resultPreview, row.lastError], [1, 'far', 'peer', peer.url, 'completed', 'completed', 'done far away', null]);
    assert.equal(text(status).split('\n')[0], `#1 far is completed, delegated to peer: completed (remote task ${row.remoteTaskId})`);
    const [sent] = peer.sends.filter((x) => x.text === 'far: please.');
    assert.deepEqual(sent?.metadata, { title: 'far', priority: 'high', timeout: '1800000ms', agent: 'command', command: 'make' }, 'remote_metadata travelled');
    const viaCli = await agentqJson<unknown[]>(['delegations', '--json', '--project', paths.root]);
    assert.deepEqual(data(await call(client, 'check_delegation_status', { task: 'far-url' })).delegations, viaCli.filter((d) => (d as { taskName: string }).taskName === 'far-url'), 'the rows agentq delegations --json shows');
    assert.equal(text(await call(client, 'check_delegation_status', { task: 'local' })).split('\n')[0], '#3 local is completed, not delegated (agent command)');
    assert.equal(errorText(await call(client, 'check_delegation_status', { task: 'ghost' })), 'no task "ghost" (give a task id or name)');
  });
});
