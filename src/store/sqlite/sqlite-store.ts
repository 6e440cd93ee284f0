/**
 * SQLite backend of the Store (better-sqlite3, WAL). Every write that must be atomic runs in
 * one `BEGIN IMMEDIATE` transaction, so several dispatchers on one file stay consistent.
 * Schema: numbered `migrations/NNN_*.sql`, applied in order and recorded in `user_version`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { AgentQueueError, NotFoundError, StoreTooNewError, SubtaskLimitError } from '../../core/errors.ts';
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
  RequestOptions,
  RateBucket,
  RateToken,
  RequestResult,
  RequeueOptions,
  StaleClaim,
  Store,
  TaskFilter,
  TokenAnswer,
  WorkerInfo,
} from '../store.ts';
import { isTransientStoreError } from '../store.ts';
import { dependencyFailure, parentVerdict, taskEnd, UNSUCCESSFUL_STATES, type TaskRef } from '../../core/lifecycle.ts';
import { notTakenOver, TAKEN_OVER, takenOverNotBlocked } from '../../core/takeover.ts';
import { summarizeUsage, USAGE_DIMENSIONS, type UsageQuery, type UsageRow } from '../usage.ts';
import { ATTEMPT_COLUMNS, newTaskRow, delegationPatchColumns, detectorRunColumns, knownStatsColumns, outputValues, TASK_VERSION_SQL, TERMINAL_STATES_SQL, toA2aPush, toAgentUsage, toAttempt, toAttemptOutput, toCallback, toDelegation, toDetectorRun, toNotification, toNotificationHealth, toPause, toStaleClaim, toTask, toUsageRecord, toVerification, toWorker, tryColumns, WORKSPACE_COLUMNS, workspaceColumns, type Row } from '../rows.ts';
import { DELEGATION_END_STATES, type Delegation, type DelegationState } from '../../core/delegation.ts';
import { checkBucket, takeToken } from '../rate-bucket.ts';

const MIGRATIONS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');

/** `?, ?, …`: one SQL placeholder per value, for `IN (…)` with the values bound. */
const placeholders = (values: readonly unknown[]): string => values.map(() => '?').join(', ');

/**
 * The predicate of the partial index `tasks_running` (migration 23): running tasks, and terminal
 * ones without a result file. A query reads that index only when its WHERE holds this term as
 * written there, or one that implies it (`state = 'running'`).
 */
const LIVE_SQL = `(state = 'running' OR (result_path IS NULL AND state IN (${TERMINAL_STATES_SQL})))`;

/** The terminal tasks without a result file, read through the partial index `tasks_running` (migration 23) alone. */
const UNREPORTED = `SELECT * FROM tasks INDEXED BY tasks_running WHERE ${LIVE_SQL} AND result_path IS NULL AND state IN (${TERMINAL_STATES_SQL})`;

/**
 * `listUnreported`'s queries: every unreported task (`all`), or those of one origin (bound:
 * host, root) and those without one (`ofOrigin`), by id. The states are literals and the index
 * is named (`INDEXED BY`: the statement fails to prepare rather than scan the history if the
 * index cannot serve it); `ofOrigin` is two searches of it, not one scan.
 */
export const UNREPORTED_SQL = {
  all: `${UNREPORTED} ORDER BY id`,
  ofOrigin: `SELECT * FROM (${UNREPORTED} AND origin_host = ? AND origin_root = ? UNION ALL ${UNREPORTED} AND origin_host IS NULL) ORDER BY id`,
} as const;

/** The partial index holding the tasks of a state, for the states that have one (terminal ones: a scan by id, newest or oldest first, that stops at the limit). */
const STATE_INDEX: Partial<Record<TaskState, string>> = { queued: 'tasks_queued', running: 'tasks_running', blocked: 'tasks_held', waiting: 'tasks_held' };

/**
 * A task's dependency ids in position order as a JSON list (column `dep_ids`), read in the
 * statement that reads the task row (`tasks` by that name: a SELECT or an UPDATE … RETURNING):
 * one seek of `task_deps` instead of one more statement per task.
 */
const DEP_IDS_SQL = '(SELECT json_group_array(depends_on_id ORDER BY position) FROM task_deps WHERE task_id = tasks.id) AS dep_ids';

/**
 * Whether a delayed task is due (`run_after` passed at `@now`) and not promoted yet (`delayed`
 * still 1): a claim takes nothing then, so that the due task is promoted first (it may come
 * before the others).
 */
const DUE_SQL = "SELECT 1 FROM tasks d INDEXED BY tasks_delayed WHERE d.state = 'queued' AND d.delayed = 1 AND d.run_after <= @now";

/** The claimable queued tasks (`deps_open = 0 AND delayed = 0`) in the partial index `tasks_queued` (migration 22), over the row aliased `t`. */
const CLAIMABLE = (t: string) => `${t}.state = 'queued' AND ${t}.deps_open = 0 AND ${t}.delayed = 0`;
/** The order of `tasks_queued`, over the row aliased `t`: an ORDER BY it needs no sort. */
const QUEUED_ORDER = (t: string) => ['deps_open', 'delayed', 'agent', 'runs_on', 'lane_group', 'priority_rank', 'id'].map((c) => `${t}.${c}`).join(', ');

/**
 * The first claimable task of the lane after the one of the task aliased `h` (same agent and
 * runs_on, next group; else same agent, next runs_on; else next agent): three seeks with an
 * equality prefix, as `COALESCE` arguments.
 */
const NEXT_LANE = ['n.agent = h.agent AND n.runs_on = h.runs_on AND n.lane_group > h.lane_group', 'n.agent = h.agent AND n.runs_on > h.runs_on', 'n.agent > h.agent']
  .map((next) => `(SELECT n.id FROM tasks n INDEXED BY tasks_queued WHERE ${CLAIMABLE('n')} AND ${next} ORDER BY ${QUEUED_ORDER('n')} LIMIT 1)`)
  .join(', ');

/**
 * The claim over `agents` agents (bound `@agent0` …): one UPDATE of the best claimable task,
 * read back by it. The claimable tasks form lanes in `tasks_queued` — one per agent, `runs_on`
 * and concurrency group, each ordered by priority, then arrival — and a dispatcher may take a
 * lane's tasks or none of them (its agent's account paused, a label missing, the agent's or
 * the group's limit reached). So the claim walks the lanes, one seek to the next (`lanes`: the
 * first task of each), keeps the head of each lane it may take (the first whose `run_after` has
 * passed on this clock: `heads`; most often the lane's first, then without another seek),
 * and takes the best head, while fewer than `@concurrency` run, and no delayed task is due
 * unpromoted (`DUE_SQL`).
 * It visits as many tasks as there are lanes, whatever waits in them. (The next lane is sought
 * as the next group of the same agent and runs_on, else the next runs_on of the agent, else
 * the next agent: three seeks with an equality prefix. A row-value comparison
 * `(agent, runs_on, lane_group) > (…)` would seek on the agent alone and read through its
 * other lanes.)
 */
export function claimSql(agents: number): string {
  const agentList = Array.from({ length: agents }, (_, i) => `@agent${i}`).join(', ');
  return `
    WITH RECURSIVE lanes(id) AS (
      SELECT (SELECT t.id FROM tasks t INDEXED BY tasks_queued WHERE ${CLAIMABLE('t')} ORDER BY ${QUEUED_ORDER('t')} LIMIT 1)
      UNION ALL
      SELECT COALESCE(${NEXT_LANE})
        FROM lanes JOIN tasks h ON h.id = lanes.id
    ),
    heads(id) AS (
      SELECT CASE WHEN h.run_after <= @now THEN h.id ELSE
              (SELECT c.id FROM tasks c INDEXED BY tasks_queued
                WHERE ${CLAIMABLE('c')} AND c.agent = h.agent AND c.runs_on = h.runs_on AND c.lane_group = h.lane_group
                  AND c.run_after <= @now
                ORDER BY ${QUEUED_ORDER('c')} LIMIT 1) END
        FROM lanes JOIN tasks h ON h.id = lanes.id
       WHERE h.agent IN (${agentList})
         AND (h.runs_on = '[]' OR NOT EXISTS (SELECT 1 FROM json_each(h.runs_on) r WHERE r.value NOT IN (SELECT value FROM json_each(@labels))))
         AND (NOT EXISTS (SELECT 1 FROM agent_pauses WHERE until > @now)
              OR NOT EXISTS (SELECT 1 FROM agent_pauses p WHERE p.until > @now
                              AND p.agent = COALESCE((SELECT value FROM json_each(@accounts) WHERE key = h.agent), h.agent)))
         AND (h.concurrency_group IS NULL
              OR (SELECT count(*) FROM tasks g INDEXED BY tasks_running WHERE g.state = 'running' AND g.lane_group = h.lane_group) < @groupConcurrency)
         AND (@agentConcurrency = '{}' OR (SELECT value FROM json_each(@agentConcurrency) WHERE key = h.agent) IS NULL
              OR (SELECT count(*) FROM tasks a INDEXED BY tasks_running WHERE a.state = 'running' AND a.agent = h.agent)
                 < (SELECT value FROM json_each(@agentConcurrency) WHERE key = h.agent))
    )
    UPDATE tasks SET state = 'running', attempts = attempts + 1, claims = claims + 1,
      lease_owner = @worker, lease_token = @token, lease_expires_at = @expires, claim_host = @host, started_at = @now, last_activity_at = @now, cancel_requested = 0
    WHERE id = (SELECT t.id FROM heads JOIN tasks t ON t.id = heads.id
                 WHERE (SELECT count(*) FROM tasks r INDEXED BY tasks_running WHERE r.state = 'running') < @concurrency
                 ORDER BY t.priority_rank, t.id LIMIT 1)
      AND NOT EXISTS (${DUE_SQL})
    RETURNING *, ${DEP_IDS_SQL}`;
}

/**
 * A new attempt's id: a UUIDv7 (RFC 9562 §5.7) whose time is the attempt's start (`now`, epoch
 * ms, the `started_at` it is stored with; whole ms, within 0…2^48 − 1), so ids sort as the
 * attempts started (`attempts_id` appends at its end, and reads a window of starts as one
 * range: {@link firstAttemptIdAt}); 74 random bits (Web Crypto, drawn ahead in a pool). Made here rather than by the
 * `uuid` package, whose import costs every process ~5 MiB of RSS (bench/dispatcher-rss.ts).
 */
