/**
 * The `command` runner with real processes: prompt on stdin, stdout as result, argv vs
 * `sh -c`, default command, exit-code and signal reasons, no command configured. Spawn
 * failure, timeout, cancel and the env tag are in the runner contract
 * (test/contract/command-runner.test.ts).
 */
import { makeTask } from '../fixtures/specs.ts';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CommandRunner, NO_COMMAND_REASON, commandArgv } from '../../src/agents/command/command-runner.ts';
import { emptyStats, type RunRequest } from '../../src/agents/runner.ts';
import type { CommandSpec, Task } from '../../src/core/types.ts';
import { stopProcesses } from '../../src/process/process-tree.ts';

const PREFIX = `test-command-${process.pid}-${randomUUID().slice(0, 8)}-`;
const tmpRoot = mkdtempSync(join(tmpdir(), 'agentq-command-'));

after(async () => {
  await stopProcesses((tag) => tag.startsWith(PREFIX), 0);
  rmSync(tmpRoot, { recursive: true, force: true });
});

function fakeTask(command: CommandSpec | null, timeoutMs = 10_000): Task {
  return makeTask({ title: 'Demo', prompt: 'hi', source: 'cli', command, timeoutMs });
}

function makeRequest(command: CommandSpec | null, overrides: Partial<RunRequest> = {}): RunRequest {
  const dir = mkdtempSync(join(tmpRoot, 'run-'));
  const timeoutMs = overrides.deadline !== undefined ? Math.max(0, overrides.deadline - Date.now()) : 10_000;
  return {
    task: fakeTask(command, timeoutMs),
    attemptId: PREFIX + randomUUID(),
    prompt: 'hello\nworld\n',
    model: null,
    cwd: dir,
    env: { ...process.env },
    deadline: Date.now() + timeoutMs,
    stdoutLog: join(dir, 'stdout.log'),
    stderrLog: join(dir, 'stderr.log'),
    signal: new AbortController().signal,
    ...overrides,
  };
}

const runner = new CommandRunner({ graceMs: 300 });

describe('CommandRunner', () => {
  it('is named command', () => {
    assert.equal(runner.name, 'command');
  });

  it('argv command: prompt on stdin, stdout (trailing whitespace trimmed) is the result', async () => {
    const outcome = await runner.run(makeRequest(['cat']));
    assert.deepEqual(outcome, { kind: 'completed', result: 'hello\nworld', exitCode: 0, stats: emptyStats() });
  });

  it('argv command runs without a shell', async () => {
    const outcome = await runner.run(makeRequest(['echo', '$HOME; exit 3']));
    assert.equal(outcome.kind, 'completed');
    assert.equal(outcome.kind === 'completed' && outcome.result, '$HOME; exit 3');
  });

  it('string command runs via sh -c', async () => {
    const outcome = await runner.run(makeRequest('tr a-z A-Z | head -n 1; echo "  "; echo ignored >&2'));
    assert.deepEqual(outcome, { kind: 'completed', result: 'HELLO', exitCode: 0, stats: emptyStats() });
  });

  it('uses defaultCommand when the task has none; the task command wins', async () => {
    const withDefault = new CommandRunner({ defaultCommand: 'echo default', graceMs: 300 });
    const a = await withDefault.run(makeRequest(null));
    assert.equal(a.kind === 'completed' && a.result, 'default');
    const b = await withDefault.run(makeRequest(['echo', 'own']));
    assert.equal(b.kind === 'completed' && b.result, 'own');
    const argvDefault = new CommandRunner({ defaultCommand: ['echo', 'argv default'] });
    const c = await argvDefault.run(makeRequest(null));
    assert.equal(c.kind === 'completed' && c.result, 'argv default');
  });

  it('non-zero exit: failed, retryable, reason quotes the last stderr line', async () => {
    const outcome = await runner.run(makeRequest('echo partial; echo first >&2; echo "bad input" >&2; echo >&2; exit 3'));
    assert.deepEqual(outcome, {
      kind: 'failed',
      reason: 'command exited with code 3: bad input',
      retryable: true,
      exitCode: 3,
      stats: emptyStats(),
    });
    const quiet = await runner.run(makeRequest('exit 4'));
    assert.equal(quiet.kind === 'failed' && quiet.reason, 'command exited with code 4');
  });

  it('killed by a signal we did not send: failed, retryable, names the signal', async () => {
    const outcome = await runner.run(makeRequest('kill -KILL $$'));
    assert.deepEqual(outcome, {
      kind: 'failed',
      reason: 'command was killed by signal SIGKILL',
      retryable: true,
      exitCode: null,
      stats: emptyStats(),
    });
  });

  it('no command anywhere: failed, not retryable', async () => {
    for (const command of [null, '', '   ', []] as const) {
      const outcome = await new CommandRunner({}).run(makeRequest(command as CommandSpec | null));
      assert.deepEqual(outcome, { kind: 'failed', reason: NO_COMMAND_REASON, retryable: false, exitCode: null, stats: emptyStats() });
    }
    assert.equal(
      NO_COMMAND_REASON,
      'no command configured: set "command" in the task or agents.command.command in config',
    );
  });

  it('cancel: the reason is the abort reason as given', async () => {
    const controller = new AbortController();
    const request = makeRequest('sleep 300', {
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'spawned') setTimeout(() => controller.abort('dispatcher shutting down'), 50);
      },
    });
    const outcome = await runner.run(request);
    assert.deepEqual(outcome, { kind: 'cancelled', reason: 'dispatcher shutting down', exitCode: null, stats: emptyStats() });
  });

  it('commandArgv maps specs to argv', () => {
    assert.deepEqual(commandArgv('a | b'), ['sh', '-c', 'a | b']);
    assert.deepEqual(commandArgv(['x', 'y z']), ['x', 'y z']);
    assert.equal(commandArgv(null), null);
    assert.equal(commandArgv([]), null);
  });
});
