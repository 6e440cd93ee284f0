/**
 * The runner contract for `agent: command` (real processes, no fake API). Behaviours are
 * shell commands; a command has no rate-limit or authentication signal and reports no
 * session, tokens or cost.
 */
import { readFileSync } from 'node:fs';
import { CommandRunner } from '../../src/agents/command/command-runner.ts';
import { runnerContract, type Behaviour } from './runner.contract.ts';

const runner = new CommandRunner({ graceMs: 300 });

/** The task command that plays `behaviour`. */
function commandFor(behaviour: Behaviour): string[] {
  switch (behaviour.kind) {
    case 'answer':
      return ['echo', behaviour.text];
    case 'slow':
      return ['sh', '-c', `echo working; sleep ${Math.ceil(behaviour.delayMs / 1000)}; echo "$0"`, behaviour.text];
    case 'failure':
      return ['sh', '-c', 'echo "scripted failure" >&2; exit 3'];
    case 'missing_command':
      return [behaviour.command];
    case 'rate_limit':
    case 'auth_failure':
      throw new Error(`command runner has no ${behaviour.kind} behaviour`);
  }
}

runnerContract('command', {
  capabilities: {
    process: true,
    reportsSession: false,
    reportsTokens: false,
    reportsCost: false,
    rateLimits: false,
    parsesResetAt: false,
    authFailures: false,
    failureRetryable: true,
  },
  prepare: (behaviour, base) => ({ runner, request: { ...base, task: { ...base.task, agent: 'command', command: commandFor(behaviour) } } }),
  isMidRun: ({ request }) => {
    try {
      return readFileSync(request.stdoutLog, 'utf8').includes('working');
    } catch {
      return false;
    }
  },
});
