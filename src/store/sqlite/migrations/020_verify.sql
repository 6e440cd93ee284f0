-- The verification gate and the stall watchdog (issue #12).
-- Task fields: `verify` (JSON list of commands; NULL: config's, [] none), `verify_timeout`
-- and `stall_timeout` in ms (NULL: config's; stall 0: off), `verify_retries` (NULL: config's).
ALTER TABLE tasks ADD COLUMN verify TEXT;
ALTER TABLE tasks ADD COLUMN verify_timeout_ms INTEGER;
ALTER TABLE tasks ADD COLUMN verify_retries INTEGER;
ALTER TABLE tasks ADD COLUMN stall_timeout_ms INTEGER;
-- When the running attempt's agent last showed activity: set by the claim, then by its
-- dispatcher's lease heartbeat (no write per agent event).
ALTER TABLE tasks ADD COLUMN last_activity_at INTEGER;

-- Each verify command run after an agent reported success: one row per command.
CREATE TABLE verifications (
  attempt_id TEXT NOT NULL REFERENCES attempts(id),
  number INTEGER NOT NULL,         -- 1-based position in the attempt's verify list
  task_id INTEGER NOT NULL REFERENCES tasks(id),
  command TEXT NOT NULL,
  exit_code INTEGER,               -- NULL: killed (timed out, stopped) or ended by a signal
  timed_out INTEGER NOT NULL DEFAULT 0,
  duration_ms INTEGER NOT NULL,
  output_path TEXT,                -- N.verify-K.log on the host that ran it
  output_tail TEXT NOT NULL,       -- its last 200 lines (at most 64 KiB)
  started_at INTEGER NOT NULL,
  PRIMARY KEY (attempt_id, number)
);
CREATE INDEX verifications_task ON verifications (task_id);
