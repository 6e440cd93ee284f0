-- Recurring work (issue #4): `.agent-queue/recurring/NAME.md` with a cron `schedule`
-- creates one task per tick. `last_tick` is the newest tick already turned into a task (or
-- the moment the file was first seen: no backfill of older ticks).

CREATE TABLE recurring (
  name      TEXT    PRIMARY KEY,
  last_tick INTEGER NOT NULL
);
