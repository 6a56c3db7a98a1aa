//! `/api/v1/datasets`: datasets, their versions, items, diffs and file contents, for the CLI's
//! remote users, the Python client and the web UI.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use slipway_data::{Dataset, Item, Version, VersionRef};
use utoipa::{IntoParams, ToSchema};

use super::mlflow::content_type;
use crate::{ApiError, AppState};

impl From<slipway_data::Error> for ApiError {
    fn from(e: slipway_data::Error) -> ApiError {
        match e {
            slipway_data::Error::Core(core) => core.into(),
            other => ApiError::new(other.code(), other.to_string()),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DatasetView {
    name: String,
    description: String,
    created_at: i64,
    /// The newest version's number; absent before the first.
    latest: Option<i64>,
}

impl From<Dataset> for DatasetView {
    fn from(d: Dataset) -> DatasetView {
        DatasetView {
            name: d.name,
            description: d.description,
            created_at: d.created_at,
            latest: d.latest,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct VersionView {
    dataset: String,
    version: i64,
    /// `files` or `table`.
    kind: String,
    /// BLAKE3 digest of the manifest (the version's content).
    manifest: String,
    parent: Option<i64>,
    message: String,
    author: String,
    source: String,
    items: i64,
    bytes: i64,
    created_at: i64,
    /// The version this one was sampled or split from (`name@N`).
    derived_from: Option<String>,
}

impl From<Version> for VersionView {
    fn from(v: Version) -> VersionView {
        VersionView {
            dataset: v.dataset,
            version: v.version,
            kind: v.kind.as_str().into(),
            manifest: v.manifest,
            parent: v.parent,
            message: v.message,
            author: v.author,
            source: v.source,
            items: v.items,
            bytes: v.bytes,
            created_at: v.created_at,
            derived_from: v.derived_from,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ItemView {
    path: String,
    size: u64,
    /// BLAKE3 digest of the content.
    hash: String,
    meta: std::collections::BTreeMap<String, String>,
}

impl From<Item> for ItemView {
    fn from(i: Item) -> ItemView {
        ItemView { path: i.path, size: i.size, hash: i.hash, meta: i.meta }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DatasetList {
    datasets: Vec<DatasetView>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DatasetLog {
    dataset: DatasetView,
    /// Newest first.
    versions: Vec<VersionView>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct VersionItems {
    version: VersionView,
    /// Items matching `prefix`, in path order, from `offset`.
    items: Vec<ItemView>,
    /// How many items match `prefix` in all.
    total: usize,
}

#[derive(Deserialize, IntoParams)]
pub(crate) struct ItemQuery {
    /// Only items whose path starts with this.
    prefix: Option<String>,
    /// Skip this many matching items [default 0].
    offset: Option<usize>,
    /// At most this many items (1-10000) [default 1000].
    limit: Option<usize>,
}

#[derive(Deserialize, IntoParams)]
pub(crate) struct DiffQuery {
    /// Version number or `latest`.
    from: String,
    /// Version number or `latest`.
    to: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ChangedItem {
    before: ItemView,
    after: ItemView,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DiffView {
    from: VersionView,
    to: VersionView,
    added: Vec<ItemView>,
    removed: Vec<ItemView>,
    changed: Vec<ChangedItem>,
    unchanged: usize,
}

fn version_ref(name: &str, version: &str) -> Result<VersionRef, ApiError> {
    Ok(VersionRef::parse(&format!("{name}@{version}"))?)
}

/// Every dataset, by name.
#[utoipa::path(get, path = "/api/v1/datasets", tag = "data",
    responses((status = 200, body = DatasetList)))]
pub(crate) async fn list_datasets(
    State(s): State<AppState>,
) -> Result<Json<DatasetList>, ApiError> {
    let datasets = s.data.datasets().await?;
    Ok(Json(DatasetList { datasets: datasets.into_iter().map(DatasetView::from).collect() }))
}

/// A dataset and its versions, newest first.
#[utoipa::path(get, path = "/api/v1/datasets/{name}", tag = "data",
    params(("name" = String, Path)), responses((status = 200, body = DatasetLog)))]
pub(crate) async fn get_dataset(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<DatasetLog>, ApiError> {
    let dataset = s.data.dataset(&name).await?;
    let versions = s.data.log(&name).await?;
    Ok(Json(DatasetLog {
        dataset: dataset.into(),
        versions: versions.into_iter().map(VersionView::from).collect(),
    }))
}

/// A version and a page of its items.
#[utoipa::path(get, path = "/api/v1/datasets/{name}/versions/{version}", tag = "data",
    params(("name" = String, Path), ("version" = String, Path, description = "number or latest"), ItemQuery),
    responses((status = 200, body = VersionItems)))]
pub(crate) async fn get_version(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    query: Result<Query<ItemQuery>, QueryRejection>,
) -> Result<Json<VersionItems>, ApiError> {
    let q = query?.0;
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 10000"));
    }
    let v = s.data.resolve(&version_ref(&name, &version)?).await?;
    let manifest = s.data.manifest(&v).await?;
    let prefix = q.prefix.unwrap_or_default();
    let matching: Vec<Item> =
        manifest.items.into_iter().filter(|i| i.path.starts_with(&prefix)).collect();
    let total = matching.len();
    let items =
        matching.into_iter().skip(q.offset.unwrap_or(0)).take(limit).map(ItemView::from).collect();
    Ok(Json(VersionItems { version: v.into(), items, total }))
}

/// Items added, removed and changed from one version to another.
#[utoipa::path(get, path = "/api/v1/datasets/{name}/diff", tag = "data",
    params(("name" = String, Path), DiffQuery), responses((status = 200, body = DiffView)))]
pub(crate) async fn diff(
    State(s): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<DiffQuery>, QueryRejection>,
) -> Result<Json<DiffView>, ApiError> {
    let q = query?.0;
    let a = s.data.resolve(&version_ref(&name, &q.from)?).await?;
    let b = s.data.resolve(&version_ref(&name, &q.to)?).await?;
    let d = s.data.diff(&a, &b).await?;
    Ok(Json(DiffView {
        from: a.into(),
        to: b.into(),
        added: d.added.into_iter().map(ItemView::from).collect(),
        removed: d.removed.into_iter().map(ItemView::from).collect(),
        changed: d
            .changed
            .into_iter()
            .map(|(before, after)| ChangedItem { before: before.into(), after: after.into() })
            .collect(),
        unchanged: d.unchanged,
    }))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct VersionRuns {
    version: VersionView,
    /// Active runs that read this version, newest first (at most 1000).
    runs: Vec<super::tracking::RunView>,
}

/// The runs that read a version (its lineage forward): runs whose dataset input carries the
/// dataset's name and the version's digest (`slipway run --input`, or an MLflow `log_input` of
/// `DatasetVersion.mlflow_dataset()`). Identical content in two versions of one dataset is one
/// digest, so both list the runs.
#[utoipa::path(get, path = "/api/v1/datasets/{name}/versions/{version}/runs", tag = "data",
    params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = VersionRuns)))]
pub(crate) async fn version_runs(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<VersionRuns>, ApiError> {
    let v = s.data.resolve(&version_ref(&name, &version)?).await?;
    let runs = s.tracking.runs_with_input(&v.dataset, &v.manifest, 1000).await?;
    Ok(Json(VersionRuns { version: v.into(), runs: runs.iter().map(Into::into).collect() }))
}

/// One item's content, verified against its hash as it streams.
#[utoipa::path(get, path = "/api/v1/datasets/{name}/versions/{version}/files/{path}", tag = "data",
    params(("name" = String, Path), ("version" = String, Path), ("path" = String, Path)),
    responses((status = 200, description = "the file's bytes")))]
pub(crate) async fn get_file(
    State(s): State<AppState>,
    Path((name, version, path)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let v = s.data.resolve(&version_ref(&name, &version)?).await?;
    let manifest = s.data.manifest(&v).await?;
    let Ok(i) = manifest.items.binary_search_by(|item| item.path.as_str().cmp(path.as_str()))
    else {
        return Err(slipway_data::Error::VersionNotFound {
            name: v.label(),
            version: format!("item '{path}'"),
        }
        .into());
    };
    let item = &manifest.items[i];
    let digest: slipway_core::Digest = item.hash.parse().map_err(ApiError::from)?;
    let reader = s.blobs.get(&digest).await?;
    let name = item.path.rsplit('/').next().unwrap_or(&item.path).to_string();
    let mut response = Body::from_stream(reader.map_err(std::io::Error::other)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&name)));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(item.size));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", item.hash)) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(response)
}
