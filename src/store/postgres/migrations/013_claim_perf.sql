-- Claim and finish at queue speed (issue #10, `npm run bench:pg`). Written against the schema of 012.
--
-- Indexes: the claim reads the queued tasks in claim order from a partial index of its own,
-- whatever the statistics say (a fresh or just-grown queue has none: the planner then sorted
-- every queued task at each claim), and counts running tasks from another; a task enters each
-- only while it is queued (enqueue, requeue) or running (claim). Indexes on columns that are
-- NULL for most tasks keep only the rows that have a value: every claim and finish writes a new
-- row version, and each index of the table gets an entry for it (no HOT update: `state`
-- changes), so an index that skips the NULLs costs nothing on that path.

CREATE INDEX tasks_queued ON tasks (priority_rank, id) WHERE state = 'queued';
CREATE INDEX tasks_running ON tasks (agent) WHERE state = 'running';
-- The other states (waiting, blocked, the terminal ones: list --state, settleParents;
-- listUnreported has tasks_unreported of migration 005).
DROP INDEX tasks_ready;
CREATE INDEX tasks_state ON tasks (state, id) WHERE state NOT IN ('queued', 'running');

DROP INDEX tasks_group_running;
CREATE INDEX tasks_group_running ON tasks (concurrency_group) WHERE state = 'running' AND concurrency_group IS NOT NULL;
DROP INDEX tasks_dedup;
CREATE INDEX tasks_dedup ON tasks (dedup_key, state) WHERE dedup_key IS NOT NULL;
DROP INDEX tasks_parent;
CREATE INDEX tasks_parent ON tasks (parent_id) WHERE parent_id IS NOT NULL;
DROP INDEX tasks_lease;
CREATE INDEX tasks_lease ON tasks (lease_token) WHERE lease_token IS NOT NULL;

-- The claim in one round trip: the claims of a schema are serialized by a transaction advisory
-- lock (their limits count running tasks, and under READ COMMITTED two claims would each miss
-- the other's and go past them). Sent as BEGIN, lock, claim, COMMIT, that lock was held across
-- four round trips. In a function called as one statement (its own transaction) the lock is
-- taken first and the claim's query runs after it with a snapshot of its own (a VOLATILE
-- PL/pgSQL function takes one per statement), so it sees every claim committed before; the lock
-- is released at that statement's commit.
--
-- `enable_sort = off`: the queued tasks are read in claim order from `tasks_queued`, never
-- fetched and sorted. Without statistics (a queue that just grew: ANALYZE has not run yet) the
-- planner takes the queued tasks for a handful and sorts them all at every claim, which grows
-- with the queue (4,000 queued: 16 ms a claim instead of 0.2). `enable_bitmapscan = off`: the
-- running tasks are counted by an index scan, which marks the entries of ended tasks dead as it
-- passes them (a bitmap scan visits them all again at every claim until VACUUM).
-- `plan_cache_mode = force_generic_plan`: the query is planned once per connection (planning
-- costs more than running it; with statistics the planner would otherwise plan every call anew,
-- its estimate for the generic plan being the higher). Its plan does not depend on the values.
--
-- p_lock: the lock's name (PostgresStore.lockName('claim'), also taken by probeWrite).
-- Times are epoch ms; the JSON arguments are as in ClaimOptions: p_agent_limits
-- {agent: limit}, p_labels [label], p_accounts {agent: account}; p_host: the dispatcher's host
-- name recorded on the attempt (NULL: none). The claim starts the task's last activity.
-- Returns no row, or one: the claimed task and the attempt opened (rows as JSON), and the
-- task's dependency ids in order.
CREATE FUNCTION claim_task(
  p_lock              TEXT,
  p_worker            TEXT,
  p_attempt           TEXT,
  p_lease_until       BIGINT,
  p_now               BIGINT,
  p_agents            TEXT[],
  p_concurrency       BIGINT,
  p_group_concurrency BIGINT,
  p_agent_limits      JSONB,
  p_labels            JSONB,
  p_accounts          JSONB,
  p_host              TEXT
) RETURNS TABLE (claimed_task JSON, opened_attempt JSON, dep_ids BIGINT[])
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
SET enable_sort = off
SET enable_bitmapscan = off
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended(p_lock, 0));
  RETURN QUERY
  WITH claimed AS (
    UPDATE tasks SET state = 'running', attempts = tasks.attempts + 1, claims = tasks.claims + 1,
      lease_owner = p_worker, lease_token = p_attempt, lease_expires_at = p_lease_until,
      started_at = p_now, last_activity_at = p_now, cancel_requested = false
    WHERE tasks.id = (
      SELECT t.id FROM tasks t
      WHERE t.state = 'queued' AND t.run_after <= p_now AND t.agent = ANY (p_agents)
        AND t.runs_on::jsonb <@ p_labels
        AND NOT EXISTS (SELECT 1 FROM agent_pauses p WHERE p.until > p_now
                        AND p.agent = COALESCE(p_accounts ->> t.agent, t.agent))
        AND NOT EXISTS (SELECT 1 FROM task_deps d JOIN tasks dt ON dt.id = d.depends_on_id
                        WHERE d.task_id = t.id AND dt.state <> 'completed')
        AND (SELECT count(*) FROM tasks r WHERE r.state = 'running') < p_concurrency
        AND (t.concurrency_group IS NULL OR (SELECT count(*) FROM tasks g
             WHERE g.state = 'running' AND g.concurrency_group = t.concurrency_group) < p_group_concurrency)
        AND (p_agent_limits ->> t.agent IS NULL OR (SELECT count(*) FROM tasks a
             WHERE a.state = 'running' AND a.agent = t.agent) < (p_agent_limits ->> t.agent)::numeric)
      ORDER BY t.priority_rank, t.id
      LIMIT 1
      FOR UPDATE SKIP LOCKED)
    RETURNING tasks.*),
  opened AS (
    INSERT INTO attempts (id, task_id, number, worker_id, host, agent, model, started_at)
    SELECT p_attempt, claimed.id, claimed.claims, p_worker, p_host, claimed.agent, claimed.model, p_now FROM claimed
    RETURNING attempts.*)
  SELECT to_json(claimed), to_json(opened),
    ARRAY(SELECT d.depends_on_id FROM task_deps d WHERE d.task_id = claimed.id ORDER BY d.position)
  FROM claimed JOIN opened ON opened.task_id = claimed.id;
END;
$$;

-- Whether a task has subtasks, read with a snapshot of its own (a VOLATILE PL/pgSQL function
-- takes one per statement): the one-statement finish calls it after it has locked the task, so
-- it sees every subtask committed before that lock (a request adding a subtask under
-- max_subtasks holds the parent's row lock), as the finish's transaction reads them after its
-- `FOR UPDATE`. The finish statement's own snapshot is older: taken before it waited.
CREATE FUNCTION task_has_subtasks(p_id BIGINT) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
  RETURN EXISTS (SELECT 1 FROM tasks s WHERE s.parent_id = p_id);
END;
$$;
