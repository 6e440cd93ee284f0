-- Issue #5: per-task Claude Code options, `max_turns` (`--max-turns`) and `allowed_tools`
-- (`--allowedTools`, a JSON array of tool rules). NULL: config's setting, else the CLI's.
-- New task state `budget_exceeded` needs no schema change (state is TEXT).

ALTER TABLE tasks ADD COLUMN max_turns INTEGER;
ALTER TABLE tasks ADD COLUMN allowed_tools TEXT;
