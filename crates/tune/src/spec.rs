//! A study file (TOML or YAML, read as JSON by the caller): the study's name, direction and
//! objective metric, the search space with conditional parameters, fixed parameters, enqueued
//! trials, sampler, pruner, seed, the number of trials and the objective command. Every error
//! names the field it is about.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::{
    Direction, PrunerConfig, SamplerConfig, check_objectives, objectives_from_json,
};
use crate::error::{Error, Result};
use crate::space::Distribution;
use crate::study::Study;

/// One declared parameter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamSpec {
    pub name: String,
    pub dist: Distribution,
    /// Present only when the named parameter took one of these values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<(String, Vec<Value>)>,
}

/// A whole study file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StudySpec {
    pub name: String,
    pub experiment: Option<String>,
    /// One per objective, in the order of `metrics` (`direction` and `metric` in the file for
    /// one objective, `directions` and `metrics` for several).
    pub directions: Vec<Direction>,
    pub metrics: Vec<String>,
    pub trials: u64,
    pub seed: Option<u64>,
    pub sampler: SamplerConfig,
    pub pruner: PrunerConfig,
    pub params: Vec<ParamSpec>,
    pub fixed: BTreeMap<String, Value>,
    pub enqueue: Vec<BTreeMap<String, Value>>,
    /// The objective: a command line (run through `sh -c`).
    pub command: Option<String>,
    /// Seconds before a trial's command is killed and the trial failed.
    pub timeout_s: Option<f64>,
}

/// What a parameter of a study file may have: its distribution's fields, and its condition.
const PARAM_FIELDS: &[&str] = &["type", "low", "high", "step", "log", "choices", "when"];

const FIELDS: &[&str] = &[
    "name",
    "experiment",
    "direction",
    "metric",
    "directions",
    "metrics",
    "trials",
    "seed",
    "sampler",
    "pruner",
    "params",
    "fixed",
    "enqueue",
    "command",
    "timeout_s",
];

/// Largest grid a grid sampler enumerates.
const MAX_GRID: usize = 1_000_000;

fn string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(Error::invalid(format!("{key}: expected a non-empty string"))),
    }
}

/// How a study file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Toml,
    Yaml,
    Json,
}

impl FileFormat {
    /// By the file's extension (`.yaml`/`.yml`, `.json`; anything else is TOML).
    pub fn of_path(path: &std::path::Path) -> FileFormat {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("yaml" | "yml") => FileFormat::Yaml,
            Some("json") => FileFormat::Json,
            _ => FileFormat::Toml,
        }
    }
}

impl StudySpec {
    /// Reads a study file's text: the spec, and the file as JSON (what the study keeps).
    pub fn parse(text: &str, format: FileFormat) -> Result<(StudySpec, Value)> {
        let one_line = |e: String| e.trim().replace('\n', " ");
        let value: Value =
            match format {
                FileFormat::Toml => {
                    toml::from_str(text).map_err(|e| Error::invalid(one_line(e.to_string())))?
                }
                FileFormat::Yaml => serde_norway::from_str(text)
                    .map_err(|e| Error::invalid(one_line(e.to_string())))?,
                FileFormat::Json => serde_json::from_str(text)
                    .map_err(|e| Error::invalid(one_line(e.to_string())))?,
            };
        Ok((StudySpec::from_json(&value)?, value))
    }

