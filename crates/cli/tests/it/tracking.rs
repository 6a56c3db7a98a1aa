//! `slipway run`, `slipway runs …` and `slipway experiments …` against a real server.

use serde_json::Value;
use slipway_core::{Backend, on_both_backends};

use crate::harness::{Server, slipway};

fn run_cli(dir: &std::path::Path, url: &str, args: &[&str]) -> std::process::Output {
    slipway(dir)
        .arg("--server")
        .arg(url)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn a_command_becomes_a_tracked_run(backend: Backend) {
    let s = Server::start(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let script = "echo \"run=$MLFLOW_RUN_ID uri=$MLFLOW_TRACKING_URI\"; echo warn >&2; exit 3";
    let out = run_cli(
        dir.path(),
        &s.url,
        &["run", "-e", "falls", "-n", "baseline", "--tag", "k=v", "--", "sh", "-c", script],
    );
    assert_eq!(out.status.code(), Some(3), "the command's exit status is passed through");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains(&format!("uri={}", s.url)), "{stdout}");
    let run_id =
        stdout.split("run=").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    assert_eq!(run_id.len(), 32, "{stdout}");

    let shown = json(&run_cli(dir.path(), &s.url, &["--json", "runs", "show", &run_id]));
    assert_eq!(shown["name"], "baseline");
    assert_eq!(shown["status"], "FAILED");
    assert!(shown["end_time"].is_i64());
    assert_eq!(shown["tags"]["slipway.exit_code"], "3");
    assert_eq!(shown["tags"]["k"], "v");
    assert!(shown["tags"]["slipway.command"].as_str().unwrap().starts_with("sh -c "));
    assert!(shown["tags"]["slipway.host"].is_string());

    // stdout and stderr were captured as artifacts.
    let artifact = |name: &str| {
        let url = format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{}/{run_id}/artifacts/{name}",
            s.url,
            shown["experiment_id"].as_str().unwrap()
        );
        let c = s.client();
        async move { c.get(url).send().await.unwrap().text().await.unwrap() }
    };
    assert!(artifact("stdout.txt").await.contains(&format!("run={run_id}")));
    assert_eq!(artifact("stderr.txt").await, "warn\n");

    let ok = run_cli(dir.path(), &s.url, &["run", "-e", "falls", "--", "true"]);
    assert!(ok.status.success());
    let list = json(&run_cli(
        dir.path(),
        &s.url,
        &["--json", "runs", "list", "-e", "falls", "--filter", "attributes.status = 'FINISHED'"],
    ));
    assert_eq!(list["runs"].as_array().unwrap().len(), 1);

    let table =
        run_cli(dir.path(), &s.url, &["runs", "list", "-e", "falls", "--columns", "tags.k"]);
    let text = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(
        text.starts_with("RUN ID") && text.contains("baseline") && text.contains("TAGS.K"),
        "{text}"
    );

    let other = list["runs"][0]["run_id"].as_str().unwrap().to_string();
    let compare = run_cli(dir.path(), &s.url, &["runs", "compare", &run_id, &other]);
    let text = String::from_utf8_lossy(&compare.stdout).to_string();
    assert!(
        compare.status.success() && text.contains("baseline") && text.contains("differs"),
        "{text}"
    );

    let deleted = json(&run_cli(dir.path(), &s.url, &["--json", "runs", "delete", &run_id]));
    assert_eq!(deleted["lifecycle_stage"], "deleted");
    let list = json(&run_cli(dir.path(), &s.url, &["--json", "runs", "list", "-e", "falls"]));
    assert_eq!(list["runs"].as_array().unwrap().len(), 1);
}

on_both_backends!(a_command_becomes_a_tracked_run);

#[tokio::test]
async fn experiments_and_bad_input_from_the_cli() {
    let s = Server::start(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let created = json(&run_cli(
        dir.path(),
        &s.url,
        &["--json", "experiments", "create", "ward-7", "--tag", "site=north"],
    ));
    assert_eq!(created["name"], "ward-7");
    assert_eq!(created["tags"]["site"], "north");
    let list = run_cli(dir.path(), &s.url, &["experiments", "list"]);
    let text = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(
        text.starts_with("ID") && text.contains("ward-7") && text.contains("Default"),
        "{text}"
    );

    for args in [
        &["experiments", "create", "ward-7"][..],
        &["runs", "list", "--filter", "metrics.acc >>> 1"],
        &["runs", "show", "nope"],
        &["run", "--", "/no/such/program"],
    ] {
        let out = run_cli(dir.path(), &s.url, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: {stderr}");
    }
}
