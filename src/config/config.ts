/**
 * `.agent-queue/config.yaml`: schema, defaults and loading. Precedence: defaults → file →
 * environment (`AGENTQ_*`) → command-line flags (applied by the CLI).
 */
import fs from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../core/errors.ts';
import { PRIORITIES } from '../core/types.ts';
import { parseDuration } from './duration.ts';
import { parseRate } from './rate.ts';
import { isHttpUrl, LABEL_SCHEMA, REMOTE_NAME } from './task-file.ts';
import { NOTIFY_EVENTS } from '../notify/events.ts';
import { NOTIFY_KINDS } from '../notify/targets.ts';
import { defaultAgentConfig, projectPaths } from './project.ts';

// What does not need the schema lives in project.ts (loaded by the CLI without zod and yaml).
export {
  accountMap,
  accountOf,
  agentConfig,
  DEFAULT_CLAUDE_MODELS,
  defaultAgentConfig,
  formatOrigin,
  MODEL_ALIASES,
  priceTable,
  projectOrigin,
  projectPaths,
  resolveModelAlias,
  sameOrigin,
  writesResultHere,
  type ProjectPaths,
} from './project.ts';

/** An http or https URL. */
const httpUrl = z.url({ protocol: /^https?$/, error: 'not an http(s) URL' });

const duration = (fallback: string) =>
  z
    .union([z.string(), z.number()])
    .default(fallback)
    .transform((v, ctx) => {
      const parsed = parseDuration(v);
      if (parsed === null) {
        ctx.addIssue({ code: 'custom', message: `not a duration: ${JSON.stringify(v)} (use e.g. 90s, 30m, 2h)` });
        return z.NEVER;
      }
      return parsed;
    });

const command = z.union([z.string().min(1), z.array(z.string()).min(1)]);

/** A duration that may be turned off with 0 (`0`, `"0"`, `"0s"`) → ms (0: off); else as {@link duration}. */
const durationOrOff = (fallback: string) =>
  z
    .union([z.string(), z.number()])
    .default(fallback)
    .transform((v, ctx) => {
      if (v === 0 || (typeof v === 'string' && /^\s*0+(\.0+)?\s*(ms|s|m|h|d)?\s*$/.test(v))) return 0;
      const parsed = parseDuration(v);
      if (parsed === null) {
        ctx.addIssue({ code: 'custom', message: `not a duration: ${JSON.stringify(v)} (use e.g. 90s, 30m, 2h, or 0 for off)` });
        return z.NEVER;
      }
      return parsed;
    });

/** Edit distance (insertions, deletions, substitutions; Levenshtein) between `a` and `b`. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

/**
 * zod params for an object or record with a fixed set of keys: an unknown key is refused by
 * name, with the closest known key (edit distance ≤ 2, case ignored) suggested, else the
 * known keys listed, e.g. `unknown key "concurency" (did you mean "concurrency"?)`.
 */
function refuseUnknownKeys(known: readonly string[]) {
  return {
    error: (issue: z.core.$ZodRawIssue) => {
      if (issue.code !== 'unrecognized_keys') return undefined;
      const keys = issue.keys;
      const parts = keys.map((key) => {
        let best: { name: string; distance: number } | null = null;
        for (const name of known) {
          const distance = editDistance(key.toLowerCase(), name.toLowerCase());
          if (distance <= 2 && (!best || distance < best.distance)) best = { name, distance };
        }
        return best ? `"${key}" (did you mean "${best.name}"?)` : `"${key}"`;
      });
      const hint = parts.some((p) => p.includes('did you mean')) ? '' : ` (known keys: ${known.join(', ')})`;
      return `unknown key${keys.length > 1 ? 's' : ''} ${parts.join(', ')}${hint}`;
    },
  };
}

/** A `z.strictObject`: keys outside `shape` are an error naming them (see {@link refuseUnknownKeys}). */
function strictObject<T extends z.core.$ZodLooseShape>(shape: T) {
  return z.strictObject(shape, refuseUnknownKeys(Object.keys(shape)));
}

