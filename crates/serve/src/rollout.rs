//! Rollouts: a candidate version taken through traffic steps on an endpoint (1% → 10% → 50% →
//! 100% by default), each step held for a minimum time and number of requests, with gates that
//! compare the candidate with the baseline. A rollout is a file a team keeps in git (TOML) or the
//! same fields as JSON; its state and every transition, with the reason, live in the store.
//!
//! Reaching the last step (100%) completes a rollout: the candidate takes the endpoint alone (the
//! old version leaves) and, when the file names `promote_alias`, that alias moves to it and the
//! endpoint serves the alias again. `abort` gives the baseline everything back.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use slipway_core::{new_id, now_ms};
use sqlx::Row;

use crate::endpoints::{Error, Result, Serving};
use crate::traffic::canonical;

/// The metrics a gate can compare, and how: `error_rate` and the regression errors (`mae`,
/// `rmse`) may rise by at most the threshold, `p99_latency` may grow by at most the threshold as
/// a ratio, and the classification metrics may drop by at most the threshold.
pub const GATE_METRICS: &[&str] = &[
    "error_rate",
    "p99_latency",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "mae",
    "rmse",
];

/// A rollout file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    pub endpoint: String,
    /// A version (`v3` or `3`), `latest` or an alias of the endpoint's model.
    pub candidate: String,
    /// The candidate's share at each step, in percent: increasing, the last 100.
    #[serde(default = "default_steps")]
    pub steps: Vec<f64>,
    /// The least time a step is held before it may pass, seconds.
    #[serde(default = "default_step_seconds")]
    pub step_seconds: u64,
    /// The least number of candidate requests a step sees before it may pass.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
    #[serde(default)]
    pub gates: Vec<Gate>,
    /// An alias of the model to move to the candidate when the rollout completes (`champion`).
    #[serde(default)]
    pub promote_alias: Option<String>,
    /// The label precision, recall, F1 and ROC AUC gates are about (default `1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positive_label: Option<String>,
}

/// One gate: the candidate against the baseline on `metric`, within `threshold`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    pub metric: String,
    pub threshold: f64,
}

/// The two formats a rollout file comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Yaml,
}

/// A file's format by its name, else by its text: TOML assigns with `=` and opens tables with
/// `[`, YAML maps with `key:`.
pub fn rollout_format(text: &str, name: Option<&str>) -> Format {
    if let Some(name) = name {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            return Format::Yaml;
        }
        if lower.ends_with(".toml") {
            return Format::Toml;
        }
    }
    let first =
        text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#') && l != &"---");
    match first {
        Some(l) if l.starts_with('[') || l.contains('=') => Format::Toml,
        Some(_) => Format::Yaml,
        None => Format::Toml,
    }
}

fn default_steps() -> Vec<f64> {
    vec![1.0, 10.0, 50.0, 100.0]
}
fn default_step_seconds() -> u64 {
    300
}
fn default_min_requests() -> u64 {
    100
}

impl RolloutSpec {
    /// A rollout file's text; errors name the field.
    pub fn from_toml(text: &str) -> Result<RolloutSpec> {
        let spec: RolloutSpec = toml::from_str(text).map_err(|e| {
            // One line: the message, and the line of the file it is about.
            let at = e.span().map(|span| {
                let line_no = text[..span.start.min(text.len())].matches('\n').count() + 1;
                let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
                format!(" (line {line_no}: {line})")
            });
            let message = e.message().trim().replace('\n', "; ");
            Error::Invalid(format!("rollout file: {message}{}", at.unwrap_or_default()))
        })?;
        spec.check()?;
        Ok(spec)
    }

    /// A rollout file in YAML, with the same fields; errors name the field and the line.
    pub fn from_yaml(text: &str) -> Result<RolloutSpec> {
        let spec: RolloutSpec = serde_norway::from_str(text).map_err(|e| {
            let at = e.location().map(|l| {
                let line = text.lines().nth(l.line().saturating_sub(1)).unwrap_or("").trim();
                format!(" (line {}: {line})", l.line())
            });
            // The parser's own "at line L column C" gives way to the line itself.
            let message = e.to_string();
            let message = message.split(" at line ").next().unwrap_or(&message).to_string();
            Error::Invalid(format!("rollout file: {message}{}", at.unwrap_or_default()))
        })?;
        spec.check()?;
        Ok(spec)
    }