    pub fn from_json(value: &Value) -> Result<StudySpec> {
        let obj =
            value.as_object().ok_or_else(|| Error::invalid("a study file is a table of fields"))?;
        for key in obj.keys() {
            if !FIELDS.contains(&key.as_str()) {
                return Err(Error::invalid(format!(
                    "{key}: unknown field (expected {})",
                    FIELDS.join(", ")
                )));
            }
        }
        let name = string(obj, "name")?
            .ok_or_else(|| Error::invalid("name: missing (the study's name)"))?;
        let (directions, metrics) = objectives_from_json(
            obj.get("direction"),
            obj.get("metric"),
            obj.get("directions"),
            obj.get("metrics"),
        )?;
        let trials = match obj.get("trials") {
            None => 100,
            Some(v) => v.as_u64().filter(|&n| (1..=1_000_000).contains(&n)).ok_or_else(|| {
                Error::invalid("trials: expected a whole number from 1 to 1,000,000")
            })?,
        };
        let seed = match obj.get("seed") {
            None => None,
            Some(v) => Some(
                v.as_u64().ok_or_else(|| Error::invalid("seed: expected a whole number ≥ 0"))?,
            ),
        };
        let timeout_s = match obj.get("timeout_s") {
            None => None,
            Some(v) => Some(v.as_f64().filter(|t| *t > 0.0 && t.is_finite()).ok_or_else(|| {
                Error::invalid("timeout_s: expected a positive number of seconds")
            })?),
        };
        let pruner = PrunerConfig::from_json(obj.get("pruner"), "pruner")?;
        check_objectives(&directions, &metrics, &pruner)?;
        let mut sampler =
            SamplerConfig::from_json_for(obj.get("sampler"), "sampler", directions.len())?;

        let mut declared: Vec<(ParamSpec, Option<Value>)> = Vec::new();
        if let Some(table) = obj.get("params") {
            let table = table
                .as_object()
                .ok_or_else(|| Error::invalid("params: expected a table of parameters"))?;
            for (pname, pvalue) in table {
                let at = format!("params.{pname}");
                let mut pobj = pvalue
                    .as_object()
                    .cloned()
                    .ok_or_else(|| Error::invalid(format!("{at}: expected a table with a type")))?;
                if let Some(key) = pobj.keys().find(|k| !PARAM_FIELDS.contains(&k.as_str())) {
                    return Err(Error::invalid(format!(
                        "{at}.{key}: unknown field (expected {})",
                        PARAM_FIELDS.join(", ")
                    )));
                }
                let when = pobj.remove("when");
                let dist = Distribution::from_json(&Value::Object(pobj), &at)?;
                declared.push((ParamSpec { name: pname.clone(), dist, when: None }, when));
            }
        }
        let params = order_params(declared)?;
        let fixed = match obj.get("fixed") {
            None => BTreeMap::new(),
            Some(v) => v
                .as_object()
                .ok_or_else(|| Error::invalid("fixed: expected a table of name = value"))?
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        for name in fixed.keys() {
            if params.iter().any(|p| &p.name == name) {
                return Err(Error::invalid(format!("fixed.{name}: is also a searched parameter")));
            }
        }
        if params.is_empty() {
            return Err(Error::invalid(
                "params: the search space is empty (declare at least one parameter)",
            ));
        }
        let mut enqueue = Vec::new();
        if let Some(list) = obj.get("enqueue") {
            let list = list
                .as_array()
                .ok_or_else(|| Error::invalid("enqueue: expected a list of tables"))?;
            for (i, item) in list.iter().enumerate() {
                let item = item
                    .as_object()
                    .ok_or_else(|| Error::invalid(format!("enqueue[{i}]: expected a table")))?;
                let mut set = BTreeMap::new();
                for (k, v) in item {
                    let p = params.iter().find(|p| &p.name == k).ok_or_else(|| {
                        Error::invalid(format!(
                            "enqueue[{i}].{k}: not a parameter of the search space"
                        ))
                    })?;
                    p.dist
                        .to_internal(v)
                        .map_err(|e| Error::invalid(format!("enqueue[{i}].{k}: {e}")))?;
                    set.insert(k.clone(), v.clone());
                }
                enqueue.push(set);
            }
        }
        if let SamplerConfig::Grid { values } = &mut sampler {
            for p in &params {
                match values.get(&p.name) {
                    Some(list) => {
                        for v in list {
                            p.dist.to_internal(v).map_err(|e| {
                                Error::invalid(format!("sampler.values.{}: {e}", p.name))
                            })?;
                        }
                    }
                    None => {
                        let grid = p.dist.grid_values(MAX_GRID).ok_or_else(|| {
                            Error::invalid(format!(
                                "sampler.values.{}: a grid needs the values of {} ({}): give them here, or a step",
                                p.name,
                                p.name,
                                p.dist.describe()
                            ))
                        })?;
                        values.insert(
                            p.name.clone(),
                            grid.into_iter().map(|x| p.dist.to_external(x)).collect(),
                        );
                    }
                }
            }
            if let Some(extra) = values.keys().find(|k| !params.iter().any(|p| &p.name == *k)) {
                return Err(Error::invalid(format!(
                    "sampler.values.{extra}: not a parameter of the search space"
                )));
            }
            if crate::samplers::grid_size(values) > MAX_GRID {
                return Err(Error::invalid(format!(
                    "sampler.values: the grid has more than {MAX_GRID} points"
                )));
            }
        }
        Ok(StudySpec {
            name,
            experiment: string(obj, "experiment")?,
            directions,
            metrics,
            trials,
            seed,
            sampler,
            pruner,
            params,
            fixed,
            enqueue,
            command: string(obj, "command")?,
            timeout_s,
        })
    }

    /// Draws trial `number`'s declared parameters in order, skipping those whose condition does
    /// not hold; returns every parameter the objective gets (fixed ones included), as values.
    /// (Parameters are drawn in name order, each conditional one after its parent.)
    pub fn suggest_all(&self, study: &mut Study, number: u64) -> Result<BTreeMap<String, Value>> {
        let mut out: BTreeMap<String, Value> = BTreeMap::new();
        for p in &self.params {
            if let Some((parent, values)) = &p.when {
                let Some(got) = out.get(parent) else { continue };
                if !values
                    .iter()
                    .any(|v| v == got || v.as_f64().is_some_and(|f| got.as_f64() == Some(f)))
                {
                    continue;
                }
            }
            let value = study.suggest(number, &p.name, &p.dist)?;
            out.insert(p.name.clone(), value);
        }
        for (k, v) in &self.fixed {
            out.insert(k.clone(), v.clone());
        }
        Ok(out)
    }
}

/// Orders parameters by name with each conditional one after the parameter it depends on (a
/// parent is always drawn first), reading the conditions.
fn order_params(declared: Vec<(ParamSpec, Option<Value>)>) -> Result<Vec<ParamSpec>> {
    let all: Vec<ParamSpec> = declared.iter().map(|(p, _)| p.clone()).collect();
    let mut pending: Vec<ParamSpec> = Vec::with_capacity(declared.len());
    for (mut p, when) in declared {
        if let Some(w) = when {
            p.when = Some(parse_when(&w, &format!("params.{}", p.name), &all)?);
        }
        pending.push(p);
    }
    let mut ordered: Vec<ParamSpec> = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let before = pending.len();
        let mut i = 0;
        while i < pending.len() {
            let ready = match &pending[i].when {
                None => true,
                Some((parent, _)) => ordered.iter().any(|p| &p.name == parent),
            };
            if ready {
                ordered.push(pending.remove(i));
            } else {
                i += 1;
            }
        }
        if pending.len() == before {
            return Err(Error::invalid(format!(
                "params.{}.when: the conditions form a cycle",
                pending[0].name
            )));
        }
    }
    Ok(ordered)
}

