-- Scheduling that a team can trust (issue #4): per-task retry policy, concurrency groups,
-- workspaces. New task state `duplicate` needs no schema change (state is TEXT).

ALTER TABLE tasks ADD COLUMN retry_backoff_ms INTEGER;                  -- null: config retry_backoff
ALTER TABLE tasks ADD COLUMN retry_on_timeout INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN concurrency_group TEXT;
ALTER TABLE tasks ADD COLUMN workspace TEXT;                             -- inplace | worktree | null (project default)
ALTER TABLE tasks ADD COLUMN merge TEXT;                                 -- manual | auto | null (config)
ALTER TABLE tasks ADD COLUMN branch TEXT;                                -- worktree branch of the last attempt
ALTER TABLE tasks ADD COLUMN commits TEXT;                               -- JSON [{hash, subject}]

CREATE INDEX tasks_group_running ON tasks (concurrency_group, state);
CREATE INDEX tasks_dedup ON tasks (dedup_key, state);
