/**
 * `agentq attach ID` and `agentq release ID`: a person takes a task over by hand — its
 * headless attempt stopped, its agent's session opened interactively in its workspace, in a
 * tmux window when tmux is there, else in this terminal — and hands it back.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AGENTQ_OWN_ENV, agentEnv } from '../agents/agent-env.ts';
import { interactiveSession, type InteractiveSession } from '../agents/interactive.ts';
import { findOnPath } from '../agents/resolve-command.ts';
import type { Config, ProjectPaths } from '../config/config.ts';
import { AgentQueueError, UsageError } from '../core/errors.ts';
import type { Task } from '../core/types.ts';
import { releaseTask, takeOverTask } from '../ops/takeover.ts';
import { branchSlug, defaultWorkspaceMode, openWorkspace } from '../workspace/workspace.ts';
import { withProject, type GlobalOptions } from './commands.ts';

const out = (s: string) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);

/** The tmux session `agentq attach` opens its windows in when it is not run inside tmux. */
export const TMUX_SESSION = 'agentq';

/** Variables a tmux pane sets for itself, kept in the session's environment over agentq's. */
const PANE_OWN_ENV = ['TERM', 'TMUX', 'TMUX_PANE'];

/** Options of `agentq attach`. */
export interface AttachOptions {
  /** `--no-attach` (commander: `attach: false`): open the tmux window, do not attach this terminal; without tmux, print the command instead of running it. */
  attach?: boolean;
  /** `--no-tmux` (commander: `tmux: false`): run the session in this terminal even when tmux is there. */
  tmux?: boolean;
  /** `--tmux-socket NAME`, else `AGENTQ_TMUX_SOCKET`: the tmux server `tmux -L NAME` (its session `agentq`), even inside another tmux. */
  tmuxSocket?: string;
}

/**
 * The tmux socket name of `--tmux-socket` / `AGENTQ_TMUX_SOCKET`; null for none.
 * @throws UsageError naming the flag for an empty name or one with `/` (a name, not a path)
 */
function socketFlag(value: string | undefined, env: Record<string, string | undefined>): string | null {
  const [flag, raw] = value !== undefined ? ['--tmux-socket', value] : ['AGENTQ_TMUX_SOCKET', env.AGENTQ_TMUX_SOCKET];
  if (raw === undefined || (flag === 'AGENTQ_TMUX_SOCKET' && raw === '')) return null;
  if (raw.trim() === '' || raw.includes('/') || /[\0-\x1f]/.test(raw)) throw new UsageError(`${flag}: ${JSON.stringify(raw)} is not a tmux socket name (tmux -L NAME: a name, no "/")`);
  return raw;
}

/**
 * How long `attach` waits for a running task's dispatcher to stop its attempt, ms: two leases
 * (a dead dispatcher's task is rescued after one), its `kill_grace`, and 10 s.
 */
export function takeoverWaitMs(config: Pick<Config, 'lease' | 'kill_grace'>): number {
  return 2 * config.lease + config.kill_grace + 10_000;
}

/** The tmux window name of a task: its name (branch-safe, no `.` or `:`) and id, e.g. `fix-typo-7`. */
export function windowName(task: Pick<Task, 'id' | 'name'>): string {
  return `${branchSlug(task.name).replace(/[.:]/g, '-')}-${task.id}`;
}

/** `'…'` for sh. */
const shQuote = (s: string): string => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/**
 * A sh script that gives the command after it (`sh FILE CMD ARG…`) exactly the environment
 * `env` — every other variable unset but the pane's own (`keep`) — and removes itself, so the
 * agent's environment (keys included) never shows on a command line or stays in tmux's.
 */
export function sessionScript(env: Record<string, string>, keep: readonly string[]): string {
  const names = Object.keys(env).filter((n) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(n) && !keep.includes(n));
  return [
    '# agentq attach: the environment of the session; this file removes itself',
    'rm -f -- "$0"; rmdir -- "${0%/*}" 2>/dev/null',
    `for name in $(awk 'BEGIN { for (k in ENVIRON) print k }'); do`,
    `  case "$name" in ${keep.length ? `${keep.join('|')}|` : ''}*[!A-Za-z0-9_]*|[0-9]*) ;; *) unset "$name" ;; esac`,
    'done',
    ...names.map((n) => `export ${n}=${shQuote(env[n]!)}`),
    'exec "$@"',
    '',
  ].join('\n');
}

