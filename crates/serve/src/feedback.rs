//! Ground truth for served predictions, and the A/B report and per-window performance it feeds.
//! While an endpoint runs an experiment (more than one variant with traffic) or logs a request,
//! each answer's labels are remembered by request id — buffered in memory and written with the
//! counts each second, never on the request path. Ground truth posted later for a request id is kept beside what its variant said (and
//! its scores); the report compares variants on requests, errors, latency and the outcome
//! metrics of [`crate::outcomes`], with a sample-ratio-mismatch check on the split itself.

use std::collections::HashMap;

use serde_json::{Value, json};
use slipway_core::now_ms;
use slipway_core::{Sql, SqlValue};
use sqlx::Row;

use crate::abtest::{self, Rate};
use crate::driver::StepCounts;
use crate::endpoints::{Error, Result, Serving};
use crate::outcomes::{Outcomes, Row as Scored1};
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
    /// Per row, for a two-class model: its score for the second class; else empty.
    pub(crate) scores: Vec<f64>,
    /// When it was answered, ms.
    pub(crate) at_ms: i64,
}

/// A two-class model's score for the second class, per row: the second column of the first
/// two-column float output after the labels (`probabilities`), or of a ZipMap's. Empty when the
/// model gives none.
pub(crate) fn scores_of(outputs: &[Output]) -> Vec<f64> {
    for o in outputs.iter().skip(1).chain(outputs.first()) {
        let t = match o {
            Output::ZipMap { probabilities, .. } => probabilities,
            Output::Tensor(t) => t,
        };
        if t.datum_type() != f32::datum_type() || t.rank() != 2 || t.shape()[1] != 2 {
            continue;
        }
        let Ok(plain) = t.try_as_plain_ram() else { continue };
        let Ok(values) = plain.as_slice::<f32>() else { continue };
        return values.chunks(2).map(|row| f64::from(row[1])).collect();
    }
    Vec::new()
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

/// Scores as stored: JSON numbers, a non-finite one as null.
fn scores_json(scores: &[f64]) -> String {
    let v: Vec<Value> = scores.iter().map(|s| json!(s.is_finite().then_some(*s))).collect();
    Value::Array(v).to_string()
}

/// A stored feedback row's rows: what was said, what was true, and the score, row by row.
fn scored_rows(row: &sqlx::any::AnyRow) -> Result<Vec<Scored1>> {
    let said: Vec<String> =
        serde_json::from_str(&row.try_get::<String, _>("said")?).unwrap_or_default();
    let truth: Vec<String> =
        serde_json::from_str(&row.try_get::<String, _>("truth")?).unwrap_or_default();
    let scores: Vec<Option<f64>> =
        serde_json::from_str(&row.try_get::<String, _>("scores")?).unwrap_or_default();
    Ok(said
        .into_iter()
        .zip(truth)
        .enumerate()
        .map(|(i, (said, truth))| Scored1 { said, truth, score: scores.get(i).copied().flatten() })
        .collect())
}

fn label_text(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { v.to_string() }
}

/// What a feedback call did.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub scored: usize,
    /// Request ids with no remembered prediction (too old, neither logged nor in an experiment,
    /// or unknown).
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
        for chunk in batch.chunks(1000) {
            // Through `Sql`: numbered binds cost SQLite time quadratic in their number.
            let mut q = Sql::new(
                "INSERT INTO serve_predictions (request_id, endpoint, variant, version, labels, \
                 scores, at_ms) VALUES ",
            );
            q.bind_rows(chunk.iter().map(|r| -> [SqlValue; 7] {
                [
                    r.request_id.as_str().into(),
                    r.endpoint.as_str().into(),
                    r.variant.as_str().into(),
                    r.version.into(),
                    serde_json::to_string(&r.labels).expect("labels serialise").into(),
                    scores_json(&r.scores).into(),
                    r.at_ms.into(),
                ]
            }));
            q.push(" ON CONFLICT (request_id) DO NOTHING");
            q.into_query(&self.db).execute(self.db.pool()).await?;
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
        for chunk in items.chunks(1000) {
            let mut q = Sql::new(
                "SELECT request_id, variant, version, labels, scores FROM serve_predictions \
                 WHERE endpoint = ",
            );
            q.bind(endpoint).push(" AND request_id IN (");
            q.bind_list(chunk.iter().map(|(id, _)| id.as_str()));
            q.push(")");
            let q = q.into_query(&self.db);
            let rows = q.fetch_all(self.db.pool()).await?;
            let mut known: HashMap<String, (String, i64, Vec<String>, String)> = HashMap::new();
            for row in &rows {
                let labels: Vec<String> =
                    serde_json::from_str(&row.try_get::<String, _>("labels")?).unwrap_or_default();
                known.insert(
                    row.try_get("request_id")?,
                    (
                        row.try_get("variant")?,
                        row.try_get("version")?,
                        labels,
                        row.try_get("scores")?,
                    ),
                );
            }
            for (id, truth) in chunk {
                let Some((variant, version, said, row_scores)) = known.get(id) else {
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
                scores.push(FeedbackRow {
                    id: id.clone(),
                    variant: variant.clone(),
                    version: *version,
                    n: said.len(),
                    correct,
                    said: serde_json::to_string(said).expect("labels serialise"),
                    truth: serde_json::to_string(truth).expect("labels serialise"),
                    scores: row_scores.clone(),
                });
            }
        }
        let now = now_ms();
        for f in &scores {
            sqlx::query(
                "INSERT INTO serve_feedback (request_id, endpoint, variant, version, n, correct, \
                 said, truth, scores, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (request_id) DO UPDATE SET n = excluded.n, correct = excluded.correct, \
                 said = excluded.said, truth = excluded.truth, scores = excluded.scores, \
                 at_ms = excluded.at_ms",
            )
            .bind(&f.id)
            .bind(endpoint)
            .bind(&f.variant)
            .bind(f.version)
            .bind(f.n as i64)
            .bind(f.correct as i64)
            .bind(&f.said)
            .bind(&f.truth)
            .bind(&f.scores)
            .bind(now)
            .execute(self.db.pool())
            .await?;
        }
        out.scored = scores.len();
        Ok(out)
    }

    /// Scored rows per variant of `endpoint` since `since_ms` (of the named variants only, when
    /// some are named).
    pub async fn feedback_since(
        &self,
        endpoint: &str,
        since_ms: i64,
        variants: &[&str],
    ) -> Result<HashMap<String, Outcomes>> {
        let rows = if let [a, b] = variants {
            sqlx::query(
                "SELECT variant, said, truth, scores FROM serve_feedback \
                 WHERE endpoint = $1 AND at_ms >= $2 AND variant IN ($3, $4)",
            )
            .bind(endpoint)
            .bind(since_ms)
            .bind(*a)
            .bind(*b)
            .fetch_all(self.db.pool())
            .await?
        } else {
            sqlx::query(
                "SELECT variant, said, truth, scores FROM serve_feedback \
                 WHERE endpoint = $1 AND at_ms >= $2",
            )
            .bind(endpoint)
            .bind(since_ms)
            .fetch_all(self.db.pool())
            .await?
        };
        let mut out: HashMap<String, Outcomes> = HashMap::new();
        for row in &rows {
            out.entry(row.try_get("variant")?).or_default().rows.extend(scored_rows(row)?);
        }
        Ok(out)
    }

    /// Outcome metrics per window (of `window_ms`, by when the requests were answered) and
    /// variant, from the ground truth sent for `endpoint`'s answers in [since_ms, until_ms]:
    /// rows, accuracy, precision, recall, F1 and ROC AUC (of `positive`), MAE and RMSE; oldest
    /// window first.
    pub async fn performance(
        &self,
        endpoint: &str,
        since_ms: i64,
        until_ms: i64,
        window_ms: i64,
        positive: &str,
    ) -> Result<Vec<Value>> {
        self.get(endpoint).await?;
        let rows = sqlx::query(
            "SELECT f.variant, f.said, f.truth, f.scores, p.at_ms FROM serve_feedback f \
             JOIN serve_predictions p ON p.request_id = f.request_id \
             WHERE f.endpoint = $1 AND p.at_ms >= $2 AND p.at_ms <= $3",
        )
        .bind(endpoint)
        .bind(since_ms)
        .bind(until_ms)
        .fetch_all(self.db.pool())
        .await?;
        let w = window_ms.max(1000);
        let mut by: std::collections::BTreeMap<(i64, String), Outcomes> = Default::default();
        for row in &rows {
            let at: i64 = row.try_get("at_ms")?;
            let o = by.entry((at - at.rem_euclid(w), row.try_get("variant")?)).or_default();
            o.rows.extend(scored_rows(row)?);
        }
        Ok(by
            .into_iter()
            .map(|((window, variant), o)| {
                let mut v = o.figures(positive);
                v["window_ms"] = json!(window);
                v["window_s"] = json!(w / 1000);
                v["variant"] = json!(variant);
                v
            })
            .collect())
    }

    /// The A/B report of `endpoint` since `since_ms`: per variant its requests, errors, p99 and
    /// outcome metrics from ground truth (`positive` the label precision, recall, F1 and ROC AUC
    /// are about); the split's sample-ratio check; each variant against the baseline (the first)
    /// on error rate, accuracy, precision and recall (rates, so with an interval and p-values)
    /// and on the other outcome metrics by their difference.
    pub async fn abtest(&self, endpoint: &str, since_ms: i64, positive: &str) -> Result<Value> {
        let e = self.get(endpoint).await?;
        // This process's latest second too (other replicas' arrive within theirs).
        self.flush_counts().await?;
        let counts = self.counts_since(endpoint, since_ms).await?;
        let feedback = self.feedback_since(endpoint, since_ms, &[]).await?;
        let empty = StepCounts::default();
        let no_truth = Outcomes::default();
        let variants = &e.traffic.variants;
        let mut views = Vec::new();
        for v in variants {
            let c = counts.get(&v.name).unwrap_or(&empty);
            let mut view = json!({
                "name": v.name, "weight": v.weight(), "requests": c.requests(), "errors": c.errors,
                "error_rate": c.error_rate(), "p99_ms": c.p99_ms(),
            });
            let outcomes = feedback.get(&v.name).unwrap_or(&no_truth).figures(positive);
            for (k, x) in outcomes.as_object().into_iter().flatten() {
                view[k] = x.clone();
            }
            views.push(view);
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
                metrics.extend(comparison("accuracy", a.correct(), b.correct()));
                metrics.extend(comparison(
                    "precision",
                    a.precision(positive),
                    b.precision(positive),
                ));
                metrics.extend(comparison("recall", a.recall(positive), b.recall(positive)));
                for name in ["f1", "roc_auc", "mae", "rmse"] {
                    if let (Ok(x), Ok(y)) = (a.metric(name, positive), b.metric(name, positive)) {
                        metrics.push(json!({"metric": name, "effect": y - x, "interval": null,
                                            "p_value": null, "always_valid_p": null}));
                    }
                }
            }
            comparisons.push(json!({"variant": v.name, "against": base, "metrics": metrics}));
        }
        Ok(json!({
            "endpoint": endpoint,
            "since_ms": since_ms,
            "positive": positive,
            "variants": views,
            "sample_ratio": {"p_value": srm, "mismatch": srm.is_some_and(|p| p < 0.001)},
            "comparisons": comparisons,
            "test": "rates (error rate, accuracy, precision, recall): two-proportion z-test (fixed \
                     sample) and mSPRT always-valid p-value (tau 0.05), 95% normal interval; \
                     f1, roc_auc, mae, rmse: the difference only",
        }))
    }
}

/// A request's ground truth, scored and ready to write.
struct FeedbackRow {
    id: String,
    variant: String,
    version: i64,
    n: usize,
    correct: usize,
    said: String,
    truth: String,
    scores: String,
}
