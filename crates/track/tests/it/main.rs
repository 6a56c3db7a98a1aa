//! Tracking on both stores: semantics that the MLflow API relies on.

use slipway_core::testing::TestDb;
use slipway_core::{Backend, on_both_backends};
use slipway_track::{Error, KeyValue, Metric, NewRun, RunSearch, RunStatus, Tracking, ViewType};

async fn tracking(backend: Backend) -> (TestDb, Tracking) {
    let t = TestDb::new(backend).await;
    let tracking = Tracking::open(t.db.clone()).await.unwrap();
    (t, tracking)
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.into(), value: value.into() }
}

fn metric(key: &str, value: f64, step: i64, timestamp: i64) -> Metric {
    Metric { key: key.into(), value, step, timestamp }
}

async fn new_run(t: &Tracking, exp: &str, name: &str) -> String {
    let run =
        NewRun { experiment_id: exp.into(), run_name: Some(name.into()), ..NewRun::default() };
    t.create_run(run).await.unwrap().info.run_id
}

async fn experiments_start_with_default_and_names_stay_unique(backend: Backend) {
    let (_db, t) = tracking(backend).await;
    assert_eq!(t.get_experiment("0").await.unwrap().name, "Default");
    let id = t.create_experiment("falls", None, &[kv("team", "a")]).await.unwrap();
    assert_eq!(id, "1");
    let again = t.create_experiment("falls", None, &[]).await.unwrap_err();
    assert!(matches!(again, Error::ExperimentExists { .. }), "{again}");
    t.delete_experiment(&id).await.unwrap();
    assert!(t.create_experiment("falls", None, &[]).await.is_err(), "deleted names stay taken");
    let bad = t.create_experiment("x", Some("file:///etc"), &[]).await.unwrap_err();
    assert_eq!(bad.code().http_status(), 400);
    assert!(matches!(t.get_experiment("nope").await, Err(Error::ExperimentNotFound { .. })));
}

async fn metrics_keep_history_and_latest(backend: Backend) {
    let (_db, t) = tracking(backend).await;
    let run = new_run(&t, "0", "r").await;
    let points = [metric("m", 1.0, 5, 10), metric("m", 9.0, 3, 20), metric("m", f64::NAN, 6, 5)];
    t.log_batch(&run, &points[..2], &[], &[]).await.unwrap();
    assert_eq!(t.get_run(&run).await.unwrap().metrics[0].value, 1.0, "greatest step wins");
    t.log_batch(&run, &points[2..], &[], &[]).await.unwrap();
    let latest = &t.get_run(&run).await.unwrap().metrics[0];
    assert!(latest.value.is_nan() && latest.step == 6, "{latest:?}");
    t.log_batch(
        &run,
        &[metric("inf", f64::INFINITY, 0, 1), metric("inf", f64::NEG_INFINITY, 1, 1)],
        &[],
        &[],
    )
    .await
    .unwrap();
    let history = t.metric_history(&run, "inf", None, None).await.unwrap().items;
    assert_eq!(
        history.iter().map(|m| m.value).collect::<Vec<_>>(),
        [f64::INFINITY, f64::NEG_INFINITY]
    );
    let page = t.metric_history(&run, "m", Some(2), None).await.unwrap();
    assert_eq!(page.items.iter().map(|m| m.timestamp).collect::<Vec<_>>(), [5, 10]);
    let rest = t.metric_history(&run, "m", Some(2), page.next_page_token.as_deref()).await.unwrap();
    assert_eq!(rest.items.len(), 1);
    assert!(rest.next_page_token.is_none());
}

