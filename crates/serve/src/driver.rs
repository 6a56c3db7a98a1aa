//! The background work of a serving process. Every process flushes what each endpoint variant
//! answered to the store each second (`serve_variant_counts`, one row per variant, process and
//! second), so that a rollout's gates see the traffic of every replica. `slipway server`
//! processes also drive rollouts: each second, for every running rollout whose lease they hold or
//! can take (one driver at a time, whatever the number of replicas), they judge the step from the
//! store's counts — pass: the next step; fail: roll back; not enough traffic or time: hold, and say
//! so in the rollout's reason.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use slipway_core::now_ms;
use sqlx::{AssertSqlSafe, Row};

use crate::endpoints::{Histogram, LATENCY_BUCKETS_S, Live, Result, Serving, Stats};
use crate::outcomes::higher_is_better;
use crate::rollout::{Rollout, RolloutSpec, RolloutState};
use crate::traffic::variant_name;

/// How long a driver's lease on a rollout lasts without renewal.
const LEASE_MS: i64 = 5_000;
/// Counts and remembered predictions older than this are removed, once an hour.
const KEEP_MS: i64 = 7 * 24 * 3600 * 1000;
const PRUNE_EVERY_MS: i64 = 3600 * 1000;

/// Counts as flushed: ok, errors (failed or refused input), overloaded, then latency buckets.
pub(crate) type Snapshot = [u64; 16];

fn snapshot(st: &Stats) -> Snapshot {
    let mut s = [0u64; 16];
    s[0] = st.ok.load(Ordering::Relaxed);
    s[1] = st.failed.load(Ordering::Relaxed) + st.bad_input.load(Ordering::Relaxed);
    s[2] = st.overloaded.load(Ordering::Relaxed);
    for (i, c) in st.latency.counts.iter().enumerate() {
        s[3 + i] = c.load(Ordering::Relaxed);
    }
    s
}

/// What one variant answered over a step, from every replica.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepCounts {
    pub ok: u64,
    pub errors: u64,
    pub latency: [u64; 13],
    /// Rows with ground truth: what the variant said, what was true, its scores.
    pub feedback: Option<crate::outcomes::Outcomes>,
}

impl StepCounts {
    pub fn requests(&self) -> u64 {
        self.ok + self.errors
    }

    pub fn error_rate(&self) -> Option<f64> {
        (self.requests() > 0).then(|| self.errors as f64 / self.requests() as f64)
    }

    /// The p99 latency in ms, estimated from the buckets as `/metrics`' histogram is.
    pub fn p99_ms(&self) -> Option<f64> {
        let h = Histogram::default();
        for (c, n) in h.counts.iter().zip(&self.latency) {
            c.store(*n, Ordering::Relaxed);
        }
        h.quantile(LATENCY_BUCKETS_S, 0.99).map(|s| s * 1e3)
    }

    fn figures(&self, positive: &str) -> Value {
        let mut v = json!({"requests": self.requests(), "errors": self.errors,
                           "error_rate": self.error_rate(), "p99_ms": self.p99_ms()});
        if let Some(outcomes) = &self.feedback {
            for (k, x) in outcomes.figures(positive).as_object().into_iter().flatten() {
                v[k] = x.clone();
            }
        }
        v
    }
}

/// A step's verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Pass(String, Value),
    Fail(String, Value),
    Hold(String),
}

