-- Predictions of endpoints in an experiment (more than one variant with traffic), kept so that
-- ground truth sent later for a request id is credited to the variant that answered it; and
-- that ground truth, scored.
CREATE TABLE serve_predictions (
    request_id TEXT PRIMARY KEY NOT NULL,
    endpoint TEXT NOT NULL,
    variant TEXT NOT NULL,
    version BIGINT NOT NULL,
    labels TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX serve_predictions_at ON serve_predictions (at_ms);
CREATE TABLE serve_feedback (
    request_id TEXT PRIMARY KEY NOT NULL,
    endpoint TEXT NOT NULL,
    variant TEXT NOT NULL,
    version BIGINT NOT NULL,
    n BIGINT NOT NULL,
    correct BIGINT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX serve_feedback_endpoint ON serve_feedback (endpoint, at_ms);
