-- The intake keys whose file is not known removed yet (a crash between the intake commit and
-- the unlink, or a pass under way): each intake pass lists them (listPendingIntake), so that
-- list is a seek into this small index instead of a walk through every file ever taken in
-- (issue 13: per-tick work must not grow with history). A key leaves it when its removal is
-- marked.
CREATE INDEX intake_pending ON intake (key) WHERE file_removed = 0;
