//! A study's configuration: direction, sampler and pruner with their options, and seed; read
//! from JSON (the API, or a study file turned into JSON) with errors that name the field.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Minimize,
    Maximize,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Minimize => "minimize",
            Direction::Maximize => "maximize",
        }
    }

    pub fn parse(s: &str, at: &str) -> Result<Direction> {
        match s {
            "minimize" => Ok(Direction::Minimize),
            "maximize" => Ok(Direction::Maximize),
            _ => Err(Error::invalid(format!(
                "{at}: unknown direction {s:?} (expected minimize or maximize)"
            ))),
        }
    }
}

/// TPE's options; the defaults are Optuna 5's, except `good_clip`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TpeOptions {
    pub n_startup_trials: usize,
    pub n_ei_candidates: usize,
    pub multivariate: bool,
    pub constant_liar: bool,
    /// Kriging believer, with one objective and without `constant_liar`: a Gaussian process
    /// fitted to the complete trials predicts how each running trial will end, and TPE counts it
    /// good or bad by that prediction. Slipway's own; Optuna has no such option.
    pub believer: bool,
    pub prior_weight: f64,
    /// The good estimator's smallest kernel width, as a share of Optuna's magic-clip floor
    /// (range / min(100, n + 2) for n kernels). Optuna uses 1: since the good estimator holds at
    /// most 25 kernels, its kernels never get narrower than a 27th of the range, which caps how
    /// finely TPE can close in on a minimum. Slipway's default, 0.25, lets them get four times
    /// narrower (`docs/tuning.md` has the measurements); 1 reproduces Optuna exactly.
    pub good_clip: f64,
}

impl TpeOptions {
    /// The defaults for a study of `n_objectives`. With one objective, multivariate and the
    /// kriging believer for running trials; with several, univariate (as in Optuna 5) and
    /// constant liar. Optuna 5 sets the liar for both, but with one objective it costs more than
    /// it brings: over 300 seeds at 4 trials in flight, even leaving running trials out gave a
    /// better median on all four benchmark functions but Branin (a tie), and the believer is
    /// better again on all four; with several objectives the liar's spread is what keeps 4 in
    /// flight as good as one at a time (`docs/tuning.md` has the figures).
    pub fn for_objectives(n_objectives: usize) -> TpeOptions {
        TpeOptions {
            n_startup_trials: 10,
            n_ei_candidates: 24,
            multivariate: n_objectives <= 1,
            constant_liar: n_objectives > 1,
            believer: n_objectives <= 1,
            prior_weight: 1.0,
            good_clip: 0.25,
        }
    }
}

