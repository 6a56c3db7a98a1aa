//! Tuning on both stores: studies and trials persisted, each trial a child run of its study.

use std::collections::BTreeMap;

use serde_json::json;
use slipway_core::testing::TestDb;
use slipway_core::{Backend, on_both_backends};
use slipway_tune::{
    AskOptions, Direction, Distribution, Error, NewStudy, PrunerConfig, SamplerConfig, StudySpec,
    TpeOptions, TrialState, Tuning,
};
use track::Tracking;

async fn tuning(backend: Backend) -> (TestDb, Tuning) {
    let t = TestDb::new(backend).await;
    let tuning = process(&t).await;
    (t, tuning)
}

/// Tuning on `t`'s store as another process would have it: its own studies in memory.
async fn process(t: &TestDb) -> Tuning {
    let tracking = Tracking::open(t.db.clone()).await.unwrap();
    Tuning::open(t.db.clone(), tracking).await.unwrap()
}

fn new_study(name: &str, sampler: SamplerConfig, pruner: PrunerConfig) -> NewStudy {
    NewStudy {
        name: name.into(),
        experiment: None,
        directions: vec![Direction::Minimize],
        metrics: vec!["loss".into()],
        sampler,
        pruner,
        seed: Some(7),
        spec: None,
        n_trials: None,
        enqueue: Vec::new(),
        user: "tester".into(),
    }
}

async fn ask_tell_trials_are_child_runs_and_tpe_improves_on_its_start(backend: Backend) {
    let (_db, tuning) = tuning(backend).await;
    let study = tuning
        .create_study(
            new_study("quad", SamplerConfig::Tpe(TpeOptions::default()), PrunerConfig::None),
            false,
        )
        .await
        .unwrap();
    let x = Distribution::float(-10.0, 10.0, None, false).unwrap();
    let k = Distribution::int(-5, 5, 1, false).unwrap();
    let mut values = Vec::new();
    for _ in 0..30 {
        let trial = tuning.ask("quad", AskOptions::default()).await.unwrap();
        let vx = tuning.suggest("quad", trial.number, "x", &x).await.unwrap().as_f64().unwrap();
        let vk = tuning.suggest("quad", trial.number, "k", &k).await.unwrap().as_i64().unwrap();
        // Asking again gives the same value.
        assert_eq!(tuning.suggest("quad", trial.number, "x", &x).await.unwrap(), json!(vx));
        let f = (vx - 3.0).powi(2) + (vk as f64 - 1.0).powi(2);
        tuning.report("quad", trial.number, 0, f + 1.0).await.unwrap();
        let told =
            tuning.tell("quad", trial.number, TrialState::Complete, &[f], None).await.unwrap();
        assert_eq!(told.state, TrialState::Complete);
        values.push(f);
    }
    let info = tuning.study("quad").await.unwrap();
    assert_eq!(info.counts["COMPLETE"], 30);
    let best = info.best.unwrap();
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(best.value, Some(min));
    let first_ten = values[..10].iter().copied().fold(f64::INFINITY, f64::min);
    assert!(min < first_ten, "TPE's 20 trials beat the 10 random ones: {min} vs {first_ten}");
    // The trial is a run: a child of the study's parent run, with its params and metric steps.
    let run = tuning.tracking().get_run(&best.run_id).await.unwrap();
    let tag = |k: &str| run.tags.iter().find(|t| t.key == k).map(|t| t.value.clone());
    assert_eq!(tag("mlflow.parentRunId"), Some(study.parent_run_id.clone()));
    assert_eq!(tag("slipway.trial"), Some(best.number.to_string()));
    assert_eq!(tag("slipway.trial_state").as_deref(), Some("COMPLETE"));
    assert_eq!(run.info.run_name, format!("quad-{}", best.number));
    let x_param = run.params.iter().find(|p| p.key == "x").unwrap();
    assert_eq!(x_param.value, best.params["x"].to_string());
    let history = tuning.tracking().metric_history(&best.run_id, "loss", None, None).await.unwrap();
    assert_eq!(history.items.len(), 1, "the report at step 0; tell does not log again");
    assert_eq!(history.items[0].value, min + 1.0);
    // Bad input changes nothing.
    let again =
        tuning.tell("quad", best.number, TrialState::Complete, &[0.0], None).await.unwrap_err();
    assert!(matches!(again, Error::TrialFinished { .. }), "{again}");
    assert_eq!(again.code().http_status(), 409);
    let other_range = Distribution::float(0.0, 1.0, None, false).unwrap();
    let t = tuning.ask("quad", AskOptions::default()).await.unwrap();
    tuning.suggest("quad", t.number, "x", &x).await.unwrap();
    let changed = tuning.suggest("quad", t.number, "x", &other_range).await.unwrap_err();
    assert_eq!(changed.code().http_status(), 400, "{changed}");
    assert!(matches!(
        tuning.ask("nope", AskOptions::default()).await,
        Err(Error::StudyNotFound { .. })
    ));
    let exists = tuning
        .create_study(new_study("quad", SamplerConfig::Random, PrunerConfig::None), false)
        .await
        .unwrap_err();
    assert!(matches!(exists, Error::StudyExists { .. }), "{exists}");
    let loaded = tuning
        .create_study(new_study("quad", SamplerConfig::Random, PrunerConfig::None), true)
        .await
        .unwrap();
    assert_eq!(loaded.study_id, study.study_id);
    assert!(
        matches!(loaded.sampler, SamplerConfig::Tpe(_)),
        "load_if_exists keeps the study's settings"
    );
}

