-- The Default experiment was stored as made at the epoch (1970): it is dated when the store
-- was brought up to this version, as MLflow dates its own at the store's creation.
UPDATE experiments
SET creation_time = (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT,
    last_update_time = (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT
WHERE experiment_id = 0 AND creation_time = 0;
