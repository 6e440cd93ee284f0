-- One index for the tasks a dispatcher is busy with (issue 13): the running ones and the ended
-- ones whose result file is not written yet. A finish moves its task from one to the other:
-- two entries of one small index, most often one page, where two indexes (tasks_running,
-- tasks_unreported) wrote two. The index keeps the name tasks_running (the claim names it).
-- State first, so the running tasks are one range (the claim's counts by agent and group read
-- it, at most `concurrency` entries); then the origin, so the reporter seeks its checkout's
-- unreported tasks state by state. The states are TERMINAL_STATES (src/core/types.ts), in
-- that order: a query uses the index when its WHERE holds this predicate term for term
-- (LIVE_SQL in sqlite-store.ts) or a term that implies it (`state = 'running'`).
DROP INDEX tasks_running;
DROP INDEX tasks_unreported;
CREATE INDEX tasks_running ON tasks (state, origin_host, origin_root, agent, lane_group, id)
  WHERE state = 'running'
     OR (result_path IS NULL AND state IN ('completed', 'failed', 'timed_out', 'budget_exceeded', 'cancelled', 'invalid', 'duplicate'));

-- Attempt ids made from here on are UUIDv7 stamped with the attempt's start (started_at, ms):
-- in text order they are in start order, so `attempts_id` reads the attempts started since a
-- time as one range (agentUsage: a day's spend) without an index of its own to write. The ids
-- made before (v4, random) are not in that order: a window that begins before `since` (the
-- first start after every attempt then recorded) reads the whole table, as before.
CREATE TABLE attempt_ids_ordered (
  since INTEGER NOT NULL
);
INSERT INTO attempt_ids_ordered (since) SELECT COALESCE(max(started_at) + 1, 0) FROM attempts;
