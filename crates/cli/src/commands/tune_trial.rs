//! The `tune.trial` job: one trial of a study run from a study file. The worker asks the study
//! for a trial (with a lease it renews while the trial runs), runs the study's command with the
//! trial's parameters (as `SLIPWAY_PARAM_*` variables and a JSON file) and its run id (so that
//! `mlflow` logs into the trial's run), and tells the study how it ended: the objective metric's
//! latest value in the run, PRUNED on exit status 75, or FAIL with the end of its stderr. The
//! command's stdout and stderr are kept whole as the run's artifacts `stdout.txt` and
//! `stderr.txt`, as `slipway run` keeps a command's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use slipway_core::jobs::{JobContext, JobError};
use tune::{AskOptions, StudySpec, TrialState, Tuning};

/// The exit status by which an objective says it pruned itself (EX_TEMPFAIL).
pub(crate) const PRUNED_EXIT: i32 = 75;
/// How much of a failed objective's stderr the trial keeps.
const STDERR_TAIL: usize = 2_000;

/// What a worker needs to run trials: the stores, and the API its objectives log to.
pub(crate) struct TrialRunner {
    pub(crate) tuning: Tuning,
    /// Where the objective's stdout and stderr go, as artifacts of the trial's run.
    pub(crate) artifacts: track::Artifacts,
    /// The base URL of an API on the same stores that the objective's `mlflow` reaches.
    pub(crate) api_url: String,
    pub(crate) token: Option<String>,
}

/// `SLIPWAY_PARAM_<NAME>`: upper case, anything but letters and digits as `_`.
fn env_name(param: &str) -> String {
    let mut s = String::from("SLIPWAY_PARAM_");
    s.extend(
        param.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }),
    );
    s
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn retry(e: impl std::fmt::Display) -> JobError {
    JobError::Retry(e.to_string())
}

/// Whether `e` says the trial is no longer there: its study deleted, or deleted and made again
/// (the trial of its number another run's, or none).
fn is_gone(e: &tune::Error) -> bool {
    matches!(
        e,
        tune::Error::StudyNotFound { .. }
            | tune::Error::TrialNotFound { .. }
            | tune::Error::TrialOfOtherRun { .. }
    )
}

/// A study that no longer exists ends the job; other errors are retried.
fn gone(e: tune::Error) -> JobError {
    match e {
        tune::Error::StudyNotFound { .. } => JobError::Fatal(e.to_string()),
        other => retry(other),
    }
}

/// Ends FAIL, with `why`, the trials still running on these workers once they stopped for a
/// shutdown (of one study, or of every study with a running trial): at once, not when their
/// leases run out. Their jobs went back to the queue, so they run again.
pub(crate) async fn fail_interrupted(
    tuning: &Tuning,
    study: Option<&str>,
    worker_ids: &[String],
    why: &str,
) -> anyhow::Result<()> {
    let names: Vec<String> = match study {
        Some(name) => vec![name.to_string()],
        None => (tuning.studies().await?.into_iter())
            .filter(|s| s.counts.get("RUNNING").is_some_and(|&n| n > 0))
            .map(|s| s.name)
            .collect(),
    };
    for name in names {
        for t in tuning.trials(&name).await? {
            let ours = t.worker.as_ref().is_some_and(|w| worker_ids.contains(w));
            if t.state != TrialState::Running || !ours {
                continue;
            }
            let told = tuning.tell(&name, t.number, TrialState::Fail, &[], Some(why.into())).await;
            if let Err(e) = told
                && !matches!(e, tune::Error::TrialFinished { .. })
            {
                tracing::warn!(target: "tune", study = %name, trial = t.number, error = %e, "cannot fail an interrupted trial; its lease will");
            }
        }
    }
    Ok(())
}

