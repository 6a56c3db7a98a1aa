//! The registry on both stores: versions, aliases, sources, stages, search and lineage.

use std::sync::Arc;

use bytes::Bytes;
use slipway_core::testing::{BlobBackend, TestBlobs, TestDb};
use slipway_core::{Backend, on_both_backends};
use slipway_registry::{Error, ModelCheck, ModelFormat, NewVersion, Registry, Search, Stage};
use track::{Artifacts, KeyValue, NewRun, Tracking};

struct Env {
    _db: TestDb,
    _blobs: TestBlobs,
    registry: Registry,
    tracking: Tracking,
    artifacts: Artifacts,
}

async fn env(backend: Backend) -> Env {
    let db = TestDb::new(backend).await;
    let blobs = TestBlobs::new(BlobBackend::Local);
    let tracking = Tracking::open(db.db.clone()).await.unwrap();
    let registry =
        Registry::open(db.db.clone(), blobs.store.clone(), tracking.clone()).await.unwrap();
    let artifacts = Artifacts::new(db.db.clone(), blobs.store.clone());
    Env { _db: db, _blobs: blobs, registry, tracking, artifacts }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.into(), value: value.into() }
}

// A hand-encoded ONNX ModelProto: one graph with input X: float[N, n_features] and output
// label: int64[N], and a node of `op`.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn field(number: u32, body: &[u8], out: &mut Vec<u8>) {
    varint(u64::from(number) << 3 | 2, out);
    varint(body.len() as u64, out);
    out.extend_from_slice(body);
}

fn value_info(name: &str, elem: u64, dims: &[Option<u64>]) -> Vec<u8> {
    let mut shape = Vec::new();
    for d in dims {
        let mut dim = Vec::new();
        match d {
            Some(n) => {
                varint(1 << 3, &mut dim);
                varint(*n, &mut dim);
            }
            None => field(2, b"N", &mut dim),
        }
        field(1, &dim, &mut shape);
    }
    let mut tensor = Vec::new();
    varint(1 << 3, &mut tensor);
    varint(elem, &mut tensor);
    field(2, &shape, &mut tensor);
    let mut ty = Vec::new();
    field(1, &tensor, &mut ty);
    let mut vi = Vec::new();
    field(1, name.as_bytes(), &mut vi);
    field(2, &ty, &mut vi);
    vi
}

fn onnx(n_features: u64, op: &str) -> Vec<u8> {
    let mut node = Vec::new();
    field(4, op.as_bytes(), &mut node);
    field(7, b"ai.onnx.ml", &mut node);
    let mut graph = Vec::new();
    field(1, &node, &mut graph);
    field(11, &value_info("X", 1, &[None, Some(n_features)]), &mut graph);
    field(12, &value_info("label", 7, &[None]), &mut graph);
    let mut model = Vec::new();
    field(7, &graph, &mut model);
    model
}

async fn put(artifacts: &Artifacts, path: &str, bytes: Vec<u8>) {
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(bytes)) });
    artifacts.put(path, stream).await.unwrap();
}

/// A run with `model/model.onnx` (and an `MLmodel` naming it) among its artifacts.
async fn run_with_model(e: &Env, n_features: u64) -> (String, String) {
    let run = e.tracking.create_run(NewRun { experiment_id: "0".into(), ..NewRun::default() });
    let run = run.await.unwrap();
    let root = format!("0/{}/artifacts", run.info.run_id);
    put(&e.artifacts, &format!("{root}/model/model.onnx"), onnx(n_features, "LinearClassifier"))
        .await;
    let mlmodel = "flavors:\n  onnx:\n    model_data: model.onnx\n  python_function:\n    loader_module: mlflow.onnx\n";
    put(&e.artifacts, &format!("{root}/model/MLmodel"), mlmodel.as_bytes().to_vec()).await;
    (run.info.run_id.clone(), format!("runs:/{}/model", run.info.run_id))
}

fn new_version(name: &str, source: &str) -> NewVersion {
    NewVersion { name: name.into(), source: source.into(), ..NewVersion::default() }
}

