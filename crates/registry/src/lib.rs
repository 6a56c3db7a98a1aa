//! The model registry: registered models, their numbered versions, aliases (`champion`), tags,
//! descriptions, MLflow's deprecated stages, ONNX signatures and lineage back to the training
//! run and its dataset versions.
//!
//! [`Registry`] is the API; it owns the tables in `migrations/` and their SQL (`store`). A
//! version's `source` is checked and resolved into the artifact store (`source`): a registered
//! version always names stored files, pinned by digest, never a server path or a URL. An ONNX
//! file is read at registration for its signature (`onnx`) and offered to a [`ModelCheck`] the
//! binary installs (the serving runtime), so a model that cannot be served is refused then.
//!
//! This crate knows nothing of HTTP, MLflow's wire shapes or how models run.

mod error;
pub mod onnx;
mod source;
mod store;
mod types;

use std::sync::Arc;

use bytes::Bytes;
use slipway_core::{BlobStore, Db, Digest, Migration, SafePath};
use track::{Artifacts, KeyValue, Page, Tracking};

pub use error::{Error, Result};
pub use onnx::{Dim, Signature, TensorSpec};
pub use types::{Lineage, ModelFormat, ModelVersion, NewVersion, RegisteredModel, Search, Stage};

/// The registry schema.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "registry",
    sqlite: include_str!("../migrations/sqlite/0001_registry.sql"),
    postgres: include_str!("../migrations/postgres/0001_registry.sql"),
}];

/// Longest alias, as MLflow's.
pub const MAX_ALIAS_LEN: usize = 255;
/// Longest registered model name.
pub const MAX_NAME_LEN: usize = 256;
/// Longest registry tag value, as MLflow's.
pub const MAX_TAG_VALUE_LEN: usize = 100_000;
/// Largest ONNX file read at registration.
pub const MAX_MODEL_BYTES: u64 = 2 << 30;

/// Decides whether an ONNX model can be served; installed by the binary (the serving runtime),
/// so that the registry refuses at registration what would fail at the first request.
pub trait ModelCheck: Send + Sync + std::fmt::Debug {
    /// `Err` says why (e.g. the operator it cannot run).
    fn check(&self, onnx: &[u8]) -> std::result::Result<(), String>;
}

/// The model registry over the metadata and blob stores; cheap to clone.
#[derive(Clone, Debug)]
pub struct Registry {
    db: Db,
    blobs: BlobStore,
    tracking: Tracking,
    artifacts: Artifacts,
    check: Option<Arc<dyn ModelCheck>>,
}

impl Registry {
    /// Opens the registry on `db`, bringing its schema up to date.
    pub async fn open(db: Db, blobs: BlobStore, tracking: Tracking) -> Result<Registry> {
        db.migrate("registry", MIGRATIONS).await?;
        let artifacts = Artifacts::new(db.clone(), blobs.clone());
        Ok(Registry { db, blobs, tracking, artifacts, check: None })
    }

    /// The blob store the registry reads models from.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Refuses ONNX versions that `check` refuses.
    pub fn with_check(mut self, check: Arc<dyn ModelCheck>) -> Registry {
        self.check = Some(check);
        self
    }

    pub async fn create_model(
        &self,
        name: &str,
        description: &str,
        tags: &[KeyValue],
    ) -> Result<RegisteredModel> {
        check_name(name)?;
        let tags = check_tags(tags)?;
        store::create_model(&self.db, name, description, &tags).await?;
        self.get_model(name).await
    }

    /// Checks that `new`'s model exists, or, when the version may make it, that its name is one.
    async fn model_for(&self, new: &NewVersion) -> Result<()> {
        if new.create_model {
            return check_name(&new.name);
        }
        self.get_model(&new.name).await.map(|_| ())
    }

    pub async fn get_model(&self, name: &str) -> Result<RegisteredModel> {
        store::get_model(&self.db, name).await
    }

    pub async fn rename_model(&self, name: &str, new_name: &str) -> Result<RegisteredModel> {
        check_name(new_name)?;
        store::rename_model(&self.db, name, new_name).await?;
        self.get_model(new_name).await
    }

    pub async fn update_model(&self, name: &str, description: &str) -> Result<RegisteredModel> {
        store::update_model(&self.db, name, description).await?;
        self.get_model(name).await
    }

    /// Deletes the model with its versions, tags and aliases; the name can be reused.
    pub async fn delete_model(&self, name: &str) -> Result<()> {
        store::delete_model(&self.db, name).await
    }

