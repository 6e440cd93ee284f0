/**
 * The runner contract for Gemini CLI: the REAL `gemini` against the scripted fake Gemini API
 * (one server for the file). Gemini CLI reports tokens but no cost; a 429 that says
 * "Please retry in Ns." gives `resetAt`.
 */
import { join } from 'node:path';
import { GeminiRunner } from '../../src/agents/gemini/gemini-runner.ts';
import { geminiEnv, startFakeGemini, type FakeGemini, type GeminiRule, type GeminiTurn } from '../fixtures/fake-gemini.ts';
import { runnerContract, type Behaviour } from './runner.contract.ts';

const GEMINI_BIN = join(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'gemini');
let fake: FakeGemini;
const rules: GeminiRule[] = [];
const runner = new GeminiRunner({ command: [GEMINI_BIN], graceMs: 1500 });

function turnsFor(behaviour: Behaviour): GeminiTurn[] {
  switch (behaviour.kind) {
    case 'answer':
      return [{ text: behaviour.text }];
    case 'slow':
      return [{ text: behaviour.text, delayMs: behaviour.delayMs }];
    case 'rate_limit': {
      const retry = behaviour.resetAt === null ? '' : ` Please retry in ${Math.round((behaviour.resetAt - Date.now()) / 1000)}s.`;
      return [{ error: { status: 429, message: `Quota exceeded for metric requests per minute.${retry}` }, times: 'always' }];
    }
    case 'auth_failure':
      return [{ error: { status: 401 }, times: 'always' }];
    case 'failure':
      return [{ error: { status: 500 }, times: 'always' }];
    case 'missing_command':
      return [];
  }
}

runnerContract('gemini', {
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
    fake = await startFakeGemini();
  },
  stop: () => fake.close(),
  prepare(behaviour, base, sandbox) {
    rules.push({ match: base.prompt, turns: turnsFor(behaviour) });
    fake.setRules([...rules]);
    // A 500 is retried 10 times over ~4 minutes unless settings.json says otherwise.
    const maxAttempts = behaviour.kind === 'failure' ? 1 : undefined;
    return {
      runner: behaviour.kind === 'missing_command' ? new GeminiRunner({ command: [behaviour.command] }) : runner,
      request: {
        ...base,
        model: 'gemini-2.5-flash',
        task: { ...base.task, agent: 'gemini' },
        // TMPDIR: the CLI writes a report file per API error to os.tmpdir().
        env: geminiEnv(fake.url, sandbox.config, { maxAttempts, extra: { TMPDIR: sandbox.root } }),
      },
    };
  },
  // The init line (session) comes before the first API request.
  isMidRun: ({ events }) => events.some((e) => e.type === 'session'),
});
