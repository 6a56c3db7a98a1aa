//! Alerts: rules on monitors' verdicts and on custom gauges, each with a condition, a threshold
//! and a for-duration; an alert per episode (pending → firing → resolved) that fires once and
//! resolves when its condition clears; and webhook deliveries that survive a receiver being down.
//!
//! **Webhooks** are POSTed as JSON with `Idempotency-Key` (the alert's id and event: a retry
//! carries the same key, so a receiver that keeps keys sees each event once), and, when the rule
//! has a secret, `X-Slipway-Signature: t=<unix s>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
//! Undelivered events are retried with backoff (1 s doubling to [`MAX_BACKOFF_MS`]) for a day.
//! Targets are refused unless `http`/`https`, and — unless the rule says `allow_private` — when
//! their host resolves to a loopback, private, link-local, shared, multicast or unspecified
//! address (checked again at each delivery, and the connection pinned to the checked address).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use slipway_core::{Db, Migration, now_ms};
use sqlx::Row;

use crate::gauges::Gauges;
use crate::monitors::{Error, Monitors, Result};

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "alerts",
    sqlite: include_str!("../migrations/alerts_0001.sql"),
    postgres: include_str!("../migrations/alerts_0001.sql"),
}];

/// The longest wait between two deliveries of an event.
pub const MAX_BACKOFF_MS: i64 = 15_000;
/// An event undelivered this long is given up.
pub const GIVE_UP_MS: i64 = 24 * 3600 * 1000;

/// A comparison of a value with a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
            Op::Eq => value == threshold,
            Op::Ne => value != threshold,
        }
    }
}

/// Where a webhook goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    /// Signs each body (HMAC-SHA256); never shown back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Allow loopback and private targets (a receiver on the same host or network).
    #[serde(default)]
    pub allow_private: bool,
}

/// An alert rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    /// On a monitor: its latest window's verdict (or, with `op` and `threshold`, its share of
    /// drifted columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<String>,
    /// On a custom gauge: any series of that name whose labels include `labels`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gauge: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// On an endpoint: `metric` over the last `over_s` seconds — infrastructure (`error_rate`,
    /// `p99_latency_ms`, `requests_per_s`, from every replica's counts) or performance from
    /// ground truth (`accuracy`, `precision`, `recall`, `f1`, `roc_auc`, `mae`, `rmse`, about
    /// `positive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default = "default_over", skip_serializing_if = "is_default_over")]
    pub over_s: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positive: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<Op>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// How long the condition must hold before the alert fires, in seconds.
    #[serde(default)]
    pub for_s: u64,
    /// On a monitor: how many consecutive judged windows must meet the condition (default 1).
    /// Two rides out a single window's chance verdict (per-column tests at 5% on correlated
    /// features do flag a window of unchanged data now and then).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub windows: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
    /// A command configured on the server (`slipway server --action NAME=COMMAND`) to run, as a
    /// tracked run, when the alert fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
}

/// What a rule runs when its alert fires, and how often at most.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub name: String,
    /// No new run within this many seconds of the last one (default an hour).
    #[serde(default = "default_cooldown")]
    pub cooldown_s: u64,
    /// At most this many runs in any 24 hours (default 3).
    #[serde(default = "default_max_per_day")]
    pub max_per_day: u32,
}

fn default_cooldown() -> u64 {
    3600
}

fn default_max_per_day() -> u32 {
    3
}

/// An action an alert asked for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionRun {
    pub id: String,
    pub rule: String,
    pub alert_id: String,
    pub action: String,
    /// `queued`, `running`, `done`, `failed` or `skipped`.
    pub state: String,
    pub reason: String,
    pub context: Value,
    pub run_id: Option<String>,
    pub exit_code: Option<i64>,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
}

fn one() -> u32 {
    1
}

fn default_over() -> u64 {
    300
}

fn is_default_over(n: &u64) -> bool {
    *n == 300
}