    /// Sets (`Some`) or deletes (`None`) a tag of a model.
    pub async fn set_model_tag(&self, name: &str, key: &str, value: Option<&str>) -> Result<()> {
        if let Some(v) = value {
            check_tags(&[KeyValue { key: key.into(), value: v.into() }])?;
        }
        store::set_model_tag(&self.db, name, key, value).await
    }

    pub async fn search_models(&self, search: &Search) -> Result<Page<RegisteredModel>> {
        store::search_models(&self.db, search).await
    }

    /// The newest version in each of `stages` (every stage when empty), oldest stage first.
    pub async fn latest_versions(&self, name: &str, stages: &[Stage]) -> Result<Vec<ModelVersion>> {
        let model = self.get_model(name).await?;
        Ok(model
            .latest_versions
            .into_iter()
            .filter(|v| stages.is_empty() || stages.contains(&v.stage))
            .collect())
    }

    /// Points `alias` at `version`, moving it atomically if it pointed elsewhere.
    pub async fn set_alias(&self, name: &str, alias: &str, version: i64) -> Result<()> {
        check_alias(alias)?;
        store::get_version(&self.db, name, version).await?;
        store::set_alias(&self.db, name, alias, version).await
    }

    pub async fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        store::delete_alias(&self.db, name, alias).await
    }

    pub async fn version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        self.get_model(name).await?;
        let version = store::alias_version(&self.db, name, alias).await?.ok_or_else(|| {
            Error::AliasNotFound { name: name.to_string(), alias: alias.to_string() }
        })?;
        store::get_version(&self.db, name, version).await
    }

    /// Registers a version of `new.name` (which must exist) from stored files.
    pub async fn create_version(&self, new: NewVersion) -> Result<ModelVersion> {
        self.model_for(&new).await?;
        let tags = check_tags(&new.tags)?;
        let resolved = self.resolve_source(&new).await?;
        let (format, signature, flavors) = self.inspect(&new.name, &resolved.storage).await?;
        let version = store::create_version(
            &self.db,
            &new,
            &resolved,
            &tags,
            &format,
            signature.as_ref(),
            &flavors,
        )
        .await?;
        tracing::info!(target: "registry", name = %new.name, version, storage = %resolved.storage, "registered a model version");
        store::get_version(&self.db, &new.name, version).await
    }

    /// Every version of the model, newest first.
    pub async fn versions(&self, name: &str) -> Result<Vec<ModelVersion>> {
        self.get_model(name).await?;
        store::versions(&self.db, name).await
    }

    /// Registers a version from an ONNX file the client sends: the bytes are stored as the
    /// artifact `registry-uploads/<id>/<file_name>` and the version's source names that path.
    /// `new.source` is ignored; a refused version leaves no artifact behind.
    pub async fn upload_version(
        &self,
        mut new: NewVersion,
        file_name: &str,
        bytes: Bytes,
    ) -> Result<ModelVersion> {
        if file_name.len() > 200
            || !file_name.ends_with(".onnx")
            || file_name.starts_with('.')
            || !file_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(Error::invalid(format!(
                "Invalid file name '{file_name}': expected a name such as model.onnx (letters, \
                 digits, '.', '_', '-'; ending in .onnx)"
            )));
        }
        if bytes.is_empty() {
            return Err(Error::invalid("the uploaded model is empty"));
        }
        if bytes.len() as u64 > MAX_MODEL_BYTES {
            return Err(Error::invalid("the uploaded model is larger than 2 GiB"));
        }
        self.model_for(&new).await?;
        let path = format!("registry-uploads/{}/{file_name}", slipway_core::new_id());
        let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(bytes) });
        self.artifacts.put(&path, stream).await?;
        new.source = format!("mlflow-artifacts:/{path}");
        match self.create_version(new).await {
            Ok(v) => Ok(v),
            Err(e) => {
                if let Err(cleanup) = self.artifacts.delete(&path).await {
                    tracing::warn!(target: "registry", %path, error = %cleanup, "could not remove a refused upload");
                }
                Err(e)
            }
        }
    }

    pub async fn get_version(&self, name: &str, version: i64) -> Result<ModelVersion> {
        store::get_version(&self.db, name, version).await
    }

    /// A version by reference: `N`, `latest` (the highest number) or an alias.
    pub async fn resolve(&self, name: &str, reference: &str) -> Result<ModelVersion> {
        if let Ok(n) = reference.parse::<i64>() {
            return self.get_version(name, n).await;
        }
        if reference.eq_ignore_ascii_case("latest") {
            self.get_model(name).await?;
            let n = store::max_version(&self.db, name).await?.ok_or_else(|| {
                Error::VersionNotFound { name: name.into(), version: "latest".into() }
            })?;
            return self.get_version(name, n).await;
        }
        self.version_by_alias(name, reference).await
    }

    /// A version by `NAME@REF`, `models:/NAME@ALIAS` or `models:/NAME/N`.
    pub async fn resolve_ref(&self, text: &str) -> Result<ModelVersion> {
        let (name, reference) = parse_ref(text)?;
        self.resolve(&name, &reference).await
    }

    pub async fn update_version(
        &self,
        name: &str,
        version: i64,
        description: &str,
    ) -> Result<ModelVersion> {
        store::update_version(&self.db, name, version, description).await?;
        self.get_version(name, version).await
    }

    /// MLflow's deprecated stage transition; `archive_existing` archives the other versions in
    /// the target stage (Staging or Production).
    pub async fn transition_stage(
        &self,
        name: &str,
        version: i64,
        stage: Stage,
        archive_existing: bool,
    ) -> Result<ModelVersion> {
        store::transition_stage(&self.db, name, version, stage, archive_existing).await?;
        self.get_version(name, version).await
    }

    pub async fn set_version_tag(
        &self,
        name: &str,
        version: i64,
        key: &str,
        value: Option<&str>,
    ) -> Result<()> {
        if let Some(v) = value {
            check_tags(&[KeyValue { key: key.into(), value: v.into() }])?;
        }
        store::set_version_tag(&self.db, name, version, key, value).await
    }

    /// Deletes a version and the aliases pointing at it; its number is not reused.
    pub async fn delete_version(&self, name: &str, version: i64) -> Result<()> {
        store::delete_version(&self.db, name, version).await
    }

    pub async fn search_versions(&self, search: &Search) -> Result<Page<ModelVersion>> {
        store::search_versions(&self.db, search).await
    }

    /// The verified bytes of a version's ONNX file.
    pub async fn model_bytes(&self, version: &ModelVersion) -> Result<Bytes> {
        match &version.format {
            ModelFormat::Onnx { digest, .. } => {
                let digest: Digest = digest.parse()?;
                Ok(self.blobs.read(&digest).await?)
            }
            ModelFormat::Other => Err(Error::Unservable {
                name: version.label(),
                reason: "it has no ONNX file (Slipway serves ONNX models)".into(),
            }),
        }
    }

    /// The version's training run and that run's dataset inputs.
    pub async fn lineage(&self, version: ModelVersion) -> Result<Lineage> {
        let run = match &version.run_id {
            Some(run_id) => match self.tracking.get_run(run_id).await {
                Ok(run) => Some(run),
                Err(track::Error::RunNotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let datasets = run
            .as_ref()
            .map(|r| r.inputs.iter().map(track::DatasetInput::from_json).collect())
            .unwrap_or_default();
        Ok(Lineage { version, run: run.map(|r| r.info), datasets })
    }

    /// Checks `new.source` and finds the artifact path it names, and the run it came from.
    async fn resolve_source(&self, new: &NewVersion) -> Result<store::Resolved> {
        let src = &new.source;
        let mut run_id = new.run_id.clone().filter(|r| !r.is_empty());
        let mut model_id = new.model_id.clone().filter(|m| !m.is_empty());
        let storage = match source::parse(src)? {
            source::Source::LoggedModel { model_id: id, path } => {
                let model = match self.tracking.get_logged_model(&id).await {
                    Ok(m) => m,
                    Err(track::Error::LoggedModelNotFound { .. }) => {
                        return Err(Error::source(src, format!("no logged model has id '{id}'")));
                    }
                    Err(e) => return Err(e.into()),
                };
                if run_id.is_none() {
                    run_id = model.source_run_id.clone();
                }
                model_id = Some(id.clone());
                let root = format!("{}/models/{id}/artifacts", model.experiment_id);
                join(&root, path.as_ref())
            }
            source::Source::Run { run_id: id, path } => {
                let run = match self.tracking.get_run(&id).await {
                    Ok(r) => r,
                    Err(track::Error::RunNotFound { .. }) => {
                        return Err(Error::source(src, format!("no run has id '{id}'")));
                    }
                    Err(e) => return Err(e.into()),
                };
                if run_id.is_none() {
                    run_id = Some(id.clone());
                }
                let root = format!("{}/{id}/artifacts", run.info.experiment_id);
                join(&root, path.as_ref())
            }
            source::Source::Artifact(path) => path.as_str().to_string(),
        };
        if let Some(r) = &run_id {
            self.tracking.get_run(r).await?;
        }
        let has_file = self.artifacts.file(&storage).await?.is_some();
        if !has_file && self.artifacts.list(&storage).await?.is_empty() {
            return Err(Error::source(src, format!("no stored artifacts at '{storage}'")));
        }
        Ok(store::Resolved { storage, run_id, model_id })
    }

    /// Finds the ONNX file of `storage` (the file itself, the `onnx` flavour's `model_data` of
    /// an `MLmodel`, or the one `.onnx` file of the folder), reads its signature and asks the
    /// installed check whether it can be served.
    async fn inspect(
        &self,
        name: &str,
        storage: &str,
    ) -> Result<(ModelFormat, Option<Signature>, Vec<String>)> {
        let mut flavors = Vec::new();
        let mut onnx_path = None;
        if storage.ends_with(".onnx") && self.artifacts.file(storage).await?.is_some() {
            onnx_path = Some(storage.to_string());
        } else if let Some(mlmodel) = self.artifacts.file(&format!("{storage}/MLmodel")).await? {
            let text = self.blobs.read(&mlmodel.digest).await?;
            let text = String::from_utf8_lossy(&text);
            let parsed = mlmodel_flavors(&text);
            flavors = parsed.0;
            if let Some(data) = parsed.1 {
                let path = SafePath::parse(&data)
                    .map_err(|e| Error::invalid(format!("MLmodel's onnx model_data: {e}")))?;
                onnx_path = Some(format!("{storage}/{path}"));
            }
        }
        if onnx_path.is_none() {
            let entries = self.artifacts.list(storage).await?;
            let onnx: Vec<_> =
                entries.iter().filter(|e| !e.is_dir && e.path.ends_with(".onnx")).collect();
            if onnx.len() == 1 {
                onnx_path = Some(format!("{storage}/{}", onnx[0].path));
            }
        }
        let Some(path) = onnx_path else { return Ok((ModelFormat::Other, None, flavors)) };
        let file = self.artifacts.file(&path).await?.ok_or_else(|| {
            Error::invalid(format!("the model's ONNX file '{path}' is not stored"))
        })?;
        if file.size > MAX_MODEL_BYTES {
            return Err(Error::Unservable {
                name: name.into(),
                reason: format!("'{path}' is larger than 2 GiB"),
            });
        }
        let bytes = self.blobs.read(&file.digest).await?;
        let info =
            onnx::read(&bytes).map_err(|reason| Error::Unservable { name: name.into(), reason })?;
        if let Some(check) = &self.check {
            let check = check.clone();
            let verdict = tokio_blocking(move || check.check(&bytes)).await;
            verdict.map_err(|reason| Error::Unservable { name: name.into(), reason })?;
        }
        Ok((
            ModelFormat::Onnx { path, digest: file.digest.to_hex() },
            Some(info.signature),
            flavors,
        ))
    }
}

/// Runs CPU work (loading and optimising a model) off the async threads.
async fn tokio_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = futures::channel::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await.expect("the check thread ends by sending its verdict")
}

fn join(root: &str, path: Option<&SafePath>) -> String {
    match path {
        Some(p) => format!("{root}/{p}"),
        None => root.to_string(),
    }
}

/// The flavours an `MLmodel` file names, and the `onnx` flavour's `model_data`. `MLmodel` is
/// YAML; the two things read here sit at fixed indents, so a line reader suffices.
pub(crate) fn mlmodel_flavors(text: &str) -> (Vec<String>, Option<String>) {
    let mut flavors = Vec::new();
    let mut model_data = None;
    let mut in_flavors = false;
    let mut current = String::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if indent == 0 {
            in_flavors = trimmed == "flavors:";
            continue;
        }
        if !in_flavors {
            continue;
        }
        if indent == 2 {
            if let Some(name) = trimmed.strip_suffix(':') {
                current = name.to_string();
                flavors.push(current.clone());
            }
        } else if let Some(v) = trimmed.strip_prefix("model_data:").filter(|_| current == "onnx") {
            model_data = Some(v.trim().trim_matches(['\'', '"']).to_string());
        }
    }
    (flavors, model_data)
}

