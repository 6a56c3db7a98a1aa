//! The job queue and the worker loop, stepped deterministically.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use slipway_core::jobs::{
    Handlers, JobError, JobStatus, NewJob, Queue, QueueOptions, Worker, WorkerOptions,
};
use slipway_core::testing::TestDb;
use slipway_core::{Backend, Error, on_both_backends};

/// Leases long enough that heartbeats keep them on a loaded machine.
fn fast() -> QueueOptions {
    QueueOptions {
        lease: Duration::from_millis(1500),
        backoff_base: Duration::from_millis(0),
        backoff_max: Duration::from_millis(0),
    }
}

/// Short leases, for tests where nobody heartbeats and the lease is meant to run out.
fn expiring() -> QueueOptions {
    QueueOptions { lease: Duration::from_millis(300), ..fast() }
}

async fn queue(backend: Backend, options: QueueOptions) -> (TestDb, Queue) {
    let t = TestDb::new(backend).await;
    let q = Queue::open(t.db.clone(), options).await.unwrap();
    (t, q)
}

fn worker(q: &Queue, id: &str, handlers: Handlers) -> Worker {
    Worker::new(
        q.clone(),
        handlers,
        WorkerOptions { id: id.into(), poll_interval: Duration::from_millis(20) },
    )
}

async fn events(q: &Queue, id: &str) -> Vec<String> {
    q.events(id).await.unwrap().into_iter().map(|e| format!("{}#{}", e.event, e.attempt)).collect()
}

async fn a_job_runs_to_success(backend: Backend) {
    let (_t, q) = queue(backend, fast()).await;
    let job = q.enqueue(NewJob::new("echo", json!({"x": 41}))).await.unwrap();
    assert_eq!(job.status, JobStatus::Queued);
    let mut handlers = Handlers::new();
    handlers.register("echo", |ctx| async move {
        ctx.progress("adding", 1, Some(1)).await?;
        Ok(json!({"y": ctx.payload()["x"].as_i64().unwrap() + 1}))
    });
    let w = worker(&q, "w1", handlers);
    let done = w.step().await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.result, Some(json!({"y": 42})));
    assert_eq!(done.progress, Some(json!({"step": "adding", "done": 1, "total": 1})));
    assert_eq!(done.attempts, 1);
    assert!(done.finished_at.is_some());
    assert_eq!(events(&q, &job.id).await, ["enqueued#0", "claimed#1", "succeeded#1"]);
    assert!(w.step().await.unwrap().is_none(), "nothing else is due");
}