impl Default for TpeOptions {
    /// The defaults for one objective.
    fn default() -> TpeOptions {
        TpeOptions::for_objectives(1)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SamplerConfig {
    Random,
    /// Every combination of `values` (by parameter name) once, in a seeded random order.
    Grid {
        values: std::collections::BTreeMap<String, Vec<Value>>,
    },
    Tpe(TpeOptions),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PrunerConfig {
    None,
    /// Prunes a trial whose best value so far is worse than the given percentile of the complete
    /// trials' values at the same step (the median pruner is percentile 50).
    Percentile {
        percentile: f64,
        n_startup_trials: usize,
        n_warmup_steps: i64,
        interval_steps: i64,
        n_min_trials: usize,
    },
    /// Asynchronous successive halving (ASHA); `min_resource` None estimates it from the first
    /// complete trials.
    SuccessiveHalving {
        min_resource: Option<i64>,
        reduction_factor: i64,
        min_early_stopping_rate: i64,
        bootstrap_count: usize,
    },
    /// Several successive-halving brackets, a trial's bracket by a hash of study name and number.
    Hyperband {
        min_resource: i64,
        max_resource: Option<i64>,
        reduction_factor: i64,
        bootstrap_count: usize,
    },
}

/// Everything that decides how a study samples and prunes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StudyConfig {
    pub name: String,
    /// One per objective (never empty); more than one makes a multi-objective study, whose
    /// trials have a value per objective and whose best trials are the Pareto front.
    pub directions: Vec<Direction>,
    pub sampler: SamplerConfig,
    pub pruner: PrunerConfig,
    /// Always set: chosen at random when the user gives none, and recorded, so every study can
    /// be replayed.
    pub seed: u64,
}

impl StudyConfig {
    /// The first objective's direction: the study's, when it has one objective.
    pub fn direction(&self) -> Direction {
        self.directions[0]
    }

    pub fn n_objectives(&self) -> usize {
        self.directions.len()
    }

    pub fn is_multi_objective(&self) -> bool {
        self.directions.len() > 1
    }
}

/// A study's objectives from its fields: `direction` and `metric` for one, or the lists
/// `directions` and `metrics` (one per objective, in order) for several. Unset, a study minimises
/// the metric `value`; metrics without directions are all minimised. [`check_objectives`] checks
/// that they agree.
pub fn objectives_from_json(
    direction: Option<&Value>,
    metric: Option<&Value>,
    directions: Option<&Value>,
    metrics: Option<&Value>,
) -> Result<(Vec<Direction>, Vec<String>)> {
    fn present(v: Option<&Value>) -> Option<&Value> {
        v.filter(|v| !v.is_null())
    }
    let (direction, metric, directions, metrics) =
        (present(direction), present(metric), present(directions), present(metrics));
    if direction.is_some() && directions.is_some() {
        return Err(Error::invalid("directions: give direction or directions, not both"));
    }
    if metric.is_some() && metrics.is_some() {
        return Err(Error::invalid("metrics: give metric or metrics, not both"));
    }
    let text = |v: &Value, at: &str| -> Result<String> {
        match v {
            Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
            _ => Err(Error::invalid(format!("{at}: expected a non-empty string"))),
        }
    };
    let list = |v: &Value, at: &str| -> Result<Vec<String>> {
        let items = v.as_array().ok_or_else(|| Error::invalid(format!("{at}: expected a list")))?;
        if items.is_empty() {
            return Err(Error::invalid(format!("{at}: expected at least one")));
        }
        items.iter().enumerate().map(|(i, v)| text(v, &format!("{at}[{i}]"))).collect()
    };
    let metrics: Vec<String> = match (metric, metrics) {
        (Some(m), _) => vec![text(m, "metric")?],
        (None, Some(list_value)) => list(list_value, "metrics")?,
        (None, None) => Vec::new(),
    };
    let directions: Vec<Direction> = match (direction, directions) {
        (Some(d), _) => vec![Direction::parse(&text(d, "direction")?, "direction")?],
        (None, Some(list_value)) => list(list_value, "directions")?
            .iter()
            .enumerate()
            .map(|(i, d)| Direction::parse(d, &format!("directions[{i}]")))
            .collect::<Result<_>>()?,
        (None, None) => vec![Direction::Minimize; metrics.len().max(1)],
    };
    let metrics = if metrics.is_empty() {
        if directions.len() > 1 {
            return Err(Error::invalid(
                "metrics: a study with several directions names one metric per direction",
            ));
        }
        vec!["value".to_string()]
    } else {
        metrics
    };
    Ok((directions, metrics))
}

/// Up to this many objectives (the hypervolume the sampler computes grows fast with more).
const MAX_OBJECTIVES: usize = 8;

/// A study's objectives: one direction per metric, metrics named and distinct; pruning only
/// with one objective.
pub(crate) fn check_objectives(
    directions: &[Direction],
    metrics: &[String],
    pruner: &PrunerConfig,
) -> Result<()> {
    if directions.is_empty() || directions.len() != metrics.len() {
        return Err(Error::invalid(format!(
            "directions: expected one direction per metric, got {} for {} metrics",
            directions.len(),
            metrics.len()
        )));
    }
    if directions.len() > MAX_OBJECTIVES {
        return Err(Error::invalid(format!(
            "directions: at most {MAX_OBJECTIVES} objectives, got {}",
            directions.len()
        )));
    }
    for (i, metric) in metrics.iter().enumerate() {
        if metric.is_empty() || metric.len() > track::MAX_KEY_LEN {
            return Err(Error::invalid("metric: expected a metric name"));
        }
        if metrics[..i].contains(metric) {
            return Err(Error::invalid(format!("metrics: '{metric}' is named twice")));
        }
    }
    if directions.len() > 1 && *pruner != PrunerConfig::None {
        return Err(Error::invalid(
            "pruner: a multi-objective study cannot prune (set pruner to none)",
        ));
    }
    Ok(())
}

/// Reads a table's fields with errors naming `at.field`.
struct Fields<'a> {
    at: &'a str,
    obj: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn new(value: &'a Value, at: &'a str, allowed: &[&str]) -> Result<Fields<'a>> {
        let obj =
            value.as_object().ok_or_else(|| Error::invalid(format!("{at}: expected a table")))?;
        for key in obj.keys() {
            if !allowed.contains(&key.as_str()) {
                return Err(Error::invalid(format!(
                    "{at}.{key}: unknown field (expected {})",
                    allowed.join(", ")
                )));
            }
        }
        Ok(Fields { at, obj })
    }

