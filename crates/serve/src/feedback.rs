//! Ground truth for served predictions, and the A/B report it feeds. While an endpoint runs an
//! experiment (more than one variant with traffic), each answer's labels are remembered by
//! request id — buffered in memory and written with the counts each second, never on the request
//! path. Ground truth posted later for a request id is scored against what its variant said;
//! the report compares variants on requests, errors, latency and accuracy, with a
//! sample-ratio-mismatch check on the split itself.

use std::collections::HashMap;

use serde_json::{Value, json};
use slipway_core::now_ms;
use sqlx::{AssertSqlSafe, Row};

use crate::abtest::{self, Rate};
use crate::driver::StepCounts;
use crate::endpoints::{Error, Result, Serving};
use crate::runtime::Output;
use tract_onnx::prelude::*;

/// Predictions buffered at most, between two flushes; beyond it they are dropped (and counted).
pub(crate) const MAX_PENDING: usize = 200_000;

/// One answer, remembered for its ground truth.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Remembered {
    pub(crate) request_id: String,
    pub(crate) endpoint: String,
    pub(crate) variant: String,
    pub(crate) version: i64,
    /// Per row: the first output's value, as text.
    pub(crate) labels: Vec<String>,
}

/// The rows of an output as text labels: a label tensor's values, or a row's first value.
pub(crate) fn labels_of(o: &Output) -> Vec<String> {
    let t = match o {
        Output::Tensor(t) => t.clone(),
        Output::ZipMap { probabilities, .. } => probabilities.clone(),
    };
    let rows = t.shape().first().copied().unwrap_or(1).max(1);
    let width = (t.len() / rows).max(1);
    let Ok(plain) = t.try_as_plain_ram() else { return Vec::new() };
    let dt = t.datum_type();
    let pick = |i: usize| i * width;
    if dt == i64::datum_type() {
        let s = plain.as_slice::<i64>().unwrap_or(&[]);
        (0..rows).filter_map(|r| s.get(pick(r)).map(|v| v.to_string())).collect()
    } else if dt == String::datum_type() {
        let s = plain.as_slice::<String>().unwrap_or(&[]);
        (0..rows).filter_map(|r| s.get(pick(r)).cloned()).collect()
    } else if dt == f32::datum_type() {
        let s = plain.as_slice::<f32>().unwrap_or(&[]);
        (0..rows).filter_map(|r| s.get(pick(r)).map(|v| label_text(f64::from(*v)))).collect()
    } else {
        Vec::new()
    }
}

/// A ground-truth value as the text a label is compared with (`1`, not `1.0`).
pub fn truth_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(u8::from(*b).to_string()),
        Value::Number(n) => n.as_f64().map(label_text),
        _ => None,
    }
}

fn label_text(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { v.to_string() }
}

/// What a feedback call did.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub scored: usize,
    /// Request ids with no remembered prediction (too old, not in an experiment, or unknown).
    pub unknown: Vec<String>,
}

impl Serving {
    /// Remembers an answer of an endpoint in an experiment until the next flush.
    pub(crate) fn remember(&self, r: Remembered) {
        let mut pending = self.pending.lock().expect("pending lock");
        if pending.len() < MAX_PENDING {
            pending.push(r);
        }
    }

