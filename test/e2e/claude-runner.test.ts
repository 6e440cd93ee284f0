/**
 * ClaudeRunner with the REAL Claude Code CLI (node_modules/.bin/claude) against the fake
 * Anthropic API: what is particular to Claude Code. What every runner promises (completes,
 * events, env tag, cancel, deadline, 429, 401, 5xx, spawn failure) is in the runner contract,
 * test/contract/claude-runner.test.ts. Here: the session id and model on the wire, model
 * defaults, prompts on stdin, Bash tool calls, 529, 400, side requests, login and root
 * errors, and timeouts while a `setsid` Bash command runs.
 * The cases run concurrently (each has its own prompt, sandbox and attempt id).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { ClaudeRunner } from '../../src/agents/claude/claude-runner.ts';
import { CLAUDE, resolveAgentCommand, resolveAgentCommandWithSource } from '../../src/agents/resolve-command.ts';
import type { AgentEvent, RunOutcome } from '../../src/agents/runner.ts';
import { AgentQueueError } from '../../src/core/errors.ts';
import {
  CLAUDE_BIN,
  makeClaudeSandbox,
  makeRunRequest,
  processesWithEnv,
  type ClaudeSandbox,
  type MakeRunRequestOptions,
} from '../fixtures/claude-env.ts';
import { killWithEnv } from '../fixtures/procs.ts';
import { loadRulesFile, startFakeAnthropic, type FakeAnthropic } from '../fixtures/fake-anthropic.ts';

const RUN = randomUUID().slice(0, 8);
/** A prompt unique to this test file run, so concurrent runs never share a script. */
const P = (name: string) => `e2e-${name}-${RUN}: do the thing`;

let fake: FakeAnthropic;
const sandboxes: ClaudeSandbox[] = [];
const attemptIds: string[] = [];
const runner = new ClaudeRunner({ command: [CLAUDE_BIN], graceMs: 1500 });

before(async () => {
  fake = await startFakeAnthropic({
    rules: [
      { match: P('text'), turns: [{ text: 'Hello from {{model}}' }] },
      { match: P('default-model'), turns: [{ text: 'Default is {{model}}' }] },
      { match: P('dash'), turns: [{ text: 'dash ok' }] },
      {
        match: P('bash'),
        turns: [{ bash: 'echo made-by-claude > made.txt', text: 'Creating it.' }, { text: 'Created made.txt' }],
      },
      { match: P('overloaded'), turns: [{ error: { status: 529 }, times: 'always' }] },
      { match: P('bad-request'), turns: [{ error: { status: 400, message: 'prompt is malformed' } }] },
      { match: P('sleep-early'), turns: [{ bash: 'sleep 300' }, { text: 'slept' }] },
      { match: P('sleep-late'), turns: [{ bash: 'sleep 300' }, { text: 'slept' }] },
      { match: P('side'), turns: [{ text: 'first turn answer' }] },
    ],
  });
});

after(async () => {
  // Belt and braces: nothing tagged with our attempt ids may be left running.
  killWithEnv('AGENTQ_ATTEMPT_ID', ...attemptIds);
  await fake?.close();
  for (const s of sandboxes) s.cleanup();
});

interface Run {
  outcome: RunOutcome;
  events: AgentEvent[];
  elapsedMs: number;
  attemptId: string;
  sandbox: ClaudeSandbox;
}

async function run(
  prompt: string,
  options: Partial<MakeRunRequestOptions> & { runner?: ClaudeRunner; whileRunning?: (attemptId: string) => void } = {},
): Promise<Run> {
  const sandbox = makeClaudeSandbox();
  sandboxes.push(sandbox);
  const events: AgentEvent[] = [];
  const request = makeRunRequest({
    sandbox,
    baseUrl: fake.url,
    prompt,
    model: 'sonnet',
    ...options,
    onEvent: (e) => {
      events.push(e);
      options.onEvent?.(e);
    },
  });
  attemptIds.push(request.attemptId);
  let poll: NodeJS.Timeout | null = null;
  if (options.whileRunning) {
    const watch = options.whileRunning;
    poll = setInterval(() => watch(request.attemptId), 100);
  }
  const start = Date.now();
  try {
    const outcome = await (options.runner ?? runner).run(request);
    return { outcome, events, elapsedMs: Date.now() - start, attemptId: request.attemptId, sandbox };
  } finally {
    if (poll) clearInterval(poll);
  }
}