async fn claims_are_exclusive(backend: Backend) {
    let (_t, q) = queue(backend, QueueOptions::default()).await;
    for i in 0..40 {
        q.enqueue(NewJob::new("k", json!({"i": i}))).await.unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..8 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(lease) = q.claim(&format!("w{w}"), &["k"]).await.unwrap() {
                mine.push(lease.job.id.clone());
                q.complete(&lease, &json!(null)).await.unwrap();
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 40, "every job claimed once");
    assert_eq!(unique.len(), 40);
}

async fn only_known_kinds_are_claimed(backend: Backend) {
    let (_t, q) = queue(backend, fast()).await;
    q.enqueue(NewJob::new("other", json!({}))).await.unwrap();
    assert!(q.claim("w", &["mine"]).await.unwrap().is_none());
    assert!(q.claim("w", &[]).await.unwrap().is_none());
    assert!(q.claim("w", &["mine", "other"]).await.unwrap().is_some());
}

async fn failures_retry_with_backoff_then_fail(backend: Backend) {
    let opts = QueueOptions {
        backoff_base: Duration::from_millis(400),
        backoff_max: Duration::from_secs(10),
        ..fast()
    };
    let (_t, q) = queue(backend, opts).await;
    let job =
        q.enqueue(NewJob { max_attempts: 2, ..NewJob::new("flaky", json!({})) }).await.unwrap();
    let mut handlers = Handlers::new();
    handlers.register("flaky", |_ctx| async move {
        Err::<serde_json::Value, _>(JobError::Retry("boom".into()))
    });
    let w = worker(&q, "w", handlers);
    let after_first = w.step().await.unwrap().unwrap();
    assert_eq!(after_first.status, JobStatus::Queued);
    assert_eq!(after_first.error.as_deref(), Some("boom"));
    assert!(after_first.run_after > after_first.updated_at, "backoff sets run_after ahead");
    assert!(w.step().await.unwrap().is_none(), "not due before its backoff");
    tokio::time::sleep(Duration::from_millis(450)).await;
    let after_second = w.step().await.unwrap().unwrap();
    assert_eq!(after_second.status, JobStatus::Failed);
    assert_eq!(after_second.attempts, 2);
    assert_eq!(
        events(&q, &job.id).await,
        ["enqueued#0", "claimed#1", "retry#1", "claimed#2", "failed#2"]
    );
}

async fn fatal_errors_and_panics(backend: Backend) {
    let (_t, q) = queue(backend, fast()).await;
    let fatal = q.enqueue(NewJob::new("fatal", json!({}))).await.unwrap();
    let mut handlers = Handlers::new();
    handlers.register("fatal", |_ctx| async move {
        Err::<serde_json::Value, _>(JobError::Fatal("bad input".into()))
    });
    handlers.register("panics", |_ctx| async move {
        if true {
            panic!("handler bug");
        }
        Ok(json!(null))
    });
    let w = worker(&q, "w", handlers);
    let done = w.step().await.unwrap().unwrap();
    assert_eq!(done.id, fatal.id);
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(done.attempts, 1, "fatal errors are not retried");
    let panicky =
        q.enqueue(NewJob { max_attempts: 1, ..NewJob::new("panics", json!({})) }).await.unwrap();
    let done = w.step().await.unwrap().unwrap();
    assert_eq!(done.id, panicky.id);
    assert_eq!(done.status, JobStatus::Failed);
    assert!(done.error.unwrap().contains("panicked"));
}

async fn an_expired_lease_is_taken_over_and_completes_once(backend: Backend) {
    let (_t, q) = queue(backend, expiring()).await;
    let job = q.enqueue(NewJob::new("k", json!({}))).await.unwrap();
    // Worker A claims and then "dies": no heartbeat, no completion.
    let a = q.claim("a", &["k"]).await.unwrap().unwrap();
    assert!(q.claim("b", &["k"]).await.unwrap().is_none(), "held while the lease lasts");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let b = q.claim("b", &["k"]).await.unwrap().unwrap();
    assert_eq!(b.job.attempts, 2);
    // A comes back from the dead: everything it tries is refused.
    assert!(matches!(q.heartbeat(&a).await, Err(Error::LeaseLost { .. })));
    assert!(matches!(q.complete(&a, &json!("a")).await, Err(Error::LeaseLost { .. })));
    let done = q.complete(&b, &json!("b")).await.unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.result, Some(json!("b")));
    assert!(matches!(q.complete(&b, &json!("again")).await, Err(Error::LeaseLost { .. })));
    let evs = events(&q, &job.id).await;
    assert_eq!(evs, ["enqueued#0", "claimed#1", "claimed#2", "succeeded#2"]);
}

async fn a_lease_expiring_on_the_last_attempt_fails_the_job(backend: Backend) {
    let (_t, q) = queue(backend, expiring()).await;
    let job = q.enqueue(NewJob { max_attempts: 1, ..NewJob::new("k", json!({})) }).await.unwrap();
    let _lost = q.claim("a", &["k"]).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(q.claim("b", &["k"]).await.unwrap().is_none());
    let job = q.get(&job.id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.error.unwrap().contains("stopped answering"));
}

async fn heartbeats_keep_a_long_job(backend: Backend) {
    let (_t, q) = queue(backend, fast()).await;
    q.enqueue(NewJob::new("slow", json!({}))).await.unwrap();
    let mut handlers = Handlers::new();
    handlers.register("slow", |_ctx| async move {
        tokio::time::sleep(Duration::from_millis(4000)).await;
        Ok(json!("done"))
    });
    let w = worker(&q, "w", handlers);
    let q2 = q.clone();
    let thief = tokio::spawn(async move {
        let mut stolen = 0;
        for _ in 0..14 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if q2.claim("thief", &["slow"]).await.unwrap().is_some() {
                stolen += 1;
            }
        }
        stolen
    });
    let done = w.step().await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.attempts, 1);
    assert_eq!(thief.await.unwrap(), 0, "a heartbeating job was taken over");
}

