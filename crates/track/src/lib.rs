//! Experiment tracking: experiments, runs, params, metrics, tags, dataset inputs and model
//! outputs, and run search with MLflow's filter grammar.
//!
//! [`Tracking`] is the API; it owns the tables in `migrations/` and their SQL (`store`). It
//! follows MLflow's semantics (immutable params, latest metric = greatest step/timestamp/value,
//! soft deletion, batch limits) so that the MLflow wire API in `server` is a thin mapping.
//!
//! This crate knows nothing of HTTP, JSON wire shapes or MLflow's REST paths.

mod artifacts;
mod error;
pub mod filter;
mod inputs;
mod models;
mod names;
mod points;
mod search;
mod store;
mod types;

use slipway_core::{Db, Migration, new_id, now_ms};

pub use artifacts::{ArtifactEntry, ArtifactFile, Artifacts};
pub use error::{Error, Result};
pub use inputs::DatasetInput;
pub use models::{LoggedModel, NewLoggedModel};
pub use types::{
    Experiment, KeyValue, LifecycleStage, Metric, NewRun, Page, Run, RunInfo, RunStatus, ViewType,
};

/// The tracking schema.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "tracking",
        sqlite: include_str!("../migrations/sqlite/0001_tracking.sql"),
        postgres: include_str!("../migrations/postgres/0001_tracking.sql"),
    },
    Migration {
        version: 2,
        name: "artifacts",
        sqlite: include_str!("../migrations/sqlite/0002_artifacts.sql"),
        postgres: include_str!("../migrations/postgres/0002_artifacts.sql"),
    },
    Migration {
        version: 3,
        name: "logged models",
        sqlite: include_str!("../migrations/sqlite/0003_logged_models.sql"),
        postgres: include_str!("../migrations/postgres/0003_logged_models.sql"),
    },
    Migration {
        version: 4,
        name: "metric chunks",
        sqlite: include_str!("../migrations/sqlite/0004_metric_chunks.sql"),
        postgres: include_str!("../migrations/postgres/0004_metric_chunks.sql"),
    },
    Migration {
        version: 5,
        name: "inputs by digest",
        sqlite: include_str!("../migrations/sqlite/0005_inputs_by_digest.sql"),
        postgres: include_str!("../migrations/postgres/0005_inputs_by_digest.sql"),
    },
    Migration {
        version: 6,
        name: "inputs by source",
        sqlite: include_str!("../migrations/sqlite/0006_inputs_by_source.sql"),
        postgres: include_str!("../migrations/postgres/0006_inputs_by_source.sql"),
    },
    Migration {
        version: 7,
        name: "default dated",
        sqlite: include_str!("../migrations/sqlite/0007_default_created.sql"),
        postgres: include_str!("../migrations/postgres/0007_default_created.sql"),
    },
];

/// Batch limits, as MLflow's.
pub const MAX_METRICS_PER_BATCH: usize = 1000;
pub const MAX_PARAMS_TAGS_PER_BATCH: usize = 100;
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
/// Longest key of a param, metric or tag.
pub const MAX_KEY_LEN: usize = 250;
/// Param values longer than this are cut to it; tags at `MAX_TAG_VALUE_LEN`.
pub const MAX_PARAM_VALUE_LEN: usize = 6000;
pub const MAX_TAG_VALUE_LEN: usize = 8000;
/// Most runs one search page returns, and most metric points one history page returns.
pub const MAX_RESULTS_RUNS: i64 = 50_000;
pub const MAX_RESULTS_HISTORY: i64 = 25_000;

/// Experiment tracking over the metadata store; cheap to clone.
#[derive(Clone, Debug)]
pub struct Tracking {
    db: Db,
}

/// A run search.
#[derive(Debug, Clone, Default)]
pub struct RunSearch {
    pub experiment_ids: Vec<String>,
    pub filter: String,
    pub view: ViewType,
    pub max_results: Option<i64>,
    pub order_by: Vec<String>,
    pub page_token: Option<String>,
}