/// `when = { optimizer = "sgd" }` or `when = { optimizer = ["sgd", "momentum"] }`.
fn parse_when(value: &Value, at: &str, all: &[ParamSpec]) -> Result<(String, Vec<Value>)> {
    let obj = value
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| Error::invalid(format!("{at}.when: expected one parameter = value(s)")))?;
    let (parent, allowed) = obj.iter().next().expect("one entry");
    let p = all
        .iter()
        .find(|p| &p.name == parent && !at.ends_with(&format!(".{parent}")))
        .ok_or_else(|| {
            Error::invalid(format!(
                "{at}.when.{parent}: must name another parameter of the search space"
            ))
        })?;
    let list = match allowed {
        Value::Array(a) if !a.is_empty() => a.clone(),
        Value::Array(_) => {
            return Err(Error::invalid(format!("{at}.when.{parent}: expected at least one value")));
        }
        v => vec![v.clone()],
    };
    for v in &list {
        p.dist.to_internal(v).map_err(|e| Error::invalid(format!("{at}.when.{parent}: {e}")))?;
    }
    Ok((parent.clone(), list))
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};
    use serde_json::json;

    fn check(value: Value, expect: Expect) {
        let got = match StudySpec::from_json(&value) {
            Ok(s) if s.metrics.len() > 1 => format!(
                "ok {} params, objectives {:?} {:?}, sampler {}",
                s.params.len(),
                s.metrics,
                s.directions,
                serde_json::to_string(&s.sampler).unwrap()
            ),
            Ok(s) => format!(
                "ok {} params, sampler {}",
                s.params.len(),
                serde_json::to_string(&s.sampler).unwrap()
            ),
            Err(e) => format!("error {e}"),
        };
        expect.assert_eq(&got);
    }

    fn base() -> Value {
        json!({"name": "s", "params": {"lr": {"type": "float", "low": 1e-4, "high": 1, "log": true}}})
    }

    fn with(key: &str, v: Value) -> Value {
        let mut b = base();
        b[key] = v;
        b
    }

    #[test]
    fn toml_and_yaml_study_files_read_alike() {
        let toml = r#"
name = "falls"
direction = "maximize"
metric = "f1"
trials = 50
command = "python train.py"
pruner = "median"
[params]
lr = { type = "float", low = 1e-4, high = 1.0, log = true }
layers = { type = "int", low = 1, high = 4 }
"#;
        let yaml = "name: falls\ndirection: maximize\nmetric: f1\ntrials: 50\ncommand: python train.py\npruner: median\n\
                    params:\n  lr: {type: float, low: 1.0e-4, high: 1.0, log: true}\n  layers: {type: int, low: 1, high: 4}\n";
        let (a, _) = StudySpec::parse(toml, FileFormat::Toml).unwrap();
        let (b, _) = StudySpec::parse(yaml, FileFormat::Yaml).unwrap();
        assert_eq!(a, b);
        assert_eq!((a.trials, a.params.len(), a.directions[0]), (50, 2, Direction::Maximize));
        let err = StudySpec::parse("name = ", FileFormat::Toml).unwrap_err().to_string();
        assert!(!err.contains('\n') && !err.is_empty(), "{err}");
    }

    #[test]
    fn bad_study_files_are_refused_with_the_field_named() {
        check(
            base(),
            expect![[
                r#"ok 1 params, sampler {"type":"tpe","n_startup_trials":10,"n_ei_candidates":24,"multivariate":true,"constant_liar":false,"believer":true,"prior_weight":1.0,"good_clip":0.25}"#
            ]],
        );
        check(
            with("sampler", json!("anneal")),
            expect![[
                r#"error sampler.type: unknown sampler "anneal" (expected tpe, random or grid)"#
            ]],
        );
        check(
            with("params", json!({})),
            expect!["error params: the search space is empty (declare at least one parameter)"],
        );
        check(
            with("params", json!({"x": {"type": "float", "low": 3, "high": 1}})),
            expect!["error params.x.low: low 3 is greater than high 1"],
        );
        check(
            with("params", json!({"lr": {"type": "float", "low": 0, "high": 1, "log": true}})),
            expect!["error params.lr.low: a log range needs low > 0, got 0"],
        );
        check(
            with("direction", json!("up")),
            expect![[r#"error direction: unknown direction "up" (expected minimize or maximize)"#]],
        );
        check(
            with("directions", json!(["minimize", "maximize"])),
            expect![
                "error metrics: a study with several directions names one metric per direction"
            ],
        );
        check(
            with("directions", json!(["minimize", "up"])),
            expect![[
                r#"error directions[1]: unknown direction "up" (expected minimize or maximize)"#
            ]],
        );
        let mut two = base();
        two["metric"] = Value::Null;
        two["metrics"] = json!(["latency", "accuracy"]);
        two["directions"] = json!(["minimize", "maximize"]);
        check(
            two.clone(),
            expect![[
                r#"ok 1 params, objectives ["latency", "accuracy"] [Minimize, Maximize], sampler {"type":"tpe","n_startup_trials":10,"n_ei_candidates":24,"multivariate":false,"constant_liar":true,"believer":false,"prior_weight":1.0,"good_clip":0.25}"#
            ]],
        );
        two["sampler"] = json!({"type": "tpe", "multivariate": true});
        check(
            two.clone(),
            expect![[
                r#"ok 1 params, objectives ["latency", "accuracy"] [Minimize, Maximize], sampler {"type":"tpe","n_startup_trials":10,"n_ei_candidates":24,"multivariate":true,"constant_liar":true,"believer":false,"prior_weight":1.0,"good_clip":0.25}"#
            ]],
        );
        two["pruner"] = json!("median");
        check(
            two.clone(),
            expect!["error pruner: a multi-objective study cannot prune (set pruner to none)"],
        );
        two["pruner"] = json!("none");
        two["metrics"] = json!(["latency"]);
        check(
            two,
            expect!["error directions: expected one direction per metric, got 2 for 1 metrics"],
        );
        check(
            with("trials", json!(0)),
            expect!["error trials: expected a whole number from 1 to 1,000,000"],
        );
        check(
            with("sampler", json!("grid")),
            expect![
                "error sampler.values.lr: a grid needs the values of lr (float [0.0001, 1] log): give them here, or a step"
            ],
        );
        check(
            with(
                "params",
                json!({"m": {"type": "float", "low": 0, "high": 1, "when": {"opt": "sgd"}}}),
            ),
            expect!["error params.m.when.opt: must name another parameter of the search space"],
        );
        check(
            with(
                "params",
                json!({"a": {"type": "int", "low": 0, "high": 1, "when": {"b": 1}},
                       "b": {"type": "int", "low": 0, "high": 1, "when": {"a": 1}}}),
            ),
            expect!["error params.a.when: the conditions form a cycle"],
        );
        check(
            with("enqueue", json!([{"lr": 2.0}])),
            expect!["error enqueue[0].lr: 2.0 lies outside float [0.0001, 1] log"],
        );
        check(
            with("fixed", json!({"lr": 1})),
            expect!["error fixed.lr: is also a searched parameter"],
        );
        check(
            with("epochs", json!(3)),
            expect![
                "error epochs: unknown field (expected name, experiment, direction, metric, directions, metrics, trials, seed, sampler, pruner, params, fixed, enqueue, command, timeout_s)"
            ],
        );
    }
}