/// Judges a step from the candidate's and the baseline's counts since it began. A gate fails as
/// soon as the candidate has `min_requests` answers and is out of bounds; the step passes when
/// every gate holds, the candidate has `min_requests` answers and `step_seconds` have passed.
pub fn judge(spec: &RolloutSpec, elapsed_ms: i64, cand: &StepCounts, base: &StepCounts) -> Verdict {
    let positive = spec.positive();
    let figures = json!({
        "candidate": cand.figures(positive),
        "baseline": base.figures(positive),
        "elapsed_s": elapsed_ms as f64 / 1e3,
    });
    if cand.requests() < spec.min_requests {
        return Verdict::Hold(format!(
            "holding: {} of {} candidate requests at this step",
            cand.requests(),
            spec.min_requests
        ));
    }
    // Every gate is looked at: one that fails rolls back even while another holds.
    let mut passed = Vec::new();
    let mut holding: Option<String> = None;
    for g in &spec.gates {
        match g.metric.as_str() {
            "error_rate" => {
                let (c, b) = (cand.error_rate().unwrap_or(0.0), base.error_rate().unwrap_or(0.0));
                if c - b > g.threshold {
                    return Verdict::Fail(
                        format!(
                            "error_rate gate failed: candidate {:.2}% vs baseline {:.2}% (at most {:.2} points more)",
                            c * 100.0,
                            b * 100.0,
                            g.threshold * 100.0
                        ),
                        figures,
                    );
                }
                passed.push(format!("error_rate {:.2}% vs {:.2}%", c * 100.0, b * 100.0));
            }
            "p99_latency" => match (cand.p99_ms(), base.p99_ms()) {
                (Some(c), Some(b)) if c > b * g.threshold => {
                    return Verdict::Fail(
                        format!(
                            "p99_latency gate failed: candidate {c:.2} ms vs baseline {b:.2} ms (at most {}x)",
                            g.threshold
                        ),
                        figures,
                    );
                }
                (Some(c), Some(b)) => passed.push(format!("p99 {c:.2} vs {b:.2} ms")),
                _ => {
                    holding.get_or_insert("holding: no baseline latency to compare with".into());
                }
            },
            metric => {
                // An outcome metric from ground truth: enough rows first, then the comparison.
                let rows = |c: &StepCounts| c.feedback.as_ref().map_or(0, |f| f.n());
                if rows(cand) < spec.min_requests || rows(base) == 0 {
                    holding.get_or_insert(format!(
                        "holding: {} of {} candidate rows with ground truth for the {metric} gate",
                        rows(cand),
                        spec.min_requests
                    ));
                    continue;
                }
                let value = |c: &StepCounts, who: &str| {
                    let o = c.feedback.as_ref().expect("rows counted above");
                    o.metric(metric, positive).map_err(|why| format!("holding: {who}'s {why}"))
                };
                let (c, b) = match (value(cand, "the candidate"), value(base, "the baseline")) {
                    (Ok(c), Ok(b)) => (c, b),
                    (Err(why), _) | (_, Err(why)) => {
                        holding.get_or_insert(why);
                        continue;
                    }
                };
                let worse_by = if higher_is_better(metric) { b - c } else { c - b };
                let shown = |v: f64| {
                    if higher_is_better(metric) {
                        format!("{:.2}%", v * 100.0)
                    } else {
                        format!("{v:.4}")
                    }
                };
                // NaN (an error metric over NaN answers) counts as out of bounds.
                if worse_by.is_nan() || worse_by > g.threshold {
                    let bound = if higher_is_better(metric) {
                        format!("at most {:.2} points less", g.threshold * 100.0)
                    } else {
                        format!("at most {} more", g.threshold)
                    };
                    return Verdict::Fail(
                        format!(
                            "{metric} gate failed: candidate {} vs baseline {} ({bound})",
                            shown(c),
                            shown(b)
                        ),
                        figures,
                    );
                }
                passed.push(format!("{metric} {} vs {}", shown(c), shown(b)));
            }
        }
    }
    if let Some(reason) = holding {
        return Verdict::Hold(reason);
    }
    let step_ms = spec.step_seconds as i64 * 1000;
    if elapsed_ms < step_ms {
        return Verdict::Hold(format!(
            "holding: {:.0} of {} s at this step",
            elapsed_ms as f64 / 1e3,
            spec.step_seconds
        ));
    }
    let said = if passed.is_empty() { "no gates".to_string() } else { passed.join(", ") };
    Verdict::Pass(
        format!("gates passed after {} candidate requests: {said}", cand.requests()),
        figures,
    )
}

impl Serving {
    /// Writes what each variant answered since the last flush, as this second's row.
    pub async fn flush_counts(&self) -> Result<()> {
        let now = now_ms();
        let window = now - now % 1000;
        for served in self.snapshot() {
            for live in served.lives() {
                self.flush_live(live, window).await?;
            }
        }
        Ok(())
    }

    /// Removes counts and remembered predictions past `KEEP_MS`, and the prediction log past its
    /// own, at most once an hour.
    async fn prune(&self) -> Result<()> {
        let now = now_ms();
        if now - self.pruned_ms.load(Ordering::Relaxed) < PRUNE_EVERY_MS {
            return Ok(());
        }
        self.pruned_ms.store(now, Ordering::Relaxed);
        for sql in [
            "DELETE FROM serve_variant_counts WHERE window_ms < $1",
            "DELETE FROM serve_predictions WHERE at_ms < $1",
        ] {
            sqlx::query(sql).bind(now - KEEP_MS).execute(self.db.pool()).await?;
        }
        self.prune_log(now - crate::predlog::KEEP_MS).await
    }

