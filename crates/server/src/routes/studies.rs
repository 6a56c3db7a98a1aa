//! Hyperparameter tuning: studies (`POST/GET /api/v1/studies`, `GET/DELETE /api/v1/studies/{name}`)
//! and their trials, asked and told over HTTP by any language (`POST .../trials` to ask,
//! `.../trials/{n}/suggest`, `/report`, `/should_prune`, `/tell`, `/heartbeat`).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use tune::{
    AskOptions, Distribution, Error, NewStudy, PrunerConfig, SamplerConfig, StudySpec, TrialState,
    objectives_from_json,
};

use crate::{ApiError, AppState};

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::Core(e) => e.into(),
            Error::Track(e) => e.into(),
            other => ApiError::new(other.code(), other.to_string()),
        }
    }
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v).map_err(|e| ApiError::invalid(e.body_text()))
}

/// A body that may be left out: empty (whatever its content type) is `T`'s default; one given
/// must parse.
fn optional_body<T: serde::de::DeserializeOwned + Default>(b: &Bytes) -> Result<T, ApiError> {
    if b.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(b).map_err(|e| ApiError::invalid(format!("body: {e}")))
}

/// A study to create: its fields, or a whole study file as `spec`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateStudy {
    name: Option<String>,
    experiment: Option<String>,
    direction: Option<Value>,
    metric: Option<Value>,
    directions: Option<Value>,
    metrics: Option<Value>,
    sampler: Option<Value>,
    pruner: Option<Value>,
    seed: Option<u64>,
    n_trials: Option<i64>,
    #[serde(default)]
    enqueue: Vec<BTreeMap<String, Value>>,
    #[serde(default)]
    load_if_exists: bool,
    spec: Option<Value>,
    /// Refused, with why (see `COMMAND_REFUSED`).
    command: Option<Value>,
}

/// Why a study's command cannot come over HTTP.
const COMMAND_REFUSED: &str = "a study's command is set with `slipway tune run` on a host with \
    the stores, never over HTTP (it runs on the workers)";

#[utoipa::path(post, path = "/api/v1/studies", tag = "tuning",
    request_body(content = String, content_type = "application/json",
        description = "{name, experiment?, direction?: minimize|maximize, metric? (\"value\"), or for several objectives directions: [..] and metrics: [..], sampler?: tpe|random|grid or {type, ...options}, pruner?: none|median|percentile|asha|hyperband or {type, ...}, seed?, n_trials?, enqueue?: [{param: value}], load_if_exists?} or {spec: <a study file as JSON>, load_if_exists?}"),
    responses((status = 200, description = "the study"), (status = 400, description = "a bad field, named; nothing stored")))]
pub(crate) async fn create_study(
    State(s): State<AppState>,
    b: Result<Json<CreateStudy>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let c = body(b)?;
    if c.command.is_some() {
        return Err(ApiError::invalid(format!("command: {COMMAND_REFUSED}")));
    }
    let new = match c.spec {
        Some(file) => {
            if c.name.is_some()
                || c.sampler.is_some()
                || c.pruner.is_some()
                || c.direction.is_some()
                || c.directions.is_some()
                || c.metric.is_some()
                || c.metrics.is_some()
            {
                return Err(ApiError::invalid(
                    "spec: give either a study file or the fields, not both",
                ));
            }
            if file.get("command").is_some() {
                return Err(ApiError::invalid(format!("spec.command: {COMMAND_REFUSED}")));
            }
            let spec = StudySpec::from_json(&file)?;
            NewStudy::from_spec(&spec, file, "slipway")
        }
        None => {
            let (directions, metrics) = objectives_from_json(
                c.direction.as_ref(),
                c.metric.as_ref(),
                c.directions.as_ref(),
                c.metrics.as_ref(),
            )?;
            let n_objectives = directions.len();
            NewStudy {
                name: c.name.ok_or_else(|| ApiError::invalid("name: missing"))?,
                experiment: c.experiment,
                directions,
                metrics,
                sampler: SamplerConfig::from_json_for(c.sampler.as_ref(), "sampler", n_objectives)?,
                pruner: PrunerConfig::from_json(c.pruner.as_ref(), "pruner")?,
                seed: c.seed,
                spec: None,
                n_trials: c.n_trials,
                enqueue: c.enqueue,
                user: "slipway".into(),
            }
        }
    };
    Ok(Json(json!(s.tuning.create_study(new, c.load_if_exists).await?)))
}