async fn versions_and_aliases(backend: Backend) {
    let e = env(backend).await;
    let r = &e.registry;
    r.create_model("falls", "fall detector", &[kv("team", "vision")]).await.unwrap();
    let again = r.create_model("falls", "", &[]).await.unwrap_err();
    assert!(matches!(again, Error::ModelExists { .. }), "{again}");
    assert_eq!(again.code().http_status(), 400);

    let (run_id, source) = run_with_model(&e, 12).await;
    let v1 = r.create_version(new_version("falls", &source)).await.unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(v1.run_id.as_deref(), Some(run_id.as_str()), "runs:/ names the run");
    assert_eq!(v1.storage, format!("0/{run_id}/artifacts/model"));
    assert_eq!(v1.flavors, ["onnx", "python_function"]);
    let sig = v1.signature.clone().expect("an ONNX version has a signature");
    assert_eq!(sig.inputs[0].to_string(), "X: float32[N, 12]");
    assert!(
        matches!(&v1.format, ModelFormat::Onnx { path, .. } if path.ends_with("model/model.onnx"))
    );
    let (_, source2) = run_with_model(&e, 20).await;
    let v2 = r.create_version(new_version("falls", &source2)).await.unwrap();
    assert_eq!(v2.version, 2);

    r.set_alias("falls", "champion", 1).await.unwrap();
    assert_eq!(r.version_by_alias("falls", "champion").await.unwrap().version, 1);
    r.set_alias("falls", "champion", 2).await.unwrap();
    let champion = r.resolve_ref("models:/falls@champion").await.unwrap();
    assert_eq!((champion.version, champion.aliases.clone()), (2, vec!["champion".to_string()]));
    assert_eq!(r.resolve_ref("falls@latest").await.unwrap().version, 2);
    assert_eq!(r.resolve_ref("falls@1").await.unwrap().version, 1);
    assert!(r.set_alias("falls", "latest", 1).await.is_err(), "latest names a version");
    assert!(r.set_alias("falls", "x", 9).await.is_err(), "no version 9");
    let missing = r.version_by_alias("falls", "nope").await.unwrap_err();
    assert_eq!(missing.code().http_status(), 400, "MLflow answers an unknown alias with 400");

    // The bytes served are the bytes registered, even if the artifact is overwritten later.
    let bytes = r.model_bytes(&v1).await.unwrap();
    assert_eq!(&bytes[..], &onnx(12, "LinearClassifier")[..]);
    put(&e.artifacts, &format!("0/{run_id}/artifacts/model/model.onnx"), b"changed".to_vec()).await;
    assert_eq!(&r.model_bytes(&v1).await.unwrap()[..], &bytes[..]);

    let model = r.get_model("falls").await.unwrap();
    assert_eq!(model.aliases, [("champion".to_string(), 2)]);
    assert_eq!(model.latest_versions.iter().map(|v| v.version).collect::<Vec<_>>(), [2]);

    // Deleting a version deletes its aliases; numbers are never reused.
    r.delete_version("falls", 2).await.unwrap();
    assert!(r.version_by_alias("falls", "champion").await.is_err());
    let v3 = r.create_version(new_version("falls", &source2)).await.unwrap();
    assert_eq!(v3.version, 3);

    // Deleting the model frees the name; versions start again at 1.
    r.delete_model("falls").await.unwrap();
    assert!(matches!(r.get_model("falls").await, Err(Error::ModelNotFound { .. })));
    r.create_model("falls", "", &[]).await.unwrap();
    assert_eq!(r.create_version(new_version("falls", &source2)).await.unwrap().version, 1);

    // Renaming carries versions, tags and aliases along.
    r.set_alias("falls", "champion", 1).await.unwrap();
    r.set_version_tag("falls", 1, "validated", Some("yes")).await.unwrap();
    r.rename_model("falls", "fall-detector").await.unwrap();
    let v = r.resolve_ref("fall-detector@champion").await.unwrap();
    assert_eq!(v.tags, [kv("validated", "yes")]);
    assert!(r.get_model("falls").await.is_err());
}

