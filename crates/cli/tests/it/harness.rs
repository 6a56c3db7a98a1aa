//! Starting the real binary: a server on `127.0.0.1:0` whose first output line names its address.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use slipway_core::Backend;

pub(crate) fn slipway_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_slipway"))
}

/// A `slipway` command run in `dir` with a clean environment for Slipway's own variables.
pub(crate) fn slipway(dir: &Path) -> Command {
    let mut cmd = Command::new(slipway_bin());
    cmd.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("SLIPWAY_") && !key.starts_with("SLIPWAY_TEST")
            || key == "MLFLOW_TRACKING_URI"
        {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs a `slipway` command to its end.
pub(crate) fn run(dir: &Path, args: &[&str]) -> Output {
    slipway(dir).args(args).stdin(Stdio::null()).output().expect("running slipway")
}

/// A child process that is killed when dropped, so that a failing test leaves nothing running.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// A running `slipway server`, killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Proc,
    pub(crate) url: String,
    pub(crate) db_url: String,
    dir: tempfile::TempDir,
    pub(crate) stderr: PathBuf,
}

impl Server {
    pub(crate) async fn start(backend: Backend) -> Server {
        Server::start_with(backend, &[]).await
    }

    pub(crate) async fn start_with(backend: Backend, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let (db_url, db_dir) = slipway_core::testing::test_db_url(backend).await;
        // The SQLite file's folder must outlive the server: keep it inside ours.
        let db_url = match db_dir {
            Some(d) => {
                let path = dir.path().join("slipway.db");
                drop(d);
                format!("sqlite:{}", path.display())
            }
            None => db_url,
        };
        let mut args = vec!["server", "--port", "0", "--data-dir", ".", "--db", db_url.as_str()];
        args.extend_from_slice(extra);
        let (child, url, stderr) = spawn_server(dir.path(), &args, &[]);
        Server { child, url, db_url, dir, stderr }
    }

    pub(crate) fn client(&self) -> reqwest::Client {
        slipway_core::init_tls();
        reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
    }

    pub(crate) fn dir_path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// Spawns `slipway ARGS` in `dir` and waits for the first line ("slipway listening on URL").
pub(crate) fn spawn_server(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Proc, String, PathBuf) {
    let stderr = dir.join(format!("server-{}.log", slipway_core::new_id()));
    let mut cmd = slipway(dir);
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap());
    let mut child = Proc(cmd.spawn().expect("spawning slipway server"));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
    let Some(url) = line.trim().strip_prefix("slipway listening on ") else {
        panic!(
            "server did not start: {line:?}\n{}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
    };
    (child, url.to_string(), stderr)
}

/// Polls `check` until it is true or `timeout` passes.
pub(crate) async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < timeout {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub(crate) fn kill9(child: &mut Child) {
    let status = Command::new("kill").args(["-9", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let _ = child.wait();
}
