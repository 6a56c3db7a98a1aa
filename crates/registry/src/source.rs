//! A version's `source`: what a client says its files are, checked and resolved to a path in
//! Slipway's artifact store — never to a path on the server's disk, never to a URL fetched.
//!
//! Accepted: `models:/<model_id>[/<path>]` (a logged model), `runs:/<run_id>/<path>` (a run's
//! artifacts) and `mlflow-artifacts:/<path>` (any stored artifact). Everything else is refused:
//! `file:` in any spelling, absolute and relative server paths, `..`, percent escapes, `#`
//! fragments, `?` queries, `//host` authorities and other schemes — the tricks behind MLflow's
//! source advisories (CVE-2023-1177, CVE-2023-2780, CVE-2023-6977, CVE-2024-1483,
//! CVE-2024-1558, CVE-2024-1560, CVE-2024-1593, CVE-2024-1594, CVE-2024-2928, CVE-2024-3573,
//! CVE-2024-3848).

use slipway_core::SafePath;

use crate::error::{Error, Result};

/// A parsed source, before it is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// `models:/<model_id>[/<path>]`.
    LoggedModel { model_id: String, path: Option<SafePath> },
    /// `runs:/<run_id>[/<path>]`.
    Run { run_id: String, path: Option<SafePath> },
    /// `mlflow-artifacts:/<path>`.
    Artifact(SafePath),
}

/// Checks `source`'s form. Lookups (does the run exist, are there files) come after.
pub(crate) fn parse(source: &str) -> Result<Source> {
    let refuse = |reason: &str| Err(Error::source(source, reason));
    if source.trim() != source || source.is_empty() {
        return refuse("it is empty or has surrounding spaces");
    }
    if source.chars().any(|c| c.is_control()) {
        return refuse("it contains a control character");
    }
    let Some((scheme, rest)) = source.split_once(':') else {
        return refuse("server paths are not accepted");
    };
    // Scheme names are compared exactly: `File:`, `MODELS:` are not ours.
    let (rest, kind) = match scheme {
        "models" => (rest, 0),
        "runs" => (rest, 1),
        "mlflow-artifacts" => (rest, 2),
        _ => return refuse(&format!("the scheme '{scheme}:' is not accepted")),
    };
    let Some(path) = rest.strip_prefix('/') else {
        return refuse("expected ':/' after the scheme");
    };
    if path.starts_with('/') {
        return refuse("a host ('//host') is not accepted");
    }
    let path = SafePath::parse(path).map_err(|e| Error::source(source, e.to_string()))?;
    let mut parts = path.as_str().splitn(2, '/');
    let head = parts.next().unwrap_or_default().to_string();
    let tail = parts.next().map(SafePath::parse).transpose()?;
    match kind {
        0 => {
            if !is_id(&head, true) {
                return refuse("expected a logged model id such as m-0123abcd after 'models:/'");
            }
            Ok(Source::LoggedModel { model_id: head, path: tail })
        }
        1 => {
            if !is_id(&head, false) {
                return refuse("expected a run id after 'runs:/'");
            }
            Ok(Source::Run { run_id: head, path: tail })
        }
        _ => Ok(Source::Artifact(path)),
    }
}

/// Run ids are hex; logged model ids are `m-` and hex.
fn is_id(s: &str, model: bool) -> bool {
    let hex = if model { s.strip_prefix("m-") } else { Some(s) };
    hex.is_some_and(|h| {
        !h.is_empty() && h.len() <= 64 && h.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
    })
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn check(source: &str, expected: Expect) {
        let actual = match parse(source) {
            Ok(s) => format!("{s:?}"),
            Err(Error::InvalidSource { reason, .. }) => format!("refused: {reason}"),
            Err(e) => format!("error: {e}"),
        };
        expected.assert_eq(&actual);
    }

    #[test]
    fn accepted_sources() {
        check(
            "models:/m-0123abcd",
            expect![[r#"LoggedModel { model_id: "m-0123abcd", path: None }"#]],
        );
        check("runs:/0a1b2c/model", expect![[r#"Run { run_id: "0a1b2c", path: Some("model") }"#]]);
        check(
            "mlflow-artifacts:/1/0a1b/artifacts/model",
            expect![[r#"Artifact("1/0a1b/artifacts/model")"#]],
        );
    }

    /// Every advisory-style source, each refused for its own reason.
    #[test]
    fn advisory_sources_are_refused() {
        check("/etc/passwd", expect!["refused: server paths are not accepted"]);
        check("etc/passwd", expect!["refused: server paths are not accepted"]);
        check("file:///etc/passwd", expect!["refused: the scheme 'file:' is not accepted"]);
        check("file:/etc/passwd", expect!["refused: the scheme 'file:' is not accepted"]);
        check("FILE:///etc/passwd", expect!["refused: the scheme 'FILE:' is not accepted"]);
        check("file://localhost/etc", expect!["refused: the scheme 'file:' is not accepted"]);
        check(
            "mlflow-artifacts:/../../../etc",
            expect![[
                r#"refused: invalid path "../../../etc": '.' and '..' components are not allowed"#
            ]],
        );
        check(
            "mlflow-artifacts://host/#/../../etc",
            expect!["refused: a host ('//host') is not accepted"],
        );
        check(
            "mlflow-artifacts:/x/%2e%2e/%2e%2e/etc",
            expect![[
                r#"refused: invalid path "x/%2e%2e/%2e%2e/etc": percent-encoded sequences are not allowed"#
            ]],
        );
        check(
            "mlflow-artifacts:/x#/../../etc",
            expect![[r#"refused: invalid path "x#/../../etc": '#' is not allowed"#]],
        );
        check(
            "mlflow-artifacts:/x?p=/../../etc",
            expect![[r#"refused: invalid path "x?p=/../../etc": '?' is not allowed"#]],
        );
        check(
            "runs:/0a1b/../../../../etc",
            expect![[
                r#"refused: invalid path "0a1b/../../../../etc": '.' and '..' components are not allowed"#
            ]],
        );
        check(
            "runs:/../x",
            expect![[r#"refused: invalid path "../x": '.' and '..' components are not allowed"#]],
        );
        check(
            "models:/../../etc",
            expect![[
                r#"refused: invalid path "../../etc": '.' and '..' components are not allowed"#
            ]],
        );
        check(
            "models:/model/1",
            expect!["refused: expected a logged model id such as m-0123abcd after 'models:/'"],
        );
        check(
            "http://127.0.0.1:5000/../../etc",
            expect!["refused: the scheme 'http:' is not accepted"],
        );
        check(
            "https://example.invalid/model",
            expect!["refused: the scheme 'https:' is not accepted"],
        );
        check("s3://bucket/model", expect!["refused: the scheme 's3:' is not accepted"]);
        check("hdfs://x/model", expect!["refused: the scheme 'hdfs:' is not accepted"]);
        check(
            "mlflow-artifacts:/x\\..\\..\\etc",
            expect![[r#"refused: invalid path "x\\..\\..\\etc": backslashes are not allowed"#]],
        );
        check("C:\\Windows", expect!["refused: the scheme 'C:' is not accepted"]);
        check(" runs:/0a/model", expect!["refused: it is empty or has surrounding spaces"]);
        check("runs:/0a/model\n", expect!["refused: it is empty or has surrounding spaces"]);
        check("", expect!["refused: it is empty or has surrounding spaces"]);
    }
}
