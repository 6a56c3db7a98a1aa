-- The prediction log: each endpoint's sampling (the share of requests logged, and a cap on the
-- rows logged per second by each process), the window its profiles summarise, and the names of
-- its input columns when they are set by hand.
ALTER TABLE serve_endpoints ADD COLUMN log_sample DOUBLE PRECISION NOT NULL DEFAULT 1.0;
ALTER TABLE serve_endpoints ADD COLUMN log_max_per_s BIGINT NOT NULL DEFAULT 10000;
ALTER TABLE serve_endpoints ADD COLUMN log_window_s BIGINT NOT NULL DEFAULT 300;
ALTER TABLE serve_endpoints ADD COLUMN log_features TEXT NOT NULL DEFAULT '[]';
-- Segments: Parquet files of logged rows in the blob store, one per endpoint, model version and
-- write, each written whole before its row is inserted here.
CREATE TABLE serve_log_segments (
    id TEXT PRIMARY KEY NOT NULL,
    endpoint TEXT NOT NULL,
    version BIGINT NOT NULL,
    replica TEXT NOT NULL,
    first_ms BIGINT NOT NULL,
    last_ms BIGINT NOT NULL,
    rows BIGINT NOT NULL,
    requests BIGINT NOT NULL,
    digest TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX serve_log_segments_at ON serve_log_segments (endpoint, last_ms);
-- Per window, variant and process: the profile (mergeable) of what was logged. A process
-- rewrites its own row as its window fills; readers merge the rows of every process.
CREATE TABLE serve_log_profiles (
    endpoint TEXT NOT NULL,
    variant TEXT NOT NULL,
    window_ms BIGINT NOT NULL,
    replica TEXT NOT NULL,
    version BIGINT NOT NULL,
    window_s BIGINT NOT NULL,
    rows BIGINT NOT NULL,
    profile TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (endpoint, variant, window_ms, replica)
);
CREATE INDEX serve_log_profiles_at ON serve_log_profiles (endpoint, window_ms);
