-- Proactive per-agent rate limit (issue #5, `agents.<name>.rate_limit`): one token bucket
-- per agent, shared by every dispatcher on the store. `tokens` is the (fractional) count at
-- `updated_at` (epoch ms); the refill since then is computed when a token is taken.

CREATE TABLE agent_buckets (
  agent      TEXT    PRIMARY KEY,
  tokens     REAL    NOT NULL,
  updated_at INTEGER NOT NULL
);
