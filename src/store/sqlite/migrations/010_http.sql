-- Issue #6 (`agentq serve`): tasks created over HTTP.

-- `Idempotency-Key` of POST /v1/tasks: a repeat with the same key and the same body
-- (sha256 of its canonical JSON) returns the first task; another body is refused.
CREATE TABLE idempotency_keys (
  key         TEXT    PRIMARY KEY,
  body_sha256 TEXT    NOT NULL,
  task_id     INTEGER NOT NULL REFERENCES tasks (id),
  created_at  INTEGER NOT NULL
);

-- `callback_url`: one delivery per task, POSTed once the task is terminal.
-- state: pending (not delivered yet; retried while next_try_at passes) | delivered | failed.
CREATE TABLE callbacks (
  task_id      INTEGER PRIMARY KEY REFERENCES tasks (id),
  url          TEXT    NOT NULL,
  state        TEXT    NOT NULL DEFAULT 'pending',
  attempts     INTEGER NOT NULL DEFAULT 0,
  last_error   TEXT,
  delivered_at INTEGER,
  next_try_at  INTEGER                              -- NULL: as soon as the task is terminal
);
CREATE INDEX callbacks_pending ON callbacks (state, next_try_at);
