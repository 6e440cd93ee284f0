-- Each attempt's output tail and host (issue #10): the store keeps the last 64 KiB of an
-- attempt's stdout and stderr and the host that ran it, so `agentq logs` and `agentq show`
-- work on a machine that does not hold the attempt's log files.

ALTER TABLE attempts ADD COLUMN host TEXT;           -- host name of the claiming dispatcher
ALTER TABLE attempts ADD COLUMN stdout_tail TEXT;    -- NULL: not recorded (running, or ended without its logs at hand)
ALTER TABLE attempts ADD COLUMN stdout_bytes BIGINT; -- size of the whole stdout log
ALTER TABLE attempts ADD COLUMN stderr_tail TEXT;
ALTER TABLE attempts ADD COLUMN stderr_bytes BIGINT;

-- Earlier attempts: the host is the first part of their dispatcher's id (`HOST:PID:RANDOM`).
UPDATE attempts SET host = split_part(worker_id, ':', 1) WHERE worker_id LIKE '_%:%:%';
