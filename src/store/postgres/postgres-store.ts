/**
 * PostgreSQL backend of the Store (`pg`, PostgreSQL ≥ 14): `postgres://user:pass@host/db?schema=NAME`.
 * Every table lives in one schema (default `agentq`, set as each connection's `search_path`),
 * so several projects can share a database. Schema: numbered `migrations/NNN_*.sql`, applied
 * on open under a session advisory lock and recorded in `schema_version`.
 *
 * Concurrency (the SQLite store gets it from `BEGIN IMMEDIATE`, one writer at a time):
 * - every multi-statement change is one transaction on one pooled client, READ COMMITTED;
 * - rows a change depends on are locked (`FOR UPDATE`): the leased task of finish/requeue/block,
 *   the task of cancel/retry/answer, a rate bucket, the callbacks being leased (`SKIP LOCKED`);
 * - a claim (of one task or a batch) is one call of `claim_tasks` (migration 014): a transaction
 *   advisory lock of the schema's claims, then statements with snapshots taken after the lock
 *   (the running tasks read, the ready ones walked in claim order `FOR UPDATE SKIP LOCKED`, the
 *   ones taken updated and their attempts inserted): its limits count running tasks, and two
 *   claims each seeing the other's task still queued would go past `concurrency` (READ
 *   COMMITTED does not serialize them). One round trip, so the lock is held for none;
 * - the hot path is one statement per call: enqueue (a batch without intake keys; a request
 *   without an idempotency key or a subtask limit to check), claim, setAttemptAgent,
 *   recordStats, and finish (of a batch, `finishMany`: tasks that end in their own state, one
 *   work notification; a batch with a completed parent with subtasks takes the transaction),
 *   the enqueue, claim and finish as named prepared statements;
 * - what checks before it inserts (intake keys, idempotency keys) or sweeps many tasks
 *   (settleParents, failBlockedDependents) takes a transaction advisory lock of its own.
 * Text is ordered `COLLATE "C"` (bytes), as SQLite's BINARY does, whatever the database's collation.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { AgentQueueError, ConfigError, NotFoundError, StoreTooNewError, SubtaskLimitError } from '../../core/errors.ts';
import { dependencyFailure, parentVerdict, taskEnd, UNSUCCESSFUL_STATES, type TaskRef } from '../../core/lifecycle.ts';
import { notTakenOver, TAKEN_OVER, takenOverNotBlocked } from '../../core/takeover.ts';
import {
  isTerminal,
  TASK_STATES,
  TERMINAL_STATES,
  COUNTED_REQUEUE_OUTCOMES,
  type AgentPause,
  type Attempt,
  type AttemptOutcome,
  type AttemptOutput,
  type Claim,
  type RunStats,
  type Task,
  type TaskOrigin,
  type TaskState,
  type Verification,
} from '../../core/types.ts';
import { checkBucket, takeToken } from '../rate-bucket.ts';
import { ATTEMPT_COLUMNS, EMPTY_WORKSPACE, NEW_TASK_COLUMNS, newTaskRow, WORKSPACE_COLUMNS, delegationPatchColumns, detectorRunColumns, flag, knownStatsColumns, outputValues, TASK_VERSION_SQL, TERMINAL_STATES_SQL, toA2aPush, toAgentUsage, toAttempt, toAttemptOutput, toCallback, toDelegation, toDetectorRun, toNotification, toNotificationHealth, toPause, toStaleClaim, toTask, toUsageRecord, toVerification, toWorker, tryColumns, workspaceColumns, type Row } from '../rows.ts';
import { DELEGATION_END_STATES, type Delegation, type DelegationState } from '../../core/delegation.ts';
import type {
  A2aPush,
  A2aPushConfig,
  AgentUsage,
  AnswerToken,
  AnswerResult,
  BlockOptions,
  HandOverOptions,
  Heartbeat,
  CallbackDelivery,
  CallbackTry,
  ClaimOptions,
  DueA2aPush,
  DelegationFilter,
  DelegationPatch,
  DetectedTask,
  DetectorRun,
  DueCallback,
  FinishItem,
  FinishOutcome,
  NewNotification,
  NewDelegation,
  NewTask,
  Notification,
  NotificationHealth,
  QueueMark,
  NewVerification,
  RateBucket,
  RateToken,
  RequestOptions,
  RequestResult,
  RequeueOptions,
  StaleClaim,
  Store,
  TaskFilter,
  TokenAnswer,
  WorkerInfo,
} from '../store.ts';
import { isTransientStoreError } from '../store.ts';
import { redactStoreUrl } from '../store-url.ts';
import { WorkWatcher } from './work-watcher.ts';
import { summarizeUsage, USAGE_DIMENSIONS, type UsageQuery, type UsageRow } from '../usage.ts';

const MIGRATIONS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');

/** Schema names `?schema=` accepts: a lower-case SQL identifier (no quoting needed anywhere). */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Default schema of a `postgres://` store. */
export const DEFAULT_SCHEMA = 'agentq';

/** Default of {@link PostgresStoreOptions.busyTimeoutMs}. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

export interface PostgresStoreOptions {
  /**
   * How long a call waits for a connection (pool full, server slow to answer), in ms, before
   * it fails (transiently). Default {@link DEFAULT_CONNECT_TIMEOUT_MS}. Same option as
   * SQLite's busy timeout, so `openStore` passes one value to either backend.
   */
  busyTimeoutMs?: number;
  /** Most connections the pool opens. Default 10. */
  maxConnections?: number;
}

/** First wait before a lost `LISTEN` connection is opened again, in ms; it doubles per failed try. */
export const LISTEN_RETRY_FIRST_MS = 100;
/** Longest wait between two tries to open a lost `LISTEN` connection again, in ms. */
export const LISTEN_RETRY_MAX_MS = 5_000;
/** `application_name` of the connections {@link PostgresStore.watchWork} listens on. */
export const LISTEN_APPLICATION_NAME = 'agentq-listen';

/**
 * The `NOTIFY` channel of a schema's work: `agentq_work_<schema>`, so projects sharing a
 * database do not wake each other. Channel names are identifiers (at most 63 bytes): past
 * that the schema's part is a hash of it.
 */
export function workChannel(schema: string): string {
  const plain = `agentq_work_${schema}`;
  return plain.length <= 63 ? plain : `agentq_work_${createHash('sha256').update(schema).digest('hex').slice(0, 40)}`;
}

/** `pg` errors without a SQLSTATE that mean the connection, not the statement, failed. */
const CONNECTION_LOST = /Connection terminated|connection error|timeout exceeded when trying to connect|Connection ended|not queryable/i;

/** A `pg` connection failure without a SQLSTATE, given one (`08006`) so {@link isTransientStoreError} sees it. */
class PostgresConnectionError extends Error {
  readonly code = '08006';
  constructor(cause: Error) {
    super(`PostgreSQL connection failed: ${cause.message}`, { cause });
    this.name = 'PostgresConnectionError';
  }
}

function normalizeError(err: unknown): unknown {
  if (err instanceof Error && typeof (err as { code?: unknown }).code !== 'string' && CONNECTION_LOST.test(err.message)) {
    return new PostgresConnectionError(err);
  }
  return err;
}

/** The `migrations/NNN_*.sql` file names, in order. */
function migrationFiles(): string[] {
  return fs
    .readdirSync(MIGRATIONS_DIR)
    .filter((f) => /^\d+_.*\.sql$/.test(f))
    .sort();
}

const NEWEST_VERSION = (): number => Math.max(0, ...migrationFiles().map((f) => Number.parseInt(f, 10)));

/** The parts of a `postgres://` store URL. */
export interface PostgresUrl {
  /** What `pg` connects with: the URL less `schema` and `options`. */
  connectionString: string;
  schema: string;
  /** The connection's `options` (the URL's, and the `search_path`). */
  options: string;
  /** The URL without its password, for messages. */
  display: string;
}

/**
 * Reads a `postgres://` / `postgresql://` store URL.
 * @throws ConfigError (password hidden) for a URL that does not parse or a bad `schema`.
 */
export function parsePostgresUrl(url: string): PostgresUrl {
  const display = redactStoreUrl(url);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigError(`store: ${JSON.stringify(display)} is not a valid URL`);
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new ConfigError(`store: ${JSON.stringify(display)} is not a postgres:// URL`);
  const schema = u.searchParams.get('schema') ?? DEFAULT_SCHEMA;
  if (!SCHEMA_NAME.test(schema)) {
    throw new ConfigError(`store ${display}: schema ${JSON.stringify(schema)} must be a lower-case identifier (letters, digits, _; at most 63)`);
  }
  const userOptions = u.searchParams.get('options');
  u.searchParams.delete('schema');
  u.searchParams.delete('options');
  return { connectionString: u.toString(), schema, options: [userOptions, `-c search_path=${schema}`].filter(Boolean).join(' '), display };
}

/** BIGINT (20) and NUMERIC (1700) as numbers: epoch ms, ids and sums fit in a double. */
const TYPES = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 20 || oid === 1700) return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format);
  },
} as unknown as pg.CustomTypesConfig;

/** What queries run on: the pool (one statement) or a client inside a transaction. */
type Db = pg.Pool | pg.PoolClient;

/** A task row with its dependency ids (`dep_ids`), in one query. */
/** Task rows with their dependency ids (`dep_ids`, in order), as `rowTask` reads them; append `WHERE …` on alias `t`. */
export const TASK_SELECT = `SELECT t.*, ARRAY(SELECT d.depends_on_id FROM task_deps d WHERE d.task_id = t.id ORDER BY d.position) AS dep_ids FROM tasks t`;

/** The terminal tasks without a result file: the predicate of the partial index `tasks_unreported` (migration 003), states as literals so the planner can prove it. */
const UNREPORTED = `t.result_path IS NULL AND t.state IN (${TERMINAL_STATES_SQL})`;

/** `listUnreported`'s conditions on {@link TASK_SELECT}: every unreported task (`all`), or those of one origin (`$1` host, `$2` root) and those without one (`ofOrigin`), by id. */
export const UNREPORTED_WHERE = {
  all: `${UNREPORTED} ORDER BY t.id`,
  ofOrigin: `${UNREPORTED} AND (t.origin_host IS NULL OR (t.origin_host = $1 AND t.origin_root = $2)) ORDER BY t.id`,
} as const;

const rowTask = (row: Row): Task => toTask(row, ((row.dep_ids ?? []) as unknown[]).map(Number));

/** How an attempt ended, as its row records it. */
interface AttemptEnd {
  reason?: string | null;
  exitCode?: number | null;
  stats?: RunStats | undefined;
  logPath?: string | null;
  /** The tails of its stdout and stderr logs; null or absent: none recorded. */
  output?: AttemptOutput | null;
  now: number;
}