/// Points are stored in chunks; whatever the mix of one-point calls, big batches and concurrent
/// writers, the history is every point once, in MLflow's order, and pages join up exactly.
async fn history_survives_chunking_and_concurrent_writers(backend: Backend) {
    let (_db, t) = tracking(backend).await;
    let run = new_run(&t, "0", "r").await;
    // 300 one-point calls (they fill and then overflow a small chunk), then one batch of 1000
    // points of a single key (bigger than a chunk may merge), then 8 concurrent writers.
    for step in 0..300 {
        t.log_batch(&run, &[metric("loss", step as f64, step, 1_000 + step)], &[], &[])
            .await
            .unwrap();
    }
    let big: Vec<Metric> =
        (300..1300).map(|step| metric("loss", step as f64, step, 1_000 + step)).collect();
    t.log_batch(&run, &big, &[], &[]).await.unwrap();
    let writers = (0..8).map(|w| {
        let (t, run) = (t.clone(), run.clone());
        tokio::spawn(async move {
            for i in 0..25 {
                let step = 1300 + w * 25 + i;
                let batch =
                    [metric("loss", step as f64, step, 1_000 + step), metric("acc", 0.5, step, 7)];
                t.log_batch(&run, &batch, &[], &[]).await.unwrap();
            }
        })
    });
    for w in writers.collect::<Vec<_>>() {
        w.await.unwrap();
    }
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let page = t.metric_history(&run, "loss", Some(333), token.as_deref()).await.unwrap();
        all.extend(page.items);
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    let steps: Vec<i64> = all.iter().map(|m| m.step).collect();
    assert_eq!(steps, (0..1500).collect::<Vec<_>>());
    assert!(
        all.iter()
            .all(|m| m.key == "loss" && m.value == m.step as f64 && m.timestamp == 1_000 + m.step)
    );
    let acc = t.metric_history(&run, "acc", None, None).await.unwrap().items;
    assert_eq!(acc.len(), 200);
    let latest = t.get_run(&run).await.unwrap().metrics;
    assert_eq!(latest.iter().find(|m| m.key == "loss").unwrap().step, 1499);
    assert!(t.metric_history(&run, "nope", None, None).await.unwrap().items.is_empty());
}

/// Stores written before chunks (schema 1-3, one row per point) are converted when opened.
async fn per_point_history_of_older_stores_moves_into_chunks(backend: Backend) {
    let (db, t) = tracking(backend).await;
    let run = new_run(&t, "0", "r").await;
    t.log_batch(&run, &[metric("m", 0.25, 0, 5)], &[], &[]).await.unwrap();
    for (step, value, is_nan) in [(1, 1.5, 0), (2, 0.0, 1), (3, -2.0, 0)] {
        sqlx::query(
            "INSERT INTO metrics (run_id, key, step, timestamp, value, is_nan) VALUES ($1, 'm', $2, 9, $3, $4)",
        )
        .bind(&run)
        .bind(step as i64)
        .bind(value)
        .bind(is_nan as i64)
        .execute(db.db.pool())
        .await
        .unwrap();
    }
    let t = Tracking::open(db.db.clone()).await.unwrap();
    let history = t.metric_history(&run, "m", None, None).await.unwrap().items;
    let got: Vec<(i64, String)> = history.iter().map(|m| (m.step, m.value.to_string())).collect();
    let want = [(0, "0.25"), (1, "1.5"), (2, "NaN"), (3, "-2")];
    assert_eq!(got, want.map(|(s, v)| (s, v.to_string())));
    let left: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM metrics").fetch_one(db.db.pool()).await.unwrap();
    assert_eq!(left, 0);
}

async fn params_are_immutable_and_a_refused_batch_writes_nothing(backend: Backend) {
    let (_db, t) = tracking(backend).await;
    let run = new_run(&t, "0", "r").await;
    t.log_batch(&run, &[], &[kv("lr", "0.01")], &[]).await.unwrap();
    t.log_batch(&run, &[], &[kv("lr", "0.01")], &[]).await.unwrap();
    let err = t
        .log_batch(&run, &[metric("m", 1.0, 0, 0)], &[kv("lr", "0.5")], &[kv("t", "v")])
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("Changing param values is not allowed"), "{err}");
    let r = t.get_run(&run).await.unwrap();
    assert!(
        r.metrics.is_empty() && !r.tags.iter().any(|t| t.key == "t"),
        "the batch was partly written"
    );
    let long = "x".repeat(7000);
    t.log_batch(&run, &[], &[kv("long", &long)], &[]).await.unwrap();
    let r = t.get_run(&run).await.unwrap();
    assert_eq!(r.params.iter().find(|p| p.key == "long").unwrap().value.len(), 6000);
}