export function attemptIdAt(now: number): string {
  if (idEntropy.next + 16 > idEntropy.pool.length) {
    crypto.getRandomValues(idEntropy.pool); // one call per 256 ids: a call costs ~10 µs
    idEntropy.next = 0;
  }
  const b = idEntropy.pool.subarray(idEntropy.next, (idEntropy.next += 16));
  for (let i = 5, t = idTime(now); i >= 0; i--, t = Math.floor(t / 256)) b[i] = t % 256;
  b[6] = 0x70 | (b[6]! & 0x0f); // version 7
  b[8] = 0x80 | (b[8]! & 0x3f); // variant 10
  const h = Buffer.from(b).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Random bytes for {@link attemptIdAt}, drawn 4 KiB at a time; each id takes (and overwrites) the next 16. */
const idEntropy = { pool: new Uint8Array(4096), next: 4096 };

const idTime = (ms: number): number => Math.min(Math.max(0, Math.floor(ms)), 2 ** 48 - 1);

/** The least id {@link attemptIdAt} makes for a start at `since` (epoch ms) or later: every later one sorts at or after it as text. */
export function firstAttemptIdAt(since: number): string {
  const hex = idTime(since).toString(16).padStart(12, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8)}-0000-0000-000000000000`;
}

/** A statement's rows as {@link Row} objects: `get` the first (undefined: none), `all` of them. */
interface RowReader {
  get(...params: unknown[]): Row | undefined;
  all(...params: unknown[]): Row[];
}

/**
 * Reads `statement`'s rows as arrays (better-sqlite3's raw mode) and makes each object with a
 * function compiled once for the statement's columns (names from the schema, quoted as JSON):
 * better-sqlite3's own objects intern every column name of every row, which for a `tasks` row
 * (~75 columns) costs about as much again as the read itself.
 */
function rowReader(statement: Database.Statement): RowReader {
  const names = statement.columns().map((c) => c.name);
  const make = new Function('v', `return { ${names.map((n, i) => `${JSON.stringify(n)}: v[${i}]`).join(', ')} };`) as (values: unknown[]) => Row;
  const raw = statement.raw(true);
  return {
    get: (...params) => {
      const values = raw.get(...params) as unknown[] | undefined;
      return values === undefined ? undefined : make(values);
    },
    all: (...params) => (raw.all(...params) as unknown[][]).map(make),
  };
}

/** {@link claimSql} by agent count, made once each (a claim would otherwise build and hash 2 KB of SQL). */
const claimSqlByAgents: string[] = [];
const claimSqlFor = (agents: number): string => (claimSqlByAgents[agents] ??= claimSql(agents));

/** The `migrations/NNN_*.sql` file names, in order. */
function migrationFiles(): string[] {
  return fs
    .readdirSync(MIGRATIONS_DIR)
    .filter((f) => /^\d+_.*\.sql$/.test(f))
    .sort();
}

/** The schema version (`user_version`) of an open database: 0 for a new file. */
function schemaVersion(db: Database.Database): number {
  return Number(db.pragma('user_version', { simple: true }));
}

/**
 * Refuses a database whose schema version is past the newest migration (a newer agentq wrote
 * it). Only reads, so it runs before anything (journal mode, migrations) may write.
 * @throws StoreTooNewError naming `file`, the store's version and the newest known one
 */
function refuseNewerSchema(db: Database.Database, file: string): void {
  const newest = Math.max(0, ...migrationFiles().map((f) => Number.parseInt(f, 10)));
  const current = schemaVersion(db);
  if (current > newest) throw new StoreTooNewError(file, current, newest);
}

/**
 * What a migration does besides its SQL file, by number: run after the file, in its
 * transaction. 22: `tasks` rebuilt without AUTOINCREMENT ({@link rebuildTasksWithoutAutoincrement}).
 */
const MIGRATION_STEPS: Readonly<Record<number, (db: Database.Database, file: string) => void>> = {
  22: (db, file) => rebuildTasksWithoutAutoincrement(db, file),
};

/**
 * Applies pending `migrations/*.sql` files; the schema version lives in `user_version`.
 * Each file runs in its own write transaction that reads the version again first, so
 * processes opening a new store at the same moment (`agentq run` and `agentq status`)
 * apply every migration once. Foreign keys are off while they run (a rebuilt table is
 * dropped while others refer to it, as SQLite's ALTER TABLE documentation does it); a
 * migration that rebuilds a table checks every foreign key before it commits.
 * @throws Error naming the migration when a rebuild left a row whose reference is broken (nothing of that migration is kept)
 */
function migrate(db: Database.Database, file: string): void {
  const files = migrationFiles();
  const current = schemaVersion(db);
  if (files.every((f) => Number.parseInt(f, 10) <= current)) return;
  db.pragma('foreign_keys = OFF'); // not inside a transaction: SQLite ignores it there
  let rebuilt = false;
  try {
    for (const name of files) {
      const target = Number.parseInt(name, 10);
      db.transaction(() => {
        if (target <= schemaVersion(db)) return;
        const sql = fs.readFileSync(path.join(MIGRATIONS_DIR, name), 'utf8');
        db.exec(sql);
        const step = MIGRATION_STEPS[target];
        step?.(db, file);
        if (step || /\bDROP\s+TABLE\b/i.test(sql)) {
          rebuilt = true;
          const broken = db.pragma('foreign_key_check') as Array<{ table: string; rowid: number; parent: string }>;
          if (broken.length > 0) {
            const first = broken[0]!;
            throw new Error(`migration ${name}: ${broken.length} row(s) refer to rows that do not exist (first: ${first.table} row ${first.rowid} → ${first.parent})`);
          }
        }
        db.pragma(`user_version = ${target}`);
      }).immediate();
    }
  } finally {
    db.pragma('foreign_keys = ON');
  }
  // A rebuilt table went through the WAL whole: into the database file now, while the store
  // opens, rather than in a checkpoint timer of the process that runs on it.
  if (rebuilt) {
    try {
      db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // a reader holds it back: the timer's checkpoints catch up
    }
  }
}

/**
 * Rebuilds `tasks` without AUTOINCREMENT (which wrote `sqlite_sequence` on every enqueue),
 * inside the migration's transaction, foreign keys off: a new table from the table's own
 * CREATE TABLE text less that word (every column any migration added is kept), every row
 * copied with its id, the old table dropped and the new one renamed; the table's indexes and
 * every trigger of the schema made again from their own text. Ids are kept, and as a table
 * without AUTOINCREMENT gives the largest id + 1, the next task's id continues from them; if
 * the sequence had gone past the largest id left (tasks deleted by hand), `task_id_floor`
 * keeps it for the next enqueue, so no id is given twice. Nothing to do when the table has no
 * AUTOINCREMENT. The copy writes the table again: it is refused, before anything is written,
 * when the disk holding `file` has less free space than twice the store.
 * @throws AgentQueueError `store_migration_space` when the disk is too full for the copy
 */
function rebuildTasksWithoutAutoincrement(db: Database.Database, file: string): void {
  const table = db.prepare("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'tasks'").get() as { sql: string } | undefined;
  if (!table || !/\bAUTOINCREMENT\b/i.test(table.sql)) return;
  const storeBytes = Number(db.pragma('page_count', { simple: true })) * Number(db.pragma('page_size', { simple: true }));
  const free = freeBytes(path.dirname(file));
  if (free !== null && free < 2 * storeBytes) {
    throw new AgentQueueError(
      'store_migration_space',
      `store ${file}: upgrading it rewrites its tasks once and needs ${mib(2 * storeBytes)} MiB free on its disk; ${mib(free)} MiB are: free some space, then start agentq again (nothing was changed)`,
    );
  }
  const sequence = db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'tasks'").get() as { seq: number } | undefined;
  const maxId = Number((db.prepare('SELECT max(id) AS id FROM tasks').get() as { id: number | null }).id ?? 0);
  const indexes = (db.prepare("SELECT sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'tasks' AND sql IS NOT NULL").all() as Array<{ sql: string }>).map((r) => r.sql);
  const triggers = db.prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'trigger'").all() as Array<{ name: string; sql: string }>;
  // Generated columns are computed, not copied.
  const columns = (db.pragma('table_xinfo(tasks)') as Array<{ name: string; hidden: number }>).filter((c) => c.hidden === 0).map((c) => `"${c.name}"`).join(', ');
  for (const t of triggers) db.exec(`DROP TRIGGER "${t.name}"`);
  db.exec(table.sql.replace(/^CREATE TABLE\s+("tasks"|tasks)/i, 'CREATE TABLE tasks_rebuilt').replace(/\s+AUTOINCREMENT\b/i, ''));
  db.exec(`INSERT INTO tasks_rebuilt (${columns}) SELECT ${columns} FROM tasks ORDER BY id`);
  db.exec('DROP TABLE tasks');
  db.exec('ALTER TABLE tasks_rebuilt RENAME TO tasks');
  for (const sql of indexes) db.exec(sql);
  for (const t of triggers) db.exec(t.sql);
  if (sequence && Number(sequence.seq) > maxId) db.prepare('INSERT INTO task_id_floor (next_id) VALUES (?)').run(Number(sequence.seq) + 1);
}

/** Bytes free to this user on the file system holding `dir`; null when it cannot be told. */
function freeBytes(dir: string): number | null {
  try {
    const s = fs.statfsSync(dir);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return null;
  }
}

const mib = (bytes: number) => Math.ceil(bytes / 1024 / 1024);

/** Default of {@link SqliteStoreOptions.busyTimeoutMs}. */
export const DEFAULT_BUSY_TIMEOUT_MS = 10_000;

/** Default of {@link SqliteStoreOptions.checkpointIntervalMs}. */
export const DEFAULT_CHECKPOINT_INTERVAL_MS = 200;

/**
 * WAL pages (4 KiB) past which the statement that commits checkpoints after all (SQLite's
 * `wal_autocheckpoint`), should the checkpoint timer not get a turn (a long synchronous
 * burst of store calls): bounds the WAL at ~16 MiB.
 */
export const CHECKPOINT_BACKSTOP_PAGES = 4096;

export interface SqliteStoreOptions {
  /**
   * How long a statement waits inside SQLite for another connection's write lock before it
   * fails with SQLITE_BUSY (`busy_timeout`), in ms. Default {@link DEFAULT_BUSY_TIMEOUT_MS}.
   * better-sqlite3 is synchronous: the waiting blocks the process's event loop.
   */
  busyTimeoutMs?: number;
  /**
   * How often the WAL is checkpointed (PASSIVE: copied into the database file as far as no
   * reader holds it back, never waiting for a lock), in ms, from an unref'd timer, so no store
   * call pays for a checkpoint (SQLite's own checkpoints run in the statement that commits
   * past 1000 pages: copies and an fsync inside a claim). Past
   * {@link CHECKPOINT_BACKSTOP_PAGES} the committing statement checkpoints anyway. Default
   * {@link DEFAULT_CHECKPOINT_INTERVAL_MS}; 0: SQLite's own checkpoints only (1000 pages).
   */
  checkpointIntervalMs?: number;
}

/**
 * Store on one SQLite file (created with its folder if missing, migrated to the newest
 * schema). Every method is all-or-nothing: a method that throws has changed nothing, so a
 * call that failed for a transient reason (see `isTransientStoreError`) may be repeated.
 * @throws SqliteError when the file cannot be opened or migrated (SQLITE_BUSY past the busy timeout, SQLITE_CANTOPEN…)
 * @throws StoreTooNewError (code `store_too_new`) when a newer agentq's schema is in the file; the file is left as it was
 */
export class SqliteStore implements Store {
  readonly db: Database.Database;

  constructor(file: string, options: SqliteStoreOptions = {}) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file, { timeout: options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS });
    try {
      refuseNewerSchema(this.db, file);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('foreign_keys = ON');
      migrate(this.db, file);
    } catch (err) {
      this.db.close();
      throw err;
    }
    const every = options.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS;
    if (every > 0) {
      this.db.pragma(`wal_autocheckpoint = ${CHECKPOINT_BACKSTOP_PAGES}`);
      // A WAL that grew past this (a burst, a migration) is cut back to it when it starts over.
      this.db.pragma(`journal_size_limit = ${4 * CHECKPOINT_BACKSTOP_PAGES * 4096}`);
      this.checkpointTimer = setInterval(() => this.checkpoint(), every).unref();
    }
  }

  private readonly checkpointTimer: NodeJS.Timeout | null = null;

  /**
   * A PASSIVE checkpoint (see {@link SqliteStoreOptions.checkpointIntervalMs}): nothing to do
   * costs a look at the WAL index. A failure is left for the next one (a store that is really
   * broken fails the next store call).
   */
  private checkpoint(): void {
    try {
      if (this.db.open && !this.db.inTransaction) this.db.pragma('wal_checkpoint(PASSIVE)');
    } catch {
      // the next tick tries again
    }
  }

  private readonly statements = new Map<string, Database.Statement>();

  /** A prepared statement, compiled once per SQL text (prepare costs more than most of our queries). */
  private prepare(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) this.statements.set(sql, (statement = this.db.prepare(sql)));
    return statement;
  }

  private readonly taskReaders = new Map<string, RowReader>();

  /** {@link rowReader} of `sql` (a statement that returns `tasks` rows), made once per SQL text. */
  private taskRows(sql: string): RowReader {
    let reader = this.taskReaders.get(sql);
    if (!reader) this.taskReaders.set(sql, (reader = rowReader(this.db.prepare(sql))));
    return reader;
  }

  /**
   * Runs `fn` in one `BEGIN IMMEDIATE` transaction (the write lock first, so the reads in it
   * see what the writes will change), rolled back if it throws; inside a transaction already,
   * as part of it. Prepared BEGIN and COMMIT: better-sqlite3's `transaction()` wrapper costs
   * as much again per call.
   */
  private tx<T>(fn: () => T): T {
    if (this.db.inTransaction) return fn();
    this.prepare('BEGIN IMMEDIATE').run();
    try {
      const result = fn();
      this.prepare('COMMIT').run();
      return result;
    } catch (err) {
      if (this.db.inTransaction) this.prepare('ROLLBACK').run();
      throw err;
    }
  }

  /**
   * The task of a row read with {@link DEP_IDS_SQL} (its dependency ids in the row), or else
   * with its dependency ids read by one more query.
   */
  private taskOf(row: Row): Task {
    return toTask(row, typeof row.dep_ids === 'string' ? (JSON.parse(row.dep_ids) as number[]) : this.depIds(Number(row.id)));
  }

  private depIds(taskId: number): number[] {
    return (this.prepare('SELECT depends_on_id FROM task_deps WHERE task_id = ? ORDER BY position').all(taskId) as Row[]).map((r) =>
      Number(r.depends_on_id),
    );
  }

  private taskById(id: number): Task | null {
    const row = this.taskRows(`SELECT *, ${DEP_IDS_SQL} FROM tasks WHERE id = ?`).get(id);
    return row ? this.taskOf(row) : null;
  }

  async enqueue(tasks: NewTask[], now: number): Promise<Task[]> {
    const [only] = tasks;
    if (tasks.length === 1 && this.idFloorGone && only!.intakeKey === undefined && only!.dependsOnIds.length === 0 && !only!.dependsOnBatch?.length) {
      // One task, nothing else to write: its INSERT alone (autocommit, atomic by itself).
      return this.insertTasks(tasks, now).flatMap((t) => (t.task ? [t.task] : []));
    }
    const insert = () => this.tx(() => this.insertTasks(tasks, now).flatMap((t) => (t.task ? [t.task] : [])));
    // Taken in from files the caller removes next: the tasks must outlast a power loss.
    return tasks.some((t) => t.intakeKey !== undefined) ? this.durably(insert) : insert();
  }

  /**
   * Runs `fn` (one transaction) with `synchronous = FULL`: its commit returns once the WAL is
   * on disk (fsync). The store's other transactions run with `synchronous = NORMAL`: durable
   * against a crash of the process, not of the machine (a power loss may undo the last ones;
   * the store stays consistent). That costs an attempt at most (a claim or an end undone
   * reruns it: delivery is at-least-once), while an intake undone after its file was removed
   * would lose the task.
   */
  private durably<T>(fn: () => T): T {
    if (this.db.inTransaction) return fn();
    this.prepare('PRAGMA synchronous = FULL').run();
    try {
      return fn();
    } finally {
      this.prepare('PRAGMA synchronous = NORMAL').run();
    }
  }

  /** Whether `task_id_floor` is known empty (it only empties): enqueue then reads it no more. */
  private idFloorGone = false;

  /**
   * The id the next task must take when the rebuild of migration 22 left a floor
   * (`task_id_floor`: the old AUTOINCREMENT sequence had gone past the largest id left), which
   * it removes; null (the table's own next id) otherwise. Call inside a transaction.
   */
  private takeIdFloor(): number | null {
    if (this.idFloorGone) return null;
    const row = this.prepare('SELECT next_id FROM task_id_floor').get() as Row | undefined;
    if (!row) {
      this.idFloorGone = true;
      return null;
    }
    this.prepare('DELETE FROM task_id_floor').run();
    const max = Number((this.prepare('SELECT max(id) AS id FROM tasks').get() as Row).id ?? 0);
    return Math.max(Number(row.next_id), max + 1);
  }

  /** See {@link insertedRowMaker}. */
  private insertedRow: ((row: Row) => Row) | null = null;

  /**
   * The whole `tasks` row of a task just inserted from {@link newTaskRow}'s columns
   * (`written`): those, over the schema's own defaults (evaluated once per store) of the
   * columns it leaves out; made by a function compiled once (spreading ~70 columns into an
   * object costs ~20 µs a task).
   */
  private insertedRowMaker(written: readonly string[]): (row: Row) => Row {
    if (this.insertedRow) return this.insertedRow;
    // table_info leaves out generated columns (lane_group), which no Task field reads.
    const left = (this.db.prepare('PRAGMA table_info(tasks)').all() as Row[]).filter((c) => !written.includes(String(c.name)));
    const values = left.map((c) => `${c.dflt_value === null ? 'NULL' : String(c.dflt_value)} AS ${JSON.stringify(String(c.name))}`);
    const defaults = values.length ? (this.db.prepare(`SELECT ${values.join(', ')}`).get() as Row) : {};
    const fields = [
      ...Object.entries(defaults).map(([column, value]) => `${JSON.stringify(column)}: ${JSON.stringify(value)}`),
      ...written.map((column) => `${JSON.stringify(column)}: r[${JSON.stringify(column)}]`),
    ];
    return (this.insertedRow = new Function('r', `return { ${fields.join(', ')} };`) as (row: Row) => Row);
  }

  /**
   * Inserts tasks (with dependencies and intake keys); call inside a transaction. Each new
   * task is read from the row it was inserted with ({@link insertedRowMaker}), its id from the
   * insert. An entry whose intake key is already
   * recorded (another dispatcher took the same file in first, removed or not) is not created
   * again: its existing task stands in for it (also for in-batch dependencies), without `task`.
   */
  private insertTasks(tasks: NewTask[], now: number): Array<{ id: number; task: Task | null }> {
    const dep = this.prepare('INSERT INTO task_deps (task_id, depends_on_id, position) VALUES (?, ?, ?)');
    const intake = this.prepare('INSERT INTO intake (key, task_id, file_removed) VALUES (?, ?, 0)');
    const recorded = this.prepare('SELECT task_id FROM intake WHERE key = ?');
    let insert: Database.Statement | null = null;
    let inserted: (row: Row) => Row = (row) => row;
    const out: Array<{ id: number; task: Task | null }> = [];
    for (const t of tasks) {
      const { dependsOnIds, dependsOnBatch = [], parentId = null, parentBatch = null, intakeKey } = t;
      const taken = intakeKey === undefined ? undefined : (recorded.get(intakeKey) as Row | undefined);
      if (taken) {
        out.push({ id: Number(taken.task_id), task: null });
        continue;
      }
      const row = newTaskRow(t, now, parentBatch !== null ? (out[parentBatch]?.id ?? null) : parentId);
      row.retry_on_timeout = row.retry_on_timeout ? 1 : 0;
      row.delayed = row.state === 'queued' && Number(row.run_after) > now ? 1 : 0;
      row.id = this.takeIdFloor();
      if (!insert) {
        const columns = Object.keys(row);
        insert = this.prepare(`INSERT INTO tasks (${columns.join(', ')}) VALUES (${placeholders(columns)})`);
        inserted = this.insertedRowMaker(columns);
      }
      const id = Number(insert.run(Object.values(row)).lastInsertRowid);
      const deps = [...dependsOnIds, ...dependsOnBatch.map((i) => out[i]?.id ?? -1)];
      deps.forEach((d, i) => dep.run(id, d, i));
      if (intakeKey !== undefined) intake.run(intakeKey, id);
      // The task as inserted: triggers change only what no Task field shows (deps_open, task_counts).
      const whole = inserted(row);
      whole.id = id;
      out.push({ id, task: toTask(whole, deps) });
    }
    return out;
  }

  async getIntake(key: string) {
    const row = this.prepare('SELECT task_id, file_removed FROM intake WHERE key = ?').get(key) as Row | undefined;
    return row ? { taskId: Number(row.task_id), fileRemoved: Number(row.file_removed) === 1 } : null;
  }

  async markIntakeRemoved(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    const mark = this.prepare('UPDATE intake SET file_removed = 1 WHERE key = ?');
    this.tx(() => {
      for (const key of keys) mark.run(key);
    });
  }

  async findActiveByDedupKey(key: string): Promise<Task | null> {
    const row = this.prepare("SELECT id FROM tasks WHERE dedup_key = ? AND state IN ('queued', 'running') ORDER BY id LIMIT 1").get(key) as
      Row | undefined;
    return row ? this.taskById(Number(row.id)) : null;
  }


  async listPendingIntake(): Promise<string[]> {
    return (this.prepare('SELECT key FROM intake WHERE file_removed = 0').all() as Row[]).map((r) => String(r.key));
  }

  async findByName(name: string): Promise<Task | null> {
    const row = this.prepare('SELECT id FROM tasks WHERE name = ? ORDER BY id DESC LIMIT 1').get(name) as Row | undefined;
    return row ? this.taskById(Number(row.id)) : null;
  }

  async claim(o: ClaimOptions): Promise<Claim | null> {
    return (await this.claimMany(o, 1))[0] ?? null;
  }

  /**
   * {@link claimSqlFor} once per task, until `max` or none; each claim's UPDATE also writes the
   * attempt row (trigger `tasks_claimed`, migration 25). One claim is that one statement
   * (autocommit: it takes the write lock first, as `BEGIN IMMEDIATE` does), unless a delayed
   * task is due: the claim takes nothing then, and the due tasks are promoted and the claim
   * made again in one `BEGIN IMMEDIATE` transaction, as several claims are.
   */
  async claimMany(o: ClaimOptions, max: number): Promise<Claim[]> {
    if (o.agents.length === 0 || max < 1) return [];
    const due = this.prepare(`${DUE_SQL} LIMIT 1`);
    const promote = this.prepare("UPDATE tasks SET delayed = 0 WHERE state = 'queued' AND delayed = 1 AND run_after <= ?");
    const claimStmt = this.taskRows(claimSqlFor(o.agents.length));
    const params: Record<string, unknown> = {
      worker: o.workerId,
      host: o.host ?? null,
      expires: o.now + o.leaseMs,
      now: o.now,
      labels: JSON.stringify(o.labels),
      accounts: JSON.stringify(o.accounts ?? {}),
      concurrency: o.concurrency,
      groupConcurrency: o.groupConcurrency ?? 1,
      agentConcurrency: JSON.stringify(o.agentConcurrency ?? {}),
      token: null,
    };
    for (let i = 0; i < o.agents.length; i++) params[`agent${i}`] = o.agents[i];
    const claimOne = (): Claim | null => {
      const attemptId = attemptIdAt(o.now);
      params.token = attemptId;
      const row = claimStmt.get(params);
      if (!row) return null;
      const task = this.taskOf(row);
      // The attempt row is what the trigger wrote (the other columns start NULL, outcome 'running'): not read back.
      const attempt = { id: attemptId, task_id: task.id, number: task.claims, worker_id: o.workerId, host: o.host ?? null, agent: task.agent, model: task.model, started_at: o.now, outcome: 'running' };
      return { task, attempt: toAttempt(attempt) };
    };
    if (max === 1 && !this.db.inTransaction) {
      const claim = claimOne();
      if (claim) return [claim];
      if (due.get({ now: o.now }) === undefined) return [];
    }
    return this.tx(() => {
      if (due.get({ now: o.now }) !== undefined) promote.run(o.now);
      const claims: Claim[] = [];
      while (claims.length < max) {
        const claim = claimOne();
        if (!claim) break;
        claims.push(claim);
      }
      return claims;
    });
  }

  /**
   * `UPDATE tasks … WHERE id = (the task to run) AND lease_token = ? AND state = 'running'`
   * through the attempt (`attempts_id`, then the task's id): two seeks, however many run.
   */
  private static readonly LEASED = "id = (SELECT task_id FROM attempts WHERE id = @attempt) AND lease_token = @attempt AND state = 'running'";

  async heartbeat(attemptId: string, now: number, leaseMs: number, lastActivityAt: number | null = null): Promise<Heartbeat> {
    const row = this.prepare(
      `UPDATE tasks SET lease_expires_at = @expires, last_activity_at = COALESCE(@activity, last_activity_at) WHERE ${SqliteStore.LEASED}
         RETURNING cancel_requested, taken_over_at`,
    ).get({ expires: now + leaseMs, activity: lastActivityAt, attempt: attemptId }) as Row | undefined;
    return { ok: row !== undefined, cancelRequested: row ? Number(row.cancel_requested) === 1 : false, takeoverRequested: row ? row.taken_over_at !== null : false };
  }

  async setAttemptAgent(attemptId: string, a: { agent: string; model: string | null }): Promise<void> {
    this.tx(() => {
      this.prepare('UPDATE attempts SET agent = ?, model = ? WHERE id = ?').run(a.agent, a.model, attemptId);
      this.prepare(`UPDATE tasks SET run_agent = @agent WHERE ${SqliteStore.LEASED}`).run({ agent: a.agent, attempt: attemptId });
    });
  }

  async recordStats(attemptId: string, stats: Partial<RunStats>): Promise<void> {
    const { attempt, task } = knownStatsColumns(stats);
    if (attempt.length === 0) return;
    const assign = (cols: Array<[string, unknown]>) => cols.map(([col]) => `${col} = ?`).join(', ');
    this.tx(() => {
      this.prepare(`UPDATE attempts SET ${assign(attempt)} WHERE id = ?`).run(...attempt.map(([, v]) => v), attemptId);
      this.prepare(`UPDATE tasks SET ${assign(task)} WHERE id = (SELECT task_id FROM attempts WHERE id = ?) AND lease_token = ? AND state = 'running'`).run(
        ...task.map(([, v]) => v),
        attemptId,
        attemptId,
      );
    });
  }

  /** Closes the attempt row: its outcome, figures and output tails; its duration from its own start. */
  private closeAttempt(
    attemptId: string,
    outcome: AttemptOutcome,
    o: { reason?: string | null; exitCode?: number | null; stats?: RunStats | undefined; logPath?: string | null; output?: AttemptOutput | null; now: number },
  ): void {
    const { stats, now } = o;
    this.prepare(
      `UPDATE attempts SET outcome = ?, reason = ?, exit_code = ?, finished_at = ?, duration_ms = ? - started_at, log_path = ?,
           session_id = COALESCE(?, session_id), model = COALESCE(?, model), cost_usd = COALESCE(?, cost_usd),
           input_tokens = COALESCE(?, input_tokens), output_tokens = COALESCE(?, output_tokens),
           num_turns = COALESCE(?, num_turns),
           stdout_tail = ?, stdout_bytes = ?, stderr_tail = ?, stderr_bytes = ?
         WHERE id = ?`,
    ).run(
      outcome,
      o.reason ?? null,
      o.exitCode ?? null,
      now,
      now,
      o.logPath ?? null,
      stats?.sessionId ?? null,
      stats?.model ?? null,
      stats?.costUsd ?? null,
      stats?.inputTokens ?? null,
      stats?.outputTokens ?? null,
      stats?.numTurns ?? null,
      ...outputValues(o.output),
      attemptId,
    );
  }

  /** {@link endAttempt}'s statements by their `set` (a few constant texts: looked up without building the SQL). */
  private readonly endStatements = new Map<string, RowReader>();

  /**
   * Ends a leased attempt's task: `set` (SQL assignments with named parameters, `values`)
   * on the task row if the attempt still holds its lease, and `where` (more terms, each `set`
   * always with the same) holds — one statement, the row read back by it — then the attempt
   * row closed. Null (nothing written) when the lease is lost or `where` does not hold.
   * Call inside a transaction.
   */
  private endAttempt(
    attemptId: string,
    set: string,
    values: Record<string, unknown>,
    outcome: AttemptOutcome,
    close: Parameters<SqliteStore['closeAttempt']>[2],
    where = 'TRUE',
  ): Task | null {
    let end = this.endStatements.get(set);
    if (!end) {
      end = this.taskRows(
        `UPDATE tasks SET ${set}, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL WHERE ${SqliteStore.LEASED} AND ${where} RETURNING *, ${DEP_IDS_SQL}`,
      );
      this.endStatements.set(set, end);
    }
    values.attempt = attemptId;
    const row = end.get(values);
    if (!row) return null;
    this.closeAttempt(attemptId, outcome, close);
    return this.taskOf(row);
  }

  /** {@link finish}'s assignments (named parameters), without and with the workspace columns (`@ws_<column>`). */
  private static readonly FINISH_SET = `state = @state, finished_at = @finishedAt, duration_ms = @now - started_at, result = @result, failed_reason = @reason,
      session_id = COALESCE(@sessionId, session_id), run_model = COALESCE(@model, run_model),
      cost_usd = COALESCE(@costUsd, cost_usd), input_tokens = COALESCE(@inputTokens, input_tokens),
      output_tokens = COALESCE(@outputTokens, output_tokens), num_turns = COALESCE(@numTurns, num_turns), answer = NULL, taken_over_at = NULL`;
  private static readonly FINISH_SET_WORKSPACE = `${SqliteStore.FINISH_SET}${WORKSPACE_COLUMNS.map((c) => `, ${c} = @ws_${c}`).join('')}`;

  /**
   * {@link finish}'s condition: its end was worked out with the task's subtasks
   * (`@subtasksRead`), or needs none (not `completed`), or the task has none (one empty seek
   * of `tasks_parent`, in the statement).
   */
  private static readonly FINISH_WHERE = "(@subtasksRead = 1 OR @state <> 'completed' OR NOT EXISTS (SELECT 1 FROM tasks c WHERE c.parent_id = tasks.id))";

  /** The batch of one ({@link finishMany}). */
  async finish(attemptId: string, o: FinishOutcome): Promise<Task | null> {
    return (await this.finishMany([{ attemptId, outcome: o }]))[0] ?? null;
  }

  /** One transaction: each item ended by {@link finishOne} in turn (a repeated attempt finds its lease gone: null). */
  async finishMany(items: readonly FinishItem[]): Promise<Array<Task | null>> {
    if (items.length === 0) return [];
    return this.tx(() => items.map((i) => this.finishOne(i.attemptId, i.outcome)));
  }

  /** {@link finish}'s work; call inside a transaction. */
  private finishOne(attemptId: string, o: FinishOutcome): Task | null {
    const end = (subtasks: TaskRef[] | null): Task | null => {
      // A completed run is what its subtasks make of it; first taken as a task without any, which the UPDATE checks.
      const { state, reason } = taskEnd(o.state, o.reason ?? null, subtasks ?? []);
      const values: Record<string, unknown> = {
        state,
        finishedAt: state === 'waiting' ? null : o.now,
        now: o.now,
        result: o.result ?? null,
        reason,
        sessionId: o.stats.sessionId,
        model: o.stats.model,
        costUsd: o.stats.costUsd,
        inputTokens: o.stats.inputTokens,
        outputTokens: o.stats.outputTokens,
        numTurns: o.stats.numTurns,
        subtasksRead: subtasks ? 1 : 0,
      };
      if (o.workspace) for (const [c, v] of workspaceColumns(o.workspace)) values[`ws_${c}`] = v;
      return this.endAttempt(attemptId, o.workspace ? SqliteStore.FINISH_SET_WORKSPACE : SqliteStore.FINISH_SET, values, o.attemptOutcome, o, SqliteStore.FINISH_WHERE);
    };
    const task = end(null);
    if (task || o.state !== 'completed') return task;
    // The lease lost, or a task with subtasks: read them (none: the lease was lost).
    const subtasks = this.subtaskRefs(SqliteStore.TASK_OF_ATTEMPT, attemptId);
    return subtasks.length === 0 ? null : end(subtasks);
  }

  async requeue(attemptId: string, o: RequeueOptions): Promise<Task | null> {
    const burned = COUNTED_REQUEUE_OUTCOMES.includes(o.attemptOutcome);
    return this.tx(() =>
      this.endAttempt(
        attemptId,
        "state = 'queued', run_after = @runAfter, delayed = @delayed, attempts = attempts - @unburned",
        { runAfter: o.runAfter, delayed: o.runAfter > o.now ? 1 : 0, unburned: burned ? 0 : 1 },
        o.attemptOutcome,
        o,
      ),
    );
  }

  async block(attemptId: string, o: BlockOptions): Promise<Task | null> {
    return this.tx(() =>
      this.endAttempt(
        attemptId,
        `state = 'blocked', question = @question, answer = NULL,
         session_id = COALESCE(@sessionId, session_id), run_model = COALESCE(@model, run_model), cost_usd = COALESCE(@costUsd, cost_usd)`,
        { question: o.question, sessionId: o.stats.sessionId, model: o.stats.model, costUsd: o.stats.costUsd },
        'blocked',
        { ...o, reason: `asked: ${o.question}` },
      ),
    );
  }

  async handOver(attemptId: string, o: HandOverOptions): Promise<Task | null> {
    return this.tx(() =>
      this.endAttempt(
        attemptId,
        `state = 'blocked', question = NULL, answer = NULL, attempts = attempts - 1,
         taken_over_at = COALESCE(taken_over_at, @now), cancel_requested = 0,
         session_id = COALESCE(@sessionId, session_id), run_model = COALESCE(@model, run_model), cost_usd = COALESCE(@costUsd, cost_usd)`,
        { now: o.now, sessionId: o.stats.sessionId, model: o.stats.model, costUsd: o.stats.costUsd },
        'interrupted',
        { ...o, reason: TAKEN_OVER },
      ),
    );
  }

  async takeOver(taskId: number, now: number): Promise<Task> {
    return this.tx(() => {
      const t = this.prepare('SELECT state FROM tasks WHERE id = ?').get(taskId) as Row | undefined;
      if (!t) throw new NotFoundError(`no task ${taskId}`);
      if (t.state === 'queued' || t.state === 'blocked') {
        this.prepare("UPDATE tasks SET state = 'blocked', question = NULL, answer = NULL, taken_over_at = COALESCE(taken_over_at, ?) WHERE id = ?").run(now, taskId);
      } else if (t.state === 'running') {
        this.prepare('UPDATE tasks SET taken_over_at = COALESCE(taken_over_at, ?) WHERE id = ?').run(now, taskId);
      }
      return this.taskById(taskId)!;
    });
  }

  async release(taskId: number, note: string, now: number): Promise<Task> {
    return this.tx(() => {
      const t = this.prepare('SELECT state, question, taken_over_at FROM tasks WHERE id = ?').get(taskId) as Row | undefined;
      if (!t) throw new NotFoundError(`no task ${taskId}`);
      if (t.state !== 'blocked' || t.taken_over_at === null) throw notTakenOver(taskId, String(t.state), t.question !== null);
      this.prepare("UPDATE tasks SET state = 'queued', question = NULL, answer = ?, taken_over_at = NULL, run_after = ?, delayed = 0 WHERE id = ?").run(note, now, taskId);
      return this.taskById(taskId)!;
    });
  }

  async answer(taskId: number, answer: string, now: number): Promise<Task> {
    return this.tx(() => this.answerIn(taskId, answer, now));
  }

  /** `answer` inside a transaction. */
  private answerIn(taskId: number, answer: string, now: number): Task {
    const t = this.prepare('SELECT state, taken_over_at FROM tasks WHERE id = ?').get(taskId) as Row | undefined;
    if (!t) throw new NotFoundError(`no task ${taskId}`);
    if (t.state !== 'blocked') throw new AgentQueueError('not_blocked', `task ${taskId} is ${String(t.state)}, not blocked on a question`);
    if (t.taken_over_at !== null) throw takenOverNotBlocked(taskId);
    return this.queueAnswered(taskId, answer, now);
  }

  async answerRequest(taskId: number, answer: string, idempotency: { key: string; bodySha256: string }, now: number): Promise<AnswerResult> {
    return this.tx((): AnswerResult => {
      const known = this.prepare('SELECT body_sha256, task_id FROM idempotency_keys WHERE key = ?').get(idempotency.key) as Row | undefined;
      if (known) return { kind: known.body_sha256 === idempotency.bodySha256 ? 'replayed' : 'conflict', task: this.taskById(Number(known.task_id))! };
      const task = this.answerIn(taskId, answer, now);
      this.prepare('INSERT INTO idempotency_keys (key, body_sha256, task_id, created_at) VALUES (?, ?, ?, ?)').run(idempotency.key, idempotency.bodySha256, taskId, now);
      return { kind: 'answered', task };
    });
  }

  /** Queues a blocked task again with its answer (inside a transaction that checked it is blocked). */
  private queueAnswered(taskId: number, answer: string, now: number): Task {
    this.prepare("UPDATE tasks SET state = 'queued', answer = ?, run_after = ?, delayed = 0 WHERE id = ?").run(answer, now, taskId);
    return this.taskById(taskId)!;
  }

  async getRecurringTick(name: string): Promise<number | null> {
    const row = this.prepare('SELECT last_tick FROM recurring WHERE name = ?').get(name) as Row | undefined;
    return row ? Number(row.last_tick) : null;
  }

  async recordRecurringTick(name: string, tick: number, task: NewTask | null, now: number): Promise<Task | null> {
    return this.tx(() => {
      const row = this.prepare('SELECT last_tick FROM recurring WHERE name = ?').get(name) as Row | undefined;
      if (row && Number(row.last_tick) >= tick) return null;
      this.prepare(
        'INSERT INTO recurring (name, last_tick) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET last_tick = excluded.last_tick',
      ).run(name, tick);
      if (!task) return null;
      const created = this.insertTasks([task], now)[0]!;
      return created.task ?? this.taskById(created.id);
    });
  }

  async claimRecurringTick(name: string, tick: number): Promise<boolean> {
    return this.tx(() => {
      const row = this.prepare('SELECT last_tick FROM recurring WHERE name = ?').get(name) as Row | undefined;
      if (row && Number(row.last_tick) >= tick) return false;
      this.prepare('INSERT INTO recurring (name, last_tick) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET last_tick = excluded.last_tick').run(name, tick);
      return true;
    });
  }

  async knownDetectorKeys(name: string, keys: string[]): Promise<string[]> {
    if (keys.length === 0) return [];
    const rows = this.prepare(`SELECT key FROM detector_keys WHERE detector = ? AND key IN (SELECT value FROM json_each(?))`).all(name, JSON.stringify(keys)) as Row[];
    return rows.map((r) => String(r.key));
  }

  async recordDetectorRun(run: Omit<DetectorRun, 'created'>, entries: DetectedTask[], now: number): Promise<Task[]> {
    return this.tx(() => {
      const known = this.prepare('SELECT 1 FROM detector_keys WHERE detector = ? AND key = ?');
      const fresh = entries.filter((e) => !known.get(run.name, e.key));
      const ids = this.insertTasks(fresh.map((e) => e.task), now).map((t) => t.id);
      const key = this.prepare('INSERT INTO detector_keys (detector, key, task_id, created_at) VALUES (?, ?, ?, ?)');
      for (const [i, e] of fresh.entries()) key.run(run.name, e.key, ids[i], now);
      const cols = detectorRunColumns({ ...run, created: fresh.length, known: run.known + entries.length - fresh.length });
      this.prepare(
        `INSERT INTO detector_runs (${cols.map(([c]) => c).join(', ')}) VALUES (${placeholders(cols)})
         ON CONFLICT (name) DO UPDATE SET ${cols.map(([c]) => `${c} = excluded.${c}`).join(', ')}`,
      ).run(...cols.map(([, v]) => v));
      return ids.map((id) => this.taskById(id)!);
    });
  }

  async listDetectorRuns(): Promise<DetectorRun[]> {
    return (this.prepare('SELECT * FROM detector_runs ORDER BY name').all() as Row[]).map(toDetectorRun);
  }

  /** The task of an attempt, as SQL (bound: the attempt id). */
  private static readonly TASK_OF_ATTEMPT = '(SELECT task_id FROM attempts WHERE id = ?)';

  /**
   * A task's subtasks as {@link parentVerdict} reads them, in arrival order: `parent` is the
   * task's id, or SQL giving it from `value` ({@link TASK_OF_ATTEMPT}).
   */
  private subtaskRefs(parent: number | string, value?: unknown): TaskRef[] {
    const rows =
      typeof parent === 'number'
        ? this.prepare('SELECT id, name, state FROM tasks WHERE parent_id = ? ORDER BY id').all(parent)
        : this.prepare(`SELECT id, name, state FROM tasks WHERE parent_id = ${parent} ORDER BY id`).all(value);
    return (rows as Row[]).map((r) => ({ id: Number(r.id), name: String(r.name), state: r.state as TaskState }));
  }

  async settleParents(now: number): Promise<Task[]> {
    // Called on every tick: the write lock only when a parent waits (tasks_held).
    if (!this.prepare("SELECT 1 FROM tasks WHERE state = 'waiting' LIMIT 1").get()) return [];
    return this.tx(() => {
      const ended: number[] = [];
      // A parent may itself be a subtask: loop until nothing changes.
      for (let changed = true; changed;) {
        changed = false;
        for (const r of this.prepare("SELECT id FROM tasks WHERE state = 'waiting'").all() as Row[]) {
          const id = Number(r.id);
          const verdict = parentVerdict(this.subtaskRefs(id));
          if (verdict.state === 'waiting') continue;
          this.prepare('UPDATE tasks SET state = ?, failed_reason = ?, finished_at = ? WHERE id = ?').run(
            verdict.state,
            verdict.state === 'failed' ? verdict.reason : null,
            now,
            id,
          );
          ended.push(id);
          changed = true;
        }
      }
      return ended.map((id) => this.taskById(id)!);
    });
  }

  async listSubtasks(taskId: number): Promise<Task[]> {
    return (this.prepare('SELECT * FROM tasks WHERE parent_id = ? ORDER BY id').all(taskId) as Row[]).map((r) =>
      toTask(r, this.depIds(Number(r.id))),
    );
  }

  /**
   * Only the dependents of the tasks in `dep_failures` (migration 22: tasks that ended without
   * completing, or failed dependencies of a task queued again, recorded by triggers as it
   * happens) are looked at, and those rows are removed: the cost follows what ended since the
   * last call, not the queue or the history.
   */
  async failBlockedDependents(now: number): Promise<Task[]> {
    // Called on every tick: the write lock only when an unsuccessful end waits to be looked at.
    if (!this.prepare('SELECT 1 FROM dep_failures LIMIT 1').get()) return [];
    const pending = this.prepare('SELECT task_id FROM dep_failures ORDER BY task_id');
    const forget = this.prepare('DELETE FROM dep_failures WHERE task_id = ?');
    const dependents = this.prepare("SELECT t.id FROM task_deps d JOIN tasks t ON t.id = d.task_id WHERE d.depends_on_id = ? AND t.state = 'queued'");
    const firstFailed = this.prepare(`
      SELECT dt.id, dt.name, dt.state FROM task_deps d JOIN tasks dt ON dt.id = d.depends_on_id
       WHERE d.task_id = ? AND dt.state IN (${placeholders(UNSUCCESSFUL_STATES)}) ORDER BY d.position LIMIT 1`);
    const fail = this.prepare("UPDATE tasks SET state = 'failed', failed_reason = ?, finished_at = ? WHERE id = ? AND state = 'queued' RETURNING *");
    return this.tx(() => {
      const failed: Task[] = [];
      // A failure cascades: a dependent failed here has its own dependents recorded (trigger), looked at next round.
      for (let ended = pending.all() as Row[]; ended.length > 0; ended = pending.all() as Row[]) {
        const queued = new Set<number>();
        for (const r of ended) {
          for (const d of dependents.all(r.task_id) as Row[]) queued.add(Number(d.id));
          forget.run(r.task_id);
        }
        for (const id of [...queued].sort((a, b) => a - b)) {
          const dep = firstFailed.get(id, ...UNSUCCESSFUL_STATES) as Row | undefined;
          if (!dep) continue; // its failed dependency was retried since
          const reason = dependencyFailure({ id: Number(dep.id), name: String(dep.name), state: dep.state as TaskState })!;
          const row = fail.get(reason, now, id) as Row | undefined;
          if (row) failed.push(toTask(row, this.depIds(id)));
        }
      }
      return failed;
    });
  }

  async registerWorker(w: WorkerInfo): Promise<void> {
    this.prepare(
      `INSERT INTO workers (id, host, pid, started_at, heartbeat_at, labels, root) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at`,
    ).run(w.id, w.host, w.pid, w.startedAt, w.heartbeatAt, JSON.stringify(w.labels), w.root);
  }

  async workerHeartbeat(workerId: string, now: number): Promise<void> {
    this.prepare('UPDATE workers SET heartbeat_at = ? WHERE id = ?').run(now, workerId);
  }

  async removeWorker(workerId: string): Promise<void> {
    this.prepare('DELETE FROM workers WHERE id = ?').run(workerId);
  }

  async listWorkers(): Promise<WorkerInfo[]> {
    return (this.prepare('SELECT * FROM workers ORDER BY started_at').all() as Row[]).map(toWorker);
  }

  async listRunning(): Promise<StaleClaim[]> {
    const rows = this.prepare("SELECT * FROM tasks INDEXED BY tasks_running WHERE state = 'running' ORDER BY id").all() as Row[];
    return rows.map((r) => toStaleClaim(r, toTask(r, this.depIds(Number(r.id)))));
  }

  async pauseAgent(p: AgentPause, strikes = 0): Promise<void> {
    this.prepare(
      `INSERT INTO agent_pauses (agent, until, reason, strikes) VALUES (?, ?, ?, ?)
       ON CONFLICT (agent) DO UPDATE SET until = excluded.until, reason = excluded.reason, strikes = excluded.strikes`,
    ).run(p.agent, p.until, p.reason, strikes);
  }

  async agentStrikes(agent: string): Promise<number> {
    const row = this.prepare('SELECT strikes FROM agent_pauses WHERE agent = ?').get(agent) as Row | undefined;
    return row ? Number(row.strikes) : 0;
  }

  async clearAgentStrikes(agent: string): Promise<void> {
    this.prepare('UPDATE agent_pauses SET strikes = 0 WHERE agent = ? AND strikes > 0').run(agent);
  }

  async listPauses(now: number): Promise<AgentPause[]> {
    return (this.prepare('SELECT * FROM agent_pauses WHERE until > ? ORDER BY agent').all(now) as Row[]).map(toPause);
  }

  async extendPause(p: AgentPause): Promise<boolean> {
    const r = this.prepare(
      `INSERT INTO agent_pauses (agent, until, reason) VALUES (?, ?, ?)
       ON CONFLICT (agent) DO UPDATE SET until = excluded.until, reason = excluded.reason
         WHERE excluded.until > agent_pauses.until`,
    ).run(p.agent, p.until, p.reason);
    return r.changes > 0;
  }

  async takeRateToken(agent: string, bucket: RateBucket, now: number): Promise<RateToken> {
    checkBucket(agent, bucket);
    return this.tx(() => {
      const row = this.prepare('SELECT tokens, updated_at FROM agent_buckets WHERE agent = ?').get(agent) as Row | undefined;
      const { token, updatedAt } = takeToken(row ? { tokens: Number(row.tokens), updatedAt: Number(row.updated_at) } : null, bucket, now);
      this.prepare(
        `INSERT INTO agent_buckets (agent, tokens, updated_at) VALUES (?, ?, ?)
         ON CONFLICT (agent) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at`,
      ).run(agent, token.tokens, updatedAt);
      return token;
    });
  }

  async getTask(idOrName: string | number): Promise<Task | null> {
    const text = String(idOrName).replace(/^#/, '');
    if (/^\d+$/.test(text)) return this.taskById(Number(text));
    return this.findByName(text);
  }

  async listTasks(filter: TaskFilter = {}): Promise<Task[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    const when = (condition: string, ...values: unknown[]) => {
      where.push(condition);
      args.push(...values);
    };
    if (filter.state) {
      // A literal, as a partial index needs (tasks_queued, tasks_running, tasks_held).
      if (!TASK_STATES.includes(filter.state)) throw new AgentQueueError('invalid_state', `state: ${JSON.stringify(filter.state)} is not one of ${TASK_STATES.join(', ')}`);
      when(`state = '${filter.state}'`);
    }
    if (filter.agent) when('(agent = ? OR run_agent = ?)', filter.agent, filter.agent);
    if (filter.tag) when('EXISTS (SELECT 1 FROM json_each(tasks.tags) WHERE value = ?)', filter.tag);
    if (filter.priority) when('priority = ?', filter.priority);
    if (filter.beforeId !== undefined) when('id < ?', filter.beforeId);
    // A keyset page (beforeId) walks the table by id from the cursor, never an index on state
    // (tasks_queued is not in id order: it would sort every matching task below the cursor again
    // for each page; 100k completed tasks, `agentq list --all --state completed`: 19 s against 2 s).
    // A first page of a state that has a partial index reads that index alone.
    const index = filter.beforeId !== undefined ? undefined : filter.state ? STATE_INDEX[filter.state] : undefined;
    const table = filter.beforeId !== undefined ? 'tasks NOT INDEXED' : index ? `tasks INDEXED BY ${index}` : 'tasks';
    const sql = `SELECT *, ${DEP_IDS_SQL} FROM ${table} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id ${filter.order === 'desc' ? 'DESC' : ''} LIMIT ?`;
    return this.taskRows(sql).all(...args, filter.limit ?? -1).map((r) => this.taskOf(r));
  }

  async listAttempts(taskId: number): Promise<Attempt[]> {
    return (this.prepare(`SELECT ${ATTEMPT_COLUMNS} FROM attempts WHERE task_id = ? ORDER BY number`).all(taskId) as Row[]).map(toAttempt);
  }

  async recordVerification(attemptId: string, v: NewVerification): Promise<boolean> {
    return this.tx(() => {
      const held = this.prepare(`SELECT id FROM tasks WHERE ${SqliteStore.LEASED}`).get({ attempt: attemptId }) as Row | undefined;
      if (!held) return false;
      this.prepare(
        `INSERT INTO verifications (attempt_id, number, task_id, command, exit_code, timed_out, duration_ms, output_path, output_tail, started_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (attempt_id, number) DO UPDATE SET command = excluded.command, exit_code = excluded.exit_code,
           timed_out = excluded.timed_out, duration_ms = excluded.duration_ms, output_path = excluded.output_path,
           output_tail = excluded.output_tail, started_at = excluded.started_at`,
      ).run(attemptId, v.number, Number(held.id), v.command, v.exitCode, v.timedOut ? 1 : 0, v.durationMs, v.outputPath, v.outputTail, v.startedAt);
      return true;
    });
  }

  async listVerifications(taskId: number): Promise<Verification[]> {
    const rows = this.prepare(
      `SELECT v.*, a.number AS attempt_number FROM verifications v JOIN attempts a ON a.id = v.attempt_id
       WHERE v.task_id = ? ORDER BY a.number, v.number`,
    ).all(taskId) as Row[];
    return rows.map(toVerification);
  }

  async attemptOutput(attemptId: string): Promise<AttemptOutput | null> {
    const row = this.prepare('SELECT stdout_tail, stdout_bytes, stderr_tail, stderr_bytes FROM attempts WHERE id = ?').get(attemptId) as Row | undefined;
    return row ? toAttemptOutput(row) : null;
  }

  async countByState(): Promise<Record<TaskState, number>> {
    const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
    // Kept by the statements that change a task's state (migration 22: task_counts and its
    // triggers), queued and running together; the running ones are few (tasks_running).
    const running = Number((this.prepare("SELECT count(*) AS n FROM tasks INDEXED BY tasks_running WHERE state = 'running'").get() as Row).n);
    for (const r of this.prepare('SELECT state, n FROM task_counts').all() as Row[]) {
      if (r.state === 'queued+running') counts.queued = Number(r.n) - running;
      else counts[r.state as TaskState] = Number(r.n);
    }
    counts.running = running;
    return counts;
  }

  /** `attempt_ids_ordered.since` (migration 23), read once: from it on, attempt ids are in start order. */
  private orderedIdsSince: number | null = null;

  /**
   * From the running tasks (`tasks_running`; a running attempt is its task's lease) and the
   * attempts started since `since` (a range of `attempts_id`: ids in start order, see
   * {@link attemptIdAt}), so its cost follows the day's attempts, not the history. A window
   * that begins before the ids were ordered (a store upgraded to migration 23 that day, or
   * `since` 0) reads the whole table.
   */
  async agentUsage(since: number): Promise<AgentUsage[]> {
    this.orderedIdsSince ??= Number((this.prepare('SELECT since FROM attempt_ids_ordered').get() as Row | undefined)?.since ?? 0);
    if (since >= this.orderedIdsSince) {
      const rows = this.prepare(
        `SELECT agent, sum(running) AS running, sum(attempts) AS attempts, sum(cost) AS cost, sum(input) AS input, sum(output) AS output FROM (
           SELECT a.agent, 1 AS running, 0 AS attempts, 0 AS cost, 0 AS input, 0 AS output
             FROM tasks t INDEXED BY tasks_running JOIN attempts a ON a.id = t.lease_token WHERE t.state = 'running'
           UNION ALL
           SELECT agent, 0, 1, coalesce(cost_usd, 0), coalesce(input_tokens, 0), coalesce(output_tokens, 0)
             FROM attempts INDEXED BY attempts_id WHERE id >= @sinceId AND started_at >= @since
         ) GROUP BY agent ORDER BY agent`,
      ).all({ since, sinceId: firstAttemptIdAt(since) }) as Row[];
      return rows.map(toAgentUsage);
    }
    const rows = this.prepare(
      `SELECT agent,
         sum(CASE WHEN outcome = 'running' THEN 1 ELSE 0 END) AS running,
         sum(CASE WHEN started_at >= @since THEN 1 ELSE 0 END) AS attempts,
         sum(CASE WHEN started_at >= @since THEN coalesce(cost_usd, 0) ELSE 0 END) AS cost,
         sum(CASE WHEN started_at >= @since THEN coalesce(input_tokens, 0) ELSE 0 END) AS input,
         sum(CASE WHEN started_at >= @since THEN coalesce(output_tokens, 0) ELSE 0 END) AS output
       FROM attempts WHERE outcome = 'running' OR started_at >= @since GROUP BY agent ORDER BY agent`,
    ).all({ since }) as Row[];
    return rows.map(toAgentUsage);
  }

  /**
   * Reads the window's attempts (with their task's tags when grouping by tag) and groups them
   * in TypeScript (`summarizeUsage`): SQLite's date functions know only UTC and the process's
   * `localtime`, not other IANA zones. A full scan of `attempts` (no index on `started_at`).
   */
  async usage(query: UsageQuery): Promise<UsageRow[]> {
    const withTags = (query.by ?? USAGE_DIMENSIONS).includes('tag');
    const rows = this.prepare(
      `SELECT a.started_at, a.agent, a.model, a.outcome, a.cost_usd, a.input_tokens, a.output_tokens,
              ${withTags ? 't.tags' : "'[]'"} AS tags
         FROM attempts a ${withTags ? 'JOIN tasks t ON t.id = a.task_id' : ''}
        WHERE a.started_at >= @since AND (@until IS NULL OR a.started_at < @until)`,
    ).all({ since: query.since, until: query.until ?? null }) as Row[];
    const records = rows.map((r) => toUsageRecord(r, withTags));
    return summarizeUsage(records, query);
  }

  async listUnreported(origin?: TaskOrigin): Promise<Task[]> {
    const rows = (origin === undefined ? this.prepare(UNREPORTED_SQL.all).all() : this.prepare(UNREPORTED_SQL.ofOrigin).all(origin.host, origin.root)) as Row[];
    return rows.map((r) => toTask(r, this.depIds(Number(r.id))));
  }

  async setResultPath(taskId: number, p: string): Promise<void> {
    this.prepare('UPDATE tasks SET result_path = ? WHERE id = ?').run(p, taskId);
  }

  async cancel(taskId: number, now: number): Promise<Task> {
    return this.tx(() => {
      const t = this.prepare('SELECT state FROM tasks WHERE id = ?').get(taskId) as Row | undefined;
      if (!t) throw new NotFoundError(`no task ${taskId}`);
      if (t.state === 'queued' || t.state === 'blocked') {
        this.prepare("UPDATE tasks SET state = 'cancelled', failed_reason = 'cancelled by user', finished_at = ?, taken_over_at = NULL WHERE id = ?").run(
          now,
          taskId,
        );
      } else if (t.state === 'running') {
        this.prepare('UPDATE tasks SET cancel_requested = 1 WHERE id = ?').run(taskId);
      }
      return this.taskById(taskId)!;
    });
  }

  async retry(taskId: number, now: number): Promise<Task> {
    return this.tx(() => {
      const t = this.prepare('SELECT state FROM tasks WHERE id = ?').get(taskId) as Row | undefined;
      if (!t) throw new NotFoundError(`no task ${taskId}`);
      const state = t.state as TaskState;
      if (!isTerminal(state) || state === 'completed' || state === 'invalid') return this.taskById(taskId)!;
      this.prepare(
        `UPDATE tasks SET state = 'queued', attempts = 0, run_after = ?, delayed = 0, finished_at = NULL, failed_reason = NULL,
             result = NULL, result_path = NULL, cancel_requested = 0, taken_over_at = NULL WHERE id = ?`,
      ).run(now, taskId);
      // Its next end is reported to its callback again.
      this.prepare(
        `UPDATE callbacks SET state = 'pending', attempts = 0, last_error = NULL, delivered_at = NULL, next_try_at = NULL
           WHERE task_id = ?`,
      ).run(taskId);
      return this.taskById(taskId)!;
    });
  }

  async enqueueRequest(task: NewTask, o: RequestOptions, now: number): Promise<RequestResult> {
    return this.tx((): RequestResult => {
      const found = (kind: RequestResult['kind'], id: number): RequestResult => ({ kind, task: this.taskById(id)! });
      if (o.idempotency) {
        const known = this.prepare('SELECT body_sha256, task_id FROM idempotency_keys WHERE key = ?').get(o.idempotency.key) as Row | undefined;
        if (known) return found(known.body_sha256 === o.idempotency.bodySha256 ? 'replayed' : 'conflict', Number(known.task_id));
      }
      // BEGIN IMMEDIATE holds the write lock: the count cannot change before the insert.
      const parentId = task.parentId ?? null;
      if (o.maxSubtasks != null && parentId !== null) {
        const parent = this.prepare('SELECT id, name, (SELECT COUNT(*) FROM tasks WHERE parent_id = ?) AS subtasks FROM tasks WHERE id = ?').get(parentId, parentId) as Row | undefined;
        if (parent && Number(parent.subtasks) >= o.maxSubtasks) throw new SubtaskLimitError({ id: parentId, name: String(parent.name) }, o.maxSubtasks);
      }
      const created = this.insertTasks([task], now)[0]!;
      const id = created.id;
      if (o.idempotency) {
        this.prepare('INSERT INTO idempotency_keys (key, body_sha256, task_id, created_at) VALUES (?, ?, ?, ?)').run(
          o.idempotency.key,
          o.idempotency.bodySha256,
          id,
          now,
        );
      }
      if (o.callbackUrl) this.prepare('INSERT INTO callbacks (task_id, url) VALUES (?, ?)').run(id, o.callbackUrl);
      return created.task ? { kind: 'created', task: created.task } : found('created', id);
    });
  }

  async findIdempotencyKey(key: string): Promise<{ bodySha256: string; taskId: number } | null> {
    const row = this.prepare('SELECT body_sha256, task_id FROM idempotency_keys WHERE key = ?').get(key) as Row | undefined;
    return row ? { bodySha256: String(row.body_sha256), taskId: Number(row.task_id) } : null;
  }

  async getCallback(taskId: number): Promise<CallbackDelivery | null> {
    const row = this.prepare('SELECT * FROM callbacks WHERE task_id = ?').get(taskId) as Row | undefined;
    return row ? toCallback(row) : null;
  }

  async claimDueCallbacks(now: number, leaseMs: number, limit: number): Promise<DueCallback[]> {
    return this.tx(() => {
      const due = this.prepare(
        `SELECT c.* FROM callbacks c JOIN tasks t ON t.id = c.task_id
           WHERE c.state = 'pending' AND (c.next_try_at IS NULL OR c.next_try_at <= ?) AND t.state IN (${placeholders(TERMINAL_STATES)})
           ORDER BY c.task_id LIMIT ?`,
      ).all(now, ...TERMINAL_STATES, limit) as Row[];
      const lease = this.prepare('UPDATE callbacks SET next_try_at = ? WHERE task_id = ?');
      for (const r of due) lease.run(now + leaseMs, r.task_id);
      return due.map((r) => ({ delivery: toCallback(r), task: this.taskById(Number(r.task_id))! }));
    });
  }

  async recordCallbackTry(taskId: number, t: CallbackTry): Promise<CallbackDelivery | null> {
    const c = tryColumns(t);
    const row = this.prepare(
      `UPDATE callbacks SET state = ?, attempts = attempts + ?, last_error = CASE WHEN ? THEN last_error ELSE ? END,
           delivered_at = ?, next_try_at = ?
         WHERE task_id = ? RETURNING *`,
    ).get(c.state, c.counted, c.keepError ? 1 : 0, c.error, c.deliveredAt, c.nextTryAt, taskId) as Row | undefined;
    return row ? toCallback(row) : null;
  }

  async recordNotifications(rows: NewNotification[], now: number): Promise<Notification[]> {
    if (rows.length === 0) return [];
    // Read first: recording what is already recorded (every sweep) takes no write lock.
    const known = new Set(
      (this.prepare(`SELECT key, target FROM notifications WHERE key IN (${placeholders(rows)})`).all(...rows.map((r) => r.key)) as Row[]).map(
        (r) => `${String(r.key)}\n${String(r.target)}`,
      ),
    );
    const missing = rows.filter((r) => !known.has(`${r.key}\n${r.target}`));
    if (missing.length === 0) return [];
    const insert = this.prepare(
      `INSERT INTO notifications (key, target, event, task_id, payload, created_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (key, target) DO NOTHING RETURNING *`,
    );
    return this.tx(() =>
      missing.flatMap((r) => {
        const row = insert.get(r.key, r.target, r.event, r.taskId, r.payload, now) as Row | undefined;
        return row ? [toNotification(row)] : [];
      }),
    );
  }

  async claimDueNotifications(targets: string[], now: number, leaseMs: number, limit: number): Promise<Notification[]> {
    if (targets.length === 0) return [];
    return this.tx(() => {
      const due = this.prepare(
        `SELECT * FROM notifications
           WHERE state = 'pending' AND (next_try_at IS NULL OR next_try_at <= ?) AND target IN (${placeholders(targets)})
           ORDER BY id LIMIT ?`,
      ).all(now, ...targets, limit) as Row[];
      const lease = this.prepare('UPDATE notifications SET next_try_at = ? WHERE id = ?');
      for (const r of due) lease.run(now + leaseMs, r.id);
      return due.map((r) => toNotification({ ...r, next_try_at: now + leaseMs }));
    });
  }

  async recordNotificationTry(id: number, t: CallbackTry): Promise<Notification | null> {
    const c = tryColumns(t);
    const row = this.prepare(
      `UPDATE notifications SET state = ?, attempts = attempts + ?, last_error = CASE WHEN ? THEN last_error ELSE ? END,
           last_try_at = CASE WHEN ? THEN last_try_at ELSE ? END, delivered_at = ?, next_try_at = ?
         WHERE id = ? RETURNING *`,
    ).get(c.state, c.counted, c.keepError ? 1 : 0, c.error, c.keepError ? 1 : 0, t.now, c.deliveredAt, c.nextTryAt, id) as Row | undefined;
    return row ? toNotification(row) : null;
  }

  async notificationHealth(): Promise<NotificationHealth[]> {
    const rows = this.prepare(
      `SELECT n.target,
         sum(CASE WHEN n.state = 'delivered' THEN 1 ELSE 0 END) AS delivered,
         sum(CASE WHEN n.state = 'pending' THEN 1 ELSE 0 END) AS pending,
         sum(CASE WHEN n.state = 'pending' AND n.last_error IS NOT NULL THEN 1 ELSE 0 END) AS retrying,
         sum(CASE WHEN n.state = 'failed' THEN 1 ELSE 0 END) AS failed,
         max(CASE WHEN n.last_error IS NOT NULL THEN n.last_try_at END) AS last_error_at,
         max(n.delivered_at) AS last_delivered_at,
         (SELECT e.last_error FROM notifications e WHERE e.target = n.target AND e.last_error IS NOT NULL
            ORDER BY e.last_try_at DESC, e.id DESC LIMIT 1) AS last_error
       FROM notifications n GROUP BY n.target ORDER BY n.target`,
    ).all() as Row[];
    return rows.map(toNotificationHealth);
  }

  async queueMark(): Promise<QueueMark> {
    const row = this.prepare(
      `SELECT (SELECT count(*) FROM tasks WHERE state IN ('queued', 'running', 'waiting')) AS active,
              (SELECT coalesce(max(id), 0) FROM tasks) AS newest,
              (SELECT count(*) FROM attempts) AS attempts`,
    ).get() as Row;
    return { active: Number(row.active), mark: `${Number(row.newest)}:${Number(row.attempts)}` };
  }

  async addAnswerToken(t: AnswerToken, now: number): Promise<void> {
    this.tx(() => {
      this.prepare('DELETE FROM answer_tokens WHERE expires_at < ?').run(now - 86_400_000);
      this.prepare('INSERT INTO answer_tokens (token_sha256, task_id, claims, created_at, expires_at) VALUES (?, ?, ?, ?, ?)').run(
        t.tokenSha256,
        t.taskId,
        t.claims,
        now,
        t.expiresAt,
      );
    });
  }

  async answerWithToken(taskId: number, tokenSha256: string, answer: string, now: number): Promise<TokenAnswer> {
    return this.tx((): TokenAnswer => {
      const token = this.prepare('SELECT * FROM answer_tokens WHERE token_sha256 = ?').get(tokenSha256) as Row | undefined;
      if (!token || Number(token.task_id) !== taskId) return { outcome: 'unknown' };
      if (token.used_at !== null) return { outcome: 'used' };
      if (Number(token.expires_at) <= now) return { outcome: 'expired' };
      const t = this.prepare('SELECT state, claims, taken_over_at FROM tasks WHERE id = ?').get(taskId) as Row | undefined;
      if (!t || t.state !== 'blocked' || t.taken_over_at !== null || Number(t.claims) !== Number(token.claims)) return { outcome: 'closed' };
      this.prepare('UPDATE answer_tokens SET used_at = ? WHERE task_id = ? AND claims = ? AND used_at IS NULL').run(now, taskId, token.claims);
      return { outcome: 'answered', task: this.queueAnswered(taskId, answer, now) };
    });
  }

  async saveA2aPushConfig(c: A2aPushConfig, now: number): Promise<void> {
    this.prepare(
      `INSERT INTO a2a_push_configs (task_id, config_id, url, token, authentication, created_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (task_id, config_id) DO UPDATE SET url = excluded.url, token = excluded.token, authentication = excluded.authentication,
           pushed_version = NULL, sending_version = NULL, attempts = 0, last_error = NULL, delivered_at = NULL, next_try_at = NULL`,
    ).run(c.taskId, c.id, c.url, c.token, c.authentication === null ? null : JSON.stringify(c.authentication), now);
  }

  async listA2aPushConfigs(taskId: number): Promise<A2aPush[]> {
    return (this.prepare('SELECT * FROM a2a_push_configs WHERE task_id = ? ORDER BY created_at, config_id').all(taskId) as Row[]).map(toA2aPush);
  }

  async deleteA2aPushConfig(taskId: number, configId: string): Promise<boolean> {
    return this.prepare('DELETE FROM a2a_push_configs WHERE task_id = ? AND config_id = ?').run(taskId, configId).changes > 0;
  }

  async claimDueA2aPushes(now: number, leaseMs: number, limit: number): Promise<DueA2aPush[]> {
    const dueSql = `SELECT p.task_id, p.config_id, ${TASK_VERSION_SQL} AS version FROM a2a_push_configs p JOIN tasks t ON t.id = p.task_id
           WHERE (p.pushed_version IS NULL OR p.pushed_version <> ${TASK_VERSION_SQL}) AND (p.next_try_at IS NULL OR p.next_try_at <= ?)
           ORDER BY p.task_id, p.config_id LIMIT ?`;
    // Looked at often (every task change): the write lock only when something is due.
    if (!this.prepare(dueSql).get(now, 1)) return [];
    return this.tx(() => {
      const due = this.prepare(dueSql).all(now, limit) as Row[];
      const lease = this.prepare(
        `UPDATE a2a_push_configs SET next_try_at = ?, attempts = CASE WHEN sending_version IS ? THEN attempts ELSE 0 END, sending_version = ?
           WHERE task_id = ? AND config_id = ? RETURNING *`,
      );
      return due.map((r) => {
        const version = String(r.version);
        const push = toA2aPush(lease.get(now + leaseMs, version, version, r.task_id, r.config_id) as Row);
        return { push, task: this.taskById(push.taskId)!, version };
      });
    });
  }

  async recordA2aPushTry(taskId: number, configId: string, version: string, t: CallbackTry): Promise<A2aPush | null> {
    const c = tryColumns(t);
    const settled = c.state !== 'pending';
    const row = this.prepare(
      `UPDATE a2a_push_configs SET attempts = attempts + ?, last_error = CASE WHEN ? THEN last_error ELSE ? END,
           delivered_at = coalesce(?, delivered_at), pushed_version = CASE WHEN ? THEN ? ELSE pushed_version END, next_try_at = ?
         WHERE task_id = ? AND config_id = ? AND sending_version = ? RETURNING *`,
    ).get(c.counted, c.keepError ? 1 : 0, c.error, c.deliveredAt, settled ? 1 : 0, version, c.nextTryAt, taskId, configId, version) as Row | undefined;
    return row ? toA2aPush(row) : null;
  }

  // --- delegations -------------------------------------------------------------------

  private openDelegationRow(taskId: number): Row | undefined {
    return this.prepare(`SELECT * FROM delegations WHERE task_id = ? AND state NOT IN (${placeholders(DELEGATION_END_STATES)}) ORDER BY id DESC LIMIT 1`).get(
      taskId,
      ...DELEGATION_END_STATES,
    ) as Row | undefined;
  }

  async createDelegation(d: NewDelegation): Promise<{ delegation: Delegation; created: boolean }> {
    return this.tx(() => {
      const open = this.openDelegationRow(d.taskId);
      if (open) return { delegation: toDelegation(open), created: false };
      const row = this.prepare(
        `INSERT INTO delegations (task_id, attempt_id, remote, url, message_id, state, created_at, progress_at, updated_at)
           VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?) RETURNING *`,
      ).get(d.taskId, d.attemptId, d.remote, d.url, d.attemptId, d.now, d.now, d.now) as Row;
      return { delegation: toDelegation(row), created: true };
    });
  }

  async openDelegation(taskId: number): Promise<Delegation | null> {
    const row = this.openDelegationRow(taskId);
    return row ? toDelegation(row) : null;
  }

  async getDelegation(id: number): Promise<Delegation | null> {
    const row = this.prepare('SELECT * FROM delegations WHERE id = ?').get(id) as Row | undefined;
    return row ? toDelegation(row) : null;
  }

  async updateDelegation(id: number, expected: DelegationState, patch: DelegationPatch, now: number): Promise<Delegation | null> {
    const cols = delegationPatchColumns(patch, now);
    const row = this.prepare(`UPDATE delegations SET ${cols.map(([c]) => `${c} = ?`).join(', ')} WHERE id = ? AND state = ? RETURNING *`).get(
      ...cols.map(([, v]) => v),
      id,
      expected,
    ) as Row | undefined;
    return row ? toDelegation(row) : null;
  }

  async listDelegations(filter: DelegationFilter = {}): Promise<Delegation[]> {
    const conditions: Array<[string, unknown]> = [];
    if (filter.state !== undefined) conditions.push(['state = ?', filter.state]);
    if (filter.open) conditions.push([`state NOT IN (${placeholders(DELEGATION_END_STATES)})`, DELEGATION_END_STATES]);
    if (filter.taskId !== undefined) conditions.push(['task_id = ?', filter.taskId]);
    if (filter.beforeId !== undefined) conditions.push(['id < ?', filter.beforeId]);
    const where = conditions.map(([c]) => c);
    const params = conditions.flatMap(([, v]) => (Array.isArray(v) ? v : [v]));
    const sql = `SELECT * FROM delegations ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    return (this.prepare(sql).all(...params, filter.limit ?? 100) as Row[]).map(toDelegation);
  }

  async probeWrite(waitMs: number): Promise<string | null> {
    const timeout = Number(this.db.pragma('busy_timeout', { simple: true }));
    this.db.pragma(`busy_timeout = ${Math.max(0, Math.round(waitMs))}`);
    try {
      this.db.exec('BEGIN IMMEDIATE');
      this.db.exec('ROLLBACK');
      return null;
    } catch (err) {
      if (!isTransientStoreError(err)) throw err;
      return (err as Error).message;
    } finally {
      this.db.pragma(`busy_timeout = ${timeout}`);
    }
  }

  async close(): Promise<void> {
    if (this.checkpointTimer) clearInterval(this.checkpointTimer);
    if (this.db.open) this.db.close();
  }
}