/// Endpoint metrics from the counts every replica flushes.
pub const INFRA_METRICS: [&str; 3] = ["error_rate", "p99_latency_ms", "requests_per_s"];
/// Endpoint metrics from ground truth.
pub const OUTCOME_METRICS: [&str; 7] =
    ["accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse"];

fn is_one(n: &u32) -> bool {
    *n == 1
}

impl Rule {
    fn check(&self) -> Result<()> {
        let ok = !self.name.is_empty()
            && self.name.len() <= 128
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return Err(Error::Invalid(format!(
                "Invalid rule name '{}': use 1 to 128 letters, digits, '-', '_' or '.'",
                self.name
            )));
        }
        match (&self.monitor, &self.gauge, &self.endpoint) {
            (None, None, Some(_)) => {
                let m = self.metric.as_deref().unwrap_or_default();
                if !INFRA_METRICS.contains(&m) && !OUTCOME_METRICS.contains(&m) {
                    return Err(Error::Invalid(format!(
                        "an endpoint rule needs metric: one of {}, {}",
                        INFRA_METRICS.join(", "),
                        OUTCOME_METRICS.join(", ")
                    )));
                }
                if self.op.is_none() || self.threshold.is_none() {
                    return Err(Error::Invalid("an endpoint rule needs op and threshold".into()));
                }
                if !(1..=7 * 24 * 3600).contains(&self.over_s) {
                    return Err(Error::Invalid("over_s must be 1 s to a week".into()));
                }
            }
            (Some(_), None, None) => {
                if self.op.is_some() != self.threshold.is_some() {
                    return Err(Error::Invalid(
                        "op and threshold go together (on a monitor: its share of drifted columns)"
                            .into(),
                    ));
                }
            }
            (None, Some(_), None) => {
                if self.op.is_none() || self.threshold.is_none() {
                    return Err(Error::Invalid("a gauge rule needs op and threshold".into()));
                }
            }
            _ => {
                return Err(Error::Invalid(
                    "a rule watches one monitor, one gauge or one endpoint".into(),
                ));
            }
        }
        if self.windows == 0 || self.windows > 1000 {
            return Err(Error::Invalid("windows must be 1 to 1000".into()));
        }
        if self.windows > 1 && self.gauge.is_some() {
            return Err(Error::Invalid(
                "windows is for monitor rules; a gauge rule uses for_s".into(),
            ));
        }
        if self.threshold.is_some_and(|t| !t.is_finite()) {
            return Err(Error::Invalid("the threshold must be a number".into()));
        }
        if self.for_s > 7 * 24 * 3600 {
            return Err(Error::Invalid("for_s is at most a week".into()));
        }
        Ok(())
    }

    /// The rule as shown: a webhook's secret is never echoed.
    pub fn shown(&self) -> Value {
        let mut v = json!(self);
        if let Some(w) = &self.webhook {
            v["webhook"]["secret"] = json!(w.secret.as_ref().map(|_| "(set)"));
        }
        v
    }
}

/// An alert: one episode of a rule's condition holding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub id: String,
    pub rule: String,
    /// `pending` (holding, not yet for its duration), `firing`, `resolved`, or `cleared` (it
    /// stopped holding before it fired).
    pub state: String,
    pub value: f64,
    /// What raised it: the monitor's window and drifted columns, or the gauge's labels; with
    /// `link`, the report's page.
    pub context: Value,
    pub started_ms: i64,
    pub fired_ms: Option<i64>,
    pub resolved_ms: Option<i64>,
    pub deliveries: Vec<Delivery>,
}

/// A webhook event of an alert, and how its delivery went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub event: String,
    pub attempts: i64,
    pub delivered_ms: Option<i64>,
    pub last_error: Option<String>,
    pub given_up: bool,
}

/// Alert rules, alerts and deliveries; cheap to clone.
#[derive(Clone, Debug)]
pub struct Alerts {
    db: Db,
    monitors: Monitors,
    gauges: Gauges,
    /// Commands this server may run for a firing alert, by name.
    actions: std::sync::Arc<BTreeMap<String, String>>,
}

