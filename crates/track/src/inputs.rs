//! A run's dataset inputs as MLflow's client describes them (`log_input`, `slipway run --input`),
//! read into the fields lineage needs.

use serde_json::Value;

/// One dataset input of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetInput {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    /// `mlflow.data.context`, e.g. `training`.
    pub context: Option<String>,
    /// The Slipway dataset version (`name@N`) when the source is one (`slipway://name@N`).
    pub version: Option<String>,
}

impl DatasetInput {
    /// Reads one entry of [`crate::Run::inputs`].
    pub fn from_json(v: &Value) -> DatasetInput {
        let text = |p: &str| v.pointer(p).and_then(|x| x.as_str()).unwrap_or_default().to_string();
        let context = v["tags"].as_array().and_then(|tags| {
            tags.iter()
                .find(|t| t["key"] == "mlflow.data.context")
                .and_then(|t| t["value"].as_str().map(str::to_string))
        });
        let source = crate::store::slipway_source(v);
        DatasetInput {
            name: text("/dataset/name"),
            digest: text("/dataset/digest"),
            source_type: text("/dataset/source_type"),
            context,
            version: source.strip_prefix("slipway://").map(str::to_string),
        }
    }
}
