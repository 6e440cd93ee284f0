-- The intake keys whose file is not known removed yet: each intake pass lists them
-- (listPendingIntake, in task order), so that list reads this small index instead of every
-- file ever taken in (issue 13: per-tick work must not grow with history).
CREATE INDEX intake_pending ON intake (task_id) WHERE NOT file_removed;
