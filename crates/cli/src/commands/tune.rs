//! `slipway tune`: hyperparameter tuning. `run` runs a study file's trials (its command, with
//! each trial's parameters) through the job queue on this and any other worker; `status`,
//! `best` and `trials` show where a study is; `try` runs a sampler on a standard test function
//! in this process, to see how it searches and what it costs per trial.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use slipway_core::jobs::{JobStatus, Worker, WorkerOptions};
use tune::{FileFormat, NewStudy, StudyInfo, StudySpec, TrialView};

use crate::Global;
use crate::commands::tune_trial;
use crate::config::StoreArgs;
use crate::output::{cell, sparkline, table};
use crate::progress::Bar;

#[derive(Debug, Subcommand)]
pub(crate) enum TuneCommand {
    /// Run a study file: create the study (or resume it), queue its trials, and run them here
    /// with --workers at once (other hosts join with `slipway worker`)
    #[command(after_help = "Examples:\n  \
        slipway tune run study.toml                 # one trial at a time, here\n  \
        slipway tune run study.toml --workers 4     # four at once\n  \
        slipway tune run study.yaml --workers 0 --db postgres://u:p@db/slipway   # queue only; workers elsewhere\n\n\
        A study file (TOML or YAML):\n  \
        name = \"falls-mlp\"\n  \
        direction = \"maximize\"          # or minimize (the default)\n  \
        metric = \"f1\"                   # the objective: this metric's latest value in the trial's run\n  \
        # several objectives instead: directions = [\"maximize\", \"minimize\"], metrics = [\"f1\", \"latency_ms\"]\n  \
        trials = 100\n  \
        command = \"python train.py\"     # run in the study file's folder\n  \
        timeout_s = 3600                 # per trial\n  \
        sampler = \"tpe\"                 # tpe (Optuna 5's defaults, sharper; see docs/tuning.md), random or grid; or a table\n  \
        pruner = \"median\"               # none, median, percentile, asha or hyperband; or a table\n  \
        [params]\n  \
        lr = { type = \"float\", low = 1e-4, high = 1e-1, log = true }\n  \
        layers = { type = \"int\", low = 1, high = 4 }\n  \
        optimizer = { type = \"categorical\", choices = [\"adam\", \"sgd\"] }\n  \
        momentum = { type = \"float\", low = 0.0, high = 0.99, when = { optimizer = \"sgd\" } }\n  \
        [fixed]\n  \
        epochs = 20\n\n\
        Each trial is a run under the study's run. The command gets its parameters as\n\
        SLIPWAY_PARAM_<NAME> variables and in the JSON file SLIPWAY_TRIAL_PARAMS, and MLFLOW_RUN_ID\n\
        and MLFLOW_TRACKING_URI so that mlflow logs into the trial's run. It reports the objective by\n\
        logging the metric (by step, for pruning: slipway.current_trial().should_prune()); exit\n\
        status 75 ends the trial as pruned, any other non-zero status fails it with its stderr.")]
    Run {
        /// The study file (.toml, .yaml or .json)
        file: PathBuf,
        /// Trials to run at once in this process, at most 256 (0: only queue them; more hosts
        /// join with `slipway worker`)
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=256))]
        workers: u16,
        /// Seconds a trial may go without its worker's heartbeat before it is failed
        #[arg(long, default_value_t = 30)]
        trial_lease: u64,
        #[command(flatten)]
        stores: StoreArgs,
    },
    /// Studies and their trial counts; or one study: its counts, best trial and progress
    #[command(
        after_help = "Examples:\n  slipway tune status\n  slipway tune status falls-mlp --json"
    )]
    Status {
        name: Option<String>,
        #[command(flatten)]
        stores: StoreArgs,
    },
    /// A study's best trial: its value, params and run; with several objectives, the Pareto front
    #[command(
        after_help = "Examples:\n  slipway tune best falls-mlp\n  slipway tune best falls-mlp --json | jq .params\n  slipway tune best falls-tradeoff --json | jq '.best_trials[].values'"
    )]
    Best {
        name: String,
        #[command(flatten)]
        stores: StoreArgs,
    },
    /// A study's trials: state, value, params, duration, error
    #[command(
        after_help = "Examples:\n  slipway tune trials falls-mlp\n  slipway tune trials falls-mlp --state FAIL"
    )]
    Trials {
        name: String,
        /// Only trials in this state (RUNNING, COMPLETE, PRUNED, FAIL)
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        stores: StoreArgs,
    },
    /// Delete a study and its trials (the name can be used again); its runs stay in their
    /// experiment unless --runs; queued trials of it are cancelled
    #[command(
        after_help = "Examples:\n  slipway tune delete falls-mlp\n  slipway tune delete falls-mlp --runs          # its runs too (soft-deleted: restorable)\n  slipway tune delete falls-mlp --force         # even while trials run (they fail)"
    )]
    Delete {
        name: String,
        /// Also delete the trials' runs and the study's parent run (MLflow's soft delete)
        #[arg(long)]
        runs: bool,
        /// Delete even while trials run: they fail, and their workers stop them
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        stores: StoreArgs,
    },
    /// (Internal) Watches a trial objective's process group for its worker: when the worker lets
    /// go of the trial or dies (stdin, a pipe it holds, reaches its end), stops the group
    #[command(hide = true)]
    Guard {
        /// The objective's process group
        pgid: i32,
    },
    /// Minimise a standard test function with a sampler, in this process (no server): how it
    /// searches and what it costs per trial
    #[command(after_help = "Examples:\n  \
        slipway tune try branin --trials 200 --seed 1\n  \
        slipway tune try mixed --sampler random\n  \
        slipway tune try sphere6 --trials 5000 --json     # the sampler's own cost per trial\n  \
        slipway tune try hartmann6 --parallel 4           # as four workers would\n  \
        slipway tune try rosenbrock10 --parallel 4 --believer false\n  \
        slipway tune try zdt1 --parallel 4 --constant-liar false\n\n\
        Functions: branin (2-D), hartmann6 (6-D), rosenbrock10 (10-D), mixed (a float, a log\n\
        float, an int and a categorical), sphere6 (6-D, costs nothing).\n\
        Samplers: tpe (Optuna 5's defaults: multivariate, 10 random start-up trials, 24\n\
        candidates; the good kernels may narrow to a quarter of Optuna's floor), tpe-optuna\n\
        (exactly Optuna 5's rule: good_clip = 1, constant liar, no believer), tpe-univariate,\n\
        random.")]
    Try {
        /// branin, hartmann6, rosenbrock10, mixed or sphere6; zdt1 or dtlz2 (several objectives)
        function: String,
        #[arg(long, default_value_t = 200)]
        trials: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// tpe (a study's default), tpe-optuna (good_clip 1), tpe-multivariate, tpe-univariate or
        /// random
        #[arg(long, default_value = "tpe")]
        sampler: String,
        /// Play N parallel workers: trials are sampled while N-1 others are still running
        #[arg(long, default_value_t = 1)]
        parallel: usize,
        /// TPE: count running trials as bad (true) or not (false); default as a study's: false
        /// with one objective, true with several
        #[arg(long)]
        constant_liar: Option<bool>,
        /// TPE, one objective: count each running trial good or bad as a Gaussian process over
        /// the complete ones predicts (true, a study's default) or leave them out (false)
        #[arg(long)]
        believer: Option<bool>,
    },
}

