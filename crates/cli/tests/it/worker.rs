//! `slipway worker`: a worker killed with `kill -9` while holding a job; another finishes it.

use std::time::Duration;

use serde_json::json;
use slipway_core::jobs::{JobStatus, NewJob, Queue, QueueOptions};
use slipway_core::{Backend, Db, DbOptions, on_both_backends};

use crate::harness::{Proc, eventually, kill9, slipway};

async fn a_killed_workers_job_completes_once_elsewhere(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (db_url, _keep) = slipway_core::testing::test_db_url(backend).await;
    std::fs::write(dir.path().join("slipway.toml"), "[jobs]\nlease_secs = 1\npoll_ms = 50\n")
        .unwrap();
    let db = Db::connect(&db_url, &DbOptions::default()).await.unwrap();
    let queue = Queue::open(db, QueueOptions::default()).await.unwrap();
    let job =
        queue.enqueue(NewJob::new("diagnostic.sleep", json!({"seconds": 2.0}))).await.unwrap();

    let start_worker = |id: &str| {
        Proc(
            slipway(dir.path())
                .args(["worker", "--data-dir", ".", "--db", &db_url, "--id", id])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut a = start_worker("worker-a");
    eventually(Duration::from_secs(20), "worker A to hold the job", || {
        let queue = queue.clone();
        let id = job.id.clone();
        async move {
            let j = queue.get(&id).await.unwrap();
            j.status == JobStatus::Running && j.lease_owner.as_deref() == Some("worker-a")
        }
    })
    .await;
    kill9(&mut a);

    let b = start_worker("worker-b");
    eventually(Duration::from_secs(30), "worker B to finish the job", || {
        let queue = queue.clone();
        let id = job.id.clone();
        async move { queue.get(&id).await.unwrap().status.is_final() }
    })
    .await;
    drop(b);

    let done = queue.get(&job.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Succeeded, "{done:?}");
    assert_eq!(done.attempts, 2);
    assert_eq!(done.result.as_ref().unwrap()["worker"], "worker-b");
    let events: Vec<(String, Option<String>)> =
        queue.events(&job.id).await.unwrap().into_iter().map(|e| (e.event, e.worker)).collect();
    let claims: Vec<_> =
        events.iter().filter(|(e, _)| e == "claimed").map(|(_, w)| w.clone().unwrap()).collect();
    assert_eq!(claims, ["worker-a", "worker-b"]);
    let completions: Vec<_> = events.iter().filter(|(e, _)| e == "succeeded").collect();
    assert_eq!(completions.len(), 1, "completed exactly once: {events:?}");
    assert_eq!(completions[0].1.as_deref(), Some("worker-b"));
}

on_both_backends!(a_killed_workers_job_completes_once_elsewhere);
