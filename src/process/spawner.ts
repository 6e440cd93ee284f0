/**
 * Spawning agents from a small helper process instead of the dispatcher itself.
 *
 * Node spawns with fork + exec (libuv), and the dispatcher's event loop waits for both: the
 * fork copies the dispatcher's page tables and the exec frees the child's copy of them, so a
 * spawn costs in proportion to the dispatcher's memory (tens of MiB with its store, server,
 * caches). The spawner is a bare `node -e` process (a few MiB of its own), started once per
 * dispatcher process: it forks cheaply, on its own CPU time, and relays each child's stdout
 * and stderr bytes, its stdin and its exit over the IPC channel (`serialization: 'advanced'`:
 * bytes as bytes).
 *
 * What stays as with a direct spawn: no shell (argv), the environment given, the child
 * leading its own process group and session (`detached`), its pid (signals and stops go
 * straight from the dispatcher to the pid and group), its stdio being sockets, the spawn
 * error's code (ENOENT, EACCES…). The child's parent is the spawner: it reaps it.
 *
 * If the spawner dies, the children it started lose their pipes (they read EOF, writes fail)
 * and are reported as exited with neither code nor signal; the caller's sweep stops what is
 * left of them. The next spawn starts a new spawner. The spawner exits with its IPC channel,
 * so it never outlives the dispatcher (the agents it started do, as they would a dispatcher
 * crash: the rescuer stops them by their tag).
 */
import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { Readable, Writable } from 'node:stream';

/** How a spawned process ended: its exit code, or the signal that ended it; both null when unknown (its spawner was lost). */
export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A process started by {@link spawnAgent}. */
export interface SpawnedProcess {
  pid: number;
  /** Its stdin: what is written reaches it in order; `end()` gives it EOF. */
  stdin: Writable;
  stdout: Readable;
  stderr: Readable;
  /** Closes its stdin now (ends it without flushing what is pending) and resolves once the pipe is closed. Never rejects. */
  closeStdin(): Promise<void>;
  /** Resolves when the process exited (its output may still be arriving: read `stdout`/`stderr` to their end). */
  exited: Promise<ProcessExit>;
}

/** How to start a process with {@link spawnAgent}. */
export interface SpawnOptions {
  cwd: string;
  /** The whole environment of the process (nothing is inherited). */
  env: Record<string, string>;
  /**
   * Written to its stdin by the spawner as soon as it runs, then its stdin is closed (EOF; `''`
   * closes it at once): sent in the message that starts it, so the process reads it without
   * waiting for another round trip. The returned `stdin` is then already ended. Default: none,
   * stdin stays open for writes through `stdin`.
   */
  input?: string;
}

/** The spawner's program (CommonJS, run by `node -e`): one `message` per request, one per event of each child. */
const SPAWNER_SOURCE = `'use strict';
const { spawn } = require('node:child_process');
const kids = new Map();
const send = (m) => { if (process.connected) process.send(m); };
process.on('disconnect', () => process.exit(0));
process.on('message', (m) => {
  const kid = kids.get(m.id);
  if (m.t === 'spawn') start(m);
  else if (!kid) { if (m.t === 'in-close') send({ t: 'in-closed', id: m.id }); }
  else if (m.t === 'in') kid.stdin.write(m.data);
  else if (m.t === 'in-end') kid.stdin.end();
  else if (m.t === 'in-close') { kid.stdin.destroy(); send({ t: 'in-closed', id: m.id }); }
  else if (m.t === 'drop') { kid.stdout.destroy(); kid.stderr.destroy(); }
});
function start(m) {
  let child;
  const failed = (err) => send({ t: 'error', id: m.id, error: { message: err.message, code: err.code, errno: err.errno, syscall: err.syscall, path: err.path } });
  try {
    child = spawn(m.command, m.args, { cwd: m.cwd, env: m.env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    return failed(err);
  }
  child.once('error', (err) => { if (!kids.has(m.id)) failed(err); });
  child.once('spawn', () => {
    kids.set(m.id, child);
    child.stdin.on('error', () => {});
    send({ t: 'spawned', id: m.id, pid: child.pid });
    if (typeof m.input === 'string') child.stdin.end(m.input);
    for (const [fd, stream] of [[1, child.stdout], [2, child.stderr]]) {
      stream.on('data', (data) => send({ t: 'out', id: m.id, fd, data }));
      stream.on('error', () => {});
      stream.once('close', () => send({ t: 'eof', id: m.id, fd }));
    }
    child.once('exit', (code, signal) => send({ t: 'exit', id: m.id, code, signal }));
    child.once('close', () => kids.delete(m.id));
  });
}
`;

