/**
 * The runner contract for the Codex CLI: the REAL `codex` against the scripted fake OpenAI
 * Responses API (one server for the file). Codex reports tokens but no cost.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CodexRunner } from '../../src/agents/codex/codex-runner.ts';
import { CODEX, resolveAgentCommand } from '../../src/agents/resolve-command.ts';
import { codexProviderArgs, startFakeOpenAI, type FakeOpenAI, type Rule, type Turn } from '../fixtures/fake-openai.ts';
import { runnerContract, type Behaviour } from './runner.contract.ts';

const CODEX_BIN = resolveAgentCommand(CODEX, { env: {}, projectDir: process.cwd() });
let fake: FakeOpenAI;
const rules: Rule[] = [];

function turnsFor(behaviour: Behaviour): Turn[] {
  switch (behaviour.kind) {
    case 'answer':
      return [{ text: behaviour.text }];
    case 'slow':
      return [{ text: behaviour.text, delayMs: behaviour.delayMs }];
    case 'rate_limit':
      // A usage limit states its reset; codex prints it as "try again at <local time>".
      return behaviour.resetAt === null
        ? [{ error: { status: 429, headers: { 'retry-after': '20' } }, times: 'always' }]
        : [{ error: { status: 429, body: { error: { type: 'usage_limit_reached', message: 'limit', resets_at: Math.floor(behaviour.resetAt / 1000) } } }, times: 'always' }];
    case 'auth_failure':
      return [{ error: { status: 401 }, times: 'always' }];
    case 'failure':
      return [{ error: { status: 500 }, times: 'always' }];
    case 'missing_command':
      return [];
  }
}

runnerContract('codex', {
  capabilities: {
    process: true,
    reportsSession: true,
    reportsTokens: true,
    reportsCost: false,
    rateLimits: true,
    parsesResetAt: true,
    authFailures: true,
    failureRetryable: true,
  },
  async start() {
    fake = await startFakeOpenAI();
  },
  stop: () => fake.close(),
  prepare(behaviour, base, sandbox) {
    rules.push({ match: base.prompt, turns: turnsFor(behaviour) });
    fake.setRules([...rules]);
    // A 500 costs 30 requests over ~26 s with codex's default retries; turn them off for it.
    const retries = behaviour.kind === 'failure' ? { request: 0, stream: 0 } : undefined;
    const command = behaviour.kind === 'missing_command' ? [behaviour.command] : CODEX_BIN;
    const codexHome = join(sandbox.config, 'codex-home');
    mkdirSync(codexHome, { recursive: true });
    return {
      runner: new CodexRunner({ command, graceMs: 1000, extraArgs: codexProviderArgs(fake.baseUrl, { retries }) }),
      request: {
        ...base,
        model: 'gpt-5.5',
        task: { ...base.task, agent: 'codex' },
        env: { ...base.env, HOME: sandbox.config, CODEX_HOME: codexHome, FAKE_OPENAI_API_KEY: 'test-key' },
      },
    };
  },
  // thread.started (session) comes before the first API request.
  isMidRun: ({ events }) => events.some((e) => e.type === 'session'),
});
