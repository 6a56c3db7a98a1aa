//! `/experiments/…`

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use serde_json::{Value, json};
use track::{ExperimentSearch, KeyValue, ViewType};

use super::{Args, empty, page, views};
use crate::{ApiError, AppState};

type Body = Result<Json<Value>, JsonRejection>;

pub(crate) fn key_values(args: &Args, name: &str) -> Result<Vec<KeyValue>, ApiError> {
    args.opt_list(name)?
        .into_iter()
        .map(|v| {
            let key = v.get("key").and_then(Value::as_str).unwrap_or_default().to_string();
            let value = match v.get("value") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            if key.is_empty() {
                return Err(ApiError::invalid(format!(
                    "Missing value for required parameter 'key' in '{name}'."
                )));
            }
            Ok(KeyValue { key, value })
        })
        .collect()
}

pub(crate) async fn create(State(s): State<AppState>, body: Body) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    let name = args.str("name")?;
    let location = args.opt_str("artifact_location")?;
    let tags = key_values(&args, "tags")?;
    let id = s.tracking.create_experiment(&name, location.as_deref(), &tags).await?;
    Ok(Json(json!({ "experiment_id": id })))
}

pub(crate) async fn get(
    State(s): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let args = Args::from_query(q);
    let e = s.tracking.get_experiment(&args.str("experiment_id")?).await?;
    Ok(Json(json!({ "experiment": views::experiment(&e) })))
}

pub(crate) async fn get_by_name(
    State(s): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let args = Args::from_query(q);
    let e = s.tracking.get_experiment_by_name(&args.str("experiment_name")?).await?;
    Ok(views::wrapped("experiment", views::experiment(&e)))
}

async fn search(s: AppState, args: Args) -> Result<Response, ApiError> {
    let view = match args.opt_str("view_type")? {
        None => ViewType::ActiveOnly,
        Some(v) => ViewType::parse(&v)
            .ok_or_else(|| ApiError::invalid(format!("Invalid view_type '{v}'")))?,
    };
    let search = ExperimentSearch {
        view,
        max_results: args.opt_i64("max_results")?,
        page_token: args.opt_str("page_token")?,
        filter: args.opt_str("filter")?.unwrap_or_default(),
        order_by: args.strings("order_by")?,
    };
    let found = s.tracking.search_experiments(&search).await?;
    Ok(page("experiments", &found, views::experiment))
}

pub(crate) async fn search_get(
    State(s): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    search(s, Args::from_query(q)).await
}

pub(crate) async fn search_post(
    State(s): State<AppState>,
    body: Body,
) -> Result<Response, ApiError> {
    search(s, Args::from_body(body)?).await
}

pub(crate) async fn update(State(s): State<AppState>, body: Body) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    s.tracking.rename_experiment(&args.str("experiment_id")?, &args.str("new_name")?).await?;
    Ok(empty())
}

pub(crate) async fn delete(State(s): State<AppState>, body: Body) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    s.tracking.delete_experiment(&args.str("experiment_id")?).await?;
    Ok(empty())
}

pub(crate) async fn restore(
    State(s): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    s.tracking.restore_experiment(&args.str("experiment_id")?).await?;
    Ok(empty())
}

pub(crate) async fn set_tag(
    State(s): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    let value = args.opt_str("value")?.unwrap_or_default();
    s.tracking.set_experiment_tag(&args.str("experiment_id")?, &args.str("key")?, &value).await?;
    Ok(empty())
}

pub(crate) async fn delete_tag(
    State(s): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    s.tracking.delete_experiment_tag(&args.str("experiment_id")?, &args.str("key")?).await?;
    Ok(empty())
}