/** Per priority (`critical`, `high`, `default`, `low`), each optional; another key is refused. */
const perPriority = <T extends z.ZodType>(value: T) => z.partialRecord(z.enum(PRIORITIES), value, refuseUnknownKeys(PRIORITIES));

/** An environment variable name or a pattern of them (`*` matches any run of characters). */
const envPattern = z.string().regex(/^[^=\s]+$/, 'not an environment variable name or pattern (e.g. AWS_*)');

/** `N/UNIT` or `N/DURATION` (`60/h`, `5/30s`) → a `Rate` (see `parseRate`). */
const rate = z.unknown().transform((v, ctx) => {
  const parsed = parseRate(v);
  if (parsed === null) {
    ctx.addIssue({ code: 'custom', message: `not a rate: ${JSON.stringify(v)} (use e.g. 60/h, 10/m, 5/30s)` });
    return z.NEVER;
  }
  return parsed;
});

/** The defaults of `agents.<name>`, kept schema-free in project.ts (`agentConfig` needs them without the schema). */
const AGENT_DEFAULTS = defaultAgentConfig();

const agentSchema = strictObject({
  /**
   * Whose usage limits this agent runs on (its API key or subscription), default the agent
   * name: pauses, rate-limit strikes and `rate_limit` buckets are kept per account on the
   * store, so dispatchers (machines) whose agents use different accounts do not pause each
   * other, and agents on one account share them. See {@link accountOf}.
   */
  account: z.string().min(1).optional(),
  /** Command that starts the agent (string: split on spaces for claude, `sh -c` for command). */
  command: command.optional(),
  /** Extra command-line arguments, after the standard ones (e.g. codex `-c` provider settings). */
  args: z.array(z.string()).default(() => [...AGENT_DEFAULTS.args]),
  /** Extra environment for the agent's processes, added as given over what `agent_env` lets through. */
  env: z.record(z.string(), z.string()).default(() => ({ ...AGENT_DEFAULTS.env })),
  /** claude: `--permission-mode` value. */
  permission_mode: z.string().default(AGENT_DEFAULTS.permission_mode),
  /** Model per priority; a task's `model` wins. An alias (below) is resolved afterwards. */
  models: perPriority(z.string()).default(() => ({ ...AGENT_DEFAULTS.models })),
  /**
   * Model for tasks that set none and whose priority has no `models` entry (any agent;
   * the `openai` agent needs one from somewhere). An alias is resolved afterwards.
   */
  model: z.string().min(1).optional(),
  /**
   * openai: base URL of the OpenAI-compatible API, up to the version, e.g.
   * `https://api.openai.com/v1`, `http://127.0.0.1:11434/v1` (Ollama); `/chat/completions`
   * is appended. Required for the openai agent (an attempt without it fails, naming this key).
   */
  base_url: httpUrl.optional(),
  /**
   * openai: environment variable holding the API key (sent as `Authorization: Bearer`).
   * Unset is allowed (local servers need no key; `none` is sent). Default `OPENAI_API_KEY`.
   */
  api_key_env: z.string().min(1).default(AGENT_DEFAULTS.api_key_env),
  /**
   * Model aliases: a task's or `models`' name → the id passed to the agent, e.g.
   * `{ fast: gemini-2.5-flash }`. Added to the agent's built-in aliases ({@link MODEL_ALIASES}).
   */
  aliases: z.record(z.string(), z.string()).default(() => ({ ...AGENT_DEFAULTS.aliases })),
  /** claude: `--max-turns` for tasks that set no `max_turns`. */
  max_turns: z.number().int().min(1).optional(),
  /** claude: `--allowedTools` for tasks that set no `allowed_tools` (e.g. `["Read", "Bash(git:*)"]`). */
  allowed_tools: z.array(z.string().min(1)).optional(),
  /**
   * claude: give each attempt agentq's MCP server (`agentq mcp`, server name `agentq`, through
   * `--mcp-config`), so the agent can file subtasks and read the queue. Default true.
   */
  mcp: z.boolean().default(AGENT_DEFAULTS.mcp),
  /** Spend limits of this agent; past `daily_usd` (USD) it is paused until the next day starts. */
  budgets: strictObject({ daily_usd: z.number().positive().optional() }).default(() => ({ ...AGENT_DEFAULTS.budgets })),
  /** How long to pause the agent after a rate limit with no known reset time. */
  rate_limit_backoff: duration(`${AGENT_DEFAULTS.rate_limit_backoff}ms`),
  /** Cap of the doubling rate-limit pause. */
  rate_limit_backoff_max: duration(`${AGENT_DEFAULTS.rate_limit_backoff_max}ms`),
  /** Running tasks of this agent at once (within the global `concurrency`); none by default. */
  concurrency: z.number().int().min(1).optional(),
  /**
   * Starts of this agent's attempts per window (`60/h`, `500/d`, `5/30s`), a token bucket
   * shared by every dispatcher on the store: when it is empty the agent is paused until the
   * next token (`agent: auto` fails over). None by default.
   */
  rate_limit: rate.optional(),
  /** The bucket's capacity (starts at once after a quiet spell); default the rate's N. */
  rate_limit_burst: z.number().int().min(1).optional(),
});

