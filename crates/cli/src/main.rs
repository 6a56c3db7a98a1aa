//! The `slipway` binary: parses the command line and hands each command to its module.

mod client;
mod commands;
mod config;
mod output;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: a background thread freeing a flushed prediction-log buffer does not stall the
/// request threads' allocations, as glibc's arena locks did (p99 at 5,000 requests/s).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "slipway",
    version,
    about = "The machine-learning lifecycle in one binary",
    after_help = "Examples:\n  slipway server                      start on 127.0.0.1:5000 with SQLite and blobs in ./.slipway\n  slipway server --db postgres://u:p@db/slipway --artifacts s3://bucket/slipway\n  slipway worker --db postgres://u:p@db/slipway   run jobs on another host\n  slipway doctor                      check the stores\n  slipway run -- python train.py      track any command as a run\n  slipway runs list --filter \"metrics.f1 > 0.8\"\n  slipway data add clips/ --dataset falls  version a folder\n  slipway models register falls rf.onnx --alias champion\n  slipway endpoints create falls falls@champion\n  slipway lineage model falls@champion\n  slipway --server http://127.0.0.1:5000 jobs list"
)]
struct Cli {
    /// Print machine-readable JSON instead of tables
    #[arg(long, global = true)]
    json: bool,
    /// Slipway server for client commands [env: SLIPWAY_TRACKING_URI, MLFLOW_TRACKING_URI]
    #[arg(long, global = true, value_name = "URL")]
    server: Option<String>,
    /// Bearer token for client commands
    #[arg(
        long,
        global = true,
        env = "SLIPWAY_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: API, web UI and an in-process job worker
    Server(commands::server::ServerArgs),
    /// Serve endpoints only (stateless, for replicas behind a load balancer)
    Serve(commands::serve::ServeArgs),
    /// Run a job worker (on this or any other host sharing the stores)
    Worker(commands::worker::WorkerArgs),
    /// Print the version of this binary (and of the server, if one is named)
    Version,
    /// Check the configuration, the metadata store and the blob store
    Doctor(commands::doctor::DoctorArgs),
    /// Run any command as a tracked run (its output, exit status, git commit, host)
    Run(commands::run::RunArgs),
    /// List and create experiments
    #[command(subcommand)]
    Experiments(commands::experiments::ExperimentsCommand),
    /// List, show, compare and delete runs
    #[command(subcommand)]
    Runs(commands::runs::RunsCommand),
    /// Watch and cancel jobs on a server
    #[command(subcommand)]
    Jobs(commands::jobs::JobsCommand),
    /// Version datasets: add a folder, check out, diff, sample, split, log, list, show
    #[command(subcommand)]
    Data(commands::data::DataCommand),
    /// The running example's data (fall detection from pose clips)
    #[command(subcommand)]
    Example(commands::example::ExampleCommand),
    /// Put and get content-addressed blobs in the blob store directly
    #[command(subcommand)]
    Blobs(commands::blobs::BlobsCommand),
    /// The model registry: register, list, show, alias, delete; time an ONNX file
    #[command(subcommand)]
    Models(commands::models::ModelsCommand),
    /// Batch prediction: a model over a CSV/Parquet file or a dataset version, on every core
    Predict(commands::predict::PredictArgs),
    /// Named endpoints serving a model version or alias: create, list, show, split, shadow, delete
    #[command(subcommand)]
    Endpoints(commands::endpoints::EndpointsCommand),
    /// Canary rollouts: start one from its file, follow it, promote, abort, pause, resume
    #[command(subcommand)]
    Rollout(commands::rollout::RolloutCommand),
    /// Custom gauges a deployment pushes (camera power, bandwidth): push, list, show over time
    #[command(subcommand)]
    Gauges(commands::gauges::GaugesCommand),
    /// Alert rules on monitors and gauges, the alerts they raise, and their webhooks
    #[command(subcommand)]
    Alerts(commands::alerts::AlertsCommand),
    /// Monitors on endpoints: skew against the training table, drift between windows, per window
    #[command(subcommand)]
    Monitor(commands::monitor::MonitorCommand),
    /// Compare a current table with a reference one, column by column: has the data drifted?
    Drift(commands::drift::DriftArgs),
    /// Drive an HTTP endpoint with load (closed loop, or open loop with --rate) and report
    /// throughput, 503s and latency percentiles
    Loadtest(commands::loadtest::LoadtestArgs),
    /// Where things came from: a model version's run and dataset versions
    #[command(subcommand)]
    Lineage(commands::lineage::LineageCommand),
    /// Hyperparameter tuning: studies of trials, TPE/random/grid samplers, pruners
    #[command(subcommand)]
    Tune(commands::tune::TuneCommand),
}

/// What every command gets besides its own arguments.
pub(crate) struct Global {
    pub(crate) json: bool,
    pub(crate) server: Option<String>,
    pub(crate) token: Option<String>,
}

impl Global {
    /// The server client commands talk to: `--server`, else `SLIPWAY_TRACKING_URI`, else
    /// `MLFLOW_TRACKING_URI` if it is a server's URL (MLflow's may name a local store, which is
    /// not Slipway's to read), else the local default. A `--server` or `SLIPWAY_TRACKING_URI`
    /// that is not an http(s) URL is refused rather than replaced.
    pub(crate) fn server_url(&self) -> anyhow::Result<String> {
        let checked = |from: &str, url: String| {
            if is_http(&url) {
                Ok(url)
            } else {
                Err(anyhow::anyhow!("{from}: expected an http:// or https:// URL, got '{url}'"))
            }
        };
        if let Some(url) = &self.server {
            return checked("--server", url.clone());
        }
        // Set but empty is unset (`SLIPWAY_TRACKING_URI= slipway …`).
        if let Ok(url) = std::env::var("SLIPWAY_TRACKING_URI")
            && !url.is_empty()
        {
            return checked("SLIPWAY_TRACKING_URI", url);
        }
        Ok(std::env::var("MLFLOW_TRACKING_URI")
            .ok()
            .filter(|u| is_http(u))
            .unwrap_or_else(|| "http://127.0.0.1:5000".to_string()))
    }

