//! The command line itself: version, doctor, usage errors, configuration precedence, client
//! commands.

use crate::harness::{Server, free_port, run, spawn_server};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

#[test]
fn version_prints_and_speaks_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["version"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), format!("slipway {}", env!("CARGO_PKG_VERSION")));
    let out = run(dir.path(), &["--json", "version"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["client"], env!("CARGO_PKG_VERSION"));
    assert!(v["server"].is_null());
}

#[test]
fn usage_errors_are_one_line_that_says_what_is_missing_and_where_to_look() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &[&str]); 6] = [
        (&["frobnicate"], &["'frobnicate'", "(see 'slipway --help')"]),
        (&["server", "--port", "seventy"], &["seventy", "(see 'slipway server --help')"]),
        (&["jobs", "show"], &["not provided: <ID>", "(see 'slipway jobs show --help')"]),
        (&["tnue"], &["a similar subcommand exists: 'tune'"]),
        (
            &["tune", "run", "s.toml", "--wrokers", "2"],
            &["a similar argument exists: '--workers'", "(see 'slipway tune run --help')"],
        ),
        (
            &["--server", "http://127.0.0.1:9", "tune", "run"],
            &["not provided: <FILE> (see 'slipway tune run --help')"],
        ),
    ];
    for (args, says) in cases {
        let out = run(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        for s in says {
            assert!(stderr.contains(s), "{args:?}: {s:?} not in {stderr}");
        }
    }
    // An argument that is not UTF-8: a usage error too, not a panic.
    use std::os::unix::ffi::OsStrExt;
    let out = crate::harness::slipway(dir.path())
        .args(["jobs", "show"])
        .arg(std::ffi::OsStr::from_bytes(b"\xff"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("(see 'slipway jobs show --help')"), "{stderr}");
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // `slipway --json doctor | head -c 0`: the reader is gone before anything is written.
    let dir = tempfile::tempdir().unwrap();
    // Written with `?`, and with `println!` (`version`).
    for args in [&["--json", "doctor"][..], &["doctor"], &["version"]] {
        let mut child = crate::harness::slipway(dir.path())
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(text(&out.stderr), "", "{args:?}");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
    }
}

#[test]
fn doctor_checks_the_embedded_stores() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["doctor"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("CHECK"), "{stdout}");
    for check in ["configuration", "metadata store", "schema", "blob store"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(check))
            .unwrap_or_else(|| panic!("{check}: {stdout}"));
        assert!(line.contains(" ok "), "{line}");
    }
    assert!(dir.path().join(".slipway/slipway.db").exists());
    let out = run(dir.path(), &["--json", "doctor"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    // It says which configuration file it read, if any.
    assert_eq!(v["checks"][0]["detail"], "no file: defaults, environment and flags", "{v}");
    std::fs::write(dir.path().join("slipway.toml"), "").unwrap();
    let out = run(dir.path(), &["--json", "doctor"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["checks"][0]["detail"], "read slipway.toml", "{v}");
}

#[test]
fn doctor_reports_a_broken_store_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        run(dir.path(), &["doctor", "--db", "postgres://nobody:pw@127.0.0.1:1/none", "--json"]);
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let db =
        v["checks"].as_array().unwrap().iter().find(|c| c["check"] == "metadata store").unwrap();
    assert_eq!(db["ok"], false);
    let detail = db["detail"].as_str().unwrap();
    assert!(!detail.contains(":pw@"), "password shown");
    // Why, not only that the pool timed out.
    assert!(detail.contains("Connection refused"), "{detail}");
}

#[test]
fn a_bad_config_file_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("slipway.toml"), "prot = 5000\n").unwrap();
    let out = run(dir.path(), &["server"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("unknown field `prot`") && stderr.contains("slipway.toml"), "{stderr}");
}

