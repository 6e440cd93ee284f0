/**
 * The runner contract for Claude Code: the REAL `claude` CLI against the scripted fake
 * Anthropic API (one server for the file). The CLI cannot be told a reset time offline
 * (only subscription accounts get `rate_limit_event`s), so `resetAt` is not checked.
 */
import { ClaudeRunner } from '../../src/agents/claude/claude-runner.ts';
import { CLAUDE_BIN, claudeEnv } from '../fixtures/claude-env.ts';
import { startFakeAnthropic, type FakeAnthropic, type Rule, type Turn } from '../fixtures/fake-anthropic.ts';
import { runnerContract, type Behaviour } from './runner.contract.ts';

let fake: FakeAnthropic;
const rules: Rule[] = [];
const runner = new ClaudeRunner({ command: [CLAUDE_BIN], graceMs: 1500 });

function turnsFor(behaviour: Behaviour): Turn[] {
  switch (behaviour.kind) {
    case 'answer':
      return [{ text: behaviour.text }];
    case 'slow':
      return [{ text: behaviour.text, delayMs: behaviour.delayMs }];
    case 'rate_limit':
      return [{ error: { status: 429 }, times: 'always' }];
    case 'auth_failure':
      return [{ error: { status: 401 }, times: 'always' }];
    case 'failure':
      return [{ error: { status: 500, message: 'scripted server error' }, times: 'always' }];
    case 'missing_command':
      return [];
  }
}

runnerContract('claude', {
  capabilities: {
    process: true,
    reportsSession: true,
    reportsTokens: true,
    reportsCost: true,
    rateLimits: true,
    parsesResetAt: false,
    authFailures: true,
    failureRetryable: true,
  },
  async start() {
    fake = await startFakeAnthropic();
  },
  stop: () => fake.close(),
  prepare(behaviour, base, sandbox) {
    rules.push({ match: base.prompt, turns: turnsFor(behaviour) });
    fake.setRules([...rules]);
    // A 500 is retried 10 times over minutes unless CLAUDE_CODE_MAX_RETRIES says otherwise.
    const extra: Record<string, string> = behaviour.kind === 'failure' ? { CLAUDE_CODE_MAX_RETRIES: '0' } : {};
    return {
      runner: behaviour.kind === 'missing_command' ? new ClaudeRunner({ command: [behaviour.command] }) : runner,
      request: { ...base, model: 'sonnet', task: { ...base.task, agent: 'claude' }, env: claudeEnv(fake.url, sandbox.config, extra) },
    };
  },
  // The init line (session) comes before the first API request.
  isMidRun: ({ events }) => events.some((e) => e.type === 'session'),
});