function explain(r: Run): string {
  const log = (suffix: string) => {
    try {
      return readFileSync(join(r.sandbox.logs, `${r.attemptId}.${suffix}.log`), 'utf8').slice(-2000);
    } catch {
      return '';
    }
  };
  return `outcome=${JSON.stringify(r.outcome)}\nstdout: ${log('stdout')}\nstderr: ${log('stderr')}`;
}

describe('ClaudeRunner with the real CLI', { concurrency: 3 }, () => {
  it('a text answer: the session id and model it reports are the ones on the wire; tokens and turns', async () => {
    const r = await run(P('text'));
    console.log(`  text answer: ${r.elapsedMs} ms`);
    assert.equal(r.outcome.kind, 'completed', explain(r));
    assert.equal(r.outcome.kind === 'completed' && r.outcome.result, 'Hello from claude-sonnet-5');
    assert.equal(r.outcome.exitCode, 0);
    const { stats } = r.outcome;
    assert.match(stats.sessionId ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(stats.model, 'claude-sonnet-5');
    assert.deepEqual([stats.inputTokens, stats.outputTokens, stats.numTurns], [100, 10, 1]);
    // The session id the CLI printed is the one it sent to the API; `sonnet` became the full id.
    const turns = fake.turnRequests(P('text'));
    assert.equal(turns.length, 1);
    assert.equal(turns[0]!.sessionId, stats.sessionId);
    assert.equal(turns[0]!.model, 'claude-sonnet-5');
    assert.equal(turns[0]!.headers['x-api-key'], 'test');
    assert.ok(
      r.events.some((e) => e.type === 'session' && e.sessionId === stats.sessionId && e.model === 'claude-sonnet-5'),
      JSON.stringify(r.events),
    );
    assert.equal(r.events.at(-1)?.type, 'usage', 'usage is reported on the result line');
    // Sessions went to the sandbox's CLAUDE_CONFIG_DIR.
    assert.ok(existsSync(join(r.sandbox.config, 'projects')), 'CLAUDE_CONFIG_DIR/projects exists');
  });

  it('without a model the CLI uses its default and --model is not passed', async () => {
    assert.ok(!runner.buildArgv({ model: null, prompt: 'x' }).includes('--model'));
    const r = await run(P('default-model'), { model: null });
    assert.equal(r.outcome.kind, 'completed', explain(r));
    assert.match(r.outcome.kind === 'completed' ? r.outcome.result : '', /^Default is claude-/);
  });

  it('a prompt starting with "-" (a Markdown list) reaches the API intact', async () => {
    const prompt = `- ${P('dash')}\n- second item`;
    const r = await run(prompt);
    assert.equal(r.outcome.kind, 'completed', explain(r));
    assert.equal(fake.turnRequests(P('dash'))[0]?.firstUserText, prompt);
  });

  it('a Bash tool call really creates the file in the cwd', async () => {
    const r = await run(P('bash'));
    console.log(`  bash tool: ${r.elapsedMs} ms`);
    assert.equal(r.outcome.kind, 'completed', explain(r));
    assert.equal(r.outcome.kind === 'completed' && r.outcome.result, 'Created made.txt');
    const file = join(r.sandbox.project, 'made.txt');
    assert.equal(readFileSync(file, 'utf8'), 'made-by-claude\n');
    assert.equal(r.outcome.stats.numTurns, 2);
    assert.ok(
      r.events.some((e) => e.type === 'progress' && e.text === 'Bash: echo made-by-claude > made.txt'),
      JSON.stringify(r.events),
    );
    // Second request carried the tool result and one assistant message.
    const turns = fake.turnRequests(P('bash'));
    assert.deepEqual(
      turns.map((t) => t.assistantMessages),
      [0, 1],
    );
  });

  it('529 overloaded → rate_limited (cut short, not after the CLI\'s retries)', async () => {
    const r = await run(P('overloaded'));
    assert.equal(r.outcome.kind, 'rate_limited', explain(r));
    assert.match(r.outcome.kind === 'rate_limited' ? r.outcome.reason : '', /API overloaded \(HTTP 529/);
  });

  it('400 → failed (retryable) with the API error text', async () => {
    const r = await run(P('bad-request'));
    console.log(`  400 → ${r.outcome.kind} in ${r.elapsedMs} ms`);
    assert.equal(r.outcome.kind, 'failed', explain(r));
    assert.equal(r.outcome.kind === 'failed' && r.outcome.retryable, true);
    assert.equal(r.outcome.kind === 'failed' && r.outcome.reason, 'API Error: 400 prompt is malformed');
    assert.equal(r.outcome.exitCode, 1);
  });

  it('side requests (session title) get a short answer and do not consume turns', async () => {
    const r = await run(P('side'), { env: { CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '' } });
    assert.equal(r.outcome.kind, 'completed', explain(r));
    assert.equal(r.outcome.kind === 'completed' && r.outcome.result, 'first turn answer');
    const side = fake.requests.filter((q) => q.answer === 'side' && (q.firstUserText ?? '').includes(P('side')));
    assert.equal(side.length, 1, 'one title request');
    assert.equal(side[0]!.hasTools, false);
    assert.match(side[0]!.firstUserText ?? '', /^<session>/);
  });

  it('no API key ("Not logged in · Please run /login") → auth_failed', async () => {
    const r = await run(P('no-key'), { env: { ANTHROPIC_API_KEY: '' } });
    assert.equal(r.outcome.kind, 'auth_failed', explain(r));
    assert.match(r.outcome.kind === 'auth_failed' ? r.outcome.reason : '', /Not logged in/);
  });

  it('as root without IS_SANDBOX: failed, not retryable, with a hint', { skip: process.getuid?.() !== 0 }, async () => {
    const r = await run(P('root'), { env: { IS_SANDBOX: '' } });
    assert.equal(r.outcome.kind, 'failed', explain(r));
    assert.equal(r.outcome.kind === 'failed' && r.outcome.retryable, false);
    assert.match(r.outcome.kind === 'failed' ? r.outcome.reason : '', /root\/sudo.*IS_SANDBOX=1/);
  });
});

describe('ClaudeRunner: timeouts while a setsid Bash command runs (one at a time, timing matters)', () => {
  /**
   * The CLI runs each Bash command under setsid. Before ~3 s, SIGTERM makes the CLI exit at
   * once and leave the command behind; after ~3 s the command is a background task and the
   * CLI carries on and even reports success. Both must end timed_out with nothing left.
   */
  /** How long a one-turn text answer takes on this machine right now, ms (CLI start-up dominates). */
  let startupMs = 1000;
  before(async () => {
    const calibration = await run(P('text'));
    startupMs = calibration.elapsedMs;
  });

  for (const [name, phase] of [
    ['sleep-early', 'before'],
    ['sleep-late', 'after'],
  ] as const) {
    it(`timeout while Bash runs "sleep 300" (${phase} the CLI backgrounds it) → timed_out, no sleep survives`, async () => {
      // The command starts about startupMs after spawn; the CLI backgrounds it ~3 s later.
      let timeoutMs = phase === 'before' ? Math.max(2_000, startupMs + 1_000) : Math.max(5_000, startupMs + 4_500);
      const seen = new Set<number>();
      let firstSeenMs: number | null = null;
      let r: Awaited<ReturnType<typeof run>>;
      // A start slower than the calibration's (a loaded machine) can time out before the sleep
      // began: then again with a second more, up to three runs; the assertions hold for the last.
      for (let tries = 1; ; tries++) {
        const start = Date.now();
        r = await run(P(name), {
          timeoutMs,
          whileRunning: (id) => {
            for (const p of processesWithEnv('AGENTQ_ATTEMPT_ID', id)) {
              if (p.cmdline !== 'sleep 300') continue;
              seen.add(p.pid);
              firstSeenMs ??= Date.now() - start;
            }
          },
        });
        if (seen.size > 0 || tries === 3) break;
        timeoutMs += 1_000;
      }
      const stdout = readFileSync(join(r.sandbox.logs, `${r.attemptId}.stdout.log`), 'utf8');
      console.log(
        `  timeout ${timeoutMs} ms → ${r.outcome.kind} after ${r.elapsedMs} ms ` +
          `(sleep seen at ${firstSeenMs} ms, backgrounded: ${stdout.includes('"task_started"')}, result line: ${stdout.includes('"type":"result"')})`,
      );
      assert.equal(r.outcome.kind, 'timed_out', explain(r));
      assert.match(r.outcome.kind === 'timed_out' ? r.outcome.reason : '', /timed out after/);
      assert.ok(seen.size > 0, 'the sleep 300 command was seen running (tagged with the attempt id)');
      const survivors = processesWithEnv('AGENTQ_ATTEMPT_ID', r.attemptId);
      assert.deepEqual(survivors, [], 'no process tagged with the attempt id is left');
      for (const pid of seen) assert.ok(!isLive(pid), `sleep ${pid} is gone`);
    });
  }
});

function isLive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

describe('resolveAgentCommand (claude)', () => {
  const sandbox = makeClaudeSandbox('agentq-resolve-');
  sandboxes.push(sandbox);

  it('AGENTQ_CLAUDE_COMMAND wins; split on whitespace unless it names a file', () => {
    assert.deepEqual(
      resolveAgentCommand(CLAUDE, { env: { AGENTQ_CLAUDE_COMMAND: 'node  /opt/cli.js --x' }, projectDir: sandbox.project }),
      ['node', '/opt/cli.js', '--x'],
    );
    assert.deepEqual(resolveAgentCommand(CLAUDE, { env: { AGENTQ_CLAUDE_COMMAND: CLAUDE_BIN }, projectDir: sandbox.project }), [
      CLAUDE_BIN,
    ]);
  });

  it('config command: array as is, string split, relative paths against the project', () => {
    assert.deepEqual(
      resolveAgentCommand(CLAUDE, { env: {}, configCommand: ['my claude', '--flag'], projectDir: sandbox.project }),
      ['my claude', '--flag'],
    );
    assert.deepEqual(resolveAgentCommand(CLAUDE, { env: {}, configCommand: './bin/claude -x', projectDir: sandbox.project }), [
      join(sandbox.project, 'bin/claude'),
      '-x',
    ]);
  });

  it('then PATH, then node_modules/.bin (this package)', () => {
    const found = resolveAgentCommandWithSource(CLAUDE, { env: { PATH: '/nonexistent' }, projectDir: sandbox.project });
    assert.equal(found.source, 'package');
    assert.deepEqual(found.command, [CLAUDE_BIN]);
    const binDir = join(CLAUDE_BIN, '..');
    const onPath = resolveAgentCommandWithSource(CLAUDE, { env: { PATH: `/nonexistent:${binDir}` }, projectDir: sandbox.project });
    assert.deepEqual(onPath, { command: [CLAUDE_BIN], source: 'path' });
  });

  it('throws agent_not_found when nothing is found', () => {
    assert.throws(
      () => resolveAgentCommand(CLAUDE, { env: { PATH: '' }, projectDir: sandbox.project, packageDir: sandbox.root }),
      (err: unknown) => err instanceof AgentQueueError && err.code === 'agent_not_found' && /AGENTQ_CLAUDE_COMMAND/.test(err.message),
    );
  });
});

describe('fake-anthropic (the fixture itself)', () => {
  let api: FakeAnthropic;
  before(async () => {
    api = await startFakeAnthropic({
      rules: [
        { match: /fixture-a/, turns: [{ bash: 'ls' }, { text: 'A done on {{model}}' }] },
        { match: 'fixture-err', turns: [{ error: { status: 429, headers: { 'retry-after': '7' } }, times: 2 }, { text: 'after errors' }] },
      ],
      defaultTurns: [{ text: 'default answer' }],
    });
  });
  after(() => api.close());

  const body = (prompt: string, assistantTurns = 0, extra: Record<string, unknown> = {}) => {
    const messages: unknown[] = [
      { role: 'user', content: [{ type: 'text', text: '<system-reminder>ctx</system-reminder>' }, { type: 'text', text: prompt }] },
    ];
    for (let i = 0; i < assistantTurns; i++) {
      messages.push({ role: 'assistant', content: [{ type: 'text', text: 'x' }] });
      messages.push({ role: 'user', content: [{ type: 'text', text: 'more' }] });
    }
    return JSON.stringify({ model: 'claude-test-1', messages, tools: [{ name: 'Bash' }], stream: false, ...extra });
  };
  const post = (payload: string, headers: Record<string, string> = {}) =>
    fetch(`${api.url}/v1/messages?beta=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: payload,
    });

  it('answers HEAD / and 404s unknown paths', async () => {
    assert.equal((await fetch(api.url, { method: 'HEAD' })).status, 200);
    const res = await fetch(`${api.url}/v1/nothing`);
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { type: string }).type, 'error');
  });

  it('non-stream: turn index = assistant messages; {{model}} filled; then "done"', async () => {
    const first = (await (await post(body('fixture-a'))).json()) as { content: { type: string; name?: string; input?: unknown }[]; stop_reason: string };
    assert.equal(first.stop_reason, 'tool_use');
    assert.equal(first.content[0]?.name, 'Bash');
    assert.deepEqual(first.content[0]?.input, { command: 'ls', description: 'Run scripted command' });
    const second = (await (await post(body('fixture-a', 1))).json()) as { content: { text?: string }[]; stop_reason: string };
    assert.deepEqual([second.stop_reason, second.content[0]?.text], ['end_turn', 'A done on claude-test-1']);
    const third = (await (await post(body('fixture-a', 2))).json()) as { content: { text?: string }[] };
    assert.equal(third.content[0]?.text, 'done');
    const unmatched = (await (await post(body('something else'))).json()) as { content: { text?: string }[] };
    assert.equal(unmatched.content[0]?.text, 'default answer');
    const rec = api.turnRequests(/fixture-a/);
    assert.deepEqual(rec.map((r) => [r.assistantMessages, r.answer]), [[0, 'tool_use'], [1, 'text'], [2, 'text']]);
    assert.equal(rec[0]!.firstUserText, 'fixture-a', 'system-reminder blocks are not part of the prompt');
  });

  it('stream: SSE events in order, tool input as input_json_delta, usage in message_delta', async () => {
    const text = await (await post(body('fixture-a', 0, { stream: true }))).text();
    const events = text
      .split('\n\n')
      .filter(Boolean)
      .map((chunk) => {
        const [ev, data] = chunk.split('\n');
        return { event: ev!.replace('event: ', ''), data: JSON.parse(data!.replace('data: ', '')) as Record<string, any> };
      });
    const names = [...new Set(events.map((e) => e.event))];
    assert.deepEqual(names, ['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
    assert.equal(events[0]!.data.message.model, 'claude-test-1');
    const json = events.filter((e) => e.data.delta?.type === 'input_json_delta').map((e) => e.data.delta.partial_json).join('');
    assert.deepEqual(JSON.parse(json), { command: 'ls', description: 'Run scripted command' });
    const delta = events.find((e) => e.event === 'message_delta')!.data;
    assert.equal(delta.delta.stop_reason, 'tool_use');
    assert.equal(delta.usage.output_tokens, 10);
  });

  it('error turns: served `times` per conversation (x-claude-code-session-id), with headers', async () => {
    const h = { 'x-claude-code-session-id': 'conv-1' };
    const a = await post(body('fixture-err'), h);
    assert.equal(a.status, 429);
    assert.equal(a.headers.get('retry-after'), '7');
    assert.deepEqual(((await a.json()) as { error: { type: string } }).error.type, 'rate_limit_error');
    assert.equal((await post(body('fixture-err'), h)).status, 429);
    // Another conversation has its own count.
    assert.equal((await post(body('fixture-err'), { 'x-claude-code-session-id': 'conv-2' })).status, 429);
    const c = await post(body('fixture-err'), h);
    assert.equal(c.status, 200);
    assert.equal(((await c.json()) as { content: { text: string }[] }).content[0]?.text, 'after errors');
  });

  it('side requests (no tools) get JSON for json_schema output, else "OK"; count_tokens answers', async () => {
    const side = await post(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'fixture-a' }], tools: [], output_config: { format: { type: 'json_schema' } } }));
    assert.deepEqual(JSON.parse(((await side.json()) as { content: { text: string }[] }).content[0]!.text), { title: 'Fake session' });
    const count = await fetch(`${api.url}/v1/messages/count_tokens`, { method: 'POST', body: body('x') });
    assert.ok(((await count.json()) as { input_tokens: number }).input_tokens > 0);
  });

  it('delayMs waits before answering; setRules swaps scripts', async () => {
    api.setRules([{ match: 'slow', turns: [{ text: 'late', delayMs: 300 }] }]);
    const start = Date.now();
    const res = (await (await post(body('slow'))).json()) as { content: { text: string }[] };
    assert.equal(res.content[0]?.text, 'late');
    assert.ok(Date.now() - start >= 290);
  });

  it('rules files: substring and regex rules; CLI entry prints the URL and serves', async () => {
    const sandbox = makeClaudeSandbox('agentq-fake-');
    sandboxes.push(sandbox);
    const file = join(sandbox.root, 'rules.json');
    writeFileSync(file, JSON.stringify({ rules: [{ regex: '^hello', flags: 'i', turns: [{ text: 'hi there' }] }, { match: 'bye', turns: [] }], defaultTurns: [{ text: 'dflt' }] }));
    const loaded = loadRulesFile(file);
    assert.ok(loaded.rules[0]!.match instanceof RegExp);
    assert.equal(loaded.rules[1]!.match, 'bye');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(new URL('../fixtures/fake-anthropic.ts', import.meta.url)), '--rules', file, '--quiet'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('\n')) resolve(out.trim());
        });
        child.once('exit', (code) => reject(new Error(`exited ${code}`)));
      });
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const res = await fetch(`${url}/v1/messages`, { method: 'POST', body: body('Hello you') });
      assert.equal(((await res.json()) as { content: { text: string }[] }).content[0]?.text, 'hi there');
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});
