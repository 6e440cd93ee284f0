/**
 * Per-task agent options (max_turns, allowed_tools), agentq's MCP server for Claude Code, model aliases, and the per-response
 * token counts (`turn` events) that budgets are watched with; what the runners say of
 * themselves before they are loaded, and an agent's defaults.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClaudeRunner, mcpConfigJson } from '../../src/agents/claude/claude-runner.ts';
import { ClaudeStreamParser } from '../../src/agents/claude/stream-parser.ts';
import { CodexStreamParser } from '../../src/agents/codex/stream-parser.ts';
import { createRunners } from '../../src/agents/registry.ts';
import type { AgentEvent } from '../../src/agents/runner.ts';
import { parseConfig } from '../../src/config/config.ts';
import { agentConfig, projectPaths } from '../../src/config/project.ts';
import { baseSpec, parseTaskFile } from '../../src/config/task-file.ts';
import type { Task } from '../../src/core/types.ts';
import { fixedMcp } from '../../src/mcp/attach.ts';
import { routeModel } from '../../src/scheduler/dispatcher.ts';

const defaults = { default_timeout: 1_800_000, default_retries: 0 };

describe('max_turns and allowed_tools', () => {
  it('task files set them, and bad values name the field', () => {
    const s = parseTaskFile('t', '---\nmax_turns: 5\nallowed_tools: [Read, "Bash(git log:*)"]\n---\nGo.\n', defaults);
    assert.equal(s.maxTurns, 5);
    assert.deepEqual(s.allowedTools, ['Read', 'Bash(git log:*)']);
    assert.throws(() => parseTaskFile('t', '---\nmax_turns: 0\n---\nGo.\n', defaults), /max_turns: 0 is not/);
    assert.throws(() => parseTaskFile('t', '---\nmax_turns: many\n---\nGo.\n', defaults), /max_turns/);
  });

  it('Claude Code gets --max-turns and one --allowedTools argument per rule; the task wins over config', () => {
    const runner = new ClaudeRunner({ command: ['claude'], maxTurns: 30, allowedTools: ['Read'] });
    const base = { model: null, prompt: 'p', resumeSessionId: null, systemPromptAppend: null };
    const fromConfig = runner.buildArgv({ ...base, task: { maxTurns: null, allowedTools: null } });
    assert.deepEqual(fromConfig.slice(fromConfig.indexOf('--max-turns'), fromConfig.indexOf('--permission-mode')), ['--max-turns', '30', '--allowedTools', 'Read']);
    const fromTask = runner.buildArgv({ ...base, task: { maxTurns: 2, allowedTools: ['Edit', 'Bash(npm test:*)'] } });
    assert.deepEqual(fromTask.slice(fromTask.indexOf('--max-turns'), fromTask.indexOf('--permission-mode')), ['--max-turns', '2', '--allowedTools', 'Edit', 'Bash(npm test:*)']);
    const none = new ClaudeRunner({ command: ['claude'] }).buildArgv(base);
    assert.ok(!none.includes('--max-turns') && !none.includes('--allowedTools'));
  });

  it("agentq's MCP server: --mcp-config FILE and an --allowedTools rule for its tools, after the task's rules; none without servers", () => {
    const runner = new ClaudeRunner({ command: ['claude'], mcpServers: { agentq: fixedMcp({ type: 'http', url: 'http://127.0.0.1:1/mcp' }) } });
    const base = { model: null, prompt: 'p', resumeSessionId: null, systemPromptAppend: null };
    const argv = runner.buildArgv({ ...base, task: { maxTurns: null, allowedTools: ['Read'] } }, '/tmp/x/mcp.json');
    assert.deepEqual(argv.slice(argv.indexOf('--allowedTools')), ['--allowedTools', 'Read', 'mcp__agentq', '--mcp-config', '/tmp/x/mcp.json', '--permission-mode', 'bypassPermissions']);
    const alone = runner.buildArgv(base, '/tmp/x/mcp.json');
    assert.deepEqual(alone.slice(alone.indexOf('--allowedTools'), alone.indexOf('--permission-mode')), ['--allowedTools', 'mcp__agentq', '--mcp-config', '/tmp/x/mcp.json']);
    const none = new ClaudeRunner({ command: ['claude'] }).buildArgv(base);
    assert.ok(!none.includes('--mcp-config') && !none.includes('--allowedTools'));
  });

  it('the --mcp-config file declares http servers (url, headers) and stdio ones (command, args, env), alwaysLoad when asked', () => {
    const http = { type: 'http' as const, url: 'http://127.0.0.1:41234/mcp', headers: { Authorization: 'Bearer t' }, alwaysLoad: true };
    const stdio = { command: '/usr/bin/node', args: ['server.js'] };
    assert.deepEqual(JSON.parse(mcpConfigJson({ agentq: http, other: stdio })), {
      mcpServers: {
        agentq: { type: 'http', url: 'http://127.0.0.1:41234/mcp', headers: { Authorization: 'Bearer t' }, alwaysLoad: true },
        other: { type: 'stdio', command: '/usr/bin/node', args: ['server.js'], env: {} },
      },
    });
  });

  it('config: agents.claude.mcp (default true) and max_subtasks (default 20)', () => {
    const config = parseConfig({});
    assert.equal(config.max_subtasks, 20);
    assert.equal(config.agents.claude, undefined);
    assert.equal(parseConfig({ agents: { claude: { mcp: false } } }).agents.claude?.mcp, false);
    assert.throws(() => parseConfig({ max_subtasks: 0 }), /max_subtasks/);
    assert.throws(() => parseConfig({ agents: { claude: { mcp: 'no' } } }), /agents\.claude\.mcp/);
  });
});

describe('model aliases', () => {
  const task = (agent: string, model: string | null, priority: Task['priority'] = 'default') => ({ ...baseSpec('t', 'p'), agent, model, priority }) as Task;

  it('resolve per agent: config aliases over the built-in ones; unknown names pass through', () => {
    const config = parseConfig({ agents: { gemini: { aliases: { cheap: 'gemini-2.5-flash-lite' }, models: { critical: 'pro' } } } });
    assert.equal(routeModel(task('gemini', 'flash'), config), 'gemini-2.5-flash');
    assert.equal(routeModel(task('gemini', 'cheap'), config), 'gemini-2.5-flash-lite');
    assert.equal(routeModel(task('gemini', null, 'critical'), config), 'gemini-2.5-pro', 'models per priority may use an alias');
    assert.equal(routeModel(task('gemini', 'gemini-3.8-flash'), config), 'gemini-3.8-flash');
    assert.equal(routeModel(task('claude', null, 'critical'), config), 'opus', 'Claude Code resolves its own aliases');
    assert.equal(routeModel(task('codex', null), config), null);
  });
});

describe('turn events (per-response tokens)', () => {
  const turns = (events: AgentEvent[]) => events.flatMap((e) => (e.type === 'turn' ? [e] : []));

  it('Claude: a message split over several lines counts once; a grown output count adds only the difference', () => {
    const p = new ClaudeStreamParser();
    const line = (id: string, usage: object, block: object) =>
      JSON.stringify({ type: 'assistant', message: { id, model: 'claude-sonnet-5', content: [block], usage }, session_id: 's' });
    const u = { input_tokens: 100, cache_read_input_tokens: 50, cache_creation_input_tokens: 10, output_tokens: 5 };
    const a = turns(p.push(line('m1', u, { type: 'text', text: 'hi' })).events);
    const b = turns(p.push(line('m1', u, { type: 'tool_use', id: 't1', name: 'Bash', input: { command: 'ls' } })).events);
    const c = turns(p.push(line('m1', { ...u, output_tokens: 25 }, { type: 'text', text: 'more' })).events);
    const d = turns(p.push(line('m2', { input_tokens: 7, output_tokens: 3 }, { type: 'text', text: 'next' })).events);
    assert.deepEqual(a, [{ type: 'turn', model: 'claude-sonnet-5', usage: { inputTokens: 100, outputTokens: 5, cachedInputTokens: 50, cacheWriteTokens: 10 } }]);
    assert.deepEqual(b, [], 'the same usage repeated on the next line of the message');
    assert.deepEqual(c.map((e) => e.usage), [{ inputTokens: 0, outputTokens: 20, cachedInputTokens: 0, cacheWriteTokens: 0 }]);
    assert.deepEqual(d.map((e) => e.usage.inputTokens), [7]);
  });

  it('Codex: turn.completed sums over the thread, so each turn reports the difference, cached apart', () => {
    const p = new CodexStreamParser();
    const done = (input: number, cached: number, output: number) =>
      JSON.stringify({ type: 'turn.completed', usage: { input_tokens: input, cached_input_tokens: cached, output_tokens: output } });
    const first = turns(p.push(done(240, 40, 20)).events);
    const second = turns(p.push(done(360, 100, 30)).events);
    assert.deepEqual(first.map((e) => e.usage), [{ inputTokens: 200, cachedInputTokens: 40, outputTokens: 20 }]);
    assert.deepEqual(second.map((e) => e.usage), [{ inputTokens: 60, cachedInputTokens: 60, outputTokens: 10 }]);
  });
});

describe('the runners a dispatcher makes (createRunners)', () => {
  it("say what the dispatcher reads of them before their code is loaded: resume, the command's own work, remote work", () => {
    const config = parseConfig({ remotes: { peer: { url: 'https://peer.example/' } } });
    const runners = createRunners(config, projectPaths('/tmp/agentq-no-such-project'), {});
    const traits = (name: string) => {
      const r = runners.get(name)!;
      return { canResume: r.canResume === true, ownProcessIsWork: r.ownProcessIsWork === true, worksRemotely: r.worksRemotely === true };
    };
    assert.deepEqual(traits('claude'), { canResume: true, ownProcessIsWork: false, worksRemotely: false });
    assert.deepEqual(traits('codex'), { canResume: true, ownProcessIsWork: false, worksRemotely: false });
    assert.deepEqual(traits('gemini'), { canResume: true, ownProcessIsWork: false, worksRemotely: false });
    assert.deepEqual(traits('openai'), { canResume: false, ownProcessIsWork: false, worksRemotely: false });
    assert.deepEqual(traits('command'), { canResume: false, ownProcessIsWork: true, worksRemotely: false });
    // Delegations are watched by the remote's own queue: no stall watch here.
    assert.deepEqual(traits('a2a'), { canResume: true, ownProcessIsWork: false, worksRemotely: true });
    assert.deepEqual(traits('a2a:peer'), { canResume: true, ownProcessIsWork: false, worksRemotely: true });
  });
});

describe('agent defaults', () => {
  it("an agent config.yaml does not name has the settings of one it names with no keys (agentConfig without the schema)", () => {
    const config = parseConfig({ agents: { codex: {} } });
    assert.deepEqual(agentConfig(config, 'gemini'), config.agents.codex);
    assert.equal(agentConfig(config, 'gemini').rate_limit_backoff, 60_000);
    assert.equal(agentConfig(config, 'gemini').rate_limit_backoff_max, 3_600_000);
    agentConfig(config, 'gemini').args.push('--changed');
    assert.deepEqual(agentConfig(config, 'gemini').args, [], 'a new object each time');
  });
});
