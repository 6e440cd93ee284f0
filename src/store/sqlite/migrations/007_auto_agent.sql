-- `agent: auto` (issue #5): the agent an attempt actually ran on. The task keeps `agent`
-- as written; `run_agent` is the agent of its latest attempt.

ALTER TABLE tasks ADD COLUMN run_agent TEXT;
