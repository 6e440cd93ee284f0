-- workspace_push (issue #10): where the attempt that ended a task ran (the host whose
-- checkout holds its worktree branch), and where that branch was pushed or why not.

ALTER TABLE tasks ADD COLUMN ran_on TEXT;      -- host name
ALTER TABLE tasks ADD COLUMN pushed_to TEXT;   -- REMOTE/BRANCH, e.g. origin/agentq/fix
ALTER TABLE tasks ADD COLUMN push_error TEXT;  -- one line: remote, branch, git's complaint
