/**
 * Runs a `command:` notification target (a hook): argv without a shell (a string command is
 * `sh -c` argv, see `commandArgv`), in its own process group, the event as JSON on stdin,
 * agentq's environment without its own secrets and settings (`AGENTQ_OWN_ENV`: never
 * `AGENTQ_TOKEN`) plus the event's `AGENTQ_*` variables.
 */
import { spawn } from 'node:child_process';
import { AGENTQ_OWN_ENV } from '../agents/agent-env.ts';
import type { SendResult } from '../server/callbacks.ts';

/** Longest stderr (else stdout) excerpt quoted in a failed hook's error, characters. */
const OUTPUT_EXCERPT = 300;

/**
 * The environment of a hook: `base` without {@link AGENTQ_OWN_ENV} (agentq's token, store URL,
 * agent CLI paths) and without undefined values, then `vars` over it. Pure.
 */
export function hookEnv(base: Record<string, string | undefined>, vars: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(base)) if (value !== undefined && !AGENTQ_OWN_ENV.includes(name)) env[name] = value;
  return { ...env, ...vars };
}

/**
 * Runs `argv` in `cwd` with `env`, writes `stdin` and closes it, and waits for it to exit.
 * Exit code 0 is delivered; another code or a signal is a retryable error quoting the end of
 * its stderr (else stdout); a program that cannot be started (ENOENT, EACCES) is final.
 * `signal` (time limit, shutdown) kills its process group (SIGKILL).
 */
export function runHook(argv: readonly string[], o: { stdin: string; env: Record<string, string>; cwd: string; signal: AbortSignal }): Promise<SendResult> {
  return new Promise((resolve) => {
    const [file, ...args] = argv;
    let output = { stdout: '', stderr: '' };
    const keep = (which: 'stdout' | 'stderr') => (d: Buffer) => {
      output = { ...output, [which]: (output[which] + d.toString('utf8')).slice(-4 * OUTPUT_EXCERPT) };
    };
    let settled = false;
    const done = (r: SendResult) => {
      if (settled) return;
      settled = true;
      o.signal.removeEventListener('abort', kill);
      resolve(r);
    };
    const child = spawn(file!, args, { cwd: o.cwd, env: o.env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const kill = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    o.signal.addEventListener('abort', kill, { once: true });
    if (o.signal.aborted) kill();
    child.stdout.on('data', keep('stdout'));
    child.stderr.on('data', keep('stderr'));
    child.stdin.on('error', () => {}); // a hook that does not read its stdin (EPIPE) is fine
    child.stdin.end(o.stdin);
    child.on('error', (err: NodeJS.ErrnoException) => {
      const final = err.code === 'ENOENT' || err.code === 'EACCES';
      done({ ok: false, error: `${file}: ${err.message}`, retryable: !final });
    });
    // 'exit', not 'close': a background child that keeps the pipes open must not hold the delivery.
    child.on('exit', (code, sig) => {
      child.stdout.destroy();
      child.stderr.destroy();
      if (code === 0) return done({ ok: true });
      const said = (output.stderr.trim() || output.stdout.trim()).slice(-OUTPUT_EXCERPT);
      const how = code === null ? `killed by ${sig ?? 'a signal'}` : `exit code ${code}`;
      done({ ok: false, error: `command ${how}${said ? `: ${said}` : ''}`, retryable: true });
    });
  });
}