/** Where a `notify:` target sends: exactly one of these keys (defined in notify/targets.ts, read by `agentq status` without the schema). */
export { NOTIFY_KINDS };

/**
 * One `notify:` target: the events it wants (`on`) and exactly one destination (see
 * src/notify/). Its deliveries are retried `tries` times in all, `backoff` doubling per try,
 * each try limited to `timeout`.
 */
const notifyTargetSchema = strictObject({
  on: z
    .array(z.enum(NOTIFY_EVENTS, { error: (issue) => `not an event: ${JSON.stringify(issue.input)} (use ${NOTIFY_EVENTS.join(', ')})` }))
    .min(1, 'list at least one event')
    .transform((events) => [...new Set(events)]),
  /** POST of a JSON body: the `callback_url` body plus the event's fields. */
  webhook: httpUrl.optional(),
  /** An ntfy topic URL (`https://ntfy.sh/TOPIC`): title, priority, tags; answer buttons for `blocked`. */
  ntfy: httpUrl
    .refine((u) => /[^/]$/.test(new URL(u).pathname) && new URL(u).pathname !== '/', 'not a topic URL (use e.g. https://ntfy.sh/my-topic)')
    .optional(),
  /** A Slack incoming-webhook URL. */
  slack: httpUrl.optional(),
  /** A hook: a string run by `sh -c`, or argv; the event as JSON on stdin, `AGENTQ_*` variables. */
  command: command.optional(),
  /** ntfy: the canned answers offered as buttons on a `blocked` notification (at most 3). */
  answers: z.array(z.string().trim().min(1)).max(3).default(['yes', 'no']),
  /** Tries of one delivery in all (the first and its retries). */
  tries: z.number().int().min(1).default(8),
  /** Wait before the second try, doubling for each further one. */
  backoff: duration('2s'),
  /** Time limit of one try (a request, or the command's run). */
  timeout: duration('10s'),
}).superRefine((t, ctx) => {
  const given = NOTIFY_KINDS.filter((k) => t[k] !== undefined);
  if (given.length !== 1) {
    ctx.addIssue({
      code: 'custom',
      message: given.length === 0 ? `give one of ${NOTIFY_KINDS.join(', ')}` : `give only one of ${NOTIFY_KINDS.join(', ')} (found ${given.join(', ')})`,
    });
  }
});

