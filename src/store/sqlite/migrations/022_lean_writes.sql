-- Lean writes (issue 13): a claim, a finish and an enqueue write what the transition needs and
-- no more, a claim is a seek whatever waits at the front of the queue, and what a dispatcher
-- does on every tick costs the same however long the queue and the history grow.
-- After this file, the migration runner rebuilds `tasks` without AUTOINCREMENT (its own
-- CREATE TABLE text less that word, every row, index and trigger kept; ids kept, and the next
-- id stays past the largest ever given: `task_id_floor`). See sqlite-store.ts, `migrate`.
-- The unsuccessful states named below are UNSUCCESSFUL_STATES (src/core/lifecycle.ts).

-- Indexes that held `state` for every task: each state change rewrote them all.
DROP INDEX tasks_ready;          -- (state, priority_rank, id): replaced by the partial ones below
DROP INDEX tasks_group_running;  -- (concurrency_group, state): replaced by tasks_running
DROP INDEX tasks_dedup;          -- (dedup_key, state): now only over tasks that have a key
DROP INDEX tasks_parent;         -- (parent_id): now only over subtasks

-- Whether a queued task can be claimed, kept on its row so that the claim index orders the
-- claimable ones first: `deps_open` counts its dependencies not completed yet (kept by the
-- triggers below); `delayed` is 1 while its run_after was in the future when it was queued
-- (a claim clears it once run_after has passed: tasks_delayed).
ALTER TABLE tasks ADD COLUMN deps_open INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN delayed INTEGER NOT NULL DEFAULT 0;
-- The concurrency group as a lane key without NULLs ('' for none, '=' || name otherwise), so
-- lanes compare as row values.
ALTER TABLE tasks ADD COLUMN lane_group TEXT GENERATED ALWAYS AS (ifnull('=' || concurrency_group, '')) VIRTUAL;

UPDATE tasks SET deps_open = (SELECT count(*) FROM task_deps d JOIN tasks dt ON dt.id = d.depends_on_id
                               WHERE d.task_id = tasks.id AND dt.state <> 'completed')
  WHERE id IN (SELECT task_id FROM task_deps);
UPDATE tasks SET delayed = 1 WHERE state = 'queued' AND run_after > CAST(unixepoch('subsec') * 1000 AS INTEGER);

-- The claim's index: queued tasks only, claimable ones (0, 0) first, by lane — agent, runs_on,
-- concurrency group: what a dispatcher may or may not take as a whole (paused account, labels,
-- agent and group limits) — then priority and arrival. A claim visits the head of each lane,
-- never the tasks behind a lane it cannot take.
CREATE INDEX tasks_queued ON tasks (deps_open, delayed, agent, runs_on, lane_group, priority_rank, id) WHERE state = 'queued';
-- Queued tasks waiting for their run_after, by it.
CREATE INDEX tasks_delayed ON tasks (run_after) WHERE state = 'queued' AND delayed = 1;
-- Running tasks (few: at most `concurrency`): the claim's agent and group counts, the rescuer.
CREATE INDEX tasks_running ON tasks (agent, lane_group) WHERE state = 'running';
-- Blocked and waiting tasks: settleParents on every tick, lists by state.
CREATE INDEX tasks_held ON tasks (state, id) WHERE state = 'blocked' OR state = 'waiting';
CREATE INDEX tasks_dedup ON tasks (dedup_key, state) WHERE dedup_key IS NOT NULL;
CREATE INDEX tasks_parent ON tasks (parent_id) WHERE parent_id IS NOT NULL;

