-- Metric history in chunks: one row holds many points of one run and key, packed as
-- little-endian (step i64, timestamp i64, value f64 bits) triples, 24 bytes a point. A batch of
-- 1000 points over 10 keys is 10 rows instead of 1000, and a 100k-point history is one range
-- scan over a few hundred rows. Chunks of one (run, key) are numbered in arrival order by `seq`.
-- Rows of the old per-point `metrics` table are moved here when the store opens.
CREATE TABLE metric_chunks (
    run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    seq BIGINT NOT NULL,
    points BIGINT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, key, seq)
);

-- The latest value's exact bits, so that a run's metrics can be read as one JSON aggregate
-- (integers survive JSON exactly; doubles printed by the database need not). Filled for older
-- rows when the store opens.
ALTER TABLE latest_metrics ADD COLUMN value_bits BIGINT;

-- What `datasets.name|digest|context` filters compare, taken from a dataset input's JSON when it
-- is logged (older rows are filled when the store opens).
ALTER TABLE run_inputs ADD COLUMN dataset_name TEXT;
ALTER TABLE run_inputs ADD COLUMN dataset_digest TEXT;
ALTER TABLE run_inputs ADD COLUMN dataset_context TEXT;
