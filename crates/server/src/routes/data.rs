//! `/api/v1/datasets`: datasets, their versions, items, diffs and file contents, for the CLI's
//! remote users, the Python client and the web UI.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use slipway_data::derive::{Derivation, SampleSize};
use slipway_data::profile::Summary;
use slipway_data::table::{Column, TableDiff, TableInfo};
use slipway_data::{Commit, Dataset, Item, Kind, NewVersion, Version, VersionRef};
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
    /// Whether `/profile` has column summaries (tables, and folders with item metadata).
    has_profile: bool,
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
            has_profile: v.profile.is_some(),
            derived_from: v.derived_from,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ColumnView {
    name: String,
    /// integer, float, boolean, string, date, timestamp or other.
    dtype: String,
    /// The Arrow type.
    arrow: String,
    nullable: bool,
}

impl From<Column> for ColumnView {
    fn from(c: Column) -> ColumnView {
        ColumnView {
            name: c.name,
            dtype: c.dtype.as_str().into(),
            arrow: c.arrow,
            nullable: c.nullable,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TableView {
    /// csv or parquet.
    format: String,
    rows: u64,
    columns: Vec<ColumnView>,
}

impl From<TableInfo> for TableView {
    fn from(t: TableInfo) -> TableView {
        TableView {
            format: t.format.as_str().into(),
            rows: t.rows,
            columns: t.columns.into_iter().map(ColumnView::from).collect(),
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
    /// For tables: format, row count and schema.
    table: Option<TableView>,
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
    /// For two tables: schema and row changes.
    table: Option<TableDiffView>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ChangedColumn {
    before: ColumnView,
    after: ColumnView,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TableDiffView {
    columns_added: Vec<ColumnView>,
    columns_removed: Vec<ColumnView>,
    /// Columns whose type changed.
    columns_changed: Vec<ChangedColumn>,
    /// The columns rows are compared on (those both versions have).
    compared_on: Vec<String>,
    rows_before: u64,
    rows_after: u64,
    /// Rows, as multisets, only in the newer version; a changed row is one removed and one added.
    rows_added: u64,
    rows_removed: u64,
    rows_unchanged: u64,
    /// Up to 10 of each, cells in `compared_on` order (null for a null cell).
    added_examples: Vec<Vec<Option<String>>>,
    removed_examples: Vec<Vec<Option<String>>>,
}

impl From<TableDiff> for TableDiffView {
    fn from(t: TableDiff) -> TableDiffView {
        TableDiffView {
            columns_added: t.columns_added.into_iter().map(Into::into).collect(),
            columns_removed: t.columns_removed.into_iter().map(Into::into).collect(),
            columns_changed: t
                .columns_changed
                .into_iter()
                .map(|(b, a)| ChangedColumn { before: b.into(), after: a.into() })
                .collect(),
            compared_on: t.compared_on,
            rows_before: t.rows_before,
            rows_after: t.rows_after,
            rows_added: t.rows_added,
            rows_removed: t.rows_removed,
            rows_unchanged: t.rows_unchanged,
            added_examples: t.added_examples,
            removed_examples: t.removed_examples,
        }
    }
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
        manifest.items.iter().filter(|i| i.path.starts_with(&prefix)).cloned().collect();
    let total = matching.len();
    let items =
        matching.into_iter().skip(q.offset.unwrap_or(0)).take(limit).map(ItemView::from).collect();
    Ok(Json(VersionItems {
        version: v.into(),
        items,
        total,
        table: manifest.table.map(Into::into),
    }))
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
        table: d.table.map(Into::into),
    }))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Bin {
    lo: f64,
    hi: f64,
    count: u64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Quantile {
    q: f64,
    value: f64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TopValue {
    value: String,
    count: u64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ColumnSummaryView {
    name: String,
    dtype: String,
    /// Non-null values (NaN and infinities included).
    count: u64,
    nulls: u64,
    distinct: u64,
    /// False when `distinct` is a HyperLogLog estimate (~1.6 % error).
    distinct_exact: bool,
    nan: u64,
    infinite: u64,
    min: Option<f64>,
    max: Option<f64>,
    mean: Option<f64>,
    /// Sample standard deviation (n − 1).
    std: Option<f64>,
    /// Within 1 % relative error (DDSketch); q = 0 and 1 are exact.
    quantiles: Vec<Quantile>,
    /// Equal-width bins from min to max.
    histogram: Vec<Bin>,
    /// Most frequent values; counts may be low by `top_error`.
    top: Vec<TopValue>,
    top_error: u64,
}

impl From<Summary> for ColumnSummaryView {
    fn from(c: Summary) -> ColumnSummaryView {
        ColumnSummaryView {
            name: c.name,
            dtype: c.dtype.as_str().into(),
            count: c.count,
            nulls: c.nulls,
            distinct: c.distinct,
            distinct_exact: c.distinct_exact,
            nan: c.nan,
            infinite: c.infinite,
            min: c.min,
            max: c.max,
            mean: c.mean,
            std: c.std,
            quantiles: c.quantiles.into_iter().map(|(q, value)| Quantile { q, value }).collect(),
            histogram: c
                .histogram
                .into_iter()
                .map(|(lo, hi, count)| Bin { lo, hi, count })
                .collect(),
            top: c.top.into_iter().map(|(value, count)| TopValue { value, count }).collect(),
            top_error: c.top_error,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ProfileView {
    version: VersionView,
    rows: u64,
    columns: Vec<ColumnSummaryView>,
}

#[derive(Deserialize, IntoParams)]
pub(crate) struct ProfileQuery {
    /// Histogram bins (1-200) [default 20].
    bins: Option<usize>,
    /// Top values per column (0-100) [default 10].
    top: Option<usize>,
    /// `true`: the stored, mergeable profile itself (sketches, exact sums) instead of figures.
    raw: Option<bool>,
}

/// A version's profile: per column type, counts, nulls, distinct values, moments, quantiles,
/// a histogram and top values (tables: their columns; folders: their item metadata).
#[utoipa::path(get, path = "/api/v1/datasets/{name}/versions/{version}/profile", tag = "data",
    params(("name" = String, Path), ("version" = String, Path), ProfileQuery),
    responses((status = 200, body = ProfileView), (status = 404, description = "no profile")))]
pub(crate) async fn get_profile(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    query: Result<Query<ProfileQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query?.0;
    let bins = q.bins.unwrap_or(20);
    let top = q.top.unwrap_or(10);
    if !(1..=200).contains(&bins) || top > 100 {
        return Err(ApiError::invalid("bins must be between 1 and 200, top at most 100"));
    }
    let v = s.data.resolve(&version_ref(&name, &version)?).await?;
    let Some(profile) = s.data.profile(&v).await? else {
        return Err(slipway_data::Error::VersionNotFound {
            name: v.label(),
            version: "profile (a folder without item metadata has none)".into(),
        }
        .into());
    };
    if q.raw == Some(true) {
        let mut response = profile.encode().into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(response);
    }
    Ok(Json(ProfileView {
        version: v.into(),
        rows: profile.rows,
        columns: profile.columns.iter().map(|c| c.summary(bins, top).into()).collect(),
    })
    .into_response())
}

#[derive(Deserialize, IntoParams)]
pub(crate) struct RowsQuery {
    /// Skip this many rows [default 0].
    offset: Option<u64>,
    /// At most this many rows (1-1000) [default 50].
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RowsView {
    version: VersionView,
    columns: Vec<String>,
    /// Cells in Arrow's text form; null for a null cell.
    rows: Vec<Vec<Option<String>>>,
    offset: u64,
    total: u64,
}

/// A page of a table version's rows.
#[utoipa::path(get, path = "/api/v1/datasets/{name}/versions/{version}/rows", tag = "data",
    params(("name" = String, Path), ("version" = String, Path), RowsQuery),
    responses((status = 200, body = RowsView)))]
pub(crate) async fn get_rows(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    query: Result<Query<RowsQuery>, QueryRejection>,
) -> Result<Json<RowsView>, ApiError> {
    let q = query?.0;
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 1000"));
    }
    let offset = q.offset.unwrap_or(0);
    let v = s.data.resolve(&version_ref(&name, &version)?).await?;
    let page = s.data.table_rows(&v, offset, limit).await?;
    Ok(Json(RowsView {
        version: v.into(),
        columns: page.columns,
        rows: page.rows,
        offset,
        total: page.total,
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
    let source = format!("slipway://{}", v.label());
    let runs = s.tracking.runs_with_input(&v.dataset, &v.manifest, &source, 1000).await?;
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

#[derive(Deserialize, ToSchema)]
pub(crate) struct NewItem {
    /// Relative path with `/` separators.
    path: String,
    size: u64,
    /// BLAKE3 digest of the content, already in the blob store (`POST /api/v1/blobs`).
    hash: String,
    #[serde(default)]
    meta: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct NewVersionRequest {
    /// `files` (default) or `table`.
    kind: Option<String>,
    #[serde(default)]
    message: String,
    /// Describes the dataset (kept until changed).
    description: Option<String>,
    /// Where the content came from (shown as the version's source).
    #[serde(default)]
    source: String,
    items: Vec<NewItem>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CommitView {
    version: VersionView,
    /// False when the content equals the latest version's: no new version was made.
    created: bool,
}

impl From<Commit> for CommitView {
    fn from(c: Commit) -> CommitView {
        CommitView { version: c.version.into(), created: c.created }
    }
}

fn author_of(headers: &axum::http::HeaderMap) -> String {
    headers
        .get("x-slipway-user")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .unwrap_or("api")
        .to_string()
}

/// Makes the next version of a dataset (created if new) from items whose content is already in
/// the blob store. A table's files are read for its schema, rows and profile. Nothing is made
/// unless every item's content is stored (400 otherwise); the same content as the latest
/// version makes no new one (200 with `created: false`).
#[utoipa::path(post, path = "/api/v1/datasets/{name}/versions", tag = "data",
    params(("name" = String, Path)), request_body = NewVersionRequest,
    responses((status = 201, body = CommitView), (status = 200, body = CommitView)))]
pub(crate) async fn create_version(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    body: Result<Json<NewVersionRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<CommitView>), ApiError> {
    let req = body?.0;
    let kind = match req.kind.as_deref() {
        None | Some("files") => Kind::Files,
        Some("table") => Kind::Table,
        Some(other) => {
            return Err(ApiError::invalid(format!("kind is files or table, not '{other}'")));
        }
    };
    let items = req
        .items
        .into_iter()
        .map(|i| Item { path: i.path, size: i.size, hash: i.hash, meta: i.meta })
        .collect();
    let new = NewVersion {
        message: req.message,
        author: author_of(&headers),
        source: if req.source.is_empty() { "uploaded through the API".into() } else { req.source },
        description: req.description,
        derived_from: None,
        profile: None,
    };
    let commit = s.data.commit_items(&name, kind, items, new).await?;
    let status = if commit.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(commit.into())))
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct SampleRequest {
    /// Share of the items (rows of a table), in (0, 1]; or give `n`.
    fraction: Option<f64>,
    n: Option<usize>,
    /// Keep each value of this item metadata field (table column) at its share.
    stratify_by: Option<String>,
    seed: u64,
    /// Dataset that receives the sample [default: NAME-sample].
    into: Option<String>,
    #[serde(default)]
    message: String,
}

/// A deterministic sample of a version, as the next version of `into` (items of a folder, rows
/// of a table).
#[utoipa::path(post, path = "/api/v1/datasets/{name}/versions/{version}/sample", tag = "data",
    params(("name" = String, Path), ("version" = String, Path)), request_body = SampleRequest,
    responses((status = 200, body = CommitView)))]
pub(crate) async fn sample(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: Result<Json<SampleRequest>, JsonRejection>,
) -> Result<Json<CommitView>, ApiError> {
    let req = body?.0;
    let size = match (req.fraction, req.n) {
        (Some(f), None) => SampleSize::Fraction(f),
        (None, Some(n)) => SampleSize::Count(n),
        _ => return Err(ApiError::invalid("give one of fraction and n")),
    };
    let v = s.data.resolve(&version_ref(&name, &version)?).await?;
    let into = req.into.unwrap_or_else(|| format!("{}-sample", v.dataset));
    let how = Derivation {
        stratify_by: req.stratify_by,
        seed: req.seed,
        author: author_of(&headers),
        message: req.message,
    };
    Ok(Json(s.data.sample(&v, size, &how, &into).await?.into()))
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct SplitRequest {
    /// Shares of the parts (those above 0 are made), adding up to 1.
    #[serde(default)]
    train: f64,
    #[serde(default)]
    val: f64,
    #[serde(default)]
    test: f64,
    stratify_by: Option<String>,
    seed: u64,
    /// Prefix of the receiving datasets [default: NAME]: PREFIX-train, PREFIX-val, PREFIX-test.
    into: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SplitView {
    parts: Vec<CommitView>,
}

/// A deterministic split of a version into train/val/test datasets.
#[utoipa::path(post, path = "/api/v1/datasets/{name}/versions/{version}/split", tag = "data",
    params(("name" = String, Path), ("version" = String, Path)), request_body = SplitRequest,
    responses((status = 200, body = SplitView)))]
pub(crate) async fn split(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: Result<Json<SplitRequest>, JsonRejection>,
) -> Result<Json<SplitView>, ApiError> {
    let req = body?.0;
    let parts: Vec<(String, f64)> = [("train", req.train), ("val", req.val), ("test", req.test)]
        .into_iter()
        .filter(|(_, f)| *f > 0.0)
        .map(|(n, f)| (n.to_string(), f))
        .collect();
    if parts.is_empty() {
        return Err(ApiError::invalid("give the parts' shares, e.g. train 0.8 and test 0.2"));
    }
    let v = s.data.resolve(&version_ref(&name, &version)?).await?;
    let prefix = req.into.unwrap_or_else(|| v.dataset.clone());
    let how = Derivation {
        stratify_by: req.stratify_by,
        seed: req.seed,
        author: author_of(&headers),
        message: String::new(),
    };
    let commits = s.data.split(&v, &parts, &how, &prefix).await?;
    Ok(Json(SplitView { parts: commits.into_iter().map(Into::into).collect() }))
}