    /// Writes the remembered answers.
    pub(crate) async fn flush_predictions(&self) -> Result<()> {
        let batch = std::mem::take(&mut *self.pending.lock().expect("pending lock"));
        let now = now_ms();
        for chunk in batch.chunks(400) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let p = i * 6;
                    format!(
                        "(${}, ${}, ${}, ${}, ${}, ${})",
                        p + 1,
                        p + 2,
                        p + 3,
                        p + 4,
                        p + 5,
                        p + 6
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO serve_predictions (request_id, endpoint, variant, version, labels, at_ms) \
                 VALUES {} ON CONFLICT (request_id) DO NOTHING",
                values.join(", ")
            );
            // Built from placeholders only.
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for r in chunk {
                q = q
                    .bind(r.request_id.clone())
                    .bind(r.endpoint.clone())
                    .bind(r.variant.clone())
                    .bind(r.version)
                    .bind(serde_json::to_string(&r.labels).expect("labels serialise"))
                    .bind(now);
            }
            q.execute(self.db.pool()).await?;
        }
        Ok(())
    }

    /// Scores ground truth (`request id`, one label per row of that request) against the
    /// remembered answers of `endpoint`. Sending it again for a request replaces the score.
    pub async fn feedback(
        &self,
        endpoint: &str,
        items: &[(String, Vec<String>)],
    ) -> Result<Scored> {
        self.get(endpoint).await?;
        self.flush_predictions().await?;
        let mut out = Scored { scored: 0, unknown: Vec::new() };
        // Everything is checked before anything is written: bad feedback changes nothing.
        let mut scores = Vec::with_capacity(items.len());
        for chunk in items.chunks(400) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT request_id, variant, version, labels FROM serve_predictions \
                 WHERE endpoint = $1 AND request_id IN ({})",
                marks.join(", ")
            );
            // Built from placeholders only.
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(endpoint);
            for (id, _) in chunk {
                q = q.bind(id.clone());
            }
            let rows = q.fetch_all(self.db.pool()).await?;
            let mut known: HashMap<String, (String, i64, Vec<String>)> = HashMap::new();
            for row in &rows {
                let labels: Vec<String> =
                    serde_json::from_str(&row.try_get::<String, _>("labels")?).unwrap_or_default();
                known.insert(
                    row.try_get("request_id")?,
                    (row.try_get("variant")?, row.try_get("version")?, labels),
                );
            }
            for (id, truth) in chunk {
                let Some((variant, version, said)) = known.get(id) else {
                    out.unknown.push(id.clone());
                    continue;
                };
                if truth.len() != said.len() {
                    return Err(Error::Invalid(format!(
                        "request {id} had {} row(s); the feedback gives {} label(s)",
                        said.len(),
                        truth.len()
                    )));
                }
                let correct = said.iter().zip(truth).filter(|(a, b)| a == b).count();
                scores.push((id.clone(), variant.clone(), *version, said.len(), correct));
            }
        }
        let now = now_ms();
        for (id, variant, version, n, correct) in &scores {
            sqlx::query(
                "INSERT INTO serve_feedback (request_id, endpoint, variant, version, n, correct, at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (request_id) DO UPDATE SET \
                 n = excluded.n, correct = excluded.correct, at_ms = excluded.at_ms",
            )
            .bind(id)
            .bind(endpoint)
            .bind(variant)
            .bind(*version)
            .bind(*n as i64)
            .bind(*correct as i64)
            .bind(now)
            .execute(self.db.pool())
            .await?;
        }
        out.scored = scores.len();
        Ok(out)
    }

    /// Scored rows per variant of `endpoint` since `since_ms`.
    pub async fn feedback_since(
        &self,
        endpoint: &str,
        since_ms: i64,
    ) -> Result<HashMap<String, Rate>> {
        let rows = sqlx::query(
            "SELECT variant, CAST(SUM(n) AS BIGINT) AS n, CAST(SUM(correct) AS BIGINT) AS correct \
             FROM serve_feedback WHERE endpoint = $1 AND at_ms >= $2 GROUP BY variant",
        )
        .bind(endpoint)
        .bind(since_ms)
        .fetch_all(self.db.pool())
        .await?;
        let mut out = HashMap::new();
        for row in &rows {
            out.insert(
                row.try_get::<String, _>("variant")?,
                Rate {
                    successes: row.try_get::<i64, _>("correct")? as u64,
                    n: row.try_get::<i64, _>("n")? as u64,
                },
            );
        }
        Ok(out)
    }

    /// The A/B report of `endpoint` since `since_ms`: per variant its requests, errors, p99 and
    /// accuracy from ground truth; the split's sample-ratio check; each variant against the
    /// baseline (the first) on error rate and accuracy.
    pub async fn abtest(&self, endpoint: &str, since_ms: i64) -> Result<Value> {
        let e = self.get(endpoint).await?;
        // This process's latest second too (other replicas' arrive within theirs).
        self.flush_counts().await?;
        let counts = self.counts_since(endpoint, since_ms).await?;
        let feedback = self.feedback_since(endpoint, since_ms).await?;
        let empty = StepCounts::default();
        let no_truth = Rate { successes: 0, n: 0 };
        let variants = &e.traffic.variants;
        let mut views = Vec::new();
        for v in variants {
            let c = counts.get(&v.name).unwrap_or(&empty);
            let f = feedback.get(&v.name).copied().unwrap_or(no_truth);
            views.push(json!({
                "name": v.name, "weight": v.weight(), "requests": c.requests(), "errors": c.errors,
                "error_rate": c.error_rate(), "p99_ms": c.p99_ms(),
                "feedback_rows": f.n, "accuracy": f.value(),
            }));
        }
        let observed: Vec<u64> =
            variants.iter().map(|v| counts.get(&v.name).map_or(0, |c| c.requests())).collect();
        let weights: Vec<f64> = variants.iter().map(|v| v.weight()).collect();
        let srm = abtest::sample_ratio_p(&observed, &weights);
        let comparison = |metric: &str, a: Rate, b: Rate| {
            abtest::compare(a, b).map(|c| {
                json!({
                    "metric": metric, "effect": c.effect, "interval": [c.interval.0, c.interval.1],
                    "p_value": c.p_value, "always_valid_p": c.always_valid_p,
                })
            })
        };
        let errors_of = |name: &str| {
            let c = counts.get(name).unwrap_or(&empty);
            Rate { successes: c.errors, n: c.requests() }
        };
        let base = &variants[0].name;
        let mut comparisons = Vec::new();
        for v in variants.iter().skip(1) {
            let mut metrics = Vec::new();
            metrics.extend(comparison("error_rate", errors_of(base), errors_of(&v.name)));
            let (fa, fb) = (feedback.get(base), feedback.get(&v.name));
            if let (Some(a), Some(b)) = (fa, fb) {
                metrics.extend(comparison("accuracy", *a, *b));
            }
            comparisons.push(json!({"variant": v.name, "against": base, "metrics": metrics}));
        }
        Ok(json!({
            "endpoint": endpoint,
            "since_ms": since_ms,
            "variants": views,
            "sample_ratio": {"p_value": srm, "mismatch": srm.is_some_and(|p| p < 0.001)},
            "comparisons": comparisons,
            "test": "two-proportion z-test (fixed sample) and mSPRT always-valid p-value (tau 0.05), \
                     95% normal interval",
        }))
    }
}