/// An experiment search.
#[derive(Debug, Clone, Default)]
pub struct ExperimentSearch {
    pub view: ViewType,
    pub max_results: Option<i64>,
    pub page_token: Option<String>,
    /// MLflow's experiment filter: `name`, `experiment_id`, `creation_time`,
    /// `last_update_time` and `tags.<key>`.
    pub filter: String,
    /// Attributes, each optionally `ASC`/`DESC`; newest first by default.
    pub order_by: Vec<String>,
}

impl Tracking {
    /// Opens tracking on `db`, bringing its schema up to date.
    pub async fn open(db: Db) -> Result<Tracking> {
        db.migrate("track", MIGRATIONS).await?;
        store::move_legacy_metrics(&db).await?;
        store::fill_latest_value_bits(&db).await?;
        store::fill_dataset_fields(&db).await?;
        Ok(Tracking { db })
    }

    // --- experiments -------------------------------------------------------------------------

    /// Creates an experiment and returns its id. Names are unique, deleted experiments included.
    pub async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[KeyValue],
    ) -> Result<String> {
        if name.trim().is_empty() {
            return Err(Error::invalid(
                "Invalid experiment name: ''. Experiment names must be non-empty",
            ));
        }
        if name.chars().count() > 500 {
            return Err(Error::invalid("Experiment name exceeds the maximum length of 500"));
        }
        // Clients never choose where the server keeps artifacts (MLflow's CVE-2023-1177 family).
        if let Some(location) = artifact_location.filter(|l| !l.is_empty())
            && !location.starts_with("mlflow-artifacts:/")
        {
            return Err(Error::invalid(format!(
                "artifact_location {location:?} is not allowed: the server chooses where artifacts go"
            )));
        }
        let artifact_location = artifact_location.filter(|l| !l.is_empty());
        for tag in tags {
            validate_key(&tag.key)?;
        }
        store::create_experiment(&self.db, name, artifact_location, tags, now_ms()).await
    }

    pub async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        let id = parse_experiment_id(experiment_id)?;
        store::get_experiment(&self.db, id)
            .await?
            .ok_or_else(|| Error::ExperimentNotFound { id: experiment_id.to_string() })
    }

    pub async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        store::get_experiment_by_name(&self.db, name)
            .await?
            .ok_or_else(|| Error::ExperimentNameNotFound { name: name.to_string() })
    }

    pub async fn search_experiments(&self, search: &ExperimentSearch) -> Result<Page<Experiment>> {
        let limit = search.max_results.unwrap_or(1000);
        if !(1..=50_000).contains(&limit) {
            return Err(Error::invalid(format!(
                "Invalid value {limit} for parameter 'max_results' supplied. It must be between 1 and 50000"
            )));
        }
        let offset = parse_page_token(search.page_token.as_deref())?;
        let clauses = search::parse_experiment_filter(&search.filter)?;
        let order = search::parse_experiment_order_by(&search.order_by)?;
        let query = search::experiment_query(
            store::EXPERIMENT_COLUMNS,
            search.view.stages(),
            &clauses,
            &order,
            limit + 1,
            offset,
        );
        let mut items = store::search_experiments(&self.db, query).await?;
        Ok(page(&mut items, limit, offset))
    }

    pub async fn rename_experiment(&self, experiment_id: &str, new_name: &str) -> Result<()> {
        if new_name.trim().is_empty() {
            return Err(Error::invalid("The experiment's new name must not be empty"));
        }
        let exp = self.get_experiment(experiment_id).await?;
        if exp.lifecycle_stage == LifecycleStage::Deleted {
            return Err(Error::ExperimentNotActive { id: experiment_id.to_string() });
        }
        store::rename_experiment(&self.db, parse_experiment_id(experiment_id)?, new_name, now_ms())
            .await
    }

    /// Soft-deletes an experiment and its runs.
    pub async fn delete_experiment(&self, experiment_id: &str) -> Result<()> {
        let id = parse_experiment_id(experiment_id)?;
        if id == 0 {
            return Err(Error::invalid("Cannot delete the default experiment '0'."));
        }
        self.get_experiment(experiment_id).await?;
        store::set_experiment_stage(&self.db, id, LifecycleStage::Deleted, now_ms()).await
    }

    pub async fn restore_experiment(&self, experiment_id: &str) -> Result<()> {
        let id = parse_experiment_id(experiment_id)?;
        self.get_experiment(experiment_id).await?;
        store::set_experiment_stage(&self.db, id, LifecycleStage::Active, now_ms()).await
    }

    pub async fn set_experiment_tag(
        &self,
        experiment_id: &str,
        key: &str,
        value: &str,
    ) -> Result<()> {
        validate_key(key)?;
        if value.chars().count() > 20_000 {
            return Err(Error::invalid("Experiment tag values are at most 20000 characters"));
        }
        let exp = self.get_experiment(experiment_id).await?;
        if exp.lifecycle_stage == LifecycleStage::Deleted {
            return Err(Error::ExperimentNotActive { id: experiment_id.to_string() });
        }
        store::set_experiment_tag(&self.db, parse_experiment_id(experiment_id)?, key, value).await
    }

    pub async fn delete_experiment_tag(&self, experiment_id: &str, key: &str) -> Result<()> {
        self.get_experiment(experiment_id).await?;
        store::delete_experiment_tag(&self.db, parse_experiment_id(experiment_id)?, key).await
    }

    // --- runs --------------------------------------------------------------------------------

    /// Creates a run. Without a name one is generated; the name and the tag `mlflow.runName` are
    /// kept equal.
    pub async fn create_run(&self, new: NewRun) -> Result<Run> {
        if new.experiment_id.is_empty() {
            return Err(Error::invalid("Missing value for required parameter 'experiment_id'."));
        }
        let exp = self.get_experiment(&new.experiment_id).await?;
        if exp.lifecycle_stage == LifecycleStage::Deleted {
            return Err(Error::ExperimentNotActive { id: new.experiment_id.clone() });
        }
        let mut tags = dedupe_tags(new.tags)?;
        let run_id = new_id();
        let tag_name = tags.iter().find(|t| t.key == "mlflow.runName").map(|t| t.value.clone());
        let name = new
            .run_name
            .filter(|n| !n.is_empty())
            .or(tag_name)
            .unwrap_or_else(|| names::run_name(&run_id));
        tags.retain(|t| t.key != "mlflow.runName");
        tags.push(KeyValue { key: "mlflow.runName".into(), value: name.clone() });
        let info = RunInfo {
            artifact_uri: format!("mlflow-artifacts:/{}/{run_id}/artifacts", exp.experiment_id),
            run_id,
            experiment_id: exp.experiment_id,
            run_name: name,
            user_id: new.user_id,
            status: RunStatus::Running,
            start_time: new.start_time.unwrap_or_else(now_ms),
            end_time: None,
            lifecycle_stage: LifecycleStage::Active,
        };
        store::create_run(&self.db, &info, &tags).await?;
        // What was just written, without reading it back.
        tags.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Run {
            info,
            metrics: Vec::new(),
            params: Vec::new(),
            tags,
            inputs: Vec::new(),
            model_inputs: Vec::new(),
            outputs: Vec::new(),
        })
    }

    pub async fn get_run(&self, run_id: &str) -> Result<Run> {
        let mut runs = store::load_runs(&self.db, &[run_id.to_string()]).await?;
        runs.pop().ok_or_else(|| Error::RunNotFound { run_id: run_id.to_string() })
    }

    /// Changes a run's status, end time or name.
    pub async fn update_run(
        &self,
        run_id: &str,
        status: Option<RunStatus>,
        end_time: Option<i64>,
        run_name: Option<&str>,
    ) -> Result<RunInfo> {
        self.check_active(run_id).await?;
        let name = run_name.filter(|n| !n.is_empty());
        store::update_run(&self.db, run_id, status, end_time, name).await?;
        Ok(self.get_run(run_id).await?.info)
    }

    pub async fn delete_run(&self, run_id: &str) -> Result<()> {
        self.get_run(run_id).await?;
        store::set_run_stage(&self.db, run_id, LifecycleStage::Deleted, Some(now_ms())).await
    }

    pub async fn restore_run(&self, run_id: &str) -> Result<()> {
        self.get_run(run_id).await?;
        store::set_run_stage(&self.db, run_id, LifecycleStage::Active, None).await
    }

    /// Logs metrics, params and tags to a run in one transaction, within MLflow's batch limits.
    /// Re-logging a param with the same value is fine; another value is refused and nothing of
    /// the batch is written.
    pub async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[KeyValue],
        tags: &[KeyValue],
    ) -> Result<()> {
        if metrics.len() > MAX_METRICS_PER_BATCH {
            return Err(Error::invalid(format!(
                "A batch logging request can contain at most {MAX_METRICS_PER_BATCH} metrics. Got {} metrics. \
                 Please split up metrics across multiple requests and try again.",
                metrics.len()
            )));
        }
        if params.len() + tags.len() > MAX_PARAMS_TAGS_PER_BATCH {
            return Err(Error::invalid(format!(
                "A batch logging request can contain at most {MAX_PARAMS_TAGS_PER_BATCH} params and tags. Got {} params and tags. \
                 Please split up params and tags across multiple requests and try again.",
                params.len() + tags.len()
            )));
        }
        if metrics.len() + params.len() + tags.len() > MAX_ENTITIES_PER_BATCH {
            return Err(Error::invalid(format!(
                "A batch logging request can contain at most {MAX_ENTITIES_PER_BATCH} metrics, params and tags in total"
            )));
        }
        for m in metrics {
            validate_key(&m.key)?;
        }
        let mut clean_params: Vec<KeyValue> = Vec::with_capacity(params.len());
        for p in params {
            validate_key(&p.key)?;
            let value = truncate(&p.value, MAX_PARAM_VALUE_LEN);
            match clean_params.iter().find(|q| q.key == p.key) {
                Some(q) if q.value != value => {
                    return Err(Error::invalid(format!(
                        "Duplicate parameter keys have been submitted: '{}' with different values",
                        p.key
                    )));
                }
                Some(_) => {}
                None => clean_params.push(KeyValue { key: p.key.clone(), value }),
            }
        }
        let clean_tags = dedupe_tags(tags.to_vec())?;
        self.check_active(run_id).await?;
        store::log_batch(&self.db, run_id, metrics, &clean_params, &clean_tags).await
    }

    pub async fn delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        self.check_active(run_id).await?;
        if !store::delete_tag(&self.db, run_id, key).await? {
            return Err(Error::invalid(format!("No tag with name: {key} in run with id {run_id}")));
        }
        Ok(())
    }

    /// Records dataset inputs (`kind` "dataset") or model inputs/outputs as the client's JSON.
    pub async fn log_io(
        &self,
        run_id: &str,
        kind: &str,
        items: &[serde_json::Value],
    ) -> Result<()> {
        self.check_active(run_id).await?;
        store::log_io(&self.db, run_id, kind, items).await
    }

    /// A metric's history, ordered by timestamp, step and value, a page at a time.
    pub async fn metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Page<Metric>> {
        let limit = max_results.unwrap_or(MAX_RESULTS_HISTORY);
        if !(1..=MAX_RESULTS_HISTORY * 4).contains(&limit) {
            return Err(Error::invalid(format!(
                "max_results must be between 1 and {}",
                MAX_RESULTS_HISTORY * 4
            )));
        }
        let offset = parse_page_token(page_token)?;
        self.get_run(run_id).await?;
        let mut items = store::metric_history(&self.db, run_id, key, limit + 1, offset).await?;
        Ok(page(&mut items, limit, offset))
    }

    /// Searches runs of some experiments with MLflow's filter and order_by grammar.
    pub async fn search_runs(&self, search: &RunSearch) -> Result<Page<Run>> {
        let limit = search.max_results.unwrap_or(1000);
        if !(1..=MAX_RESULTS_RUNS).contains(&limit) {
            return Err(Error::invalid(format!(
                "Invalid value {limit} for parameter 'max_results' supplied. It must be at most {MAX_RESULTS_RUNS}"
            )));
        }
        let offset = parse_page_token(search.page_token.as_deref())?;
        let experiment_ids = search
            .experiment_ids
            .iter()
            .map(|id| parse_experiment_id(id))
            .collect::<Result<Vec<_>>>()?;
        let clauses = search::parse_filter(&search.filter)?;
        let order = search::parse_order_by(&search.order_by)?;
        if experiment_ids.is_empty() {
            return Ok(Page { items: Vec::new(), next_page_token: None });
        }
        let query = search::run_query(
            &experiment_ids,
            search.view.stages(),
            &clauses,
            &order,
            limit + 1,
            offset,
        );
        let ids = store::run_ids(&self.db, &query).await?;
        let mut runs = store::load_runs(&self.db, &ids).await?;
        Ok(page(&mut runs, limit, offset))
    }

    /// The active runs that logged a dataset input with this name and digest (for Slipway's
    /// own dataset versions: the dataset's name and the manifest digest), newest first, at most
    /// `limit`.
    /// Active runs, newest first, with a dataset input of this name and digest, or whose
    /// source URI is `source` (e.g. `slipway://falls@3`).
    pub async fn runs_with_input(
        &self,
        name: &str,
        digest: &str,
        source: &str,
        limit: i64,
    ) -> Result<Vec<Run>> {
        let ids = store::runs_with_input(&self.db, name, digest, source, limit).await?;
        store::load_runs(&self.db, &ids).await
    }

    /// Checks that the run exists and is not deleted (one indexed lookup, not a whole run).
    async fn check_active(&self, run_id: &str) -> Result<()> {
        match store::run_stage(&self.db, run_id).await? {
            None => Err(Error::RunNotFound { run_id: run_id.to_string() }),
            Some(LifecycleStage::Deleted) => {
                Err(Error::RunNotActive { run_id: run_id.to_string() })
            }
            Some(LifecycleStage::Active) => Ok(()),
        }
    }
}

