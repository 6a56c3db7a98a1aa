//! `slipway drift REF CUR`: whether a current table drifted from a reference one, column by
//! column, with the tests Evidently chooses by default and SciPy's numbers.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, bail};
use monitor::drift::{DatasetDrift, dataset_drift};
use monitor::table::{Choices, pair_columns};
use serde_json::json;

use crate::Global;
use crate::output::table;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    slipway drift train.parquet today.parquet\n  \
    slipway drift ref.csv cur.csv --cat bed,ward --test age=psi --threshold age=0.2\n  \
    slipway drift ref.parquet cur.parquet --columns x,y --html drift.html --json\n  \
    slipway drift fall-features@1 fall-features@3   # dataset versions, from the stores\n\n\
    Per column, after dropping missing values: up to 1,000 reference rows, a numerical column\n\
    with more than 5 values gets Kolmogorov-Smirnov (drift at p <= 0.05), 3-5 values or a\n\
    categorical column chi-squared, 2 values the two-proportion z-test (drift at p < 0.05);\n\
    above 1,000 rows, Wasserstein distance normed by the reference's deviation, or\n\
    Jensen-Shannon (drift at >= 0.1). The table drifts when at least half its columns do.\n\
    Tests: ks, chisquare, z, wasserstein, jensenshannon, psi, kl_div.")]
pub(crate) struct DriftArgs {
    /// The reference table: a CSV or Parquet file, or a dataset version (NAME@VERSION) — what the
    /// model learnt from
    reference: String,
    /// The current table: a CSV or Parquet file, or a dataset version (NAME@VERSION) — what it
    /// sees now
    current: String,
    /// Only these columns (comma-separated)
    #[arg(long, value_delimiter = ',')]
    columns: Vec<String>,
    /// Compare these columns as numerical (comma-separated)
    #[arg(long, value_delimiter = ',')]
    num: Vec<String>,
    /// Compare these columns as categorical (comma-separated)
    #[arg(long, value_delimiter = ',')]
    cat: Vec<String>,
    /// COLUMN=TEST: a test instead of the default (repeatable)
    #[arg(long = "test", value_name = "COLUMN=TEST")]
    tests: Vec<String>,
    /// COLUMN=THRESHOLD: a threshold instead of the test's default (repeatable)
    #[arg(long = "threshold", value_name = "COLUMN=THRESHOLD")]
    thresholds: Vec<String>,
    /// The share of drifted columns at which the table drifts
    #[arg(long, default_value_t = 0.5)]
    share: f64,
    /// Also write an HTML report with each column's distributions
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    #[command(flatten)]
    stores: crate::config::StoreArgs,
}

/// A side's columns: a file read directly, or a dataset version's parts fetched from the blob
/// store (verified) into `scratch` first.
async fn read_side(
    text: &str,
    stores: &crate::config::StoreArgs,
    scratch: &std::path::Path,
) -> anyhow::Result<(Vec<monitor::table::TableColumn>, Vec<String>)> {
    let path = std::path::Path::new(text);
    if path.is_file() || !text.contains('@') {
        let path = path.to_path_buf();
        return tokio::task::spawn_blocking(move || monitor::table::read(&path))
            .await?
            .map_err(|e| anyhow!(e));
    }
    let r = slipway_data::VersionRef::parse(text)?;
    let stages = crate::commands::predict::open(stores).await?;
    let v = stages.data.resolve(&r).await?;
    let manifest = stages.data.manifest(&v).await?;
    let Some(info) = manifest.table.clone() else {
        bail!("{} is a folder of files, not a table", v.label())
    };
    let mut parts = Vec::with_capacity(manifest.items.len());
    for (i, item) in manifest.items.iter().enumerate() {
        let digest: slipway_core::Digest = item.hash.parse()?;
        let part = scratch.join(format!("{}-{i}", v.label().replace(['@', '/'], "-")));
        let mut reader = stages.data.blobs().get(&digest).await?;
        let mut file = tokio::fs::File::create(&part).await?;
        while let Some(chunk) = futures::StreamExt::next(&mut reader).await {
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk?).await?;
        }
        tokio::io::AsyncWriteExt::flush(&mut file).await?;
        parts.push(part);
    }
    let label = v.label();
    tokio::task::spawn_blocking(move || monitor::table::read_parts(&parts, info.format, &label))
        .await?
        .map_err(|e| anyhow!(e))
}

