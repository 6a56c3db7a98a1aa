-- Per variant and version, per serving process and second: what the variant answered, so that a
-- rollout's gates see the traffic of every replica. Latency counts per bucket of
-- LATENCY_BUCKETS_S (lat12: above the last bound).
CREATE TABLE serve_variant_counts (
    endpoint TEXT NOT NULL,
    variant TEXT NOT NULL,
    version BIGINT NOT NULL,
    replica TEXT NOT NULL,
    window_ms BIGINT NOT NULL,
    ok BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    overloaded BIGINT NOT NULL,
    lat0 BIGINT NOT NULL, lat1 BIGINT NOT NULL, lat2 BIGINT NOT NULL, lat3 BIGINT NOT NULL,
    lat4 BIGINT NOT NULL, lat5 BIGINT NOT NULL, lat6 BIGINT NOT NULL, lat7 BIGINT NOT NULL,
    lat8 BIGINT NOT NULL, lat9 BIGINT NOT NULL, lat10 BIGINT NOT NULL, lat11 BIGINT NOT NULL,
    lat12 BIGINT NOT NULL,
    PRIMARY KEY (endpoint, variant, version, replica, window_ms)
);
CREATE INDEX serve_variant_counts_window ON serve_variant_counts (endpoint, window_ms);
