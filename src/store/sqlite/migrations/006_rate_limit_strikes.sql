-- Rate-limit backoff (issue #5): consecutive limits without a known reset time double the
-- pause (1 min, 2 min, 4 min … capped); a completed task of the agent resets the count.

ALTER TABLE agent_pauses ADD COLUMN strikes INTEGER NOT NULL DEFAULT 0;