const configSchema = strictObject({
  /** Store URL: `sqlite:PATH` (relative to the project directory). */
  store: z.string().default('sqlite:.agent-queue/agentq.db'),
  /** Global limit of running tasks (across every dispatcher on the store). */
  concurrency: z.number().int().min(1).default(2),
  /**
   * This dispatcher's own limit of running tasks, within the store-wide `concurrency`
   * (`agentq run -c N` / `serve -c N` replace it); none by default: `concurrency` alone.
   */
  local_concurrency: z.number().int().min(1).optional(),
  /**
   * This dispatcher's labels: it claims a task with `runs_on` only when it holds every label
   * listed there (tasks without `runs_on` run anywhere). `agentq run --label` / `serve --label` replace them.
   */
  labels: z
    .array(LABEL_SCHEMA)
    .default([])
    .transform((l) => [...new Set(l)]),
  /** Per-attempt timeout when a task sets none. */
  default_timeout: duration('30m'),
  /** Retries when a task sets none. */
  default_retries: z.number().int().min(0).default(2),
  /** Running tasks per `concurrency_group` at once. */
  group_concurrency: z.number().int().min(1).default(1),
  /** Queued + running tasks past which intake leaves new files in the inbox; none by default. */
  max_queue_depth: z.number().int().min(1).optional(),
  /**
   * Subtasks one task may have when they are filed through `agentq mcp` (an agent's
   * `submit_task`): the next one is refused, nothing created (`SubtaskLimitError`).
   */
  max_subtasks: z.number().int().min(1).default(20),
  /** Where tasks run when they set no `workspace`: worktree in a git repository, else inplace. */
  workspace: z.enum(['inplace', 'worktree']).optional(),
  /**
   * Tell agents (Claude Code: `--append-system-prompt`) that they may end an attempt with a
   * `<<question>> … <</question>>` block; the task then waits `blocked` for `agentq answer`.
   */
  questions: z.boolean().default(true),
  /** After a worktree task succeeds: keep its branch (`manual`) or merge it back (`auto`). */
  merge: z.enum(['manual', 'auto']).default('manual'),
  /**
   * A remote of this checkout (e.g. `origin`): when a worktree task ends (in any state) with
   * commits on its branch, the branch is pushed there under the same name (no force; see
   * src/workspace/push.ts), so the checkout the task came from can `git fetch` it. The branch
   * is then not merged into this checkout (`merge` does not apply: it is the origin's to
   * merge). A failed push is recorded (`push_error`) and does not change the task's end.
   * None by default: branches stay in this checkout.
   */
  workspace_push: z
    .string()
    .max(100, 'a remote name of at most 100 characters')
    .regex(/^(?!-)(?!.*\.\.)[A-Za-z0-9._/-]+$/, 'not a git remote name (e.g. origin; a URL is not accepted: add it with git remote add NAME URL)')
    .optional(),
  /**
   * Commands run by `sh -c`, in order, in each fresh worktree before the agent starts (e.g.
   * `npm ci`), with the agent's environment; one string is one command. A task's
   * `workspace_setup` replaces them. A failure ends the attempt `setup_failed` (retried
   * while attempts remain). None by default; never run in place. See src/workspace/setup.ts.
   */
  workspace_setup: z
    .union([z.string().min(1), z.array(z.string().min(1))])
    .default([])
    .transform((v) => (typeof v === 'string' ? [v] : v)),
  /** Time limit of each `workspace_setup` command. */
  workspace_setup_timeout: duration('10m'),
  /**
   * Commands run by `sh -c` in a task's workspace after its agent reports success, for tasks
   * that set no `verify`: one string or a list; all must exit 0 for the task to complete.
   * None by default. See src/scheduler/verify.ts.
   */
  verify: z
    .union([z.string().trim().min(1, 'not a command (an empty string)'), z.array(z.string().trim().min(1, 'not a command (an empty string)'))])
    .transform((v) => (typeof v === 'string' ? [v] : v))
    .default([]),
  /** Time limit of each verify command, for tasks that set no `verify_timeout`. */
  verify_timeout: duration('10m'),
  /** `agent: auto`: failed verifications on one agent before the next agent of `fallback` takes the task, for tasks that set no `verify_retries`. */
  verify_retries: z.number().int().min(0).default(2),
  /** Stop an attempt whose agent shows no activity this long (it ends `stalled`), for tasks that set no `stall_timeout`; 0: off. */
  stall_timeout: durationOrOff('10m'),
  /** Retry backoff: base delay, doubled per attempt (with jitter), and its cap. */
  retry_backoff: duration('30s'),
  retry_backoff_max: duration('10m'),
  /** Lease length; a heartbeat renews it while the agent runs. */
  lease: duration('30s'),
  /** SIGTERM → SIGKILL grace when stopping an agent. */
  kill_grace: duration('5s'),
  /** How often the dispatcher polls the store and the inbox besides file events. */
  poll_interval: duration('1s'),
  /** A file must be unchanged this long before intake reads it. */
  inbox_settle: duration('300ms'),
  agents: z.record(z.string(), agentSchema).default({}),
  /**
   * Which of agentq's environment variables agents' processes inherit (see `agentEnv` in
   * src/agents/agent-env.ts): names matching `deny` are dropped (agentq's own, such as
   * `AGENTQ_TOKEN`, always are); a non-empty `allow` passes only matching names, plus what
   * agents need to run. `agents.<name>.env` and agentq's `AGENTQ_TASK_*` tags are added after.
   */
  agent_env: strictObject({
    /** Patterns of names never passed on (`*` matches any run of characters), e.g. `AWS_*`. */
    deny: z.array(envPattern).default([]),
    /** When not empty: only names matching one of these (and the basics) are passed on. */
    allow: z.array(envPattern).default([]),
  }).prefault({}),
  /**
   * Project spend limits: past `daily_usd` (USD, every agent together) all agents pause
   * until the next day starts, at `day_start` local time (`HH:MM`, default `00:00`).
   */
  budgets: strictObject({
    daily_usd: z.number().positive().optional(),
    day_start: z
      .string()
      .regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'not a time of day (use HH:MM, e.g. 00:00 or 06:30)')
      .default('00:00'),
  }).default({ day_start: '00:00' }),
  /**
   * Prices, USD per million tokens, by model id or pattern (`*` matches anything), added to
   * and overriding `DEFAULT_PRICES` (pricing/prices.ts); used for agents that report tokens only and to
   * watch `max_cost_usd` while an agent streams.
   */
  prices: z
    .record(
      z.string(),
      strictObject({
        input: z.number().min(0),
        output: z.number().min(0),
        cached_input: z.number().min(0).optional(),
        cache_write: z.number().min(0).optional(),
      }),
    )
    .default({}),
  /** `agentq serve`: the HTTP API and dashboard (see README, "agentq serve"). */
  serve: strictObject({
    /** Address to listen on; other than loopback needs a `token`. `--host` wins. */
    host: z.string().min(1).default('127.0.0.1'),
    /** TCP port; 0 picks a free one. `--port` wins. */
    port: z.number().int().min(0).max(65535).default(8765),
    /** Bearer token every API request must carry; `AGENTQ_TOKEN` wins. Default: none. */
    token: z.string().min(1).optional(),
    /** Largest request body, bytes (larger is 413). */
    body_limit: z.number().int().min(1).default(1024 * 1024),
    /** First wait before a failed `callback_url` delivery is tried again, doubling per try. */
    callback_backoff: duration('1s'),
    /** Tries of a `callback_url` delivery in all (the first and its retries). */
    callback_tries: z.number().int().min(1).default(6),
    /** Time limit of one callback request. */
    callback_timeout: duration('10s'),
    /**
     * The base URL clients and people reach this server at (behind a proxy, TLS), e.g.
     * `https://agentq.example.com` (a trailing `/` is dropped): the A2A agent card names
     * `<public_url>/a2a` as its endpoint, remotes this queue delegates to push to
     * `<public_url>/a2a/push/ID`, and the answer links of `blocked` notifications are
     * `<public_url>/v1/tasks/ID/answer?token=…`. Default: none; the card then names the
     * URL the request came to (its `Host`), pushes go to the address `serve` listens on,
     * answer links `http://HOST:PORT` from `host` and `port` (a wildcard host as loopback).
     */
    public_url: httpUrl.transform((u) => u.replace(/\/+$/, '')).optional(),
    /** How long an answer link stays valid. */
    answer_link_ttl: duration('24h'),
  }).prefault({}),
  /** Notification targets (see README, "Notifications"); none by default. */
  notify: z.array(notifyTargetSchema).default([]),
  /**
   * `agent: auto`: the agents to try per priority, in order. The first that is not paused
   * and has room runs the task; a rate limit moves it on to the next (failover). `a2a:NAME`
   * delegates to the remote `remotes.NAME`.
   */
  fallback: perPriority(z.array(z.string()).min(1)).default({}),
  /**
   * Remote A2A agents tasks may be delegated to (`agent: a2a` with `remote: NAME`, or
   * `a2a:NAME` in a `fallback` list): another `agentq serve`, or any A2A-speaking agent.
   */
  remotes: z
    .record(
      z.string().regex(REMOTE_NAME),
      strictObject({
        /** The agent's URL: its agent card is read from `/.well-known/agent-card.json` below it (or the URL itself when it ends in `.json`). */
        url: httpUrl,
        /** Environment variable (of the dispatcher) holding the bearer token the remote requires; none: no token is sent. */
        token_env: z.string().min(1).optional(),
      }),
      { error: (issue) => (issue.code === 'invalid_key' ? 'not a remote name (letters, digits, ".", "_", "-", starting with a letter or digit; at most 100)' : undefined) },
    )
    .default({}),
  /**
   * A delegation whose remote shows no progress (no new state, or no answer at all) this long
   * is checked with `tasks/get`: a remote that lost the task, or that stayed unreachable, fails
   * the attempt with a retryable reason.
   */
  delegation_stuck_after: duration('10m'),
  /** Polling of a delegated task (`tasks/get`): the first wait is 250 ms, doubling while nothing changes, at most this. */
  delegation_poll_max: duration('10s'),
});

