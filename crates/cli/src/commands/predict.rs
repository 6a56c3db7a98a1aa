//! `slipway predict`: batch prediction of a registered model over a CSV or Parquet file or a
//! dataset version, streamed in chunks on every core into a Parquet file; and the `predict` job
//! kind, which writes the predictions as a new dataset version instead (a worker never writes
//! where a client says on its disk).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use slipway_core::jobs::{JobContext, JobError};
use slipway_data::table::{Batches, Format};
use slipway_data::{Data, VersionRef};

use crate::Global;
use crate::config::StoreArgs;
use crate::progress::Bar;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    slipway predict --model falls@champion --input features.parquet --output predictions.parquet\n  \
    slipway predict --model falls@3 --input fall-features@2 --output p.parquet --keep clip_id\n  \
    slipway predict --model falls@champion --input rows.csv --output p.parquet --columns a,b,c\n\n\
    The output has the --keep columns, then a column per model output value: label,\n\
    probabilities_0, probabilities_1, ... On a server, POST /api/v1/jobs with kind \"predict\"\n\
    runs the same work as a job and stores the predictions as a dataset version.")]
pub(crate) struct PredictArgs {
    /// The model: NAME@VERSION, NAME@ALIAS or NAME@latest
    #[arg(long)]
    model: String,
    /// A .csv or .parquet file, or a dataset version (NAME@VERSION)
    #[arg(long)]
    input: String,
    /// The Parquet file to write (replaced only when the prediction succeeds)
    #[arg(long)]
    output: PathBuf,
    /// Feature columns in the model's order [default: every numeric column not kept]
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
    /// Input columns to copy beside the predictions (ids, timestamps)
    #[arg(long, value_delimiter = ',')]
    keep: Vec<String>,
    /// Threads running the model [default: one per core]
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[command(flatten)]
    stores: StoreArgs,
}

/// What to read.
enum Input {
    File(PathBuf, Format),
    Dataset(VersionRef),
}

fn input_of(text: &str) -> anyhow::Result<Input> {
    let path = Path::new(text);
    if path.is_file() {
        let format = Format::of_path(text)
            .with_context(|| format!("{text}: batch prediction reads .csv and .parquet files"))?;
        return Ok(Input::File(path.to_path_buf(), format));
    }
    if text.contains('@') {
        return Ok(Input::Dataset(VersionRef::parse(text)?));
    }
    bail!("'{text}' is neither a file nor a dataset version (NAME@VERSION)")
}

/// The registry and data stage, opened on the configured stores.
pub(crate) struct Stages {
    pub(crate) registry: registry::Registry,
    pub(crate) data: Data,
}

/// A prediction's result, for people and scripts.
pub(crate) struct Done {
    summary: ::serve::batch::BatchSummary,
    model: String,
    seconds: f64,
}

/// Runs `model` over `input` into the Parquet file `output` (written beside it, then renamed).
async fn run_prediction(
    stages: &Stages,
    model_ref: &str,
    input: Input,
    output: &Path,
    options: ::serve::batch::BatchOptions,
    progress: Arc<dyn Fn(u64, u64) + Send + Sync>,
) -> anyhow::Result<Done> {
    let started = Instant::now();
    let version = stages.registry.resolve_ref(model_ref).await?;
    let bytes = stages.registry.model_bytes(&version).await?;
    let label = version.label();
    let model = tokio::task::spawn_blocking(move || ::serve::Model::load(&bytes))
        .await?
        .map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
    let dir = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // A dataset's parts are fetched beside the output (where there is room for it), not to /tmp.
    let parts_dir = tempfile::Builder::new()
        .prefix(".slipway-predict-")
        .tempdir_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    type Rows = Box<dyn Iterator<Item = Result<arrow_array::RecordBatch, String>> + Send>;
    let (batches, total, schema): (Rows, u64, _) = match input {
        Input::File(path, format) => {
            let total = if format == Format::Parquet { parquet_rows(&path) } else { 0 };
            let b = Batches::open_file(&path, format)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let schema = b.schema();
            (Box::new(b), total, schema)
        }
        Input::Dataset(r) => {
            let v = stages.data.resolve(&r).await?;
            let manifest = stages.data.manifest(&v).await?;
            let Some(info) = manifest.table.clone() else {
                bail!("{} is a folder of files, not a table", v.label())
            };
            // The parts are streamed to local files (verified), then read one after another:
            // memory stays flat however large the version is.
            let mut paths = Vec::with_capacity(manifest.items.len());
            for (i, item) in manifest.items.iter().enumerate() {
                let digest: slipway_core::Digest = item.hash.parse()?;
                let path = parts_dir.path().join(format!("part-{i}"));
                let mut reader = stages.data.blobs().get(&digest).await?;
                let mut file = tokio::fs::File::create(&path).await?;
                while let Some(chunk) = futures::StreamExt::next(&mut reader).await {
                    tokio::io::AsyncWriteExt::write_all(&mut file, &chunk?).await?;
                }
                tokio::io::AsyncWriteExt::flush(&mut file).await?;
                paths.push(path);
            }
            let Some(first) = paths.first() else { bail!("{} has no rows", v.label()) };
            let label = v.label();
            let first = Batches::open_file(first, info.format)
                .map_err(|e| anyhow::anyhow!("{label} does not read: {e}"))?;
            let schema = first.schema();
            let format = info.format;
            let rest = paths.into_iter().skip(1).flat_map(move |p| -> Rows {
                match Batches::open_file(&p, format) {
                    Ok(b) => Box::new(b),
                    Err(e) => Box::new(std::iter::once(Err(e))),
                }
            });
            (Box::new(first.chain(rest)), info.rows, schema)
        }
    };
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    let file = tmp.reopen()?;
    let model = Arc::new(model);
    let summary = tokio::task::spawn_blocking(move || {
        let out = std::io::BufWriter::with_capacity(1 << 20, file);
        let report = move |rows: u64| progress(rows, total);
        ::serve::batch::predict(model, schema, batches, out, &options, &report)
    })
    .await?
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    tmp.persist(output).with_context(|| format!("writing {}", output.display()))?;
    Ok(Done { summary, model: version.label(), seconds: started.elapsed().as_secs_f64() })
}

