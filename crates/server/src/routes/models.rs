//! `/api/v1/models`: the registry in Slipway's own, flat JSON (what the CLI, the Python client
//! and the web UI read). MLflow's registry wire shapes live in `routes/mlflow/registry`.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use registry::{Lineage, ModelFormat, ModelVersion, NewVersion, RegisteredModel, Search};
use serde::{Deserialize, Serialize};
use slipway_core::ErrorCode;
use track::KeyValue;
use utoipa::{IntoParams, ToSchema};

use crate::{ApiError, AppState};

/// A registered model.
#[derive(Serialize, ToSchema)]
pub(crate) struct ModelView {
    name: String,
    description: String,
    created_ms: i64,
    updated_ms: i64,
    tags: BTreeMap<String, String>,
    /// Alias → version number.
    aliases: BTreeMap<String, i64>,
    /// The highest version number, if any version exists.
    latest_version: Option<i64>,
}

impl From<&RegisteredModel> for ModelView {
    fn from(m: &RegisteredModel) -> ModelView {
        ModelView {
            name: m.name.clone(),
            description: m.description.clone(),
            created_ms: m.creation_timestamp,
            updated_ms: m.last_updated_timestamp,
            tags: tags(&m.tags),
            aliases: m.aliases.iter().cloned().collect(),
            latest_version: m.latest_versions.iter().map(|v| v.version).max(),
        }
    }
}

/// One version of a registered model.
#[derive(Serialize, ToSchema)]
pub(crate) struct VersionView {
    name: String,
    version: i64,
    created_ms: i64,
    updated_ms: i64,
    description: String,
    /// What the client registered, as it said it.
    source: String,
    run_id: Option<String>,
    model_id: Option<String>,
    /// MLflow's deprecated stage (`None`, `Staging`, `Production`, `Archived`).
    stage: String,
    aliases: Vec<String>,
    tags: BTreeMap<String, String>,
    /// The artifact path the source resolved to.
    storage: String,
    /// MLflow flavours named by the version's `MLmodel`.
    flavors: Vec<String>,
    /// `onnx` (servable) or `other`.
    format: String,
    onnx_path: Option<String>,
    /// BLAKE3 digest of the ONNX file.
    digest: Option<String>,
    servable: bool,
    /// Inputs and outputs read from the ONNX graph at registration.
    #[schema(value_type = Option<Object>)]
    signature: Option<registry::Signature>,
}

impl From<&ModelVersion> for VersionView {
    fn from(v: &ModelVersion) -> VersionView {
        let (format, onnx_path, digest) = match &v.format {
            ModelFormat::Onnx { path, digest } => {
                ("onnx", Some(path.clone()), Some(digest.clone()))
            }
            ModelFormat::Other => ("other", None, None),
        };
        VersionView {
            name: v.name.clone(),
            version: v.version,
            created_ms: v.creation_timestamp,
            updated_ms: v.last_updated_timestamp,
            description: v.description.clone(),
            source: v.source.clone(),
            run_id: v.run_id.clone(),
            model_id: v.model_id.clone(),
            stage: v.stage.as_str().into(),
            aliases: v.aliases.clone(),
            tags: tags(&v.tags),
            storage: v.storage.clone(),
            flavors: v.flavors.clone(),
            format: format.into(),
            servable: onnx_path.is_some(),
            onnx_path,
            digest,
            signature: v.signature.clone(),
        }
    }
}

fn tags(t: &[KeyValue]) -> BTreeMap<String, String> {
    t.iter().map(|t| (t.key.clone(), t.value.clone())).collect()
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ModelList {
    models: Vec<ModelView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

#[derive(Deserialize, IntoParams)]
pub(crate) struct ModelQuery {
    /// MLflow's registry filter, e.g. `name LIKE 'fall%'` or `tags.team = 'vision'`.
    filter: Option<String>,
    max_results: Option<i64>,
    page_token: Option<String>,
    /// `name`, `creation_timestamp` or `last_updated_timestamp`, optionally `ASC`/`DESC`;
    /// comma-separated.
    order_by: Option<String>,
}

/// Registered models, by name unless ordered otherwise.
#[utoipa::path(get, path = "/api/v1/models", tag = "models", params(ModelQuery),
    responses((status = 200, body = ModelList)))]