    async fn flush_live(&self, live: &Live, window: i64) -> Result<()> {
        let now = snapshot(&live.stats);
        let last = *live.flushed.lock().expect("flushed lock");
        let delta: Vec<i64> =
            now.iter().zip(&last).map(|(n, l)| n.saturating_sub(*l) as i64).collect();
        if delta.iter().all(|d| *d == 0) {
            return Ok(());
        }
        let lat: Vec<String> = (0..13).map(|i| format!("lat{i}")).collect();
        let sql = format!(
            "INSERT INTO serve_variant_counts (endpoint, variant, version, replica, window_ms, ok, \
             errors, overloaded, {}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {}) \
             ON CONFLICT (endpoint, variant, version, replica, window_ms) DO UPDATE SET \
             ok = serve_variant_counts.ok + excluded.ok, \
             errors = serve_variant_counts.errors + excluded.errors, \
             overloaded = serve_variant_counts.overloaded + excluded.overloaded, {}",
            lat.join(", "),
            (9..22).map(|i| format!("${i}")).collect::<Vec<_>>().join(", "),
            lat.iter()
                .map(|c| format!("{c} = serve_variant_counts.{c} + excluded.{c}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        // Built from constants only.
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(&live.endpoint)
            .bind(&live.variant)
            .bind(live.version.version)
            .bind(&self.replica)
            .bind(window);
        for d in &delta[..3] {
            q = q.bind(*d);
        }
        for d in &delta[3..] {
            q = q.bind(*d);
        }
        q.execute(self.db.pool()).await?;
        *live.flushed.lock().expect("flushed lock") = now;
        Ok(())
    }

    /// What each variant of `endpoint` answered since `since_ms`, from every replica.
    pub async fn counts_since(
        &self,
        endpoint: &str,
        since_ms: i64,
    ) -> Result<std::collections::HashMap<String, StepCounts>> {
        let lat: Vec<String> =
            (0..13).map(|i| format!("CAST(SUM(lat{i}) AS BIGINT) AS lat{i}")).collect();
        let sql = format!(
            "SELECT variant, CAST(SUM(ok) AS BIGINT) AS ok, CAST(SUM(errors) AS BIGINT) AS errors, \
             {} FROM serve_variant_counts WHERE endpoint = $1 AND window_ms >= $2 GROUP BY variant",
            lat.join(", ")
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(endpoint)
            .bind(since_ms)
            .fetch_all(self.db.pool())
            .await?;
        let mut out = std::collections::HashMap::new();
        for row in &rows {
            let mut c = StepCounts {
                ok: row.try_get::<i64, _>("ok")? as u64,
                errors: row.try_get::<i64, _>("errors")? as u64,
                ..StepCounts::default()
            };
            for (i, slot) in c.latency.iter_mut().enumerate() {
                *slot = row.try_get::<i64, _>(format!("lat{i}").as_str())? as u64;
            }
            out.insert(row.try_get::<String, _>("variant")?, c);
        }
        Ok(out)
    }

    /// One pass over the running rollouts: those this process leads are judged and moved on.
    /// Returns how many it led.
    pub async fn drive_rollouts(&self) -> Result<usize> {
        let mut led = 0;
        for r in self.rollouts(None).await? {
            if r.state != RolloutState::Running || !self.take_lease(&r.id).await? {
                continue;
            }
            led += 1;
            if let Err(e) = self.drive(&r).await {
                tracing::warn!(target: "serve::rollout", rollout = %r.id, error = %e, "driving a rollout");
            }
        }
        Ok(led)
    }

    async fn drive(&self, r: &Rollout) -> Result<()> {
        let counts = self.counts_since(&r.spec.endpoint, r.step_started_ms).await?;
        let (cand_name, base_name) = (variant_name(&r.spec.candidate), variant_name(&r.baseline));
        let mut cand = counts.get(&cand_name).cloned().unwrap_or_default();
        let mut base = counts.get(&base_name).cloned().unwrap_or_default();
        if r.spec.gates.iter().any(|g| !matches!(g.metric.as_str(), "error_rate" | "p99_latency")) {
            // The two variants the gates compare, not every variant's rows.
            let truth = self
                .feedback_since(&r.spec.endpoint, r.step_started_ms, &[&cand_name, &base_name])
                .await?;
            cand.feedback = truth.get(&cand_name).cloned();
            base.feedback = truth.get(&base_name).cloned();
        }
        let elapsed = now_ms() - r.step_started_ms;
        let with_driver = |mut figures: Value| {
            figures["driver"] = json!(self.replica);
            figures
        };
        match judge(&r.spec, elapsed, &cand, &base) {
            Verdict::Pass(reason, figures) => {
                let figures = with_driver(figures);
                self.advance(r, &reason, figures).await?;
            }
            Verdict::Fail(reason, figures) => {
                let figures = with_driver(figures);
                self.end(r, RolloutState::RolledBack, "rolled_back", &reason, figures).await?;
            }
            Verdict::Hold(reason) if reason != r.reason => {
                sqlx::query(
                    "UPDATE serve_rollouts SET reason = $1, updated_ms = $2 \
                     WHERE id = $3 AND state = 'running' AND step = $4",
                )
                .bind(&reason)
                .bind(now_ms())
                .bind(&r.id)
                .bind(r.step as i64)
                .execute(self.db.pool())
                .await?;
            }
            Verdict::Hold(_) => {}
        }
        Ok(())
    }

    /// Takes or renews this process's lease on a rollout; false while another process holds it.
    async fn take_lease(&self, id: &str) -> Result<bool> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE serve_rollouts SET lease_owner = $1, lease_until_ms = $2 WHERE id = $3 \
             AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until_ms < $4)",
        )
        .bind(&self.replica)
        .bind(now + LEASE_MS)
        .bind(id)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// Runs the background work until `stop` turns true: flushing counts, remembered answers and
/// the prediction log every `tick` and, with `drive`, driving rollouts. A round under way when
/// `stop` comes is finished, never cut off (a log flush holds rows taken from the buffer); then
/// everything still buffered is written, and the task ends.
pub async fn run_background(
    serving: Serving,
    drive: bool,
    tick: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        if let Err(e) = serving.flush_counts().await {
            tracing::warn!(target: "serve::counts", error = %e, "flushing variant counts");
        }
        if let Err(e) = serving.flush_predictions().await {
            tracing::warn!(target: "serve::feedback", error = %e, "writing remembered predictions");
        }
        if let Err(e) = serving.flush_log(false).await {
            tracing::warn!(target: "serve::log", error = %e, "writing the prediction log");
        }
        if let Err(e) = serving.prune().await {
            tracing::warn!(target: "serve::counts", error = %e, "removing old counts");
        }
        if drive && let Err(e) = serving.drive_rollouts().await {
            tracing::warn!(target: "serve::rollout", error = %e, "driving rollouts");
        }
    }
    serving.flush_at_exit().await;
}

impl Serving {
    /// Writes everything buffered (counts, remembered answers, the prediction log), before the
    /// process ends.
    pub async fn flush_at_exit(&self) {
        if let Err(e) = self.flush_counts().await {
            tracing::warn!(target: "serve::counts", error = %e, "flushing variant counts at exit");
        }
        if let Err(e) = self.flush_predictions().await {
            tracing::warn!(target: "serve::feedback", error = %e, "writing remembered predictions at exit");
        }
        if let Err(e) = self.flush_log(true).await {
            tracing::warn!(target: "serve::log", error = %e, "writing the prediction log at exit");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcomes::{Outcomes, Row};
    use crate::rollout::Gate;

    fn spec(gates: &[(&str, f64)]) -> RolloutSpec {
        RolloutSpec {
            endpoint: "e".into(),
            candidate: "v2".into(),
            steps: vec![10.0, 100.0],
            step_seconds: 60,
            min_requests: 100,
            gates: gates
                .iter()
                .map(|(m, t)| Gate { metric: m.to_string(), threshold: *t })
                .collect(),
            promote_alias: None,
            positive_label: None,
        }
    }

    fn counts(ok: u64, errors: u64, bucket: usize) -> StepCounts {
        let mut latency = [0; 13];
        latency[bucket] = ok + errors;
        StepCounts { ok, errors, latency, feedback: None }
    }

    #[test]
    fn steps_hold_pass_and_fail_on_their_figures() {
        let s = spec(&[("error_rate", 0.01), ("p99_latency", 1.5)]);
        let healthy = counts(200, 0, 1);
        let base = counts(2000, 2, 1);
        // Too few requests, then too little time, then a pass.
        assert!(
            matches!(judge(&s, 90_000, &counts(50, 0, 1), &base), Verdict::Hold(r) if r.contains("50 of 100"))
        );
        assert!(
            matches!(judge(&s, 30_000, &healthy, &base), Verdict::Hold(r) if r.contains("30 of 60 s"))
        );
        let Verdict::Pass(reason, figures) = judge(&s, 61_000, &healthy, &base) else { panic!() };
        assert!(reason.contains("error_rate 0.00% vs 0.10%"), "{reason}");
        assert_eq!(figures["candidate"]["requests"], 200);
        // 20% failures fail at once, before the step's time is up.
        let Verdict::Fail(reason, _) = judge(&s, 5_000, &counts(160, 40, 1), &base) else {
            panic!()
        };
        assert!(reason.contains("candidate 20.00% vs baseline 0.10%"), "{reason}");
        // Slower by more than 1.5x at p99.
        assert!(
            matches!(judge(&s, 61_000, &counts(200, 0, 5), &base), Verdict::Fail(r, _) if r.contains("p99_latency"))
        );
        // The accuracy gate waits for ground truth, then compares.
        let acc = spec(&[("accuracy", 0.02)]);
        assert!(
            matches!(judge(&acc, 61_000, &healthy, &base), Verdict::Hold(r) if r.contains("ground truth"))
        );
        // Rows: `right` of `n` correct, the positive label "1" on every fourth truth.
        let truth = |right: usize, n: usize| {
            let rows = (0..n)
                .map(|i| {
                    let t = if i % 4 == 0 { "1" } else { "0" };
                    let said = if i < right {
                        t
                    } else if t == "1" {
                        "0"
                    } else {
                        "1"
                    };
                    Row { said: said.into(), truth: t.into(), score: None }
                })
                .collect();
            Some(Outcomes { rows })
        };
        let worse = StepCounts { feedback: truth(170, 200), ..healthy.clone() };
        let as_good = StepCounts { feedback: truth(180, 200), ..healthy.clone() };
        let base_truth = StepCounts { feedback: truth(1800, 2000), ..base.clone() };
        assert!(
            matches!(judge(&acc, 61_000, &worse, &base_truth), Verdict::Fail(r, _) if r.contains("85.00% vs baseline 90.00%"))
        );
        assert!(matches!(judge(&acc, 61_000, &as_good, &base_truth), Verdict::Pass(..)));
        // F1 of the positive label "1": 0.74 against 0.82, out of bounds; of label "0", the
        // same rows give 0.90 against 0.93, within them.
        let f1 = spec(&[("f1", 0.05)]);
        assert!(
            matches!(judge(&f1, 61_000, &worse, &base_truth), Verdict::Fail(r, _) if r.contains("f1 gate failed"))
        );
        let f1_zero = RolloutSpec { positive_label: Some("0".into()), ..spec(&[("f1", 0.05)]) };
        assert!(matches!(judge(&f1_zero, 61_000, &worse, &base_truth), Verdict::Pass(..)));
        // ROC AUC needs scores: it holds, saying why.
        let auc = spec(&[("roc_auc", 0.01)]);
        assert!(
            matches!(judge(&auc, 61_000, &as_good, &base_truth), Verdict::Hold(r) if r.contains("roc_auc is undefined"))
        );
        // A gate that cannot decide (no scores for ROC AUC) does not shelter a failing one.
        let auc_and_errors = spec(&[("roc_auc", 0.01), ("error_rate", 0.01)]);
        let failing = StepCounts { feedback: truth(180, 200), ..counts(160, 40, 1) };
        assert!(
            matches!(judge(&auc_and_errors, 5_000, &failing, &base_truth), Verdict::Fail(r, _) if r.contains("error_rate gate failed"))
        );
        // Regression errors may rise by at most the threshold.
        let numbers = |err: f64, n: usize| {
            let rows = (0..n)
                .map(|i| Row {
                    said: format!("{}", i as f64 + err),
                    truth: format!("{i}"),
                    score: None,
                })
                .collect();
            Some(Outcomes { rows })
        };
        let mae = spec(&[("mae", 0.5)]);
        let close = StepCounts { feedback: numbers(1.2, 200), ..healthy.clone() };
        let far = StepCounts { feedback: numbers(2.0, 200), ..healthy.clone() };
        let base_num = StepCounts { feedback: numbers(1.0, 2000), ..base.clone() };
        assert!(matches!(judge(&mae, 61_000, &close, &base_num), Verdict::Pass(..)));
        assert!(
            matches!(judge(&mae, 61_000, &far, &base_num), Verdict::Fail(r, _) if r.contains("mae gate failed: candidate 2.0000 vs baseline 1.0000"))
        );
    }
}
