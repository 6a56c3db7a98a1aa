//! `slipway data …` as a user runs it, and the datasets API of a server on the same stores.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use slipway_core::Backend;

use crate::harness::{Server, slipway};

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(3600)).unwrap();
}

/// Runs `slipway ARGS` in `dir` on the stores of the server started there.
fn data(dir: &Path, db: &str, args: &[&str]) -> std::process::Output {
    slipway(dir)
        .args(args)
        .args(["--db", db, "--data-dir", "."])
        .env("SLIPWAY_CACHE_DIR", dir.join("cache"))
        .output()
        .expect("running slipway")
}

fn json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

async fn add_checkout_diff_and_the_api(backend: Backend) {
    let server = Server::start(backend).await;
    let dir = server.dir_path();
    let db = server.db_url.clone();
    let clips = dir.join("clips");
    for i in 0..20 {
        write(
            &clips,
            &format!("ward{}/clip-{i:02}.json", i % 2),
            format!("{{\"clip\": {i}}}").as_bytes(),
        );
    }

    let first =
        json(&data(dir, &db, &["--json", "data", "add", "clips", "-d", "falls", "-m", "first"]));
    assert_eq!((first["created"].as_bool(), first["hashed"].as_u64()), (Some(true), Some(20)));
    assert_eq!(first["version"]["version"], 1);
    let again = json(&data(dir, &db, &["--json", "data", "add", "clips", "-d", "falls"]));
    assert_eq!((again["created"].as_bool(), again["hashed"].as_u64()), (Some(false), Some(0)));
    write(&clips, "ward1/clip-07.json", b"{\"clip\": \"fall\"}");
    let second =
        json(&data(dir, &db, &["--json", "data", "add", "clips", "-d", "falls", "-m", "fix"]));
    assert_eq!((second["hashed"].as_u64(), second["uploaded"].as_u64()), (Some(1), Some(1)));

    // People get tables and a one-line summary.
    let out = data(dir, &db, &["data", "diff", "falls@1", "falls@2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("~  ward1/clip-07.json"), "{text}");
    assert!(text.contains("0 added, 0 removed, 1 changed, 19 unchanged"), "{text}");
    let out = data(dir, &db, &["data", "log", "falls"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("VERSION") && text.contains("falls@2") && text.contains("fix"),
        "{text}"
    );

    let out = data(dir, &db, &["data", "checkout", "falls@1", "v1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for i in 0..20 {
        let rel = format!("ward{}/clip-{i:02}.json", i % 2);
        assert_eq!(
            std::fs::read_to_string(dir.join("v1").join(&rel)).unwrap(),
            format!("{{\"clip\": {i}}}")
        );
    }

    // Per-item metadata from a CSV: a row for a file that is not there is a problem.
    std::fs::write(
        dir.join("meta.csv"),
        "path,camera,room\nward0/clip-00.json,4k,3\nward9/ghost.json,720p,1\n",
    )
    .unwrap();
    let out = data(dir, &db, &["data", "add", "clips", "-d", "falls", "--meta", "meta.csv"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ward9/ghost.json: listed in the metadata file but not in the folder"),
        "{stderr}"
    );
    std::fs::write(
        dir.join("meta.csv"),
        "path,camera,room\nward0/clip-00.json,4k,3\n\"ward1/clip-01.json\",720p,\n",
    )
    .unwrap();
    let third = json(&data(
        dir,
        &db,
        &["--json", "data", "add", "clips", "-d", "falls", "--meta", "meta.csv"],
    ));
    assert_eq!(
        (third["created"].as_bool(), third["hashed"].as_u64()),
        (Some(true), Some(0)),
        "meta alone is a new version"
    );
    let shown = json(&data(dir, &db, &["--json", "data", "show", "falls@3", "--items"]));
    let items = shown["items"].as_array().unwrap();
    let meta = |path: &str| items.iter().find(|i| i["path"] == path).unwrap().get("meta").cloned();
    assert_eq!(meta("ward0/clip-00.json"), Some(serde_json::json!({"camera": "4k", "room": "3"})));
    assert_eq!(meta("ward1/clip-01.json"), Some(serde_json::json!({"camera": "720p"})));
    assert_eq!(meta("ward0/clip-02.json"), None);
    std::fs::write(dir.join("bad.csv"), "file,camera\na,b\n").unwrap();
    let out = data(dir, &db, &["data", "add", "clips", "-d", "falls", "--meta", "bad.csv"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no 'path' column"));

    // Bad input: one line, non-zero, nothing made.
    for (args, needle) in [
        (&["data", "add", "nowhere", "-d", "falls"][..], "no such file"),
        (&["data", "add", "clips", "-d", "../up"], "not a valid dataset name"),
        (&["data", "show", "falls@7"], "no version 7"),
        (&["data", "show", "falls@x"], "a version is a number"),
        (&["data", "checkout", "falls", "v1"], "not empty"),
    ] {
        let out = data(dir, &db, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }

    // The server on the same stores serves what the CLI made.
    let http = server.client();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{}{path}", server.url);
        async move { http.get(url).send().await.unwrap() }
    };
    let list: Value = get("/api/v1/datasets".into()).await.json().await.unwrap();
    assert_eq!(list["datasets"][0]["name"], "falls");
    assert_eq!(list["datasets"][0]["latest"], 3);
    let log: Value = get("/api/v1/datasets/falls".into()).await.json().await.unwrap();
    assert_eq!(log["versions"].as_array().unwrap().len(), 3);
    let page: Value =
        get("/api/v1/datasets/falls/versions/latest?prefix=ward1/&limit=3&offset=1".into())
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(page["total"], 10);
    let paths: Vec<&str> =
        page["items"].as_array().unwrap().iter().map(|i| i["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["ward1/clip-03.json", "ward1/clip-05.json", "ward1/clip-07.json"]);
    let diff: Value =
        get("/api/v1/datasets/falls/diff?from=1&to=2".into()).await.json().await.unwrap();
    assert_eq!(diff["changed"][0]["after"]["path"], "ward1/clip-07.json");
    let file = get("/api/v1/datasets/falls/versions/2/files/ward1/clip-07.json".into()).await;
    assert_eq!(file.headers()["content-type"], "application/json");
    assert_eq!(file.text().await.unwrap(), "{\"clip\": \"fall\"}");
    // Lineage: a run that reads falls@2 is listed by that version, and links back.
    let run = |args: &[&str]| {
        slipway(dir)
            .args(["--server", &server.url, "run"])
            .args(args)
            .output()
            .expect("slipway run")
    };
    let out = run(&["--input", "falls@2", "--name", "trainer", "--", "true"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["--input", "falls@9", "--", "true"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no version 9"));
    let used: Value =
        get("/api/v1/datasets/falls/versions/2/runs".into()).await.json().await.unwrap();
    let runs = used["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{used}");
    assert_eq!(runs[0]["name"], "trainer");
    assert_eq!(runs[0]["inputs"][0]["version"], "falls@2");
    assert_eq!(runs[0]["inputs"][0]["context"], "training");
    let none: Value =
        get("/api/v1/datasets/falls/versions/1/runs".into()).await.json().await.unwrap();
    assert_eq!(none["runs"].as_array().unwrap().len(), 0, "the failed run was never created");

    for (path, status) in [
        ("/api/v1/datasets/nope", 404),
        ("/api/v1/datasets/falls/versions/9", 404),
        ("/api/v1/datasets/falls/versions/zero", 400),
        ("/api/v1/datasets/falls/versions/1/files/ward1/nope.json", 404),
        ("/api/v1/datasets/falls/versions/1/files/../../etc/passwd", 404),
        ("/api/v1/datasets/falls/versions/1?limit=0", 400),
        ("/api/v1/datasets/falls/diff?from=1", 400),
    ] {
        let resp = get(path.into()).await;
        assert_eq!(resp.status().as_u16(), status, "{path}");
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(body["error_code"].is_string(), "{path}: {body}");
    }
}

async fn samples_and_splits_are_deterministic_and_stratified(backend: Backend) {
    let server = Server::start(backend).await;
    let dir = server.dir_path();
    let db = server.db_url.clone();
    let mut csv = String::from("path,activity\n");
    for i in 0..30 {
        let activity = if i < 20 {
            "walk"
        } else if i < 26 {
            "fall"
        } else {
            "sit"
        };
        write(&dir.join("clips"), &format!("c{i:02}.json"), format!("{i}").as_bytes());
        csv.push_str(&format!("c{i:02}.json,{activity}\n"));
    }
    std::fs::write(dir.join("clips.csv"), csv).unwrap();
    json(&data(
        dir,
        &db,
        &["--json", "data", "add", "clips", "-d", "poses", "--meta", "clips.csv"],
    ));
    let sample = [
        "--json",
        "data",
        "sample",
        "poses@1",
        "--fraction",
        "0.5",
        "--stratify-by",
        "activity",
        "--seed",
        "3",
    ];
    let first = json(&data(dir, &db, &sample));
    assert_eq!(first[0]["version"]["dataset"], "poses-sample");
    assert_eq!(first[0]["version"]["derived_from"], "poses@1");
    assert_eq!(first[0]["version"]["items"], 15);
    assert_eq!(
        json(&data(dir, &db, &sample))[0]["created"],
        false,
        "the same seed picks the same items"
    );
    let shown = json(&data(dir, &db, &["--json", "data", "show", "poses-sample", "--items"]));
    let count = |class: &str| {
        shown["items"].as_array().unwrap().iter().filter(|i| i["meta"]["activity"] == class).count()
    };
    assert_eq!((count("walk"), count("fall"), count("sit")), (10, 3, 2));

    let split = json(&data(
        dir,
        &db,
        &[
            "--json", "data", "split", "poses", "--train", "0.8", "--val", "0.1", "--test", "0.1",
            "--seed", "9",
        ],
    ));
    let names: Vec<&str> = split
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["version"]["dataset"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["poses-train", "poses-val", "poses-test"]);
    let sizes: Vec<i64> =
        split.as_array().unwrap().iter().map(|c| c["version"]["items"].as_i64().unwrap()).collect();
    assert_eq!(sizes, [24, 3, 3]);
    let mut all: Vec<String> = Vec::new();
    for name in names {
        let shown = json(&data(dir, &db, &["--json", "data", "show", name, "--items"]));
        all.extend(
            shown["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["path"].as_str().unwrap().to_string()),
        );
    }
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 30, "every item in exactly one part");
    for args in [
        &["data", "split", "poses", "--train", "0.8", "--test", "0.1", "--seed", "1"][..],
        &["data", "sample", "poses", "--n", "31", "--seed", "1"],
        &["data", "sample", "poses", "--fraction", "0", "--seed", "1"],
    ] {
        let out = data(dir, &db, args);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim().lines().count(), 1, "{args:?}");
    }
}

async fn the_example_tables_and_profiles(backend: Backend) {
    let server = Server::start(backend).await;
    let dir = server.dir_path();
    let db = server.db_url.clone();
    let generate = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "--json",
            "example",
            "fall-detection",
            "generate",
            out,
            "--clips",
            "50",
            "--seed",
            "2",
        ];
        args.extend_from_slice(extra);
        slipway(dir).args(&args).output().expect("slipway example")
    };
    let made = json(&generate("gen", &[]));
    let per = made["per_activity"].as_object().unwrap();
    assert_eq!(per.values().map(|v| v.as_u64().unwrap()).sum::<u64>(), 50);
    let again = generate("gen", &[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    json(&generate("gen4k", &["--camera", "4k"]));

    // A Parquet file is a table version with a profile.
    let added =
        json(&data(dir, &db, &["--json", "data", "add", "gen/features.parquet", "-d", "features"]));
    assert_eq!(
        (added["table"]["rows"].as_u64(), added["table"]["format"].as_str()),
        (Some(50), Some("parquet"))
    );
    let shown =
        String::from_utf8_lossy(&data(dir, &db, &["data", "show", "features"]).stdout).to_string();
    assert!(
        shown.contains("a parquet table of 50 rows") && shown.contains("hip_drop_px"),
        "{shown}"
    );
    let text = String::from_utf8_lossy(&data(dir, &db, &["data", "profile", "features"]).stdout)
        .to_string();
    assert!(text.starts_with("features@1: 50 rows × 17 columns"), "{text}");
    assert!(text.contains("peak_down_velocity_px_s") && text.contains('█'), "{text}");
    let profile = json(&data(dir, &db, &["--json", "data", "profile", "features"]));
    let columns = profile["columns"].as_array().unwrap();
    assert_eq!(columns.len(), 17);
    let activity = columns.iter().find(|c| c["name"] == "activity").unwrap();
    let top: u64 = activity["top"].as_array().unwrap().iter().map(|t| t[1].as_u64().unwrap()).sum();
    assert_eq!(top, 50);
    // Skew, as the seed has it: the 4k camera triples pixel features.
    json(&data(
        dir,
        &db,
        &["--json", "data", "add", "gen4k/features.parquet", "-d", "features-4k"],
    ));
    let mean = |name: &str, col: &str| {
        let p = json(&data(dir, &db, &["--json", "data", "profile", name, "--column", col]));
        p["columns"][0]["mean"].as_f64().unwrap()
    };
    let ratio = mean("features-4k", "body_height_px") / mean("features", "body_height_px");
    assert!((ratio - 3.0).abs() < 0.01, "{ratio}");
    let ratio = mean("features-4k", "bbox_aspect_change") / mean("features", "bbox_aspect_change");
    assert!((ratio - 1.0).abs() < 0.01, "{ratio}");

    // Folders with item metadata are profiled; folders without have no profile.
    json(&data(
        dir,
        &db,
        &["--json", "data", "add", "gen/clips", "-d", "falls", "--meta", "gen/clips.csv"],
    ));
    let text = String::from_utf8_lossy(
        &data(dir, &db, &["data", "profile", "falls", "--column", "activity"]).stdout,
    )
    .to_string();
    assert!(text.contains("top values"), "{text}");
    json(&data(dir, &db, &["--json", "data", "add", "gen4k/clips", "-d", "bare"]));
    // A table edited: the diff names rows and columns.
    let csv =
        String::from_utf8_lossy(&data(dir, &db, &["data", "show", "features"]).stdout).to_string();
    assert!(!csv.is_empty());
    std::fs::write(dir.join("small.csv"), "clip_id,activity\nc1,fall\nc2,walk\n").unwrap();
    std::fs::write(dir.join("small2.csv"), "clip_id,activity,room\nc1,fall,a\nc3,sit,b\n").unwrap();
    json(&data(dir, &db, &["--json", "data", "add", "small.csv", "-d", "small"]));
    json(&data(dir, &db, &["--json", "data", "add", "small2.csv", "-d", "small"]));
    let text =
        String::from_utf8_lossy(&data(dir, &db, &["data", "diff", "small@1", "small@2"]).stdout)
            .to_string();
    assert!(text.contains("+  room"), "{text}");
    assert!(text.contains("rows: 2 -> 2: 1 added, 1 removed, 1 unchanged"), "{text}");
    // Bad tables and bad profile requests: one line each, non-zero.
    std::fs::write(dir.join("bad.csv"), "a,b\n1,2\n3\n").unwrap();
    for (args, needle) in [
        (&["data", "profile", "bare"][..], "no profile"),
        (&["data", "profile", "features", "--column", "nope"], "no column 'nope'"),
        (
            &["data", "add", "gen/clips.csv", "-d", "x", "--meta", "gen/clips.csv"],
            "--meta is for folders",
        ),
        (&["example", "fall-detection", "generate", "z", "--clips", "0"], "at least 1"),
        (&["example", "fall-detection", "generate", "z", "--camera", "8k"], "invalid value"),
    ] {
        let out = if args[0] == "example" {
            slipway(dir).args(args).output().unwrap()
        } else {
            data(dir, &db, args)
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let out = data(dir, &db, &["data", "add", "bad.csv", "-d", "bad"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("bad.csv: not a readable CSV table") && stderr.contains("line 3"),
        "{stderr}"
    );
    assert!(stderr.contains("no version was made"), "{stderr}");

    // The API: profiles, raw profiles, rows, and 4xx for what cannot be.
    let client = server.client();
    let get = |path: String| {
        let client = client.clone();
        let url = format!("{}{path}", server.url);
        async move { client.get(url).send().await.unwrap() }
    };
    let p: Value = get("/api/v1/datasets/features/versions/1/profile?bins=10".into())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(p["rows"], 50);
    let hip = p["columns"].as_array().unwrap().iter().find(|c| c["name"] == "hip_drop_px").unwrap();
    let bins = hip["histogram"].as_array().unwrap();
    assert_eq!(bins.len(), 10);
    assert_eq!(bins.iter().map(|b| b["count"].as_u64().unwrap()).sum::<u64>(), 50);
    assert_eq!(hip["quantiles"][0]["value"], hip["min"]);
    let raw: Value = get("/api/v1/datasets/features/versions/1/profile?raw=true".into())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!((raw["format"].as_u64(), raw["rows"].as_u64()), (Some(1), Some(50)));
    let rows: Value = get("/api/v1/datasets/features/versions/1/rows?offset=48&limit=5".into())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!((rows["total"].as_u64(), rows["rows"].as_array().unwrap().len()), (Some(50), 2));
    assert_eq!(rows["rows"][0][0], "clip-00048");
    let v: Value = get("/api/v1/datasets/features/versions/1".into()).await.json().await.unwrap();
    assert_eq!(
        (v["table"]["rows"].as_u64(), v["version"]["has_profile"].as_bool()),
        (Some(50), Some(true))
    );
    let d: Value =
        get("/api/v1/datasets/small/diff?from=1&to=2".into()).await.json().await.unwrap();
    assert_eq!(d["table"]["columns_added"][0]["name"], "room");
    for (path, status) in [
        ("/api/v1/datasets/bare/versions/1/profile", 404),
        ("/api/v1/datasets/bare/versions/1/rows", 400),
        ("/api/v1/datasets/features/versions/1/profile?bins=0", 400),
        ("/api/v1/datasets/features/versions/1/rows?limit=5000", 400),
        ("/api/v1/datasets/features/versions/1/rows?offset=-1", 400),
    ] {
        let resp = get(path.into()).await;
        assert_eq!(resp.status().as_u16(), status, "{path}");
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(body["error_code"].is_string(), "{path}: {body}");
    }
}

slipway_core::on_both_backends!(
    add_checkout_diff_and_the_api,
    samples_and_splits_are_deterministic_and_stratified,
    the_example_tables_and_profiles
);