/** A value an end writes: its name (in {@link attemptEndValues}, {@link taskEndValues} and `finishMany`'s JSON items) and its SQL type. */
type EndField = readonly [name: string, type: string];

/** The run figures an end records, on the attempt row and the task row alike. */
const RUN_FIGURE_FIELDS: readonly EndField[] = [
  ['session_id', 'text'],
  ['model', 'text'],
  ['cost_usd', 'double precision'],
  ['input_tokens', 'bigint'],
  ['output_tokens', 'bigint'],
  ['num_turns', 'integer'],
];

/** What {@link attemptEndSql} reads. */
const ATTEMPT_END_FIELDS: readonly EndField[] = [
  ['outcome', 'text'],
  ['reason', 'text'],
  ['exit_code', 'integer'],
  ['now', 'bigint'],
  ['log_path', 'text'],
  ...RUN_FIGURE_FIELDS,
  ['stdout_tail', 'text'],
  ['stdout_bytes', 'bigint'],
  ['stderr_tail', 'text'],
  ['stderr_bytes', 'bigint'],
];

/** What {@link taskEndSql} reads. */
const TASK_END_FIELDS: readonly EndField[] = [
  ['state', 'text'],
  ['finished_at', 'bigint'],
  ['result', 'text'],
  ['reason', 'text'],
  ...RUN_FIGURE_FIELDS,
  ['ws', 'boolean'],
  ...WORKSPACE_COLUMNS.map((c): EndField => [c, 'text']),
];

/**
 * The SET list that closes an attempt row of `UPDATE attempts`: outcome, reason, exit code,
 * end time and duration (from its `started_at`), log path, the run figures known (a
 * null figure keeps the one recorded live) and the output tails (replaced: null when none).
 * `v(name)` is how the statement reads the value `name` of {@link ATTEMPT_END_FIELDS}.
 */
function attemptEndSql(v: (name: string) => string): string {
  return `outcome = ${v('outcome')}, reason = ${v('reason')}, exit_code = ${v('exit_code')}, finished_at = ${v('now')},
      duration_ms = ${v('now')} - attempts.started_at, log_path = ${v('log_path')},
      session_id = COALESCE(${v('session_id')}, attempts.session_id), model = COALESCE(${v('model')}, attempts.model),
      cost_usd = COALESCE(${v('cost_usd')}, attempts.cost_usd), input_tokens = COALESCE(${v('input_tokens')}, attempts.input_tokens),
      output_tokens = COALESCE(${v('output_tokens')}, attempts.output_tokens), num_turns = COALESCE(${v('num_turns')}, attempts.num_turns),
      stdout_tail = ${v('stdout_tail')}, stdout_bytes = ${v('stdout_bytes')}, stderr_tail = ${v('stderr_tail')}, stderr_bytes = ${v('stderr_bytes')}`;
}

/** The values {@link attemptEndSql} reads, by name. */
function attemptEndValues(outcome: AttemptOutcome, o: AttemptEnd): Row {
  const { stats } = o;
  const [stdoutTail, stdoutBytes, stderrTail, stderrBytes] = outputValues(o.output);
  return {
    outcome,
    reason: o.reason ?? null,
    exit_code: o.exitCode ?? null,
    now: o.now,
    log_path: o.logPath ?? null,
    session_id: stats?.sessionId ?? null,
    model: stats?.model ?? null,
    cost_usd: stats?.costUsd ?? null,
    input_tokens: stats?.inputTokens ?? null,
    output_tokens: stats?.outputTokens ?? null,
    num_turns: stats?.numTurns ?? null,
    stdout_tail: stdoutTail,
    stdout_bytes: stdoutBytes,
    stderr_tail: stderrTail,
    stderr_bytes: stderrBytes,
  };
}

/**
 * The SET list of `UPDATE tasks` that ends a task in `state` (from `taskEnd`) with `reason`:
 * finish time (none while `waiting`), result, the run figures known, the lease, the answer and
 * the takeover cleared, and the workspace record (every field replaced when `ws`, else kept:
 * the same text either way, so one prepared statement serves both). `duration_ms` is the
 * caller's. `v(name)` is how the statement reads the value `name` of {@link TASK_END_FIELDS}.
 */
function taskEndSql(v: (name: string) => string): string {
  return `state = ${v('state')}, finished_at = ${v('finished_at')}, result = ${v('result')}, failed_reason = ${v('reason')},
      session_id = COALESCE(${v('session_id')}, tasks.session_id), run_model = COALESCE(${v('model')}, tasks.run_model),
      cost_usd = COALESCE(${v('cost_usd')}, tasks.cost_usd), input_tokens = COALESCE(${v('input_tokens')}, tasks.input_tokens),
      output_tokens = COALESCE(${v('output_tokens')}, tasks.output_tokens), num_turns = COALESCE(${v('num_turns')}, tasks.num_turns),
      lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, answer = NULL, taken_over_at = NULL,
      ${WORKSPACE_COLUMNS.map((col) => `${col} = CASE WHEN ${v('ws')} THEN ${v(col)} ELSE tasks.${col} END`).join(', ')}`;
}

/** The values {@link taskEndSql} reads, by name, for a task ending in `state` with `reason`. */
function taskEndValues(state: string, reason: string | null, o: FinishOutcome): Row {
  return {
    state,
    finished_at: state === 'waiting' ? null : o.now,
    result: o.result ?? null,
    reason,
    session_id: o.stats.sessionId ?? null,
    model: o.stats.model ?? null,
    cost_usd: o.stats.costUsd ?? null,
    input_tokens: o.stats.inputTokens ?? null,
    output_tokens: o.stats.outputTokens ?? null,
    num_turns: o.stats.numTurns ?? null,
    ws: o.workspace !== undefined,
    ...Object.fromEntries(workspaceColumns(o.workspace ?? EMPTY_WORKSPACE)),
  };
}

/** `sql(v)` with each value a parameter (`$first`, `$first + 1`… cast to its type), and those values in `fields` order. */
function numbered(first: number, fields: readonly EndField[], sql: (v: (name: string) => string) => string, values: Row): { sql: string; values: unknown[] } {
  const at = new Map(fields.map(([name, type], i) => [name, `$${first + i}::${type}`]));
  return { sql: sql((name) => at.get(name)!), values: fields.map(([name]) => values[name]) };
}

/** A UTF-16 surrogate without its pair. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * `JSON.stringify` replacer: a string's lone surrogates become U+FFFD, as `pg` encodes a
 * text parameter (UTF-8), where PostgreSQL's `json` refuses their `\uXXXX` escapes (an
 * agent's broken output would otherwise fail the whole batch).
 */
function wellFormedText(_key: string, value: unknown): unknown {
  return typeof value === 'string' ? value.replace(LONE_SURROGATE, '\uFFFD') : value;
}

/**
 * One item of `finishMany`'s statement, as its `json_to_recordset` reads it
 * ({@link FINISH_ITEM_FIELDS}): the task's own end (`taskEnd` without subtasks; `guard`: a
 * completed end, which a task with subtasks cannot take there) and what its attempt row
 * records (the same reason and figures, the output tails).
 */
function finishItemJson(attemptId: string, o: FinishOutcome): Row {
  const own = taskEnd(o.state, o.reason ?? null, []);
  return { attempt: attemptId, guard: o.state === 'completed', ...attemptEndValues(o.attemptOutcome, o), ...taskEndValues(own.state, own.reason, o) };
}

/** The columns of `finishMany`'s items: the attempt, the guard, and each value the two ends read once. */
const FINISH_ITEM_FIELDS: readonly EndField[] = [
  ['attempt', 'text'],
  ['guard', 'boolean'],
  ...[...ATTEMPT_END_FIELDS, ...TASK_END_FIELDS].filter(([name], i, all) => all.findIndex(([n]) => n === name) === i),
];

/**
 * Whether {@link PostgresStore.enqueue} can insert a batch in one statement: no entry carries
 * an intake key (those are looked up first, under the `intake` lock), and every in-batch
 * parent or dependency names an earlier entry.
 */
function plainBatch(tasks: NewTask[]): boolean {
  return tasks.every(
    (t, i) => t.intakeKey === undefined && (t.parentBatch == null || t.parentBatch < i) && (t.dependsOnBatch ?? []).every((b) => b < i),
  );
}

/**
 * How long the server lets one of our sessions sit inside a transaction without a statement
 * (`idle_in_transaction_session_timeout`, ms) before it ends the session. Every transaction
 * here runs its statements back to back (milliseconds); a longer idle one is a process that
 * was stopped in the middle (SIGSTOP, a suspended laptop) and would otherwise hold its row
 * and advisory locks, and with them every other dispatcher's claims, until it resumed. Its
 * client sees the connection ended: a transient error, the call is tried again.
 */
export const IDLE_IN_TRANSACTION_TIMEOUT_MS = 5_000;

/**
 * Store on a PostgreSQL database. Open with {@link PostgresStore.open} (connects, migrates).
 * Every method is all-or-nothing: a method that throws has changed nothing (its transaction
 * rolled back), so a call that failed transiently (see `isTransientStoreError`) may be repeated.
 */
export class PostgresStore implements Store {
  readonly pool: pg.Pool;
  readonly schema: string;
  /** The URL without its password. */
  readonly display: string;
  /** The `NOTIFY` channel of this schema's work ({@link workChannel}). */
  readonly channel: string;
  private closed: Promise<void> | null = null;
  /** What a `LISTEN` connection of {@link watchWork} connects with. */
  private readonly listenConfig: pg.ClientConfig;
  /** Open {@link watchWork} watches, ended by {@link close}. */
  private readonly watchers = new Set<WorkWatcher>();

  private constructor(parsed: PostgresUrl, options: PostgresStoreOptions) {
    this.schema = parsed.schema;
    this.display = parsed.display;
    this.channel = workChannel(parsed.schema);
    const connectionTimeoutMillis = options.busyTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.pool = new pg.Pool({
      connectionString: parsed.connectionString,
      options: parsed.options,
      types: TYPES,
      max: options.maxConnections ?? 10,
      connectionTimeoutMillis,
      keepAlive: true,
      allowExitOnIdle: true,
      application_name: 'agentq',
      idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_TIMEOUT_MS,
    });
    this.listenConfig = {
      connectionString: parsed.connectionString,
      options: parsed.options,
      connectionTimeoutMillis,
      keepAlive: true,
      application_name: LISTEN_APPLICATION_NAME,
    };
    // An idle connection that dies (server restart, network) is dropped by the pool; without
    // a listener its error would crash the process. The next call gets a new connection.
    this.pool.on('error', () => {});
  }

  /**
   * Connects to the store a `postgres://` URL names and migrates its schema (creating it).
   * @throws StoreTooNewError (code `store_too_new`) when a newer agentq's schema is there; nothing is changed
   * @throws ConfigError for a bad URL; the `pg` error (transient when the server is unreachable) otherwise
   */
  static async open(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const store = new PostgresStore(parsePostgresUrl(url), options);
    try {
      await store.migrate();
    } catch (err) {
      await store.close();
      throw normalizeError(err);
    }
    return store;
  }