#[utoipa::path(get, path = "/api/v1/studies", tag = "tuning",
    responses((status = 200, description = "{studies: [study with trial counts and queued_jobs; no best trial]} newest first")))]
pub(crate) async fn list_studies(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let backlog = tune::trial_jobs::Backlog::of(&s.queue).await?;
    let studies: Vec<Value> = (s.tuning.studies().await?.iter())
        .map(|study| study.listed(backlog.queued(&study.name, &study.study_id)))
        .collect();
    Ok(Json(json!({ "studies": studies })))
}

#[utoipa::path(get, path = "/api/v1/studies/{name}", tag = "tuning", params(("name" = String, Path)),
    responses((status = 200, description = "the study with its trial counts, best trial and queued_jobs (its trial jobs waiting for a worker)"), (status = 404, description = "no such study")))]
pub(crate) async fn get_study(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let study = s.tuning.study(&name).await?;
    let queued = tune::trial_jobs::queued(&s.queue, &name, &study.study_id).await?;
    let mut out = json!(study);
    out["queued_jobs"] = json!(queued);
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteQuery {
    #[serde(default)]
    runs: bool,
    #[serde(default)]
    force: bool,
}

#[utoipa::path(delete, path = "/api/v1/studies/{name}", tag = "tuning",
    params(("name" = String, Path),
        ("runs" = Option<bool>, Query, description = "also delete the trials' runs and the study's parent run (soft delete: restorable); default false, the runs stay in their experiment"),
        ("force" = Option<bool>, Query, description = "delete even while trials run (they fail); default false")),
    responses((status = 200, description = "{name, study_id, trials, running, runs_deleted, runs_skipped?, jobs_cancelled}: the study and its trials are gone, the name free again, its queued trial jobs cancelled and its running ones asked to stop"),
        (status = 404, description = "no such study"), (status = 409, description = "trials still run; nothing deleted")))]
pub(crate) async fn delete_study(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<DeleteQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    let deleted = s.tuning.delete_study(&name, q.runs, q.force).await?;
    // Its trial jobs (a study run from a file) would only fail: cancel them, as the CLI does.
    // The study is gone whatever happens here, so a failure is logged, not answered (a job
    // left ends by itself, finding no study).
    let cancelled = match tune::trial_jobs::cancel(&s.queue, &name, &deleted.study_id).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(target: "tune", study = %name, error = %e, "cancelling the deleted study's trial jobs");
            0
        }
    };
    let mut out = json!(deleted);
    out["jobs_cancelled"] = json!(cancelled);
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrialsQuery {
    state: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/studies/{name}/trials", tag = "tuning",
    params(("name" = String, Path), ("state" = Option<String>, Query, description = "only trials in this state: RUNNING, COMPLETE, PRUNED or FAIL")),
    responses((status = 200, description = "{trials: [...]} by number: state, params, distributions, value, intermediate values, run id, error"),
        (status = 404, description = "no such study")))]
pub(crate) async fn list_trials(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<TrialsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let state = match q?.0.state {
        Some(state) => {
            Some(TrialState::parse(&state).map_err(|e| ApiError::invalid(format!("state: {e}")))?)
        }
        None => None,
    };
    let mut trials = s.tuning.trials(&name).await?;
    if let Some(state) = state {
        trials.retain(|t| t.state == state);
    }
    Ok(Json(json!({ "trials": trials })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportanceQuery {
    objective: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/studies/{name}/importance", tag = "tuning",
    params(("name" = String, Path), ("objective" = Option<usize>, Query, description = "which objective, from 0 (default 0)")),
    responses((status = 200, description = "{method, objective, importances: [{param, importance, epsilon_squared, trials}]} most important first"),
        (status = 400, description = "no such objective"), (status = 404, description = "no such study")))]
pub(crate) async fn importance(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<ImportanceQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    let objective = q.objective.unwrap_or(0);
    Ok(Json(json!({
        "objective": objective,
        "method": "epsilon squared: the share of the objective ranks' variance between bins of the parameter (each choice, or up to ten quantile bins), less chance; a first-order variance decomposition like fANOVA's main effects, normalised to sum to 1",
        "importances": s.tuning.importance(&name, objective).await?,
    })))
}

#[utoipa::path(get, path = "/api/v1/studies/{name}/trials/{number}", tag = "tuning",
    params(("name" = String, Path), ("number" = u64, Path)),
    responses((status = 200, description = "the trial"), (status = 404, description = "no such study or trial")))]