    /// A rollout file in TOML or YAML, told apart by its name (`.yaml`, `.yml`) or, without one,
    /// by its text.
    pub fn from_file_text(text: &str, name: Option<&str>) -> Result<RolloutSpec> {
        match rollout_format(text, name) {
            Format::Yaml => RolloutSpec::from_yaml(text),
            Format::Toml => RolloutSpec::from_toml(text),
        }
    }

    /// The same fields as JSON.
    pub fn from_json(value: Value) -> Result<RolloutSpec> {
        let spec: RolloutSpec = serde_json::from_value(value.clone()).map_err(|e| {
            Error::Invalid(format!("rollout: {}", name_the_field(&value).unwrap_or(e.to_string())))
        })?;
        spec.check()?;
        Ok(spec)
    }

    /// The label precision, recall, F1 and ROC AUC gates are about.
    pub fn positive(&self) -> &str {
        self.positive_label.as_deref().unwrap_or(crate::outcomes::DEFAULT_POSITIVE)
    }

    /// The candidate's share in `state` at step `step`, percent.
    fn weight_at(&self, state: RolloutState, step: usize) -> f64 {
        match state {
            RolloutState::Promoted => 100.0,
            RolloutState::RolledBack | RolloutState::Aborted => 0.0,
            RolloutState::Running | RolloutState::Paused => self.steps[step],
        }
    }

    /// Checks what can be checked without the store, naming the field at fault.
    pub fn check(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Invalid(msg));
        if self.endpoint.is_empty() {
            return bad("endpoint: missing".into());
        }
        if self.candidate.is_empty() || !self.candidate.chars().all(reference_char) {
            return bad(format!(
                "candidate: '{}' is not a version (v3 or 3), latest or an alias",
                self.candidate
            ));
        }
        if self.steps.is_empty() {
            return bad("steps: give at least one step (e.g. [1, 10, 50, 100])".into());
        }
        for (i, s) in self.steps.iter().enumerate() {
            if !(s.is_finite() && *s > 0.0 && *s <= 100.0) {
                return bad(format!("steps[{i}]: {s} is not a percentage above 0 and at most 100"));
            }
            if i > 0 && *s <= self.steps[i - 1] {
                return bad(format!(
                    "steps[{i}]: {s} does not increase on the step before ({})",
                    self.steps[i - 1]
                ));
            }
        }
        let last = self.steps[self.steps.len() - 1];
        if last != 100.0 {
            return bad(format!(
                "steps: the last step must be 100 (the candidate takes all), not {last}"
            ));
        }
        for (i, g) in self.gates.iter().enumerate() {
            if !GATE_METRICS.contains(&g.metric.as_str()) {
                return bad(format!(
                    "gates[{i}].metric: unknown metric '{}' (known: {})",
                    g.metric,
                    GATE_METRICS.join(", ")
                ));
            }
            if !(g.threshold.is_finite() && g.threshold >= 0.0) {
                return bad(format!("gates[{i}].threshold: {} is not a number ≥ 0", g.threshold));
            }
        }
        if let Some(alias) = &self.promote_alias
            && (alias.is_empty() || !alias.chars().all(reference_char))
        {
            return bad(format!("promote_alias: '{alias}' is not an alias name"));
        }
        Ok(())
    }
}

/// `field: what is wrong with it` for the first field of a JSON rollout that does not read.
fn name_the_field(value: &Value) -> Option<String> {
    fn err<T: serde::de::DeserializeOwned>(v: &Value) -> Option<serde_json::Error> {
        serde_json::from_value::<T>(v.clone()).err()
    }
    for (key, v) in value.as_object()? {
        let e = match key.as_str() {
            "endpoint" | "candidate" => err::<String>(v),
            "steps" => err::<Vec<f64>>(v),
            "step_seconds" | "min_requests" => err::<u64>(v),
            "gates" => err::<Vec<Gate>>(v),
            "promote_alias" | "positive_label" => err::<Option<String>>(v),
            other => return Some(format!("{other}: unknown field")),
        };
        if let Some(e) = e {
            return Some(format!("{key}: {e}"));
        }
    }
    None
}

