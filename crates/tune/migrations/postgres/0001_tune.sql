-- Tuning: studies and their trials. A trial is also a tracked run (run_id), a child of the
-- study's parent run; params, metrics and artifacts land there. The columns here are what the
-- samplers and pruners read: params with their distributions, the objective value, the
-- intermediate values by step, successive halving's rungs, and the lease of a trial being run.
CREATE TABLE tune_studies (
    study_id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    experiment_id TEXT NOT NULL,
    parent_run_id TEXT NOT NULL,
    direction TEXT NOT NULL,
    metric TEXT NOT NULL,
    -- {"sampler": …, "pruner": …, "seed": n}
    config TEXT NOT NULL,
    -- The study file as JSON (params, fixed, command, …), or null for ask/tell studies.
    spec TEXT,
    n_trials BIGINT,
    pruner_state TEXT NOT NULL,
    -- Param sets waiting to be asked, oldest first.
    enqueued TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE TABLE tune_trials (
    study_id TEXT NOT NULL,
    number BIGINT NOT NULL,
    run_id TEXT NOT NULL,
    state TEXT NOT NULL,
    -- [[name, distribution, internal value], …] in suggestion order; relative likewise.
    params TEXT NOT NULL,
    relative TEXT,
    fixed TEXT NOT NULL,
    value DOUBLE PRECISION,
    -- [[step, value or null for NaN], …] by step
    intermediate TEXT NOT NULL,
    rungs TEXT NOT NULL,
    error TEXT,
    worker TEXT,
    lease_expires_ms BIGINT,
    started_ms BIGINT NOT NULL,
    finished_ms BIGINT,
    PRIMARY KEY (study_id, number)
);
CREATE INDEX tune_trials_by_state ON tune_trials (study_id, state);