type FromSpawner =
  | { t: 'spawned'; id: number; pid: number }
  | { t: 'error'; id: number; error: { message: string; code?: string; errno?: number; syscall?: string; path?: string } }
  | { t: 'out'; id: number; fd: 1 | 2; data: Uint8Array }
  | { t: 'eof'; id: number; fd: 1 | 2 }
  | { t: 'exit'; id: number; code: number | null; signal: NodeJS.Signals | null }
  | { t: 'in-closed'; id: number };

interface Pending {
  resolve: (p: SpawnedProcess) => void;
  reject: (err: Error) => void;
  /** Its stdin was given with the start (`SpawnOptions.input`): the spawner ends it. */
  inputSent: boolean;
}

interface Live {
  proc: SpawnedProcess;
  stdout: Readable;
  stderr: Readable;
  exit: (e: ProcessExit) => void;
  stdinClosed: Array<() => void>;
  exited: boolean;
  /** Outputs not yet ended (eof) nor dropped, by fd. */
  open: Set<1 | 2>;
}

/** The spawner process of this process, started on first use (see the module comment). */
class Spawner {
  private child: ChildProcess | null = null;
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly live = new Map<number, Live>();

  /** Starts the spawner process now if none runs ({@link startSpawner}); it does not keep this process alive while idle. */
  start(): void {
    this.running();
    this.hold();
  }

