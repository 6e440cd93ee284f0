-- Questions (issue #4): an attempt may end by asking a person; the task waits `blocked`
-- until `agentq answer` queues it again, resuming the agent's session with the answer.

ALTER TABLE tasks ADD COLUMN question TEXT;   -- the open (or last) question
ALTER TABLE tasks ADD COLUMN answer TEXT;     -- the answer for the next attempt, cleared when it ends