fn reference_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutState {
    Running,
    Paused,
    /// Completed: the candidate serves alone.
    Promoted,
    RolledBack,
    Aborted,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Running => "running",
            RolloutState::Paused => "paused",
            RolloutState::Promoted => "promoted",
            RolloutState::RolledBack => "rolled_back",
            RolloutState::Aborted => "aborted",
        }
    }

    fn parse(s: &str) -> Result<RolloutState> {
        Ok(match s {
            "running" => RolloutState::Running,
            "paused" => RolloutState::Paused,
            "promoted" => RolloutState::Promoted,
            "rolled_back" => RolloutState::RolledBack,
            "aborted" => RolloutState::Aborted,
            other => return Err(Error::Invalid(format!("unknown rollout state '{other}'"))),
        })
    }

    /// Running or paused: the rollout still holds the endpoint.
    pub fn is_active(self) -> bool {
        matches!(self, RolloutState::Running | RolloutState::Paused)
    }
}

/// A transition, with its reason and the figures behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutEvent {
    pub seq: i64,
    pub at_ms: i64,
    /// `started`, `advanced`, `completed`, `paused`, `resumed`, `aborted`, `rolled_back`, `held`.
    pub kind: String,
    pub step: usize,
    /// The candidate's share after the event, percent.
    pub weight: f64,
    pub reason: String,
    pub figures: Value,
}

/// A rollout and its history.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    pub id: String,
    pub spec: RolloutSpec,
    /// The endpoint's baseline reference when the rollout started.
    pub baseline: String,
    pub state: RolloutState,
    /// The index of the current step in `spec.steps`.
    pub step: usize,
    pub step_started_ms: i64,
    /// Why it is where it is (the last transition's reason).
    pub reason: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The serving process that leads it now (holds an unexpired lease), if any.
    pub driver: Option<String>,
    pub events: Vec<RolloutEvent>,
}

impl Rollout {
    /// The candidate's share now, percent.
    pub fn weight(&self) -> f64 {
        self.spec.weight_at(self.state, self.step)
    }
}

/// A manual transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// To the next step now (the last completes the rollout).
    Promote,
    Abort,
    Pause,
    Resume,
}

impl Action {
    pub fn parse(s: &str) -> Result<Action> {
        Ok(match s {
            "promote" => Action::Promote,
            "abort" => Action::Abort,
            "pause" => Action::Pause,
            "resume" => Action::Resume,
            other => {
                return Err(Error::Invalid(format!(
                    "unknown rollout action '{other}': promote, abort, pause or resume"
                )));
            }
        })
    }
}

