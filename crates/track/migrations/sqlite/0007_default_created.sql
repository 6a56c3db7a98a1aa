-- The Default experiment was stored as made at the epoch (1970): it is dated when the store
-- was brought up to this version, as MLflow dates its own at the store's creation.
UPDATE experiments
SET creation_time = CAST(strftime('%s', 'now') AS INTEGER) * 1000,
    last_update_time = CAST(strftime('%s', 'now') AS INTEGER) * 1000
WHERE experiment_id = 0 AND creation_time = 0;
