//! `slipway run -- CMD ARGS…`: any command as a tracked run. Records the command line, the git
//! commit and dirty state, the host, start and end, the exit status, and the command's stdout
//! and stderr as artifacts; the child sees `MLFLOW_TRACKING_URI` and `MLFLOW_RUN_ID`, so its own
//! mlflow logging lands in the same run.

use std::path::Path;
use std::process::{ExitCode, Stdio};

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::Global;
use crate::client::Client;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  slipway run -- python train.py --lr 0.01\n  slipway run --experiment fall-detection --name gbt-baseline -- make train\n  slipway run --input falls@3 -- python train.py   # the run reads falls@3 (lineage)"
)]
pub(crate) struct RunArgs {
    /// Experiment name (created if missing) [default: Default]
    #[arg(long, short)]
    experiment: Option<String>,
    /// Run name [default: generated]
    #[arg(long, short)]
    name: Option<String>,
    /// KEY=VALUE tags (repeatable)
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    tags: Vec<String>,
    /// A dataset version the run reads, NAME[@N] (repeatable): recorded as the run's input, so
    /// the version lists the run and the run links back
    #[arg(long = "input", value_name = "NAME@V")]
    inputs: Vec<String>,
    /// The command and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn quote(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

async fn experiment_id(client: &Client, name: &str) -> anyhow::Result<String> {
    let list: Value = client.get("/api/v1/experiments?view=all").await?;
    if let Some(e) =
        list["experiments"].as_array().and_then(|a| a.iter().find(|e| e["name"] == name))
    {
        if e["lifecycle_stage"] == "deleted" {
            anyhow::bail!("experiment {name:?} is deleted; restore it or pick another name");
        }
        return Ok(e["experiment_id"].as_str().unwrap_or("0").to_string());
    }
    let created: Value = client.post_json("/api/v1/experiments", &json!({ "name": name })).await?;
    Ok(created["experiment_id"].as_str().unwrap_or("0").to_string())
}

/// Copies `from` to both `to` (the terminal) and `file`, chunk by chunk.
/// A dataset version as MLflow's dataset input: name, the manifest digest as the digest, and a
/// `slipway://NAME@N` source, which is how versions find the runs that used them.
fn dataset_input(v: &Value) -> Value {
    let label = format!("{}@{}", v["dataset"].as_str().unwrap_or("?"), v["version"]);
    json!({
        "tags": [{"key": "mlflow.data.context", "value": "training"}],
        "dataset": {
            "name": v["dataset"],
            "digest": v["manifest"],
            "source_type": "slipway",
            "source": json!({"uri": format!("slipway://{label}")}).to_string(),
        },
    })
}

async fn tee(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    path: &Path,
) -> std::io::Result<()> {
    let mut file = tokio::fs::File::create(path).await?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        // A closed terminal must not stop the capture.
        let _ = to.write_all(&buf[..n]).await;
        let _ = to.flush().await;
        file.write_all(&buf[..n]).await?;
    }
    file.flush().await
}

