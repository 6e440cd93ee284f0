-- Issue 11 (A2A server in `agentq serve`): the push notification configs of A2A tasks
-- (`tasks/pushNotificationConfig/set`, or `configuration.pushNotificationConfig` of
-- message/send) and where each one's delivery stands. A config is due while its task's
-- version (`state:claims`, see taskVersion in src/store/rows.ts) differs from pushed_version.
CREATE TABLE a2a_push_configs (
  task_id         INTEGER NOT NULL REFERENCES tasks (id),
  config_id       TEXT    NOT NULL,
  url             TEXT    NOT NULL,
  token           TEXT,
  authentication  TEXT,                -- JSON {schemes, credentials}, or NULL
  created_at      INTEGER NOT NULL,
  pushed_version  TEXT,                -- delivered or given up on; NULL: nothing yet
  sending_version TEXT,                -- the version the latest claim took (its tries are `attempts`)
  attempts        INTEGER NOT NULL DEFAULT 0,
  last_error      TEXT,
  delivered_at    INTEGER,
  next_try_at     INTEGER,             -- NULL: as soon as the version differs
  PRIMARY KEY (task_id, config_id)
);
