-- Taking over by hand (issue 12, `agentq attach` / `agentq release`): when a person took the
-- task over (epoch ms). On a running task it asks its dispatcher to stop the attempt (the
-- lease keeper sees it in the heartbeat, as cancel_requested); on a blocked task it marks it
-- taken over, waiting for `agentq release`. Cleared by release, cancel, retry and every end.
ALTER TABLE tasks ADD COLUMN taken_over_at INTEGER;
