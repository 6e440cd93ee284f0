-- Delegation (issue #11): `remote_metadata`, the task's fields for the remote A2A agent (JSON
-- object, sent as its message metadata); null: none.
ALTER TABLE tasks ADD COLUMN remote_metadata TEXT;
