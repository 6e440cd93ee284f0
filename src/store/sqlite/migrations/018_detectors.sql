-- Issue 12: workspaces ready to work in, and detectors.

-- A task's `workspace_setup` (JSON list of commands run by sh -c in a fresh worktree before
-- the agent); NULL: config's. An attempt whose setup fails records outcome `setup_failed`
-- (outcome is TEXT: no change needed).
ALTER TABLE tasks ADD COLUMN workspace_setup TEXT;

-- Detectors: a recurring file with `detect:` runs a command on each tick; every JSON line it
-- prints becomes a task. The newest run of each detector, for `agentq status`:
-- error: why the run gave nothing (non-zero exit, timeout, …), NULL when it exited 0;
-- problems: JSON list of {line, reason} for the lines skipped.
CREATE TABLE detector_runs (
  name        TEXT    PRIMARY KEY,   -- the recurring file's name without .md
  tick        INTEGER NOT NULL,      -- the schedule tick it ran for
  ran_at      INTEGER NOT NULL,
  duration_ms INTEGER NOT NULL,
  exit_code   INTEGER,
  error       TEXT,
  problems    TEXT    NOT NULL DEFAULT '[]',
  lines       INTEGER NOT NULL DEFAULT 0,  -- task lines printed (blank lines not counted)
  created     INTEGER NOT NULL DEFAULT 0,  -- tasks created by the run
  known       INTEGER NOT NULL DEFAULT 0   -- lines whose key an earlier run already took in
);

-- Every key a detector took in (its line's `dedup_key`, else a hash of the line), recorded
-- with the task in one transaction: a key is never taken in twice.
CREATE TABLE detector_keys (
  detector   TEXT    NOT NULL,
  key        TEXT    NOT NULL,
  task_id    INTEGER NOT NULL REFERENCES tasks (id),
  created_at INTEGER NOT NULL,
  PRIMARY KEY (detector, key)
);