async fn a_study_file_draws_its_declared_space_with_conditions_and_enqueued_trials_first(
    backend: Backend,
) {
    let (_db, tuning) = tuning(backend).await;
    let file = json!({
        "name": "cond",
        "metric": "val_loss",
        "trials": 20,
        "sampler": "random",
        "params": {
            "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
            "momentum": {"type": "float", "low": 0.0, "high": 0.99, "when": {"optimizer": "sgd"}},
            "layers": {"type": "int", "low": 1, "high": 4},
        },
        "fixed": {"epochs": 3},
        "enqueue": [{"optimizer": "sgd", "momentum": 0.5, "layers": 2}],
    });
    let spec = StudySpec::from_json(&file).unwrap();
    tuning.create_study(NewStudy::from_spec(&spec, file, "tester"), false).await.unwrap();
    let first = tuning.ask("cond", AskOptions::default()).await.unwrap();
    assert_eq!(first.params["optimizer"], json!("sgd"));
    assert_eq!(first.params["momentum"], json!(0.5));
    assert_eq!(first.params["layers"], json!(2));
    let mut saw = BTreeMap::<String, usize>::new();
    for _ in 0..16 {
        let t = tuning.ask("cond", AskOptions::default()).await.unwrap();
        let opt = t.params["optimizer"].as_str().unwrap().to_string();
        assert_eq!(t.params.contains_key("momentum"), opt == "sgd", "{:?}", t.params);
        *saw.entry(opt).or_default() += 1;
        let run = tuning.tracking().get_run(&t.run_id).await.unwrap();
        assert_eq!(run.params.len(), t.params.len(), "every drawn param is on the run");
    }
    assert_eq!(saw.len(), 2, "{saw:?}");
}