async fn cancelling_queued_and_running_jobs(backend: Backend) {
    let (_t, q) = queue(backend, fast()).await;
    let queued = q.enqueue(NewJob::new("other", json!({}))).await.unwrap();
    assert_eq!(q.cancel(&queued.id).await.unwrap().status, JobStatus::Cancelled);
    assert!(q.claim("w", &["other"]).await.unwrap().is_none(), "a cancelled job never runs");

    let running = q.enqueue(NewJob::new("waits", json!({}))).await.unwrap();
    let observed = Arc::new(AtomicUsize::new(0));
    let seen = observed.clone();
    let mut handlers = Handlers::new();
    handlers.register("waits", move |ctx| {
        let seen = seen.clone();
        async move {
            ctx.cancelled().await;
            seen.fetch_add(1, Ordering::SeqCst);
            Err::<serde_json::Value, _>(JobError::Cancelled)
        }
    });
    let w = worker(&q, "w", handlers);
    let q2 = q.clone();
    let id = running.id.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let j = q2.cancel(&id).await.unwrap();
        assert_eq!(j.status, JobStatus::Running);
        assert!(j.cancel_requested);
    });
    let done = w.step().await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Cancelled);
    assert_eq!(observed.load(Ordering::SeqCst), 1);
    assert_eq!(q.cancel(&running.id).await.unwrap().status, JobStatus::Cancelled, "idempotent");
    assert!(matches!(q.cancel("nope").await, Err(Error::JobNotFound { .. })));
}

async fn the_open_jobs_of_a_subject_are_all_listed_past_lists_limit(backend: Backend) {
    let (_t, q) = queue(backend, fast()).await;
    let about = |subject: &str, i: i64| NewJob {
        subject: Some(subject.to_string()),
        ..NewJob::new("batch", json!({ "i": i }))
    };
    // More than `list` ever returns, between jobs of another subject, of no subject, and of
    // another kind with the same subject.
    for i in 0..1_100 {
        q.enqueue(about("a", i)).await.unwrap();
        // (Not before the first two, which are claimed below.)
        if i % 100 == 50 {
            q.enqueue(about("b", i)).await.unwrap();
            q.enqueue(NewJob::new("batch", json!({ "i": i }))).await.unwrap();
            q.enqueue(NewJob { subject: Some("a".into()), ..NewJob::new("other", json!({})) })
                .await
                .unwrap();
        }
    }
    assert_eq!(q.list(Some(JobStatus::Queued), 100_000).await.unwrap().len(), 1_000);
    let running = q.claim("w", &["batch"]).await.unwrap().unwrap();
    let done = q.claim("w", &["batch"]).await.unwrap().unwrap();
    assert_eq!(
        (running.job.subject.as_deref(), done.job.subject.as_deref()),
        (Some("a"), Some("a"))
    );
    q.complete(&done, &json!(null)).await.unwrap();
    let cancelled = q.enqueue(about("a", -1)).await.unwrap();
    q.cancel(&cancelled.id).await.unwrap();
    // Every batch job about "a" queued or running, the claimed one too; none ended; oldest first.
    let open = q.open_of("batch", Some("a")).await.unwrap();
    assert_eq!(open.len(), 1_099);
    assert!(
        open.iter().all(|j| j.kind == "batch"
            && j.subject.as_deref() == Some("a")
            && !j.status.is_final())
    );
    let running_now: Vec<&str> =
        open.iter().filter(|j| j.status == JobStatus::Running).map(|j| j.id.as_str()).collect();
    assert_eq!(running_now, [running.job.id.as_str()]);
    let mut seen: Vec<i64> = open.iter().map(|j| j.payload["i"].as_i64().unwrap()).collect();
    let ended = [done.job.payload["i"].as_i64().unwrap(), -1];
    assert!(ended.iter().all(|i| !seen.contains(i)));
    assert!(open.windows(2).all(|w| w[0].created_at <= w[1].created_at));
    seen.sort();
    assert_eq!(seen, (0..1_100).filter(|i| !ended.contains(i)).collect::<Vec<_>>());
    // The other subject's, and those of none.
    let b = q.open_of("batch", Some("b")).await.unwrap();
    assert_eq!(b.len(), 11);
    let none = q.open_of("batch", None).await.unwrap();
    assert_eq!(none.len(), 11);
    assert!(none.iter().all(|j| j.subject.is_none()));
    assert_eq!(q.open_of("other", Some("a")).await.unwrap().len(), 11);
    assert!(q.open_of("none", Some("a")).await.unwrap().is_empty());
    // A subject past 200 characters is refused, and nothing is queued.
    let before = q.counts().await.unwrap();
    let long = NewJob { subject: Some("x".repeat(201)), ..NewJob::new("batch", json!({})) };
    assert!(matches!(q.enqueue(long).await, Err(Error::InvalidArgument(_))));
    assert_eq!(q.counts().await.unwrap(), before);
}

