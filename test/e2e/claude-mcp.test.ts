/**
 * Agents filing work: the real Claude Code CLI under `agentq run`, scripted by the fake
 * Messages API to call `mcp__agentq__submit_task` (agentq's MCP server, which the Claude
 * runner declares through `--mcp-config`): the subtask is created with its parent and runs;
 * a runaway script calling it 25 times gets `max_subtasks` (20) subtasks and a clear tool
 * error for every call past it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { claudeEnv, makeClaudeSandbox } from '../fixtures/claude-env.ts';
import { startFakeAnthropic, type RecordedRequest } from '../fixtures/fake-anthropic.ts';
import { agentq, agentqJson, listDir, makeProject, readResult } from '../fixtures/project.ts';

type Fake = Awaited<ReturnType<typeof startFakeAnthropic>>;

/** A `tool_result` block the CLI sent back to the API. */
interface ToolResult {
  tool_use_id: string;
  is_error?: boolean;
  content: unknown;
}

/** Every tool result the conversation of a recorded request holds, in order (the last request of a conversation holds them all). */
function toolResults(q: RecordedRequest): ToolResult[] {
  const messages = (q.body as { messages?: Array<{ role: string; content: unknown }> }).messages ?? [];
  return messages.flatMap((m) => (m.role === 'user' && Array.isArray(m.content) ? (m.content as Array<{ type?: string }>).filter((b) => b.type === 'tool_result') : [])) as ToolResult[];
}

/** A tool result's text. */
function resultText(r: ToolResult): string {
  if (typeof r.content === 'string') return r.content;
  return (r.content as Array<{ type?: string; text?: string }>).map((c) => c.text ?? '').join('');
}

/** The `message` of a successful call: Claude Code passes on the structured content, `{ message, task }`. */
function resultMessage(r: ToolResult): string {
  assert.notEqual(r.is_error, true, resultText(r));
  return (JSON.parse(resultText(r)) as { message: string }).message;
}

describe('Claude Code files subtasks through agentq mcp', { concurrency: false }, () => {
  let fake: Fake;
  let env: Record<string, string>;
  before(async () => {
    fake = await startFakeAnthropic({ defaultTurns: [{ text: 'done' }] });
    env = claudeEnv(fake.url, makeClaudeSandbox().config);
  });
  after(async () => fake.close());

  it('a submit_task call from a running task creates its subtask (parent set), which then runs; the parent completes after it', async () => {
    const paths = makeProject({ workspace: 'inplace' });
    fake.setRules([
      {
        match: 'Plan the release',
        turns: [
          { toolUse: { name: 'mcp__agentq__submit_task', input: { prompt: 'Write the changelog entry.', name: 'changelog', priority: 'high', tags: ['docs'] } } },
          { text: 'Filed the changelog as a subtask.' },
        ],
      },
      { match: 'Write the changelog entry', turns: [{ text: 'Changelog written by {{model}}.' }] },
    ]);
    const created = await agentq(['submit', '--prompt', 'Plan the release.', '--name', 'release', '--project', paths.root], env);
    assert.equal(created.code, 0, created.stderr);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-tmp-'));
    const r = await agentq(['run', '--once', '--project', paths.root], { ...env, TMPDIR: tmp });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.startsWith('agentq-mcp-')), [], "each attempt's --mcp-config file is removed after it");

    // The model was offered agentq's tools, and the call's result named the new subtask.
    const first = fake.turnRequests('Plan the release')[0]!;
    const offered = ((first.body as { tools?: Array<{ name: string }> }).tools ?? []).map((t) => t.name);
    assert.ok(offered.includes('mcp__agentq__submit_task'), `tools offered: ${offered.join(', ')}`);
    for (const name of ['list_tasks', 'get_task', 'answer_task', 'cancel_task']) assert.ok(offered.includes(`mcp__agentq__${name}`), name);
    const [result] = toolResults(fake.turnRequests('Plan the release').at(-1)!);
    assert.ok(result, 'the call was answered');
    assert.equal(resultMessage(result), 'created #2 changelog (queued), a subtask of #1 release');

    const sub = await agentqJson(['show', 'changelog', '--json', '--project', paths.root]);
    assert.deepEqual([sub.parent, sub.parentId, sub.priority, sub.tags, sub.source, sub.state], ['release', 1, 'high', ['docs'], 'mcp', 'completed']);
    const parent = await agentqJson(['show', 'release', '--json', '--project', paths.root]);
    assert.equal(parent.state, 'completed');
    assert.deepEqual(parent.subtasks, [{ id: 2, name: 'changelog', state: 'completed' }]);
    assert.ok(parent.finishedAt >= sub.finishedAt, 'the parent completed once its subtask had');
    assert.deepEqual(listDir(paths.done), ['changelog.md', 'release.md']);
    assert.equal(readResult(path.join(paths.done, 'changelog.md')).body, 'Changelog written by claude-sonnet-5.');
  });

  it('a runaway agent calling submit_task 25 times gets 20 subtasks (max_subtasks) and a clear tool error for each call past it', async () => {
    const paths = makeProject({ workspace: 'inplace' });
    const calls = Array.from({ length: 25 }, (_, i) => ({
      toolUse: { name: 'mcp__agentq__submit_task', input: { prompt: `Part ${i + 1} of the flood.`, name: `part-${i + 1}`, agent: 'command', command: 'cat' } },
    }));
    fake.setRules([{ match: 'Flood the queue', turns: [...calls, { text: 'Flooded.' }] }]);
    assert.equal((await agentq(['submit', '--prompt', 'Flood the queue.', '--name', 'flood', '--project', paths.root], env)).code, 0);
    const r = await agentq(['run', '--once', '--project', paths.root], env);
    assert.equal(r.code, 0, r.stderr);

    const results = toolResults(fake.turnRequests('Flood the queue').at(-1)!);
    assert.equal(results.length, 25, 'every call was answered');
    results.slice(0, 20).forEach((res, i) => assert.equal(resultMessage(res), `created #${i + 2} part-${i + 1} (queued), a subtask of #1 flood`));
    for (const res of results.slice(20)) {
      assert.equal(res.is_error, true);
      assert.equal(resultText(res), 'max_subtasks: task 1 "flood" already has 20 subtasks, the most one task may have (config max_subtasks 20); this one was not created');
    }
    const tasks = await agentqJson(['list', '--json', '--project', paths.root]);
    assert.equal(tasks.length, 21, 'the parent and 20 subtasks: nothing created past the limit');
    const parent = await agentqJson(['show', 'flood', '--json', '--project', paths.root]);
    assert.equal(parent.subtasks.length, 20);
    assert.ok(parent.subtasks.every((s: { state: string }) => s.state === 'completed'));
    assert.equal(parent.state, 'completed');
    assert.equal(readResult(path.join(paths.done, 'part-20.md')).body, 'Part 20 of the flood.');
  });

  it('agents.claude.mcp: false leaves the server out', async () => {
    const paths = makeProject({ workspace: 'inplace', agents: { claude: { mcp: false } } });
    fake.setRules([{ match: 'No tools here', turns: [{ text: 'ok' }] }]);
    assert.equal((await agentq(['submit', '--prompt', 'No tools here.', '--project', paths.root], env)).code, 0);
    assert.equal((await agentq(['run', '--once', '--project', paths.root], env)).code, 0);
    const offered = ((fake.turnRequests('No tools here')[0]!.body as { tools?: Array<{ name: string }> }).tools ?? []).map((t) => t.name);
    assert.ok(offered.length > 0 && !offered.some((n) => n.startsWith('mcp__agentq__')), offered.join(', '));
  });
});