/** Runs tmux to completion; throws naming the tmux command when `check` and it fails. */
function tmux(bin: string, args: string[], env: Record<string, string | undefined>, check = true): { code: number | null; stdout: string } {
  const r = spawnSync(bin, args, { env, encoding: 'utf8' });
  if (r.error) throw new AgentQueueError('tmux', `tmux ${args[0] === '-L' ? args.slice(2).join(' ') : args.join(' ')}: ${r.error.message}`);
  if (check && r.status !== 0) throw new AgentQueueError('tmux', `tmux ${args.join(' ')} failed (exit ${r.status}): ${r.stderr.trim()}`);
  return { code: r.status, stdout: r.stdout };
}

/** Waits for a child with inherited stdio; SIGINT and SIGQUIT are the child's (this terminal's ctrl-C goes to it), not agentq's. */
async function runInTerminal(argv: string[], cwd: string, env: Record<string, string>): Promise<number | null> {
  const ignore = () => {};
  process.on('SIGINT', ignore);
  process.on('SIGQUIT', ignore);
  try {
    return await new Promise((resolve, reject) => {
      const child = spawn(argv[0]!, argv.slice(1), { cwd, env, stdio: 'inherit' });
      child.once('error', reject);
      child.once('exit', (code) => resolve(code));
    });
  } finally {
    process.off('SIGINT', ignore);
    process.off('SIGQUIT', ignore);
  }
}

/** The directory the task's attempts run in: the project root in place, else its worktree (opened again as it was, or from its branch). */
async function workspaceOf(task: Task, config: Config, paths: ProjectPaths): Promise<string> {
  const mode = task.workspace ?? config.workspace ?? (await defaultWorkspaceMode(paths.root));
  return (await openWorkspace({ projectRoot: paths.root, taskId: task.id, taskName: task.name, mode })).cwd;
}

/** The session's command line as a person would type it. */
const shown = (s: InteractiveSession) => s.argv.map(shQuote).join(' ');

/**
 * Opens `session` in a tmux window named `name`: inside tmux (`$TMUX`, no socket given), a new
 * window of the current session (switched to, unless `attach` is false); else a window of the
 * session `agentq` on the server `tmux [-L socket]` (created detached when missing), then this
 * terminal attaches to it when `attach` and it is a terminal, or the way to attach is printed.
 * A window of that name already there is selected rather than opened twice.
 */
async function openInTmux(o: { bin: string; socket: string | null; name: string; cwd: string; session: InteractiveSession; env: Record<string, string>; attach: boolean }): Promise<void> {
  const inside = o.socket === null && Boolean(process.env.TMUX);
  const base = o.socket === null ? [] : ['-L', o.socket];
  // tmux's own environment: agentq's settings left out (a new server keeps its starter's environment).
  const clientEnv: Record<string, string | undefined> = { ...process.env };
  for (const k of AGENTQ_OWN_ENV) delete clientEnv[k];
  if (!inside) delete clientEnv.TMUX;
  const target = inside ? '' : `=${TMUX_SESSION}:`;
  const attachLine = `tmux ${[...base, 'attach', '-t', TMUX_SESSION].map(shQuote).join(' ')}`;
  const hasSession = inside || tmux(o.bin, [...base, 'has-session', '-t', `=${TMUX_SESSION}`], clientEnv, false).code === 0;
  const windows = hasSession ? tmux(o.bin, [...base, 'list-windows', ...(inside ? [] : ['-t', `=${TMUX_SESSION}`]), '-F', '#{window_name}'], clientEnv).stdout.split('\n') : [];
  if (windows.includes(o.name)) {
    if (o.attach) tmux(o.bin, [...base, 'select-window', '-t', `${target}=${o.name}`], clientEnv);
    out(`the tmux window ${o.name} is open already${inside ? '' : ` in the tmux session ${TMUX_SESSION}`}: not opened twice`);
  } else {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentq-attach-'));
    const script = path.join(dir, 'session-env.sh');
    fs.writeFileSync(script, sessionScript(o.env, PANE_OWN_ENV), { mode: 0o600 });
    const command = ['-n', o.name, '-c', o.cwd, '--', '/bin/sh', script, ...o.session.argv];
    try {
      if (inside) tmux(o.bin, ['new-window', ...(o.attach ? [] : ['-d']), ...command], clientEnv);
      else if (hasSession) tmux(o.bin, [...base, 'new-window', '-t', target, ...command], clientEnv);
      else tmux(o.bin, [...base, 'new-session', '-d', '-s', TMUX_SESSION, ...command], clientEnv);
    } catch (err) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    out(`opened the tmux window ${o.name}${inside ? ' in this tmux session' : ` in the tmux session ${TMUX_SESSION}`}: ${shown(o.session)}`);
  }
  if (inside) return;
  if (o.attach && process.stdout.isTTY && process.stdin.isTTY) {
    tmux(o.bin, [...base, 'select-window', '-t', `${target}=${o.name}`], clientEnv);
    await runInTerminal([o.bin, ...base, 'attach-session', '-t', `=${TMUX_SESSION}`], o.cwd, clientEnv as Record<string, string>);
  } else {
    out(`attach with: ${attachLine}   (window ${o.name})`);
  }
}

