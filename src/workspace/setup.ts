/**
 * Worktrees that are ready to work in (issue 12):
 *
 * - `.worktreeinclude` (the convention of Claude Code and other tools): a file at the top of
 *   the main checkout, in gitignore syntax, naming files git ignores there that every new
 *   worktree needs (`.env`, a local config). Each new worktree gets a copy of every file that
 *   both matches it and is ignored by git in the main checkout (never a tracked file, never
 *   over a file the worktree has). What was copied is noted in the worktree's own git dir,
 *   and agentq's leftover commit leaves those paths out (see {@link unstageIncluded}).
 * - `workspace_setup`: commands run by `sh -c`, in order, in a fresh worktree before the
 *   agent starts (`npm ci`), as the agent would run (its environment, its process tag, its
 *   log files). Success is noted in the worktree's git dir too, so a retry that reuses the
 *   worktree does not set it up again; a worktree whose setup never succeeded (or ran other
 *   commands) is set up again.
 */
import { constants, realpathSync } from 'node:fs';
import { appendFile, copyFile, lstat, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runAgentProcess, type ProcessRequest } from '../agents/agent-process.ts';
import { AgentQueueError } from '../core/errors.ts';
import { git, gitOut } from './git.ts';

/** The file of patterns, at the top of the main checkout. */
export const INCLUDE_FILE = '.worktreeinclude';
/** In a worktree's own git dir: the paths copied into it (NUL-separated, relative to its top). */
const INCLUDED_NOTE = 'agentq-included';
/** In a worktree's own git dir: the `workspace_setup` commands that succeeded there (JSON). */
const SETUP_NOTE = 'agentq-setup';

/** Lines of setup output quoted in a failure reason (the whole output is in the attempt's logs). */
export const SETUP_TAIL_LINES = 20;
/** Characters of setup output quoted in a failure reason, at most. */
const SETUP_TAIL_CHARS = 2000;

/** The worktree's own git dir (`<common>/worktrees/<name>`), absolute. */
async function ownGitDir(worktree: string): Promise<string> {
  return gitOut(worktree, ['rev-parse', '--absolute-git-dir']);
}

