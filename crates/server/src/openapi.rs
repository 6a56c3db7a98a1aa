//! The OpenAPI document of the native API, generated from the handlers' annotations.

use utoipa::OpenApi;

use crate::routes::*;

#[derive(OpenApi)]
#[openapi(
    info(title = "Slipway", description = "The native API of Slipway, the machine-learning lifecycle in one binary. \
        Errors are JSON {\"error_code\", \"message\"}."),
    paths(health, ready, version, list_jobs, submit_job, get_job, job_events, cancel_job,
        list_experiments, create_experiment, list_runs, get_run, delete_run, metric_history,
        list_datasets, get_dataset, create_version, get_version, version_runs, get_profile, get_rows, diff,
        get_file, sample, split, put, missing,
        list_models, get_model, delete_model, register_version, get_model_version,
        delete_model_version, version_lineage, set_alias, delete_alias,
        list_endpoints, create_endpoint, get_endpoint, delete_endpoint, set_traffic, feedback, abtest,
        list_rollouts, start_rollout, get_rollout, act, drift, push, list, history,
        get_log, set_log, log_rows, log_windows, performance, create_monitor, list_monitors, get_monitor,
        delete_monitor, monitor_reports, evaluate_monitor, create_rule, list_rules, delete_rule,
        list_alerts, list_actions, create_study, list_studies, get_study, delete_study, list_trials, get_trial, ask,
        suggest, report, should_prune, tell, heartbeat, enqueue, importance),
    tags((name = "system", description = "Health, readiness and version"),
         (name = "jobs", description = "The queue of long-running work"),
         (name = "tracking", description = "Experiments and runs (MLflow's REST API is served too, under /api/2.0/mlflow)"),
         (name = "data", description = "Datasets, their versions, items, diffs and files"),
         (name = "models", description = "The model registry: models, versions, aliases, signatures and lineage (MLflow's registry API is served too)"),
         (name = "serving", description = "Endpoints, their traffic (splits, shadows), ground truth, A/B reports and rollouts (inference itself speaks the Open Inference Protocol and MLflow's /invocations)"),
         (name = "tuning", description = "Hyperparameter studies and their trials (each a tracked run): ask, suggest, report, should_prune, tell"),
         (name = "monitoring", description = "Drift between two tables, per column, with Evidently's default tests; custom gauges; each endpoint's prediction log and its per-window profiles; monitors (skew, drift, prediction drift) judging each window; alert rules, alerts and their webhooks")),
)]
struct ApiDoc;

pub(crate) fn document() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = crate::VERSION.to_string();
    doc.to_json().unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
