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

on_both_backends!(
    experiments_start_with_default_and_names_stay_unique,
    metrics_keep_history_and_latest,
    params_are_immutable_and_a_refused_batch_writes_nothing,
    deleted_runs_refuse_writes_and_hide_from_search,
    search_filters_and_orders_on_the_store,
);
