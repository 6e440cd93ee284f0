-- Notifications (issue #12, `notify:` in config): one row per event and target, recorded
-- idempotently (key + target) and delivered like callbacks: pending until delivered or given
-- up, retried while next_try_at passes (moved forward to lease a try).
-- key: what happened, once (e.g. `completed:task 7:claim 2:at …`); target: a hash of the
-- target's kind and destination (no URL or command is stored); payload: the event, JSON.
CREATE TABLE notifications (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  key          TEXT    NOT NULL,
  target       TEXT    NOT NULL,
  event        TEXT    NOT NULL,
  task_id      INTEGER REFERENCES tasks (id),
  payload      TEXT    NOT NULL,
  state        TEXT    NOT NULL DEFAULT 'pending',
  attempts     INTEGER NOT NULL DEFAULT 0,
  last_error   TEXT,
  last_try_at  INTEGER,
  delivered_at INTEGER,
  next_try_at  INTEGER,                          -- NULL: at once
  created_at   INTEGER NOT NULL,
  UNIQUE (key, target)
);
CREATE INDEX notifications_pending ON notifications (state, next_try_at);
CREATE INDEX notifications_target ON notifications (target);

-- One-time answer links of blocked tasks: the token's sha256 only. A token answers the
-- question its task asked when it was made (claims), once, until expires_at.
CREATE TABLE answer_tokens (
  token_sha256 TEXT    PRIMARY KEY,
  task_id      INTEGER NOT NULL REFERENCES tasks (id),
  claims       INTEGER NOT NULL,
  created_at   INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  used_at      INTEGER
);
CREATE INDEX answer_tokens_task ON answer_tokens (task_id);
