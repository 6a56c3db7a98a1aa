-- Which runs read a dataset version: looked up by the version's digest.
CREATE INDEX run_inputs_by_digest ON run_inputs (dataset_digest);
