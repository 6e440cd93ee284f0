-- Subtasks (issue #4): a task may name a `parent`; the parent completes only when all its
-- subtasks have. A parent whose own run finished while subtasks are open waits in state
-- `waiting` (state is TEXT: no change needed for it).

ALTER TABLE tasks ADD COLUMN parent TEXT;         -- parent's name, as written
ALTER TABLE tasks ADD COLUMN parent_id INTEGER REFERENCES tasks (id);
CREATE INDEX tasks_parent ON tasks (parent_id);
