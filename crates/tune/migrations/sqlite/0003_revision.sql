-- A study's revision: raised by every transaction that changes the study or its trials, each
-- changed trial row stamped with the new one. A process keeping a study in memory reads only the
-- trials stamped after the revision it holds.
ALTER TABLE tune_studies ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tune_trials ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
CREATE INDEX tune_trials_by_revision ON tune_trials (study_id, revision);