async fn sources_are_confined_to_the_store(backend: Backend) {
    let e = env(backend).await;
    let r = &e.registry;
    r.create_model("m", "", &[]).await.unwrap();
    let (run_id, _) = run_with_model(&e, 4).await;
    let sources = [
        "/etc/passwd".to_string(),
        "file:///etc/passwd".into(),
        "file:/etc/passwd".into(),
        "FILE:///etc".into(),
        "mlflow-artifacts:/../../../etc".into(),
        "mlflow-artifacts://host/#/../../etc".into(),
        "mlflow-artifacts:/x/%2e%2e/%2e%2e/etc".into(),
        "mlflow-artifacts:/0#/../../etc".into(),
        "mlflow-artifacts:/0?p=/../../etc".into(),
        format!("runs:/{run_id}/../../../../etc"),
        format!("runs:/{run_id}/model/%2e%2e"),
        "http://127.0.0.1:1/model".into(),
        "s3://bucket/model".into(),
        "models:/m-deadbeef".into(),
        "runs:/0123456789abcdef/model".into(),
        format!("runs:/{run_id}/no-such-folder"),
        "mlflow-artifacts:/0/nothing/here".into(),
    ];
    for source in &sources {
        let err = r.create_version(new_version("m", source)).await.unwrap_err();
        assert!(matches!(err, Error::InvalidSource { .. }), "{source}: {err}");
        assert_eq!(err.code().http_status(), 400, "{source}");
    }
    // A run id that is not the source's run must exist too.
    let mut bad_run = new_version("m", &format!("runs:/{run_id}/model"));
    bad_run.run_id = Some("ffffffff".into());
    assert_eq!(r.create_version(bad_run).await.unwrap_err().code().http_status(), 404);
    let page = r.search_versions(&Search::default()).await.unwrap();
    assert!(page.items.is_empty(), "nothing refused was registered");
    // A file that is not ONNX is refused, not registered blind.
    put(&e.artifacts, &format!("0/{run_id}/artifacts/bad/model.onnx"), b"garbage".to_vec()).await;
    let err = r.create_version(new_version("m", &format!("runs:/{run_id}/bad"))).await.unwrap_err();
    assert!(matches!(err, Error::Unservable { .. }), "{err}");
    // A model without ONNX (another flavour) registers, without a signature.
    put(&e.artifacts, &format!("0/{run_id}/artifacts/sk/model.pkl"), b"...".to_vec()).await;
    let v = r.create_version(new_version("m", &format!("runs:/{run_id}/sk"))).await.unwrap();
    assert_eq!((v.format, v.signature), (ModelFormat::Other, None));
}

#[derive(Debug)]
struct NoTrees;

impl ModelCheck for NoTrees {
    fn check(&self, onnx: &[u8]) -> Result<(), String> {
        let info = slipway_registry::onnx::read(onnx)?;
        match info.operators.iter().find(|(_, op)| op.starts_with("TreeEnsemble")) {
            Some((domain, op)) => Err(format!("unsupported operator {domain}:{op}")),
            None => Ok(()),
        }
    }
}

async fn an_installed_check_refuses_at_registration(backend: Backend) {
    let e = env(backend).await;
    let r = e.registry.clone().with_check(Arc::new(NoTrees));
    r.create_model("m", "", &[]).await.unwrap();
    let (run_id, source) = run_with_model(&e, 3).await;
    assert_eq!(r.create_version(new_version("m", &source)).await.unwrap().version, 1);
    let path = format!("0/{run_id}/artifacts/trees/model.onnx");
    put(&e.artifacts, &path, onnx(3, "TreeEnsembleClassifier")).await;
    let err = r.create_version(new_version("m", &format!("mlflow-artifacts:/{path}"))).await;
    let err = err.unwrap_err();
    assert!(err.to_string().contains("ai.onnx.ml:TreeEnsembleClassifier"), "{err}");
    assert_eq!(r.get_model("m").await.unwrap().latest_versions.len(), 1);
}

async fn stages_and_latest_versions(backend: Backend) {
    let e = env(backend).await;
    let r = &e.registry;
    r.create_model("m", "", &[]).await.unwrap();
    let (_, source) = run_with_model(&e, 3).await;
    for _ in 0..3 {
        r.create_version(new_version("m", &source)).await.unwrap();
    }
    r.transition_stage("m", 1, Stage::Production, false).await.unwrap();
    r.transition_stage("m", 2, Stage::Staging, false).await.unwrap();
    let latest = r.latest_versions("m", &[]).await.unwrap();
    let got: Vec<(i64, Stage)> = latest.iter().map(|v| (v.version, v.stage)).collect();
    assert_eq!(got, [(1, Stage::Production), (2, Stage::Staging), (3, Stage::None)]);
    r.transition_stage("m", 3, Stage::Production, true).await.unwrap();
    assert_eq!(r.get_version("m", 1).await.unwrap().stage, Stage::Archived);
    let prod = r.latest_versions("m", &[Stage::Production]).await.unwrap();
    assert_eq!(prod.iter().map(|v| v.version).collect::<Vec<_>>(), [3]);
}

