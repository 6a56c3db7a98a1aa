//! `slipway server`: health, errors, auth, metrics, OpenAPI, jobs over HTTP, shutdown.

use std::time::Duration;

use serde_json::{Value, json};
use slipway_core::{Backend, on_both_backends};

use crate::harness::{Server, eventually, run, spawn_server};

async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = client.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn health_ready_and_version(backend: Backend) {
    let s = Server::start(backend).await;
    let c = s.client();
    assert_eq!(get_json(&c, &format!("{}/health", s.url)).await, (200, json!({"status": "ok"})));
    let (status, ready) = get_json(&c, &format!("{}/ready", s.url)).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["checks"], json!({"metadata_store": "ok", "blob_store": "ok"}));
    assert!(ready["replica"].as_str().is_some_and(|r| r.len() >= 16), "{ready}");
    let (_, v) = get_json(&c, &format!("{}/api/v1/version", s.url)).await;
    assert_eq!(v["metadata_store"], backend.as_str());
    assert_eq!(v["auth_required"], false);
}

async fn jobs_run_through_the_http_api(backend: Backend) {
    let s = Server::start(backend).await;
    let c = s.client();
    let r = c
        .post(format!("{}/api/v1/jobs", s.url))
        .json(&json!({"kind": "diagnostic.sleep", "payload": {"seconds": 0.2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let job: Value = r.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    let url = format!("{}/api/v1/jobs/{id}", s.url);
    eventually(Duration::from_secs(20), "the in-process worker to finish the job", || {
        let c = c.clone();
        let url = url.clone();
        async move { get_json(&c, &url).await.1["status"] == "succeeded" }
    })
    .await;
    let (_, events) = get_json(&c, &format!("{url}/events")).await;
    let names: Vec<&str> =
        events["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names, ["enqueued", "claimed", "succeeded"]);
    let (_, list) = get_json(&c, &format!("{}/api/v1/jobs?status=succeeded", s.url)).await;
    assert_eq!(list["jobs"][0]["id"], id.as_str());
}

async fn a_nul_character_is_refused_alike_on_both_stores_and_changes_nothing(backend: Backend) {
    let s = Server::start(backend).await;
    let c = s.client();
    let post = |path: &str, body: &'static str| {
        let c = c.clone();
        let url = format!("{}{path}", s.url);
        async move {
            let r = c
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let refused = |(status, body): (u16, Value)| {
        assert_eq!(status, 400, "{body}");
        assert!(body["message"].as_str().is_some_and(|m| m.contains("NUL character")), "{body}");
    };
    // MLflow's API and the native one; a name, a tag, a param.
    refused(post("/api/2.0/mlflow/experiments/create", r#"{"name": "x\u0000y"}"#).await);
    refused(post("/api/v1/studies", r#"{"name": "s\u0000", "directions": ["minimize"]}"#).await);
    let (status, run) =
        post("/api/2.0/mlflow/runs/create", r#"{"experiment_id": "0", "run_name": "r"}"#).await;
    assert_eq!(status, 200, "{run}");
    let id = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
    let tag = format!(r#"{{"run_id": "{id}", "key": "k", "value": "a\u0000b"}}"#).leak();
    refused(post("/api/2.0/mlflow/runs/set-tag", tag).await);
    let param = format!(r#"{{"run_id": "{id}", "params": [{{"key": "p\u0000", "value": "1"}}]}}"#);
    refused(post("/api/2.0/mlflow/runs/log-batch", param.leak()).await);
    // In a URL too.
    refused(get_json(&c, &format!("{}/api/v1/studies/a%00b", s.url)).await);
    // An artifact is a file, not a value: a JSON one holding the escape is stored as sent.
    let file = r#"{"s": "a\u0000b"}"#;
    let at = format!("{}/api/2.0/mlflow-artifacts/artifacts/0/{id}/artifacts/d.json", s.url);
    let put =
        c.put(&at).header("content-type", "application/json").body(file).send().await.unwrap();
    assert_eq!(put.status().as_u16(), 200);
    assert_eq!(c.get(&at).send().await.unwrap().text().await.unwrap(), file);
    // Nothing of it stored.
    let (_, exps) =
        get_json(&c, &format!("{}/api/2.0/mlflow/experiments/search?max_results=100", s.url)).await;
    assert_eq!(exps["experiments"].as_array().map(Vec::len), Some(1), "{exps}");
    let (_, got) = get_json(&c, &format!("{}/api/2.0/mlflow/runs/get?run_id={id}", s.url)).await;
    assert!(
        got["run"]["data"]["tags"].as_array().is_none_or(|t| t.iter().all(|t| t["key"] != "k")),
        "{got}"
    );
    assert!(got["run"]["data"]["params"].is_null(), "{got}");
    let (_, studies) = get_json(&c, &format!("{}/api/v1/studies", s.url)).await;
    assert_eq!(studies["studies"], json!([]), "{studies}");
    // A backslash then the text u0000 is no NUL: stored as given.
    let (status, ok) = post("/api/2.0/mlflow/experiments/create", r#"{"name": "x\\u0000y"}"#).await;
    assert_eq!(status, 200, "{ok}");
    let eid = ok["experiment_id"].as_str().unwrap();
    let (_, e) =
        get_json(&c, &format!("{}/api/2.0/mlflow/experiments/get?experiment_id={eid}", s.url))
            .await;
    assert_eq!(e["experiment"]["name"], "x\\u0000y");
}

on_both_backends!(
    health_ready_and_version,
    jobs_run_through_the_http_api,
    a_nul_character_is_refused_alike_on_both_stores_and_changes_nothing
);

#[tokio::test]
async fn bad_requests_get_json_errors() {
    let s = Server::start(Backend::Sqlite).await;
    let c = s.client();
    let expect = |status: u16, code: &'static str| {
        move |(s, body): (u16, Value)| {
            assert_eq!(s, status, "{body}");
            assert_eq!(body["error_code"], code, "{body}");
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        }
    };
    expect(404, "ENDPOINT_NOT_FOUND")(get_json(&c, &format!("{}/no/such/route", s.url)).await);
    expect(404, "RESOURCE_DOES_NOT_EXIST")(
        get_json(&c, &format!("{}/api/v1/jobs/nope", s.url)).await,
    );
    expect(400, "INVALID_PARAMETER_VALUE")(
        get_json(&c, &format!("{}/api/v1/jobs?status=sleeping", s.url)).await,
    );
    expect(400, "INVALID_PARAMETER_VALUE")(
        get_json(&c, &format!("{}/api/v1/jobs?limit=0", s.url)).await,
    );
    expect(400, "INVALID_PARAMETER_VALUE")(
        get_json(&c, &format!("{}/api/v1/jobs?limit=many", s.url)).await,
    );
    let post = |body: &'static str, content_type: &'static str| {
        let c = c.clone();
        let url = format!("{}/api/v1/jobs", s.url);
        async move {
            let r =
                c.post(url).header("content-type", content_type).body(body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    expect(400, "MALFORMED_REQUEST")(post("{\"kind\": ", "application/json").await);
    expect(400, "MALFORMED_REQUEST")(post("[1, 2]", "application/json").await);
    expect(400, "MALFORMED_REQUEST")(
        post("{\"kind\": \"diagnostic.sleep\", \"extra\": 1}", "application/json").await,
    );
    expect(400, "BAD_REQUEST")(post("{}", "text/plain").await);
    // A path segment that is not a number: axum's own refusal, answered as JSON too.
    for number in ["abc", "-1", "99999999999999999999"] {
        let url = format!("{}/api/v1/studies/s/trials/{number}/tell", s.url);
        let r = c.post(url).json(&json!({"values": [1.0]})).send().await.unwrap();
        expect(400, "BAD_REQUEST")((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)));
    }
    expect(400, "INVALID_PARAMETER_VALUE")(
        post("{\"kind\": \"rm -rf\"}", "application/json").await,
    );
    expect(400, "INVALID_PARAMETER_VALUE")(
        post("{\"kind\": \"diagnostic.sleep\", \"max_attempts\": 0}", "application/json").await,
    );
    let r = c.delete(format!("{}/health", s.url)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.json::<Value>().await.unwrap()["error_code"], "METHOD_NOT_ALLOWED");
    // None of it enqueued anything.
    let (_, list) = get_json(&c, &format!("{}/api/v1/jobs", s.url)).await;
    assert_eq!(list["jobs"], json!([]));
}

#[tokio::test]
async fn a_token_guards_every_route_but_health() {
    let s = Server::start_with(Backend::Sqlite, &["--auth-token", "s3cret"]).await;
    let c = s.client();
    assert_eq!(get_json(&c, &format!("{}/health", s.url)).await.0, 200);
    for path in [
        "/api/v1/version",
        "/api/v1/jobs",
        "/ready",
        "/metrics",
        "/api/openapi.json",
        "/no/such/route",
    ] {
        let (status, body) = get_json(&c, &format!("{}{path}", s.url)).await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(body["error_code"], "UNAUTHENTICATED", "{path}");
        let r = c.get(format!("{}{path}", s.url)).bearer_auth("wrong").send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path} with a wrong token");
    }
    let r = c.get(format!("{}/api/v1/version", s.url)).bearer_auth("s3cret").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["auth_required"], true);
    // The UI's static shell holds no data and loads without the token.
    assert_eq!(c.get(format!("{}/", s.url)).send().await.unwrap().status().as_u16(), 200);
}

#[test]
fn a_public_address_without_a_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for host in ["0.0.0.0", "::"] {
        let out = run(dir.path(), &["server", "--host", host, "--port", "0", "--data-dir", "."]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("refusing to listen on") && stderr.contains("--auth-token"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty(), "it must not have started listening");
    }
}

#[tokio::test]
async fn a_public_address_with_a_token_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let (child, url, _) = spawn_server(
        dir.path(),
        &["server", "--host", "0.0.0.0", "--port", "0", "--data-dir", "."],
        &[("SLIPWAY_AUTH_TOKEN", "s3cret")],
    );
    assert!(url.starts_with("http://0.0.0.0:"), "{url}");
    let port = url.rsplit(':').next().unwrap();
    slipway_core::init_tls();
    let r = reqwest::get(format!("http://127.0.0.1:{port}/health")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    drop(child);
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let s = Server::start(Backend::Sqlite).await;
    let c = s.client();
    for _ in 0..3 {
        c.get(format!("{}/api/v1/jobs/abc", s.url)).send().await.unwrap();
    }
    c.get(format!("{}/nowhere", s.url)).send().await.unwrap();
    let r = c.get(format!("{}/metrics", s.url)).send().await.unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    assert!(
        text.contains(
            r#"slipway_http_requests_total{method="GET",route="/api/v1/jobs/{id}",status="404"} 3"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"slipway_http_requests_total{method="GET",route="unmatched",status="404"} 1"#
        )
    );
    assert!(text.contains(r#"slipway_http_request_duration_seconds_bucket{method="GET",route="/api/v1/jobs/{id}",status="404",le="+Inf"} 3"#));
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
    }
    // Every sample line is `name{labels} value` with a numeric value.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "bad sample: {line}");
    }
}

#[tokio::test]
async fn the_openapi_document_lists_the_native_api() {
    let s = Server::start(Backend::Sqlite).await;
    let (status, doc) = get_json(&s.client(), &format!("{}/api/openapi.json", s.url)).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/health",
        "/ready",
        "/api/v1/version",
        "/api/v1/jobs",
        "/api/v1/jobs/{id}",
        "/api/v1/jobs/{id}/cancel",
        "/api/v1/endpoints/{name}/traffic",
        "/api/v1/endpoints/{name}/feedback",
        "/api/v1/endpoints/{name}/abtest",
        "/api/v1/rollouts",
        "/api/v1/rollouts/{id}/{action}",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    assert!(paths["/api/v1/jobs"]["post"].is_object());
    assert!(paths["/api/v1/endpoints/{name}/traffic"]["put"].is_object());
}

#[tokio::test]
async fn the_ui_shell_is_served_with_a_strict_policy() {
    let s = Server::start(Backend::Sqlite).await;
    let r = s.client().get(format!("{}/", s.url)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let html = r.text().await.unwrap();
    assert!(html.contains("<title>Slipway</title>") && html.contains("/ui/app.js"));
    let js = s.client().get(format!("{}/ui/app.js", s.url)).send().await.unwrap();
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let mut s = Server::start(Backend::Sqlite).await;
    let c = s.client();
    assert_eq!(get_json(&c, &format!("{}/health", s.url)).await.0, 200);
    let pid = s.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "the server did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}; log:\n{}", s.log());
    assert!(s.log().contains("stopped"), "{}", s.log());
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight() {
    use std::io::{Read, Write};
    let mut s = Server::start(Backend::Sqlite).await;
    let addr = s.url.trim_start_matches("http://").to_string();
    let body = br#"{"kind": "diagnostic.sleep", "payload": {"seconds": 0}}"#;
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "POST /api/v1/jobs HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    conn.write_all(&body[..10]).unwrap();
    conn.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // The request is half sent when the server is told to stop.
    let pid = s.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(s.child.try_wait().unwrap().is_none(), "the server left before answering");
    conn.write_all(&body[10..]).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let status = s.child.wait().unwrap();
    assert!(status.success(), "{}", s.log());
}
