//! The workspace's shape, checked with `cargo metadata`: packages are `slipway-<folder>`, stage
//! crates never depend on the HTTP stack, the binary's crates or a later stage.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

/// Which Slipway crates each crate may use: the lifecycle's own arrows (DESIGN.md §4).
fn allowed(stage: &str) -> Option<&'static [&'static str]> {
    Some(match stage {
        "core" => &[],
        "data" => &["core"],
        "label" => &["core", "data"],
        "track" => &["core", "data"],
        "tune" => &["core", "data", "track"],
        "pipeline" => &["core", "data", "track"],
        "registry" => &["core", "data", "track"],
        "serve" => &["core", "data", "track", "registry"],
        "monitor" => &["core", "data", "track", "registry", "serve"],
        "server" => {
            &["core", "data", "label", "track", "tune", "pipeline", "registry", "serve", "monitor"]
        }
        "cli" => &[
            "core", "data", "label", "track", "tune", "pipeline", "registry", "serve", "monitor",
            "server",
        ],
        _ => return None,
    })
}

/// What only `server` and `cli` may pull in, directly or not.
const HTTP_AND_CLI_STACK: &[&str] = &["axum", "utoipa", "clap", "tracing-subscriber"];
/// What only `server` and `cli` may depend on directly (the blob store's HTTP client uses them).
const DIRECT_HTTP: &[&str] = &["tower", "tower-http", "hyper", "reqwest"];

fn metadata() -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // This machine's target only, so that no other platform's crates need downloading.
    let rustc = std::process::Command::new("rustc").arg("-vV").output().expect("running rustc -vV");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc names its host");
    let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--offline", "--filter-platform", &host])
        .current_dir(&root)
        .output()
        .expect("running cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn crates_follow_the_lifecycle_arrows() {
    let meta = metadata();
    let packages: BTreeMap<String, &Value> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap().to_string(), p))
        .collect();
    let members: Vec<&str> =
        meta["workspace_members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    let deps: BTreeMap<&str, Vec<&str>> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let id = n["id"].as_str().unwrap();
            (
                id,
                n["dependencies"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect(),
            )
        })
        .collect();
    let name_of = |id: &str| packages[id]["name"].as_str().unwrap().to_string();

    let mut stages_seen = BTreeSet::new();
    for member in &members {
        let pkg = packages[*member];
        let name = pkg["name"].as_str().unwrap();
        let manifest = Path::new(pkg["manifest_path"].as_str().unwrap());
        let folder = manifest.parent().unwrap().file_name().unwrap().to_str().unwrap();
        assert_eq!(name, format!("slipway-{folder}"), "package names are slipway-<folder>");
        let allowed =
            allowed(folder).unwrap_or_else(|| panic!("crates/{folder} is not a lifecycle stage"));
        stages_seen.insert(folder.to_string());

        // Direct Slipway dependencies follow the arrows.
        for dep in &deps[*member] {
            let dep_name = name_of(dep);
            if dep_name == name {
                continue; // a dev-dependency on itself, for test helpers
            }
            if folder != "server" && folder != "cli" && folder != "core" {
                assert!(
                    !DIRECT_HTTP.contains(&dep_name.as_str()),
                    "{name} must not use {dep_name} directly"
                );
            }
            if let Some(stage) = dep_name.strip_prefix("slipway-") {
                assert!(allowed.contains(&stage), "{name} must not depend on {dep_name}");
            }
        }
        // Nothing below the binary reaches the HTTP server stack or the CLI stack, even indirectly.
        if folder != "server" && folder != "cli" {
            let mut stack = vec![*member];
            let mut seen = BTreeSet::new();
            while let Some(id) = stack.pop() {
                if !seen.insert(id) {
                    continue;
                }
                let dep_name = name_of(id);
                assert!(
                    !HTTP_AND_CLI_STACK.contains(&dep_name.as_str()),
                    "{name} depends (perhaps indirectly) on {dep_name}"
                );
                stack.extend(deps[id].iter().copied());
            }
        }
    }
    assert!(
        stages_seen.contains("core")
            && stages_seen.contains("server")
            && stages_seen.contains("cli")
    );
}