pub(crate) async fn job(runner: Arc<TrialRunner>, ctx: JobContext) -> Result<Value, JobError> {
    let p = ctx.payload().clone();
    let study = p["study"]
        .as_str()
        .ok_or_else(|| JobError::Fatal("the payload needs \"study\"".into()))?
        .to_string();
    let lease_ms = p["lease_ms"].as_i64().unwrap_or(30_000).clamp(1_000, 3_600_000);
    let cwd = p["cwd"].as_str().map(PathBuf::from);
    // The study the job was queued for (jobs queued before study ids were kept have none).
    let study_id = p["study_id"].as_str().map(str::to_string);
    let tuning = &runner.tuning;
    // The study as it is now; a study deleted (even if one of its name was created since) ends
    // the job without retries.
    let current = || async {
        let info = tuning.study(&study).await.map_err(gone)?;
        match &study_id {
            Some(id) if *id != info.study_id => Err(JobError::Fatal(format!(
                "study '{study}' was deleted (a study of that name was created since)"
            ))),
            _ => Ok(info),
        }
    };
    let info = current().await?;

    // An earlier attempt of this job ran a trial and its worker died: that trial failed.
    if let Some(previous) = ctx.job().progress.as_ref().and_then(|pr| pr["done"].as_u64())
        && tuning.trial(&study, previous).await.map_err(gone)?.state == TrialState::Running
    {
        let why = "its worker stopped before the trial ended (the job was retried)".to_string();
        match tuning.tell(&study, previous, TrialState::Fail, &[], Some(why)).await {
            Ok(_) | Err(tune::Error::TrialFinished { .. }) => {}
            Err(e) => return Err(gone(e)),
        }
    }

    let spec = info.spec.as_ref().ok_or_else(|| {
        JobError::Fatal(format!("study '{study}' was not created from a study file"))
    })?;
    let spec = StudySpec::from_json(spec).map_err(|e| JobError::Fatal(e.to_string()))?;
    let command = spec
        .command
        .clone()
        .ok_or_else(|| JobError::Fatal(format!("study '{study}' has no command")))?;

    let trial = tuning
        .ask(
            &study,
            AskOptions {
                lease_ms: Some(lease_ms),
                worker: Some(ctx.worker_id().to_string()),
                user: "slipway".into(),
                ..AskOptions::default()
            },
        )
        .await
        .map_err(gone)?;
    ctx.progress("trial", trial.number, None).await.map_err(retry)?;
    tracing::info!(target: "tune::trial", study = %study, trial = trial.number, "started");

    let dir = tempfile::tempdir().map_err(|e| retry(format!("a folder for the trial: {e}")))?;
    let (state, error) = match run_objective(
        &runner,
        &ctx,
        &info,
        &spec,
        &trial,
        &command,
        cwd,
        lease_ms,
        dir.path(),
    )
    .await
    {
        (TrialState::Pruned, _) if info.metrics.len() > 1 => (
            TrialState::Fail,
            Some(format!(
                "the objective exited with the pruned status ({PRUNED_EXIT}), but a \
                     multi-objective study cannot prune"
            )),
        ),
        other => other,
    };
    keep_output(&runner.artifacts, &info.experiment_id, &trial.run_id, dir.path()).await;
    // Deleted while the objective ran: the trial is gone, and its number may be another's now.
    if let Err(e) = tuning.check_run(&study, trial.number, &trial.run_id).await {
        return Err(if is_gone(&e) {
            JobError::Fatal(format!("study '{study}' was deleted while the trial ran"))
        } else {
            retry(e)
        });
    }
    let told = match tuning.tell(&study, trial.number, state, &[], error).await {
        Ok(t) => t,
        // Failed meanwhile (its lease expired): nothing more to say.
        Err(tune::Error::TrialFinished { .. }) => {
            tuning.trial(&study, trial.number).await.map_err(gone)?
        }
        Err(e) => return Err(gone(e)),
    };
    tracing::info!(target: "tune::trial", study = %study, trial = told.number, state = told.state.as_str(), "ended");
    Ok(json!({
        "study": study,
        "trial": told.number,
        "state": told.state,
        "value": told.value,
        "values": told.values,
    }))
}

/// Stores the objective's stdout and stderr (whole, when not empty) as artifacts of the trial's
/// run. A log that cannot be stored is reported and the trial goes on: its result matters more.
async fn keep_output(artifacts: &track::Artifacts, experiment_id: &str, run_id: &str, dir: &Path) {
    for name in ["stdout.txt", "stderr.txt"] {
        let path = dir.join(name);
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) if f.metadata().await.is_ok_and(|m| m.len() > 0) => f,
            _ => continue,
        };
        let stream = tokio_util::io::ReaderStream::new(file);
        let at = format!("{experiment_id}/{run_id}/artifacts/{name}");
        if let Err(e) = artifacts.put(&at, stream).await {
            tracing::warn!(target: "tune::trial", run_id, error = %e, "keeping the objective's {name}");
        }
    }
}

/// The last `n` bytes of a file, as text (empty if it cannot be read).
fn tail_of(path: &Path, n: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else { return String::new() };
    let len = f.metadata().map_or(0, |m| m.len());
    let mut kept = Vec::new();
    if f.seek(SeekFrom::Start(len.saturating_sub(n))).is_ok() {
        let _ = f.take(n).read_to_end(&mut kept);
    }
    String::from_utf8_lossy(&kept).trim().to_string()
}