    fn name(&self, key: &str) -> String {
        format!("{}.{key}", self.at)
    }

    fn usize(&self, key: &str, default: usize) -> Result<usize> {
        match self.obj.get(key) {
            None => Ok(default),
            Some(v) => v.as_u64().map(|n| n as usize).ok_or_else(|| {
                Error::invalid(format!("{}: expected a whole number ≥ 0", self.name(key)))
            }),
        }
    }

    fn int(&self, key: &str, default: i64, min: i64) -> Result<i64> {
        match self.obj.get(key) {
            None => Ok(default),
            Some(v) => match v.as_i64() {
                Some(n) if n >= min => Ok(n),
                _ => Err(Error::invalid(format!(
                    "{}: expected a whole number ≥ {min}",
                    self.name(key)
                ))),
            },
        }
    }

    /// An int ≥ min, or "auto" / absent for None.
    fn int_or_auto(&self, key: &str, min: i64) -> Result<Option<i64>> {
        match self.obj.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s == "auto" => Ok(None),
            Some(_) => self.int(key, 0, min).map(Some),
        }
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.obj.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(Error::invalid(format!("{}: expected true or false", self.name(key)))),
        }
    }

    fn f64(&self, key: &str, default: Option<f64>) -> Result<f64> {
        match (self.obj.get(key), default) {
            (None, Some(d)) => Ok(d),
            (None, None) => Err(Error::invalid(format!("{}: missing", self.name(key)))),
            (Some(v), _) => v
                .as_f64()
                .filter(|f| f.is_finite())
                .ok_or_else(|| Error::invalid(format!("{}: expected a number", self.name(key)))),
        }
    }

    fn kind(&self, expected: &str) -> Result<&'a str> {
        self.obj.get("type").and_then(Value::as_str).ok_or_else(|| {
            Error::invalid(format!("{}: missing (one of {expected})", self.name("type")))
        })
    }
}

impl SamplerConfig {
    /// A sampler for a study of one objective: see [`SamplerConfig::from_json_for`].
    pub fn from_json(value: Option<&Value>, at: &str) -> Result<SamplerConfig> {
        SamplerConfig::from_json_for(value, at, 1)
    }

