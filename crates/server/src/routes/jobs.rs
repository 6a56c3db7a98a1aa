//! `/api/v1/jobs`: the job queue, for watching and cancelling long work.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use slipway_core::jobs::{Job, JobEvent, JobStatus, NewJob};
use utoipa::{IntoParams, ToSchema};

use crate::{ApiError, AppState};

/// A job as the API shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct JobView {
    id: String,
    kind: String,
    /// What the job is about, when its enqueuer said: a study's id for a `tune.trial` job.
    subject: Option<String>,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    status: String,
    #[schema(value_type = Object)]
    payload: serde_json::Value,
    priority: i64,
    attempts: i64,
    max_attempts: i64,
    /// Not run before this time (ms since the epoch).
    run_after: i64,
    /// The worker holding the job while it runs.
    worker: Option<String>,
    lease_expires_at: Option<i64>,
    cancel_requested: bool,
    /// The last named progress step the worker reported.
    #[schema(value_type = Option<Object>)]
    progress: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    result: Option<serde_json::Value>,
    error: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    updated_at: i64,
}

impl From<Job> for JobView {
    fn from(j: Job) -> JobView {
        JobView {
            id: j.id,
            kind: j.kind,
            subject: j.subject,
            status: j.status.as_str().to_string(),
            payload: j.payload,
            priority: j.priority,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            run_after: j.run_after,
            worker: j.lease_owner,
            lease_expires_at: j.lease_expires_at,
            cancel_requested: j.cancel_requested,
            progress: j.progress,
            result: j.result,
            error: j.error,
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
            updated_at: j.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct JobList {
    jobs: Vec<JobView>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct JobEventView {
    at: i64,
    event: String,
    attempt: i64,
    worker: Option<String>,
    detail: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct JobEventList {
    events: Vec<JobEventView>,
}

impl From<JobEvent> for JobEventView {
    fn from(e: JobEvent) -> JobEventView {
        JobEventView {
            at: e.at,
            event: e.event,
            attempt: e.attempt,
            worker: e.worker,
            detail: e.detail,
        }
    }
}

#[derive(Deserialize, IntoParams)]
pub(crate) struct ListQuery {
    /// Only jobs in this status.
    status: Option<String>,
    /// At most this many, newest first (1–1000, default 100).
    limit: Option<i64>,
}

/// Lists jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(ListQuery),
    responses((status = 200, body = JobList), (status = 400, description = "bad status or limit")))]
pub(crate) async fn list_jobs(
    State(state): State<AppState>,
    query: Result<axum::extract::Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobList>, ApiError> {
    let query = query?.0;
    let status = query.status.as_deref().map(JobStatus::parse).transpose()?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid(format!("limit must be between 1 and 1000, got {limit}")));
    }
    let jobs = state.queue.list(status, limit).await?;
    Ok(Json(JobList { jobs: jobs.into_iter().map(JobView::from).collect() }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmitJob {
    /// A job kind this server's workers run (see the 400 answer for the list).
    kind: String,
    #[schema(value_type = Object)]
    #[serde(default)]
    payload: serde_json::Value,
    /// Higher runs first.
    #[serde(default)]
    priority: i64,
    /// Attempts before the job fails for good (1–100, default 3).
    max_attempts: Option<i64>,
}

/// Enqueues a job; answers 202 at once, the job runs on a worker.
#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", request_body = SubmitJob,
    responses((status = 202, body = JobView), (status = 400, description = "unknown kind or bad body")))]
pub(crate) async fn submit_job(
    State(state): State<AppState>,
    body: Result<Json<SubmitJob>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let body = body?.0;
    if !state.job_kinds.contains(&body.kind) {
        return Err(ApiError::invalid(format!(
            "unknown job kind {:?}; this server runs: {}",
            body.kind,
            state.job_kinds.join(", ")
        )));
    }
    let max_attempts = body.max_attempts.unwrap_or(3);
    if !(1..=100).contains(&max_attempts) {
        return Err(ApiError::invalid(format!(
            "max_attempts must be 1 to 100, got {max_attempts}"
        )));
    }
    let payload = if body.payload.is_null() { serde_json::json!({}) } else { body.payload };
    let new = NewJob { priority: body.priority, max_attempts, ..NewJob::new(body.kind, payload) };
    let job = state.queue.enqueue(new).await?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}

/// One job.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, body = JobView), (status = 404, description = "no such job")))]
pub(crate) async fn get_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(state.queue.get(&id).await?.into()))
}

/// A job's history: enqueued, claimed, retried, completed…
#[utoipa::path(get, path = "/api/v1/jobs/{id}/events", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, body = JobEventList), (status = 404, description = "no such job")))]
pub(crate) async fn job_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobEventList>, ApiError> {
    let events = state.queue.events(&id).await?;
    Ok(Json(JobEventList { events: events.into_iter().map(JobEventView::from).collect() }))
}

/// Cancels a job: a queued one at once, a running one when its worker next checks in.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = String, Path)),
    responses((status = 200, body = JobView), (status = 404, description = "no such job")))]
pub(crate) async fn cancel_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(state.queue.cancel(&id).await?.into()))
}