/// `NAME@REF`, `models:/NAME@ALIAS` or `models:/NAME/N` as (name, reference).
pub fn parse_ref(text: &str) -> Result<(String, String)> {
    let bad = || {
        Error::invalid(format!(
            "'{text}' is not a model reference: expected NAME@VERSION, NAME@ALIAS, NAME@latest, \
             models:/NAME@ALIAS or models:/NAME/VERSION"
        ))
    };
    let rest = text.strip_prefix("models:/").unwrap_or(text);
    let (name, reference) = match rest.rsplit_once('@') {
        Some((n, r)) => (n, r),
        None if text.starts_with("models:/") => rest.rsplit_once('/').ok_or_else(bad)?,
        None => return Err(bad()),
    };
    if name.is_empty() || reference.is_empty() {
        return Err(bad());
    }
    Ok((name.to_string(), reference.to_string()))
}

fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::invalid("Missing value for required parameter 'name'."));
    }
    if name.len() > MAX_NAME_LEN || name.chars().any(|c| c.is_control()) {
        return Err(Error::invalid(format!(
            "Invalid registered model name '{name}': at most {MAX_NAME_LEN} bytes, no control characters"
        )));
    }
    if name.contains('@') || name.starts_with("models:") {
        return Err(Error::invalid(format!(
            "Invalid registered model name '{name}': '@' and a 'models:' prefix would make references ambiguous"
        )));
    }
    Ok(())
}

