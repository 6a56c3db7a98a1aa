//! `/api/v1/experiments` and `/api/v1/runs`: tracking in Slipway's own, flat JSON (what the CLI,
//! the Python client and the web UI read). MLflow's wire shapes live in `routes/mlflow`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use track::{Experiment, Run, RunSearch, ViewType};
use utoipa::{IntoParams, ToSchema};

use crate::{ApiError, AppState};

#[derive(Serialize, ToSchema)]
pub(crate) struct ExperimentView {
    experiment_id: String,
    name: String,
    lifecycle_stage: String,
    artifact_location: String,
    creation_time: i64,
    last_update_time: i64,
    tags: BTreeMap<String, String>,
}

impl From<&Experiment> for ExperimentView {
    fn from(e: &Experiment) -> ExperimentView {
        ExperimentView {
            experiment_id: e.experiment_id.clone(),
            name: e.name.clone(),
            lifecycle_stage: e.lifecycle_stage.as_str().into(),
            artifact_location: e.artifact_location.clone(),
            creation_time: e.creation_time,
            last_update_time: e.last_update_time,
            tags: e.tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ExperimentList {
    experiments: Vec<ExperimentView>,
}

/// A run, flat: params, latest metrics and tags as maps. Metric values that are not finite are
/// the strings "NaN", "Infinity" and "-Infinity".
#[derive(Serialize, ToSchema)]
pub(crate) struct RunView {
    run_id: String,
    experiment_id: String,
    name: String,
    status: String,
    user_id: String,
    start_time: i64,
    end_time: Option<i64>,
    lifecycle_stage: String,
    artifact_uri: String,
    params: BTreeMap<String, String>,
    #[schema(value_type = Object)]
    metrics: BTreeMap<String, serde_json::Value>,
    tags: BTreeMap<String, String>,
    /// Datasets the run read (`mlflow.log_input`, `slipway run --input`).
    inputs: Vec<InputView>,
}

/// A dataset input of a run.
#[derive(Serialize, ToSchema)]
pub(crate) struct InputView {
    name: String,
    digest: String,
    source_type: String,
    /// `mlflow.data.context`, e.g. `training`.
    context: Option<String>,
    /// The Slipway dataset version (`name@N`) when the input is one.
    version: Option<String>,
}

impl InputView {
    fn from_json(v: &serde_json::Value) -> InputView {
        let input = track::DatasetInput::from_json(v);
        InputView {
            name: input.name,
            digest: input.digest,
            source_type: input.source_type,
            context: input.context,
            version: input.version,
        }
    }
}

impl From<&Run> for RunView {
    fn from(r: &Run) -> RunView {
        RunView {
            run_id: r.info.run_id.clone(),
            experiment_id: r.info.experiment_id.clone(),
            name: r.info.run_name.clone(),
            status: r.info.status.as_str().into(),
            user_id: r.info.user_id.clone(),
            start_time: r.info.start_time,
            end_time: r.info.end_time,
            lifecycle_stage: r.info.lifecycle_stage.as_str().into(),
            artifact_uri: r.info.artifact_uri.clone(),
            params: r.params.iter().map(|p| (p.key.clone(), p.value.clone())).collect(),
            metrics: r
                .metrics
                .iter()
                .map(|m| (m.key.clone(), super::mlflow::number(m.value)))
                .collect(),
            tags: r.tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect(),
            inputs: r.inputs.iter().map(InputView::from_json).collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RunList {
    runs: Vec<RunView>,
    /// Pass back as `page_token` for the next page; absent on the last page.
    next_page_token: Option<String>,
}

#[derive(Deserialize, IntoParams)]
pub(crate) struct ExperimentQuery {
    /// `active` (default), `deleted` or `all`.
    view: Option<String>,
    /// MLflow's experiment filter, e.g. `name LIKE 'falls-%' AND tags.team = 'vision'`.
    filter: Option<String>,
}

fn view_type(view: Option<&str>) -> Result<ViewType, ApiError> {
    match view.unwrap_or("active") {
        "active" => Ok(ViewType::ActiveOnly),
        "deleted" => Ok(ViewType::DeletedOnly),
        "all" => Ok(ViewType::All),
        other => {
            Err(ApiError::invalid(format!("view must be active, deleted or all, not {other:?}")))
        }
    }
}

/// Lists experiments, newest first.
#[utoipa::path(get, path = "/api/v1/experiments", tag = "tracking", params(ExperimentQuery),
    responses((status = 200, body = ExperimentList)))]
pub(crate) async fn list_experiments(
    State(s): State<AppState>,
    query: Result<Query<ExperimentQuery>, QueryRejection>,
) -> Result<Json<ExperimentList>, ApiError> {
    let q = query?.0;
    let search = track::ExperimentSearch {
        view: view_type(q.view.as_deref())?,
        max_results: Some(50_000),
        filter: q.filter.unwrap_or_default(),
        ..Default::default()
    };
    let page = s.tracking.search_experiments(&search).await?;
    Ok(Json(ExperimentList { experiments: page.items.iter().map(ExperimentView::from).collect() }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewExperiment {
    name: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

/// Creates an experiment.
#[utoipa::path(post, path = "/api/v1/experiments", tag = "tracking", request_body = NewExperiment,
    responses((status = 201, body = ExperimentView), (status = 400, description = "the name is taken or invalid")))]
pub(crate) async fn create_experiment(
    State(s): State<AppState>,
    body: Result<Json<NewExperiment>, JsonRejection>,
) -> Result<(StatusCode, Json<ExperimentView>), ApiError> {
    let body = body?.0;
    let tags: Vec<track::KeyValue> =
        body.tags.into_iter().map(|(key, value)| track::KeyValue { key, value }).collect();
    let id = s.tracking.create_experiment(&body.name, None, &tags).await?;
    let e = s.tracking.get_experiment(&id).await?;
    Ok((StatusCode::CREATED, Json(ExperimentView::from(&e))))
}

#[derive(Deserialize, IntoParams)]
pub(crate) struct RunQuery {
    /// Experiment names or ids, comma-separated (default: every active experiment).
    experiment: Option<String>,
    /// MLflow's filter grammar, e.g. `metrics.acc > 0.9 and params.lr = '0.01'`.
    filter: Option<String>,
    /// Comma-separated `key [ASC|DESC]` entries, e.g. `metrics.acc DESC`.
    order_by: Option<String>,
    /// 1–50000, default 100.
    max_results: Option<i64>,
    page_token: Option<String>,
    /// `active` (default), `deleted` or `all`.
    view: Option<String>,
}

/// Searches runs with MLflow's filter grammar.
#[utoipa::path(get, path = "/api/v1/runs", tag = "tracking", params(RunQuery),
    responses((status = 200, body = RunList), (status = 400, description = "a bad filter or order")))]
pub(crate) async fn list_runs(
    State(s): State<AppState>,
    query: Result<Query<RunQuery>, QueryRejection>,
) -> Result<Json<RunList>, ApiError> {
    let q = query?.0;
    let experiment_ids = match q.experiment.as_deref().filter(|e| !e.is_empty()) {
        Some(list) => {
            let mut ids = Vec::new();
            for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let id = match s.tracking.get_experiment_by_name(name).await {
                    Ok(e) => e.experiment_id,
                    Err(track::Error::ExperimentNameNotFound { .. }) => {
                        match s.tracking.get_experiment(name).await {
                            Ok(e) => e.experiment_id,
                            // Neither a name nor an id.
                            Err(track::Error::ExperimentNotFound { .. }) => {
                                return Err(ApiError::not_found(format!(
                                    "no experiment named or numbered '{name}'"
                                )));
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                    Err(e) => return Err(e.into()),
                };
                ids.push(id);
            }
            ids
        }
        None => {
            let search =
                track::ExperimentSearch { max_results: Some(50_000), ..Default::default() };
            s.tracking
                .search_experiments(&search)
                .await?
                .items
                .into_iter()
                .map(|e| e.experiment_id)
                .collect()
        }
    };
    let search = RunSearch {
        experiment_ids,
        filter: q.filter.unwrap_or_default(),
        view: view_type(q.view.as_deref())?,
        max_results: Some(q.max_results.unwrap_or(100)),
        order_by: q
            .order_by
            .map(|o| o.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default(),
        page_token: q.page_token,
    };
    let page = s.tracking.search_runs(&search).await?;
    Ok(Json(RunList {
        runs: page.items.iter().map(RunView::from).collect(),
        next_page_token: page.next_page_token,
    }))
}

/// One run.
#[utoipa::path(get, path = "/api/v1/runs/{run_id}", tag = "tracking", params(("run_id" = String, Path)),
    responses((status = 200, body = RunView), (status = 404, description = "no such run")))]
pub(crate) async fn get_run(
    State(s): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    Ok(Json(RunView::from(&s.tracking.get_run(&run_id).await?)))
}

/// Soft-deletes a run (it can be restored through the MLflow API).
#[utoipa::path(delete, path = "/api/v1/runs/{run_id}", tag = "tracking", params(("run_id" = String, Path)),
    responses((status = 200, body = RunView), (status = 404, description = "no such run")))]
pub(crate) async fn delete_run(
    State(s): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    s.tracking.delete_run(&run_id).await?;
    Ok(Json(RunView::from(&s.tracking.get_run(&run_id).await?)))
}

#[derive(Deserialize, IntoParams)]
pub(crate) struct HistoryQuery {
    /// The metric's key.
    key: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MetricPoint {
    step: i64,
    timestamp: i64,
    #[schema(value_type = Object)]
    value: serde_json::Value,
}

/// Every point of one metric of a run, ordered by timestamp and step.
#[utoipa::path(get, path = "/api/v1/runs/{run_id}/metrics", tag = "tracking",
    params(("run_id" = String, Path), HistoryQuery),
    responses((status = 200, body = Vec<MetricPoint>), (status = 404, description = "no such run")))]
pub(crate) async fn metric_history(
    State(s): State<AppState>,
    Path(run_id): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<Vec<MetricPoint>>, ApiError> {
    let key = query?.0.key;
    let mut points = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page =
            s.tracking.metric_history(&run_id, &key, Some(100_000), token.as_deref()).await?;
        points.extend(page.items.iter().map(|m| MetricPoint {
            step: m.step,
            timestamp: m.timestamp,
            value: super::mlflow::number(m.value),
        }));
        match page.next_page_token {
            Some(t) if points.len() < 1_000_000 => token = Some(t),
            _ => break,
        }
    }
    Ok(Json(points))
}