impl Serving {
    /// Starts a rollout: the candidate gets the first step's share of the endpoint, the
    /// baseline (the endpoint's first variant now) the rest. Refused, with nothing changed, when
    /// the endpoint or the candidate does not exist, the candidate is the baseline, or the
    /// endpoint already has an active rollout.
    pub async fn start_rollout(&self, spec: RolloutSpec) -> Result<Rollout> {
        spec.check()?;
        let endpoint = match self.get(&spec.endpoint).await {
            Err(Error::NotFound(n)) => {
                return Err(Error::Invalid(format!("endpoint: no endpoint named '{n}'")));
            }
            other => other?,
        };
        let baseline = endpoint.traffic.variants[0].reference.clone();
        let candidate =
            match self.registry.resolve(&endpoint.model, &canonical(&spec.candidate)).await {
                Ok(v) => v,
                Err(e) => return Err(Error::Invalid(format!("candidate: {e}"))),
            };
        let base = self.registry.resolve(&endpoint.model, &baseline).await?;
        if candidate.version == base.version {
            return Err(Error::Invalid(format!(
                "candidate: version {} already serves as the baseline ('{baseline}')",
                candidate.version
            )));
        }
        let weight = spec.steps[0];
        let reason = format!(
            "{} from {baseline} (version {}) to {} (version {}) at {weight}%",
            spec.endpoint, base.version, spec.candidate, candidate.version
        );
        let id = new_id();
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO serve_rollouts (id, endpoint, spec, baseline, state, step, step_started_ms, \
             reason, created_ms, updated_ms) VALUES ($1, $2, $3, $4, 'running', 0, $5, $6, $5, $5)",
        )
        .bind(&id)
        .bind(&spec.endpoint)
        .bind(serde_json::to_string(&spec).expect("spec serialises"))
        .bind(&baseline)
        .bind(now)
        .bind(&reason)
        .execute(self.db.pool())
        .await;
        match inserted {
            Err(e) if slipway_core::is_unique_violation(&e) => {
                return Err(Error::Invalid(format!(
                    "endpoint: '{}' already has an active rollout (abort it first)",
                    spec.endpoint
                )));
            }
            other => other?,
        };
        if let Err(e) = self.apply_weight(&spec, &baseline, weight).await {
            sqlx::query("DELETE FROM serve_rollouts WHERE id = $1")
                .bind(&id)
                .execute(self.db.pool())
                .await?;
            return Err(e);
        }
        let mut tx = self.db.begin_write().await?;
        record(&mut tx, &id, "started", 0, weight, &reason, json!({})).await?;
        tx.commit().await?;
        tracing::info!(target: "serve::rollout", rollout = %id, kind = "started", step = 0, weight, reason, "rollout");
        self.rollout(&id).await
    }

    /// A manual transition. Refused when the rollout is over, or the action does not apply.
    pub async fn act_on_rollout(&self, id: &str, action: Action, reason: &str) -> Result<Rollout> {
        let r = self.rollout(id).await?;
        if !r.state.is_active() {
            return Err(Error::Invalid(format!(
                "rollout {id} is {}: nothing more can happen to it",
                r.state.as_str()
            )));
        }
        let said = if reason.is_empty() { "by hand".to_string() } else { reason.to_string() };
        match action {
            Action::Pause | Action::Resume => {
                let (from, to, kind) = match action {
                    Action::Pause => (RolloutState::Running, RolloutState::Paused, "paused"),
                    _ => (RolloutState::Paused, RolloutState::Running, "resumed"),
                };
                if r.state != from {
                    return Err(Error::Invalid(format!(
                        "rollout {id} is {}, not {}",
                        r.state.as_str(),
                        from.as_str()
                    )));
                }
                self.transition(&r, to, r.step, kind, &said, json!({})).await
            }
            Action::Abort => self.end(&r, RolloutState::Aborted, "aborted", &said, json!({})).await,
            Action::Promote => self.advance(&r, &said, json!({})).await,
        }
    }

    /// To the next step, or (from the step before 100%) to completion.
    pub(crate) async fn advance(
        &self,
        r: &Rollout,
        reason: &str,
        figures: Value,
    ) -> Result<Rollout> {
        let next = r.step + 1;
        if next + 1 >= r.spec.steps.len() {
            return self.complete(r, reason, figures).await;
        }
        let weight = r.spec.steps[next];
        self.apply_weight(&r.spec, &r.baseline, weight).await?;
        self.transition(r, r.state, next, "advanced", reason, figures).await
    }

    /// The candidate takes the endpoint alone; the alias moves when the file says so.
    async fn complete(&self, r: &Rollout, reason: &str, figures: Value) -> Result<Rollout> {
        let endpoint = self.get(&r.spec.endpoint).await?;
        let candidate =
            self.registry.resolve(&endpoint.model, &canonical(&r.spec.candidate)).await?;
        let serves = match &r.spec.promote_alias {
            Some(alias) => {
                self.registry.set_alias(&endpoint.model, alias, candidate.version).await?;
                alias.clone()
            }
            None => r.spec.candidate.clone(),
        };
        self.set_traffic(&r.spec.endpoint, |t| t.with_split(&[(serves.clone(), 100.0)])).await?;
        let last = r.spec.steps.len() - 1;
        let mut said = format!("{reason}; {} now serves {serves} alone", r.spec.endpoint);
        if let Some(alias) = &r.spec.promote_alias {
            said += &format!(" (alias {alias} moved to version {})", candidate.version);
        }
        self.transition(r, RolloutState::Promoted, last, "completed", &said, figures).await
    }

    /// Ends a rollout with the baseline serving alone.
    pub(crate) async fn end(
        &self,
        r: &Rollout,
        state: RolloutState,
        kind: &str,
        reason: &str,
        figures: Value,
    ) -> Result<Rollout> {
        let baseline = r.baseline.clone();
        self.set_traffic(&r.spec.endpoint, |t| t.with_split(&[(baseline.clone(), 100.0)])).await?;
        self.transition(r, state, r.step, kind, reason, figures).await
    }

    /// The endpoint's split for a candidate share: baseline first.
    async fn apply_weight(&self, spec: &RolloutSpec, baseline: &str, weight: f64) -> Result<()> {
        let split = vec![(baseline.to_string(), 100.0 - weight), (spec.candidate.clone(), weight)];
        self.set_traffic(&spec.endpoint, |t| t.with_split(&split)).await?;
        Ok(())
    }

    /// Moves a rollout from where `r` saw it (refused if another writer moved it first), and
    /// records the event.
    async fn transition(
        &self,
        r: &Rollout,
        state: RolloutState,
        step: usize,
        kind: &str,
        reason: &str,
        figures: Value,
    ) -> Result<Rollout> {
        let now = now_ms();
        let started = if step == r.step { r.step_started_ms } else { now };
        // The state and its event commit together: a reader never sees one without the other.
        let mut tx = self.db.begin_write().await?;
        let done = sqlx::query(
            "UPDATE serve_rollouts SET state = $1, step = $2, step_started_ms = $3, reason = $4, \
             updated_ms = $5 WHERE id = $6 AND state = $7 AND step = $8",
        )
        .bind(state.as_str())
        .bind(step as i64)
        .bind(started)
        .bind(reason)
        .bind(now)
        .bind(&r.id)
        .bind(r.state.as_str())
        .bind(r.step as i64)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::Invalid(format!("rollout {} changed meanwhile: try again", r.id)));
        }
        let weight = r.spec.weight_at(state, step);
        record(&mut tx, &r.id, kind, step, weight, reason, figures).await?;
        tx.commit().await?;
        tracing::info!(target: "serve::rollout", rollout = %r.id, kind, step, weight, reason, "rollout");
        self.rollout(&r.id).await
    }

    /// A rollout with its events.
    pub async fn rollout(&self, id: &str) -> Result<Rollout> {
        let row = sqlx::query(
            "SELECT id, spec, baseline, state, step, step_started_ms, reason, created_ms, \
             updated_ms, lease_owner, lease_until_ms FROM serve_rollouts WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or_else(|| Error::RolloutNotFound(id.to_string()))?;
        let mut r = rollout_from_row(&row)?;
        let events = sqlx::query(
            "SELECT seq, at_ms, kind, step, weight, reason, figures FROM serve_rollout_events \
             WHERE rollout_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(self.db.pool())
        .await?;
        for e in &events {
            r.events.push(RolloutEvent {
                seq: e.try_get("seq")?,
                at_ms: e.try_get("at_ms")?,
                kind: e.try_get("kind")?,
                step: e.try_get::<i64, _>("step")? as usize,
                weight: e.try_get("weight")?,
                reason: e.try_get("reason")?,
                figures: serde_json::from_str(&e.try_get::<String, _>("figures")?)
                    .unwrap_or(Value::Null),
            });
        }
        Ok(r)
    }

    /// Rollouts, newest first, of one endpoint or all (without their events).
    pub async fn rollouts(&self, endpoint: Option<&str>) -> Result<Vec<Rollout>> {
        let rows = sqlx::query(
            "SELECT id, spec, baseline, state, step, step_started_ms, reason, created_ms, \
             updated_ms, lease_owner, lease_until_ms FROM serve_rollouts \
             WHERE $1 = '' OR endpoint = $1 \
             ORDER BY created_ms DESC, id DESC",
        )
        .bind(endpoint.unwrap_or(""))
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(rollout_from_row).collect()
    }
}

fn rollout_from_row(row: &sqlx::any::AnyRow) -> Result<Rollout> {
    let spec: RolloutSpec = serde_json::from_str(&row.try_get::<String, _>("spec")?)
        .map_err(|e| Error::Invalid(format!("a stored rollout spec does not read: {e}")))?;
    Ok(Rollout {
        id: row.try_get("id")?,
        spec,
        baseline: row.try_get("baseline")?,
        state: RolloutState::parse(&row.try_get::<String, _>("state")?)?,
        step: row.try_get::<i64, _>("step")? as usize,
        step_started_ms: row.try_get("step_started_ms")?,
        reason: row.try_get("reason")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
        driver: row.try_get::<Option<String>, _>("lease_owner")?.filter(|_| {
            row.try_get::<i64, _>("lease_until_ms").is_ok_and(|until| until > now_ms())
        }),
        events: Vec::new(),
    })
}

/// Appends a rollout's event inside the transaction that changed it.
async fn record(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: &str,
    kind: &str,
    step: usize,
    weight: f64,
    reason: &str,
    figures: Value,
) -> Result<()> {
    // The next number; the (rollout, seq) key refuses a duplicate from a racing writer.
    let seq: i64 = sqlx::query(
        "SELECT COALESCE(MAX(seq), 0) + 1 AS n FROM serve_rollout_events WHERE rollout_id = $1",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?;
    sqlx::query(
        "INSERT INTO serve_rollout_events (rollout_id, seq, at_ms, kind, step, weight, reason, \
         figures) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(seq)
    .bind(now_ms())
    .bind(kind)
    .bind(step as i64)
    .bind(weight)
    .bind(reason)
    .bind(figures.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(toml: &str) -> String {
        RolloutSpec::from_toml(toml).unwrap_err().to_string()
    }

    #[test]
    fn rollout_files_read_with_defaults() {
        let spec = RolloutSpec::from_toml(
            "endpoint = \"ward-7\"\ncandidate = \"v2\"\npromote_alias = \"champion\"\n\
             [[gates]]\nmetric = \"error_rate\"\nthreshold = 0.01\n",
        )
        .unwrap();
        assert_eq!(spec.steps, [1.0, 10.0, 50.0, 100.0]);
        assert_eq!((spec.step_seconds, spec.min_requests), (300, 100));
        assert_eq!(spec.gates, [Gate { metric: "error_rate".into(), threshold: 0.01 }]);
        let json = RolloutSpec::from_json(serde_json::to_value(&spec).unwrap()).unwrap();
        assert_eq!(json, spec);
    }

    #[test]
    fn yaml_files_read_like_toml_ones() {
        let toml = "endpoint = \"ward-7\"\ncandidate = \"v2\"\nsteps = [1, 10, 50, 100]\n\
                    step_seconds = 60\n[[gates]]\nmetric = \"error_rate\"\nthreshold = 0.01\n";
        let yaml = "# ward 7's canary\nendpoint: ward-7\ncandidate: v2\nsteps: [1, 10, 50, 100]\n\
                    step_seconds: 60\ngates:\n  - metric: error_rate\n    threshold: 0.01\n";
        let (t, y) = (RolloutSpec::from_toml(toml).unwrap(), RolloutSpec::from_yaml(yaml).unwrap());
        assert_eq!(t, y);
        assert_eq!(RolloutSpec::from_file_text(yaml, None).unwrap(), y);
        assert_eq!(RolloutSpec::from_file_text(toml, None).unwrap(), t);
        assert_eq!(rollout_format(toml, Some("canary.YML")), Format::Yaml);
        assert_eq!(rollout_format(yaml, Some("canary.toml")), Format::Toml);
        assert_eq!(rollout_format("---\nendpoint: e\n", None), Format::Yaml);
        // Errors name the field, and the line where the parser saw it.
        let bad = RolloutSpec::from_yaml("endpoint: e\ncandidate: v2\nstepz: [1, 100]\n");
        let msg = bad.unwrap_err().to_string();
        assert!(msg.contains("stepz") && msg.contains("line"), "{msg}");
        let bad = RolloutSpec::from_yaml("endpoint: e\ncandidate: v2\nsteps: [1, 10, 5, 100]\n");
        assert!(bad.unwrap_err().to_string().contains("steps[2]"));
        let bad = RolloutSpec::from_yaml("endpoint: e\ncandidate: v2\nsteps: ten\n");
        assert!(bad.unwrap_err().to_string().contains("steps"));
        assert!(RolloutSpec::from_yaml("endpoint: [").is_err());
    }

    #[test]
    fn bad_rollout_files_name_the_field() {
        let base = "endpoint = \"e\"\ncandidate = \"v2\"\n";
        let cases = [
            (format!("{base}steps = [1, 10, 5, 100]"), "steps[2]: 5 does not increase"),
            (format!("{base}steps = [10, 10, 100]"), "steps[1]"),
            (format!("{base}steps = [1, 50]"), "the last step must be 100"),
            (format!("{base}steps = [0, 100]"), "steps[0]"),
            (format!("{base}steps = [1, 150]"), "steps[1]"),
            (format!("{base}steps = []"), "steps:"),
            (
                format!("{base}[[gates]]\nmetric = \"latnecy\"\nthreshold = 1"),
                "gates[0].metric: unknown metric 'latnecy'",
            ),
            (format!("{base}[[gates]]\nmetric = \"f1\"\nthreshold = -1"), "gates[0].threshold"),
            (format!("{base}stepz = [1, 100]"), "stepz"),
            ("candidate = \"v2\"".into(), "endpoint"),
            ("endpoint = \"e\"\ncandidate = \"../x\"".into(), "candidate: '../x'"),
            (format!("{base}promote_alias = \"a b\""), "promote_alias"),
        ];
        for (toml, says) in cases {
            let msg = refused(&toml);
            assert!(msg.contains(says), "{toml:?}: {msg}");
        }
    }
}
