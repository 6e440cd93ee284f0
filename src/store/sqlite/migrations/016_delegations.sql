-- Delegation (issue #11): a task with `agent: a2a` is handed to a remote A2A agent.
-- `remote`: the task field, a name of config `remotes` or the agent's URL.
ALTER TABLE tasks ADD COLUMN remote TEXT;

-- The ledger: one row per remote task (src/core/delegation.ts). state: pending → dispatched →
-- received → in_progress → completed | failed, plus input_required and canceled; each *_at is
-- the last time the row entered that state (pending: created_at; the ends: finished_at).
CREATE TABLE delegations (
  id                INTEGER PRIMARY KEY AUTOINCREMENT,
  task_id           INTEGER NOT NULL REFERENCES tasks (id),
  attempt_id        TEXT    NOT NULL UNIQUE,            -- the delegating attempt: the first messageId
  remote            TEXT    NOT NULL,                   -- as the task named it: remotes name or URL
  url               TEXT    NOT NULL,
  remote_task_id    TEXT,                               -- known once the remote answered
  context_id        TEXT,
  message_id        TEXT    NOT NULL,                   -- the latest message sent (idempotency key)
  state             TEXT    NOT NULL DEFAULT 'pending',
  remote_state      TEXT,                               -- A2A TaskState last seen
  last_error        TEXT,
  result_preview    TEXT,
  created_at        INTEGER NOT NULL,
  dispatched_at     INTEGER,
  received_at       INTEGER,
  in_progress_at    INTEGER,
  input_required_at INTEGER,
  finished_at       INTEGER,
  progress_at       INTEGER NOT NULL,                   -- last progress the remote showed
  updated_at        INTEGER NOT NULL
);
CREATE INDEX delegations_task ON delegations (task_id, id);
CREATE INDEX delegations_state ON delegations (state, id);
-- At most one open delegation per task.
CREATE UNIQUE INDEX delegations_open ON delegations (task_id) WHERE state NOT IN ('completed', 'failed', 'canceled');