    /// A sampler as a study stored it (the whole options, serialised). A TPE sampler stored
    /// before the believer existed has none, and keeps treating running trials as it did; one
    /// whose believer cannot act (with the liar, or several objectives: a study made in code
    /// may hold that) reads back without it, as it ran.
    pub(crate) fn from_stored(value: Option<&Value>, n_objectives: usize) -> Result<SamplerConfig> {
        if let Some(Value::Object(obj)) = value
            && obj.get("type").and_then(Value::as_str) == Some("tpe")
        {
            let mut obj = obj.clone();
            let liar = obj.get("constant_liar").and_then(Value::as_bool).unwrap_or(false);
            let believer = obj.get("believer").and_then(Value::as_bool).unwrap_or(false);
            obj.insert("believer".into(), Value::Bool(believer && !liar && n_objectives <= 1));
            let obj = Value::Object(obj);
            return SamplerConfig::from_json_for(Some(&obj), "sampler", n_objectives);
        }
        SamplerConfig::from_json_for(value, "sampler", n_objectives)
    }

    /// The sampler `value` describes (`{"type": "tpe", ...}` or just the type; none: TPE), for a study of `n_objectives`: the options it
    /// leaves out take [`TpeOptions::for_objectives`]' defaults.
    pub fn from_json_for(
        value: Option<&Value>,
        at: &str,
        n_objectives: usize,
    ) -> Result<SamplerConfig> {
        let d = TpeOptions::for_objectives(n_objectives);
        let Some(value) = value else { return Ok(SamplerConfig::Tpe(d)) };
        let value = match value {
            Value::String(s) => &serde_json::json!({ "type": s }),
            v => v,
        };
        let head = Fields::new(
            value,
            at,
            &[
                "type",
                "n_startup_trials",
                "n_ei_candidates",
                "multivariate",
                "constant_liar",
                "believer",
                "prior_weight",
                "good_clip",
                "values",
            ],
        )?;
        match head.kind("tpe, random or grid")? {
            "random" => {
                Fields::new(value, at, &["type"])?;
                Ok(SamplerConfig::Random)
            }
            "grid" => {
                let f = Fields::new(value, at, &["type", "values"])?;
                let mut values = std::collections::BTreeMap::new();
                if let Some(v) = f.obj.get("values") {
                    let table = v.as_object().ok_or_else(|| {
                        Error::invalid(format!("{}: expected a table of lists", f.name("values")))
                    })?;
                    for (name, list) in table {
                        let list = list.as_array().filter(|l| !l.is_empty()).ok_or_else(|| {
                            Error::invalid(format!(
                                "{}.{name}: expected a non-empty list",
                                f.name("values")
                            ))
                        })?;
                        values.insert(name.clone(), list.clone());
                    }
                }
                Ok(SamplerConfig::Grid { values })
            }
            "tpe" => {
                let f = Fields::new(
                    value,
                    at,
                    &[
                        "type",
                        "n_startup_trials",
                        "n_ei_candidates",
                        "multivariate",
                        "constant_liar",
                        "believer",
                        "prior_weight",
                        "good_clip",
                    ],
                )?;
                let constant_liar = f.bool("constant_liar", d.constant_liar)?;
                // The liar, when set, replaces the believer (a study file naming both is refused).
                let believer = f.bool("believer", d.believer && !constant_liar)?;
                if believer && n_objectives > 1 {
                    return Err(Error::invalid(format!(
                        "{}: only for a study of one objective (several use constant_liar)",
                        f.name("believer")
                    )));
                }
                if believer && constant_liar {
                    return Err(Error::invalid(format!(
                        "{}: cannot be used with constant_liar (choose one)",
                        f.name("believer")
                    )));
                }
                let options = TpeOptions {
                    n_startup_trials: f.usize("n_startup_trials", d.n_startup_trials)?,
                    n_ei_candidates: f.usize("n_ei_candidates", d.n_ei_candidates)?,
                    multivariate: f.bool("multivariate", d.multivariate)?,
                    constant_liar,
                    believer,
                    prior_weight: f.f64("prior_weight", Some(d.prior_weight))?,
                    good_clip: f.f64("good_clip", Some(d.good_clip))?,
                };
                if options.n_ei_candidates == 0 {
                    return Err(Error::invalid(format!(
                        "{}: must be at least 1",
                        f.name("n_ei_candidates")
                    )));
                }
                if options.prior_weight <= 0.0 {
                    return Err(Error::invalid(format!("{}: must be > 0", f.name("prior_weight"))));
                }
                if !(options.good_clip > 0.0 && options.good_clip <= 1.0) {
                    return Err(Error::invalid(format!(
                        "{}: must be in (0, 1]",
                        f.name("good_clip")
                    )));
                }
                Ok(SamplerConfig::Tpe(options))
            }
            other => Err(Error::invalid(format!(
                "{}: unknown sampler {other:?} (expected tpe, random or grid)",
                head.name("type")
            ))),
        }
    }
}