/// What a rule's condition is now: whether it holds, the value, the context.
struct Reading {
    holds: bool,
    value: f64,
    context: Value,
}

impl Alerts {
    pub async fn open(db: Db, monitors: Monitors, gauges: Gauges) -> Result<Alerts> {
        db.migrate("alerts", MIGRATIONS).await?;
        Ok(Alerts { db, monitors, gauges, actions: Default::default() })
    }

    /// The commands this server runs for firing alerts, by name.
    pub fn with_actions(mut self, actions: BTreeMap<String, String>) -> Alerts {
        self.actions = std::sync::Arc::new(actions);
        self
    }

    pub async fn create_rule(&self, rule: Rule) -> Result<Rule> {
        rule.check()?;
        if let Some(m) = &rule.monitor {
            self.monitors.get(m).await?;
        }
        if let Some(e) = &rule.endpoint {
            self.monitors.serving().get(e).await?;
        }
        if let Some(w) = &rule.webhook {
            check_target(&w.url, w.allow_private).await?;
        }
        if let Some(a) = &rule.action {
            if !self.actions.contains_key(&a.name) {
                let known: Vec<&str> = self.actions.keys().map(String::as_str).collect();
                return Err(Error::Invalid(format!(
                    "no action named '{}' is configured on this server (start it with --action {}=COMMAND; configured: {})",
                    a.name,
                    a.name,
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                )));
            }
            if a.max_per_day == 0 {
                return Err(Error::Invalid("action.max_per_day must be at least 1".into()));
            }
            if a.cooldown_s > 30 * 24 * 3600 {
                return Err(Error::Invalid("action.cooldown_s is at most 30 days".into()));
            }
        }
        let done = sqlx::query(
            "INSERT INTO monitor_alert_rules (name, spec, created_ms) VALUES ($1, $2, $3)",
        )
        .bind(&rule.name)
        .bind(serde_json::to_string(&rule).unwrap_or_default())
        .bind(now_ms())
        .execute(self.db.pool())
        .await;
        match done {
            Err(e) if slipway_core::is_unique_violation(&e) => {
                return Err(Error::Exists(format!("rule {}", rule.name)));
            }
            other => other?,
        };
        Ok(rule)
    }