pub(crate) async fn run(args: RunArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let experiment = args.experiment.unwrap_or_else(|| "Default".to_string());
    // Inputs are resolved first: a version that does not exist fails before anything runs.
    let mut inputs = Vec::new();
    for input in &args.inputs {
        let r = slipway_data::VersionRef::parse(input)?;
        let version = r.version.map(|v| v.to_string()).unwrap_or_else(|| "latest".into());
        let path = format!("/api/v1/datasets/{}/versions/{version}?limit=1", r.name);
        let found: Value = client.get(&path).await.with_context(|| format!("input {input}"))?;
        inputs.push(dataset_input(&found["version"]));
    }
    let experiment_id = experiment_id(&client, &experiment).await?;
    let command_line = args.command.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ");

    let mut tags = vec![
        json!({"key": "mlflow.source.name", "value": command_line}),
        json!({"key": "mlflow.source.type", "value": "LOCAL"}),
        json!({"key": "slipway.command", "value": command_line}),
        json!({"key": "slipway.host", "value": std::env::var("HOSTNAME").ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()))
            .unwrap_or_else(|| "unknown".into())}),
        json!({"key": "slipway.cwd", "value": std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default()}),
    ];
    if let Some(commit) = git(&["rev-parse", "HEAD"]) {
        tags.push(json!({"key": "mlflow.source.git.commit", "value": commit}));
        let dirty = git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
        tags.push(json!({"key": "slipway.git.dirty", "value": dirty.to_string()}));
        if let Some(branch) = git(&["rev-parse", "--abbrev-ref", "HEAD"]) {
            tags.push(json!({"key": "mlflow.source.git.branch", "value": branch}));
        }
    }
    for tag in &args.tags {
        let Some((k, v)) = tag.split_once('=') else {
            anyhow::bail!("tags are KEY=VALUE, got {tag:?}")
        };
        tags.push(json!({"key": k, "value": v}));
    }
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    tags.push(json!({"key": "mlflow.user", "value": user}));
    let mut create = json!({
        "experiment_id": experiment_id,
        "user_id": user,
        "start_time": slipway_core::now_ms(),
        "tags": tags,
    });
    if let Some(name) = &args.name {
        create["run_name"] = json!(name);
    }
    let created: Value = client.post_json("/api/2.0/mlflow/runs/create", &create).await?;
    let run_id = created["run"]["info"]["run_id"]
        .as_str()
        .context("the server did not return a run id")?
        .to_string();
    if !inputs.is_empty() {
        let body = json!({"run_id": run_id, "datasets": inputs});
        let _: Value = client.post_json("/api/2.0/mlflow/runs/log-inputs", &body).await?;
    }
    let artifact_uri =
        created["run"]["info"]["artifact_uri"].as_str().unwrap_or_default().to_string();
    let run_name = created["run"]["info"]["run_name"].as_str().unwrap_or_default().to_string();
    eprintln!("slipway: run {run_name} ({run_id}) in experiment {experiment:?}");

    let capture = tempfile::tempdir().context("creating a folder for the captured output")?;
    let (out_path, err_path) =
        (capture.path().join("stdout.txt"), capture.path().join("stderr.txt"));
    let spawned = tokio::process::Command::new(&args.command[0])
        .args(&args.command[1..])
        .env("MLFLOW_TRACKING_URI", client.base())
        .env("SLIPWAY_TRACKING_URI", client.base())
        .env("MLFLOW_RUN_ID", &run_id)
        .env("MLFLOW_EXPERIMENT_ID", &experiment_id)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            finish(&client, &run_id, "FAILED", None).await?;
            anyhow::bail!("cannot start {:?}: {e}", args.command[0]);
        }
    };
    let out = tee(child.stdout.take().context("no stdout")?, tokio::io::stdout(), &out_path);
    let err = tee(child.stderr.take().context("no stderr")?, tokio::io::stderr(), &err_path);
    let (status, out, err) = tokio::join!(
        async {
            tokio::select! {
                status = child.wait() => (status, false),
                _ = tokio::signal::ctrl_c() => (child.wait().await, true),
            }
        },
        out,
        err
    );
    let (status, interrupted) = status;
    let status = status.context("waiting for the command")?;
    out.context("capturing stdout")?;
    err.context("capturing stderr")?;

    let prefix =
        artifact_uri.strip_prefix("mlflow-artifacts:/").unwrap_or(&artifact_uri).to_string();
    for (name, path) in [("stdout.txt", &out_path), ("stderr.txt", &err_path)] {
        if let Err(e) = client
            .put_file(&format!("/api/2.0/mlflow-artifacts/artifacts/{prefix}/{name}"), path)
            .await
        {
            eprintln!("slipway: could not upload {name}: {e:#}");
        }
    }
    let code = status.code();
    let state = if interrupted || code.is_none() {
        "KILLED"
    } else if status.success() {
        "FINISHED"
    } else {
        "FAILED"
    };
    finish(&client, &run_id, state, code).await?;
    eprintln!(
        "slipway: run {run_name} {state} (exit status {})",
        code.map_or("signal".into(), |c| c.to_string())
    );
    Ok(ExitCode::from(code.unwrap_or(1).clamp(0, 255) as u8))
}

async fn finish(
    client: &Client,
    run_id: &str,
    status: &str,
    code: Option<i32>,
) -> anyhow::Result<()> {
    if let Some(code) = code {
        let tags = json!({"run_id": run_id, "tags": [{"key": "slipway.exit_code", "value": code.to_string()}]});
        let _: Value = client.post_json("/api/2.0/mlflow/runs/log-batch", &tags).await?;
    }
    let update = json!({"run_id": run_id, "status": status, "end_time": slipway_core::now_ms()});
    let _: Value = client.post_json("/api/2.0/mlflow/runs/update", &update).await?;
    Ok(())
}