  /** A transaction-scoped or session advisory lock key of this schema (`hashtextextended`). */
  private lockName(name: string): string {
    return `agentq:${this.schema}:${name}`;
  }

  private async schemaVersion(c: pg.PoolClient): Promise<number> {
    const exists = await c.query('SELECT to_regclass($1) IS NOT NULL AS present', [`${this.schema}.schema_version`]);
    if (!exists.rows[0]?.present) return 0;
    const r = await c.query('SELECT coalesce(max(version), 0) AS v FROM schema_version');
    return Number(r.rows[0]?.v ?? 0);
  }

  /**
   * Refuses a newer schema, then applies pending migrations, each in its own transaction,
   * under a session advisory lock so concurrent openers apply each once. A store already at
   * the newest version is only read.
   */
  private async migrate(): Promise<void> {
    const newest = NEWEST_VERSION();
    const c = await this.pool.connect();
    c.on('error', () => {});
    try {
      let current = await this.schemaVersion(c);
      if (current > newest) throw new StoreTooNewError(this.display, current, newest);
      if (current === newest) return;
      await c.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [this.lockName('migrate')]);
      try {
        current = await this.schemaVersion(c);
        if (current > newest) throw new StoreTooNewError(this.display, current, newest);
        for (const name of migrationFiles()) {
          const target = Number.parseInt(name, 10);
          if (target <= current) continue;
          await c.query('BEGIN');
          try {
            await c.query(`CREATE SCHEMA IF NOT EXISTS ${this.schema}`);
            await c.query('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
            await c.query(fs.readFileSync(path.join(MIGRATIONS_DIR, name), 'utf8'));
            await c.query('INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)', [target, Date.now()]);
            await c.query('COMMIT');
          } catch (err) {
            await c.query('ROLLBACK').catch(() => {});
            throw err;
          }
        }
      } finally {
        await c.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [this.lockName('migrate')]).catch(() => {});
      }
    } finally {
      c.release();
    }
  }

  /** One statement on any pooled connection. */
  private async q(sql: string, params: unknown[] = [], db: Db = this.pool): Promise<pg.QueryResult<Row>> {
    try {
      return await db.query<Row>(sql, params);
    } catch (err) {
      throw normalizeError(err);
    }
  }

  private async rows(sql: string, params: unknown[] = [], db: Db = this.pool): Promise<Row[]> {
    return (await this.q(sql, params, db)).rows;
  }

  private async one(sql: string, params: unknown[] = [], db: Db = this.pool): Promise<Row | undefined> {
    return (await this.q(sql, params, db)).rows[0];
  }

  /**
   * One statement as a named prepared statement on any pooled connection: parsed and planned
   * once per connection (planning the claim's or the finish's statement costs more than running
   * it). `name` must always come with the same `text`; the result's columns must not depend on
   * the table's (a column added by a later migration would break the prepared statement), so
   * rows come back as JSON.
   */
  private async prepared(name: string, text: string, params: unknown[]): Promise<Row | undefined> {
    return (await this.preparedRows(name, text, params))[0];
  }

  /** {@link prepared}, every row. */
  private async preparedRows(name: string, text: string, params: unknown[]): Promise<Row[]> {
    try {
      return (await this.pool.query<Row>({ name, text, values: params })).rows;
    } catch (err) {
      throw normalizeError(err);
    }
  }

  /**
   * Runs `fn` in one transaction on one pooled client (BEGIN … COMMIT, ROLLBACK on any
   * error). `lock` names a transaction advisory lock of this schema taken first.
   */
  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>, lock?: string): Promise<T> {
    let c: pg.PoolClient;
    try {
      c = await this.pool.connect();
    } catch (err) {
      throw normalizeError(err);
    }
    const onError = () => {};
    c.on('error', onError);
    let broken = false;
    try {
      await c.query('BEGIN');
      if (lock) await c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [this.lockName(lock)]);
      const result = await fn(c);
      await c.query('COMMIT');
      return result;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw normalizeError(err);
    } finally {
      c.removeListener('error', onError);
      // A client whose ROLLBACK failed (connection lost) is destroyed, not reused.
      c.release(broken || undefined);
    }
  }

  /**
   * Tells {@link watchWork}ers that work may be claimable (or a task ended, its result file due
   * in its origin checkout): `pg_notify` on this schema's
   * channel, inside the caller's transaction, so it is delivered at COMMIT (never for work
   * rolled back, never before the work is visible). Notifications of one transaction collapse into one.
   */
  private async notifyWork(c: pg.PoolClient): Promise<void> {
    await this.q("SELECT pg_notify($1, '')", [this.channel], c);
  }

  /**
   * Calls `onWork` whenever a handle on this schema (any process) commits claimable work, over a
   * dedicated `LISTEN` connection that is opened again after a cut (backoff
   * {@link LISTEN_RETRY_FIRST_MS} doubling to {@link LISTEN_RETRY_MAX_MS}), `onWork` called
   * once it is back (notifications in the gap are lost). Resolves once listening, or after
   * a first failed try (retrying in the background), with the function that ends the watch.
   */
  async watchWork(onWork: () => void): Promise<() => Promise<void>> {
    if (this.closed) throw new AgentQueueError('store_closed', `store ${this.display} is closed`);
    const watcher = new WorkWatcher({ client: this.listenConfig, channel: this.channel, onWork, retryFirstMs: LISTEN_RETRY_FIRST_MS, retryMaxMs: LISTEN_RETRY_MAX_MS });
    this.watchers.add(watcher);
    await watcher.start();
    return async () => {
      this.watchers.delete(watcher);
      await watcher.stop();
    };
  }

  private async taskById(id: number, db: Db = this.pool): Promise<Task | null> {
    const row = await this.one(`${TASK_SELECT} WHERE t.id = $1`, [id], db);
    return row ? rowTask(row) : null;
  }

  private async tasksWhere(where: string, params: unknown[], db: Db = this.pool): Promise<Task[]> {
    return (await this.rows(`${TASK_SELECT} WHERE ${where}`, params, db)).map(rowTask);
  }

  /** Tasks by id, in the order of `ids` (one query). */
  private async tasksByIds(ids: number[], db: Db = this.pool): Promise<Task[]> {
    if (ids.length === 0) return [];
    const byId = new Map((await this.tasksWhere('t.id = ANY($1::bigint[])', [ids], db)).map((t) => [t.id, t]));
    return ids.map((id) => byId.get(id)!);
  }

  /** The attempt row and its task (locked), if the attempt still holds the task's lease. */
  private async leased(c: pg.PoolClient, attemptId: string): Promise<{ task: Row; attempt: Row } | null> {
    const attempt = await this.one('SELECT * FROM attempts WHERE id = $1', [attemptId], c);
    if (!attempt) return null;
    const task = await this.one("SELECT * FROM tasks WHERE id = $1 AND state = 'running' AND lease_token = $2 FOR UPDATE", [attempt.task_id, attemptId], c);
    return task ? { task, attempt } : null;
  }

  /**
   * A batch without intake keys (and whose in-batch references point back) is one statement
   * ({@link insertPlain}); a batch with intake keys is a transaction under the `intake` lock,
   * since a recorded key is looked up before the entry is inserted.
   */
  async enqueue(tasks: NewTask[], now: number): Promise<Task[]> {
    if (tasks.length === 0) return [];
    if (plainBatch(tasks)) return this.insertPlain(tasks, now);
    const keyed = tasks.some((t) => t.intakeKey !== undefined);
    return this.tx(async (c) => {
      const created = (await this.insertTasks(c, tasks, now)).filter((t) => t.created);
      const result = await this.tasksByIds(created.map((t) => t.id), c);
      if (result.some((t) => t.state === 'queued')) await this.notifyWork(c);
      return result;
    }, keyed ? 'intake' : undefined);
  }

  /**
   * Inserts a {@link plainBatch} in one statement, its own transaction (one round trip): the
   * batch's ids taken from the table's sequence in one go and given in input order (ascending,
   * as one insert after the other would), the rows inserted from one JSON array
   * (`jsonb_populate_recordset` over the table's row type), an in-batch parent or dependency
   * (sent as `-(index + 1)`) resolved to its id, the dependencies inserted, and the work
   * channel notified when a task is queued; with `callbackUrl`, each task's callback row
   * (`enqueueRequest`'s). Gives the tasks in input order.
   */
  private async insertPlain(tasks: NewTask[], now: number, callbackUrl: string | null = null): Promise<Task[]> {
    const rows: Array<Record<string, unknown>> = [];
    const deps: Array<{ t: number; d: number; p: number }> = [];
    for (const [i, t] of tasks.entries()) {
      const parentId = t.parentBatch != null ? -(t.parentBatch + 1) : (t.parentId ?? null);
      rows.push(newTaskRow(t, now, parentId));
      const ids = [...t.dependsOnIds, ...(t.dependsOnBatch ?? []).map((b) => -(b + 1))];
      for (const [p, d] of ids.entries()) deps.push({ t: i + 1, d, p });
    }
    const cols = NEW_TASK_COLUMNS.join(', ');
    const picked = NEW_TASK_COLUMNS.map((c) => (c === 'parent_id' ? 'CASE WHEN r.parent_id < 0 THEN ids.a[-r.parent_id] ELSE r.parent_id END' : `r.${c}`)).join(', ');
    const dep = 'CASE WHEN d.d < 0 THEN ids.a[-d.d] ELSE d.d END';
    const result = await this.preparedRows(
      'agentq_enqueue',
      `WITH ids AS (
         SELECT array_agg(n ORDER BY n) AS a
           FROM (SELECT nextval(pg_get_serial_sequence('tasks', 'id')) AS n FROM generate_series(1, jsonb_array_length($1::jsonb))) s),
       ins AS (
         INSERT INTO tasks (id, ${cols})
         SELECT ids.a[r.ordinality], ${picked}
           FROM ids, jsonb_populate_recordset(NULL::tasks, $1::jsonb) WITH ORDINALITY AS r
         RETURNING tasks.*),
       deps AS (
         SELECT ids.a[d.t] AS task_id, ${dep} AS depends_on_id, d.p AS position
           FROM ids, jsonb_to_recordset($2::jsonb) AS d(t int, d bigint, p int)),
       linked AS (
         INSERT INTO task_deps (task_id, depends_on_id, position) SELECT task_id, depends_on_id, position FROM deps RETURNING task_id),
       called AS (
         INSERT INTO callbacks (task_id, url) SELECT ins.id, $4::text FROM ins WHERE $4::text IS NOT NULL RETURNING task_id),
       woken AS (SELECT pg_notify($3, '') WHERE EXISTS (SELECT 1 FROM ins WHERE ins.state = 'queued'))
       SELECT to_json(ins) AS task, ARRAY(SELECT deps.depends_on_id FROM deps WHERE deps.task_id = ins.id ORDER BY deps.position) AS dep_ids,
         (SELECT count(*) FROM linked) AS linked, (SELECT count(*) FROM called) AS called, (SELECT count(*) FROM woken) AS woken
         FROM ins ORDER BY ins.id`,
      [JSON.stringify(rows, wellFormedText), JSON.stringify(deps), this.channel, callbackUrl],
    );
    return result.map((row) => toTask(row.task as Row, (row.dep_ids as unknown[]).map(Number)));
  }

  /**
   * Inserts tasks (with dependencies and intake keys); call inside a transaction holding the
   * `intake` lock when keys are given. An entry whose intake key is already recorded is not
   * created again: its existing task stands in for it (also for in-batch dependencies).
   */
  private async insertTasks(c: pg.PoolClient, tasks: NewTask[], now: number): Promise<Array<{ id: number; created: boolean }>> {
    const created: number[] = [];
    const fresh: boolean[] = [];
    for (const task of tasks) {
      const { dependsOnIds, dependsOnBatch = [], parentId = null, parentBatch = null, intakeKey } = task;
      const taken = intakeKey === undefined ? undefined : await this.one('SELECT task_id FROM intake WHERE key = $1', [intakeKey], c);
      if (taken) {
        created.push(Number(taken.task_id));
        fresh.push(false);
        continue;
      }
      const values = Object.values(newTaskRow(task, now, parentBatch !== null ? (created[parentBatch] ?? null) : parentId));
      const row = await this.one(
        `INSERT INTO tasks (${NEW_TASK_COLUMNS.join(', ')}) VALUES (${values.map((_, i) => `$${i + 1}`).join(', ')}) RETURNING id`,
        values,
        c,
      );
      const id = Number(row!.id);
      const deps = [...dependsOnIds, ...dependsOnBatch.map((i) => created[i] ?? -1)];
      for (const [i, d] of deps.entries()) await this.q('INSERT INTO task_deps (task_id, depends_on_id, position) VALUES ($1, $2, $3)', [id, d, i], c);
      if (intakeKey !== undefined) await this.q('INSERT INTO intake (key, task_id, file_removed) VALUES ($1, $2, false)', [intakeKey, id], c);
      created.push(id);
      fresh.push(true);
    }
    return created.map((id, i) => ({ id, created: fresh[i] ?? false }));
  }

  async getIntake(key: string) {
    const row = await this.one('SELECT task_id, file_removed FROM intake WHERE key = $1', [key]);
    return row ? { taskId: Number(row.task_id), fileRemoved: flag(row.file_removed) } : null;
  }

  async markIntakeRemoved(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.q('UPDATE intake SET file_removed = true WHERE key = ANY($1::text[])', [keys]);
  }

  async listPendingIntake(): Promise<string[]> {
    return (await this.rows('SELECT key FROM intake WHERE NOT file_removed ORDER BY task_id')).map((r) => String(r.key));
  }

  async findActiveByDedupKey(key: string): Promise<Task | null> {
    const [t] = await this.tasksWhere("t.dedup_key = $1 AND t.state IN ('queued', 'running') ORDER BY t.id LIMIT 1", [key]);
    return t ?? null;
  }


  async findByName(name: string): Promise<Task | null> {
    const [t] = await this.tasksWhere('t.name = $1 ORDER BY t.id DESC LIMIT 1', [name]);
    return t ?? null;
  }

  async claim(o: ClaimOptions): Promise<Claim | null> {
    return (await this.claimMany(o, 1))[0] ?? null;
  }

  /**
   * One statement, `claim_tasks` (migration 014): the schema's claim lock, the running tasks
   * read once, the ready ones walked in claim order and taken while the limits allow, then one
   * `UPDATE` of those with their attempts inserted by a CTE, in the statement's own
   * transaction, so the lock is held for no round trip. `max` attempt ids are made here.
   */
  async claimMany(o: ClaimOptions, max: number): Promise<Claim[]> {
    if (o.agents.length === 0 || max < 1) return [];
    const rows = await this.preparedRows(
      'agentq_claim_tasks',
      'SELECT claimed_task AS task, opened_attempt AS attempt, dep_ids FROM claim_tasks($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)',
      [
        this.lockName('claim'),
        o.workerId,
        Array.from({ length: max }, () => crypto.randomUUID()),
        o.now + o.leaseMs,
        o.now,
        o.agents,
        o.concurrency,
        o.groupConcurrency ?? 1,
        JSON.stringify(o.agentConcurrency ?? {}),
        JSON.stringify(o.labels),
        JSON.stringify(o.accounts ?? {}),
        o.host ?? null,
      ],
    );
    return rows.map((row) => ({ task: toTask(row.task as Row, (row.dep_ids as unknown[]).map(Number)), attempt: toAttempt(row.attempt as Row) }));
  }

  async heartbeat(attemptId: string, now: number, leaseMs: number, lastActivityAt: number | null = null): Promise<Heartbeat> {
    const row = await this.one(
      "UPDATE tasks SET lease_expires_at = $1, last_activity_at = COALESCE($3::bigint, last_activity_at) WHERE lease_token = $2 AND state = 'running' RETURNING cancel_requested, taken_over_at",
      [now + leaseMs, attemptId, lastActivityAt],
    );
    return { ok: row !== undefined, cancelRequested: row ? flag(row.cancel_requested) : false, takeoverRequested: row ? row.taken_over_at !== null : false };
  }

  /** One statement (the attempt's update in a CTE): it lies between the claim and the agent's start. */
  async setAttemptAgent(attemptId: string, a: { agent: string; model: string | null }): Promise<void> {
    await this.prepared(
      'agentq_set_attempt_agent',
      `WITH attempt AS (UPDATE attempts SET agent = $1, model = $2 WHERE id = $3)
       UPDATE tasks SET run_agent = $1 WHERE lease_token = $3 AND state = 'running'`,
      [a.agent, a.model, attemptId],
    );
  }

  /** One statement: the attempt's update in a CTE, the task's after it. */
  async recordStats(attemptId: string, stats: Partial<RunStats>): Promise<void> {
    const { attempt, task } = knownStatsColumns(stats);
    if (attempt.length === 0) return;
    const assign = (cols: Array<[string, unknown]>, first: number) => cols.map(([col], n) => `${col} = $${n + first}`).join(', ');
    await this.q(
      `WITH attempt AS (UPDATE attempts SET ${assign(attempt, 2)} WHERE id = $1)
       UPDATE tasks SET ${assign(task, 2 + attempt.length)} WHERE lease_token = $1 AND state = 'running'`,
      [attemptId, ...attempt.map(([, v]) => v), ...task.map(([, v]) => v)],
    );
  }

  /** Closes the attempt row. */
  private async closeAttempt(c: pg.PoolClient, attempt: Row, outcome: AttemptOutcome, o: AttemptEnd): Promise<void> {
    const end = numbered(2, ATTEMPT_END_FIELDS, attemptEndSql, attemptEndValues(outcome, o));
    await this.q(`UPDATE attempts SET ${end.sql} WHERE id = $1`, [attempt.id, ...end.values], c);
  }

  /** The batch of one ({@link finishMany}). */
  async finish(attemptId: string, o: FinishOutcome): Promise<Task | null> {
    return (await this.finishMany([{ attemptId, outcome: o }]))[0] ?? null;
  }

  /**
   * One statement for the batch when it can (the common case): each task ends in its own
   * state — it is not `completed`, or it has no subtasks, so `taskEnd` has nothing to add —,
   * its attempt row is closed (output tails), its workspace record written when given, and
   * the work channel notified once, in the statement's own transaction, each fenced by its
   * lease. The items travel as one JSON array (`json_to_recordset`). Whether a task has
   * subtasks is its own column `has_subtasks` (migration 014: set by a trigger in the
   * transaction that inserts a subtask, a write of that row, so the UPDATE waits for it and
   * rechecks the row's newest version). A batch holding a completed task with subtasks (as
   * the statement's snapshot shows it) ends nothing in that statement, so the whole batch goes
   * to the transaction below, as the finish of one always did: every item there reads its
   * lease (null when lost) and a completed one its subtasks. An item whose attempt held no
   * lease in the statement's snapshot is null at once (a lease lost never comes back); one
   * that held it but was not ended (a subtask committed after that snapshot, seen by the
   * UPDATE's recheck) goes to that transaction too: only in that race are the two parts
   * committed apart.
   * An attempt named twice is ended once, by its first item (the later ones: null).
   */
  async finishMany(items: readonly FinishItem[]): Promise<Array<Task | null>> {
    const results: Array<Task | null> = items.map(() => null);
    const first = new Map<string, number>();
    items.forEach((item, i) => {
      if (!first.has(item.attemptId)) first.set(item.attemptId, i);
    });
    if (first.size === 0) return results;
    const rows = await this.preparedRows(
      'agentq_finish_many',
      `WITH items AS (
         SELECT * FROM json_to_recordset($1::json) AS i(${FINISH_ITEM_FIELDS.map(([name, type]) => `${name} ${type}`).join(', ')})),
       parents AS (
         SELECT 1 FROM items i JOIN tasks t ON t.lease_token = i.attempt
          WHERE i.guard AND t.has_subtasks AND t.state = 'running'),
       ended AS (
         UPDATE tasks SET ${taskEndSql((name) => `i.${name}`)},
             duration_ms = i.now - a.started_at
           FROM items i JOIN attempts a ON a.id = i.attempt
          WHERE tasks.id = a.task_id AND tasks.state = 'running' AND tasks.lease_token = i.attempt
            AND NOT (i.guard AND tasks.has_subtasks) AND NOT EXISTS (SELECT 1 FROM parents)
          RETURNING tasks.id, i.attempt, to_json(tasks.*) AS task),
       closed AS (
         UPDATE attempts SET ${attemptEndSql((name) => `i.${name}`)}
           FROM ended e JOIN items i ON i.attempt = e.attempt
          WHERE attempts.id = e.attempt
          RETURNING attempts.id),
       woken AS (SELECT pg_notify($2, '') WHERE EXISTS (SELECT 1 FROM ended))
       SELECT e.attempt, e.task, ARRAY(SELECT d.depends_on_id FROM task_deps d WHERE d.task_id = e.id ORDER BY d.position) AS dep_ids,
         (SELECT count(*) FROM closed) AS closed, (SELECT count(*) FROM woken) AS woken
         FROM ended e
       UNION ALL
       SELECT i.attempt, NULL::json, NULL::bigint[], NULL::bigint, NULL::bigint FROM items i
        WHERE NOT EXISTS (SELECT 1 FROM ended e WHERE e.attempt = i.attempt)
          AND EXISTS (SELECT 1 FROM tasks t WHERE t.lease_token = i.attempt AND t.state = 'running')`,
      [JSON.stringify([...first.keys()].map((id) => finishItemJson(id, items[first.get(id)!]!.outcome)), wellFormedText), this.channel],
    );
    // Left for the transaction: the items the statement saw holding their lease but did not end.
    const left = new Map<string, number>();
    for (const row of rows) {
      const i = first.get(String(row.attempt));
      if (i === undefined) continue;
      if (row.task === null) left.set(String(row.attempt), i);
      else results[i] = toTask(row.task as Row, (row.dep_ids as unknown[]).map(Number));
    }
    // The others not ended had lost their lease before the statement (it never comes back): null.
    if (left.size === 0) return results;
    await this.tx(async (c) => {
      for (const [attemptId, i] of left) results[i] = await this.finishInTx(c, attemptId, items[i]!.outcome);
      // A running slot is free (the shared limits), and dependents or the parent may be ready.
      if ([...left.values()].some((i) => results[i] !== null)) await this.notifyWork(c);
    });
    return results;
  }

  /** One finish in the caller's transaction: the lease read (null when lost), the attempt closed, the task ended by `taskEnd` (its subtasks read when completed). */
  private async finishInTx(c: pg.PoolClient, attemptId: string, o: FinishOutcome): Promise<Task | null> {
    const held = await this.leased(c, attemptId);
    if (!held) return null;
    await this.closeAttempt(c, held.attempt, o.attemptOutcome, o);
    const subtasks = o.state === 'completed' ? await this.subtaskRefs(c, Number(held.task.id)) : [];
    const { state, reason } = taskEnd(o.state, o.reason ?? null, subtasks);
    const set = numbered(3, TASK_END_FIELDS, taskEndSql, taskEndValues(state, reason, o));
    await this.q(`UPDATE tasks SET ${set.sql}, duration_ms = $2 WHERE id = $1`, [held.task.id, o.now - Number(held.attempt.started_at), ...set.values], c);
    return this.taskById(Number(held.task.id), c);
  }

  async requeue(attemptId: string, o: RequeueOptions): Promise<Task | null> {
    return this.tx(async (c) => {
      const held = await this.leased(c, attemptId);
      if (!held) return null;
      await this.closeAttempt(c, held.attempt, o.attemptOutcome, o);
      const burned = COUNTED_REQUEUE_OUTCOMES.includes(o.attemptOutcome);
      await this.q(
        `UPDATE tasks SET state = 'queued', run_after = $1, attempts = attempts - $2,
             lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
           WHERE id = $3`,
        [o.runAfter, burned ? 0 : 1, held.task.id],
        c,
      );
      await this.notifyWork(c); // a running slot is free; the task itself may be due again
      return this.taskById(Number(held.task.id), c);
    });
  }

  async block(
    attemptId: string,
    o: BlockOptions,
  ): Promise<Task | null> {
    return this.tx(async (c) => {
      const held = await this.leased(c, attemptId);
      if (!held) return null;
      await this.closeAttempt(c, held.attempt, 'blocked', { ...o, reason: `asked: ${o.question}` });
      await this.q(
        `UPDATE tasks SET state = 'blocked', question = $1, answer = NULL,
           session_id = COALESCE($2, session_id), run_model = COALESCE($3, run_model), cost_usd = COALESCE($4, cost_usd),
           lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
         WHERE id = $5`,
        [o.question, o.stats.sessionId, o.stats.model, o.stats.costUsd, held.task.id],
        c,
      );
      await this.notifyWork(c); // a running slot is free
      return this.taskById(Number(held.task.id), c);
    });
  }

  async handOver(attemptId: string, o: HandOverOptions): Promise<Task | null> {
    return this.tx(async (c) => {
      const held = await this.leased(c, attemptId);
      if (!held) return null;
      await this.closeAttempt(c, held.attempt, 'interrupted', { ...o, reason: TAKEN_OVER });
      await this.q(
        `UPDATE tasks SET state = 'blocked', question = NULL, answer = NULL, attempts = attempts - 1,
           taken_over_at = COALESCE(taken_over_at, $1), cancel_requested = false,
           session_id = COALESCE($2, session_id), run_model = COALESCE($3, run_model), cost_usd = COALESCE($4, cost_usd),
           lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
         WHERE id = $5`,
        [o.now, o.stats.sessionId, o.stats.model, o.stats.costUsd, held.task.id],
        c,
      );
      await this.notifyWork(c); // a running slot is free
      return this.taskById(Number(held.task.id), c);
    });
  }

  async takeOver(taskId: number, now: number): Promise<Task> {
    return this.tx(async (c) => {
      const t = await this.one('SELECT state FROM tasks WHERE id = $1 FOR UPDATE', [taskId], c);
      if (!t) throw new NotFoundError(`no task ${taskId}`);
      if (t.state === 'queued' || t.state === 'blocked') {
        await this.q("UPDATE tasks SET state = 'blocked', question = NULL, answer = NULL, taken_over_at = COALESCE(taken_over_at, $1) WHERE id = $2", [now, taskId], c);
      } else if (t.state === 'running') {
        await this.q('UPDATE tasks SET taken_over_at = COALESCE(taken_over_at, $1) WHERE id = $2', [now, taskId], c);
      }
      return (await this.taskById(taskId, c))!;
    });
  }

  async release(taskId: number, note: string, now: number): Promise<Task> {
    return this.tx(async (c) => {
      const t = await this.one('SELECT state, question, taken_over_at FROM tasks WHERE id = $1 FOR UPDATE', [taskId], c);
      if (!t) throw new NotFoundError(`no task ${taskId}`);
      if (t.state !== 'blocked' || t.taken_over_at === null) throw notTakenOver(taskId, String(t.state), t.question !== null);
      await this.q("UPDATE tasks SET state = 'queued', question = NULL, answer = $1, taken_over_at = NULL, run_after = $2 WHERE id = $3", [note, now, taskId], c);
      await this.notifyWork(c);
      return (await this.taskById(taskId, c))!;
    });
  }

  async answer(taskId: number, answer: string, now: number): Promise<Task> {
    return this.tx((c) => this.answerIn(c, taskId, answer, now));
  }

  /** `answer` inside a transaction. */
  private async answerIn(c: pg.PoolClient, taskId: number, answer: string, now: number): Promise<Task> {
    const t = await this.one('SELECT state, taken_over_at FROM tasks WHERE id = $1 FOR UPDATE', [taskId], c);
    if (!t) throw new NotFoundError(`no task ${taskId}`);
    if (t.state !== 'blocked') throw new AgentQueueError('not_blocked', `task ${taskId} is ${String(t.state)}, not blocked on a question`);
    if (t.taken_over_at !== null) throw takenOverNotBlocked(taskId);
    return this.queueAnswered(c, taskId, answer, now);
  }

  async answerRequest(taskId: number, answer: string, idempotency: { key: string; bodySha256: string }, now: number): Promise<AnswerResult> {
    // The key's lock makes "not recorded yet, so answer" one step for concurrent requests with one key.
    return this.tx(async (c): Promise<AnswerResult> => {
      const known = await this.one('SELECT body_sha256, task_id FROM idempotency_keys WHERE key = $1', [idempotency.key], c);
      if (known) return { kind: known.body_sha256 === idempotency.bodySha256 ? 'replayed' : 'conflict', task: (await this.taskById(Number(known.task_id), c))! };
      const task = await this.answerIn(c, taskId, answer, now);
      await this.q('INSERT INTO idempotency_keys (key, body_sha256, task_id, created_at) VALUES ($1, $2, $3, $4)', [idempotency.key, idempotency.bodySha256, taskId, now], c);
      return { kind: 'answered', task };
    }, `idempotency:${idempotency.key}`);
  }

  /** Queues a blocked task again with its answer (inside a transaction that locked it and checked it is blocked). */
  private async queueAnswered(c: pg.PoolClient, taskId: number, answer: string, now: number): Promise<Task> {
    await this.q("UPDATE tasks SET state = 'queued', answer = $1, run_after = $2 WHERE id = $3", [answer, now, taskId], c);
    await this.notifyWork(c);
    return (await this.taskById(taskId, c))!;
  }

  async claimRecurringTick(name: string, tick: number): Promise<boolean> {
    const advanced = await this.one(
      `INSERT INTO recurring (name, last_tick) VALUES ($1, $2)
       ON CONFLICT (name) DO UPDATE SET last_tick = excluded.last_tick WHERE recurring.last_tick < excluded.last_tick
       RETURNING name`,
      [name, tick],
    );
    return advanced !== undefined;
  }

  async knownDetectorKeys(name: string, keys: string[]): Promise<string[]> {
    if (keys.length === 0) return [];
    return (await this.rows('SELECT key FROM detector_keys WHERE detector = $1 AND key = ANY($2::text[])', [name, keys])).map((r) => String(r.key));
  }

  async recordDetectorRun(run: Omit<DetectorRun, 'created'>, entries: DetectedTask[], now: number): Promise<Task[]> {
    // The detector's lock: two runs of it (two dispatchers, overlapping ticks) take a key in once.
    return this.tx(async (c) => {
      const taken = await this.rows('SELECT key FROM detector_keys WHERE detector = $1 AND key = ANY($2::text[])', [run.name, entries.map((e) => e.key)], c);
      const known = new Set(taken.map((r) => String(r.key)));
      const fresh = entries.filter((e) => !known.has(e.key));
      const ids = (await this.insertTasks(c, fresh.map((e) => e.task), now)).map((t) => t.id);
      for (const [i, e] of fresh.entries()) {
        await this.q('INSERT INTO detector_keys (detector, key, task_id, created_at) VALUES ($1, $2, $3, $4)', [run.name, e.key, ids[i], now], c);
      }
      const cols = detectorRunColumns({ ...run, created: fresh.length, known: run.known + entries.length - fresh.length });
      await this.q(
        `INSERT INTO detector_runs (${cols.map(([col]) => col).join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})
         ON CONFLICT (name) DO UPDATE SET ${cols.map(([col]) => `${col} = excluded.${col}`).join(', ')}`,
        cols.map(([, v]) => v),
        c,
      );
      const created = await this.tasksByIds(ids, c);
      if (created.some((t) => t.state === 'queued')) await this.notifyWork(c);
      return created;
    }, `detector:${run.name}`);
  }

  async listDetectorRuns(): Promise<DetectorRun[]> {
    return (await this.rows('SELECT * FROM detector_runs ORDER BY name COLLATE "C"')).map(toDetectorRun);
  }

  async getRecurringTick(name: string): Promise<number | null> {
    const row = await this.one('SELECT last_tick FROM recurring WHERE name = $1', [name]);
    return row ? Number(row.last_tick) : null;
  }

  async recordRecurringTick(name: string, tick: number, task: NewTask | null, now: number): Promise<Task | null> {
    return this.tx(async (c) => {
      // One statement decides: a later tick advances the row (locked until commit), an equal or older one changes nothing.
      const advanced = await this.one(
        `INSERT INTO recurring (name, last_tick) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET last_tick = excluded.last_tick WHERE recurring.last_tick < excluded.last_tick
         RETURNING name`,
        [name, tick],
        c,
      );
      if (!advanced || !task) return null;
      const [created] = await this.insertTasks(c, [task], now);
      const t = await this.taskById(created!.id, c);
      if (t?.state === 'queued') await this.notifyWork(c);
      return t;
    });
  }

  /** A task's subtasks as {@link parentVerdict} reads them, in arrival order. */
  private async subtaskRefs(c: Db, taskId: number): Promise<TaskRef[]> {
    return (await this.rows('SELECT id, name, state FROM tasks WHERE parent_id = $1 ORDER BY id', [taskId], c)).map((r) => ({
      id: Number(r.id),
      name: String(r.name),
      state: r.state as TaskState,
    }));
  }

  /**
   * Every dispatcher tick calls it: one read first, and the transaction (and its lock) only
   * when a parent waits. A parent that starts waiting after that read is settled next tick.
   */
  async settleParents(now: number): Promise<Task[]> {
    if (!(await this.prepared('agentq_any_waiting', "SELECT 1 FROM tasks WHERE state = 'waiting' LIMIT 1", []))) return [];
    return this.tx(async (c) => {
      const ended: number[] = [];
      // A parent may itself be a subtask: loop until nothing changes.
      for (let changed = true; changed; ) {
        changed = false;
        for (const r of await this.rows("SELECT id FROM tasks WHERE state = 'waiting' ORDER BY id", [], c)) {
          const id = Number(r.id);
          const verdict = parentVerdict(await this.subtaskRefs(c, id));
          if (verdict.state === 'waiting') continue;
          const done = await this.q("UPDATE tasks SET state = $1, failed_reason = $2, finished_at = $3 WHERE id = $4 AND state = 'waiting'", [
            verdict.state,
            verdict.state === 'failed' ? verdict.reason : null,
            now,
            id,
          ], c);
          if (done.rowCount) {
            ended.push(id);
            changed = true;
          }
        }
      }
      const parents = await this.tasksByIds(ended, c);
      // A parent that completed may make its dependents ready; any that ended has a result file due in its origin checkout.
      if (parents.length) await this.notifyWork(c);
      return parents;
    }, 'settle');
  }

  async listSubtasks(taskId: number): Promise<Task[]> {
    return this.tasksWhere('t.parent_id = $1 ORDER BY t.id', [taskId]);
  }

  /** Every dispatcher tick calls it: one read first, and the transaction (and its lock) only when a queued task waits on one that ended badly. */
  async failBlockedDependents(now: number): Promise<Task[]> {
    const blocked = await this.prepared(
      'agentq_any_blocked_dependent',
      `SELECT 1 FROM task_deps d JOIN tasks dt ON dt.id = d.depends_on_id JOIN tasks t ON t.id = d.task_id
        WHERE t.state = 'queued' AND dt.state = ANY($1::text[]) LIMIT 1`,
      [UNSUCCESSFUL_STATES],
    );
    if (!blocked) return [];
    return this.tx(async (c) => {
      const failed: number[] = [];
      // A failure cascades: loop until no queued task waits on an ended one.
      for (;;) {
        const rows = await this.rows(
          `SELECT t.id, dt.id AS dep_id, dt.name AS dep_name, dt.state AS dep_state
           FROM tasks t JOIN task_deps d ON d.task_id = t.id JOIN tasks dt ON dt.id = d.depends_on_id
           WHERE t.state = 'queued' AND dt.state = ANY($1::text[])
           ORDER BY t.id, d.position`,
          [UNSUCCESSFUL_STATES],
          c,
        );
        if (rows.length === 0) {
          if (failed.length) await this.notifyWork(c); // their result files are due in their origin checkouts
          return this.tasksByIds(failed, c);
        }
        for (const r of rows) {
          const reason = dependencyFailure({ id: Number(r.dep_id), name: String(r.dep_name), state: r.dep_state as TaskState })!;
          const done = await this.q("UPDATE tasks SET state = 'failed', failed_reason = $1, finished_at = $2 WHERE id = $3 AND state = 'queued'", [reason, now, r.id], c);
          if (done.rowCount) failed.push(Number(r.id));
        }
      }
    }, 'settle');
  }

  async registerWorker(w: WorkerInfo): Promise<void> {
    await this.q(
      `INSERT INTO workers (id, host, pid, started_at, heartbeat_at, labels, root) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at`,
      [w.id, w.host, w.pid, w.startedAt, w.heartbeatAt, JSON.stringify(w.labels), w.root],
    );
  }

  async workerHeartbeat(workerId: string, now: number): Promise<void> {
    await this.q('UPDATE workers SET heartbeat_at = $1 WHERE id = $2', [now, workerId]);
  }

  async removeWorker(workerId: string): Promise<void> {
    await this.q('DELETE FROM workers WHERE id = $1', [workerId]);
  }

  async listWorkers(): Promise<WorkerInfo[]> {
    return (await this.rows('SELECT * FROM workers ORDER BY started_at, id COLLATE "C"')).map(toWorker);
  }

  async listRunning(): Promise<StaleClaim[]> {
    return (await this.rows(`${TASK_SELECT} WHERE t.state = 'running' ORDER BY t.id`)).map((r) => toStaleClaim(r, rowTask(r)));
  }

  async pauseAgent(p: AgentPause, strikes = 0): Promise<void> {
    await this.q(
      `INSERT INTO agent_pauses (agent, until, reason, strikes) VALUES ($1, $2, $3, $4)
       ON CONFLICT (agent) DO UPDATE SET until = excluded.until, reason = excluded.reason, strikes = excluded.strikes`,
      [p.agent, p.until, p.reason, strikes],
    );
  }

  async agentStrikes(agent: string): Promise<number> {
    const row = await this.one('SELECT strikes FROM agent_pauses WHERE agent = $1', [agent]);
    return row ? Number(row.strikes) : 0;
  }

  async clearAgentStrikes(agent: string): Promise<void> {
    await this.q('UPDATE agent_pauses SET strikes = 0 WHERE agent = $1 AND strikes > 0', [agent]);
  }

  async listPauses(now: number): Promise<AgentPause[]> {
    return (await this.rows('SELECT * FROM agent_pauses WHERE until > $1 ORDER BY agent COLLATE "C"', [now])).map(toPause);
  }

  async extendPause(p: AgentPause): Promise<boolean> {
    const r = await this.q(
      `INSERT INTO agent_pauses (agent, until, reason) VALUES ($1, $2, $3)
       ON CONFLICT (agent) DO UPDATE SET until = excluded.until, reason = excluded.reason
         WHERE excluded.until > agent_pauses.until`,
      [p.agent, p.until, p.reason],
    );
    return (r.rowCount ?? 0) > 0;
  }

  async takeRateToken(agent: string, bucket: RateBucket, now: number): Promise<RateToken> {
    checkBucket(agent, bucket);
    return this.tx(async (c) => {
      // A bucket never used starts full; creating its row first gives every taker a row to lock.
      await this.q('INSERT INTO agent_buckets (agent, tokens, updated_at) VALUES ($1, $2, $3) ON CONFLICT (agent) DO NOTHING', [agent, bucket.capacity, now], c);
      const row = (await this.one('SELECT tokens, updated_at FROM agent_buckets WHERE agent = $1 FOR UPDATE', [agent], c))!;
      const { token, updatedAt } = takeToken({ tokens: Number(row.tokens), updatedAt: Number(row.updated_at) }, bucket, now);
      await this.q('UPDATE agent_buckets SET tokens = $1, updated_at = $2 WHERE agent = $3', [token.tokens, updatedAt, agent], c);
      return token;
    });
  }

  async getTask(idOrName: string | number): Promise<Task | null> {
    const text = String(idOrName).replace(/^#/, '');
    if (/^\d+$/.test(text)) return Number(text) <= Number.MAX_SAFE_INTEGER ? this.taskById(Number(text)) : null;
    return this.findByName(text);
  }

  async listTasks(filter: TaskFilter = {}): Promise<Task[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    const arg = (v: unknown) => {
      args.push(v);
      return `$${args.length}`;
    };
    if (filter.state) where.push(`t.state = ${arg(filter.state)}`);
    if (filter.agent) {
      const a = arg(filter.agent);
      where.push(`(t.agent = ${a} OR t.run_agent = ${a})`);
    }
    if (filter.tag) where.push(`EXISTS (SELECT 1 FROM jsonb_array_elements_text(t.tags::jsonb) AS tag WHERE tag = ${arg(filter.tag)})`);
    if (filter.priority) where.push(`t.priority = ${arg(filter.priority)}`);
    if (filter.beforeId !== undefined) where.push(`t.id < ${arg(filter.beforeId)}`);
    const limit = arg(filter.limit ?? null);
    return this.tasksWhere(`${where.length ? where.join(' AND ') : 'true'} ORDER BY t.id ${filter.order === 'desc' ? 'DESC' : ''} LIMIT ${limit}::bigint`, args);
  }

  async listAttempts(taskId: number): Promise<Attempt[]> {
    return (await this.rows(`SELECT ${ATTEMPT_COLUMNS} FROM attempts WHERE task_id = $1 ORDER BY number`, [taskId])).map(toAttempt);
  }

  async recordVerification(attemptId: string, v: NewVerification): Promise<boolean> {
    return this.tx(async (c) => {
      const held = await this.leased(c, attemptId);
      if (!held) return false;
      await this.q(
        `INSERT INTO verifications (attempt_id, number, task_id, command, exit_code, timed_out, duration_ms, output_path, output_tail, started_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (attempt_id, number) DO UPDATE SET command = excluded.command, exit_code = excluded.exit_code,
           timed_out = excluded.timed_out, duration_ms = excluded.duration_ms, output_path = excluded.output_path,
           output_tail = excluded.output_tail, started_at = excluded.started_at`,
        [attemptId, v.number, held.task.id, v.command, v.exitCode, v.timedOut, v.durationMs, v.outputPath, v.outputTail, v.startedAt],
        c,
      );
      return true;
    });
  }

  async listVerifications(taskId: number): Promise<Verification[]> {
    const rows = await this.rows(
      `SELECT v.*, a.number AS attempt_number FROM verifications v JOIN attempts a ON a.id = v.attempt_id
       WHERE v.task_id = $1 ORDER BY a.number, v.number`,
      [taskId],
    );
    return rows.map(toVerification);
  }

  async attemptOutput(attemptId: string): Promise<AttemptOutput | null> {
    const row = await this.one('SELECT stdout_tail, stdout_bytes, stderr_tail, stderr_bytes FROM attempts WHERE id = $1', [attemptId]);
    return row ? toAttemptOutput(row) : null;
  }

  async countByState(): Promise<Record<TaskState, number>> {
    const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
    for (const r of await this.rows('SELECT state, count(*) AS n FROM tasks GROUP BY state')) counts[r.state as TaskState] = Number(r.n);
    return counts;
  }

  async agentUsage(since: number): Promise<AgentUsage[]> {
    const rows = await this.rows(
      `SELECT agent,
         count(*) FILTER (WHERE outcome = 'running') AS running,
         count(*) FILTER (WHERE started_at >= $1) AS attempts,
         coalesce(sum(cost_usd) FILTER (WHERE started_at >= $1), 0) AS cost,
         coalesce(sum(input_tokens) FILTER (WHERE started_at >= $1), 0) AS input,
         coalesce(sum(output_tokens) FILTER (WHERE started_at >= $1), 0) AS output
       FROM attempts WHERE outcome = 'running' OR started_at >= $1 GROUP BY agent ORDER BY agent COLLATE "C"`,
      [since],
    );
    return rows.map(toAgentUsage);
  }

  /** Reads the window's attempts (with their task's tags when grouping by tag) and groups them with the shared `summarizeUsage`. */
  async usage(query: UsageQuery): Promise<UsageRow[]> {
    const withTags = (query.by ?? USAGE_DIMENSIONS).includes('tag');
    const rows = await this.rows(
      `SELECT a.started_at, a.agent, a.model, a.outcome, a.cost_usd, a.input_tokens, a.output_tokens,
              ${withTags ? 't.tags' : "'[]'"} AS tags
         FROM attempts a ${withTags ? 'JOIN tasks t ON t.id = a.task_id' : ''}
        WHERE a.started_at >= $1 AND ($2::bigint IS NULL OR a.started_at < $2::bigint)`,
      [query.since, query.until ?? null],
    );
    const records = rows.map((r) => toUsageRecord(r, withTags));
    return summarizeUsage(records, query);
  }

  async listUnreported(origin?: TaskOrigin): Promise<Task[]> {
    return origin === undefined ? this.tasksWhere(UNREPORTED_WHERE.all, []) : this.tasksWhere(UNREPORTED_WHERE.ofOrigin, [origin.host, origin.root]);
  }

  async setResultPath(taskId: number, p: string): Promise<void> {
    await this.q('UPDATE tasks SET result_path = $1 WHERE id = $2', [p, taskId]);
  }

  async cancel(taskId: number, now: number): Promise<Task> {
    return this.tx(async (c) => {
      const t = await this.one('SELECT state FROM tasks WHERE id = $1 FOR UPDATE', [taskId], c);
      if (!t) throw new NotFoundError(`no task ${taskId}`);
      if (t.state === 'queued' || t.state === 'blocked') {
        await this.q("UPDATE tasks SET state = 'cancelled', failed_reason = 'cancelled by user', finished_at = $1, taken_over_at = NULL WHERE id = $2", [now, taskId], c);
        await this.notifyWork(c); // its result file is due in its origin checkout
      } else if (t.state === 'running') {
        await this.q('UPDATE tasks SET cancel_requested = true WHERE id = $1', [taskId], c);
      }
      return (await this.taskById(taskId, c))!;
    });
  }

  async retry(taskId: number, now: number): Promise<Task> {
    return this.tx(async (c) => {
      const t = await this.one('SELECT state FROM tasks WHERE id = $1 FOR UPDATE', [taskId], c);
      if (!t) throw new NotFoundError(`no task ${taskId}`);
      const state = t.state as TaskState;
      if (!isTerminal(state) || state === 'completed' || state === 'invalid') return (await this.taskById(taskId, c))!;
      await this.q(
        `UPDATE tasks SET state = 'queued', attempts = 0, run_after = $1, finished_at = NULL, failed_reason = NULL,
             result = NULL, result_path = NULL, cancel_requested = false, taken_over_at = NULL WHERE id = $2`,
        [now, taskId],
        c,
      );
      await this.notifyWork(c);
      // Its next end is reported to its callback again.
      await this.q(
        `UPDATE callbacks SET state = 'pending', attempts = 0, last_error = NULL, delivered_at = NULL, next_try_at = NULL
           WHERE task_id = $1`,
        [taskId],
        c,
      );
      return (await this.taskById(taskId, c))!;
    });
  }

  /**
   * A request without an idempotency key nor a subtask limit to check is one statement
   * ({@link insertPlain}, its callback row included); else a transaction (under the key's lock).
   */
  async enqueueRequest(task: NewTask, o: RequestOptions, now: number): Promise<RequestResult> {
    if (!o.idempotency && (o.maxSubtasks == null || task.parentId == null) && plainBatch([task])) {
      const [created] = await this.insertPlain([task], now, o.callbackUrl ?? null);
      return { kind: 'created', task: created! };
    }
    // The key's lock makes "not recorded yet, so create" one step for concurrent requests with one key.
    const lock = o.idempotency ? `idempotency:${o.idempotency.key}` : undefined;
    return this.tx(async (c): Promise<RequestResult> => {
      const found = async (kind: RequestResult['kind'], id: number): Promise<RequestResult> => ({ kind, task: (await this.taskById(id, c))! });
      if (o.idempotency) {
        const known = await this.one('SELECT body_sha256, task_id FROM idempotency_keys WHERE key = $1', [o.idempotency.key], c);
        if (known) return found(known.body_sha256 === o.idempotency.bodySha256 ? 'replayed' : 'conflict', Number(known.task_id));
      }
      // The parent's row lock makes "count, then insert" one step for concurrent requests on one
      // parent (under READ COMMITTED the count after the lock sees every committed subtask).
      const parentId = task.parentId ?? null;
      if (o.maxSubtasks != null && parentId !== null) {
        const parent = await this.one('SELECT id, name FROM tasks WHERE id = $1 FOR NO KEY UPDATE', [parentId], c);
        if (parent) {
          const counted = await this.one('SELECT COUNT(*) AS subtasks FROM tasks WHERE parent_id = $1', [parentId], c);
          if (Number(counted?.subtasks) >= o.maxSubtasks) throw new SubtaskLimitError({ id: parentId, name: String(parent.name) }, o.maxSubtasks);
        }
      }
      const [created] = await this.insertTasks(c, [task], now);
      const id = created!.id;
      if (o.idempotency) {
        await this.q('INSERT INTO idempotency_keys (key, body_sha256, task_id, created_at) VALUES ($1, $2, $3, $4)', [o.idempotency.key, o.idempotency.bodySha256, id, now], c);
      }
      if (o.callbackUrl) await this.q('INSERT INTO callbacks (task_id, url) VALUES ($1, $2)', [id, o.callbackUrl], c);
      const result = await found('created', id);
      if (result.task.state === 'queued') await this.notifyWork(c);
      return result;
    }, lock);
  }

  async findIdempotencyKey(key: string): Promise<{ bodySha256: string; taskId: number } | null> {
    const row = await this.one('SELECT body_sha256, task_id FROM idempotency_keys WHERE key = $1', [key]);
    return row ? { bodySha256: String(row.body_sha256), taskId: Number(row.task_id) } : null;
  }

  async getCallback(taskId: number): Promise<CallbackDelivery | null> {
    const row = await this.one('SELECT * FROM callbacks WHERE task_id = $1', [taskId]);
    return row ? toCallback(row) : null;
  }

  async claimDueCallbacks(now: number, leaseMs: number, limit: number): Promise<DueCallback[]> {
    return this.tx(async (c) => {
      const due = await this.rows(
        `SELECT c.* FROM callbacks c JOIN tasks t ON t.id = c.task_id
           WHERE c.state = 'pending' AND (c.next_try_at IS NULL OR c.next_try_at <= $1) AND t.state = ANY($2::text[])
           ORDER BY c.task_id LIMIT $3
           FOR UPDATE OF c SKIP LOCKED`,
        [now, TERMINAL_STATES, limit],
        c,
      );
      if (due.length === 0) return [];
      const ids = due.map((r) => Number(r.task_id));
      await this.q('UPDATE callbacks SET next_try_at = $1 WHERE task_id = ANY($2::bigint[])', [now + leaseMs, ids], c);
      const tasks = await this.tasksByIds(ids, c);
      return due.map((r, i) => ({ delivery: toCallback(r), task: tasks[i]! }));
    });
  }

  async recordCallbackTry(taskId: number, t: CallbackTry): Promise<CallbackDelivery | null> {
    const c = tryColumns(t);
    const row = await this.one(
      `UPDATE callbacks SET state = $1, attempts = attempts + $2, last_error = CASE WHEN $3 THEN last_error ELSE $4::text END,
           delivered_at = $5, next_try_at = $6
         WHERE task_id = $7 RETURNING *`,
      [c.state, c.counted, c.keepError, c.error, c.deliveredAt, c.nextTryAt, taskId],
    );
    return row ? toCallback(row) : null;
  }

  async recordNotifications(rows: NewNotification[], now: number): Promise<Notification[]> {
    if (rows.length === 0) return [];
    // One statement: rows already recorded are skipped (ON CONFLICT), created ones returned in the order given.
    const created = await this.rows(
      `INSERT INTO notifications (key, target, event, task_id, payload, created_at)
         SELECT r.key, r.target, r.event, r.task_id, r.payload, $6
           FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[]) WITH ORDINALITY AS r(key, target, event, task_id, payload, n)
           ORDER BY r.n
         ON CONFLICT (key, target) DO NOTHING
         RETURNING *`,
      [rows.map((r) => r.key), rows.map((r) => r.target), rows.map((r) => r.event), rows.map((r) => r.taskId), rows.map((r) => r.payload), now],
    );
    return created.map(toNotification).sort((a, b) => a.id - b.id);
  }

  async claimDueNotifications(targets: string[], now: number, leaseMs: number, limit: number): Promise<Notification[]> {
    if (targets.length === 0) return [];
    return this.tx(async (c) => {
      const due = await this.rows(
        `SELECT id FROM notifications
           WHERE state = 'pending' AND (next_try_at IS NULL OR next_try_at <= $1) AND target = ANY($2::text[])
           ORDER BY id LIMIT $3
           FOR UPDATE SKIP LOCKED`,
        [now, targets, limit],
        c,
      );
      if (due.length === 0) return [];
      const leased = await this.rows('UPDATE notifications SET next_try_at = $1 WHERE id = ANY($2::bigint[]) RETURNING *', [now + leaseMs, due.map((r) => Number(r.id))], c);
      return leased.map(toNotification).sort((a, b) => a.id - b.id);
    });
  }

  async recordNotificationTry(id: number, t: CallbackTry): Promise<Notification | null> {
    const c = tryColumns(t);
    const row = await this.one(
      `UPDATE notifications SET state = $1, attempts = attempts + $2, last_error = CASE WHEN $3 THEN last_error ELSE $4::text END,
           last_try_at = CASE WHEN $3 THEN last_try_at ELSE $5::bigint END, delivered_at = $6, next_try_at = $7
         WHERE id = $8 RETURNING *`,
      [c.state, c.counted, c.keepError, c.error, t.now, c.deliveredAt, c.nextTryAt, id],
    );
    return row ? toNotification(row) : null;
  }

  async notificationHealth(): Promise<NotificationHealth[]> {
    const rows = await this.rows(
      `SELECT n.target,
         count(*) FILTER (WHERE n.state = 'delivered') AS delivered,
         count(*) FILTER (WHERE n.state = 'pending') AS pending,
         count(*) FILTER (WHERE n.state = 'pending' AND n.last_error IS NOT NULL) AS retrying,
         count(*) FILTER (WHERE n.state = 'failed') AS failed,
         max(n.last_try_at) FILTER (WHERE n.last_error IS NOT NULL) AS last_error_at,
         max(n.delivered_at) AS last_delivered_at,
         (SELECT e.last_error FROM notifications e WHERE e.target = n.target AND e.last_error IS NOT NULL
            ORDER BY e.last_try_at DESC NULLS LAST, e.id DESC LIMIT 1) AS last_error
       FROM notifications n GROUP BY n.target ORDER BY n.target COLLATE "C"`,
    );
    return rows.map(toNotificationHealth);
  }

  async queueMark(): Promise<QueueMark> {
    const row = (await this.one(
      `SELECT (SELECT count(*) FROM tasks WHERE state IN ('queued', 'running', 'waiting')) AS active,
              (SELECT coalesce(max(id), 0) FROM tasks) AS newest,
              (SELECT count(*) FROM attempts) AS attempts`,
    ))!;
    return { active: Number(row.active), mark: `${Number(row.newest)}:${Number(row.attempts)}` };
  }

  async addAnswerToken(t: AnswerToken, now: number): Promise<void> {
    await this.tx(async (c) => {
      await this.q('DELETE FROM answer_tokens WHERE expires_at < $1', [now - 86_400_000], c);
      await this.q('INSERT INTO answer_tokens (token_sha256, task_id, claims, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)', [t.tokenSha256, t.taskId, t.claims, now, t.expiresAt], c);
    });
  }

  async answerWithToken(taskId: number, tokenSha256: string, answer: string, now: number): Promise<TokenAnswer> {
    return this.tx(async (c): Promise<TokenAnswer> => {
      // The task first, locked (as answer() does), then its token: two uses of one link wait on the task's lock.
      const t = await this.one('SELECT state, claims, taken_over_at FROM tasks WHERE id = $1 FOR UPDATE', [taskId], c);
      const token = await this.one('SELECT * FROM answer_tokens WHERE token_sha256 = $1', [tokenSha256], c);
      if (!token || !t || Number(token.task_id) !== taskId) return { outcome: 'unknown' };
      if (token.used_at !== null) return { outcome: 'used' };
      if (Number(token.expires_at) <= now) return { outcome: 'expired' };
      if (t.state !== 'blocked' || t.taken_over_at !== null || Number(t.claims) !== Number(token.claims)) return { outcome: 'closed' };
      await this.q('UPDATE answer_tokens SET used_at = $1 WHERE task_id = $2 AND claims = $3 AND used_at IS NULL', [now, taskId, token.claims], c);
      return { outcome: 'answered', task: await this.queueAnswered(c, taskId, answer, now) };
    });
  }

  async saveA2aPushConfig(p: A2aPushConfig, now: number): Promise<void> {
    await this.q(
      `INSERT INTO a2a_push_configs (task_id, config_id, url, token, authentication, created_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (task_id, config_id) DO UPDATE SET url = excluded.url, token = excluded.token, authentication = excluded.authentication,
           pushed_version = NULL, sending_version = NULL, attempts = 0, last_error = NULL, delivered_at = NULL, next_try_at = NULL`,
      [p.taskId, p.id, p.url, p.token, p.authentication === null ? null : JSON.stringify(p.authentication), now],
    );
  }

  async listA2aPushConfigs(taskId: number): Promise<A2aPush[]> {
    return (await this.rows('SELECT * FROM a2a_push_configs WHERE task_id = $1 ORDER BY created_at, config_id', [taskId])).map(toA2aPush);
  }

  async deleteA2aPushConfig(taskId: number, configId: string): Promise<boolean> {
    return ((await this.q('DELETE FROM a2a_push_configs WHERE task_id = $1 AND config_id = $2', [taskId, configId])).rowCount ?? 0) > 0;
  }

  async claimDueA2aPushes(now: number, leaseMs: number, limit: number): Promise<DueA2aPush[]> {
    return this.tx(async (c) => {
      const due = await this.rows(
        `SELECT p.task_id, p.config_id, ${TASK_VERSION_SQL} AS version FROM a2a_push_configs p JOIN tasks t ON t.id = p.task_id
           WHERE (p.pushed_version IS NULL OR p.pushed_version <> ${TASK_VERSION_SQL}) AND (p.next_try_at IS NULL OR p.next_try_at <= $1)
           ORDER BY p.task_id, p.config_id LIMIT $2
           FOR UPDATE OF p SKIP LOCKED`,
        [now, limit],
        c,
      );
      if (due.length === 0) return [];
      const out: DueA2aPush[] = [];
      const tasks = await this.tasksByIds(due.map((r) => Number(r.task_id)), c);
      for (const [i, r] of due.entries()) {
        const version = String(r.version);
        const row = await this.one(
          `UPDATE a2a_push_configs SET next_try_at = $1, attempts = CASE WHEN sending_version IS NOT DISTINCT FROM $2 THEN attempts ELSE 0 END, sending_version = $2
             WHERE task_id = $3 AND config_id = $4 RETURNING *`,
          [now + leaseMs, version, r.task_id, r.config_id],
          c,
        );
        out.push({ push: toA2aPush(row!), task: tasks[i]!, version });
      }
      return out;
    });
  }

  async recordA2aPushTry(taskId: number, configId: string, version: string, t: CallbackTry): Promise<A2aPush | null> {
    const c = tryColumns(t);
    const settled = c.state !== 'pending';
    const row = await this.one(
      `UPDATE a2a_push_configs SET attempts = attempts + $1, last_error = CASE WHEN $2 THEN last_error ELSE $3::text END,
           delivered_at = coalesce($4::bigint, delivered_at), pushed_version = CASE WHEN $5 THEN $6::text ELSE pushed_version END,
           next_try_at = $7
         WHERE task_id = $8 AND config_id = $9 AND sending_version = $6 RETURNING *`,
      [c.counted, c.keepError, c.error, c.deliveredAt, settled, version, c.nextTryAt, taskId, configId],
    );
    return row ? toA2aPush(row) : null;
  }

  // --- delegations -------------------------------------------------------------------

  private openDelegationRow(taskId: number, db: Db = this.pool): Promise<Row | undefined> {
    return this.one('SELECT * FROM delegations WHERE task_id = $1 AND NOT (state = ANY($2::text[])) ORDER BY id DESC LIMIT 1', [taskId, DELEGATION_END_STATES], db);
  }

  async createDelegation(d: NewDelegation): Promise<{ delegation: Delegation; created: boolean }> {
    return this.tx(async (c) => {
      // The task's row lock orders two creations for one task: the second sees the first's row.
      await this.q('SELECT id FROM tasks WHERE id = $1 FOR UPDATE', [d.taskId], c);
      const open = await this.openDelegationRow(d.taskId, c);
      if (open) return { delegation: toDelegation(open), created: false };
      const row = await this.one(
        `INSERT INTO delegations (task_id, attempt_id, remote, url, message_id, state, created_at, progress_at, updated_at)
           VALUES ($1, $2, $3, $4, $2, 'pending', $5, $5, $5) RETURNING *`,
        [d.taskId, d.attemptId, d.remote, d.url, d.now],
        c,
      );
      return { delegation: toDelegation(row!), created: true };
    });
  }

  async openDelegation(taskId: number): Promise<Delegation | null> {
    const row = await this.openDelegationRow(taskId);
    return row ? toDelegation(row) : null;
  }

  async getDelegation(id: number): Promise<Delegation | null> {
    const row = await this.one('SELECT * FROM delegations WHERE id = $1', [id]);
    return row ? toDelegation(row) : null;
  }

  async updateDelegation(id: number, expected: DelegationState, patch: DelegationPatch, now: number): Promise<Delegation | null> {
    const cols = delegationPatchColumns(patch, now);
    const sets = cols.map(([c], i) => `${c} = $${i + 1}`).join(', ');
    const row = await this.one(`UPDATE delegations SET ${sets} WHERE id = $${cols.length + 1} AND state = $${cols.length + 2} RETURNING *`, [
      ...cols.map(([, v]) => v),
      id,
      expected,
    ]);
    return row ? toDelegation(row) : null;
  }

  async listDelegations(filter: DelegationFilter = {}): Promise<Delegation[]> {
    const conditions: Array<[string, unknown]> = [];
    if (filter.state !== undefined) conditions.push(['state =', filter.state]);
    if (filter.open) conditions.push(['NOT state = ANY', DELEGATION_END_STATES]);
    if (filter.taskId !== undefined) conditions.push(['task_id =', filter.taskId]);
    if (filter.beforeId !== undefined) conditions.push(['id <', filter.beforeId]);
    const where = conditions.map(([c], i) => (c.endsWith('ANY') ? `${c}($${i + 1}::text[])` : `${c} $${i + 1}`));
    const sql = `SELECT * FROM delegations ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT $${where.length + 1}`;
    return (await this.rows(sql, [...conditions.map(([, v]) => v), filter.limit ?? 100])).map(toDelegation);
  }

  /**
   * Whether a write transaction can start within `waitMs`: a connection is had, the database
   * takes writes (not a read-only standby or `default_transaction_read_only`), and the claim
   * lock is free within `waitMs` (`lock_timeout`). Null if so, else why not. Writes nothing.
   */
  async probeWrite(waitMs: number): Promise<string | null> {
    try {
      return await this.tx(async (c) => {
        await c.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(waitMs))}`);
        const r = await c.query("SELECT pg_is_in_recovery() AS standby, current_setting('transaction_read_only') AS ro");
        if (r.rows[0]?.standby) return 'database is a read-only standby (in recovery)';
        if (r.rows[0]?.ro === 'on') return 'database is read-only';
        await c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [this.lockName('claim')]);
        return null;
      });
    } catch (err) {
      if (!isTransientStoreError(err)) throw err;
      return (err as Error).message;
    }
  }

  async close(): Promise<void> {
    this.closed ??= (async () => {
      const watchers = [...this.watchers];
      this.watchers.clear();
      await Promise.all(watchers.map((w) => w.stop()));
      await this.pool.end();
    })();
    await this.closed;
  }
}
