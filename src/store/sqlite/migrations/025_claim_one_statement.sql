-- A claim in one statement (issue 13): the UPDATE that takes the task also writes its attempt
-- row, through the trigger below, so a claim outside a batch needs no BEGIN, no INSERT and no
-- COMMIT of its own (autocommit: the statement takes the write lock first, as BEGIN IMMEDIATE
-- does). A claim is the only statement that sets lease_token to an attempt's id; every other
-- one clears it.

-- The host name of the dispatcher that made the latest claim: the attempt row's `host`.
ALTER TABLE tasks ADD COLUMN claim_host TEXT;

CREATE TRIGGER tasks_claimed AFTER UPDATE OF lease_token ON tasks WHEN NEW.lease_token IS NOT NULL
BEGIN
  INSERT INTO attempts (id, task_id, number, worker_id, host, agent, model, started_at)
    VALUES (NEW.lease_token, NEW.id, NEW.claims, NEW.lease_owner, NEW.claim_host, NEW.agent, NEW.model, NEW.started_at);
END;

-- task_counts holds a row for every state (TASK_STATES in src/core/types.ts; queued and running
-- together as 'queued+running'), so its triggers add and subtract with plain UPDATEs by key
-- rather than upserts, which cost an enqueue and a finish as much again. A new state needs
-- its row here, in the migration that brings it.
INSERT OR IGNORE INTO task_counts (state, n) VALUES
  ('queued+running', 0), ('blocked', 0), ('waiting', 0), ('completed', 0), ('failed', 0), ('timed_out', 0),
  ('budget_exceeded', 0), ('cancelled', 0), ('invalid', 0), ('duplicate', 0);

DROP TRIGGER tasks_count_insert;
CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks BEGIN
  UPDATE task_counts SET n = n + 1 WHERE state = CASE WHEN NEW.state IN ('queued', 'running') THEN 'queued+running' ELSE NEW.state END;
END;
DROP TRIGGER tasks_count_update;
CREATE TRIGGER tasks_count_update AFTER UPDATE OF state ON tasks
  WHEN OLD.state IS NOT NEW.state AND NOT (OLD.state IN ('queued', 'running') AND NEW.state IN ('queued', 'running'))
BEGIN
  UPDATE task_counts SET n = n - 1 WHERE state = CASE WHEN OLD.state IN ('queued', 'running') THEN 'queued+running' ELSE OLD.state END;
  UPDATE task_counts SET n = n + 1 WHERE state = CASE WHEN NEW.state IN ('queued', 'running') THEN 'queued+running' ELSE NEW.state END;
END;