pub(crate) async fn run(cmd: TuneCommand, global: &Global) -> anyhow::Result<ExitCode> {
    match cmd {
        TuneCommand::Try { function, trials, seed, sampler, parallel, constant_liar, believer } => {
            let pending = Pending { constant_liar, believer };
            try_function(&function, trials, seed, &sampler, parallel, pending, global).await
        }
        TuneCommand::Run { file, workers, trial_lease, stores } => {
            run_study(&file, usize::from(workers), trial_lease, &stores, global).await
        }
        TuneCommand::Status { name, stores } => status(name.as_deref(), &stores, global).await,
        TuneCommand::Best { name, stores } => best(&name, &stores, global).await,
        TuneCommand::Trials { name, state, stores } => {
            trials(&name, state.as_deref(), &stores, global).await
        }
        // main runs it before building the runtime.
        TuneCommand::Guard { pgid } => Ok(tune_trial::guard(pgid)),
        TuneCommand::Delete { name, runs, force, stores } => {
            delete(&name, runs, force, &stores, global).await
        }
    }
}

async fn delete(
    name: &str,
    runs: bool,
    force: bool,
    store_args: &StoreArgs,
    global: &Global,
) -> anyhow::Result<ExitCode> {
    let stores = open(store_args).await?;
    let deleted = stores.tuning.delete_study(name, runs, force).await?;
    // Its trials still queued would only fail: cancel them, and ask the running ones to stop.
    let cancelled = tune::trial_jobs::cancel(&stores.queue, name, &deleted.study_id).await?;
    if global.json {
        let mut out = json!(deleted);
        out["jobs_cancelled"] = json!(cancelled);
        crate::output::json(&out)?;
    } else {
        println!(
            "deleted study {name}: {} trial{}{}{}{}",
            deleted.trials,
            if deleted.trials == 1 { "" } else { "s" },
            if deleted.running > 0 {
                format!(" ({} running, failed)", deleted.running)
            } else {
                String::new()
            },
            if runs {
                format!(", {} runs (restorable)", deleted.runs_deleted)
            } else {
                String::new()
            },
            if cancelled > 0 {
                format!(", {cancelled} trial jobs cancelled")
            } else {
                String::new()
            },
        );
    }
    stores.db.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn open(stores: &StoreArgs) -> anyhow::Result<super::Stores> {
    let settings = stores.resolve()?;
    super::open_stores(&settings).await
}

/// How many of the study's `tune.trial` jobs have not ended.
async fn open_jobs(queue: &slipway_core::jobs::Queue, study: &StudyInfo) -> anyhow::Result<i64> {
    Ok(tune::trial_jobs::open(queue, &study.name, &study.study_id).await?.len() as i64)
}

/// The top-level fields in which a stored study file and a new one differ, by name.
fn differing_fields(stored: Option<&serde_json::Value>, new: &serde_json::Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let stored = stored.and_then(|s| s.as_object()).unwrap_or(&empty);
    let new = new.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = stored.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().filter(|k| stored.get(*k) != new.get(*k)).cloned().collect()
}

/// How many of the study's trials have ended.
fn ended(info: &StudyInfo) -> i64 {
    ["COMPLETE", "PRUNED", "FAIL"].iter().map(|s| info.counts.get(*s).copied().unwrap_or(0)).sum()
}

async fn run_study(
    file: &std::path::Path,
    workers: usize,
    trial_lease: u64,
    store_args: &StoreArgs,
    global: &Global,
) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let (spec, value) = StudySpec::parse(&text, FileFormat::of_path(file))
        .map_err(|e| anyhow!("{}: {e}", file.display()))?;
    if spec.command.is_none() {
        bail!("{}: command: missing (the objective to run for each trial)", file.display());
    }
    let cwd = std::fs::canonicalize(
        file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(".".as_ref()),
    )?;
    let settings = store_args.resolve()?;
    // A user command: the progress bar and the summary speak; warnings still show.
    crate::init_logging(Some(settings.file.log.as_deref().unwrap_or("warn")));
    let stores = super::open_stores(&settings).await?;
    let mut info = stores
        .tuning
        .create_study(NewStudy::from_spec(&spec, value.clone(), "slipway"), true)
        .await?;
    if info.spec.as_ref() != Some(&value) {
        // `trials` differs only if the target does (a file may leave it to its default).
        let mut differ = differing_fields(info.spec.as_ref(), &value);
        differ.retain(|f| f != "trials");
        let was = info.n_trials.unwrap_or_default();
        let target_changed = was != spec.trials as i64;
        if differ.is_empty() {
            if target_changed {
                // Only its target changed: more trials (or fewer) of the same study.
                info = stores.tuning.set_target(&info.name, &info.study_id, spec.trials).await?;
                if !global.json {
                    eprintln!(
                        "slipway: study '{}' now aims at {} trials (was {was})",
                        info.name, spec.trials
                    );
                }
            }
        } else {
            if target_changed {
                differ.push("trials".into());
            }
            eprintln!(
                "slipway: study '{}' exists with another file ({} differ); resuming it as it was \
                 created (a study's file may change only in `trials`; to start over, `slipway \
                 tune delete {}`)",
                info.name,
                differ.join(", "),
                info.name
            );
        }
    }
    // Queue what is missing: the target less the trials ended and the trials queued or running.
    // A grid study stops once every combination has had its trial.
    let mut target = info.n_trials.unwrap_or(spec.trials as i64);
    if let tune::SamplerConfig::Grid { values } = &info.sampler {
        target = target.min(tune::grid_size(values).min(i64::MAX as usize) as i64);
    }
    let missing = (target - ended(&info) - open_jobs(&stores.queue, &info).await?).max(0);
    for _ in 0..missing {
        let mut job = tune::trial_jobs::new_job(
            &info.name,
            &info.study_id,
            json!({ "cwd": cwd.display().to_string(), "lease_ms": trial_lease.max(1) * 1000 }),
        );
        job.max_attempts = 3;
        stores.queue.enqueue(job).await?;
    }
    // No more workers than there are trials to run (none: only queue them).
    let workers = if workers == 0 {
        0
    } else {
        workers.min(open_jobs(&stores.queue, &info).await?.max(1) as usize)
    };
    if !global.json {
        let here = match workers {
            0 => String::new(),
            1 => " by 1 worker here".to_string(),
            n => format!(" by {n} workers here"),
        };
        eprintln!(
            "slipway: study {} ({} trials; {} ended, {} queued now); runs in experiment {}{here}",
            info.name,
            target,
            ended(&info),
            missing,
            info.experiment_id
        );
    }
    if workers == 0 {
        if global.json {
            crate::output::json(&json!({ "study": info.name, "queued": missing }))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Run the study's trials here until none is left queued or running.
    let runner = super::trial_api(&stores).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let mut worker_ids = Vec::with_capacity(workers);
    for i in 0..workers {
        let mut handlers = slipway_core::jobs::Handlers::new();
        let r = runner.clone();
        handlers.register(tune::trial_jobs::KIND, move |ctx| tune_trial::job(r.clone(), ctx));
        let mut options =
            WorkerOptions { poll_interval: settings.poll_interval, ..WorkerOptions::default() };
        options.id = format!("{}-{i}", options.id);
        worker_ids.push(options.id.clone());
        let worker = Worker::new(stores.queue.clone(), handlers, options);
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            worker
                .run(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        }));
    }
    let bar = Bar::rows("trials", target as u64, !global.json);
    let mut deleted = false;
    // Listening from now on, so that a signal while the loop is busy is not lost.
    let signal = super::shutdown_signal();
    tokio::pin!(signal);
    let interrupted = loop {
        tokio::select! {
            _ = &mut signal => break true,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let now = match stores.tuning.study(&info.name).await {
            Ok(now) if now.study_id == info.study_id => now,
            // Deleted: the workers stop their trials (their heartbeats find no study) and end.
            Ok(_) | Err(tune::Error::StudyNotFound { .. }) => {
                deleted = true;
                break false;
            }
            Err(e) => return Err(e.into()),
        };
        bar.set_rows_of(ended(&now) as u64, target as u64);
        if open_jobs(&stores.queue, &info).await? == 0 {
            break false;
        }
    };
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    bar.finish();
    if deleted {
        // The workers gave their jobs back to the queue: none of them is to run.
        for job in tune::trial_jobs::open(&stores.queue, &info.name, &info.study_id).await? {
            if job.status == JobStatus::Queued && job.payload.get("study_id").is_some() {
                let _ = stores.queue.cancel(&job.id).await;
            }
        }
        bail!("study '{}' was deleted while it ran", info.name);
    }
    if interrupted {
        let why = "interrupted: its `slipway tune run` was stopped (it runs again on resume)";
        tune_trial::fail_interrupted(&stores.tuning, Some(&info.name), &worker_ids, why).await?;
    }
    let done = stores.tuning.study(&info.name).await?;
    if global.json {
        crate::output::json(&done)?;
    } else {
        print_study(&done, &stores.tuning.trials(&done.name).await?, 0)?;
    }
    stores.db.close().await;
    if interrupted {
        return Ok(ExitCode::from(130));
    }
    // Failed trials are said; a study whose every trial failed (none completed or was pruned,
    // a normal end) failed.
    let count = |state: &str| done.counts.get(state).copied().unwrap_or(0);
    let failed = count("FAIL");
    if failed > 0 {
        let see = format!("see `slipway tune trials {} --state FAIL`", done.name);
        if count("COMPLETE") + count("PRUNED") == 0 {
            bail!("no trial of study '{}' completed ({failed} failed): {see}", done.name);
        }
        if !global.json {
            let s = if failed == 1 { "" } else { "s" };
            eprintln!("slipway: {failed} trial{s} failed: {see}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn value_text(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.6}"))
}

/// A trial's values: its value, or one per objective.
fn values_text(t: &TrialView) -> String {
    if t.values.len() > 1 {
        t.values.iter().map(|&v| value_text(Some(v))).collect::<Vec<_>>().join(", ")
    } else {
        value_text(t.value)
    }
}

fn directions_text(info: &StudyInfo) -> String {
    info.directions.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(",")
}

/// The Pareto front of a multi-objective study as a table: one column per objective.
fn print_front(info: &StudyInfo) -> anyhow::Result<()> {
    let mut head: Vec<String> = vec!["trial".into()];
    head.extend(info.metrics.iter().zip(&info.directions).map(|(m, d)| {
        format!("{m} ({})", if *d == tune::Direction::Maximize { "max" } else { "min" })
    }));
    head.extend(["params".into(), "run".into()]);
    let rows: Vec<Vec<String>> = info
        .best_trials
        .iter()
        .map(|t| {
            let mut row = vec![t.number.to_string()];
            row.extend(t.values.iter().map(|&v| value_text(Some(v))));
            row.extend([params_text(&t.params), t.run_id.clone()]);
            row
        })
        .collect();
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    table(&head, &rows)?;
    Ok(())
}

fn params_text(params: &std::collections::BTreeMap<String, Value>) -> String {
    params.iter().map(|(k, v)| format!("{k}={}", cell(v))).collect::<Vec<_>>().join(" ")
}

/// The columns every study table starts with, and a study's cells for them.
const STUDY_COLUMNS: [&str; 7] =
    ["study", "direction", "metric", "complete", "pruned", "failed", "running"];

fn study_cells(info: &StudyInfo) -> Vec<String> {
    let count = |s: &str| info.counts.get(s).copied().unwrap_or(0).to_string();
    vec![
        info.name.clone(),
        directions_text(info),
        info.metrics.join(","),
        count("COMPLETE"),
        count("PRUNED"),
        count("FAIL"),
        count("RUNNING"),
    ]
}

/// A study's counts (`queued`: its trial jobs waiting for a worker), best trial(s) and the best
/// value so far over the trials.
fn print_study(info: &StudyInfo, trials: &[TrialView], queued: usize) -> anyhow::Result<()> {
    let mut cells = study_cells(info);
    cells.push(queued.to_string());
    cells.push(info.n_trials.map_or("-".into(), |n| n.to_string()));
    table(&[&STUDY_COLUMNS[..], &["queued", "target"]].concat(), &[cells])?;
    if info.metrics.len() > 1 {
        if info.best_trials.is_empty() {
            println!("best trials  - (no complete trial yet)");
        } else {
            println!("best trials  the Pareto front, {} trials:", info.best_trials.len());
            print_front(info)?;
        }
        return Ok(());
    }
    match &info.best {
        Some(b) => {
            println!("best trial   {} ({}), value {}", b.number, b.run_id, value_text(b.value));
            println!("best params  {}", params_text(&b.params));
        }
        None => println!("best trial   - (no complete trial yet)"),
    }
    let maximize = info.direction == tune::Direction::Maximize;
    let mut best: Option<f64> = None;
    let mut history = Vec::new();
    for t in trials.iter().filter(|t| t.state == tune::TrialState::Complete) {
        let v = t.value.unwrap_or(f64::NAN);
        best = Some(match best {
            None => v,
            Some(b) if maximize => b.max(v),
            Some(b) => b.min(v),
        });
        history.push(best.unwrap_or(v));
    }
    if history.len() > 1 {
        let line = sparkline(&history);
        println!(
            "best so far  {line}  ({} → {})",
            value_text(history.first().copied()),
            value_text(best)
        );
    }
    Ok(())
}

async fn status(
    name: Option<&str>,
    store_args: &StoreArgs,
    global: &Global,
) -> anyhow::Result<ExitCode> {
    let stores = open(store_args).await?;
    match name {
        None => {
            let studies = stores.tuning.studies().await?;
            let backlog = tune::trial_jobs::Backlog::of(&stores.queue).await?;
            let queued: Vec<usize> =
                studies.iter().map(|s| backlog.queued(&s.name, &s.study_id)).collect();
            if global.json {
                let listed: Vec<_> =
                    studies.iter().zip(&queued).map(|(s, &q)| s.listed(q)).collect();
                crate::output::json(&json!({ "studies": listed }))?;
            } else {
                let rows: Vec<Vec<String>> = studies
                    .iter()
                    .zip(&queued)
                    .map(|(s, q)| {
                        let mut cells = study_cells(s);
                        cells.push(q.to_string());
                        cells.push(s.n_trials.map_or("-".into(), |n| n.to_string()));
                        cells.push(crate::output::time(Some(s.updated_ms)));
                        cells
                    })
                    .collect();
                table(&[&STUDY_COLUMNS[..], &["queued", "target", "updated"]].concat(), &rows)?;
            }
        }
        Some(name) => {
            let info = stores.tuning.study(name).await?;
            let queued = tune::trial_jobs::queued(&stores.queue, name, &info.study_id).await?;
            if global.json {
                let mut out = json!(info);
                out["queued_jobs"] = json!(queued);
                crate::output::json(&out)?;
            } else {
                print_study(&info, &stores.tuning.trials(name).await?, queued)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn best(name: &str, store_args: &StoreArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let stores = open(store_args).await?;
    let info = stores.tuning.study(name).await?;
    if info.metrics.len() > 1 {
        if info.best_trials.is_empty() {
            bail!("study '{name}' has no complete trial yet");
        }
        if global.json {
            crate::output::json(&json!({ "best_trials": info.best_trials }))?;
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "the Pareto front: {} trials no other trial beats on every objective",
            info.best_trials.len()
        );
        print_front(&info)?;
        println!("register a model: slipway models register NAME runs:/RUN/model");
        return Ok(ExitCode::SUCCESS);
    }
    let Some(b) = info.best else { bail!("study '{name}' has no complete trial yet") };
    if global.json {
        crate::output::json(&b)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("trial   {}", b.number);
    println!("value   {} ({} {})", value_text(b.value), info.direction.as_str(), info.metric);
    println!("run     {}", b.run_id);
    let rows: Vec<Vec<String>> = b.params.iter().map(|(k, v)| vec![k.clone(), cell(v)]).collect();
    table(&["param", "value"], &rows)?;
    println!("register its model: slipway models register NAME runs:/{}/model", b.run_id);
    Ok(ExitCode::SUCCESS)
}

async fn trials(
    name: &str,
    state: Option<&str>,
    store_args: &StoreArgs,
    global: &Global,
) -> anyhow::Result<ExitCode> {
    let state =
        state.map(tune::TrialState::parse).transpose().map_err(|e| anyhow!("--state: {e}"))?;
    let stores = open(store_args).await?;
    let list: Vec<TrialView> = stores
        .tuning
        .trials(name)
        .await?
        .into_iter()
        .filter(|t| state.is_none_or(|s| t.state == s))
        .collect();
    if global.json {
        crate::output::json(&json!({ "trials": list }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|t| {
            let secs = t.finished_ms.map(|f| format!("{:.1}", (f - t.started_ms) as f64 / 1000.0));
            vec![
                t.number.to_string(),
                t.state.as_str().into(),
                values_text(t),
                t.intermediate.len().to_string(),
                secs.unwrap_or_else(|| "-".into()),
                params_text(&t.params),
                t.error
                    .clone()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(80)
                    .collect(),
            ]
        })
        .collect();
    table(&["trial", "state", "value", "steps", "seconds", "params", "error"], &rows)?;
    Ok(ExitCode::SUCCESS)
}

/// How `tune try` asks TPE to treat running trials; None: a study's default.
struct Pending {
    constant_liar: Option<bool>,
    believer: Option<bool>,
}

async fn try_function(
    name: &str,
    trials: usize,
    seed: u64,
    sampler: &str,
    parallel: usize,
    pending: Pending,
    global: &Global,
) -> anyhow::Result<ExitCode> {
    let Pending { constant_liar, believer } = pending;
    if parallel == 0 {
        bail!("--parallel must be at least 1");
    }
    let multi = tune::functions::multi_function(name);
    let function = match (tune::functions::function(name), &multi) {
        (Some(f), _) => Some(f),
        (None, Some(_)) => None,
        (None, None) => bail!(
            "unknown function '{name}' (expected one of {}, {})",
            tune::functions::NAMES.join(", "),
            tune::functions::MULTI_NAMES.join(", ")
        ),
    };
    if trials == 0 {
        bail!("--trials must be at least 1");
    }
    // A study's defaults: for several objectives, univariate TPE with constant liar.
    let mut tpe = tune::TpeOptions::for_objectives(if multi.is_some() { 2 } else { 1 });
    if let Some(liar) = constant_liar {
        tpe.constant_liar = liar;
        tpe.believer &= !liar;
    }
    if let Some(believer) = believer {
        if believer && multi.is_some() {
            bail!("--believer true: only for a function of one objective");
        }
        if believer && tpe.constant_liar {
            bail!("--believer true: cannot be used with the constant liar (choose one)");
        }
        tpe.believer = believer;
    }
    let sampler = match sampler {
        "tpe" => tune::SamplerConfig::Tpe(tpe),
        "tpe-multivariate" => {
            tune::SamplerConfig::Tpe(tune::TpeOptions { multivariate: true, ..tpe })
        }
        "tpe-univariate" => {
            tune::SamplerConfig::Tpe(tune::TpeOptions { multivariate: false, ..tpe })
        }
        "tpe-optuna" if believer == Some(true) => {
            bail!("--believer true: tpe-optuna is Optuna's rule, which has no believer")
        }
        "tpe-optuna" => tune::SamplerConfig::Tpe(tune::TpeOptions {
            good_clip: 1.0,
            constant_liar: constant_liar.unwrap_or(true),
            believer: false,
            ..tpe
        }),
        "random" if constant_liar.is_some() => bail!("--constant-liar: only for a TPE sampler"),
        "random" if believer.is_some() => bail!("--believer: only for a TPE sampler"),
        "random" => tune::SamplerConfig::Random,
        other => bail!(
            "unknown sampler '{other}' (expected tpe, tpe-optuna, tpe-multivariate, tpe-univariate \
             or random)"
        ),
    };
    let config = tune::StudyConfig {
        name: format!("try-{name}"),
        directions: vec![tune::Direction::Minimize],
        sampler,
        pruner: tune::PrunerConfig::None,
        seed,
    };
    let bar = Bar::rows("trials", trials as u64, !global.json);
    let progress = bar.counter();
    let Some(function) = function else {
        let function = multi.expect("a function of several objectives");
        let result = tokio::task::spawn_blocking(move || {
            tune::functions::run_multi(config, &function, trials, parallel, |done| {
                progress(done as u64)
            })
        })
        .await??;
        bar.finish();
        if global.json {
            crate::output::json(&result)?;
            return Ok(ExitCode::SUCCESS);
        }
        table(
            &["function", "trials", "front", "hypervolume", "best possible", "gap", "ms/trial"],
            &[vec![
                result.function.clone(),
                result.trials.to_string(),
                result.front.len().to_string(),
                format!("{:.6}", result.hypervolume),
                format!("{:.6}", result.best_hypervolume),
                format!("{:.3e}", result.best_hypervolume - result.hypervolume),
                format!("{:.3}", result.seconds * 1e3 / result.trials as f64),
            ]],
        )?;
        return Ok(ExitCode::SUCCESS);
    };
    let result = tokio::task::spawn_blocking(move || {
        tune::functions::run(config, &function, trials, parallel, |done| progress(done as u64))
    })
    .await??;
    bar.finish();
    if global.json {
        crate::output::json(&result)?;
        return Ok(ExitCode::SUCCESS);
    }
    let minimum = tune::functions::function(name).map_or(f64::NAN, |f| f.minimum);
    let params: Vec<String> = result.best_params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    table(
        &["function", "trials", "best", "minimum", "gap", "best trial", "ms/trial"],
        &[vec![
            result.function.clone(),
            result.trials.to_string(),
            format!("{:.6}", result.best_value),
            format!("{minimum:.6}"),
            format!("{:.3e}", result.best_value - minimum),
            result.best_trial.to_string(),
            format!("{:.3}", result.seconds * 1e3 / result.trials as f64),
        ]],
    )?;
    println!("best params  {}", params.join("  "));
    println!("best so far  {}", curve(&result.history, minimum));
    Ok(ExitCode::SUCCESS)
}

/// The best-so-far curve as a sparkline of log-distance to the minimum.
fn curve(history: &[f64], minimum: f64) -> String {
    let gaps: Vec<f64> = history.iter().map(|v| (v - minimum).max(1e-12).log10()).collect();
    sparkline(&gaps)
}
