-- Claims in batches (issue #10): one call claims up to as many tasks as the dispatcher has free
-- slots. Written against the schema of 013.
--
-- `claim_tasks` takes the schema's claim lock once, then runs the claim of 013 once per attempt
-- id in `p_attempts` (one id per task wanted, so its length is the batch's size), stopping at
-- the first that finds nothing. Each pass is a statement of its own, so it sees the tasks the
-- passes before it marked running: every limit (`concurrency`, groups, agents) counts them, and
-- the batch is taken in claim order (priority, then arrival) as that many single claims in a
-- row would take it. One round trip for the batch; one attempt row, lease and fencing id per
-- task. `claim_task` of 013 becomes the batch of one (same arguments, so a process of the
-- version before keeps claiming through it).
--
-- Arguments as `claim_task` (013) but `p_attempts`: the new attempts' ids, in claim order.
-- Returns a row per task claimed, in claim order: the task and its attempt (rows as JSON) and
-- the task's dependency ids in order.
CREATE FUNCTION claim_tasks(
  p_lock              TEXT,
  p_worker            TEXT,
  p_attempts          TEXT[],
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
DECLARE
  v_attempt TEXT;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended(p_lock, 0));
  FOREACH v_attempt IN ARRAY p_attempts LOOP
    RETURN QUERY
    WITH claimed AS (
      UPDATE tasks SET state = 'running', attempts = tasks.attempts + 1, claims = tasks.claims + 1,
        lease_owner = p_worker, lease_token = v_attempt, lease_expires_at = p_lease_until,
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
      SELECT v_attempt, claimed.id, claimed.claims, p_worker, p_host, claimed.agent, claimed.model, p_now FROM claimed
      RETURNING attempts.*)
    SELECT to_json(claimed), to_json(opened),
      ARRAY(SELECT d.depends_on_id FROM task_deps d WHERE d.task_id = claimed.id ORDER BY d.position)
    FROM claimed JOIN opened ON opened.task_id = claimed.id;
    EXIT WHEN NOT FOUND;
  END LOOP;
END;
$$;

-- The claim of one task: the batch of one.
CREATE OR REPLACE FUNCTION claim_task(
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
LANGUAGE sql VOLATILE
SET search_path FROM CURRENT
AS $$
  SELECT * FROM claim_tasks(p_lock, p_worker, ARRAY[p_attempt], p_lease_until, p_now, p_agents, p_concurrency,
    p_group_concurrency, p_agent_limits, p_labels, p_accounts, p_host);
$$;
