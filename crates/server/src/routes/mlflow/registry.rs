//! `/registered-models/…` and `/model-versions/…`: MLflow's model registry, so that
//! `mlflow.register_model`, `log_model(registered_model_name=…)`, `MlflowClient`'s alias, tag,
//! stage and search calls and `load_model("models:/name@alias")` work unmodified.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use registry::{ModelVersion, NewVersion, RegisteredModel, Search, Stage};
use serde_json::{Value, json};

use super::experiments::key_values;
use super::{Args, empty};
use crate::{ApiError, AppState};

type Body = Result<Json<Value>, JsonRejection>;
type Q = Query<Vec<(String, String)>>;

/// The arguments of a request that may carry them in its body (POST, PATCH, DELETE) or in its
/// query string (GET).
fn args(query: Vec<(String, String)>, body: Body) -> Result<Args, ApiError> {
    match body {
        Ok(_) => Args::from_body(body),
        Err(_) if !query.is_empty() => Ok(Args::from_query(query)),
        Err(JsonRejection::MissingJsonContentType(_)) => Ok(Args::from_query(Vec::new())),
        Err(_) => Args::from_body(body),
    }
}

fn version_arg(args: &Args) -> Result<i64, ApiError> {
    args.opt_i64("version")?
        .ok_or_else(|| ApiError::invalid("Missing value for required parameter 'version'."))
}

fn tag_list(tags: &[track::KeyValue]) -> Value {
    Value::Array(tags.iter().map(|t| json!({"key": t.key, "value": t.value})).collect())
}

pub(crate) fn version_view(v: &ModelVersion, with_aliases: bool) -> Value {
    let mut out = json!({
        "name": v.name,
        "version": v.version.to_string(),
        "creation_timestamp": v.creation_timestamp,
        "last_updated_timestamp": v.last_updated_timestamp,
        "current_stage": v.stage.as_str(),
        "description": v.description,
        "source": v.source,
        "run_id": v.run_id.clone().unwrap_or_default(),
        "status": "READY",
        "run_link": "",
    });
    if let Some(m) = &v.model_id {
        out["model_id"] = json!(m);
    }
    if !v.tags.is_empty() {
        out["tags"] = tag_list(&v.tags);
    }
    if with_aliases && !v.aliases.is_empty() {
        out["aliases"] = json!(v.aliases);
    }
    out
}

fn model_view(m: &RegisteredModel) -> Value {
    let mut out = json!({
        "name": m.name,
        "creation_timestamp": m.creation_timestamp,
        "last_updated_timestamp": m.last_updated_timestamp,
        "description": m.description,
    });
    if !m.latest_versions.is_empty() {
        out["latest_versions"] =
            Value::Array(m.latest_versions.iter().map(|v| version_view(v, false)).collect());
    }
    if !m.tags.is_empty() {
        out["tags"] = tag_list(&m.tags);
    }
    if !m.aliases.is_empty() {
        out["aliases"] = Value::Array(
            m.aliases.iter().map(|(a, v)| json!({"alias": a, "version": v.to_string()})).collect(),
        );
    }
    out
}

fn search_args(args: &Args) -> Result<Search, ApiError> {
    Ok(Search {
        filter: args.opt_str("filter")?.unwrap_or_default(),
        max_results: args.opt_i64("max_results")?,
        order_by: args.strings("order_by")?,
        page_token: args.opt_str("page_token")?,
    })
}

pub(crate) async fn create_model(
    State(s): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    let model = s
        .registry
        .create_model(
            &args.str("name")?,
            &args.opt_str("description")?.unwrap_or_default(),
            &key_values(&args, "tags")?,
        )
        .await?;
    Ok(Json(json!({ "registered_model": model_view(&model) })))
}

pub(crate) async fn get_model(
    State(s): State<AppState>,
    Query(q): Q,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = args(q, body)?;
    let model = s.registry.get_model(&args.str("name")?).await?;
    Ok(Json(json!({ "registered_model": model_view(&model) })))
}

pub(crate) async fn rename_model(
    State(s): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    let model = s.registry.rename_model(&args.str("name")?, &args.str("new_name")?).await?;
    Ok(Json(json!({ "registered_model": model_view(&model) })))
}

pub(crate) async fn update_model(
    State(s): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    let description = args.opt_str("description")?.unwrap_or_default();
    let model = s.registry.update_model(&args.str("name")?, &description).await?;
    Ok(Json(json!({ "registered_model": model_view(&model) })))
}

pub(crate) async fn delete_model(
    State(s): State<AppState>,
    Query(q): Q,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = args(q, body)?;
    s.registry.delete_model(&args.str("name")?).await?;
    Ok(empty())
}

pub(crate) async fn set_model_tag(
    State(s): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    let value = args.opt_str("value")?.unwrap_or_default();
    s.registry.set_model_tag(&args.str("name")?, &args.str("key")?, Some(&value)).await?;
    Ok(empty())
}

pub(crate) async fn delete_model_tag(
    State(s): State<AppState>,
    Query(q): Q,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = args(q, body)?;
    s.registry.set_model_tag(&args.str("name")?, &args.str("key")?, None).await?;
    Ok(empty())
}