/// Aliases are names: not `latest`, not a number or `vN` (those name versions).
fn check_alias(alias: &str) -> Result<()> {
    let numeric = alias.parse::<i64>().is_ok()
        || alias
            .strip_prefix(['v', 'V'])
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
    if alias.is_empty()
        || alias.len() > MAX_ALIAS_LEN
        || alias.eq_ignore_ascii_case("latest")
        || numeric
        || !alias.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(Error::invalid(format!(
            "Invalid alias name '{alias}': use up to {MAX_ALIAS_LEN} letters, digits, '_', '-' or \
             '.'; 'latest', numbers and 'v<number>' are reserved for versions"
        )));
    }
    Ok(())
}

fn check_tags(tags: &[KeyValue]) -> Result<Vec<KeyValue>> {
    let mut out: Vec<KeyValue> = Vec::with_capacity(tags.len());
    for t in tags {
        if t.key.is_empty() || t.key.len() > 250 {
            return Err(Error::invalid(format!(
                "Invalid tag key '{}': 1 to 250 characters",
                t.key
            )));
        }
        if t.value.len() > MAX_TAG_VALUE_LEN {
            return Err(Error::invalid(format!(
                "Tag '{}' has a value longer than {MAX_TAG_VALUE_LEN} characters",
                t.key
            )));
        }
        match out.iter_mut().find(|o| o.key == t.key) {
            Some(existing) => existing.value = t.value.clone(),
            None => out.push(t.clone()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlmodel_flavours_and_onnx_file() {
        let text = "artifact_path: model\nflavors:\n  onnx:\n    code: null\n    model_data: model.onnx\n    onnx_version: 1.17.0\n  python_function:\n    data: model.onnx\n    loader_module: mlflow.onnx\nmlflow_version: 3.17.2\n";
        let (flavors, data) = mlmodel_flavors(text);
        assert_eq!(flavors, ["onnx", "python_function"]);
        assert_eq!(data.as_deref(), Some("model.onnx"));
        let (flavors, data) =
            mlmodel_flavors("flavors:\n  sklearn:\n    pickled_model: model.pkl\n");
        assert_eq!(flavors, ["sklearn"]);
        assert_eq!(data, None);
    }

    #[test]
    fn references() {
        let r = |t: &str| parse_ref(t).map_err(|e| e.to_string());
        assert_eq!(r("falls@champion").unwrap(), ("falls".into(), "champion".into()));
        assert_eq!(r("models:/falls@3").unwrap(), ("falls".into(), "3".into()));
        assert_eq!(r("models:/falls/3").unwrap(), ("falls".into(), "3".into()));
        assert!(r("falls").is_err());
        assert!(r("falls@").is_err());
    }

    #[test]
    fn aliases_are_not_versions() {
        for bad in ["latest", "LATEST", "3", "v3", "V12", "", "a b", "x/y"] {
            assert!(check_alias(bad).is_err(), "{bad:?} should be refused");
        }
        for good in ["champion", "challenger-2", "prod.eu", "v2beta"] {
            assert!(check_alias(good).is_ok(), "{good:?} should be accepted");
        }
    }
}