-- Tasks per state, kept by the statements that change them (countByState reads a few rows).
-- Queued and running tasks count together ('queued+running'), so a claim, which moves a task
-- from one to the other, writes nothing here; the running ones (at most `concurrency`) are
-- counted in tasks_running, and queued = 'queued+running' less them.
CREATE TABLE task_counts (
  state TEXT    PRIMARY KEY,
  n     INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO task_counts (state, n)
  SELECT CASE WHEN state IN ('queued', 'running') THEN 'queued+running' ELSE state END, count(*) FROM tasks GROUP BY 1;
CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks BEGIN
  INSERT INTO task_counts (state, n) VALUES (CASE WHEN NEW.state IN ('queued', 'running') THEN 'queued+running' ELSE NEW.state END, 1) ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER tasks_count_update AFTER UPDATE OF state ON tasks
  WHEN OLD.state IS NOT NEW.state AND NOT (OLD.state IN ('queued', 'running') AND NEW.state IN ('queued', 'running'))
BEGIN
  INSERT INTO task_counts (state, n) VALUES (CASE WHEN OLD.state IN ('queued', 'running') THEN 'queued+running' ELSE OLD.state END, -1), (CASE WHEN NEW.state IN ('queued', 'running') THEN 'queued+running' ELSE NEW.state END, 1)
    ON CONFLICT (state) DO UPDATE SET n = n + excluded.n;
END;
CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks BEGIN
  UPDATE task_counts SET n = n - 1 WHERE state = CASE WHEN OLD.state IN ('queued', 'running') THEN 'queued+running' ELSE OLD.state END;
END;

-- deps_open: a dependency recorded that has not completed counts; one that completes stops counting
-- (`completed` is final: retry refuses it).
CREATE TRIGGER task_deps_open AFTER INSERT ON task_deps
  WHEN (SELECT state FROM tasks WHERE id = NEW.depends_on_id) <> 'completed'
BEGIN
  UPDATE tasks SET deps_open = deps_open + 1 WHERE id = NEW.task_id;
END;
CREATE TRIGGER tasks_dependency_completed AFTER UPDATE OF state ON tasks
  WHEN NEW.state = 'completed' AND OLD.state IS NOT 'completed' AND EXISTS (SELECT 1 FROM task_deps WHERE depends_on_id = NEW.id)
BEGIN
  UPDATE tasks SET deps_open = deps_open - 1 WHERE id IN (SELECT task_id FROM task_deps WHERE depends_on_id = NEW.id);
END;

-- Tasks that ended unsuccessfully and have dependents, not looked at yet by
-- failBlockedDependents (which fails their queued dependents, then forgets them); also a
-- task's failed dependencies when it is recorded or queued again with them.
CREATE TABLE dep_failures (
  task_id INTEGER PRIMARY KEY
);
INSERT INTO dep_failures (task_id)
  SELECT DISTINCT d.depends_on_id FROM task_deps d JOIN tasks dt ON dt.id = d.depends_on_id JOIN tasks t ON t.id = d.task_id
   WHERE t.state = 'queued' AND dt.state IN ('failed', 'timed_out', 'budget_exceeded', 'cancelled', 'invalid', 'duplicate');
CREATE TRIGGER tasks_dependency_failed AFTER UPDATE OF state ON tasks
  WHEN NEW.state IN ('failed', 'timed_out', 'budget_exceeded', 'cancelled', 'invalid', 'duplicate') AND OLD.state IS NOT NEW.state
   AND EXISTS (SELECT 1 FROM task_deps WHERE depends_on_id = NEW.id)
BEGIN
  INSERT OR IGNORE INTO dep_failures (task_id) VALUES (NEW.id);
END;
CREATE TRIGGER task_deps_failed AFTER INSERT ON task_deps
  WHEN (SELECT state FROM tasks WHERE id = NEW.depends_on_id) IN ('failed', 'timed_out', 'budget_exceeded', 'cancelled', 'invalid', 'duplicate')
BEGIN
  INSERT OR IGNORE INTO dep_failures (task_id) VALUES (NEW.depends_on_id);
END;
CREATE TRIGGER tasks_requeued_after_dependency_failed AFTER UPDATE OF state ON tasks
  WHEN NEW.state = 'queued' AND OLD.state IS NOT 'queued' AND NEW.deps_open > 0
BEGIN
  INSERT OR IGNORE INTO dep_failures (task_id)
    SELECT d.depends_on_id FROM task_deps d JOIN tasks dt ON dt.id = d.depends_on_id
     WHERE d.task_id = NEW.id AND dt.state IN ('failed', 'timed_out', 'budget_exceeded', 'cancelled', 'invalid', 'duplicate');
END;

-- The smallest id the next task may take (one row at most): set by the rebuild when the
-- AUTOINCREMENT sequence had gone past the largest id left (tasks deleted by hand), taken
-- and removed by the next enqueue, so an id is never given twice.
CREATE TABLE task_id_floor (
  next_id INTEGER NOT NULL
);

-- Attempts: one B-tree for the row, keyed by (task_id, number) — listAttempts reads a range
-- of it — and one for the attempt id (the lease's fencing token), instead of a rowid table
-- with two indexes. Rebuilt here with every row.
CREATE TABLE attempts_new (
  id            TEXT    NOT NULL,                      -- UUID; fencing token and process tag
  task_id       INTEGER NOT NULL REFERENCES tasks (id),
  number        INTEGER NOT NULL,
  worker_id     TEXT    NOT NULL,
  agent         TEXT    NOT NULL,
  model         TEXT,
  outcome       TEXT    NOT NULL DEFAULT 'running',
  reason        TEXT,
  exit_code     INTEGER,
  started_at    INTEGER NOT NULL,
  finished_at   INTEGER,
  duration_ms   INTEGER,
  log_path      TEXT,
  session_id    TEXT,
  cost_usd      REAL,
  input_tokens  INTEGER,
  output_tokens INTEGER,
  num_turns     INTEGER,
  host          TEXT,                                  -- host name of the claiming dispatcher
  stdout_tail   TEXT,                                  -- NULL: not recorded
  stdout_bytes  INTEGER,
  stderr_tail   TEXT,
  stderr_bytes  INTEGER,
  PRIMARY KEY (task_id, number)
) WITHOUT ROWID;
INSERT INTO attempts_new (id, task_id, number, worker_id, agent, model, outcome, reason, exit_code, started_at, finished_at,
    duration_ms, log_path, session_id, cost_usd, input_tokens, output_tokens, num_turns, host, stdout_tail, stdout_bytes,
    stderr_tail, stderr_bytes)
  SELECT id, task_id, number, worker_id, agent, model, outcome, reason, exit_code, started_at, finished_at,
    duration_ms, log_path, session_id, cost_usd, input_tokens, output_tokens, num_turns, host, stdout_tail, stdout_bytes,
    stderr_tail, stderr_bytes
  FROM attempts ORDER BY task_id, number;
DROP TABLE attempts;
ALTER TABLE attempts_new RENAME TO attempts;
CREATE UNIQUE INDEX attempts_id ON attempts (id);
