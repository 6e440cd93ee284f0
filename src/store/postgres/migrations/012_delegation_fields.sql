-- Delegation (issue #11): `remote_metadata`, the task's fields for the remote A2A agent (JSON
-- object, sent as its message metadata); null: none.
ALTER TABLE tasks ADD COLUMN remote_metadata TEXT;

-- Push notifications of a delegation's remote task (POST /a2a/push/ID on the delegating
-- agentq serve): sha256 (hex) of the per-delegation token they must carry in
-- X-A2A-Notification-Token; null: none asked for (tracked by polling only).
ALTER TABLE delegations ADD COLUMN push_token_sha256 TEXT;
