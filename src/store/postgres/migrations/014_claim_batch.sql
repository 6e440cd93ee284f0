-- Claims in batches (issue #10): one call claims up to as many tasks as the dispatcher has free
-- slots, in one round trip. Written against the schema of 013.
--
-- `claim_tasks` takes the schema's claim lock, then, with snapshots taken after it (each
-- statement of a VOLATILE PL/pgSQL function takes its own), reads the agent and group of every
-- running task once, walks the ready tasks in claim order (priority, then arrival:
-- `tasks_queued`, never sorted; queued, `run_after` passed, one of `p_agents`, every `runs_on`
-- label among `p_labels`, its account not paused, every dependency completed; locked as read,
-- `FOR UPDATE SKIP LOCKED` as in 013, so a task a cancel holds is passed over) and takes each
-- whose group and agent are below their limits, counting the ones it took, until it has one
-- per id of `p_attempts` or the running total reaches `p_concurrency`; then marks them running
-- and opens their attempts in one statement. So a batch takes what that many single claims in
-- a row would take, at the cost of one scan, one UPDATE and one INSERT.
--
-- Besides 013's settings: no sequential scan, hash or merge join, so the UPDATE finds the
-- tasks taken by their primary key whatever the statistics say (without them the planner
-- hashed every queued task to join the few taken).
--
-- `claim_task` of 013 becomes the batch of one (same arguments, so a process of the version
-- before claims by the same rule).
--
-- Arguments as `claim_task` (013) but `p_attempts`: the new attempts' ids, one per task wanted,
-- given to the tasks in claim order. Returns a row per task claimed, in claim order: the task
-- and its attempt (rows as JSON) and the task's dependency ids in order.
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
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
  -- The agent and the group of every running task, then of every task taken.
  v_agents TEXT[];
  v_groups TEXT[];
  v_ids BIGINT[] := '{}';
  v_limit NUMERIC;
  v_task RECORD;
BEGIN
  IF cardinality(p_attempts) = 0 THEN RETURN; END IF;
  PERFORM pg_advisory_xact_lock(hashtextextended(p_lock, 0));
  SELECT COALESCE(array_agg(z.agent), '{}'), COALESCE(array_agg(z.concurrency_group), '{}')
    INTO v_agents, v_groups
    FROM tasks z WHERE z.state = 'running';
  IF cardinality(v_agents) >= p_concurrency THEN RETURN; END IF;
  FOR v_task IN
    SELECT t.id, t.agent, t.concurrency_group FROM tasks t
     WHERE t.state = 'queued' AND t.run_after <= p_now AND t.agent = ANY (p_agents)
       AND t.runs_on::jsonb <@ p_labels
       AND NOT EXISTS (SELECT 1 FROM agent_pauses p WHERE p.until > p_now
                       AND p.agent = COALESCE(p_accounts ->> t.agent, t.agent))
       AND NOT EXISTS (SELECT 1 FROM task_deps d JOIN tasks dt ON dt.id = d.depends_on_id
                       WHERE d.task_id = t.id AND dt.state <> 'completed')
     ORDER BY t.priority_rank, t.id
     FOR UPDATE SKIP LOCKED
  LOOP
    CONTINUE WHEN v_task.concurrency_group IS NOT NULL
      AND cardinality(array_positions(v_groups, v_task.concurrency_group)) >= p_group_concurrency;
    v_limit := (p_agent_limits ->> v_task.agent)::numeric;
    CONTINUE WHEN v_limit IS NOT NULL AND cardinality(array_positions(v_agents, v_task.agent)) >= v_limit;
    v_ids := v_ids || v_task.id;
    v_agents := v_agents || v_task.agent;
    v_groups := v_groups || v_task.concurrency_group;
    EXIT WHEN cardinality(v_ids) >= cardinality(p_attempts) OR cardinality(v_agents) >= p_concurrency;
  END LOOP;
  IF cardinality(v_ids) = 0 THEN RETURN; END IF;
  RETURN QUERY
  WITH picked AS (
    SELECT c.id, p_attempts[c.ord] AS attempt, c.ord FROM unnest(v_ids) WITH ORDINALITY AS c(id, ord)),
  claimed AS (
    UPDATE tasks SET state = 'running', attempts = tasks.attempts + 1, claims = tasks.claims + 1,
      lease_owner = p_worker, lease_token = picked.attempt, lease_expires_at = p_lease_until,
      started_at = p_now, last_activity_at = p_now, cancel_requested = false
      FROM picked
     WHERE tasks.id = picked.id
    RETURNING tasks.*),
  opened AS (
    INSERT INTO attempts (id, task_id, number, worker_id, host, agent, model, started_at)
    SELECT claimed.lease_token, claimed.id, claimed.claims, p_worker, p_host, claimed.agent, claimed.model, p_now FROM claimed
    RETURNING attempts.*)
  SELECT to_json(claimed), to_json(opened),
    ARRAY(SELECT d.depends_on_id FROM task_deps d WHERE d.task_id = claimed.id ORDER BY d.position)
  FROM claimed JOIN opened ON opened.task_id = claimed.id JOIN picked ON picked.id = claimed.id
  ORDER BY picked.ord;
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

-- Whether a task has ever had a subtask, kept on its own row: a completed task with subtasks
-- ends by them (`taskEnd`), so the one-statement finish must not end it. Set by a trigger on
-- every insert of a subtask (or a `parent_id` set later; whichever path or version writes it), in the inserting
-- transaction, as a write of the parent's row: a finish that meets that write waits for it and
-- then reads the row's newest version (READ COMMITTED's recheck), so it sees the flag of a
-- subtask committed after its own snapshot was taken. The finish of 013 locked the task first
-- and called `task_has_subtasks` for a snapshot of its own: a row lock, a function call and
-- its snapshot per finish, where this costs a column read.
ALTER TABLE tasks ADD COLUMN has_subtasks BOOLEAN NOT NULL DEFAULT false;
UPDATE tasks SET has_subtasks = true WHERE id IN (SELECT parent_id FROM tasks WHERE parent_id IS NOT NULL);

CREATE FUNCTION mark_parent_of_subtask() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
  UPDATE tasks SET has_subtasks = true WHERE id = NEW.parent_id AND NOT has_subtasks;
  RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_mark_parent AFTER INSERT OR UPDATE OF parent_id ON tasks
  FOR EACH ROW WHEN (NEW.parent_id IS NOT NULL) EXECUTE FUNCTION mark_parent_of_subtask();