pub(crate) async fn list_models(
    State(s): State<AppState>,
    query: Result<Query<ModelQuery>, QueryRejection>,
) -> Result<Json<ModelList>, ApiError> {
    let q = query?.0;
    let search = Search {
        filter: q.filter.unwrap_or_default(),
        max_results: q.max_results,
        order_by: q
            .order_by
            .map(|o| o.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect())
            .unwrap_or_default(),
        page_token: q.page_token.filter(|t| !t.is_empty()),
    };
    let page = s.registry.search_models(&search).await?;
    Ok(Json(ModelList {
        models: page.items.iter().map(ModelView::from).collect(),
        next_page_token: page.next_page_token,
    }))
}

/// A model and its versions.
#[derive(Serialize, ToSchema)]
pub(crate) struct ModelDetail {
    model: ModelView,
    /// Newest first.
    versions: Vec<VersionView>,
}

/// A registered model with every version, newest first.
#[utoipa::path(get, path = "/api/v1/models/{name}", tag = "models",
    params(("name" = String, Path)), responses((status = 200, body = ModelDetail)))]
pub(crate) async fn get_model(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ModelDetail>, ApiError> {
    let model = s.registry.get_model(&name).await?;
    let versions = s.registry.versions(&name).await?;
    Ok(Json(ModelDetail {
        model: ModelView::from(&model),
        versions: versions.iter().map(VersionView::from).collect(),
    }))
}

/// Deletes a model with its versions and aliases (endpoints serving it stop answering).
#[utoipa::path(delete, path = "/api/v1/models/{name}", tag = "models",
    params(("name" = String, Path)), responses((status = 200, description = "deleted")))]
pub(crate) async fn delete_model(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.registry.delete_model(&name).await?;
    Ok(Json(serde_json::json!({})))
}

/// A version to register from stored artifacts.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterVersion {
    /// `runs:/<run_id>/<path>`, `models:/<model_id>` or `mlflow-artifacts:/<path>`.
    source: String,
    run_id: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize, IntoParams)]
pub(crate) struct UploadQuery {
    /// The uploaded file's name (default `model.onnx`).
    file_name: Option<String>,
    /// The run that trained it.
    run_id: Option<String>,
    description: Option<String>,
}

/// Registers a new version, creating the model if it is new. The body is JSON naming stored
/// artifacts (`{"source": "runs:/…/model"}`), or the ONNX file itself with
/// `Content-Type: application/octet-stream`.
#[utoipa::path(post, path = "/api/v1/models/{name}/versions", tag = "models",
    params(("name" = String, Path), UploadQuery), request_body = RegisterVersion,
    responses((status = 200, body = VersionView)))]
pub(crate) async fn register_version(
    State(s): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<VersionView>, ApiError> {
    let q = query?.0;
    let body = body.map_err(|e| {
        let code = if e.status().as_u16() == 413 {
            ErrorCode::PayloadTooLarge
        } else {
            ErrorCode::BadRequest
        };
        ApiError::new(code, format!("{} (uploads are limited to 256 MiB)", e.body_text()))
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let upload = content_type.starts_with("application/octet-stream");
    if !upload && !content_type.starts_with("application/json") {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "send JSON ({\"source\": ...}) or the ONNX file as application/octet-stream",
        ));
    }
    let mut new = NewVersion { name: name.clone(), ..NewVersion::default() };
    if upload {
        new.run_id = q.run_id.filter(|r| !r.is_empty());
        new.description = q.description.unwrap_or_default();
    } else {
        let req: RegisterVersion = serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("invalid version JSON: {e}")))?;
        new.source = req.source;
        new.run_id = req.run_id.filter(|r| !r.is_empty());
        new.description = req.description;
        new.tags = req.tags.into_iter().map(|(key, value)| KeyValue { key, value }).collect();
    }
    // A new name's model is made with its first version, so a refused one leaves none behind.
    new.create_model = true;
    let version = if upload {
        let file_name = q.file_name.unwrap_or_else(|| "model.onnx".into());
        s.registry.upload_version(new, &file_name, body).await?
    } else {
        s.registry.create_version(new).await?
    };
    Ok(Json(VersionView::from(&version)))
}

/// A version by number, `latest` or alias.
#[utoipa::path(get, path = "/api/v1/models/{name}/versions/{reference}", tag = "models",
    params(("name" = String, Path), ("reference" = String, Path, description = "number, latest or an alias")),
    responses((status = 200, body = VersionView)))]
