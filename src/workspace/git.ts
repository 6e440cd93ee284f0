/**
 * Running `git` for the workspace module: argv without a shell, a sanitized environment,
 * a fixed identity for the commits agentq makes, retries when another git process holds
 * a lock file, and a per-repository lock (in-process promise chain + a lock file in the
 * repository's common git dir, so several dispatcher processes on one repository take
 * turns too).
 */
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AGENTQ_OWN_ENV } from '../agents/agent-env.ts';
import { AgentQueueError } from '../core/errors.ts';

/** What a finished git command left. */
export interface GitResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface GitOptions {
  /** Resolve with a non-zero exit instead of throwing. Default false. */
  allowFail?: boolean;
  /** Commit as `agentq <agentq@localhost>` (author and committer). Default false. */
  identity?: boolean;
  /**
   * Kill git (and what it started: ssh, hooks) after this many ms; the result then has code
   * 124 and says so in `stderr`. With it, git runs in a session of its own, without a
   * controlling terminal, so nothing it starts can wait for a password typed there.
   * Default: no limit.
   */
  timeoutMs?: number;
}

/** Name and e-mail of the commits agentq makes itself. */
export const AGENTQ_IDENTITY = { name: 'agentq', email: 'agentq@localhost' } as const;

/** Variables that would point git at another repository than the one `-C` names. */
const REPO_ENV = [
  'GIT_DIR',
  'GIT_WORK_TREE',
  'GIT_INDEX_FILE',
  'GIT_OBJECT_DIRECTORY',
  'GIT_ALTERNATE_OBJECT_DIRECTORIES',
  'GIT_COMMON_DIR',
  'GIT_NAMESPACE',
  'GIT_PREFIX',
];

/** A lock file held by another git process: worth waiting for. */
const LOCK_BUSY = /\.lock'?: File exists|Unable to create '[^']*\.lock'/;
const LOCK_RETRIES = 40;
const LOCK_RETRY_MS = 50;

/** git's environment: agentq's, without agentq's own secrets (the repository's hooks run in it) nor {@link REPO_ENV}. */
function gitEnv(identity: boolean): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of [...REPO_ENV, ...AGENTQ_OWN_ENV]) delete env[k];
  env.LC_ALL = 'C';
  env.LANGUAGE = 'C';
  env.GIT_TERMINAL_PROMPT = '0';
  env.GIT_EDITOR = 'true';
  env.GIT_MERGE_AUTOEDIT = 'no';
  if (identity) {
    env.GIT_AUTHOR_NAME = AGENTQ_IDENTITY.name;
    env.GIT_AUTHOR_EMAIL = AGENTQ_IDENTITY.email;
    env.GIT_COMMITTER_NAME = AGENTQ_IDENTITY.name;
    env.GIT_COMMITTER_EMAIL = AGENTQ_IDENTITY.email;
  }
  return env;
}

/** Exit code of a git run killed for its `timeoutMs` (as timeout(1)). */
const TIMED_OUT = 124;

function runOnce(cwd: string, args: string[], identity: boolean, timeoutMs: number | undefined): Promise<GitResult> {
  return new Promise((resolve, reject) => {
    const detached = timeoutMs !== undefined;
    const child = spawn('git', ['-C', cwd, ...args], { env: gitEnv(identity), stdio: ['ignore', 'pipe', 'pipe'], detached });
    let timedOut = false;
    const timer = detached
      ? setTimeout(() => {
          timedOut = true;
          try {
            process.kill(-child.pid!, 'SIGKILL'); // the whole session: git, ssh, hooks
          } catch {
            child.kill('SIGKILL');
          }
        }, timeoutMs)
      : null;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (timer) clearTimeout(timer);
      const why = e.code === 'ENOENT' ? 'git is not installed (not found on PATH)' : `cannot run git: ${e.message}`;
      reject(new AgentQueueError('workspace', why, { cause: e }));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const stderr = Buffer.concat(err).toString('utf8');
      resolve({
        code: timedOut ? TIMED_OUT : (code ?? (signal ? 128 : 1)),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: timedOut ? `${stderr}\nfatal: timed out after ${timeoutMs} ms` : stderr + (signal ? `\n(killed by ${signal})` : ''),
      });
    });
  });
}

