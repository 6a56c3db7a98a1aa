//! Concurrent logging on SQLite: 32 clients for 30 s lose nothing and never see "database is
//! locked"; a `kill -9` of the server under that load loses no acknowledged metric.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use slipway_core::Backend;

use crate::harness::{Server, kill9, spawn_server};

const CLIENTS: usize = 32;
const METRICS_PER_CALL: i64 = 20;

/// What one client got acknowledged: its run and the steps of every acknowledged batch.
struct Logged {
    run_id: String,
    acknowledged: Vec<i64>,
    refusals: Vec<String>,
}

async fn client_loop(url: String, stop: Arc<AtomicBool>, deadline: Instant) -> Logged {
    slipway_core::init_tls();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let created: Value = http
        .post(format!("{url}/api/2.0/mlflow/runs/create"))
        .json(&json!({"experiment_id": "0", "run_name": "load"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run_id = created["run"]["info"]["run_id"].as_str().unwrap().to_string();
    let mut logged = Logged { run_id, acknowledged: Vec::new(), refusals: Vec::new() };
    let mut batch = 0i64;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        let metrics: Vec<Value> = (0..METRICS_PER_CALL)
            .map(|i| json!({"key": "m", "value": (batch * 100 + i) as f64, "timestamp": batch, "step": batch * METRICS_PER_CALL + i}))
            .collect();
        let sent = http
            .post(format!("{url}/api/2.0/mlflow/runs/log-batch"))
            .json(&json!({"run_id": logged.run_id, "metrics": metrics}))
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => logged.acknowledged.push(batch),
            Ok(r) => {
                let status = r.status();
                logged.refusals.push(format!("{status}: {}", r.text().await.unwrap_or_default()));
            }
            // The server went away (the kill test): nothing was acknowledged for this batch.
            Err(_) => break,
        }
        batch += 1;
    }
    logged
}

async fn history_steps(url: &str, run_id: &str) -> Vec<i64> {
    let http = reqwest::Client::new();
    let mut steps = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut address = format!(
            "{url}/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=m&max_results=25000"
        );
        if let Some(t) = &token {
            address.push_str(&format!("&page_token={t}"));
        }
        let page: Value = http.get(address).send().await.unwrap().json().await.unwrap();
        for m in page["metrics"].as_array().map(|a| a.as_slice()).unwrap_or_default() {
            steps.push(m["step"].as_i64().unwrap());
        }
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => return steps,
        }
    }
}

fn check_present(logged: &[Logged], url: &str) -> impl std::future::Future<Output = usize> {
    let url = url.to_string();
    let expected: Vec<(String, Vec<i64>)> =
        logged.iter().map(|l| (l.run_id.clone(), l.acknowledged.clone())).collect();
    async move {
        let mut total = 0;
        for (run_id, batches) in expected {
            let steps: std::collections::HashSet<i64> =
                history_steps(&url, &run_id).await.into_iter().collect();
            for batch in batches {
                for i in 0..METRICS_PER_CALL {
                    assert!(
                        steps.contains(&(batch * METRICS_PER_CALL + i)),
                        "run {run_id} lost step {}",
                        batch * METRICS_PER_CALL + i
                    );
                    total += 1;
                }
            }
        }
        total
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_clients_for_thirty_seconds_on_sqlite() {
    let s = Server::start(Backend::Sqlite).await;
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(30);
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(client_loop(s.url.clone(), stop.clone(), deadline)))
        .collect();
    let mut logged = Vec::new();
    for t in tasks {
        logged.push(t.await.unwrap());
    }
    let refusals: Vec<&String> = logged.iter().flat_map(|l| &l.refusals).collect();
    assert!(
        refusals.is_empty(),
        "{} requests refused, e.g. {:?}",
        refusals.len(),
        refusals.first()
    );
    assert!(!s.log().contains("database is locked"), "the server log mentions a locked database");
    let total = check_present(&logged, &s.url).await;
    assert!(total > 0);
    eprintln!("{CLIENTS} clients, 30 s: {total} acknowledged metrics, all present");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_load_loses_no_acknowledged_metric() {
    let s = Server::start(Backend::Sqlite).await;
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(60);
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(client_loop(s.url.clone(), stop.clone(), deadline)))
        .collect();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut s = s;
    kill9(&mut s.child);
    stop.store(true, Ordering::Relaxed);
    let mut logged = Vec::new();
    for t in tasks {
        logged.push(t.await.unwrap());
    }
    let acknowledged: usize = logged.iter().map(|l| l.acknowledged.len()).sum();
    assert!(acknowledged > 0, "nothing was logged before the kill");

    // Restart on the same data folder and database.
    let dir = s.dir_path().to_path_buf();
    let db = s.db_url.clone();
    let (_restarted, url, _) =
        spawn_server(&dir, &["server", "--port", "0", "--data-dir", ".", "--db", &db], &[]);
    let total = check_present(&logged, &url).await;
    eprintln!("killed under load: {total} acknowledged metrics, all present after restart");
}
