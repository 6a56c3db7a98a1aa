-- Monitors on endpoints (their spec as JSON) and one report per monitor and judged window.
CREATE TABLE monitor_monitors (
    name TEXT PRIMARY KEY NOT NULL,
    endpoint TEXT NOT NULL,
    kind TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE monitor_reports (
    monitor TEXT NOT NULL,
    window_ms BIGINT NOT NULL,
    drift BIGINT NOT NULL,
    share DOUBLE PRECISION NOT NULL,
    report TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (monitor, window_ms)
);