/** Config with defaults applied. Durations are ms. */
export type Config = z.output<typeof configSchema>;
export type AgentConfig = z.output<typeof agentSchema>;
/** One `notify:` target, defaults applied (durations ms). */
export type NotifyTarget = z.output<typeof notifyTargetSchema>;

/** A zod issue path as config messages print it: `notify[1].on[0]`, `agents.codex.rate_limit`. */
export function configPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`)).join('');
}

/**
 * Validates a parsed config object (defaults applied; durations in ms).
 * @param source what to name in messages, e.g. the file's path. Default `config`.
 * @throws ConfigError `SOURCE: PATH: PROBLEM` for every problem (joined by `; `), e.g.
 *   `config: agents.codex.rate_limit: not a rate: "x" …`, `config: notify[1].on[0]: not an
 *   event: "done" …` (list items by index in brackets), or for an unknown key
 *   `config: (top level): unknown key "concurency" (did you mean "concurrency"?)`.
 */
export function parseConfig(raw: unknown, source = 'config'): Config {
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${configPath(issue.path) || '(top level)'}: ${issue.message}`);
    throw new ConfigError(`${source}: ${problems.join('; ')}`);
  }
  return result.data;
}

/**
 * Loads `.agent-queue/config.yaml` if present (defaults otherwise).
 * Throws ConfigError on malformed YAML or invalid values.
 */