/// `COLUMN=VALUE` pairs.
fn pairs<'a>(list: &'a [String], what: &str) -> anyhow::Result<Vec<(&'a str, &'a str)>> {
    list.iter()
        .map(|p| {
            p.split_once('=')
                .filter(|(c, v)| !c.is_empty() && !v.is_empty())
                .ok_or_else(|| anyhow!("--{what} '{p}' is not COLUMN={}", what.to_uppercase()))
        })
        .collect()
}

pub(crate) async fn run(args: DriftArgs, global: &Global) -> anyhow::Result<ExitCode> {
    if !(args.share > 0.0 && args.share <= 1.0) {
        bail!("--share must be above 0 and at most 1");
    }
    let tests = pairs(&args.tests, "test")?;
    let thresholds = pairs(&args.thresholds, "threshold")?;
    let started = Instant::now();
    let scratch = tempfile::Builder::new().prefix("slipway-drift-").tempdir()?;
    let reference = read_side(&args.reference, &args.stores, scratch.path()).await?;
    let current = read_side(&args.current, &args.stores, scratch.path()).await?;
    let read_s = started.elapsed().as_secs_f64();
    let ((ref_cols, _), (cur_cols, left_out)) = (reference, current);
    let mut parsed_thresholds = Vec::new();
    for (c, t) in &thresholds {
        let x = t
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| anyhow!("--threshold {c}={t} is not a number"))?;
        parsed_thresholds.push((c.to_string(), x));
    }
    let choices = Choices {
        columns: args.columns.clone(),
        numerical: args.num.clone(),
        categorical: args.cat.clone(),
        tests: tests.iter().map(|(c, t)| (c.to_string(), t.to_string())).collect(),
        thresholds: parsed_thresholds,
    };
    let (columns, mut skipped) =
        pair_columns(ref_cols, cur_cols, &choices).map_err(|e| anyhow!(e))?;
    skipped.extend(left_out.into_iter().map(|c| (c, "not numbers, booleans or text".to_string())));
    let compared = Instant::now();
    let columns_for_html = args.html.as_ref().map(|_| columns.clone());
    let result = tokio::task::spawn_blocking(move || dataset_drift(&columns, args.share))
        .await?
        .map_err(|e| anyhow!(e))?;
    let compare_s = compared.elapsed().as_secs_f64();
    if let (Some(path), Some(cols)) = (&args.html, &columns_for_html) {
        let html =
            crate::commands::drift_html::report(&args.reference, &args.current, &result, cols);
        std::fs::write(path, html).map_err(|e| anyhow!("writing {}: {e}", path.display()))?;
    }
    if global.json {
        crate::output::json(&json!({
            "reference": args.reference,
            "current": args.current,
            "columns": result.columns,
            "skipped": skipped.iter().map(|(c, why)| json!({"column": c, "reason": why})).collect::<Vec<_>>(),
            "drifted": result.drifted,
            "share": result.share,
            "share_threshold": result.share_threshold,
            "drift": result.drift,
            "seconds": {"read": read_s, "compare": compare_s},
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    print_table(&result)?;
    for (c, why) in &skipped {
        println!("skipped {c}: {why}");
    }
    println!(
        "{} of {} columns drifted ({:.0}%, threshold {:.0}%): {}",
        result.drifted,
        result.columns.len(),
        result.share * 100.0,
        result.share_threshold * 100.0,
        if result.drift { "the table DRIFTED" } else { "no drift" }
    );
    if let Some(path) = &args.html {
        println!("report: {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(d: &DatasetDrift) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = d
        .columns
        .iter()
        .map(|c| {
            vec![
                c.column.clone(),
                c.kind.as_str().into(),
                c.test.name().into(),
                c.statistic_name.into(),
                format_stat(c.statistic),
                format!("{}", c.threshold),
                if c.drift { "DRIFT".into() } else { "ok".into() },
                format!("{} / {}", c.reference_rows, c.current_rows),
            ]
        })
        .collect();
    table(
        &[
            "COLUMN",
            "TYPE",
            "TEST",
            "STATISTIC",
            "VALUE",
            "THRESHOLD",
            "VERDICT",
            "ROWS (REF / CUR)",
        ],
        &rows,
    )
}

fn format_stat(x: f64) -> String {
    if x == 0.0 || (x.abs() >= 1e-4 && x.abs() < 1e6) {
        format!("{x:.6}")
    } else {
        format!("{x:.3e}")
    }
}
