/** A real `agentq serve` child process for the API benches (bench/api-throughput.ts, bench/sse-fanout.ts). */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { AGENTQ } from '../test/fixtures/project.ts';

/** A running `bin/agentq serve --port 0` on loopback, without a token. */
export interface ServeProcess {
  child: ChildProcess;
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** The last ~64 KiB of its stdout and stderr, for showing a failed run. */
  output(): string;
  /** Resident set size of the server process in bytes (`/proc/PID/status` VmRSS, else GET /metrics). */
  rssBytes(): Promise<number>;
  /** SIGTERM, then waits for the exit (SIGKILL after `graceMs`, default 15,000); resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

const KEEP_OUTPUT = 64 * 1024;

/**
 * Starts `bin/agentq serve --project ROOT --port 0` and waits for its
 * "agentq serve: listening on URL" line.
 * @throws Error when it exits (or prints nothing) before listening within `timeoutMs` (default 30,000)
 */
export function startServe(root: string, env: Record<string, string | undefined> = {}, timeoutMs = 30_000): Promise<ServeProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(AGENTQ, ['serve', '--project', root, '--port', '0'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let listening = false;
    const keep = (d: Buffer) => {
      out += d.toString('utf8');
      if (out.length > 2 * KEEP_OUTPUT && listening) out = out.slice(-KEEP_OUTPUT);
    };
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`agentq serve did not listen within ${timeoutMs} ms: ${out}`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.stderr!.on('data', keep);
    child.stdout!.on('data', (d: Buffer) => {
      keep(d);
      if (listening) return;
      const m = /agentq serve: listening on (http:\/\/\S+)/.exec(out);
      if (!m) return;
      listening = true;
      clearTimeout(timer);
      const url = m[1]!;
      resolve({
        child,
        url,
        output: () => out.slice(-KEEP_OUTPUT),
        rssBytes: async () => {
          try {
            const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
            const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
            if (kb) return Number(kb[1]) * 1024;
          } catch {
            // not Linux: ask the server
          }
          const text = await (await fetch(`${url}/metrics`)).text();
          const v = /^agentq_process_resident_memory_bytes\s+(\S+)/m.exec(text);
          if (!v) throw new Error('no RSS: neither /proc nor agentq_process_resident_memory_bytes in /metrics');
          return Number(v[1]);
        },
        stop: async (graceMs = 15_000) => {
          if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
          child.kill('SIGTERM');
          const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
          const code = await exited;
          clearTimeout(kill);
          return code;
        },
      });
    });
    void exited.then((code) => {
      clearTimeout(timer);
      if (!listening) reject(new Error(`agentq serve exited ${code} before listening: ${out}`));
    });
  });
}

/** "12.3 MiB". */
export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
