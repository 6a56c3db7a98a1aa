-- Custom gauges: every point pushed (the history) and each series' latest value (for scrapes).
-- A series is a name and its labels as canonical JSON (sorted keys).
CREATE TABLE monitor_gauge_points (
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (name, labels, at_ms)
);
CREATE INDEX monitor_gauge_points_at ON monitor_gauge_points (at_ms);
CREATE TABLE monitor_gauges (
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    points BIGINT NOT NULL,
    PRIMARY KEY (name, labels)
);
