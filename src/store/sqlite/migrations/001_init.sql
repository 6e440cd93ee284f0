-- agent-queue schema, version 1. Times are epoch milliseconds.

CREATE TABLE tasks (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,  -- also the arrival order
  name             TEXT    NOT NULL,
  title            TEXT    NOT NULL,
  priority         TEXT    NOT NULL,
  priority_rank    INTEGER NOT NULL,                   -- 0 = critical … 3 = low
  agent            TEXT    NOT NULL,
  model            TEXT,
  depends_on       TEXT    NOT NULL DEFAULT '[]',      -- JSON list of names, as written
  timeout_ms       INTEGER NOT NULL,
  max_cost_usd     REAL,
  retries          INTEGER NOT NULL DEFAULT 0,
  tags             TEXT    NOT NULL DEFAULT '[]',      -- JSON
  dedup_key        TEXT,
  command          TEXT,                               -- JSON string or list
  extra            TEXT    NOT NULL DEFAULT '{}',      -- JSON: unknown frontmatter fields
  prompt           TEXT    NOT NULL,
  source           TEXT    NOT NULL,
  state            TEXT    NOT NULL,
  attempts         INTEGER NOT NULL DEFAULT 0,         -- attempts that count against retries
  claims           INTEGER NOT NULL DEFAULT 0,         -- every claim ever made
  run_after        INTEGER NOT NULL,
  created_at       INTEGER NOT NULL,
  started_at       INTEGER,
  finished_at      INTEGER,
  duration_ms      INTEGER,
  session_id       TEXT,
  run_model        TEXT,
  cost_usd         REAL,
  input_tokens     INTEGER,
  output_tokens    INTEGER,
  num_turns        INTEGER,
  result           TEXT,
  failed_reason    TEXT,
  result_path      TEXT,
  lease_owner      TEXT,
  lease_token      TEXT,                               -- id of the attempt holding the lease
  lease_expires_at INTEGER,
  cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tasks_ready ON tasks (state, priority_rank, id);
CREATE INDEX tasks_name ON tasks (name, id);

CREATE TABLE task_deps (
  task_id       INTEGER NOT NULL REFERENCES tasks (id),
  depends_on_id INTEGER NOT NULL REFERENCES tasks (id),
  position      INTEGER NOT NULL,
  PRIMARY KEY (task_id, depends_on_id)
);
CREATE INDEX task_deps_reverse ON task_deps (depends_on_id);

CREATE TABLE attempts (
  id            TEXT    PRIMARY KEY,                   -- UUID; fencing token and process tag
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
  UNIQUE (task_id, number)
);

-- One row per inbox file taken in: key = file name + sha256 of its content.
CREATE TABLE intake (
  key          TEXT    PRIMARY KEY,
  task_id      INTEGER NOT NULL REFERENCES tasks (id),
  file_removed INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE workers (
  id           TEXT    PRIMARY KEY,
  host         TEXT    NOT NULL,
  pid          INTEGER NOT NULL,
  started_at   INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL
);

CREATE TABLE agent_pauses (
  agent  TEXT    PRIMARY KEY,
  until  INTEGER NOT NULL,
  reason TEXT    NOT NULL
);
