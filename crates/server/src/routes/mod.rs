//! The route table: one module per resource, all behind the auth and metrics layers.

mod alerts;
mod blobs;
mod data;
mod drift;
mod gauges;
mod health;
mod inference;
mod jobs;
mod meta;
mod mlflow;
mod models;
mod monitors;
mod predlog;
mod rollouts;
mod studies;
mod tracking;

use axum::Router;
use axum::http::Method;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use slipway_core::ErrorCode;
use tower_http::catch_panic::CatchPanicLayer;

use crate::{ApiError, AppState, metrics, ui};

pub(crate) use alerts::{
    __path_create_rule, __path_delete_rule, __path_list_actions, __path_list_alerts,
    __path_list_rules,
};
pub(crate) use blobs::{__path_missing, __path_put};
pub(crate) use data::{
    __path_create_version, __path_diff, __path_get_dataset, __path_get_file, __path_get_profile,
    __path_get_rows, __path_get_version, __path_list_datasets, __path_sample, __path_split,
    __path_version_runs,
};
pub(crate) use drift::__path_drift;
pub(crate) use gauges::{__path_history, __path_list, __path_push};
pub(crate) use health::{__path_health, __path_ready};
pub(crate) use inference::{
    __path_abtest, __path_create_endpoint, __path_delete_endpoint, __path_feedback,
    __path_get_endpoint, __path_list_endpoints, __path_set_traffic,
};
pub(crate) use jobs::{
    __path_cancel_job, __path_get_job, __path_job_events, __path_list_jobs, __path_submit_job,
};
pub(crate) use meta::__path_version;
pub(crate) use models::{
    __path_delete_alias, __path_delete_model, __path_delete_model_version, __path_get_model,
    __path_get_model_version, __path_list_models, __path_register_version, __path_set_alias,
    __path_version_lineage,
};
pub(crate) use monitors::{
    __path_create_monitor, __path_delete_monitor, __path_evaluate_monitor, __path_get_monitor,
    __path_list_monitors, __path_monitor_reports,
};
pub(crate) use predlog::{
    __path_get_log, __path_log_rows, __path_log_windows, __path_performance, __path_set_log,
};
pub(crate) use rollouts::{
    __path_act, __path_get_rollout, __path_list_rollouts, __path_start_rollout,
};
pub(crate) use studies::{
    __path_ask, __path_create_study, __path_delete_study, __path_enqueue, __path_get_study,
    __path_get_trial, __path_heartbeat, __path_importance, __path_list_studies, __path_list_trials,
    __path_report, __path_should_prune, __path_suggest, __path_tell,
};
pub(crate) use tracking::{
    __path_create_experiment, __path_delete_run, __path_get_run, __path_list_experiments,
    __path_list_runs, __path_metric_history,
};