#[test]
fn configuration_file_then_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    std::fs::write(
        dir.path().join("slipway.toml"),
        format!("port = {file_port}\ndata_dir = \"state\"\n"),
    )
    .unwrap();
    let port_of = |url: &str| url.rsplit(':').next().unwrap().parse::<u16>().unwrap();

    let (child, url, _) = spawn_server(dir.path(), &["server"], &[]);
    assert_eq!(port_of(&url), file_port);
    drop(child);
    assert!(dir.path().join("state/slipway.db").exists(), "data_dir from the file");

    let env_port_text = env_port.to_string();
    let (child, url, _) =
        spawn_server(dir.path(), &["server"], &[("SLIPWAY_PORT", &env_port_text)]);
    assert_eq!(port_of(&url), env_port);
    drop(child);

    let flag_port_text = flag_port.to_string();
    let (child, url, _) = spawn_server(
        dir.path(),
        &["server", "--port", &flag_port_text],
        &[("SLIPWAY_PORT", &env_port_text)],
    );
    assert_eq!(port_of(&url), flag_port);
    drop(child);
}

#[tokio::test]
async fn client_commands_talk_to_the_server() {
    let s = Server::start(slipway_core::Backend::Sqlite).await;
    let c = s.client();
    let job: serde_json::Value = c
        .post(format!("{}/api/v1/jobs", s.url))
        .json(&serde_json::json!({"kind": "diagnostic.sleep", "payload": {"seconds": 600}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--server", &s.url, "jobs", "list"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.starts_with("ID") && stdout.contains(id) && stdout.contains("diagnostic.sleep"),
        "{stdout}"
    );
    let out = run(dir.path(), &["--server", &s.url, "jobs", "cancel", id]);
    assert!(out.status.success());
    let out = run(dir.path(), &["--server", &s.url, "--json", "jobs", "show", id]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["job"]["cancel_requested"] == true || v["job"]["status"] == "cancelled", "{v}");
    // An experiment neither named nor numbered so: said as such (-e takes either).
    let out = run(dir.path(), &["--server", &s.url, "runs", "list", "-e", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no experiment named or numbered 'nosuch'"), "{stderr}");
    // MLFLOW_TRACKING_URI is honoured when no --server is given.
    let out = crate::harness::slipway(dir.path())
        .args(["version"])
        .env("MLFLOW_TRACKING_URI", &s.url)
        .output()
        .unwrap();
    assert!(text(&out.stdout).contains("server "), "{}", text(&out.stdout));
}

#[test]
fn an_unreachable_server_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = run(dir.path(), &["--server", &url, "jobs", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot reach") && stderr.contains("Connection refused"), "{stderr}");
    assert!(stderr.contains("is `slipway server` running there?"), "{stderr}");
    // `version` still says this client's version.
    let out = run(dir.path(), &["--server", &url, "version"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout).trim(), format!("slipway {}", env!("CARGO_PKG_VERSION")));
    assert!(text(&out.stderr).contains("cannot reach"));
}

#[test]
fn a_server_that_is_not_http_or_beside_the_stores_is_refused_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    // Not replaced by the local default.
    let out = run(dir.path(), &["--server", "ftp://x", "jobs", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "error: --server: expected an http:// or https:// URL, got 'ftp://x'"
    );
    let out = crate::harness::slipway(dir.path())
        .args(["jobs", "list"])
        .env("SLIPWAY_TRACKING_URI", "file:/x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("error: SLIPWAY_TRACKING_URI: expected an http"));
    // `version` says its own version still; set but empty is unset.
    let version = |value: &str| {
        crate::harness::slipway(dir.path())
            .arg("version")
            .env("SLIPWAY_TRACKING_URI", value)
            .output()
            .unwrap()
    };
    let mine = format!("slipway {}", env!("CARGO_PKG_VERSION"));
    let out = version("file:/x");
    assert_eq!((out.status.code(), text(&out.stdout).trim()), (Some(1), mine.as_str()));
    let out = version("");
    assert_eq!((out.status.code(), text(&out.stdout).trim()), (Some(0), mine.as_str()));
    // A command on the stores themselves refuses --server rather than reading the local stores
    // as if it had been used; and creates no local store.
    let url = format!("http://127.0.0.1:{}", free_port());
    for args in [&["tune", "status"][..], &["data", "ls"]] {
        let out = run(dir.path(), &[&["--server", &url][..], args].concat());
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("works on the stores directly"), "{args:?}: {stderr}");
    }
    assert!(!dir.path().join(".slipway").exists(), "no local store was made");
}
