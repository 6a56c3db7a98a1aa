-- Models logged by runs (MLflow 3's logged models): what `mlflow.<flavor>.log_model` creates.
-- Their files live in the artifact store under `<experiment>/models/<model_id>/artifacts/`.
CREATE TABLE logged_models (
    model_id TEXT PRIMARY KEY NOT NULL,
    experiment_id BIGINT NOT NULL REFERENCES experiments (experiment_id),
    name TEXT NOT NULL,
    source_run_id TEXT,
    model_type TEXT,
    status TEXT NOT NULL,
    params TEXT NOT NULL,
    tags TEXT NOT NULL,
    creation_timestamp_ms BIGINT NOT NULL,
    last_updated_timestamp_ms BIGINT NOT NULL
);
CREATE INDEX logged_models_by_experiment ON logged_models (experiment_id, name);