/// Runs the objective command to its end, its stdout and stderr into `dir`; how the trial
/// ended, and why if it failed.
#[allow(clippy::too_many_arguments)]
async fn run_objective(
    runner: &TrialRunner,
    ctx: &JobContext,
    info: &tune::StudyInfo,
    spec: &StudySpec,
    trial: &tune::TrialView,
    command: &str,
    cwd: Option<PathBuf>,
    lease_ms: i64,
    dir: &Path,
) -> (TrialState, Option<String>) {
    let params: BTreeMap<String, Value> = trial.params.clone();
    let params_file = dir.join("params.json");
    let (stdout, stderr) = match (
        std::fs::File::create(dir.join("stdout.txt")),
        std::fs::File::create(dir.join("stderr.txt")),
    ) {
        (Ok(out), Ok(err)) => (out, err),
        (Err(e), _) | (_, Err(e)) => {
            return (TrialState::Fail, Some(format!("cannot make the trial's log files: {e}")));
        }
    };
    if let Err(e) =
        std::fs::write(&params_file, serde_json::to_vec_pretty(&params).unwrap_or_default())
    {
        return (TrialState::Fail, Some(format!("cannot write the params file: {e}")));
    }
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .env("SLIPWAY_STUDY", &info.name)
        .env("SLIPWAY_TRIAL_NUMBER", trial.number.to_string())
        .env("SLIPWAY_TRIAL_PARAMS", &params_file)
        .env("SLIPWAY_METRIC", &info.metric)
        .env("SLIPWAY_METRICS", info.metrics.join(","))
        .env("SLIPWAY_PRUNED_EXIT_CODE", PRUNED_EXIT.to_string())
        .env("SLIPWAY_TRACKING_URI", &runner.api_url)
        .env("MLFLOW_TRACKING_URI", &runner.api_url)
        .env("MLFLOW_RUN_ID", &trial.run_id)
        .env("MLFLOW_EXPERIMENT_ID", &info.experiment_id)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        // Its own process group, so that stopping the trial stops what the shell started too.
        .process_group(0)
        .kill_on_drop(true);
    for (k, v) in &params {
        cmd.env(env_name(k), text(v));
    }
    match &runner.token {
        Some(t) => {
            cmd.env("SLIPWAY_TOKEN", t).env("MLFLOW_TRACKING_TOKEN", t);
        }
        None => {
            cmd.env_remove("SLIPWAY_TOKEN").env_remove("MLFLOW_TRACKING_TOKEN");
        }
    }
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return (TrialState::Fail, Some(format!("cannot start `{command}`: {e}"))),
    };
    // However this trial ends early (timeout, lease, cancel, study deleted, or its worker
    // stopping and dropping the job), the objective's whole group is killed.
    let mut group = Group(child.id().and_then(|id| rustix::process::Pid::from_raw(id as i32)));
    // And its guard does, even once this worker is gone: when the trial is stopped early, when
    // the worker shuts down mid-trial, or when it is killed (kill -9, out of memory).
    let mut lifeline = group.0.and_then(|g| Lifeline::start(g, trial.number));
    let beat = Duration::from_millis((lease_ms / 3).max(300) as u64);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
    let deadline = spec.timeout_s.map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s));
    let stopped = loop {
        tokio::select! {
            status = child.wait() => break Ok(status),
            _ = ticker.tick() => {
                // Still this run's trial (its study not deleted, nor deleted and made again)?
                if let Err(e) = runner.tuning.check_run(&info.name, trial.number, &trial.run_id).await
                    && is_gone(&e)
                {
                    break Err("the study was deleted while its objective ran".to_string());
                }
                if let Ok(false) = runner.tuning.heartbeat(&info.name, trial.number, lease_ms).await {
                    break Err("the trial ended while its objective ran (its lease expired)".to_string());
                }
            }
            _ = ctx.cancelled() => break Err("the job was cancelled".to_string()),
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                break Err(format!("timed out after {} s", spec.timeout_s.unwrap_or_default()));
            }
        }
    };
    let status = match stopped {
        Ok(Ok(status)) => {
            // It ended by itself: leave whatever it left running.
            group.0 = None;
            if let Some(l) = lifeline.take() {
                l.stand_down();
            }
            status
        }
        Ok(Err(e)) => {
            // Reaped elsewhere, or lost: its group id may be another's now.
            group.0 = None;
            if let Some(l) = lifeline.take() {
                l.stand_down();
            }
            return (TrialState::Fail, Some(format!("waiting for the objective: {e}")));
        }
        Err(why) => {
            // SIGTERM to the group (the guard, once the pipe closes, follows up with SIGKILL
            // after `GRACE` even if this process has exited by then); the leader gets its grace
            // here too.
            drop(group);
            if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
            return (TrialState::Fail, Some(why));
        }
    };
    let stderr_tail = tail_of(&dir.join("stderr.txt"), STDERR_TAIL as u64);
    match status.code() {
        Some(0) => (TrialState::Complete, None),
        Some(PRUNED_EXIT) => (TrialState::Pruned, None),
        code => {
            let how = match code {
                Some(c) => format!("the objective exited with status {c}"),
                None => "the objective was killed by a signal".to_string(),
            };
            let error = if stderr_tail.is_empty() { how } else { format!("{how}: {stderr_tail}") };
            (TrialState::Fail, Some(error))
        }
    }
}