async fn deleted_runs_refuse_writes_and_hide_from_search(backend: Backend) {
    let (_db, t) = tracking(backend).await;
    let run = new_run(&t, "0", "r").await;
    t.delete_run(&run).await.unwrap();
    assert!(matches!(
        t.log_batch(&run, &[], &[kv("a", "b")], &[]).await,
        Err(Error::RunNotActive { .. })
    ));
    let search =
        |view| RunSearch { experiment_ids: vec!["0".into()], view, ..RunSearch::default() };
    assert!(t.search_runs(&search(ViewType::ActiveOnly)).await.unwrap().items.is_empty());
    assert_eq!(t.search_runs(&search(ViewType::DeletedOnly)).await.unwrap().items.len(), 1);
    t.restore_run(&run).await.unwrap();
    let info = t.update_run(&run, Some(RunStatus::Finished), Some(99), Some("new")).await.unwrap();
    assert_eq!(
        (info.status, info.end_time, info.run_name.as_str()),
        (RunStatus::Finished, Some(99), "new")
    );
}

async fn search_filters_and_orders_on_the_store(backend: Backend) {
    let (_db, t) = tracking(backend).await;
    let exp = t.create_experiment("s", None, &[]).await.unwrap();
    for (name, acc, opt) in
        [("a", Some(0.9), "Adam"), ("b", Some(0.7), "sgd"), ("c", None, "adagrad")]
    {
        let run = new_run(&t, &exp, name).await;
        let metrics: Vec<Metric> = acc.map(|a| metric("acc", a, 0, 0)).into_iter().collect();
        t.log_batch(&run, &metrics, &[kv("optimizer", opt)], &[]).await.unwrap();
    }
    let names = |filter: &str, order: &[&str]| {
        let search = RunSearch {
            experiment_ids: vec![exp.clone()],
            filter: filter.into(),
            order_by: order.iter().map(|s| s.to_string()).collect(),
            ..RunSearch::default()
        };
        let t = t.clone();
        async move {
            t.search_runs(&search)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|r| r.info.run_name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names("metrics.acc >= 0.7", &["metrics.acc"]).await, ["b", "a"]);
    assert_eq!(names("", &["metrics.acc DESC"]).await, ["a", "b", "c"], "missing sorts last");
    assert_eq!(names("", &["metrics.acc ASC"]).await, ["b", "a", "c"], "missing sorts last");
    assert_eq!(names("params.optimizer LIKE 'ad%'", &[]).await, ["c"], "LIKE is case-sensitive");
    assert_eq!(names("params.optimizer ILIKE 'ad%'", &["run_name"]).await, ["a", "c"]);
    assert_eq!(names("params.optimizer = 'x'' OR 1=1 --'", &[]).await, Vec::<String>::new());
}

fn dataset_input(name: &str, digest: &str, context: Option<&str>) -> serde_json::Value {
    let tags: Vec<serde_json::Value> = context
        .map(|c| serde_json::json!({"key": "mlflow.data.context", "value": c}))
        .into_iter()
        .collect();
    serde_json::json!({"tags": tags, "dataset": {"name": name, "digest": digest, "source_type": "local"}})
}

async fn runs_filter_by_their_dataset_inputs(backend: Backend) {
    let (_db, t) = tracking(backend).await;
    let a = new_run(&t, "0", "a").await;
    let b = new_run(&t, "0", "b").await;
    new_run(&t, "0", "none").await;
    t.log_io(
        &a,
        "dataset",
        &[
            dataset_input("falls", "d1", Some("training")),
            dataset_input("falls-eval", "d2", Some("eval")),
        ],
    )
    .await
    .unwrap();
    t.log_io(&b, "dataset", &[dataset_input("children", "e9", None)]).await.unwrap();
    let names = |filter: &str| {
        let search = RunSearch {
            experiment_ids: vec!["0".into()],
            filter: filter.into(),
            order_by: vec!["run_name".into()],
            ..RunSearch::default()
        };
        let t = t.clone();
        async move {
            t.search_runs(&search)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|r| r.info.run_name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names("datasets.name = 'falls'").await, ["a"]);
    assert_eq!(names("datasets.name LIKE 'fall%'").await, ["a"]);
    assert_eq!(names("datasets.name ILIKE 'CHILD%'").await, ["b"]);
    assert_eq!(names("datasets.digest IN ('e9', 'zz')").await, ["b"]);
    assert_eq!(names("datasets.context = 'eval'").await, ["a"]);
    assert_eq!(
        names("datasets.context IN ('training') AND datasets.name = 'falls-eval'").await,
        ["a"]
    );
    assert_eq!(names("datasets.name != 'falls'").await, ["a", "b"], "a has another dataset");
    assert_eq!(names("datasets.name NOT IN ('falls', 'falls-eval')").await, ["b"]);
    let run = t.get_run(&a).await.unwrap();
    assert_eq!(run.inputs.len(), 2, "inputs come back as logged");
    assert_eq!(run.inputs[1]["dataset"]["name"], "falls-eval");
}

async fn experiments_search_with_mlflows_grammar(backend: Backend) {
    let (_db, t) = tracking(backend).await;
    // Newest first is by creation time (ties by id, as MLflow): keep the times apart.
    let tick = || tokio::time::sleep(std::time::Duration::from_millis(3));
    t.create_experiment("falls-2026", None, &[kv("team", "vision")]).await.unwrap();
    tick().await;
    let gait = t.create_experiment("gait", None, &[kv("team", "vision")]).await.unwrap();
    tick().await;
    let other = t.create_experiment("falls-old", None, &[kv("team", "ops")]).await.unwrap();
    t.delete_experiment(&other).await.unwrap();
    let names = |filter: &str, order: &[&str], view: ViewType| {
        let search = slipway_track::ExperimentSearch {
            filter: filter.into(),
            order_by: order.iter().map(|s| s.to_string()).collect(),
            view,
            ..Default::default()
        };
        let t = t.clone();
        async move {
            match t.search_experiments(&search).await {
                Ok(page) => page.items.into_iter().map(|e| e.name).collect::<Vec<_>>(),
                Err(e) => vec![format!("error: {e}")],
            }
        }
    };
    let active = ViewType::ActiveOnly;
    assert_eq!(names("name LIKE 'falls%'", &[], ViewType::All).await, ["falls-old", "falls-2026"]);
    assert_eq!(names("name LIKE 'falls%'", &[], active).await, ["falls-2026"]);
    assert_eq!(names("tags.team = 'vision'", &["name DESC"], active).await, ["gait", "falls-2026"]);
    assert_eq!(names("tags.team IS NULL", &[], active).await, ["Default"]);
    assert_eq!(names(&format!("experiment_id = '{gait}'"), &[], active).await, ["gait"]);
    // Default too: dated when the store was made, not at the epoch.
    assert_eq!(
        names("creation_time > 0", &["experiment_id ASC"], active).await,
        ["Default", "falls-2026", "gait"]
    );
    assert_eq!(names("", &["name"], active).await, ["Default", "falls-2026", "gait"]);
    assert!(names("metrics.x > 1", &[], active).await[0].starts_with("error: Invalid entity type"));
    assert!(names("", &["tags.team"], active).await[0].starts_with("error:"));
}

on_both_backends!(
    experiments_start_with_default_and_names_stay_unique,
    metrics_keep_history_and_latest,
    history_survives_chunking_and_concurrent_writers,
    per_point_history_of_older_stores_moves_into_chunks,
    params_are_immutable_and_a_refused_batch_writes_nothing,
    deleted_runs_refuse_writes_and_hide_from_search,
    search_filters_and_orders_on_the_store,
    runs_filter_by_their_dataset_inputs,
    experiments_search_with_mlflows_grammar,
);
