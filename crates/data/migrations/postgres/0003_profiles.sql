-- A version's profile (column summaries of a table, or of its items' metadata) is a blob in the
-- blob store; this names its digest. NULL for versions without one.
ALTER TABLE dataset_versions ADD COLUMN profile TEXT;
