-- Worker labels (issue #10): a task's `runs_on` (JSON list of labels, as text like `tags`) is
-- claimed only by a dispatcher holding every one of them; each dispatcher records its `labels`.

ALTER TABLE tasks ADD COLUMN runs_on TEXT NOT NULL DEFAULT '[]';
ALTER TABLE workers ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';
