/**
 * `agentq` entry point: argument parsing (commander), error → exit code mapping.
 * Errors print one line on stderr (a stack trace only with --verbose); usage errors print
 * the usage too and exit 2.
 */
import { Command, CommanderError, Option } from 'commander';
import { ConfigError, UsageError } from '../core/errors.ts';
import { PRIORITIES, TASK_STATES } from '../core/types.ts';
import { DELEGATION_STATES } from '../core/delegation.ts';
import { isTransientStoreError } from '../store/store.ts';
import type { AttachOptions } from './attach.ts';
import type { GlobalOptions, ListOptions } from './commands.ts';

/** The commands' code (commands.ts), loaded by {@link main}'s `act` when a command runs, not for `--help` or a usage error. */
type Commands = typeof import('./commands.ts');

/** The help of `run -c` and `serve -c`: per process, unlike config `concurrency`. */
const CONCURRENCY_HELP =
  "this process's own limit of running tasks (default: config local_concurrency, else none); config concurrency is the store-wide limit across every dispatcher on the store, and caps it";

export async function main(argv: string[]): Promise<number> {
  let code = 0;
  const program = new Command('agentq')
    .description('A durable queue and dispatcher for AI coding agents.')
    .option('-p, --project <dir>', 'project directory', '.')
    .option('--store <url>', 'store URL (default: store in config.yaml, else sqlite:.agent-queue/agentq.db)')
    .option('-v, --verbose', 'print stack traces on errors')
    .exitOverride()
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  const g = () => program.opts<GlobalOptions>();
  /** A repeatable flag's values, in order. */
  const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];
  /**
   * A command's action: `fn` gets the commands module, imported at the first action (so
   * `--help` loads commander only; each command imports its heavy parts, the dispatcher,
   * Fastify, pg…, itself when it runs), then the action's own arguments.
   */
  const act =
    <A extends unknown[]>(fn: (c: Commands, ...args: A) => Promise<number>) =>
    async (...args: A) => {
      code = await fn(await import('./commands.ts'), ...args);
    };

  program
    .command('init')
    .argument('[dir]', 'project directory', undefined)
    .description('create .agent-queue/ (inbox, done, failed, logs, config.yaml)')
    .action(act(async (c, dir?: string) => c.initCommand(dir ?? g().project)));
  program
    .command('run')
    .description('take in the inbox and dispatch tasks until SIGINT/SIGTERM')
    .option('--once', 'run everything runnable, then exit: 0 if all completed, 1 otherwise (or when inbox entries were refused or tasks are left queued)')
    .option('-c, --concurrency <n>', CONCURRENCY_HELP)
    .option('--max-wait <duration>', 'with --once: longest wait for queued tasks that cannot run yet (run_at, backoff, paused agent); past it, exit 1 listing them (default: 1h)')
    .option('--label <label>', "this dispatcher's label, repeatable: tasks with runs_on run only where every label they list is held (replaces config labels)", collect)
    .action(act(async (c, o: { once?: boolean; concurrency?: string; maxWait?: string; label?: string[] }) => c.runCommand(g(), o)));
  program
    .command('serve')
    .description('run the dispatcher and the HTTP API (and the dashboard) until SIGINT/SIGTERM')
    .option('--host <host>', 'address to listen on; other than loopback needs AGENTQ_TOKEN (default: config serve.host, 127.0.0.1)')
    .option('--port <port>', 'TCP port, 0 for any free one (default: config serve.port, 8765)')
    .option('-c, --concurrency <n>', CONCURRENCY_HELP)
    .option('--label <label>', "this dispatcher's label, repeatable, as for run (replaces config labels)", collect)
    .action(act(async (c, o: { host?: string; port?: string; label?: string[]; concurrency?: string }) => c.serveCommand(g(), o)));
  program
    .command('mcp')
    .description('serve the MCP tools submit_task, list_tasks, get_task, answer_task, cancel_task over stdio (for agents and MCP clients)')
    .action(act(async (c) => c.mcpCommand(g())));
  program
    .command('submit')
    .argument('[file]', 'a task file (NAME.md) to copy into the inbox')
    .description('add a task: copy FILE into the inbox, or write one from --prompt')
    .option('--title <title>', 'task title')
    .option('--prompt <text>', 'the prompt')
    .option('--name <name>', 'task name (file name without .md)')
    .addOption(new Option('--priority <p>', 'priority').choices(PRIORITIES))
    .option('--agent <agent>', 'agent (claude, codex, gemini, openai, command, a2a, auto)')
    .option('--remote <remote>', 'for --agent a2a: a name of config remotes, or the URL of an A2A agent')
    .option('--model <model>', 'model, overriding routing')
    .option('--depends-on <names...>', 'names of tasks that must complete first')
    .option('--runs-on <label>', 'a label the dispatcher must hold to run it (runs_on), repeatable: it runs only where every one is held', collect)
    .option('--timeout <duration>', 'per-attempt timeout, e.g. 90s, 30m')
    .action(act(async (c, file: string | undefined, o) => c.submitCommand(g(), file, o)));
  program
    .command('list')
    .description('list tasks, newest first: the newest 100, or --limit N, or --all (read and printed page by page)')
    .addOption(new Option('--state <state>', 'only tasks in this state').choices(TASK_STATES))
    .option('--limit <n>', 'the newest N tasks (default 100)')
    .option('--all', 'every task')
    .option('--json', 'output one JSON array')
    .option('--jsonl', 'output one JSON object per line')
    .action(act(async (c, o: ListOptions) => c.listCommand(g(), o)));
  program
    .command('delegations')
    .description('the delegation ledger: tasks handed to remote A2A agents, newest first, with result preview or error')
    .addOption(new Option('--state <state>', 'only delegations in this state').choices(DELEGATION_STATES))
    .option('--limit <n>', 'at most this many (default 100)')
    .option('--json', 'JSON output')
    .action(act(async (c, o: { state?: string; limit?: string; json?: boolean }) => c.delegationsCommand(g(), o)));
  program
    .command('show')
    .argument('<id>', 'task id or name')
    .description('show one task with its attempts')
    .option('--json', 'JSON output')
    .action(act(async (c, id: string, o: { json?: boolean }) => c.showCommand(g(), id, o)));
  program
    .command('logs')
    .argument('<id>', 'task id or name')
    .description("print the raw agent output of a task's attempts (from the store's copy of the last 64 KiB when the log is not on this machine)")
    .option('--attempt <n>', "only attempt N's log, raw (1 is the first)")
    .option('--stderr', 'the stderr log instead of stdout (without --attempt or -f: only stderr)')
    .option('-f, --follow', 'follow the log until the attempt ends (without --attempt: the newest attempt, then each retry, until the task ends)')
    .action(act(async (c, id: string, o: { follow?: boolean; attempt?: string; stderr?: boolean }) => c.logsCommand(g(), id, o)));
  program
    .command('cancel')
    .argument('<id>', 'task id or name')
    .description('cancel a queued task, or stop a running one')
    .action(act(async (c, id: string) => c.cancelCommand(g(), id)));
  program
    .command('answer')
    .argument('<id>', 'task id or name')
    .argument('<text>', 'the answer')
    .description("answer a blocked task's question; it runs again, resuming the agent's session")
    .action(act(async (c, id: string, text: string) => c.answerCommand(g(), id, text)));
  program
    .command('attach')
    .argument('<id>', 'task id or name')
    .description("take a running or blocked task over by hand: stop its headless attempt (the task waits blocked, taken over) and open its agent's session in its workspace, in a tmux window when tmux is there, else in this terminal")
    .option('--no-attach', 'open the tmux window but do not attach this terminal to it (without tmux: print the command instead of running it)')
    .option('--no-tmux', 'run the session in this terminal even when tmux is there')
    .option('--tmux-socket <name>', 'the tmux server tmux -L NAME, session agentq (default: AGENTQ_TMUX_SOCKET, else the current tmux session or the default server)')
    .action(act(async (_c, id: string, o: AttachOptions) => (await import('./attach.ts')).attachCommand(g(), id, o)));
  program
    .command('release')
    .argument('<id>', 'task id or name')
    .description('hand a task taken over by hand (agentq attach) back: it is queued again and its next attempt resumes the session with the note')
    .option('--note <text>', "the prompt of the resumed attempt: what you did and what is left (default: a note to look at the workspace and go on)")
    .action(act(async (_c, id: string, o: { note?: string }) => (await import('./attach.ts')).releaseCommand(g(), id, o)));
  program
    .command('retry')
    .argument('<id>', 'task id or name')
    .description('requeue a failed, timed-out or cancelled task')
    .action(act(async (c, id: string) => c.retryCommand(g(), id)));
  program
    .command('sync')
    .description("write every missing result file (done/, failed/) of this checkout's tasks, then exit")
    .action(act(async (c) => c.syncCommand(g())));
  program
    .command('status')
    .description('counts per state, running tasks, paused agents')
    .option('--json', 'JSON output')
    .action(act(async (c, o: { json?: boolean }) => c.statusCommand(g(), o)));
  program
    .command('usage')
    .description('spend (USD) and tokens per day, agent, model and tag')
    .option('--since <when>', 'start: a duration back from now (7d, 24h), a date (2026-11-01, local midnight) or an ISO time (default: local midnight 7 days ago)')
    .option('--until <when>', 'end, exclusive, in the same forms (default: now)')
    .option('--by <dimensions>', 'group by, comma-separated: day, agent, model, tag (default: day,agent,model)')
    .option('--json', 'JSON output: { since, until, timeZone, by, rows, total }')
    .action(act(async (c, o: { since?: string; until?: string; by?: string; json?: boolean }) => c.usageCommand(g(), o)));

  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; every parse error is a usage error.
      return err.exitCode === 0 ? 0 : 2;
    }
    const verbose = program.opts<GlobalOptions>().verbose === true;
    if (err instanceof UsageError) {
      process.stderr.write(`agentq: ${err.message}\n`);
      process.stderr.write(program.helpInformation());
      return 2;
    }
    if (err instanceof ConfigError) {
      // A config.yaml (or --store) that cannot be used: exit 2 like a bad flag, no usage text.
      process.stderr.write(`agentq: ${err.message}\n`);
      return 2;
    }
    const message = isTransientStoreError(err)
      ? `store unavailable (${(err as Error).message}): another process holds its write lock, the disk is full, or the database server cannot be reached; try again`
      : err instanceof Error
        ? err.message
        : String(err);
    process.stderr.write(`agentq: ${message}\n`);
    if (verbose && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}