fn parquet_rows(path: &Path) -> u64 {
    std::fs::File::open(path)
        .ok()
        .and_then(|f| parquet::file::reader::SerializedFileReader::new(f).ok())
        .map(|r| {
            use parquet::file::reader::FileReader;
            r.metadata().file_metadata().num_rows().max(0) as u64
        })
        .unwrap_or(0)
}

pub(crate) async fn open(stores: &StoreArgs) -> anyhow::Result<Stages> {
    let settings = stores.resolve()?;
    let s = super::open_stores(&settings).await?;
    Ok(Stages { registry: s.registry, data: s.data })
}

pub(crate) async fn run(args: PredictArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let input = input_of(&args.input)?;
    if args.output.extension().and_then(|e| e.to_str()) != Some("parquet") {
        bail!("--output must be a .parquet file");
    }
    let stages = open(&args.stores).await?;
    let bar = Arc::new(Bar::rows("predicting", 0, !global.json));
    let progress = {
        let bar = bar.clone();
        Arc::new(move |rows: u64, total: u64| bar.set_rows_of(rows, total))
    };
    let options = ::serve::batch::BatchOptions {
        features: args.columns.clone(),
        keep: args.keep.clone(),
        threads: args.threads,
    };
    let done = run_prediction(&stages, &args.model, input, &args.output, options, progress).await;
    if let Ok(bar) = Arc::try_unwrap(bar) {
        bar.finish();
    }
    let done = done?;
    let view = view(&done, &args.output.display().to_string());
    if global.json {
        crate::output::json(&view)?;
    } else {
        println!(
            "predicted {} rows with {} in {:.2} s ({:.0} rows/s) -> {}",
            done.summary.rows,
            done.model,
            done.seconds,
            done.summary.rows as f64 / done.seconds.max(1e-9),
            args.output.display()
        );
        println!("  features {}", done.summary.features.join(", "));
        println!("  columns  {}", done.summary.columns.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

fn view(done: &Done, output: &str) -> Value {
    json!({
        "model": done.model,
        "rows": done.summary.rows,
        "features": done.summary.features,
        "columns": done.summary.columns,
        "seconds": done.seconds,
        "output": output,
    })
}

/// The `predict` job: payload `{"model": "falls@champion", "input": "fall-features@2",
/// "output_dataset": "fall-predictions", "columns": [...], "keep": [...]}`; the predictions
/// become the next version of `output_dataset`. Inputs are dataset versions only: a job never
/// reads or writes a path on the worker's disk on a client's say-so.
pub(crate) async fn job(stages: Arc<Stages>, ctx: JobContext) -> Result<Value, JobError> {
    let p = ctx.payload().clone();
    let text = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
    let list = |k: &str| -> Result<Option<Vec<String>>, JobError> {
        match p.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| JobError::Fatal(format!("'{k}' must be a list of column names"))),
            Some(_) => Err(JobError::Fatal(format!("'{k}' must be a list of column names"))),
        }
    };
    let fatal = |m: String| JobError::Fatal(m);
    let model =
        text("model").ok_or_else(|| fatal("the payload needs \"model\": NAME@REF".into()))?;
    let input = text("input")
        .ok_or_else(|| fatal("the payload needs \"input\": a dataset version NAME@N".into()))?;
    let output = text("output_dataset")
        .ok_or_else(|| fatal("the payload needs \"output_dataset\": a dataset name".into()))?;
    slipway_data::check_name(&output).map_err(|e| fatal(e.to_string()))?;
    let r = VersionRef::parse(&input).map_err(|e| fatal(e.to_string()))?;
    let options = ::serve::batch::BatchOptions {
        features: list("columns")?,
        keep: list("keep")?.unwrap_or_default(),
        threads: 0,
    };
    let dir = tempfile::tempdir().map_err(|e| JobError::Retry(e.to_string()))?;
    let path = dir.path().join("predictions.parquet");
    let last = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let progress = {
        let last = last.clone();
        Arc::new(move |rows: u64, _total: u64| {
            last.store(rows, std::sync::atomic::Ordering::Relaxed)
        })
    };
    let done = run_prediction(&stages, &model, Input::Dataset(r), &path, options, progress)
        .await
        .map_err(|e| fatal(format!("{e:#}")))?;
    ctx.progress("predicted", done.summary.rows, Some(done.summary.rows)).await?;
    let req = slipway_data::add::AddRequest {
        path: path.clone(),
        dataset: output.clone(),
        message: format!("predictions of {} for {input}", done.model),
        description: None,
        author: "slipway predict".into(),
        meta: None,
        kind: Some(slipway_data::Kind::Table),
        concurrency: 4,
    };
    let mut cache = slipway_data::ingest::StatCache::disabled();
    let added =
        stages.data.add(req, &mut cache, &()).await.map_err(|e| JobError::Retry(e.to_string()))?;
    let Some(commit) = added.commit else {
        let problems: Vec<String> =
            added.problems.iter().map(|p| format!("{}: {}", p.path, p.message)).collect();
        return Err(fatal(format!("the predictions could not be stored: {}", problems.join("; "))));
    };
    let mut v = view(&done, "");
    v["output"] = json!(null);
    v["dataset"] = json!(output);
    v["version"] = json!(commit.version.version);
    Ok(v)
}