    pub(crate) fn server_named(&self) -> bool {
        self.server.is_some()
            || std::env::var_os("SLIPWAY_TRACKING_URI").is_some_and(|u| !u.is_empty())
            || std::env::var("MLFLOW_TRACKING_URI").is_ok_and(|u| is_http(&u))
    }
}

fn is_http(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// A usage error as clap renders it, in one line: the error with what it lists (the missing
/// arguments), clap's tips (a similar argument, `--` before a negative number), and the help
/// of `command`, the command it was for.
fn usage_line(rendered: &str, command: &str) -> String {
    let mut lines = rendered.lines().map(str::trim_end).skip_while(|l| l.trim().is_empty());
    let mut line = lines.next().unwrap_or("error: bad usage").to_string();
    let mut listing = line.ends_with(':');
    for l in lines {
        let t = l.trim();
        if t.is_empty() {
            listing = false;
        } else if listing && l.starts_with(char::is_whitespace) {
            line.push(' ');
            line.push_str(t);
        } else if let Some(tip) = t.strip_prefix("tip:") {
            line.push_str("; ");
            line.push_str(tip.trim());
        }
    }
    format!("{line} (see '{command} --help')")
}

/// The (sub)command `args` name, as far as they name one: `slipway tune run`.
fn command_named(args: impl IntoIterator<Item = String>) -> String {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let mut path = vec!["slipway".to_string()];
    for arg in args {
        if !command.has_subcommands() {
            break;
        }
        // Options and their values are passed over; the first word naming a subcommand is it.
        let Some(sub) = command.find_subcommand(&arg).cloned() else { continue };
        path.push(sub.get_name().to_string());
        command = sub;
    }
    path.join(" ")
}

/// Output into a closed pipe (`slipway tune trials s | head`) ends the program quietly, as
/// Unix tools do: `println!` panics on it, so the panic hook exits instead (results written with
/// `?` see the error and do the same in `main`).
fn quiet_on_a_closed_pipe() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default_hook(info)
    }));
}

fn main() -> ExitCode {
    quiet_on_a_closed_pipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let args = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned());
            let command = command_named(args);
            eprintln!("{}", usage_line(&e.render().to_string(), &command));
            return ExitCode::from(2);
        }
    };
    // A trial's guard (`tune guard`, started per trial by workers) needs no runtime: one thread.
    if let Command::Tune(commands::tune::TuneCommand::Guard { pgid }) = cli.command {
        return commands::tune_trial::guard(pgid);
    }
    slipway_core::init_tls();
    if let Some(server) = &cli.server {
        let _ = config::SERVER_FLAG.set(server.clone());
    }
    let global = Global { json: cli.json, server: cli.server, token: cli.token };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, global)) {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, global: Global) -> anyhow::Result<ExitCode> {
    match command {
        Command::Server(args) => commands::server::run(args, &global).await,
        Command::Serve(args) => commands::serve::run(args, &global).await,
        Command::Worker(args) => commands::worker::run(args, &global).await,
        Command::Version => commands::version::run(&global).await,
        Command::Doctor(args) => commands::doctor::run(args, &global).await,
        Command::Run(args) => commands::run::run(args, &global).await,
        Command::Experiments(cmd) => commands::experiments::run(cmd, &global).await,
        Command::Runs(cmd) => commands::runs::run(cmd, &global).await,
        Command::Jobs(cmd) => commands::jobs::run(cmd, &global).await,
        Command::Data(cmd) => commands::data::run(cmd, &global).await,
        Command::Blobs(cmd) => commands::blobs::run(cmd, &global).await,
        Command::Example(cmd) => commands::example::run(cmd, &global).await,
        Command::Models(cmd) => commands::models::run(cmd, &global).await,
        Command::Predict(args) => commands::predict::run(args, &global).await,
        Command::Endpoints(cmd) => commands::endpoints::run(cmd, &global).await,
        Command::Rollout(cmd) => commands::rollout::run(cmd, &global).await,
        Command::Lineage(cmd) => commands::lineage::run(cmd, &global).await,
        Command::Loadtest(args) => commands::loadtest::run(args, &global).await,
        Command::Drift(args) => commands::drift::run(args, &global).await,
        Command::Gauges(cmd) => commands::gauges::run(cmd, &global).await,
        Command::Monitor(cmd) => commands::monitor::run(cmd, &global).await,
        Command::Alerts(cmd) => commands::alerts::run(cmd, &global).await,
        Command::Tune(cmd) => commands::tune::run(cmd, &global).await,
    }
}

/// The error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Sets up logging to stderr; `filter` comes from `SLIPWAY_LOG` or the config file.
pub(crate) fn init_logging(filter: Option<&str>) {
    let filter = std::env::var("SLIPWAY_LOG").ok().or(filter.map(str::to_string));
    let filter = filter.unwrap_or_else(|| "info".to_string());
    let env_filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(true)
        .try_init();
}
