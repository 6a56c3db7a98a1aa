//! The registry's domain types.

use serde::{Deserialize, Serialize};
use track::KeyValue;

use crate::onnx::Signature;

/// A registered model: a name that numbered versions share.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredModel {
    pub name: String,
    pub description: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub tags: Vec<KeyValue>,
    /// `(alias, version)`, by alias.
    pub aliases: Vec<(String, i64)>,
    /// The newest version of each stage (MLflow's `latest_versions`).
    pub latest_versions: Vec<ModelVersion>,
}

/// MLflow's (deprecated) stages, still accepted for its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stage {
    None,
    Staging,
    Production,
    Archived,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::None => "None",
            Stage::Staging => "Staging",
            Stage::Production => "Production",
            Stage::Archived => "Archived",
        }
    }

    /// Parses a stage name in any case, as MLflow does.
    pub fn parse(s: &str) -> Option<Stage> {
        [Stage::None, Stage::Staging, Stage::Production, Stage::Archived]
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
    }
}

/// How a version's files can be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelFormat {
    /// An ONNX file: `path` under the artifact root and its content digest.
    Onnx { path: String, digest: String },
    /// No ONNX file: registered (MLflow's other flavours), not servable by Slipway.
    Other,
}

/// One numbered version of a registered model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersion {
    pub name: String,
    pub version: i64,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub description: String,
    /// What the client registered, as it said it.
    pub source: String,
    pub run_id: Option<String>,
    pub model_id: Option<String>,
    pub stage: Stage,
    pub tags: Vec<KeyValue>,
    pub aliases: Vec<String>,
    /// The artifact path `source` resolved to (a folder or a file).
    pub storage: String,
    /// MLflow flavours named in the folder's `MLmodel` (`onnx`, `sklearn`, …), if it has one.
    pub flavors: Vec<String>,
    pub format: ModelFormat,
    /// Inputs and outputs of an ONNX model.
    pub signature: Option<Signature>,
}

impl ModelVersion {
    /// `mlflow-artifacts:/<storage>`: where the client downloads the version's files.
    pub fn download_uri(&self) -> String {
        format!("mlflow-artifacts:/{}", self.storage)
    }

    /// `name@version`.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// A version to register.
#[derive(Debug, Clone, Default)]
pub struct NewVersion {
    pub name: String,
    pub source: String,
    pub run_id: Option<String>,
    pub model_id: Option<String>,
    pub description: String,
    pub tags: Vec<KeyValue>,
    /// Make the model if it does not exist yet, in the version's own transaction (as
    /// `mlflow.register_model` does): a refused version then leaves no model behind.
    pub create_model: bool,
}

/// A search of registered models or of model versions.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// MLflow's registry filter (`name LIKE 'fall%' AND tags.team = 'vision'`).
    pub filter: String,
    pub max_results: Option<i64>,
    /// `name`, `creation_timestamp`, `last_updated_timestamp` (or `timestamp`), and for
    /// versions `version_number`; each optionally `ASC`/`DESC`.
    pub order_by: Vec<String>,
    pub page_token: Option<String>,
}

/// Where a model version came from: its training run and the dataset versions that run read.
#[derive(Debug, Clone, PartialEq)]
pub struct Lineage {
    pub version: ModelVersion,
    /// The run that trained it, when the version names one that exists.
    pub run: Option<track::RunInfo>,
    /// The run's dataset inputs; `version` is the Slipway dataset version when one is linked.
    pub datasets: Vec<track::DatasetInput>,
}