async fn an_enqueued_value_no_known_range_holds_is_refused_and_changes_nothing(backend: Backend) {
    let (_db, tuning) = tuning(backend).await;
    tuning
        .create_study(new_study("enq", SamplerConfig::Random, PrunerConfig::None), false)
        .await
        .unwrap();
    let x = Distribution::float(0.0, 1.0, None, false).unwrap();
    let t = tuning.ask("enq", AskOptions::default()).await.unwrap();
    tuning.suggest("enq", t.number, "x", &x).await.unwrap();
    let one = |k: &str, v: serde_json::Value| BTreeMap::from([(k.to_string(), v)]);
    for bad in [json!(5.0), json!("a"), json!(-0.1)] {
        let e = tuning.enqueue("enq", one("x", bad.clone())).await.unwrap_err();
        assert!(matches!(e, Error::Invalid(_)) && e.to_string().starts_with("x: "), "{bad}: {e}");
    }
    // A range asked later holds it: accepted. So is a parameter not suggested yet.
    let wide = Distribution::float(0.0, 10.0, None, false).unwrap();
    let t2 = tuning.ask("enq", AskOptions::default()).await.unwrap();
    tuning.suggest("enq", t2.number, "x", &wide).await.unwrap();
    tuning.enqueue("enq", one("x", json!(5.0))).await.unwrap();
    tuning.enqueue("enq", one("y", json!(42))).await.unwrap();
    // Only the accepted ones are taken, in order.
    let t3 = tuning.ask("enq", AskOptions::default()).await.unwrap();
    assert_eq!(tuning.suggest("enq", t3.number, "x", &wide).await.unwrap(), json!(5.0));
    let t4 = tuning.ask("enq", AskOptions::default()).await.unwrap();
    let y = Distribution::int(0, 100, 1, false).unwrap();
    assert_eq!(tuning.suggest("enq", t4.number, "y", &y).await.unwrap(), json!(42));
    let t5 = tuning.ask("enq", AskOptions::default()).await.unwrap();
    let drawn = tuning.suggest("enq", t5.number, "x", &x).await.unwrap();
    assert!(
        drawn.as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)),
        "drawn, not enqueued: {drawn}"
    );

    // A study file's space: its ranges, and only its parameters.
    let file = json!({"name": "filed", "trials": 5, "sampler": "random",
        "params": {"lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": true}}});
    let spec = StudySpec::from_json(&file).unwrap();
    tuning.create_study(NewStudy::from_spec(&spec, file, "tester"), false).await.unwrap();
    let e = tuning.enqueue("filed", one("lr", json!(2.0))).await.unwrap_err();
    assert_eq!(e.to_string(), "lr: 2.0 lies outside float [0.0001, 1] log");
    let e = tuning.enqueue("filed", one("momentum", json!(0.9))).await.unwrap_err();
    assert_eq!(e.to_string(), "momentum: not a parameter of the study file's search space");
    tuning.enqueue("filed", one("lr", json!(0.01))).await.unwrap();
    let first = tuning.ask("filed", AskOptions::default()).await.unwrap();
    assert_eq!(first.params["lr"], json!(0.01));
}