/**
 * `agentq attach ID`: takes a running or blocked task over by hand ({@link takeOverTask}: a
 * running attempt is stopped by its dispatcher and does not count; the task waits `blocked`,
 * taken over, its worktree kept), then opens its agent's session interactively in its
 * workspace ({@link interactiveSession}: `claude --resume SESSION`, `codex resume SESSION`,
 * `gemini --resume SESSION`, else a shell) with the agent's environment (as its attempts
 * get it, `agent_env` and `agents.<name>.env` applied): in a tmux window named after the task
 * when tmux is on PATH (see `openInTmux`; `--tmux-socket`/`AGENTQ_TMUX_SOCKET` picks the server),
 * else (or with `--no-tmux`) in this terminal until it exits. `--no-attach`: the window is
 * opened but this terminal not attached (as when stdout is not a terminal); without tmux, the
 * command is printed instead of run.
 * @returns 0 once the session is open (or, in this terminal, has ended)
 * @throws UsageError for a bad `--tmux-socket`; NotFoundError for an unknown task;
 *   AgentQueueError `not_attachable` (see {@link takeOverTask}), `agent_not_found`, `workspace`, `tmux`
 */
export async function attachCommand(g: GlobalOptions, ref: string, o: AttachOptions): Promise<number> {
  const socket = socketFlag(o.tmuxSocket, process.env);
  const attach = o.attach !== false;
  return withProject(g, async ({ store, paths, config }) => {
    const { task, how } = await takeOverTask(store, ref, {
      now: Date.now,
      waitMs: takeoverWaitMs(config),
      root: fs.realpathSync(paths.root),
      onStopping: (t) => out(`stopping the headless attempt of #${t.id} ${t.name} (its dispatcher stops the agent)…`),
    });
    const agent = task.runAgent ?? task.agent;
    out(
      `${how === 'again' ? 'already taken over' : 'taken over'}: #${task.id} ${task.name} is blocked until agentq release ${task.id}${task.stats.sessionId ? ` (${agent} session ${task.stats.sessionId})` : ''}`,
    );
    const cwd = await workspaceOf(task, config, paths);
    const session = interactiveSession(agent, task.stats.sessionId, config, process.env, paths.root);
    if (session.why) out(`${session.why}: opening a shell in its workspace`);
    const env = agentEnv(process.env, config, agent, { AGENTQ_TASK_ID: String(task.id), AGENTQ_TASK_NAME: task.name });
    out(`workspace: ${cwd}`);
    const tmuxBin = o.tmux === false ? null : findOnPath('tmux', process.env.PATH ?? '');
    const done = `when you are done: agentq release ${task.id} [--note "what you did, what is left"]`;
    if (tmuxBin) {
      await openInTmux({ bin: tmuxBin, socket, name: windowName(task), cwd, session, env, attach });
      out(done);
      return 0;
    }
    if (!attach) {
      out(`open it yourself: cd ${shQuote(cwd)} && ${shown(session)}\n${done}`);
      return 0;
    }
    out(`${o.tmux === false ? '' : 'tmux not found: '}running ${shown(session)} in this terminal`);
    const code = await runInTerminal(session.argv, cwd, env);
    out(`the session ended${code ? ` (exit ${code})` : ''}; ${done}`);
    return 0;
  });
}

/**
 * `agentq release ID [--note TEXT]`: hands a task taken over by hand back ({@link releaseTask}):
 * queued again, its next attempt resuming the agent's session with the note (or the default one).
 * @throws UsageError for an empty `--note`; NotFoundError; AgentQueueError `not_taken_over`
 */
export async function releaseCommand(g: GlobalOptions, ref: string, o: { note?: string }): Promise<number> {
  return withProject(g, async ({ store }) => {
    const task = await releaseTask(store, ref, o.note, Date.now());
    out(`released #${task.id} ${task.name}: queued again${task.stats.sessionId ? `; its next attempt resumes session ${task.stats.sessionId}` : ''} with ${o.note === undefined ? 'the default note' : 'your note'}`);
    return 0;
  });
}
