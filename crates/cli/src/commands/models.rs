//! `slipway models …`: the registry of a server (`register`, `list`, `show`, `alias`,
//! `delete`), and local work on model files (`time` measures what one call of an ONNX model
//! costs in Slipway's runtime, its compute without any request handling).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::Global;
use crate::client::Client;
use crate::commands::runs::encode;
use crate::output::cell as text;
use crate::output::{table, time as when};

#[derive(Debug, Subcommand)]
pub(crate) enum ModelsCommand {
    /// Register a new version of a model (created on first use) from a run's artifacts or an
    /// ONNX file; the ONNX graph's inputs and outputs become the version's signature
    #[command(after_help = "Examples:\n  \
        slipway models register falls --source runs:/3f2a…/model\n  \
        slipway models register falls rf.onnx --run 3f2a… --description \"20 trees\"\n  \
        slipway models register falls rf.onnx --alias challenger")]
    Register {
        /// The registered model's name
        name: String,
        /// An ONNX file to upload (instead of --source)
        file: Option<PathBuf>,
        /// Stored artifacts: runs:/RUN_ID/PATH, models:/MODEL_ID or mlflow-artifacts:/PATH
        #[arg(long, conflicts_with = "file")]
        source: Option<String>,
        /// The run that trained it (links the version to the run and its datasets)
        #[arg(long, value_name = "RUN_ID")]
        run: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// Point this alias at the new version
        #[arg(long)]
        alias: Option<String>,
    },
    /// List registered models
    #[command(after_help = "Examples:\n  \
        slipway models list\n  \
        slipway models list --filter \"name LIKE 'fall%'\" --json")]
    List {
        /// MLflow's registry filter: name LIKE 'x%', tags.team = 'vision'
        #[arg(long, default_value = "")]
        filter: String,
    },
    /// Show a model and its versions, or one version (NAME@VERSION, NAME@ALIAS, NAME@latest)
    #[command(after_help = "Examples:\n  \
        slipway models show falls\n  \
        slipway models show falls@champion --json")]
    Show {
        /// NAME or NAME@REF
        model: String,
    },
    /// Point an alias at a version (moving it if it pointed elsewhere), or delete it
    #[command(after_help = "Examples:\n  \
        slipway models alias falls champion 3\n  \
        slipway models alias falls champion --delete")]
    Alias {
        name: String,
        alias: String,
        /// The version number (not with --delete)
        #[arg(required_unless_present = "delete")]
        version: Option<i64>,
        #[arg(long, conflicts_with = "version")]
        delete: bool,
    },
    /// Delete a model with all its versions, or one version (NAME@VERSION)
    #[command(after_help = "Examples:\n  \
        slipway models delete falls@2\n  \
        slipway models delete falls")]
    Delete {
        /// NAME or NAME@VERSION
        model: String,
    },
    /// Time calls of an ONNX model in Slipway's runtime: load and optimise it once, then run
    /// batches of the given rows and report the median, p10 and p90 per call
    #[command(after_help = "Examples:\n  \
        slipway models time rf.onnx --rows rows.json --batch 1 --iters 2000\n  \
        slipway models time rf.onnx --rows rows.json --batch 256 --json")]
    Time {
        /// The ONNX file
        model: PathBuf,
        /// A JSON list of rows (lists of numbers) to feed, cycled as needed
        #[arg(long)]
        rows: PathBuf,
        /// Rows per call
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Calls to time (after 10% as many warm-up calls)
        #[arg(long, default_value_t = 1000)]
        iters: usize,
    },
}

