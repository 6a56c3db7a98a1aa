-- Serving endpoints: a name serving a registered model's version or alias, with its dynamic
-- batching knobs. The same script runs on SQLite and PostgreSQL.
CREATE TABLE serve_endpoints (
    name TEXT PRIMARY KEY NOT NULL,
    model TEXT NOT NULL,
    reference TEXT NOT NULL,
    max_batch_size BIGINT NOT NULL,
    max_queue_delay_us BIGINT NOT NULL,
    max_queue_len BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);