pub(crate) fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/v1/version", get(meta::version))
        .route("/api/v1/jobs", get(jobs::list_jobs).post(jobs::submit_job))
        .route("/api/v1/jobs/{id}", get(jobs::get_job))
        .route("/api/v1/jobs/{id}/events", get(jobs::job_events))
        .route("/api/v1/jobs/{id}/cancel", post(jobs::cancel_job))
        .route(
            "/api/v1/experiments",
            get(tracking::list_experiments).post(tracking::create_experiment),
        )
        .route("/api/v1/runs", get(tracking::list_runs))
        .route("/api/v1/runs/{run_id}", get(tracking::get_run).delete(tracking::delete_run))
        .route("/api/v1/runs/{run_id}/metrics", get(tracking::metric_history))
        .route("/api/v1/datasets", get(data::list_datasets))
        .route("/api/v1/datasets/{name}", get(data::get_dataset))
        .route("/api/v1/datasets/{name}/diff", get(data::diff))
        .route(
            "/api/v1/datasets/{name}/versions",
            post(data::create_version).layer(axum::extract::DefaultBodyLimit::max(256 << 20)),
        )
        .route("/api/v1/datasets/{name}/versions/{version}", get(data::get_version))
        .route("/api/v1/datasets/{name}/versions/{version}/sample", post(data::sample))
        .route("/api/v1/datasets/{name}/versions/{version}/split", post(data::split))
        .route("/api/v1/blobs", post(blobs::put))
        .route(
            "/api/v1/blobs/missing",
            post(blobs::missing).layer(axum::extract::DefaultBodyLimit::max(4 << 20)),
        )
        .route("/api/v1/datasets/{name}/versions/{version}/runs", get(data::version_runs))
        .route("/api/v1/datasets/{name}/versions/{version}/profile", get(data::get_profile))
        .route("/api/v1/datasets/{name}/versions/{version}/rows", get(data::get_rows))
        .route("/api/v1/datasets/{name}/versions/{version}/files/{*path}", get(data::get_file))
        .route("/api/v1/models", get(models::list_models))
        .route("/api/v1/models/{name}", get(models::get_model).delete(models::delete_model))
        .route(
            "/api/v1/models/{name}/versions",
            post(models::register_version).layer(axum::extract::DefaultBodyLimit::max(256 << 20)),
        )
        .route(
            "/api/v1/models/{name}/versions/{reference}",
            get(models::get_model_version).delete(models::delete_model_version),
        )
        .route("/api/v1/models/{name}/versions/{reference}/lineage", get(models::version_lineage))
        .route(
            "/api/v1/models/{name}/aliases/{alias}",
            put(models::set_alias).delete(models::delete_alias),
        )
        .route(
            "/api/v1/drift",
            post(drift::drift).layer(axum::extract::DefaultBodyLimit::max(drift::BODY_LIMIT)),
        )
        .route("/api/v1/gauges", get(gauges::list).post(gauges::push))
        .route("/api/v1/gauges/{name}", get(gauges::history))
        .route("/api/v1/endpoints", get(inference::list_endpoints).post(inference::create_endpoint))
        .route(
            "/api/v1/endpoints/{name}",
            get(inference::get_endpoint).delete(inference::delete_endpoint),
        )
        .route("/api/v1/endpoints/{name}/traffic", put(inference::set_traffic))
        .route("/api/v1/endpoints/{name}/feedback", post(inference::feedback))
        .route("/api/v1/endpoints/{name}/abtest", get(inference::abtest))
        .route("/api/v1/endpoints/{name}/log", get(predlog::get_log).put(predlog::set_log))
        .route("/api/v1/endpoints/{name}/predictions", get(predlog::log_rows))
        .route("/api/v1/endpoints/{name}/windows", get(predlog::log_windows))
        .route("/api/v1/endpoints/{name}/performance", get(predlog::performance))
        .route("/api/v1/studies", get(studies::list_studies).post(studies::create_study))
        .route("/api/v1/studies/{name}", get(studies::get_study).delete(studies::delete_study))
        .route("/api/v1/studies/{name}/enqueue", post(studies::enqueue))
        .route("/api/v1/studies/{name}/importance", get(studies::importance))
        .route("/api/v1/studies/{name}/trials", get(studies::list_trials).post(studies::ask))
        .route("/api/v1/studies/{name}/trials/{number}", get(studies::get_trial))
        .route("/api/v1/studies/{name}/trials/{number}/suggest", post(studies::suggest))
        .route("/api/v1/studies/{name}/trials/{number}/report", post(studies::report))
        .route("/api/v1/studies/{name}/trials/{number}/should_prune", post(studies::should_prune))
        .route("/api/v1/studies/{name}/trials/{number}/tell", post(studies::tell))
        .route("/api/v1/studies/{name}/trials/{number}/heartbeat", post(studies::heartbeat))
        .route("/api/v1/monitors", get(monitors::list_monitors).post(monitors::create_monitor))
        .route(
            "/api/v1/monitors/{name}",
            get(monitors::get_monitor).delete(monitors::delete_monitor),
        )
        .route("/api/v1/monitors/{name}/reports", get(monitors::monitor_reports))
        .route("/api/v1/monitors/{name}/evaluate", post(monitors::evaluate_monitor))
        .route("/api/v1/alerts", get(alerts::list_alerts))
        .route("/api/v1/alerts/rules", get(alerts::list_rules).post(alerts::create_rule))
        .route("/api/v1/alerts/actions", get(alerts::list_actions))
        .route("/api/v1/alerts/rules/{name}", delete(alerts::delete_rule))
        .route("/api/v1/rollouts", get(rollouts::list_rollouts).post(rollouts::start_rollout))
        .route("/api/v1/rollouts/{id}", get(rollouts::get_rollout))
        .route("/api/v1/rollouts/{id}/{action}", post(rollouts::act))
        .route("/api/openapi.json", get(meta::openapi));

    let app = Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(metrics::exposition))
        .merge(checked(api))
        .merge(inference_routes())
        .merge(checked(mlflow::router()))
        .merge(ui::router());
    layered(app, state)
}

/// What `slipway serve` answers: health, metrics, the endpoints and their logs (read-only) and
/// inference.
pub(crate) fn serving_router(state: AppState) -> Router {
    let app = Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(metrics::exposition))
        .route("/api/v1/version", get(meta::version))
        .route("/api/v1/endpoints", get(inference::list_endpoints))
        .route("/api/v1/endpoints/{name}", get(inference::get_endpoint))
        .route("/api/v1/endpoints/{name}/log", get(predlog::get_log))
        .merge(inference_routes());
    layered(app, state)
}

fn inference_routes() -> Router<AppState> {
    Router::new()
        .route("/v2", get(inference::server_metadata))
        .route("/v2/health/live", get(inference::health))
        .route("/v2/health/ready", get(inference::health))
        .route("/v2/models/{name}", get(inference::model_metadata))
        .route("/v2/models/{name}/ready", get(inference::model_ready))
        .route("/v2/models/{name}/infer", post(inference::infer))
        .route("/endpoints/{name}/invocations", post(inference::invocations))
        .route("/invocations", post(inference::default_invocations))
}

/// The API's routes (native and MLflow; not inference, whose payloads are the model's): no NUL
/// character in what they store, and axum's own text refusals answered as JSON.
fn checked(routes: Router<AppState>) -> Router<AppState> {
    routes
        .layer(middleware::from_fn(crate::input::refuse_nul))
        .layer(middleware::from_fn(crate::input::json_errors))
}

/// The layers every route passes: auth, metrics, and a JSON 500 for a panic.
fn layered(app: Router<AppState>, state: AppState) -> Router {
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn(metrics::label_route))
        .layer(middleware::from_fn_with_state(state.clone(), crate::auth::require_token))
        .layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(ErrorCode::InternalError, "the server hit a bug; see its log")
                .into_response()
        }))
        .with_state(state)
}

async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    ApiError::new(ErrorCode::EndpointNotFound, format!("no endpoint {method} {}", uri.path()))
        .into_response()
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Response {
    ApiError::new(ErrorCode::MethodNotAllowed, format!("{} does not accept {method}", uri.path()))
        .into_response()
}