function inside(dir: string, p: string): boolean {
  const rel = path.relative(dir, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

async function lstatOrNull(p: string) {
  try {
    return await lstat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Copies into a new worktree the files of the main checkout that `.worktreeinclude` names:
 * untracked files matching its patterns (git's own matching: `git ls-files --others
 * --ignored --exclude-from`) that git also ignores there (`.gitignore`, `info/exclude`, …),
 * outside `.agent-queue/`. Only regular files are copied, to the same path under `worktree`
 * (directories made, the mode kept); a path the worktree already has is left alone, and so is
 * one whose directory in the worktree leads outside it (a symlink). The copied paths are noted
 * in the worktree's git dir for {@link unstageIncluded}. Caller holds the repository lock.
 * @param top the main checkout's top directory (where `.worktreeinclude` is)
 * @param worktree the new worktree's top directory
 * @returns the copied paths, relative to the top, sorted; empty without a `.worktreeinclude`
 * @throws AgentQueueError('workspace') when git fails; file-system errors as they are
 */
export async function copyIncluded(top: string, worktree: string): Promise<string[]> {
  const patterns = path.join(top, INCLUDE_FILE);
  const file = await lstatOrNull(patterns);
  if (!file?.isFile()) return [];
  const split = (out: string) => out.split('\0').filter(Boolean);
  const matched = split(await gitOut(top, ['ls-files', '-z', '--others', '--ignored', `--exclude-from=${patterns}`]));
  if (matched.length === 0) return [];
  // Ignored by git in the checkout: wholly ignored folders come as `dir/` (no need to list node_modules).
  const ignored = new Set(split(await gitOut(top, ['ls-files', '-z', '--others', '--ignored', '--exclude-standard', '--directory'])));
  const isIgnored = (p: string) => {
    if (ignored.has(p)) return true;
    for (let i = p.indexOf('/'); i !== -1; i = p.indexOf('/', i + 1)) if (ignored.has(p.slice(0, i + 1))) return true;
    return false;
  };
  const realWorktree = realpathSync(worktree);
  const copied: string[] = [];
  for (const rel of matched.sort()) {
    if (!isIgnored(rel) || rel.split('/').includes('.agent-queue')) continue;
    const from = path.join(top, rel);
    if (!(await lstatOrNull(from))?.isFile()) continue;
    const to = path.join(worktree, rel);
    if (await lstatOrNull(to)) continue; // the worktree has it (tracked on the branch, or made already)
    // Never through a symlinked folder leading out of the worktree (checked before any folder is made).
    let existing = path.dirname(to);
    while (!(await lstatOrNull(existing))) existing = path.dirname(existing);
    if (!inside(realWorktree, realpathSync(existing))) continue;
    await mkdir(path.dirname(to), { recursive: true });
    try {
      await copyFile(from, to, constants.COPYFILE_EXCL);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw err;
    }
    copied.push(rel);
  }
  if (copied.length > 0) await writeFile(path.join(await ownGitDir(worktree), INCLUDED_NOTE), `${copied.join('\0')}\0`);
  return copied;
}

/**
 * Takes the paths {@link copyIncluded} copied into `worktree` out of its index again (`git
 * reset` of those paths, literal), so agentq's leftover commit (after `git add -A`) never
 * holds them, even when the agent un-ignored them. A worktree without copies: nothing.
 * @throws AgentQueueError('workspace') when git fails
 */
export async function unstageIncluded(worktree: string): Promise<void> {
  const note = path.join(await ownGitDir(worktree), INCLUDED_NOTE);
  if (!(await lstatOrNull(note))) return;
  await git(worktree, ['--literal-pathspecs', 'reset', '-q', `--pathspec-from-file=${note}`, '--pathspec-file-nul']);
}

/** Whether `commands` already succeeded as the `workspace_setup` of `worktree` (noted by {@link recordSetup}). */
export async function setupSucceeded(worktree: string, commands: readonly string[]): Promise<boolean> {
  try {
    return (await readFile(path.join(await ownGitDir(worktree), SETUP_NOTE), 'utf8')) === JSON.stringify(commands);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Notes in `worktree`'s git dir that `commands` succeeded as its `workspace_setup`. */
export async function recordSetup(worktree: string, commands: readonly string[]): Promise<void> {
  await writeFile(path.join(await ownGitDir(worktree), SETUP_NOTE), JSON.stringify(commands));
}

/** One `workspace_setup` run: the commands and how to run them (see {@link runWorkspaceSetup}). */
export interface SetupRequest extends Omit<ProcessRequest, 'deadline' | 'onEvent'> {
  /** Run by `sh -c`, in order; the first that fails ends the run. */
  commands: readonly string[];
  /** Time limit of each command, ms (config `workspace_setup_timeout`). */
  timeoutMs: number;
  /** SIGTERM → SIGKILL grace when a command is stopped, ms. */
  graceMs?: number;
  /** Called before each command starts (progress). */
  onCommand?: (command: string, index: number) => void;
}

/** How a `workspace_setup` run ended. `ms`: how long it took. */
export type SetupResult =
  | { kind: 'done'; ms: number }
  /** A command exited non-zero, was killed, timed out or could not start: `reason` names it, its exit code and its last output. */
  | { kind: 'failed'; reason: string; exitCode: number | null; ms: number }
  /** `signal` was aborted (cancel, shutdown, lost lease); the command was stopped. */
  | { kind: 'cancelled'; reason: string; exitCode: number | null; ms: number };

/** The last lines of a command's output (stdout and stderr as they came). */
class Tail {
  private lines: string[] = [];
  add(line: string): void {
    this.lines.push(line);
    if (this.lines.length > SETUP_TAIL_LINES) this.lines.shift();
  }
  text(): string {
    const text = this.lines.join('\n').trimEnd();
    return text.length > SETUP_TAIL_CHARS ? `…${text.slice(-SETUP_TAIL_CHARS)}` : text;
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

/**
 * Runs `workspace_setup`: each command by `sh -c` in `cwd`, with `env` and the attempt's
 * process tag, its output appended to the attempt's log files (`stdoutLog`, `stderrLog`)
 * after a line `agentq: workspace_setup 1/2: $ COMMAND` and followed by `agentq:
 * workspace_setup 1/2: exit 0 after 12.3s`. A command is stopped (its whole process tree) past
 * `timeoutMs` or when `signal` aborts. Never throws for a command's failure.
 * @returns `done`, or `failed` with a reason such as `workspace_setup: "npm ci" exited with
 *   code 1 after 3.2s; last output:\n…` (its last {@link SETUP_TAIL_LINES} lines), or `cancelled`
 */
export async function runWorkspaceSetup(request: SetupRequest): Promise<SetupResult> {
  const started = Date.now();
  const total = request.commands.length;
  for (const [i, command] of request.commands.entries()) {
    const label = `workspace_setup ${i + 1}/${total}`;
    const t0 = Date.now();
    await appendFile(request.stdoutLog, `agentq: ${label}: $ ${command}\n`);
    request.onCommand?.(command, i);
    const tail = new Tail();
    let result;
    try {
      result = await runAgentProcess({ ...request, deadline: t0 + request.timeoutMs }, ['sh', '-c', command], {
        graceMs: request.graceMs,
        onStdoutLine: (line) => tail.add(line),
        onStderrLine: (line) => tail.add(line),
      });
    } catch (err) {
      if (!(err instanceof AgentQueueError) || err.code !== 'spawn_failed') throw err;
      return { kind: 'failed', reason: `workspace_setup: ${JSON.stringify(command)}: ${err.message}`, exitCode: null, ms: Date.now() - started };
    }
    const took = Date.now() - t0;
    const how =
      result.stoppedFor === 'timeout'
        ? `timed out after ${seconds(took)} (workspace_setup_timeout ${seconds(request.timeoutMs)})`
        : result.stoppedFor === 'cancel'
          ? `stopped after ${seconds(took)}`
          : result.exitCode !== null
            ? `exited with code ${result.exitCode} after ${seconds(took)}`
            : `was killed by signal ${result.signal ?? 'unknown'} after ${seconds(took)}`;
    await appendFile(request.stdoutLog, `agentq: ${label}: ${result.exitCode === 0 && result.stoppedFor === null ? `exit 0 after ${seconds(took)}` : how}\n`);
    if (result.stoppedFor === 'cancel') {
      return { kind: 'cancelled', reason: `workspace_setup: ${JSON.stringify(command)} ${how}`, exitCode: result.exitCode, ms: Date.now() - started };
    }
    if (result.exitCode !== 0 || result.stoppedFor !== null) {
      const output = tail.text();
      const reason = `workspace_setup: ${JSON.stringify(command)} ${how}${output ? `; last output:\n${output}` : ' (no output)'}`;
      return { kind: 'failed', reason, exitCode: result.exitCode, ms: Date.now() - started };
    }
  }
  return { kind: 'done', ms: Date.now() - started };
}