/** One line summary of git's complaint (its `fatal:`/`error:` lines, else its last line). */
export function gitMessage(r: GitResult): string {
  const lines = (r.stderr.trim() || r.stdout.trim()).split('\n').map((l) => l.trim()).filter(Boolean);
  const key = lines.filter((l) => /^(fatal|error):/.test(l));
  return (key.length ? key : lines.slice(-1)).join('; ') || `exit code ${r.code}`;
}

/**
 * Runs `git -C cwd ...args` (no shell, stdin closed). Retries for about 2 s while another
 * git process holds a `*.lock` file. Throws AgentQueueError('workspace', 'git <args>
 * failed: <git's message>') on a non-zero exit unless `allowFail`, and
 * AgentQueueError('workspace') when git cannot be started.
 */
export async function git(cwd: string, args: string[], opts: GitOptions = {}): Promise<GitResult> {
  let r = await runOnce(cwd, args, opts.identity ?? false, opts.timeoutMs);
  for (let i = 0; r.code !== 0 && LOCK_BUSY.test(r.stderr) && i < LOCK_RETRIES; i++) {
    await sleep(LOCK_RETRY_MS + Math.floor(Math.random() * LOCK_RETRY_MS));
    r = await runOnce(cwd, args, opts.identity ?? false, opts.timeoutMs);
  }
  if (r.code !== 0 && !opts.allowFail) {
    throw new AgentQueueError('workspace', `git ${args.join(' ')} failed (in ${cwd}): ${gitMessage(r)}`);
  }
  return r;
}

/** `git ...` stdout without the trailing newline. Throws like git(). */
export async function gitOut(cwd: string, args: string[], opts: GitOptions = {}): Promise<string> {
  return (await git(cwd, args, opts)).stdout.replace(/\n$/, '');
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------------------
// Per-repository lock

const chains = new Map<string, Promise<void>>();

/** Name of the lock file agentq keeps in a repository's common git dir while it works. */
export const REPO_LOCK_FILE = 'agentq-workspace.lock';
/** Give up waiting for another process's lock after this long, ms. */
const FILE_LOCK_TIMEOUT_MS = 10 * 60_000;

/**
 * Runs `fn` while holding the repository's lock: one holder at a time per `gitCommonDir`
 * in this process (promise chain), and across processes (an O_EXCL lock file
 * `<gitCommonDir>/agentq-workspace.lock` holding `pid host`; a lock whose process is dead
 * on this host is taken over). Not re-entrant. Throws AgentQueueError('workspace') when
 * another live process holds the lock for more than 10 minutes.
 */
export async function withRepoLock<T>(gitCommonDir: string, fn: () => Promise<T>): Promise<T> {
  const prev = chains.get(gitCommonDir) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((r) => (release = r));
  const tail = prev.then(() => mine);
  chains.set(gitCommonDir, tail);
  await prev;
  try {
    const lockFile = join(gitCommonDir, REPO_LOCK_FILE);
    await acquireFileLock(lockFile);
    try {
      return await fn();
    } finally {
      await rm(lockFile, { force: true });
    }
  } finally {
    release();
    if (chains.get(gitCommonDir) === tail) chains.delete(gitCommonDir);
  }
}

async function acquireFileLock(file: string): Promise<void> {
  const host = hostname();
  const started = Date.now();
  for (let delay = 10; ; delay = Math.min(delay * 2, 250)) {
    try {
      const fh = await open(file, 'wx');
      await fh.writeFile(`${process.pid} ${host}\n`);
      await fh.close();
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new AgentQueueError('workspace', `cannot create the lock file ${file}: ${(err as Error).message}`, { cause: err });
      }
    }
    if (await isStale(file, host)) {
      await rm(file, { force: true });
      continue;
    }
    if (Date.now() - started > FILE_LOCK_TIMEOUT_MS) {
      throw new AgentQueueError('workspace', `another agentq process has held ${file} for over 10 minutes (remove it if no agentq is running)`);
    }
    await sleep(delay);
  }
}

/** A lock left by a process that is gone (same host), or unreadable and older than a minute. */
async function isStale(file: string, host: string): Promise<boolean> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return false; // released meanwhile: just try again
  }
  const m = /^(\d+) (.*)$/m.exec(text);
  if (!m) {
    try {
      return Date.now() - (await stat(file)).mtimeMs > 60_000;
    } catch {
      return false;
    }
  }
  if (m[2] !== host) return false;
  const pid = Number(m[1]);
  // Our own pid: the in-process chain lets one holder at a time, so this is a leftover
  // (or a recycled pid of a crashed process).
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
