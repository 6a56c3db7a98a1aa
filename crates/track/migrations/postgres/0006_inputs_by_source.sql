-- A dataset input's source URI when it names a Slipway version ('slipway://NAME@N'), so an
-- MLflow log_input whose source points at a version links to it even when its digest is
-- mlflow's own; '' for other sources. Filled for older rows when tracking opens.
ALTER TABLE run_inputs ADD COLUMN dataset_source TEXT;
CREATE INDEX run_inputs_by_source ON run_inputs (dataset_source);
