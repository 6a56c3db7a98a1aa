-- Rollouts: a candidate taken through traffic steps on an endpoint, and every transition with
-- its reason. At most one rollout per endpoint is active (running or paused).
CREATE TABLE serve_rollouts (
    id TEXT PRIMARY KEY NOT NULL,
    endpoint TEXT NOT NULL,
    spec TEXT NOT NULL,
    baseline TEXT NOT NULL,
    state TEXT NOT NULL,
    step BIGINT NOT NULL,
    step_started_ms BIGINT NOT NULL,
    reason TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until_ms BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX serve_rollouts_one_active ON serve_rollouts (endpoint)
    WHERE state IN ('running', 'paused');
CREATE TABLE serve_rollout_events (
    rollout_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    step BIGINT NOT NULL,
    weight DOUBLE PRECISION NOT NULL,
    reason TEXT NOT NULL,
    figures TEXT NOT NULL,
    PRIMARY KEY (rollout_id, seq)
);
