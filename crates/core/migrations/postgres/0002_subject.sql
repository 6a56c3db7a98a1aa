-- What a job is about (a study, say), so that a caller can find the open jobs of one thing by
-- index rather than by reading every job of its kind. Jobs queued before have none.
ALTER TABLE jobs ADD COLUMN subject TEXT;
CREATE INDEX jobs_subject ON jobs (kind, subject, status);