fn page<T: Clone>(items: &mut Vec<T>, limit: i64, offset: i64) -> Page<T> {
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    Page {
        items: std::mem::take(items),
        next_page_token: more.then(|| format!("{}", offset + limit)),
    }
}

fn parse_page_token(token: Option<&str>) -> Result<i64> {
    match token.filter(|t| !t.is_empty()) {
        None => Ok(0),
        Some(t) => t
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| Error::invalid(format!("Invalid page token '{t}'"))),
    }
}

fn parse_experiment_id(id: &str) -> Result<i64> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| Error::ExperimentNotFound { id: id.to_string() })
}

/// MLflow's rule for names of params, metrics and tags.
fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid("Missing value for required parameter 'key'."));
    }
    if key.chars().count() > MAX_KEY_LEN {
        return Err(Error::invalid(format!("'{key}' exceeds the maximum length of {MAX_KEY_LEN}")));
    }
    let ok =
        key.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | ':' | '/'));
    // `..` segments and a leading `/` would let a key name a path outside the run's folder.
    let path_like = key.starts_with('/') || key.split('/').any(|p| p == ".." || p == ".");
    if !ok || path_like {
        return Err(Error::invalid(format!(
            "Invalid value \"{key}\" for parameter 'key' supplied. Names may only contain alphanumerics, \
             underscores (_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/)."
        )));
    }
    Ok(())
}

fn truncate(value: &str, max: usize) -> String {
    match value.char_indices().nth(max) {
        Some((i, _)) => value[..i].to_string(),
        None => value.to_string(),
    }
}

/// Validates tag keys, cuts long values and keeps the last value of a repeated key.
fn dedupe_tags(tags: Vec<KeyValue>) -> Result<Vec<KeyValue>> {
    let mut out: Vec<KeyValue> = Vec::with_capacity(tags.len());
    for t in tags {
        validate_key(&t.key)?;
        let value = truncate(&t.value, MAX_TAG_VALUE_LEN);
        match out.iter_mut().find(|o| o.key == t.key) {
            Some(existing) => existing.value = value,
            None => out.push(KeyValue { key: t.key, value }),
        }
    }
    Ok(out)
}