impl PrunerConfig {
    /// Reads `{"type": "median", ...}`; absent means no pruning.
    pub fn from_json(value: Option<&Value>, at: &str) -> Result<PrunerConfig> {
        let Some(value) = value else { return Ok(PrunerConfig::None) };
        let value = match value {
            Value::String(s) => &serde_json::json!({ "type": s }),
            v => v,
        };
        let kinds = "none, median, percentile, successive_halving (or asha) or hyperband";
        let all = [
            "type",
            "percentile",
            "n_startup_trials",
            "n_warmup_steps",
            "interval_steps",
            "n_min_trials",
            "min_resource",
            "max_resource",
            "reduction_factor",
            "min_early_stopping_rate",
            "bootstrap_count",
        ];
        let head = Fields::new(value, at, &all)?;
        let kind = head.kind(kinds)?;
        let percentile_fields =
            ["type", "n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"];
        let percentile = |f: &Fields, pct: f64| -> Result<PrunerConfig> {
            Ok(PrunerConfig::Percentile {
                percentile: pct,
                n_startup_trials: f.usize("n_startup_trials", 5)?,
                n_warmup_steps: f.int("n_warmup_steps", 0, 0)?,
                interval_steps: f.int("interval_steps", 1, 1)?,
                n_min_trials: f.usize("n_min_trials", 1)?.max(1),
            })
        };
        match kind {
            "none" => {
                Fields::new(value, at, &["type"])?;
                Ok(PrunerConfig::None)
            }
            "median" => percentile(&Fields::new(value, at, &percentile_fields)?, 50.0),
            "percentile" => {
                let mut allowed = percentile_fields.to_vec();
                allowed.push("percentile");
                let f = Fields::new(value, at, &allowed)?;
                let pct = f.f64("percentile", None)?;
                if !(0.0..=100.0).contains(&pct) {
                    return Err(Error::invalid(format!(
                        "{}: must lie in [0, 100], got {pct}",
                        f.name("percentile")
                    )));
                }
                percentile(&f, pct)
            }
            "successive_halving" | "asha" => {
                let f = Fields::new(
                    value,
                    at,
                    &[
                        "type",
                        "min_resource",
                        "reduction_factor",
                        "min_early_stopping_rate",
                        "bootstrap_count",
                    ],
                )?;
                let min_resource = f.int_or_auto("min_resource", 1)?;
                let bootstrap_count = f.usize("bootstrap_count", 0)?;
                if min_resource.is_none() && bootstrap_count > 0 {
                    return Err(Error::invalid(format!(
                        "{}: needs min_resource set (not auto)",
                        f.name("bootstrap_count")
                    )));
                }
                Ok(PrunerConfig::SuccessiveHalving {
                    min_resource,
                    reduction_factor: f.int("reduction_factor", 4, 2)?,
                    min_early_stopping_rate: f.int("min_early_stopping_rate", 0, 0)?,
                    bootstrap_count,
                })
            }
            "hyperband" => {
                let f = Fields::new(
                    value,
                    at,
                    &[
                        "type",
                        "min_resource",
                        "max_resource",
                        "reduction_factor",
                        "bootstrap_count",
                    ],
                )?;
                let min_resource = f.int("min_resource", 1, 1)?;
                let max_resource = f.int_or_auto("max_resource", 1)?;
                if let Some(max) = max_resource
                    && max < min_resource
                {
                    return Err(Error::invalid(format!(
                        "{}: {max} is below min_resource {min_resource}",
                        f.name("max_resource")
                    )));
                }
                Ok(PrunerConfig::Hyperband {
                    min_resource,
                    max_resource,
                    reduction_factor: f.int("reduction_factor", 3, 2)?,
                    bootstrap_count: f.usize("bootstrap_count", 0)?,
                })
            }
            other => Err(Error::invalid(format!(
                "{}: unknown pruner {other:?} (expected {kinds})",
                head.name("type")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    fn check_sampler(input: &str, expect: Expect) {
        let value: Value = serde_json::from_str(input).unwrap();
        let got = match SamplerConfig::from_json(Some(&value), "sampler") {
            Ok(s) => serde_json::to_string(&s).unwrap(),
            Err(e) => format!("error {e}"),
        };
        expect.assert_eq(&got);
    }

    fn check_pruner(input: &str, expect: Expect) {
        let value: Value = serde_json::from_str(input).unwrap();
        let got = match PrunerConfig::from_json(Some(&value), "pruner") {
            Ok(s) => serde_json::to_string(&s).unwrap(),
            Err(e) => format!("error {e}"),
        };
        expect.assert_eq(&got);
    }

    #[test]
    fn tpe_defaults_follow_the_number_of_objectives_and_given_options_win() {
        let tpe = |v: Option<Value>, n: usize| match SamplerConfig::from_json_for(
            v.as_ref(),
            "sampler",
            n,
        )
        .unwrap()
        {
            SamplerConfig::Tpe(o) => (o.multivariate, o.constant_liar, o.believer),
            other => panic!("{other:?}"),
        };
        // (multivariate, constant_liar, believer)
        assert_eq!(tpe(None, 1), (true, false, true));
        assert_eq!(tpe(None, 2), (false, true, false));
        assert_eq!(tpe(Some(serde_json::json!("tpe")), 3), (false, true, false));
        let given =
            serde_json::json!({"type": "tpe", "constant_liar": false, "multivariate": true});
        assert_eq!(tpe(Some(given), 3), (true, false, false));
        // Setting the liar turns the believer off.
        assert_eq!(
            tpe(Some(serde_json::json!({"type": "tpe", "constant_liar": true})), 1),
            (true, true, false)
        );
        assert_eq!(
            tpe(Some(serde_json::json!({"type": "tpe", "believer": false})), 1),
            (true, false, false)
        );
        let both = serde_json::json!({"type": "tpe", "believer": true});
        let err = SamplerConfig::from_json_for(Some(&both), "sampler", 2).unwrap_err();
        assert!(err.to_string().contains("sampler.believer: only for a study of one"), "{err}");
        // A study's stored sampler reads back as it was written, for one objective or several;
        // one stored before the believer existed keeps running trials out.
        for n in [1, 2] {
            let stored = SamplerConfig::from_json_for(None, "sampler", n).unwrap();
            let json = serde_json::to_value(&stored).unwrap();
            assert_eq!(SamplerConfig::from_stored(Some(&json), n).unwrap(), stored);
        }
        let old = serde_json::json!({"type": "tpe", "n_startup_trials": 10, "n_ei_candidates": 24,
            "multivariate": true, "constant_liar": false, "prior_weight": 1.0, "good_clip": 0.25});
        match SamplerConfig::from_stored(Some(&old), 1).unwrap() {
            SamplerConfig::Tpe(o) => assert!(!o.believer && !o.constant_liar),
            other => panic!("{other:?}"),
        }
        // Options made in code with a believer that cannot act read back without it.
        let both = serde_json::json!({"type": "tpe", "constant_liar": true, "believer": true});
        let multi = serde_json::json!({"type": "tpe", "constant_liar": false, "believer": true});
        for (json, n) in [(both, 1), (multi, 3)] {
            match SamplerConfig::from_stored(Some(&json), n).unwrap() {
                SamplerConfig::Tpe(o) => assert!(!o.believer, "{json}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn samplers_and_pruners_parse_with_optunas_defaults_and_bad_ones_name_the_field() {
        check_sampler(
            r#""tpe""#,
            expect![[
                r#"{"type":"tpe","n_startup_trials":10,"n_ei_candidates":24,"multivariate":true,"constant_liar":false,"believer":true,"prior_weight":1.0,"good_clip":0.25}"#
            ]],
        );
        check_sampler(
            r#"{"type":"tpe","multivariate":false,"n_startup_trials":5}"#,
            expect![[
                r#"{"type":"tpe","n_startup_trials":5,"n_ei_candidates":24,"multivariate":false,"constant_liar":false,"believer":true,"prior_weight":1.0,"good_clip":0.25}"#
            ]],
        );
        check_sampler(
            r#"{"type":"tpe","good_clip":1}"#,
            expect![[
                r#"{"type":"tpe","n_startup_trials":10,"n_ei_candidates":24,"multivariate":true,"constant_liar":false,"believer":true,"prior_weight":1.0,"good_clip":1.0}"#
            ]],
        );
        check_sampler(
            r#"{"type":"tpe","good_clip":0}"#,
            expect![[r#"error sampler.good_clip: must be in (0, 1]"#]],
        );
        check_sampler(
            r#"{"type":"tpe","constant_liar":true,"believer":true}"#,
            expect!["error sampler.believer: cannot be used with constant_liar (choose one)"],
        );
        check_sampler(
            r#"{"type":"tpe","believer":"yes"}"#,
            expect!["error sampler.believer: expected true or false"],
        );
        check_sampler(
            r#"{"type":"grid","values":{"x":[1,2]}}"#,
            expect![[r#"{"type":"grid","values":{"x":[1,2]}}"#]],
        );
        check_sampler(
            r#""cmaes""#,
            expect![[
                r#"error sampler.type: unknown sampler "cmaes" (expected tpe, random or grid)"#
            ]],
        );
        check_sampler(
            r#"{"type":"random","seed":1}"#,
            expect![
                "error sampler.seed: unknown field (expected type, n_startup_trials, n_ei_candidates, multivariate, constant_liar, believer, prior_weight, good_clip, values)"
            ],
        );
        check_sampler(
            r#"{"type":"random","multivariate":true}"#,
            expect!["error sampler.multivariate: unknown field (expected type)"],
        );
        check_pruner(
            r#""median""#,
            expect![[
                r#"{"type":"percentile","percentile":50.0,"n_startup_trials":5,"n_warmup_steps":0,"interval_steps":1,"n_min_trials":1}"#
            ]],
        );
        check_pruner(
            r#""asha""#,
            expect![[
                r#"{"type":"successive_halving","min_resource":null,"reduction_factor":4,"min_early_stopping_rate":0,"bootstrap_count":0}"#
            ]],
        );
        check_pruner(
            r#"{"type":"hyperband","max_resource":81}"#,
            expect![[
                r#"{"type":"hyperband","min_resource":1,"max_resource":81,"reduction_factor":3,"bootstrap_count":0}"#
            ]],
        );
        check_pruner(
            r#"{"type":"percentile","percentile":120}"#,
            expect!["error pruner.percentile: must lie in [0, 100], got 120"],
        );
        check_pruner(
            r#"{"type":"asha","reduction_factor":1}"#,
            expect!["error pruner.reduction_factor: expected a whole number ≥ 2"],
        );
        check_pruner(
            r#""patient""#,
            expect![[
                r#"error pruner.type: unknown pruner "patient" (expected none, median, percentile, successive_halving (or asha) or hyperband)"#
            ]],
        );
    }
}
