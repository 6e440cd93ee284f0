/**
 * The runner contract for the `openai` runner (HTTP, no child process) against the scripted
 * fake chat-completions API (one server for the file). No process: no `spawned` event, no
 * env tag, no spawn failure. It reports the completion id as session and tokens, no cost;
 * a 429's `Retry-After` gives `resetAt`.
 */
import { OpenAIRunner } from '../../src/agents/openai/openai-runner.ts';
import { startFakeOpenAIChat, type FakeOpenAIChat, type Rule, type Turn } from '../fixtures/fake-openai-chat.ts';
import { runnerContract, type Behaviour } from './runner.contract.ts';

let fake: FakeOpenAIChat;
let runner: OpenAIRunner;
const rules: Rule[] = [];

function turnsFor(behaviour: Behaviour): Turn[] {
  switch (behaviour.kind) {
    case 'answer':
      return [{ text: behaviour.text }];
    case 'slow':
      return [{ text: behaviour.text, delayMs: behaviour.delayMs }];
    case 'rate_limit': {
      const headers: Record<string, string> =
        behaviour.resetAt === null ? {} : { 'retry-after': String(Math.round((behaviour.resetAt - Date.now()) / 1000)) };
      return [{ error: { status: 429, headers }, times: 'always' }];
    }
    case 'auth_failure':
      return [{ error: { status: 401 }, times: 'always' }];
    case 'failure':
      return [{ error: { status: 500 }, times: 'always' }];
    case 'missing_command':
      throw new Error('the openai runner starts no command');
  }
}

runnerContract('openai', {
  capabilities: {
    process: false,
    reportsSession: true,
    reportsTokens: true,
    reportsCost: false,
    rateLimits: true,
    parsesResetAt: true,
    authFailures: true,
    failureRetryable: true,
  },
  async start() {
    fake = await startFakeOpenAIChat();
    runner = new OpenAIRunner({ baseUrl: fake.baseUrl, apiKeyEnv: 'FAKE_OPENAI_CHAT_KEY' });
  },
  stop: () => fake.close(),
  prepare(behaviour, base) {
    rules.push({ match: base.prompt, turns: turnsFor(behaviour) });
    fake.setRules([...rules]);
    return { runner, request: { ...base, model: 'gpt-test', task: { ...base.task, agent: 'openai' }, env: { ...base.env, FAKE_OPENAI_CHAT_KEY: 'test-key' } } };
  },
  // The fake records a request on arrival, before a slow answer's delay.
  isMidRun: ({ request }) => fake.chatRequests(request.prompt).length > 0,
});
