-- Alert rules (their spec as JSON), alerts (one per episode of a rule's condition: at most one
-- open, pending or firing, per rule), and webhook deliveries (one per alert and event, retried
-- until delivered).
CREATE TABLE monitor_alert_rules (
    name TEXT PRIMARY KEY NOT NULL,
    spec TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE monitor_alerts (
    id TEXT PRIMARY KEY NOT NULL,
    rule TEXT NOT NULL,
    state TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    context TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    fired_ms BIGINT,
    resolved_ms BIGINT,
    updated_ms BIGINT NOT NULL
);
CREATE UNIQUE INDEX monitor_alerts_open ON monitor_alerts (rule) WHERE state IN ('pending', 'firing');
CREATE INDEX monitor_alerts_started ON monitor_alerts (started_ms);
CREATE TABLE monitor_deliveries (
    id TEXT PRIMARY KEY NOT NULL,
    alert_id TEXT NOT NULL,
    event TEXT NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_ms BIGINT NOT NULL,
    delivered_ms BIGINT,
    last_error TEXT,
    given_up BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX monitor_deliveries_due ON monitor_deliveries (next_ms);
-- Actions a firing alert asked for (a configured command run as a tracked run): queued, running,
-- done, failed, or skipped (cooldown, or the day's maximum), with the run they made.
CREATE TABLE monitor_actions (
    id TEXT PRIMARY KEY NOT NULL,
    rule TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    action TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    context TEXT NOT NULL,
    run_id TEXT,
    exit_code BIGINT,
    created_ms BIGINT NOT NULL,
    started_ms BIGINT,
    finished_ms BIGINT
);
CREATE INDEX monitor_actions_rule ON monitor_actions (rule, created_ms);