async fn search_with_mlflows_grammar(backend: Backend) {
    let e = env(backend).await;
    let r = &e.registry;
    for (name, team) in [("falls-a", "vision"), ("falls-b", "gait"), ("other", "vision")] {
        r.create_model(name, "", &[kv("team", team)]).await.unwrap();
    }
    r.create_model("prompt", "", &[kv("mlflow.prompt.is_prompt", "true")]).await.unwrap();
    let names = |filter: &str, order: &[&str], max: Option<i64>, token: Option<String>| {
        let search = Search {
            filter: filter.into(),
            max_results: max,
            order_by: order.iter().map(|s| s.to_string()).collect(),
            page_token: token,
        };
        async move {
            match r.search_models(&search).await {
                Ok(p) => {
                    (p.items.into_iter().map(|m| m.name).collect::<Vec<_>>(), p.next_page_token)
                }
                Err(err) => (vec![format!("error: {err}")], None),
            }
        }
    };
    let prompts = "tag.`mlflow.prompt.is_prompt` != 'true'";
    assert_eq!(names(prompts, &[], None, None).await.0, ["falls-a", "falls-b", "other"]);
    let f = format!("name LIKE 'falls%' AND {prompts}");
    assert_eq!(names(&f, &["name DESC"], None, None).await.0, ["falls-b", "falls-a"]);
    assert_eq!(names("tags.team = 'vision'", &[], None, None).await.0, ["falls-a", "other"]);
    assert_eq!(names("name ILIKE 'FALLS-_'", &[], None, None).await.0, ["falls-a", "falls-b"]);
    assert_eq!(names("name IN ('other', 'prompt')", &[], None, None).await.0, ["other", "prompt"]);
    let (first, token) = names("", &[], Some(2), None).await;
    assert_eq!(first, ["falls-a", "falls-b"]);
    let (second, end) = names("", &[], Some(2), token).await;
    assert_eq!((second, end), (vec!["other".to_string(), "prompt".to_string()], None));
    assert!(names("metrics.x > 1", &[], None, None).await.0[0].starts_with("error:"));
    assert!(names("", &["version_number"], None, None).await.0[0].starts_with("error:"));

    let (run_id, source) = run_with_model(&e, 3).await;
    for name in ["falls-a", "falls-a", "falls-b"] {
        let mut v = new_version(name, &source);
        v.tags = vec![kv("stage", name)];
        r.create_version(v).await.unwrap();
    }
    let versions = |filter: &str, order: &[&str]| {
        let search = Search {
            filter: filter.into(),
            order_by: order.iter().map(|s| s.to_string()).collect(),
            ..Search::default()
        };
        async move {
            match r.search_versions(&search).await {
                Ok(p) => p.items.into_iter().map(|v| v.label()).collect::<Vec<_>>(),
                Err(err) => vec![format!("error: {err}")],
            }
        }
    };
    assert_eq!(
        versions("name = 'falls-a'", &["version_number DESC"]).await,
        ["falls-a@2", "falls-a@1"]
    );
    assert_eq!(versions("version_number > 1", &[]).await, ["falls-a@2"]);
    let f = format!("run_id = '{run_id}' AND tags.stage = 'falls-b'");
    assert_eq!(versions(&f, &[]).await, ["falls-b@1"]);
    assert_eq!(versions("name IN ('falls-b', 'x')", &["name"]).await, ["falls-b@1"]);
    assert!(versions("version_number = 'x'", &[]).await[0].starts_with("error:"));
}

async fn lineage_reaches_the_runs_datasets(backend: Backend) {
    let e = env(backend).await;
    let r = &e.registry;
    r.create_model("m", "", &[]).await.unwrap();
    let (run_id, source) = run_with_model(&e, 3).await;
    let input = serde_json::json!({
        "dataset": {"name": "falls", "digest": "abc", "source_type": "slipway",
                    "source": "{\"uri\": \"slipway://falls@3\"}"},
        "tags": [{"key": "mlflow.data.context", "value": "training"}],
    });
    e.tracking.log_io(&run_id, "dataset", &[input]).await.unwrap();
    let v = r.create_version(new_version("m", &source)).await.unwrap();
    let lineage = r.lineage(v).await.unwrap();
    assert_eq!(lineage.run.map(|r| r.run_id), Some(run_id));
    assert_eq!(lineage.datasets.len(), 1);
    assert_eq!(lineage.datasets[0].version.as_deref(), Some("falls@3"));
    assert_eq!(lineage.datasets[0].context.as_deref(), Some("training"));
}