export function loadConfig(projectDir: string): Config {
  const file = projectPaths(projectDir).config;
  let raw: unknown = {};
  if (fs.existsSync(file)) {
    try {
      raw = YAML.parse(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      throw new ConfigError(`${file}: malformed YAML: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  return parseConfig(raw, file);
}

/**
 * Why a task's `remote` names no A2A agent here: it is neither a name of config `remotes` nor
 * an http(s) URL (the `a2a` runner's refusal, and the MCP tool `delegate_task`'s).
 * @returns `remote: "x" is not a remote of config.yaml (remotes: a, b); name one of them or
 *   give the URL of an A2A agent` (`no remotes configured` when there are none), or null when
 *   `remote` names one
 */
export function unknownRemote(remote: string, remotes: Config['remotes']): string | null {
  if (Object.hasOwn(remotes, remote) || isHttpUrl(remote)) return null;
  const known = Object.keys(remotes);
  return `remote: "${remote}" is not a remote of config.yaml (${known.length ? `remotes: ${known.join(', ')}` : 'no remotes configured'}); name one of them or give the URL of an A2A agent`;
}

/** The commented config file `agentq init` writes. */
export const CONFIG_TEMPLATE = `# agent-queue settings. Every line is optional; the values shown are the defaults.
# A key not listed here is refused (exit 2), with the closest known key suggested.

# Where the queue lives. sqlite:PATH is relative to the project directory; or PostgreSQL
# (≥ 14): postgres://USER:PASS@HOST:5432/DB?schema=agentq (one schema per project; prefer
# AGENTQ_STORE or PGPASSWORD to a password in this file).
# store: sqlite:.agent-queue/agentq.db

# How many tasks run at once (across every dispatcher sharing the store).
# concurrency: 2
# local_concurrency: 1   # (default: none) at most this many in this dispatcher, within
#                         # concurrency (run -c N / serve -c N replace it)
# labels: [gpu]          # (default: none) this dispatcher's labels: a task with runs_on runs
#                         # only on a dispatcher holding every label it lists (--label replaces these)

# Per-attempt timeout and retries for tasks that set none.
# default_timeout: 30m
# default_retries: 2
# group_concurrency: 1    # running tasks per concurrency_group
# max_queue_depth: 1000   # past it, new inbox files wait in the inbox (default: no limit)
# max_subtasks: 20        # subtasks one task's agent may file through agentq mcp (submit_task)
# workspace: worktree     # default: worktree in a git repository, else inplace
# merge: manual           # or auto: merge a worktree task's branch back after success
# workspace_push: origin  # (default: none) push a worktree task's branch to this remote when
#                         # it ends with commits, for the checkout it came from to fetch (then
#                         # it is not merged here); a failed push is recorded as push_error
# workspace_setup: npm ci  # (default: none) command(s) run by sh -c in each fresh worktree before
#                         # the agent, e.g. [npm ci, npm run build]; a failure: setup_failed (retried)
# workspace_setup_timeout: 10m  # time limit of each setup command
#                         # (.worktreeinclude at the checkout's top, gitignore syntax: git-ignored
#                         # files such as .env copied into each new worktree, never committed)
# questions: true         # agents may ask a person: <<question>> … <</question>> → blocked
# verify: ["npm test"]    # (default: none) run by sh -c in the workspace after the agent reports
#                         # success, for tasks that set no verify; all must exit 0 to complete,
#                         # else the attempt ends verify_failed and the agent is resumed with the output
# verify_timeout: 10m     # time limit of each verify command
# verify_retries: 2       # agent: auto: failed verifications on one agent before the next of fallback
# stall_timeout: 10m      # stop an attempt whose agent shows no activity (output, stream events,
#                         # work in its tool commands) this long; it ends stalled and is resumed; 0: off
# retry_backoff: 30s      # first retry waits ~30s, doubling per attempt (with jitter)
# retry_backoff_max: 10m

# Lease on a running task, renewed by a heartbeat; a crashed dispatcher's tasks are
# requeued once it expires (at once when the dispatcher's process is gone).
# lease: 30s
# kill_grace: 5s          # SIGTERM -> SIGKILL grace when stopping an agent
# poll_interval: 1s
# inbox_settle: 300ms     # unchanged this long before it is read (with inotify: or closed / renamed in)

# fallback:               # for agent: auto, per priority (default: [claude])
#   critical: [claude]
#   default: [claude, command]
# budgets:
#   daily_usd: 20         # all agents together; past it every agent pauses until the next day
#   day_start: "00:00"    # local time the budget day starts
# prices:                 # USD per million tokens, over the built-in table (src/pricing/prices.ts)
#   "llama*": { input: 0, output: 0 }
# agent_env:              # what agents inherit from agentq's environment (never AGENTQ_TOKEN,
#                         # AGENTQ_STORE, AGENTQ_*_COMMAND); agents.<name>.env is added after
#   deny: ["AWS_*"]       # names never passed on (* is a wildcard)
#   allow: []             # when not empty: only these, the basics (PATH, HOME, …) and the agent's
#                         # own ANTHROPIC_* / OPENAI_* / GEMINI_* … pass
# agents:
#   claude:
#     account: claude                    # whose usage limits (API key, subscription): pauses, strikes and
#                                        # rate_limit buckets are shared per account by every dispatcher on
#                                        # the store; give machines with their own key their own account
#     command: claude                    # or AGENTQ_CLAUDE_COMMAND; default: PATH, then node_modules/.bin
#     permission_mode: bypassPermissions
#     models: { critical: opus, high: sonnet, default: sonnet, low: sonnet }
#     rate_limit_backoff: 60s            # pause after a rate limit with no known reset time,
#     rate_limit_backoff_max: 1h         # doubling with each limit in a row, up to this
#     concurrency: 2                     # at most this many claude tasks at once
#     rate_limit: 60/h                   # (default: none) at most 60 starts an hour (10/m, 500/d, 5/30s …):
#                                        # a token bucket shared by every dispatcher on the store; when it
#                                        # is empty claude pauses until the next token (auto fails over)
#     rate_limit_burst: 10               # bucket capacity: starts at once after a quiet spell (default: N)
#     max_turns: 40                      # --max-turns for tasks that set no max_turns
#     allowed_tools: [Read, "Bash(npm test:*)"]  # --allowedTools for tasks that set none
#     mcp: true                          # give each run agentq's MCP server (agentq mcp): submit_task, …
#     budgets: { daily_usd: 5 }          # past it, claude pauses until the next day
#   gemini:
#     aliases: { cheap: gemini-2.5-flash-lite }  # model names → ids (built in: pro, flash, flash-lite)
#   codex:
#     command: codex                     # else AGENTQ_CODEX_COMMAND, PATH, node_modules/.bin/codex
#     args: []                           # extra arguments, e.g. -c model_provider=…
#     env: {}                            # extra environment for the agent
#   openai:                              # any OpenAI-compatible chat-completions API (text answers only)
#     base_url: http://127.0.0.1:11434/v1  # required for agent: openai (Ollama here; https://api.openai.com/v1 …)
#     api_key_env: OPENAI_API_KEY        # variable holding the key; unset sends "none" (local servers)
#     model: llama3.2                    # for tasks that set no model (any agent; models: per priority wins)
#   command:
#     command: ["sh", "-c", "cat"]       # the default for tasks with agent: command

# remotes:                # A2A agents to delegate to: agent: a2a with remote: NAME (or a URL),
#   buildbox:             # or a2a:NAME in a fallback list
#     url: http://buildbox:8765           # another agentq serve, or any A2A agent
#     token_env: BUILDBOX_TOKEN           # (default: none) variable holding its bearer token
# delegation_stuck_after: 10m  # no progress this long: tasks/get; lost or unreachable → retryable failure
# delegation_poll_max: 10s     # tasks/get polling: 250 ms, doubling while nothing changes, up to this

# serve:                  # agentq serve (HTTP API + dashboard)
#   host: 127.0.0.1       # another address needs a token
#   port: 8765
#   token: …              # or AGENTQ_TOKEN; then every API request needs "Authorization: Bearer …"
#   body_limit: 1048576   # bytes
#   callback_backoff: 1s  # callback_url retries: 1s, 2s, 4s, … (callback_tries in all)
#   callback_tries: 6
#   public_url: https://agentq.example.com  # behind a proxy: the A2A card names <public_url>/a2a,
#                         # delegations' pushes come to <public_url>/a2a/push/ID;
#                         # answer links start with it (default http://HOST:PORT)
#   answer_link_ttl: 24h  # an answer link works once, until then

# notify:                 # (default: none) where to say what happened; each target lists the
#                         # events it wants: completed, failed, blocked, budget_exceeded,
#                         # agent_paused, queue_empty; and exactly one of webhook, ntfy, slack, command
#   - on: [blocked, failed]
#     ntfy: https://ntfy.sh/my-secret-topic   # title, priority, tags; a blocked task's question
#     answers: [yes, no]                      # with answer buttons (at most 3) and its answer link
#   - on: [completed, failed]
#     webhook: https://example.com/agentq     # POST: the callback_url body + event, question, answerUrl…
#   - on: [queue_empty]
#     slack: https://hooks.slack.com/services/…
#   - on: [completed]
#     command: notify-send "agentq" "$AGENTQ_TASK_NAME: $AGENTQ_TASK_STATE"  # sh -c; or argv [a, b];
#                                             # the event as JSON on stdin, AGENTQ_* variables
#     tries: 8                                # deliveries are retried (backoff 2s, doubling),
#     backoff: 2s                             # survive restarts, and never hold up the queue
#     timeout: 10s
`;
