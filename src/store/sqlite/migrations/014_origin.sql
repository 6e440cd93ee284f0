-- Origin checkouts (issue #10): the checkout a task came from, host + project root (realpath);
-- its result file is written there. Null for tasks stored before (any checkout writes theirs).
-- Each dispatcher records its own project root beside its host.

ALTER TABLE tasks ADD COLUMN origin_host TEXT;
ALTER TABLE tasks ADD COLUMN origin_root TEXT;
ALTER TABLE workers ADD COLUMN root TEXT;

-- The reporter's query (listUnreported): terminal tasks without their result file yet, by
-- origin. Partial, so it holds only those few rows however long the history grows. The states
-- are TERMINAL_STATES (src/core/types.ts); the query names the same literals (TERMINAL_STATES_SQL
-- in src/store/rows.ts), as SQLite requires to use a partial index.
CREATE INDEX tasks_unreported ON tasks (origin_host, origin_root, id)
  WHERE result_path IS NULL
    AND state IN ('completed', 'failed', 'timed_out', 'budget_exceeded', 'cancelled', 'invalid', 'duplicate');