async fn a_trial_whose_lease_expires_is_failed_and_its_run_too(backend: Backend) {
    let (_db, tuning) = tuning(backend).await;
    tuning
        .create_study(new_study("lease", SamplerConfig::Random, PrunerConfig::None), false)
        .await
        .unwrap();
    let opts =
        AskOptions { lease_ms: Some(1_000), worker: Some("w1".into()), ..AskOptions::default() };
    let dead = tuning.ask("lease", opts.clone()).await.unwrap();
    let alive = tuning.ask("lease", opts).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert!(tuning.heartbeat("lease", alive.number, 1_000).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let next = tuning.ask("lease", AskOptions::default()).await.unwrap();
    assert_eq!(next.number, 2);
    let trials = tuning.trials("lease").await.unwrap();
    assert_eq!(trials[dead.number as usize].state, TrialState::Fail);
    assert!(
        trials[dead.number as usize].error.as_deref().unwrap().contains("lease expired"),
        "{:?}",
        trials[0].error
    );
    assert_eq!(trials[alive.number as usize].state, TrialState::Running, "its heartbeat kept it");
    let run = tuning.tracking().get_run(&dead.run_id).await.unwrap();
    assert_eq!(run.info.status.as_str(), "FAILED");
    assert!(
        !tuning.heartbeat("lease", dead.number, 1_000).await.unwrap(),
        "a failed trial's worker is told to stop"
    );
    let late =
        tuning.tell("lease", dead.number, TrialState::Complete, &[1.0], None).await.unwrap_err();
    assert!(matches!(late, Error::TrialFinished { .. }), "a late result is refused: {late}");
}

async fn concurrent_asks_get_distinct_numbers(backend: Backend) {
    let (db, tuning) = tuning(backend).await;
    tuning
        .create_study(
            new_study("par", SamplerConfig::Tpe(TpeOptions::default()), PrunerConfig::None),
            false,
        )
        .await
        .unwrap();
    let x = Distribution::float(0.0, 1.0, None, false).unwrap();
    // Two processes (each its own studies in memory), two tasks each.
    let other =
        Tuning::open(db.db.clone(), Tracking::open(db.db.clone()).await.unwrap()).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..4 {
        let tuning = if i % 2 == 0 { tuning.clone() } else { other.clone() };
        let x = x.clone();
        tasks.push(tokio::spawn(async move {
            let mut numbers = Vec::new();
            for _ in 0..8 {
                let t = tuning.ask("par", AskOptions::default()).await.unwrap();
                let v = tuning.suggest("par", t.number, "x", &x).await.unwrap().as_f64().unwrap();
                tuning.tell("par", t.number, TrialState::Complete, &[v], None).await.unwrap();
                numbers.push(t.number);
            }
            numbers
        }));
    }
    let mut all: Vec<u64> = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    assert_eq!(all, (0..32).collect::<Vec<u64>>());
    assert_eq!(tuning.study("par").await.unwrap().counts["COMPLETE"], 32);
    let runs: std::collections::BTreeSet<String> =
        other.trials("par").await.unwrap().into_iter().map(|t| t.run_id).collect();
    assert_eq!(runs.len(), 32, "each trial its own run");
}

async fn pruning_reads_the_metric_steps_the_trial_run_logged(backend: Backend) {
    let (_db, tuning) = tuning(backend).await;
    let pruner =
        PrunerConfig::from_json(Some(&json!({"type": "median", "n_startup_trials": 2})), "pruner")
            .unwrap();
    tuning.create_study(new_study("prune", SamplerConfig::Random, pruner), false).await.unwrap();
    for k in 0..3 {
        let t = tuning.ask("prune", AskOptions::default()).await.unwrap();
        for step in 0..5 {
            tuning.report("prune", t.number, step, 10.0 - step as f64 + k as f64).await.unwrap();
        }
        tuning.tell("prune", t.number, TrialState::Complete, &[], None).await.unwrap();
    }
    // This trial logs its curve into its run directly, as a command objective does via mlflow.
    let t = tuning.ask("prune", AskOptions::default()).await.unwrap();
    let steps: Vec<track::Metric> = (0..3)
        .map(|s| track::Metric { key: "loss".into(), value: 50.0, timestamp: s, step: s })
        .collect();
    tuning.tracking().log_batch(&t.run_id, &steps, &[], &[]).await.unwrap();
    assert!(tuning.should_prune("prune", t.number).await.unwrap());
    let pruned = tuning.tell("prune", t.number, TrialState::Pruned, &[], None).await.unwrap();
    assert_eq!(pruned.value, Some(50.0), "a pruned trial keeps its last intermediate value");
    assert_eq!(pruned.intermediate.len(), 3);
    let trials = tuning.trials("prune").await.unwrap();
    assert_eq!(trials[0].value, Some(6.0), "COMPLETE without a value takes the run's latest loss");
    // A complete trial that never logged its metric fails, saying so.
    let silent = tuning.ask("prune", AskOptions::default()).await.unwrap();
    let failed =
        tuning.tell("prune", silent.number, TrialState::Complete, &[], None).await.unwrap();
    assert_eq!(failed.state, TrialState::Fail);
    assert!(failed.error.unwrap().contains("never logged the metric 'loss'"));
}

async fn a_multi_objective_study_keeps_each_value_and_its_pareto_front(backend: Backend) {
    let (_db, tuning) = tuning(backend).await;
    let mut new = new_study("mo", SamplerConfig::Tpe(TpeOptions::default()), PrunerConfig::None);
    new.directions = vec![Direction::Minimize, Direction::Maximize];
    new.metrics = vec!["latency".into(), "accuracy".into()];
    // Bad objectives are refused, and nothing is stored.
    for (directions, metrics, pruner, why) in [
        (vec![Direction::Minimize], vec!["a", "b"], PrunerConfig::None, "directions"),
        (vec![Direction::Minimize; 2], vec!["a", "a"], PrunerConfig::None, "named twice"),
        (
            vec![Direction::Minimize; 2],
            vec!["a", "b"],
            slipway_tune::PrunerConfig::from_json(Some(&json!("median")), "pruner").unwrap(),
            "cannot prune",
        ),
    ] {
        let mut bad = new.clone();
        bad.directions = directions;
        bad.metrics = metrics.into_iter().map(String::from).collect();
        bad.pruner = pruner;
        let err = tuning.create_study(bad, false).await.unwrap_err();
        assert_eq!(err.code().http_status(), 400, "{err}");
        assert!(err.to_string().contains(why), "{err}");
    }
    assert!(tuning.studies().await.unwrap().is_empty());
    // A study given no seed draws one that a JSON number carries exactly (53 bits).
    let mut seedless = new.clone();
    seedless.name = "seedless".into();
    seedless.seed = None;
    let drawn = tuning.create_study(seedless, false).await.unwrap().seed;
    assert!(drawn < 1 << 53, "{drawn}");
    let info = tuning.create_study(new, false).await.unwrap();
    assert_eq!((info.metrics.len(), info.directions[1]), (2, Direction::Maximize));
    // A trade-off: latency grows with x, accuracy with x and y (y is free accuracy).
    let x = Distribution::float(0.0, 1.0, None, false).unwrap();
    let mut told: Vec<(u64, [f64; 2])> = Vec::new();
    for _ in 0..24 {
        let t = tuning.ask("mo", AskOptions::default()).await.unwrap();
        let vx = tuning.suggest("mo", t.number, "x", &x).await.unwrap().as_f64().unwrap();
        let vy = tuning.suggest("mo", t.number, "y", &x).await.unwrap().as_f64().unwrap();
        let values = [vx * 10.0, vx.sqrt() * vy];
        let done = tuning.tell("mo", t.number, TrialState::Complete, &values, None).await.unwrap();
        assert_eq!((done.values.as_slice(), done.value), (&values[..], Some(values[0])));
        told.push((t.number, values));
    }
    // The front, read back from the store: exactly the trials no other trial dominates.
    let dominated = |a: &[f64; 2]| {
        told.iter().any(|(_, b)| b[0] <= a[0] && b[1] >= a[1] && (b[0] < a[0] || b[1] > a[1]))
    };
    let expected: Vec<u64> = told.iter().filter(|(_, v)| !dominated(v)).map(|&(n, _)| n).collect();
    let info = tuning.study("mo").await.unwrap();
    assert!(info.best.is_none(), "no single best trial with two objectives");
    let front: Vec<u64> = info.best_trials.iter().map(|t| t.number).collect();
    assert_eq!(front, expected);
    assert!(front.len() >= 2, "a trade-off has more than one best trial: {front:?}");
    let run = tuning.tracking().get_run(&info.best_trials[0].run_id).await.unwrap();
    let logged: Vec<&str> = run.metrics.iter().map(|m| m.key.as_str()).collect();
    assert!(logged.contains(&"latency") && logged.contains(&"accuracy"), "{logged:?}");
    // Importance per objective; one past the last is refused.
    assert_eq!(tuning.importance("mo", 1).await.unwrap().len(), 2);
    assert_eq!(tuning.importance("mo", 2).await.unwrap_err().code().http_status(), 400);
    // A trial must get one value per objective; it has no intermediate values and never prunes.
    let t = tuning.ask("mo", AskOptions::default()).await.unwrap();
    let one = tuning.tell("mo", t.number, TrialState::Complete, &[1.0], None).await.unwrap_err();
    assert!(one.to_string().contains("2 objectives, got 1 value"), "{one}");
    let report = tuning.report("mo", t.number, 0, 1.0).await.unwrap_err();
    assert_eq!(report.code().http_status(), 400, "{report}");
    assert!(!tuning.should_prune("mo", t.number).await.unwrap());
    let pruned = tuning.tell("mo", t.number, TrialState::Pruned, &[], None).await.unwrap_err();
    assert!(pruned.to_string().contains("cannot be pruned"), "{pruned}");
    // Told without values: each metric's latest value in the run; a metric never logged
    // fails the trial, naming it.
    let metric = |key: &str, value: f64, step: i64| track::Metric {
        key: key.into(),
        value,
        timestamp: step,
        step,
    };
    tuning
        .tracking()
        .log_batch(
            &t.run_id,
            &[metric("latency", 3.0, 0), metric("latency", 2.0, 1), metric("accuracy", 0.5, 0)],
            &[],
            &[],
        )
        .await
        .unwrap();
    let done = tuning.tell("mo", t.number, TrialState::Complete, &[], None).await.unwrap();
    assert_eq!((done.state, done.values), (TrialState::Complete, vec![2.0, 0.5]));
    let t = tuning.ask("mo", AskOptions::default()).await.unwrap();
    tuning.tracking().log_batch(&t.run_id, &[metric("latency", 1.0, 0)], &[], &[]).await.unwrap();
    let failed = tuning.tell("mo", t.number, TrialState::Complete, &[], None).await.unwrap();
    assert_eq!(failed.state, TrialState::Fail);
    assert!(failed.error.unwrap().contains("'accuracy'"));
}

/// What a study's trials are, as seen by `tuning` (run ids and times left out when `bare`).
async fn trials_of(tuning: &Tuning, name: &str, bare: bool) -> Vec<serde_json::Value> {
    let trials = tuning.trials(name).await.unwrap();
    trials
        .iter()
        .map(|t| {
            let mut v = serde_json::to_value(t).unwrap();
            if bare {
                for key in ["run_id", "started_ms", "finished_ms"] {
                    v.as_object_mut().unwrap().remove(key);
                }
            }
            v
        })
        .collect()
}

/// Plays a define-by-run study with ask, suggest, report, prune, tell, fail, enqueue and a
/// refused tell, each operation by `actor(step)`; after each, `check` sees the study.
async fn play_shared_study(actor: impl Fn(usize) -> Tuning, name: &str) {
    let x = Distribution::float(-5.0, 5.0, None, false).unwrap();
    let k = Distribution::int(1, 8, 1, false).unwrap();
    let c = Distribution::categorical(vec![json!("a"), json!("b"), json!("c")]).unwrap();
    let mut step = 0;
    let mut next = || {
        step += 1;
        actor(step)
    };
    for round in 0..18u64 {
        if round == 7 {
            next().enqueue(name, BTreeMap::from([("x".to_string(), json!(1.25))])).await.unwrap();
        }
        let t = next().ask(name, AskOptions::default()).await.unwrap();
        let xv = next().suggest(name, t.number, "x", &x).await.unwrap().as_f64().unwrap();
        if round == 7 {
            assert_eq!(xv, 1.25, "the enqueued value, whichever process asked");
        }
        let kv = next().suggest(name, t.number, "k", &k).await.unwrap().as_f64().unwrap();
        if round % 2 == 0 {
            next().suggest(name, t.number, "c", &c).await.unwrap();
        }
        let loss = (xv - 1.0).powi(2) + 0.1 * kv;
        for s in 0..3 {
            next().report(name, t.number, s, loss * (3 - s) as f64).await.unwrap();
        }
        if round == 11 {
            // A NaN as the last intermediate value of a pruned trial: the store keeps none.
            next().report(name, t.number, 3, f64::NAN).await.unwrap();
        }
        let pruned = round == 11 || next().should_prune(name, t.number).await.unwrap();
        let (state, values) = match () {
            _ if pruned => (TrialState::Pruned, vec![]),
            _ if round % 5 == 4 => (TrialState::Fail, vec![]),
            _ => (TrialState::Complete, vec![loss]),
        };
        next().tell(name, t.number, state, &values, None).await.unwrap();
        if round == 3 {
            // Refused, changes nothing: the trial has ended (and the refusing process reads the
            // study afresh next time).
            assert!(next().tell(name, t.number, TrialState::Complete, &[0.0], None).await.is_err());
        }
    }
}

async fn processes_sharing_a_store_see_each_others_changes(backend: Backend) {
    let t = TestDb::new(backend).await;
    let open = || process(&t);
    // Two processes (each its own studies in memory) and one that only ever reads afresh.
    let (a, b) = (open().await, open().await);
    let pruner = PrunerConfig::from_json(
        Some(&json!({"type": "median", "n_startup_trials": 2, "n_warmup_steps": 1})),
        "pruner",
    )
    .unwrap();
    let tpe = TpeOptions { n_startup_trials: 4, ..TpeOptions::default() };
    for study in ["shared", "alone"] {
        let (sampler, pruner) = (SamplerConfig::Tpe(tpe.clone()), pruner.clone());
        a.create_study(new_study(study, sampler, pruner), false).await.unwrap();
    }
    // Operations alternate between the processes in an irregular pattern.
    let pattern =
        |step: usize| if (step * 7 + step / 3).is_multiple_of(3) { b.clone() } else { a.clone() };
    play_shared_study(pattern, "shared").await;
    // The same operations on one process that reads every study afresh each time.
    let mut processes = Vec::new();
    for _ in 0..200 {
        processes.push(open().await);
    }
    let fresh = std::sync::Mutex::new(processes);
    play_shared_study(|_| fresh.lock().unwrap().pop().expect("enough fresh processes"), "alone")
        .await;

    let reader = open().await;
    let (seen_a, seen_b, seen_fresh) = (
        trials_of(&a, "shared", false).await,
        trials_of(&b, "shared", false).await,
        trials_of(&reader, "shared", false).await,
    );
    assert_eq!(seen_a.len(), 18);
    assert_eq!(seen_a, seen_fresh, "process a holds what the store holds");
    assert_eq!(seen_b, seen_fresh, "process b holds what the store holds");
    // Same seed, same operations: kept in memory or read afresh, the sampler drew the same.
    assert_eq!(trials_of(&reader, "shared", true).await, trials_of(&reader, "alone", true).await);
    let states: Vec<&str> = seen_a.iter().map(|t| t["state"].as_str().unwrap()).collect();
    for state in ["COMPLETE", "FAIL"] {
        assert!(states.contains(&state), "{states:?}");
    }
    let counts = a.study("shared").await.unwrap().counts;
    let info = reader.study("shared").await.unwrap();
    assert_eq!(counts, info.counts);
    assert_eq!(
        serde_json::to_value(b.study("shared").await.unwrap().best).unwrap(),
        serde_json::to_value(info.best).unwrap()
    );
}

async fn deleting_a_study_removes_it_and_frees_its_name(backend: Backend) {
    use track::{LifecycleStage, RunStatus};
    let t = TestDb::new(backend).await;
    let open = || process(&t);
    let (a, b) = (open().await, open().await);
    let x = Distribution::float(0.0, 1.0, None, false).unwrap();
    let study = a
        .create_study(new_study("gone", SamplerConfig::Random, PrunerConfig::None), false)
        .await
        .unwrap();
    for _ in 0..2 {
        let trial = a.ask("gone", AskOptions::default()).await.unwrap();
        let v = a.suggest("gone", trial.number, "x", &x).await.unwrap().as_f64().unwrap();
        a.tell("gone", trial.number, TrialState::Complete, &[v], None).await.unwrap();
    }
    let running = b.ask("gone", AskOptions::default()).await.unwrap();
    b.suggest("gone", running.number, "x", &x).await.unwrap();

    // A running trial: refused, nothing deleted.
    let err = a.delete_study("gone", true, false).await.unwrap_err();
    assert!(matches!(err, Error::StudyBusy { running: 1, .. }), "{err:?}");
    assert_eq!(err.code(), slipway_core::ErrorCode::Conflict);
    assert_eq!(open().await.trials("gone").await.unwrap().len(), 3);

    // With force: gone for both processes; the runs stay, the running one's run failed.
    let runs: Vec<String> =
        b.trials("gone").await.unwrap().iter().map(|t| t.run_id.clone()).collect();
    let deleted = a.delete_study("gone", false, true).await.unwrap();
    assert_eq!((deleted.trials, deleted.running, deleted.runs_deleted), (3, 1, 0));
    for tuning in [&a, &b] {
        assert!(matches!(tuning.study("gone").await, Err(Error::StudyNotFound { .. })));
        assert!(matches!(tuning.trials("gone").await, Err(Error::StudyNotFound { .. })));
    }
    for (i, run_id) in runs.iter().enumerate() {
        let run = a.tracking().get_run(run_id).await.unwrap();
        assert_eq!(run.info.lifecycle_stage, LifecycleStage::Active);
        let want =
            if i == running.number as usize { RunStatus::Failed } else { RunStatus::Finished };
        assert_eq!(run.info.status, want, "trial {i}'s run");
    }
    assert!(a.studies().await.unwrap().iter().all(|s| s.name != "gone"));

    // The name is free: a new study, empty, in the process that held the old one in memory too.
    let again = b
        .create_study(new_study("gone", SamplerConfig::Random, PrunerConfig::None), false)
        .await
        .unwrap();
    assert_ne!(again.study_id, study.study_id);
    assert!(b.trials("gone").await.unwrap().is_empty());
    let first = b.ask("gone", AskOptions::default()).await.unwrap();
    assert_eq!(first.number, 0);
    assert_eq!(a.trials("gone").await.unwrap().len(), 1);
    a.tell("gone", 0, TrialState::Fail, &[], None).await.unwrap();

    // With its runs: the trial's run and the study's parent run are deleted (restorable).
    let deleted = b.delete_study("gone", true, false).await.unwrap();
    assert_eq!((deleted.trials, deleted.running, deleted.runs_deleted), (1, 0, 2));
    for run_id in [&first.run_id, &again.parent_run_id] {
        let run = a.tracking().get_run(run_id).await.unwrap();
        assert_eq!(run.info.lifecycle_stage, LifecycleStage::Deleted);
    }
    assert!(matches!(a.delete_study("gone", false, false).await, Err(Error::StudyNotFound { .. })));
}

async fn a_studys_trial_jobs_are_found_by_its_id_and_older_ones_by_their_payload(backend: Backend) {
    use slipway_core::jobs::{JobStatus, NewJob, Queue, QueueOptions};
    use slipway_tune::trial_jobs;
    let t = TestDb::new(backend).await;
    let q = Queue::open(t.db.clone(), QueueOptions::default()).await.unwrap();
    let job = |name: &str, id: &str| trial_jobs::new_job(name, id, json!({ "n": 1 }));
    // Queued before jobs had a subject: the study's name and id in the payload only.
    let legacy = |name: &str, id: &str| {
        NewJob::new(trial_jobs::KIND, json!({ "study": name, "study_id": id }))
    };
    let older = q.enqueue(legacy("s", "id-1")).await.unwrap();
    q.enqueue(legacy("s", "id-0")).await.unwrap(); // a deleted study of the same name
    q.enqueue(legacy("t", "id-2")).await.unwrap();
    let mut ours = vec![older.id];
    for _ in 0..3 {
        let j = q.enqueue(job("s", "id-1")).await.unwrap();
        assert_eq!(j.subject.as_deref(), Some("id-1"));
        ours.push(j.id);
        q.enqueue(job("t", "id-2")).await.unwrap();
        q.enqueue(job("s", "id-0")).await.unwrap();
    }
    let open = trial_jobs::open(&q, "s", "id-1").await.unwrap();
    assert_eq!(open.iter().map(|j| j.id.clone()).collect::<Vec<_>>(), ours, "oldest first");
    assert_eq!(trial_jobs::queued(&q, "s", "id-1").await.unwrap(), 4);
    assert_eq!(trial_jobs::open(&q, "t", "id-2").await.unwrap().len(), 4);
    // Every study's at once, for lists: the same counts.
    let backlog = trial_jobs::Backlog::of(&q).await.unwrap();
    for (name, id) in [("s", "id-1"), ("s", "id-0"), ("t", "id-2")] {
        assert_eq!(backlog.queued(name, id), 4, "{name} {id}");
    }
    assert_eq!(backlog.queued("u", "id-3"), 0);
    // Cancelling one study's leaves the others' alone.
    assert_eq!(trial_jobs::cancel(&q, "s", "id-1").await.unwrap(), 4);
    for id in &ours {
        assert_eq!(q.get(id).await.unwrap().status, JobStatus::Cancelled);
    }
    assert_eq!(trial_jobs::queued(&q, "s", "id-1").await.unwrap(), 0);
    assert_eq!(trial_jobs::Backlog::of(&q).await.unwrap().queued("s", "id-1"), 0);
    assert_eq!(trial_jobs::queued(&q, "s", "id-0").await.unwrap(), 4);
    assert_eq!(trial_jobs::queued(&q, "t", "id-2").await.unwrap(), 4);
}

on_both_backends!(
    a_multi_objective_study_keeps_each_value_and_its_pareto_front,
    a_studys_trial_jobs_are_found_by_its_id_and_older_ones_by_their_payload,
    an_enqueued_value_no_known_range_holds_is_refused_and_changes_nothing,
    ask_tell_trials_are_child_runs_and_tpe_improves_on_its_start,
    a_study_file_draws_its_declared_space_with_conditions_and_enqueued_trials_first,
    a_trial_whose_lease_expires_is_failed_and_its_run_too,
    concurrent_asks_get_distinct_numbers,
    pruning_reads_the_metric_steps_the_trial_run_logged,
    processes_sharing_a_store_see_each_others_changes,
    deleting_a_study_removes_it_and_frees_its_name,
);