async fn handler_writes_commit_with_the_completion(backend: Backend) {
    let (t, q) = queue(backend, expiring()).await;
    sqlx::query("CREATE TABLE effects (job_id TEXT NOT NULL)").execute(t.db.pool()).await.unwrap();
    let job = q.enqueue(NewJob::new("k", json!({}))).await.unwrap();
    let stale = q.claim("a", &["k"]).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    let fresh = q.claim("b", &["k"]).await.unwrap().unwrap();
    for lease in [&stale, &fresh] {
        let mut tx = t.db.pool().begin().await.unwrap();
        sqlx::query("INSERT INTO effects (job_id) VALUES ($1)")
            .bind(&job.id)
            .execute(&mut *tx)
            .await
            .unwrap();
        match q.complete_in(&mut tx, lease, &json!(lease.worker)).await {
            Ok(()) => tx.commit().await.unwrap(),
            Err(Error::LeaseLost { .. }) => tx.rollback().await.unwrap(),
            Err(e) => panic!("{e}"),
        }
    }
    let n: i64 = sqlx::Row::try_get(
        &sqlx::query("SELECT COUNT(*) AS n FROM effects").fetch_one(t.db.pool()).await.unwrap(),
        "n",
    )
    .unwrap();
    assert_eq!(n, 1, "the stale worker's effect was rolled back with its refused completion");
    assert_eq!(q.get(&job.id).await.unwrap().result, Some(json!("b")));
}

async fn shutdown_releases_the_job(backend: Backend) {
    let (_t, q) = queue(backend, QueueOptions::default()).await;
    let job = q.enqueue(NewJob::new("forever", json!({}))).await.unwrap();
    let mut handlers = Handlers::new();
    handlers.register("forever", |_ctx| async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(json!(null))
    });
    let w = worker(&q, "w", handlers);
    let run =
        tokio::spawn(async move { w.run(tokio::time::sleep(Duration::from_millis(300))).await });
    tokio::time::timeout(Duration::from_secs(10), run).await.expect("worker stopped").unwrap();
    let j = q.get(&job.id).await.unwrap();
    assert_eq!(j.status, JobStatus::Queued, "released for another worker");
    assert_eq!(j.attempts, 0, "a release does not use up an attempt");
    assert!(events(&q, &job.id).await.contains(&"released#1".to_string()));
}

async fn bad_jobs_are_refused(backend: Backend) {
    let (_t, q) = queue(backend, fast()).await;
    let err =
        q.enqueue(NewJob { max_attempts: 0, ..NewJob::new("k", json!({})) }).await.unwrap_err();
    assert_eq!(err.code().http_status(), 400);
    let err = q.enqueue(NewJob::new("", json!({}))).await.unwrap_err();
    assert_eq!(err.code().http_status(), 400);
    assert!(q.list(None, 10).await.unwrap().is_empty(), "nothing was written");
}

on_both_backends!(
    a_job_runs_to_success,
    claims_are_exclusive,
    only_known_kinds_are_claimed,
    failures_retry_with_backoff_then_fail,
    fatal_errors_and_panics,
    an_expired_lease_is_taken_over_and_completes_once,
    a_lease_expiring_on_the_last_attempt_fails_the_job,
    heartbeats_keep_a_long_job,
    cancelling_queued_and_running_jobs,
    the_open_jobs_of_a_subject_are_all_listed_past_lists_limit,
    handler_writes_commit_with_the_completion,
    shutdown_releases_the_job,
    bad_jobs_are_refused,
);