/// A trial objective's process group, stopped when dropped (unless cleared): SIGTERM, so that
/// it can clean up, then SIGKILL after `GRACE` for whatever is left.
struct Group(Option<rustix::process::Pid>);

const GRACE: Duration = Duration::from_secs(5);

/// A guard process (`slipway tune guard PGID`, in a process group of its own) that stops the
/// objective's group once this worker lets go of it: its stdin is a pipe whose only writer this
/// worker holds, so the pipe closes when the trial is dropped or stopped early, and when the
/// worker dies, however it dies — and the guard, outliving the worker if need be, sends SIGTERM
/// and, after `GRACE`, SIGKILL. When the objective ends by itself the guard stands down: killed
/// before the pipe closes, it never acts.
struct Lifeline {
    guard: tokio::process::Child,
    _writer: std::io::PipeWriter,
    /// Waits for the guard's `ready` line and warns if it never comes.
    ready: tokio::task::AbortHandle,
}

/// What a guard writes on its stdout once it holds its group: the worker warns without it.
const GUARD_READY: &str = "ready\n";

/// How long a worker waits for its guard's `ready` before it warns.
const GUARD_START: Duration = Duration::from_secs(10);

impl Lifeline {
    fn start(group: rustix::process::Pid, trial: u64) -> Option<Lifeline> {
        let started = (|| {
            let (reader, writer) = std::io::pipe()?;
            let guard = tokio::process::Command::new(std::env::current_exe()?)
                .args(["tune", "guard", &group.as_raw_nonzero().to_string()])
                .stdin(Stdio::from(reader))
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                // Not the worker's group: a Ctrl-C meant for the worker does not end the guard.
                .process_group(0)
                .spawn()?;
            Ok::<_, std::io::Error>((guard, writer))
        })();
        match started {
            Ok((mut guard, writer)) => {
                // A guard that fails once started (a binary replaced by one without `tune guard`,
                // say) is noticed rather than silently missing.
                let stdout = guard.stdout.take();
                let ready = tokio::spawn(async move {
                    use tokio::io::AsyncBufReadExt;
                    let mut said = String::new();
                    let read = async {
                        if let Some(out) = stdout {
                            let _ = tokio::io::BufReader::new(out).read_line(&mut said).await;
                        }
                    };
                    let _ = tokio::time::timeout(GUARD_START, read).await;
                    if said != GUARD_READY {
                        tracing::warn!(target: "tune::trial", trial, "the objective's guard did not start: if this worker is killed, the objective runs on");
                    }
                })
                .abort_handle();
                Some(Lifeline { guard, _writer: writer, ready })
            }
            Err(e) => {
                tracing::warn!(target: "tune::trial", trial, error = %e, "cannot start the objective's guard: if this worker is killed, the objective runs on");
                None
            }
        }
    }

    /// The objective ended by itself: the guard goes without acting (killed, then the pipe
    /// closed as `self` drops; tokio reaps it).
    fn stand_down(mut self) {
        self.ready.abort();
        let _ = self.guard.start_kill();
    }
}

/// `slipway tune guard PGID`: waits for its stdin to end (the worker let go of the trial, or is
/// gone), then stops the process group: SIGTERM, and SIGKILL after `GRACE` if any is left.
/// Called before the CLI builds its runtime: a guard is one thread.
pub(crate) fn guard(pgid: i32) -> ExitCode {
    use rustix::process::{Pid, Signal, kill_process_group, test_kill_process_group};
    use std::io::Read;
    let Some(group) = Pid::from_raw(pgid).filter(|_| pgid > 1) else {
        eprintln!("error: pgid: expected a process group id above 1, got {pgid}");
        return ExitCode::from(2);
    };
    // Ready: the worker warns if this line never comes.
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(GUARD_READY.as_bytes()).and_then(|()| out.flush());
    }
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 64];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    if kill_process_group(group, Signal::TERM).is_ok() {
        let until = std::time::Instant::now() + GRACE;
        while test_kill_process_group(group).is_ok() {
            if std::time::Instant::now() >= until {
                let _ = kill_process_group(group, Signal::KILL);
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    ExitCode::SUCCESS
}

impl Drop for Group {
    fn drop(&mut self) {
        use rustix::process::{Signal, kill_process_group};
        if let Some(pid) = self.0
            && kill_process_group(pid, Signal::TERM).is_ok()
        {
            std::thread::spawn(move || {
                std::thread::sleep(GRACE);
                let _ = kill_process_group(pid, Signal::KILL);
            });
        }
    }
}