    pub async fn rules(&self) -> Result<Vec<Rule>> {
        let rows = sqlx::query("SELECT spec FROM monitor_alert_rules ORDER BY name")
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let text: String = r.try_get("spec")?;
                serde_json::from_str(&text)
                    .map_err(|e| Error::Invalid(format!("a stored rule does not read: {e}")))
            })
            .collect()
    }

    /// Deletes a rule; its open alert ends (a firing one resolved, a pending one cleared), and
    /// what it had not yet sent or run is given up.
    pub async fn delete_rule(&self, name: &str) -> Result<()> {
        let now = now_ms();
        let mut tx = self.db.begin_write().await?;
        let done = sqlx::query("DELETE FROM monitor_alert_rules WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!("rule {name}")));
        }
        for sql in [
            "UPDATE monitor_deliveries SET given_up = 1, last_error = 'the rule was deleted' \
             WHERE delivered_ms IS NULL AND alert_id IN (SELECT id FROM monitor_alerts WHERE rule = $1)",
            "UPDATE monitor_actions SET state = 'skipped', reason = 'the rule was deleted' \
             WHERE rule = $1 AND state = 'queued'",
            "UPDATE monitor_alerts SET state = CASE WHEN state = 'firing' THEN 'resolved' ELSE 'cleared' END, \
             resolved_ms = $2, updated_ms = $2 WHERE rule = $1 AND state IN ('pending', 'firing')",
        ] {
            sqlx::query(sql).bind(name).bind(now).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Alerts, newest first: of one state, or (by default) every one but `cleared`.
    pub async fn alerts(&self, state: Option<&str>, limit: i64) -> Result<Vec<Alert>> {
        let rows = sqlx::query(
            "SELECT id, rule, state, value, context, started_ms, fired_ms, resolved_ms \
             FROM monitor_alerts WHERE ($1 = '' AND state <> 'cleared') OR state = $1 \
             ORDER BY started_ms DESC, id LIMIT $2",
        )
        .bind(state.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: String = r.try_get("id")?;
            let deliveries = sqlx::query(
                "SELECT event, attempts, delivered_ms, last_error, given_up FROM monitor_deliveries \
                 WHERE alert_id = $1 ORDER BY created_ms",
            )
            .bind(&id)
            .fetch_all(self.db.pool())
            .await?
            .iter()
            .map(|d| {
                Ok(Delivery {
                    event: d.try_get("event")?,
                    attempts: d.try_get("attempts")?,
                    delivered_ms: d.try_get("delivered_ms")?,
                    last_error: d.try_get("last_error")?,
                    given_up: d.try_get::<i64, _>("given_up")? != 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
            out.push(Alert {
                rule: r.try_get("rule")?,
                state: r.try_get("state")?,
                value: r.try_get("value")?,
                context: serde_json::from_str(&r.try_get::<String, _>("context")?)
                    .unwrap_or(Value::Null),
                started_ms: r.try_get("started_ms")?,
                fired_ms: r.try_get("fired_ms")?,
                resolved_ms: r.try_get("resolved_ms")?,
                deliveries,
                id,
            });
        }
        Ok(out)
    }

    async fn read(&self, rule: &Rule) -> Result<Option<Reading>> {
        if let Some(name) = &rule.monitor {
            let m = self.monitors.get(name).await?;
            let recent =
                self.monitors.reports(name, i64::MIN, i64::MAX, i64::from(rule.windows)).await?;
            let Some(report) = recent.first().cloned() else { return Ok(None) };
            // A report from long ago says nothing of now: the rule waits for a fresh one.
            let step = report.window_s * 1000;
            if now_ms() - (report.window_ms + step) > 3 * step + crate::monitors::SETTLE_MS {
                return Ok(None);
            }
            let meets = |r: &crate::monitors::Report| match (rule.op, rule.threshold) {
                (Some(op), Some(t)) => op.holds(r.share, t),
                _ => r.drift,
            };
            // The newest `windows` reports, of consecutive windows, all meet it.
            let consecutive = recent.len() == rule.windows as usize
                && recent.windows(2).all(|p| p[0].window_ms - p[1].window_ms == step);
            let holds = consecutive && recent.iter().all(meets);
            let drifted: Vec<&str> =
                report.columns.iter().filter(|c| c.drift).map(|c| c.column.as_str()).collect();
            let model_version = self.monitors.served_version(&m.spec.endpoint).await;
            return Ok(Some(Reading {
                holds,
                value: report.share,
                context: json!({
                    "monitor": name, "kind": m.spec.kind.as_str(), "endpoint": m.spec.endpoint,
                    "model_version": model_version,
                    "window_ms": report.window_ms, "window_s": report.window_s,
                    "reference": report.reference, "drifted": drifted,
                    "link": format!("/#/monitors/{name}"),
                    "report": format!("/api/v1/monitors/{name}/reports?since_ms={}", report.window_ms),
                }),
            }));
        }
        if let (Some(endpoint), Some(metric), Some(op), Some(t)) =
            (&rule.endpoint, &rule.metric, rule.op, rule.threshold)
        {
            let serving = self.monitors.serving();
            let since = now_ms() - rule.over_s as i64 * 1000;
            let value = if INFRA_METRICS.contains(&metric.as_str()) {
                let counts = serving.counts_since(endpoint, since).await?;
                let mut all = serve::StepCounts::default();
                for c in counts.values() {
                    all.ok += c.ok;
                    all.errors += c.errors;
                    for (a, b) in all.latency.iter_mut().zip(&c.latency) {
                        *a += b;
                    }
                }
                match metric.as_str() {
                    "error_rate" => all.error_rate(),
                    "p99_latency_ms" => all.p99_ms(),
                    _ => Some(all.requests() as f64 / rule.over_s as f64),
                }
            } else {
                let truth = serving.feedback_since(endpoint, since, &[]).await?;
                let mut all = serve::outcomes::Outcomes::default();
                for o in truth.into_values() {
                    all.rows.extend(o.rows);
                }
                all.metric(metric, rule.positive.as_deref().unwrap_or("1")).ok()
            };
            // Nothing to measure (no traffic, no ground truth): no reading.
            let Some(value) = value.filter(|v| !v.is_nan()) else { return Ok(None) };
            return Ok(Some(Reading {
                holds: op.holds(value, t),
                value,
                context: json!({
                    "endpoint": endpoint, "metric": metric, "over_s": rule.over_s,
                    "model_version": self.monitors.served_version(endpoint).await,
                    "link": format!("/#/endpoints/{endpoint}"),
                }),
            }));
        }
        let (Some(gauge), Some(op), Some(t)) = (&rule.gauge, rule.op, rule.threshold) else {
            return Ok(None);
        };
        let series = self.gauges.series().await.map_err(|e| Error::Invalid(e.to_string()))?;
        let matching: Vec<_> = series
            .iter()
            .filter(|s| {
                &s.name == gauge && rule.labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
            })
            .collect();
        let Some(first) = matching.first() else { return Ok(None) };
        let hit = matching.iter().find(|s| op.holds(s.value, t));
        let shown = hit.unwrap_or(first);
        Ok(Some(Reading {
            holds: hit.is_some(),
            value: shown.value,
            context: json!({
                "gauge": gauge, "labels": shown.labels, "at_ms": shown.at_ms,
                "link": "/#/gauges",
            }),
        }))
    }

    /// Moves every rule's alert on: opens, fires, resolves. Returns the alerts that fired.
    pub async fn tick(&self) -> Result<usize> {
        let mut fired = 0;
        for rule in self.rules().await? {
            match self.step(&rule).await {
                Ok(f) => fired += usize::from(f),
                Err(e) => {
                    tracing::warn!(target: "alerts", rule = %rule.name, error = %e, "evaluating a rule")
                }
            }
        }
        Ok(fired)
    }

    async fn step(&self, rule: &Rule) -> Result<bool> {
        let Some(reading) = self.read(rule).await? else { return Ok(false) };
        let now = now_ms();
        let open = sqlx::query(
            "SELECT id, state, started_ms FROM monitor_alerts WHERE rule = $1 \
             AND state IN ('pending', 'firing')",
        )
        .bind(&rule.name)
        .fetch_optional(self.db.pool())
        .await?;
        let context = reading.context.to_string();
        match (reading.holds, open) {
            (true, None) => {
                let id = slipway_core::new_id();
                let made = sqlx::query(
                    "INSERT INTO monitor_alerts (id, rule, state, value, context, started_ms, updated_ms) \
                     VALUES ($1, $2, 'pending', $3, $4, $5, $5)",
                )
                .bind(&id)
                .bind(&rule.name)
                .bind(reading.value)
                .bind(&context)
                .bind(now)
                .execute(self.db.pool())
                .await;
                match made {
                    // Another server opened it meanwhile.
                    Err(e) if slipway_core::is_unique_violation(&e) => return Ok(false),
                    other => other?,
                };
                if rule.for_s == 0 {
                    return self.fire(rule, &id, reading.value, &context, now).await;
                }
                Ok(false)
            }
            (true, Some(row)) => {
                let id: String = row.try_get("id")?;
                let state: String = row.try_get("state")?;
                let started: i64 = row.try_get("started_ms")?;
                if state == "pending" && now - started >= rule.for_s as i64 * 1000 {
                    return self.fire(rule, &id, reading.value, &context, now).await;
                }
                sqlx::query("UPDATE monitor_alerts SET value = $1, context = $2, updated_ms = $3 WHERE id = $4")
                    .bind(reading.value)
                    .bind(&context)
                    .bind(now)
                    .bind(&id)
                    .execute(self.db.pool())
                    .await?;
                Ok(false)
            }
            (false, Some(row)) => {
                let id: String = row.try_get("id")?;
                let state: String = row.try_get("state")?;
                let next = if state == "firing" { "resolved" } else { "cleared" };
                let mut tx = self.db.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE monitor_alerts SET state = $1, resolved_ms = $2, updated_ms = $2 \
                     WHERE id = $3 AND state = $4",
                )
                .bind(next)
                .bind(now)
                .bind(&id)
                .bind(&state)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 1 && next == "resolved" {
                    self.enqueue(&mut tx, rule, &id, "resolved", now).await?;
                }
                tx.commit().await?;
                Ok(false)
            }
            (false, None) => Ok(false),
        }
    }

    /// Pending → firing, once (whoever wins the update enqueues the webhook).
    async fn fire(
        &self,
        rule: &Rule,
        id: &str,
        value: f64,
        context: &str,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.db.begin_write().await?;
        let done = sqlx::query(
            "UPDATE monitor_alerts SET state = 'firing', fired_ms = $1, value = $2, context = $3, \
             updated_ms = $1 WHERE id = $4 AND state = 'pending'",
        )
        .bind(now)
        .bind(value)
        .bind(context)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let fired = done.rows_affected() == 1;
        if fired {
            self.enqueue(&mut tx, rule, id, "firing", now).await?;
            self.plan_action(&mut tx, rule, id, context, now).await?;
            tracing::warn!(target: "alerts", rule = %rule.name, value, "alert firing");
        }
        tx.commit().await?;
        Ok(fired)
    }

    /// Queues the rule's action for a fired alert, or records why it is skipped.
    async fn plan_action(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        rule: &Rule,
        alert_id: &str,
        context: &str,
        now: i64,
    ) -> Result<()> {
        let Some(a) = &rule.action else { return Ok(()) };
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM monitor_actions \
             WHERE rule = $1 AND state <> 'skipped' AND created_ms > $2",
        )
        .bind(&rule.name)
        .bind(now - 24 * 3600 * 1000)
        .fetch_one(&mut **tx)
        .await?;
        let n: i64 = row.try_get("n")?;
        let last: Option<i64> = sqlx::query(
            "SELECT MAX(created_ms) AS last FROM monitor_actions WHERE rule = $1 AND state <> 'skipped'",
        )
        .bind(&rule.name)
        .fetch_one(&mut **tx)
        .await?
        .try_get("last")?;
        let (state, reason) = match last {
            Some(l) if now - l < a.cooldown_s as i64 * 1000 => (
                "skipped",
                format!(
                    "cooldown: the last run was queued {} s ago (cooldown {} s)",
                    (now - l) / 1000,
                    a.cooldown_s
                ),
            ),
            _ if n >= i64::from(a.max_per_day) => (
                "skipped",
                format!("max_per_day: {n} runs in the last 24 hours (at most {})", a.max_per_day),
            ),
            _ => ("queued", String::new()),
        };
        sqlx::query(
            "INSERT INTO monitor_actions (id, rule, alert_id, action, state, reason, context, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(slipway_core::new_id())
        .bind(&rule.name)
        .bind(alert_id)
        .bind(&a.name)
        .bind(state)
        .bind(&reason)
        .bind(context)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Claims a queued action this server is configured to run: (the action, its command).
    pub async fn claim_action(&self) -> Result<Option<(ActionRun, String)>> {
        for a in self.actions_list(Some("queued"), 20).await? {
            let Some(command) = self.actions.get(&a.action) else { continue };
            let done = sqlx::query(
                "UPDATE monitor_actions SET state = 'running', started_ms = $1 WHERE id = $2 AND state = 'queued'",
            )
            .bind(now_ms())
            .bind(&a.id)
            .execute(self.db.pool())
            .await?;
            if done.rows_affected() == 1 {
                return Ok(Some((a, command.clone())));
            }
        }
        Ok(None)
    }

    /// Records how an action's run ended.
    pub async fn finish_action(
        &self,
        id: &str,
        run_id: Option<&str>,
        exit_code: Option<i32>,
        reason: &str,
    ) -> Result<()> {
        let state = if exit_code == Some(0) { "done" } else { "failed" };
        sqlx::query(
            "UPDATE monitor_actions SET state = $1, run_id = $2, exit_code = $3, reason = $4, finished_ms = $5 \
             WHERE id = $6",
        )
        .bind(state)
        .bind(run_id)
        .bind(exit_code.map(i64::from))
        .bind(reason)
        .bind(now_ms())
        .bind(id)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Actions, newest first (of one state, if given).
    pub async fn actions_list(&self, state: Option<&str>, limit: i64) -> Result<Vec<ActionRun>> {
        let rows = sqlx::query(
            "SELECT id, rule, alert_id, action, state, reason, context, run_id, exit_code, created_ms, \
             started_ms, finished_ms FROM monitor_actions WHERE $1 = '' OR state = $1 \
             ORDER BY created_ms DESC, id LIMIT $2",
        )
        .bind(state.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ActionRun {
                    id: r.try_get("id")?,
                    rule: r.try_get("rule")?,
                    alert_id: r.try_get("alert_id")?,
                    action: r.try_get("action")?,
                    state: r.try_get("state")?,
                    reason: r.try_get("reason")?,
                    context: serde_json::from_str(&r.try_get::<String, _>("context")?)
                        .unwrap_or(Value::Null),
                    run_id: r.try_get("run_id")?,
                    exit_code: r.try_get("exit_code")?,
                    created_ms: r.try_get("created_ms")?,
                    started_ms: r.try_get("started_ms")?,
                    finished_ms: r.try_get("finished_ms")?,
                })
            })
            .collect()
    }

    async fn enqueue(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        rule: &Rule,
        alert_id: &str,
        event: &str,
        now: i64,
    ) -> Result<()> {
        let Some(w) = &rule.webhook else { return Ok(()) };
        let row = sqlx::query(
            "SELECT id, rule, state, value, context, started_ms, fired_ms, resolved_ms \
             FROM monitor_alerts WHERE id = $1",
        )
        .bind(alert_id)
        .fetch_one(&mut **tx)
        .await?;
        let key = format!("{alert_id}:{event}");
        let body = json!({
            "id": key,
            "event": event,
            "rule": rule.shown(),
            "alert": {
                "id": alert_id,
                "state": row.try_get::<String, _>("state")?,
                "value": row.try_get::<f64, _>("value")?,
                "context": serde_json::from_str::<Value>(&row.try_get::<String, _>("context")?).unwrap_or(Value::Null),
                "started_ms": row.try_get::<i64, _>("started_ms")?,
                "fired_ms": row.try_get::<Option<i64>, _>("fired_ms")?,
                "resolved_ms": row.try_get::<Option<i64>, _>("resolved_ms")?,
            },
            "sent_ms": now,
        });
        sqlx::query(
            "INSERT INTO monitor_deliveries (id, alert_id, event, url, body, attempts, next_ms, \
             given_up, created_ms) VALUES ($1, $2, $3, $4, $5, 0, $6, 0, $6)",
        )
        .bind(&key)
        .bind(alert_id)
        .bind(event)
        .bind(&w.url)
        .bind(body.to_string())
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Sends the deliveries that are due; each is claimed first (its next try moved a minute
    /// on), so two servers never send one event at the same time. Returns how many arrived.
    pub async fn deliver_due(&self) -> Result<usize> {
        let now = now_ms();
        let due = sqlx::query(
            "SELECT d.id, d.url, d.body, d.attempts, d.next_ms, d.created_ms, r.spec \
             FROM monitor_deliveries d JOIN monitor_alerts a ON a.id = d.alert_id \
             JOIN monitor_alert_rules r ON r.name = a.rule \
             WHERE d.delivered_ms IS NULL AND d.given_up = 0 AND d.next_ms <= $1 \
             ORDER BY d.next_ms LIMIT 20",
        )
        .bind(now)
        .fetch_all(self.db.pool())
        .await?;
        let mut delivered = 0;
        for d in &due {
            let id: String = d.try_get("id")?;
            let next: i64 = d.try_get("next_ms")?;
            let claimed = sqlx::query(
                "UPDATE monitor_deliveries SET next_ms = $1 WHERE id = $2 AND next_ms = $3 \
                 AND delivered_ms IS NULL",
            )
            .bind(now_ms() + 60_000)
            .bind(&id)
            .bind(next)
            .execute(self.db.pool())
            .await?;
            if claimed.rows_affected() != 1 {
                continue;
            }
            let rule: Rule = serde_json::from_str(&d.try_get::<String, _>("spec")?)
                .map_err(|e| Error::Invalid(format!("a stored rule does not read: {e}")))?;
            let Some(webhook) = rule.webhook else { continue };
            let body: String = d.try_get("body")?;
            let attempts: i64 = d.try_get::<i64, _>("attempts")? + 1;
            let outcome = send(&webhook, &id, &body).await;
            let now = now_ms();
            match outcome {
                Ok(()) => {
                    sqlx::query(
                        "UPDATE monitor_deliveries SET delivered_ms = $1, attempts = $2, last_error = NULL \
                         WHERE id = $3",
                    )
                    .bind(now)
                    .bind(attempts)
                    .bind(&id)
                    .execute(self.db.pool())
                    .await?;
                    delivered += 1;
                }
                Err(reason) => {
                    let created: i64 = d.try_get("created_ms")?;
                    let wait = (1000i64 << (attempts - 1).clamp(0, 20)).min(MAX_BACKOFF_MS);
                    let give_up = now - created > GIVE_UP_MS;
                    sqlx::query(
                        "UPDATE monitor_deliveries SET attempts = $1, next_ms = $2, last_error = $3, \
                         given_up = $4 WHERE id = $5",
                    )
                    .bind(attempts)
                    .bind(now + wait)
                    .bind(&reason)
                    .bind(i64::from(give_up))
                    .bind(&id)
                    .execute(self.db.pool())
                    .await?;
                }
            }
        }
        Ok(delivered)
    }
}

/// The URL, checked (see [`slipway_core::outbound`]).
async fn check_target(url: &str, allow_private: bool) -> Result<slipway_core::outbound::Target> {
    slipway_core::outbound::check(url, allow_private).await.map_err(Error::Invalid)
}

/// One POST of a delivery: 2xx is delivered, anything else is retried.
async fn send(webhook: &Webhook, key: &str, body: &str) -> std::result::Result<(), String> {
    let target = slipway_core::outbound::check(&webhook.url, webhook.allow_private).await?;
    let mut headers = vec![
        ("Idempotency-Key", key.to_string()),
        ("User-Agent", concat!("slipway/", env!("CARGO_PKG_VERSION")).to_string()),
    ];
    if let Some(secret) = &webhook.secret {
        let t = now_ms() / 1000;
        headers.push(("X-Slipway-Signature", format!("t={t},v1={}", sign(secret, t, body))));
    }
    slipway_core::outbound::post_json(&target, &headers, body, Duration::from_secs(5)).await
}

/// HMAC-SHA256 of `<t>.<body>` under `secret`, as hex.
pub fn sign(secret: &str, t: i64, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, format!("{t}.{body}").as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_time_and_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"Jefe");
        let tag = ring::hmac::sign(&key, b"what do ya want for nothing?");
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert_eq!(sign("Jefe", 1, "x").len(), 64);
        assert_ne!(sign("Jefe", 1, "x"), sign("Jefe", 2, "x"));
    }

    #[test]
    fn ops_compare() {
        assert!(Op::Lt.holds(0.0, 1.0) && !Op::Lt.holds(1.0, 1.0));
        assert!(Op::Ge.holds(1.0, 1.0) && Op::Ne.holds(2.0, 1.0) && Op::Eq.holds(1.0, 1.0));
    }
}