pub(crate) async fn get_model_version(
    State(s): State<AppState>,
    Path((name, reference)): Path<(String, String)>,
) -> Result<Json<VersionView>, ApiError> {
    let v = s.registry.resolve(&name, &reference).await?;
    Ok(Json(VersionView::from(&v)))
}

/// Deletes a version and the aliases pointing at it; its number is not reused.
#[utoipa::path(delete, path = "/api/v1/models/{name}/versions/{reference}", tag = "models",
    params(("name" = String, Path), ("reference" = String, Path)),
    responses((status = 200, description = "deleted")))]
pub(crate) async fn delete_model_version(
    State(s): State<AppState>,
    Path((name, reference)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let v = s.registry.resolve(&name, &reference).await?;
    s.registry.delete_version(&name, v.version).await?;
    Ok(Json(serde_json::json!({})))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RunLink {
    run_id: String,
    name: String,
    experiment_id: String,
    status: String,
    user_id: String,
    start_time: i64,
    end_time: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DatasetLink {
    name: String,
    digest: String,
    source_type: String,
    context: Option<String>,
    /// The Slipway dataset version, when the run's input names one.
    version: Option<i64>,
}

/// Where a version came from: its training run and the dataset versions that run read.
#[derive(Serialize, ToSchema)]
pub(crate) struct LineageView {
    version: VersionView,
    run: Option<RunLink>,
    datasets: Vec<DatasetLink>,
}

impl From<&Lineage> for LineageView {
    fn from(l: &Lineage) -> LineageView {
        LineageView {
            version: VersionView::from(&l.version),
            run: l.run.as_ref().map(|r| RunLink {
                run_id: r.run_id.clone(),
                name: r.run_name.clone(),
                experiment_id: r.experiment_id.clone(),
                status: r.status.as_str().into(),
                user_id: r.user_id.clone(),
                start_time: r.start_time,
                end_time: r.end_time,
            }),
            datasets: l
                .datasets
                .iter()
                .map(|d| {
                    // `version` is `NAME@N` when the input names a Slipway dataset version.
                    let linked = d.version.as_deref().and_then(|v| v.rsplit_once('@'));
                    DatasetLink {
                        name: linked.map_or_else(|| d.name.clone(), |(n, _)| n.to_string()),
                        digest: d.digest.clone(),
                        source_type: d.source_type.clone(),
                        context: d.context.clone(),
                        version: linked.and_then(|(_, n)| n.parse().ok()),
                    }
                })
                .collect(),
        }
    }
}

/// The version's lineage: model version ← training run ← dataset versions.
#[utoipa::path(get, path = "/api/v1/models/{name}/versions/{reference}/lineage", tag = "models",
    params(("name" = String, Path), ("reference" = String, Path)),
    responses((status = 200, body = LineageView)))]
pub(crate) async fn version_lineage(
    State(s): State<AppState>,
    Path((name, reference)): Path<(String, String)>,
) -> Result<Json<LineageView>, ApiError> {
    let v = s.registry.resolve(&name, &reference).await?;
    let lineage = s.registry.lineage(v).await?;
    Ok(Json(LineageView::from(&lineage)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AliasTarget {
    version: i64,
}

/// Points an alias at a version, moving it atomically if it pointed elsewhere; endpoints
/// serving the alias switch within a second, without dropping requests.
#[utoipa::path(put, path = "/api/v1/models/{name}/aliases/{alias}", tag = "models",
    params(("name" = String, Path), ("alias" = String, Path)), request_body = AliasTarget,
    responses((status = 200, body = VersionView)))]
pub(crate) async fn set_alias(
    State(s): State<AppState>,
    Path((name, alias)): Path<(String, String)>,
    body: Result<Json<AliasTarget>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<VersionView>, ApiError> {
    let Json(target) = body?;
    s.registry.set_alias(&name, &alias, target.version).await?;
    let v = s.registry.get_version(&name, target.version).await?;
    Ok(Json(VersionView::from(&v)))
}

/// Removes an alias.
#[utoipa::path(delete, path = "/api/v1/models/{name}/aliases/{alias}", tag = "models",
    params(("name" = String, Path), ("alias" = String, Path)),
    responses((status = 200, description = "deleted")))]
pub(crate) async fn delete_alias(
    State(s): State<AppState>,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.registry.version_by_alias(&name, &alias).await?;
    s.registry.delete_alias(&name, &alias).await?;
    Ok(Json(serde_json::json!({})))
}