pub(crate) async fn search_models(
    State(s): State<AppState>,
    Query(q): Q,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = args(q, body)?;
    let page = s.registry.search_models(&search_args(&args)?).await?;
    let mut out = json!({});
    if !page.items.is_empty() {
        out["registered_models"] = Value::Array(page.items.iter().map(model_view).collect());
    }
    if let Some(t) = page.next_page_token {
        out["next_page_token"] = json!(t);
    }
    Ok(Json(out))
}

pub(crate) async fn latest_versions(
    State(s): State<AppState>,
    Query(q): Q,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = args(q, body)?;
    let stages = args
        .strings("stages")?
        .iter()
        .map(|st| {
            Stage::parse(st)
                .ok_or_else(|| ApiError::invalid(format!("Invalid Model Version stage: {st}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let versions = s.registry.latest_versions(&args.str("name")?, &stages).await?;
    if versions.is_empty() {
        return Ok(empty());
    }
    let views: Vec<Value> = versions.iter().map(|v| version_view(v, false)).collect();
    Ok(Json(json!({ "model_versions": views })))
}

pub(crate) async fn set_alias(
    State(s): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    s.registry.set_alias(&args.str("name")?, &args.str("alias")?, version_arg(&args)?).await?;
    Ok(empty())
}

pub(crate) async fn get_alias(
    State(s): State<AppState>,
    Query(q): Q,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = args(q, body)?;
    let v = s.registry.version_by_alias(&args.str("name")?, &args.str("alias")?).await?;
    Ok(Json(json!({ "model_version": version_view(&v, true) })))
}

pub(crate) async fn delete_alias(
    State(s): State<AppState>,
    Query(q): Q,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = args(q, body)?;
    s.registry.delete_alias(&args.str("name")?, &args.str("alias")?).await?;
    Ok(empty())
}

pub(crate) async fn create_version(
    State(s): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    let v = s
        .registry
        .create_version(NewVersion {
            name: args.str("name")?,
            source: args.str("source")?,
            run_id: args.opt_str("run_id")?,
            model_id: args.opt_str("model_id")?,
            description: args.opt_str("description")?.unwrap_or_default(),
            tags: key_values(&args, "tags")?,
            // MLflow's create-version needs its model to exist.
            create_model: false,
        })
        .await?;
    Ok(Json(json!({ "model_version": version_view(&v, true) })))
}

pub(crate) async fn get_version(
    State(s): State<AppState>,
    Query(q): Q,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = args(q, body)?;
    let v = s.registry.get_version(&args.str("name")?, version_arg(&args)?).await?;
    Ok(Json(json!({ "model_version": version_view(&v, true) })))
}

pub(crate) async fn download_uri(
    State(s): State<AppState>,
    Query(q): Q,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = args(q, body)?;
    let v = s.registry.get_version(&args.str("name")?, version_arg(&args)?).await?;
    Ok(Json(json!({ "artifact_uri": v.download_uri() })))
}

pub(crate) async fn update_version(
    State(s): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    let description = args.opt_str("description")?.unwrap_or_default();
    let v =
        s.registry.update_version(&args.str("name")?, version_arg(&args)?, &description).await?;
    Ok(Json(json!({ "model_version": version_view(&v, true) })))
}

pub(crate) async fn transition_stage(
    State(s): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    let stage = args.str("stage")?;
    let stage = Stage::parse(&stage)
        .ok_or_else(|| ApiError::invalid(format!("Invalid Model Version stage: {stage}")))?;
    let archive = match args.get("archive_existing_versions") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    let v = s
        .registry
        .transition_stage(&args.str("name")?, version_arg(&args)?, stage, archive)
        .await?;
    Ok(Json(json!({ "model_version": version_view(&v, true) })))
}

pub(crate) async fn set_version_tag(
    State(s): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = Args::from_body(body)?;
    let value = args.opt_str("value")?.unwrap_or_default();
    s.registry
        .set_version_tag(&args.str("name")?, version_arg(&args)?, &args.str("key")?, Some(&value))
        .await?;
    Ok(empty())
}

pub(crate) async fn delete_version_tag(
    State(s): State<AppState>,
    Query(q): Q,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = args(q, body)?;
    s.registry
        .set_version_tag(&args.str("name")?, version_arg(&args)?, &args.str("key")?, None)
        .await?;
    Ok(empty())
}

pub(crate) async fn delete_version(
    State(s): State<AppState>,
    Query(q): Q,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = args(q, body)?;
    s.registry.delete_version(&args.str("name")?, version_arg(&args)?).await?;
    Ok(empty())
}

pub(crate) async fn search_versions(
    State(s): State<AppState>,
    Query(q): Q,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let args = args(q, body)?;
    let page = s.registry.search_versions(&search_args(&args)?).await?;
    let mut out = json!({});
    if !page.items.is_empty() {
        out["model_versions"] =
            Value::Array(page.items.iter().map(|v| version_view(v, true)).collect());
    }
    if let Some(t) = page.next_page_token {
        out["next_page_token"] = json!(t);
    }
    Ok(Json(out))
}

impl From<registry::Error> for ApiError {
    fn from(e: registry::Error) -> ApiError {
        match e {
            registry::Error::Core(core) => core.into(),
            registry::Error::Track(t) => t.into(),
            other => ApiError::new(other.code(), other.to_string()),
        }
    }
}