pub(crate) async fn get_trial(
    State(s): State<AppState>,
    Path((name, number)): Path<(String, u64)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(s.tuning.trial(&name, number).await?)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ask {
    #[serde(default)]
    fixed: BTreeMap<String, Value>,
    lease_ms: Option<i64>,
    worker: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/studies/{name}/trials", tag = "tuning", params(("name" = String, Path)),
    request_body(content = String, content_type = "application/json",
        description = "{fixed?: {param: value}, lease_ms?: the trial fails unless heartbeats renew it within this, worker?}, or nothing"),
    responses((status = 200, description = "the new trial: number, run_id, and, for a study run from a file, its params"),
        (status = 404, description = "no such study")))]
pub(crate) async fn ask(
    State(s): State<AppState>,
    Path(name): Path<String>,
    b: Bytes,
) -> Result<Json<Value>, ApiError> {
    let a: Ask = optional_body(&b)?;
    let options = AskOptions {
        fixed: a.fixed,
        lease_ms: a.lease_ms,
        worker: a.worker,
        user: "slipway".into(),
    };
    Ok(Json(json!(s.tuning.ask(&name, options).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Suggest {
    name: String,
    distribution: Value,
    run_id: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/studies/{name}/trials/{number}/suggest", tag = "tuning",
    params(("name" = String, Path), ("number" = u64, Path)),
    request_body(content = String, content_type = "application/json",
        description = "{name, distribution: {type: float|int|categorical, low?, high?, step?, log?, choices?}, run_id?: the trial's run (refused with 404 if the trial is not that run's)}"),
    responses((status = 200, description = "{value}: drawn the first time, the same after"),
        (status = 400, description = "a bad distribution, or another one than this trial already used for the name"),
        (status = 409, description = "the trial has ended")))]
pub(crate) async fn suggest(
    State(s): State<AppState>,
    Path((name, number)): Path<(String, u64)>,
    b: Result<Json<Suggest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let sg = body(b)?;
    same_run(&s, &name, number, sg.run_id.as_deref()).await?;
    let dist = Distribution::from_json(&sg.distribution, "distribution")?;
    let value = s.tuning.suggest(&name, number, &sg.name, &dist).await?;
    Ok(Json(json!({ "value": value })))
}

/// With `run_id` (the trial's run, as `ask` gave it), the trial must still be that run's: a
/// study deleted and made again under its name has other trials of the same numbers.
async fn same_run(
    s: &AppState,
    name: &str,
    number: u64,
    run_id: Option<&str>,
) -> Result<(), ApiError> {
    match run_id {
        Some(run_id) => Ok(s.tuning.check_run(name, number, run_id).await?),
        None => Ok(()),
    }
}

/// A number, or "NaN".
fn json_number(v: &Value, field: &str) -> Result<f64, ApiError> {
    match v {
        Value::String(s) if s.eq_ignore_ascii_case("nan") => Ok(f64::NAN),
        other => {
            other.as_f64().ok_or_else(|| ApiError::invalid(format!("{field}: expected a number")))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Report {
    step: i64,
    value: Value,
    run_id: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/studies/{name}/trials/{number}/report", tag = "tuning",
    params(("name" = String, Path), ("number" = u64, Path)),
    request_body(content = String, content_type = "application/json", description = "{step, value, run_id?}: an intermediate value (logged as the objective metric's step in the trial's run)"),
    responses((status = 200, description = "{}"), (status = 409, description = "the trial has ended")))]
pub(crate) async fn report(
    State(s): State<AppState>,
    Path((name, number)): Path<(String, u64)>,
    b: Result<Json<Report>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let r = body(b)?;
    same_run(&s, &name, number, r.run_id.as_deref()).await?;
    s.tuning.report(&name, number, r.step, json_number(&r.value, "value")?).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShouldPrune {
    run_id: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/studies/{name}/trials/{number}/should_prune", tag = "tuning",
    params(("name" = String, Path), ("number" = u64, Path)),
    request_body(content = Option<String>, content_type = "application/json", description = "optional {run_id?}: the trial's run (404 if the trial is not that run's); an empty body asks without it"),
    responses((status = 200, description = "{prune: bool}: the study's pruner on the trial's latest step"), (status = 404, description = "no such study or trial, or the trial is not run_id's"), (status = 409, description = "the trial has ended")))]
pub(crate) async fn should_prune(
    State(s): State<AppState>,
    Path((name, number)): Path<(String, u64)>,
    b: Bytes,
) -> Result<Json<Value>, ApiError> {
    // Empty asks without the guard.
    let p: ShouldPrune = optional_body(&b)?;
    same_run(&s, &name, number, p.run_id.as_deref()).await?;
    Ok(Json(json!({ "prune": s.tuning.should_prune(&name, number).await? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Tell {
    state: Option<String>,
    value: Option<Value>,
    values: Option<Vec<Value>>,
    error: Option<String>,
    run_id: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/studies/{name}/trials/{number}/tell", tag = "tuning",
    params(("name" = String, Path), ("number" = u64, Path)),
    request_body(content = String, content_type = "application/json",
        description = "{state?: COMPLETE|PRUNED|FAIL (COMPLETE), value?: the objective, or values?: [one per objective] (COMPLETE without them takes each objective metric's latest value in the run), error?, run_id?: the trial's run (404 if the trial is not that run's)}"),
    responses((status = 200, description = "the ended trial"), (status = 409, description = "the trial has already ended")))]
pub(crate) async fn tell(
    State(s): State<AppState>,
    Path((name, number)): Path<(String, u64)>,
    b: Result<Json<Tell>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let t = body(b)?;
    same_run(&s, &name, number, t.run_id.as_deref()).await?;
    let state = TrialState::parse(t.state.as_deref().unwrap_or("COMPLETE"))
        .map_err(|e| ApiError::invalid(format!("state: {e}")))?;
    let value = t.value.as_ref().filter(|v| !v.is_null());
    let values: Vec<f64> = match (value, &t.values) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("values: give value or values, not both"));
        }
        (Some(v), None) => vec![json_number(v, "value")?],
        (None, Some(list)) if list.is_empty() => {
            return Err(ApiError::invalid("values: expected one value per objective"));
        }
        (None, Some(list)) => list
            .iter()
            .enumerate()
            .map(|(i, v)| json_number(v, &format!("values[{i}]")))
            .collect::<Result<_, _>>()?,
        (None, None) => Vec::new(),
    };
    Ok(Json(json!(s.tuning.tell(&name, number, state, &values, t.error).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Heartbeat {
    lease_ms: i64,
    run_id: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/studies/{name}/trials/{number}/heartbeat", tag = "tuning",
    params(("name" = String, Path), ("number" = u64, Path)),
    request_body(content = String, content_type = "application/json", description = "{lease_ms, run_id?}"),
    responses((status = 200, description = "{running: bool}: false once the trial has ended (e.g. its lease expired): stop it")))]
pub(crate) async fn heartbeat(
    State(s): State<AppState>,
    Path((name, number)): Path<(String, u64)>,
    b: Result<Json<Heartbeat>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let h = body(b)?;
    same_run(&s, &name, number, h.run_id.as_deref()).await?;
    Ok(Json(json!({ "running": s.tuning.heartbeat(&name, number, h.lease_ms).await? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Enqueue {
    params: BTreeMap<String, Value>,
}

#[utoipa::path(post, path = "/api/v1/studies/{name}/enqueue", tag = "tuning", params(("name" = String, Path)),
    request_body(content = String, content_type = "application/json", description = "{params: {name: value}}: a coming trial takes these values"),
    responses((status = 200, description = "{}"), (status = 404, description = "no such study")))]
pub(crate) async fn enqueue(
    State(s): State<AppState>,
    Path(name): Path<String>,
    b: Result<Json<Enqueue>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let e = body(b)?;
    s.tuning.enqueue(&name, e.params).await?;
    Ok(Json(json!({})))
}