async fn uploads_and_the_version_list(backend: Backend) {
    let e = env(backend).await;
    let r = e.registry.clone().with_check(Arc::new(NoTrees));
    r.create_model("m", "", &[]).await.unwrap();
    let (run_id, source) = run_with_model(&e, 3).await;
    r.create_version(new_version("m", &source)).await.unwrap();
    let upload = NewVersion { run_id: Some(run_id.clone()), ..new_version("m", "ignored") };
    let v = r.upload_version(upload, "rf.onnx", Bytes::from(onnx(5, "LinearClassifier"))).await;
    let v = v.unwrap();
    assert_eq!(v.version, 2);
    assert!(v.source.starts_with("mlflow-artifacts:/registry-uploads/"), "{}", v.source);
    assert!(v.storage.ends_with("/rf.onnx"), "{}", v.storage);
    assert_eq!(v.run_id.as_deref(), Some(run_id.as_str()));
    let sig = v.signature.clone().unwrap();
    assert_eq!(sig.inputs[0].to_string(), "X: float32[N, 5]");
    assert_eq!(r.model_bytes(&v).await.unwrap(), Bytes::from(onnx(5, "LinearClassifier")));

    // Refused uploads register nothing and leave no file behind.
    let before = e.artifacts.list("registry-uploads").await.unwrap().len();
    for (name, bytes) in [
        ("../x.onnx", onnx(5, "LinearClassifier")),
        ("model.pkl", onnx(5, "LinearClassifier")),
        ("a/b.onnx", onnx(5, "LinearClassifier")),
        ("trees.onnx", onnx(5, "TreeEnsembleClassifier")),
        ("junk.onnx", b"junk".to_vec()),
        ("empty.onnx", Vec::new()),
    ] {
        let err = r.upload_version(new_version("m", ""), name, Bytes::from(bytes)).await;
        assert_eq!(err.unwrap_err().code().http_status(), 400, "{name}");
    }
    assert_eq!(e.artifacts.list("registry-uploads").await.unwrap().len(), before);
    let err = r.upload_version(new_version("nope", ""), "m.onnx", Bytes::from(onnx(5, "X"))).await;
    assert!(matches!(err.unwrap_err(), Error::ModelNotFound { .. }));

    let versions: Vec<i64> = r.versions("m").await.unwrap().iter().map(|v| v.version).collect();
    assert_eq!(versions, [2, 1]);
    r.set_alias("m", "prod", 1).await.unwrap();
    assert_eq!(r.versions("m").await.unwrap()[1].aliases, ["prod"]);
    r.delete_version("m", 2).await.unwrap();
    let versions: Vec<i64> = r.versions("m").await.unwrap().iter().map(|v| v.version).collect();
    assert_eq!(versions, [1]);
    assert!(matches!(r.versions("nope").await.unwrap_err(), Error::ModelNotFound { .. }));
}

async fn lineage_follows_an_http_dataset_source(backend: Backend) {
    // The Python client's `mlflow_dataset()` names a version by its HTTP address.
    let e = env(backend).await;
    let r = &e.registry;
    r.create_model("m", "", &[]).await.unwrap();
    let (run_id, source) = run_with_model(&e, 3).await;
    let input = serde_json::json!({
        "dataset": {"name": "falls", "digest": "abc", "source_type": "http",
                    "source": "{\"url\": \"http://127.0.0.1:5000/api/v1/datasets/falls/versions/7\"}"},
    });
    e.tracking.log_io(&run_id, "dataset", &[input]).await.unwrap();
    let v = r.create_version(new_version("m", &source)).await.unwrap();
    let lineage = r.lineage(v).await.unwrap();
    assert_eq!(lineage.datasets[0].version.as_deref(), Some("falls@7"));
}

on_both_backends!(
    uploads_and_the_version_list,
    lineage_follows_an_http_dataset_source,
    versions_and_aliases,
    sources_are_confined_to_the_store,
    an_installed_check_refuses_at_registration,
    stages_and_latest_versions,
    search_with_mlflows_grammar,
    lineage_reaches_the_runs_datasets,
);
