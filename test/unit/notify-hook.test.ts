/**
 * `command:` notification targets with real processes: stdin and variables reach the hook,
 * exit 0 is delivered, another exit is a retryable error quoting its stderr, a program that
 * cannot start is final, and an abort (time limit) kills the hook's whole process group.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { runHook } from '../../src/notify/hook.ts';
import { pidsWithEnv, waitFor } from '../fixtures/procs.ts';

const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-hook-'));
const run = (argv: string[], stdin = '', env: Record<string, string> = {}, signal = new AbortController().signal) =>
  runHook(argv, { stdin, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, cwd, signal });

describe('hooks', () => {
  it('gets stdin and its variables in the project directory; exit 0 is delivered', async () => {
    const r = await run(['sh', '-c', 'cat > got.json; printf %s "$AGENTQ_EVENT:$PWD" > got.env'], '{"event":"completed"}\n', { AGENTQ_EVENT: 'completed' });
    assert.deepEqual(r, { ok: true });
    assert.equal(fs.readFileSync(path.join(cwd, 'got.json'), 'utf8'), '{"event":"completed"}\n');
    assert.equal(fs.readFileSync(path.join(cwd, 'got.env'), 'utf8'), `completed:${fs.realpathSync(cwd)}`);
  });

  it('another exit code is a retryable error quoting stderr (else stdout); a hook that does not read stdin is fine', async () => {
    assert.deepEqual(await run(['sh', '-c', 'echo nope >&2; exit 4'], 'x'.repeat(1 << 20)), { ok: false, error: 'command exit code 4: nope', retryable: true });
    assert.deepEqual(await run(['sh', '-c', 'echo only stdout; exit 1']), { ok: false, error: 'command exit code 1: only stdout', retryable: true });
  });

  it('a program that cannot start is final', async () => {
    const r = await run(['/no/such/hook-program']);
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.retryable, false);
    assert.match(!r.ok ? r.error : '', /\/no\/such\/hook-program: spawn .*ENOENT/);
  });

  it('an abort kills the process group, children included', async () => {
    const mark = `hook-${process.pid}-${Date.now()}`;
    const controller = new AbortController();
    const result = run(['sh', '-c', 'sleep 60 & sleep 60'], '', { AGENTQ_TEST_HOOK: mark }, controller.signal);
    await waitFor(() => pidsWithEnv('AGENTQ_TEST_HOOK', mark).length >= 2, 10_000, 'the hook and its child');
    controller.abort();
    const r = await result;
    assert.deepEqual(r, { ok: false, error: 'command killed by SIGKILL', retryable: true });
    await waitFor(() => pidsWithEnv('AGENTQ_TEST_HOOK', mark).length === 0, 10_000, 'no process of the hook left');
  });
});
