-- Versions made from another version (a sample, a split part) name it here, e.g. 'falls@3';
-- NULL for versions added from outside.
ALTER TABLE dataset_versions ADD COLUMN derived_from TEXT;