  spawn(command: string, args: readonly string[], options: SpawnOptions): Promise<SpawnedProcess> {
    const child = this.running();
    const id = ++this.seq;
    return new Promise<SpawnedProcess>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, inputSent: options.input !== undefined });
      this.hold();
      child.send({ t: 'spawn', id, command, args, cwd: options.cwd, env: options.env, input: options.input });
    });
  }

  private running(): ChildProcess {
    if (this.child !== null) return this.child;
    // A bare node with an empty environment: none of this process's flags, NODE_OPTIONS
    // (loaders, inspectors, heap sizes) or secrets; each agent gets its own env explicitly.
    const child = spawnChild(process.execPath, ['-e', SPAWNER_SOURCE], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      serialization: 'advanced',
      env: {},
    });
    this.child = child;
    child.on('message', (m: FromSpawner) => this.onMessage(m));
    const lost = (): void => this.lost(child);
    child.once('exit', lost);
    child.once('error', lost);
    child.once('disconnect', lost);
    return child;
  }

  /** While a process is starting or running, the spawner keeps this process alive; else it does not. */
  private hold(): void {
    const busy = this.pending.size + this.live.size > 0;
    const child = this.child;
    if (child === null) return;
    if (busy) {
      child.ref();
      child.channel?.ref();
    } else {
      child.unref();
      child.channel?.unref();
    }
  }

  private onMessage(m: FromSpawner): void {
    switch (m.t) {
      case 'spawned': {
        const pending = this.pending.get(m.id);
        if (!pending) return;
        this.pending.delete(m.id);
        const live = this.open(m.id, m.pid, pending.inputSent);
        this.live.set(m.id, live);
        pending.resolve(live.proc);
        return;
      }
      case 'error': {
        const pending = this.pending.get(m.id);
        if (!pending) return;
        this.pending.delete(m.id);
        this.hold();
        pending.reject(Object.assign(new Error(m.error.message), m.error));
        return;
      }
      case 'out':
        this.live.get(m.id)?.[m.fd === 1 ? 'stdout' : 'stderr'].push(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength));
        return;
      case 'eof': {
        const live = this.live.get(m.id);
        if (!live || !live.open.delete(m.fd)) return;
        live[m.fd === 1 ? 'stdout' : 'stderr'].push(null);
        this.settle(m.id, live);
        return;
      }
      case 'exit': {
        const live = this.live.get(m.id);
        if (!live) return;
        live.exited = true;
        live.exit({ code: m.code, signal: m.signal });
        this.settle(m.id, live);
        return;
      }
      case 'in-closed':
        for (const done of this.live.get(m.id)?.stdinClosed.splice(0) ?? []) done();
        return;
    }
  }

  /** Forgets a process once it exited and both its outputs ended (or were dropped). */
  private settle(id: number, live: Live): void {
    if (!live.exited || live.open.size > 0) return;
    this.live.delete(id);
    // Its stdin is closed with it: a close still waiting for the spawner's word is done.
    for (const done of live.stdinClosed.splice(0)) done();
    this.hold();
  }

  private open(id: number, pid: number, inputSent: boolean): Live {
    const send = (m: Record<string, unknown>): void => {
      if (this.child?.connected) this.child.send({ ...m, id });
    };
    const output = (fd: 1 | 2): Readable =>
      new Readable({
        read() {},
        destroy: (err, callback) => {
          callback(err);
          const live = this.live.get(id);
          if (!live || !live.open.delete(fd)) return;
          send({ t: 'drop' });
          this.settle(id, live);
        },
      });
    const stdin = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        send({ t: 'in', data: chunk });
        callback();
      },
      final(callback) {
        if (!inputSent) send({ t: 'in-end' });
        callback();
      },
    });
    if (inputSent) stdin.end();
    let exit: (e: ProcessExit) => void = () => {};
    const exited = new Promise<ProcessExit>((resolve) => (exit = resolve));
    const live: Live = { stdout: output(1), stderr: output(2), exit, stdinClosed: [], exited: false, open: new Set([1, 2]), proc: null as unknown as SpawnedProcess };
    live.proc = {
      pid,
      stdin,
      stdout: live.stdout,
      stderr: live.stderr,
      exited,
      closeStdin: () =>
        new Promise<void>((resolve) => {
          stdin.destroy();
          if (!this.live.has(id) || !this.child?.connected) return resolve();
          live.stdinClosed.push(resolve);
          send({ t: 'in-close' });
        }),
    };
    return live;
  }

  /** The spawner is gone: the starts under way fail, the processes it ran count as exited (code and signal unknown). */
  private lost(child: ChildProcess): void {
    if (this.child !== child) return;
    this.child = null;
    const gone = Object.assign(new Error('the spawner process ended'), { code: 'ESPAWNER' });
    for (const pending of this.pending.values()) pending.reject(gone);
    this.pending.clear();
    for (const live of this.live.values()) {
      for (const done of live.stdinClosed.splice(0)) done();
      for (const fd of live.open) live[fd === 1 ? 'stdout' : 'stderr'].push(null);
      live.open.clear();
      live.exited = true;
      live.exit({ code: null, signal: null });
    }
    this.live.clear();
  }
}

let spawner: Spawner | null = null;

/**
 * Starts this process's spawner now instead of at the first {@link spawnAgent}, when none
 * runs: its start (a `node` process, ~0.1 s) then overlaps the caller's own start-up
 * (`agentq run` loading its modules and opening the store, a dispatcher's `start`) instead of
 * delaying the first agent. An idle spawner does not keep this process alive. Idempotent.
 */
export function startSpawner(): void {
  spawner ??= new Spawner();
  spawner.start();
}

/**
 * Starts `command` with `args` (argv, no shell) in its own process group and session, with
 * exactly `options.env`, in `options.cwd`, through this process's spawner (started on first
 * use; see the module comment). Resolves once it runs.
 * @throws (rejects with) the spawn's error, its `code` as Node gives it (ENOENT: no such
 *   command or working directory, EACCES…), or `ESPAWNER` when the spawner process ended first
 */
export function spawnAgent(command: string, args: readonly string[], options: SpawnOptions): Promise<SpawnedProcess> {
  spawner ??= new Spawner();
  return spawner.spawn(command, args, options);
}