pub(crate) async fn run(cmd: ModelsCommand, global: &Global) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelsCommand::Time { model, rows, batch, iters } => {
            time(&model, &rows, batch, iters, global)
        }
        ModelsCommand::Register { name, file, source, run, description, alias } => {
            register(global, &name, file, source, run, description, alias).await
        }
        ModelsCommand::List { filter } => list(global, &filter).await,
        ModelsCommand::Show { model } => show(global, &model).await,
        ModelsCommand::Alias { name, alias, version, delete } => {
            let client = Client::new(global)?;
            let path = format!("/api/v1/models/{}/aliases/{}", encode(&name), encode(&alias));
            if delete {
                let _: Value = client.delete(&path).await?;
                if global.json {
                    crate::output::json(&json!({"name": name, "alias": alias, "deleted": true}))?;
                } else {
                    println!("alias {alias} of {name} deleted");
                }
            } else {
                let version = version.context("give the version the alias points at")?;
                let v: Value = client.put_json(&path, &json!({ "version": version })).await?;
                if global.json {
                    crate::output::json(&v)?;
                } else {
                    println!("{name}@{alias} -> version {version}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Delete { model } => {
            let client = Client::new(global)?;
            let path = match model.split_once('@') {
                Some((name, v)) => {
                    if v.parse::<i64>().is_err() {
                        bail!("delete a version by number (NAME@3), not by alias or latest");
                    }
                    format!("/api/v1/models/{}/versions/{v}", encode(name))
                }
                None => format!("/api/v1/models/{}", encode(&model)),
            };
            let _: Value = client.delete(&path).await?;
            if global.json {
                crate::output::json(&json!({"deleted": model}))?;
            } else {
                println!("{model} deleted");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `prod→1 canary→2`.
fn alias_chips(aliases: &Value) -> String {
    let parts: Vec<String> = aliases
        .as_object()
        .map(|m| m.iter().map(|(a, v)| format!("{a}→{v}")).collect())
        .unwrap_or_default();
    if parts.is_empty() { "-".into() } else { parts.join(" ") }
}

async fn register(
    global: &Global,
    name: &str,
    file: Option<PathBuf>,
    source: Option<String>,
    run: Option<String>,
    description: String,
    alias: Option<String>,
) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let base = format!("/api/v1/models/{}/versions", encode(name));
    let v: Value = match (file, source) {
        (Some(file), None) => {
            let file_name = file
                .file_name()
                .and_then(|f| f.to_str())
                .context("the model file needs a file name")?
                .to_string();
            let mut path = format!("{base}?file_name={}", encode(&file_name));
            if let Some(run) = &run {
                path.push_str(&format!("&run_id={}", encode(run)));
            }
            if !description.is_empty() {
                path.push_str(&format!("&description={}", encode(&description)));
            }
            client.post_file(&path, &file).await?
        }
        (None, Some(source)) => {
            let body = json!({"source": source, "run_id": run, "description": description});
            client.post_json(&base, &body).await?
        }
        _ => bail!("give an ONNX file or --source runs:/RUN_ID/PATH"),
    };
    let version = v["version"].as_i64().context("the server's answer has no version")?;
    if let Some(alias) = &alias {
        let path = format!("/api/v1/models/{}/aliases/{}", encode(name), encode(alias));
        let _: Value = client.put_json(&path, &json!({ "version": version })).await?;
    }
    if global.json {
        crate::output::json(&v)?;
    } else {
        let alias = alias.map(|a| format!(" ({name}@{a})")).unwrap_or_default();
        println!("registered {name} version {version}{alias}");
        print_signature(&v["signature"]);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_signature(sig: &Value) {
    let spec = |t: &Value| {
        let shape: Vec<String> = t["shape"]
            .as_array()
            .map(|dims| {
                dims.iter()
                    .map(|d| match d {
                        Value::Number(n) => n.to_string(),
                        Value::String(s) => s.clone(),
                        _ => "?".into(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        match t["elem_type"].as_str() {
            Some(e) => format!("{}: {e}[{}]", text(&t["name"]), shape.join(", ")),
            None => format!("{}: {}", text(&t["name"]), text(&t["kind"])),
        }
    };
    for (label, key) in [("inputs", "inputs"), ("outputs", "outputs")] {
        if let Some(list) = sig[key].as_array() {
            let specs: Vec<String> = list.iter().map(spec).collect();
            println!("  {label:<8} {}", specs.join("; "));
        }
    }
}

async fn list(global: &Global, filter: &str) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    let mut models: Vec<Value> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/models?max_results=1000&filter={}", encode(filter));
        if let Some(t) = &token {
            path.push_str(&format!("&page_token={}", encode(t)));
        }
        let page: Value = client.get(&path).await?;
        models.extend(page["models"].as_array().cloned().unwrap_or_default());
        match page["next_page_token"].as_str() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    if global.json {
        crate::output::json(&json!({ "models": models }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if models.is_empty() {
        println!(
            "no registered models (register one with: slipway models register NAME FILE.onnx)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = models
        .iter()
        .map(|m| {
            vec![
                text(&m["name"]),
                text(&m["latest_version"]),
                alias_chips(&m["aliases"]),
                when(m["updated_ms"].as_i64()),
                text(&m["description"]),
            ]
        })
        .collect();
    table(&["NAME", "LATEST", "ALIASES", "UPDATED", "DESCRIPTION"], &rows)?;
    Ok(ExitCode::SUCCESS)
}

async fn show(global: &Global, model: &str) -> anyhow::Result<ExitCode> {
    let client = Client::new(global)?;
    if let Some((name, reference)) = model.split_once('@') {
        let v: Value = client
            .get(&format!("/api/v1/models/{}/versions/{}", encode(name), encode(reference)))
            .await?;
        if global.json {
            crate::output::json(&v)?;
            return Ok(ExitCode::SUCCESS);
        }
        let aliases: Vec<String> =
            v["aliases"].as_array().map(|a| a.iter().map(text).collect()).unwrap_or_default();
        let fields = [
            ("model", format!("{}@{}", text(&v["name"]), text(&v["version"]))),
            ("aliases", if aliases.is_empty() { "-".into() } else { aliases.join(", ") }),
            ("stage", text(&v["stage"])),
            ("created", when(v["created_ms"].as_i64())),
            ("source", text(&v["source"])),
            ("storage", text(&v["storage"])),
            ("run", text(&v["run_id"])),
            ("format", text(&v["format"])),
            ("onnx", text(&v["onnx_path"])),
            ("digest", text(&v["digest"])),
            ("description", text(&v["description"])),
        ];
        for (k, val) in fields {
            println!("{k:<12} {val}");
        }
        print_signature(&v["signature"]);
        return Ok(ExitCode::SUCCESS);
    }
    let d: Value = client.get(&format!("/api/v1/models/{}", encode(model))).await?;
    if global.json {
        crate::output::json(&d)?;
        return Ok(ExitCode::SUCCESS);
    }
    let m = &d["model"];
    println!("{}  {}", text(&m["name"]), text(&m["description"]));
    println!("aliases  {}", alias_chips(&m["aliases"]));
    let rows: Vec<Vec<String>> = d["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .map(|v| {
                    let aliases: Vec<String> = v["aliases"]
                        .as_array()
                        .map(|a| a.iter().map(text).collect())
                        .unwrap_or_default();
                    vec![
                        text(&v["version"]),
                        if aliases.is_empty() { "-".into() } else { aliases.join(",") },
                        text(&v["format"]),
                        text(&v["run_id"]),
                        when(v["created_ms"].as_i64()),
                        text(&v["source"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(&["VERSION", "ALIASES", "FORMAT", "RUN", "CREATED", "SOURCE"], &rows)?;
    Ok(ExitCode::SUCCESS)
}

fn time(
    model: &PathBuf,
    rows: &PathBuf,
    batch: usize,
    iters: usize,
    global: &Global,
) -> anyhow::Result<ExitCode> {
    if batch == 0 || iters == 0 {
        bail!("--batch and --iters must be at least 1");
    }
    let bytes = std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    let loaded =
        serve::Model::load(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", model.display()))?;
    let text = std::fs::read(rows).with_context(|| format!("reading {}", rows.display()))?;
    let rows: Vec<Vec<f32>> = serde_json::from_slice(&text)
        .with_context(|| format!("{}: expected a JSON list of rows of numbers", rows.display()))?;
    let width = rows.first().map(Vec::len).unwrap_or(0);
    if width == 0 || rows.iter().any(|r| r.len() != width) {
        bail!("the rows must all have the same, non-zero length");
    }
    let flat: Vec<f32> = rows.iter().cycle().take(batch).flatten().copied().collect();
    let input = serve::Tensor::from_shape(&[batch, width], &flat)?;
    let warmup = (iters / 10).max(1);
    let mut times = Vec::with_capacity(iters);
    for i in 0..warmup + iters {
        let started = Instant::now();
        loaded.run_one(input.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
        if i >= warmup {
            times.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    times.sort_by(f64::total_cmp);
    let pick = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    let (p10, p50, p90) = (pick(0.1), pick(0.5), pick(0.9));
    if global.json {
        println!(
            "{}",
            json!({"batch": batch, "iters": iters, "p10_us": p10, "median_us": p50, "p90_us": p90})
        );
    } else {
        println!(
            "batch {batch}: median {p50:.1} µs per call (p10 {p10:.1}, p90 {p90:.1}) over {iters} calls"
        );
    }
    Ok(ExitCode::SUCCESS)
}
