//! Search-space distributions: float (linear, log or stepped), int (linear, log or stepped) and
//! categorical (strings, numbers, booleans), their validation, and the conversion between a
//! parameter's value and its *internal* form (a float: the number itself, or a choice's index).

use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// Where a parameter's values come from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Distribution {
    Float {
        low: f64,
        high: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        step: Option<f64>,
        log: bool,
    },
    Int {
        low: i64,
        high: i64,
        step: i64,
        log: bool,
    },
    Categorical {
        choices: Vec<Value>,
    },
}

/// Largest magnitude an int parameter may take: its internal form is an f64, exact to 2^53.
const MAX_INT: i64 = 1 << 53;

impl Distribution {
    /// A float range, checked.
    pub fn float(low: f64, high: f64, step: Option<f64>, log: bool) -> Result<Distribution> {
        Distribution::Float { low, high, step, log }.checked("")
    }

    /// An int range, checked.
    pub fn int(low: i64, high: i64, step: i64, log: bool) -> Result<Distribution> {
        Distribution::Int { low, high, step, log }.checked("")
    }

    /// A categorical choice, checked.
    pub fn categorical(choices: Vec<Value>) -> Result<Distribution> {
        Distribution::Categorical { choices }.checked("")
    }

    /// Reads a distribution from its JSON form (`{"type": "float", "low": 0, "high": 1, "log":
    /// true}`); errors name the field under `at` (e.g. `params.lr`).
    pub fn from_json(value: &Value, at: &str) -> Result<Distribution> {
        let field =
            |name: &str| if at.is_empty() { name.to_string() } else { format!("{at}.{name}") };
        let obj = value
            .as_object()
            .ok_or_else(|| Error::invalid(format!("{at}: expected a table with a type")))?;
        for key in obj.keys() {
            if !matches!(key.as_str(), "type" | "low" | "high" | "step" | "log" | "choices") {
                return Err(Error::invalid(format!(
                    "{}: unknown field (expected type, low, high, step, log or choices)",
                    field(key)
                )));
            }
        }
        let kind = obj.get("type").and_then(Value::as_str).ok_or_else(|| {
            Error::invalid(format!("{}: missing (float, int or categorical)", field("type")))
        })?;
        let log = match obj.get("log") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(Error::invalid(format!("{}: expected true or false", field("log"))));
            }
        };
        let number = |name: &str| -> Result<f64> {
            obj.get(name)
                .ok_or_else(|| Error::invalid(format!("{}: missing", field(name))))?
                .as_f64()
                .ok_or_else(|| Error::invalid(format!("{}: expected a finite number", field(name))))
        };
        let integer = |name: &str| -> Result<i64> {
            let v =
                obj.get(name).ok_or_else(|| Error::invalid(format!("{}: missing", field(name))))?;
            match v.as_i64() {
                Some(i) => Ok(i),
                None => match v.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < MAX_INT as f64 => Ok(f as i64),
                    _ => Err(Error::invalid(format!("{}: expected an integer", field(name)))),
                },
            }
        };
        let dist = match kind {
            "float" => Distribution::Float {
                low: number("low")?,
                high: number("high")?,
                step: if obj.contains_key("step") { Some(number("step")?) } else { None },
                log,
            },
            "int" => Distribution::Int {
                low: integer("low")?,
                high: integer("high")?,
                step: if obj.contains_key("step") { integer("step")? } else { 1 },
                log,
            },
            "categorical" => {
                let choices = obj
                    .get("choices")
                    .ok_or_else(|| Error::invalid(format!("{}: missing", field("choices"))))?
                    .as_array()
                    .ok_or_else(|| {
                        Error::invalid(format!("{}: expected a list", field("choices")))
                    })?;
                Distribution::Categorical { choices: choices.clone() }
            }
            other => {
                return Err(Error::invalid(format!(
                    "{}: unknown type {other:?} (expected float, int or categorical)",
                    field("type")
                )));
            }
        };
        dist.checked(at)
    }

    /// Checks the bounds and snaps a stepped range's `high` down onto its grid (as Optuna does).
    fn checked(self, at: &str) -> Result<Distribution> {
        let field =
            |name: &str| if at.is_empty() { name.to_string() } else { format!("{at}.{name}") };
        let bad = |name: &str, why: String| Err(Error::invalid(format!("{}: {why}", field(name))));
        match self {
            Distribution::Float { low, high, step, log } => {
                if !low.is_finite() {
                    return bad("low", format!("{low} is not a finite number"));
                }
                if !high.is_finite() {
                    return bad("high", format!("{high} is not a finite number"));
                }
                if low > high {
                    return bad("low", format!("low {low} is greater than high {high}"));
                }
                if log && low <= 0.0 {
                    return bad("low", format!("a log range needs low > 0, got {low}"));
                }
                let high = match step {
                    None => high,
                    Some(_) if log => return bad("step", "a log range cannot have a step".into()),
                    Some(s) if !(s.is_finite() && s > 0.0) => {
                        return bad("step", format!("must be a positive number, got {s}"));
                    }
                    // Snap high down onto the grid; the epsilon absorbs decimal steps' rounding.
                    Some(s) => low + (((high - low) / s) + 1e-9).floor() * s,
                };
                Ok(Distribution::Float { low, high, step, log })
            }
            Distribution::Int { low, high, step, log } => {
                if low.abs() > MAX_INT {
                    return bad("low", format!("{low} is beyond ±2^53"));
                }
                if high.abs() > MAX_INT {
                    return bad("high", format!("{high} is beyond ±2^53"));
                }
                if low > high {
                    return bad("low", format!("low {low} is greater than high {high}"));
                }
                if step < 1 {
                    return bad("step", format!("must be a positive integer, got {step}"));
                }
                if log && low < 1 {
                    return bad("low", format!("a log range needs low ≥ 1, got {low}"));
                }
                if log && step != 1 {
                    return bad("step", "a log int range must have step 1".into());
                }
                Ok(Distribution::Int { low, high: low + (high - low) / step * step, step, log })
            }
            Distribution::Categorical { choices } => {
                if choices.is_empty() {
                    return bad("choices", "must not be empty".into());
                }
                for (i, c) in choices.iter().enumerate() {
                    if !(c.is_string() || c.is_number() || c.is_boolean()) {
                        return bad(
                            "choices",
                            format!("choice {c} is not a string, number or boolean"),
                        );
                    }
                    if choices[..i].contains(c) {
                        return bad("choices", format!("choice {c} appears twice"));
                    }
                }
                Ok(Distribution::Categorical { choices })
            }
        }
    }

    /// True when the range holds one value only: the sampler is never asked.
    pub fn is_single(&self) -> bool {
        match self {
            Distribution::Float { low, high, .. } => low == high,
            Distribution::Int { low, high, .. } => low == high,
            Distribution::Categorical { choices } => choices.len() == 1,
        }
    }

    /// The internal form of the one value of a single distribution.
    pub(crate) fn single_value(&self) -> f64 {
        match self {
            Distribution::Float { low, .. } => *low,
            Distribution::Int { low, .. } => *low as f64,
            Distribution::Categorical { .. } => 0.0,
        }
    }

    /// Whether an internal value lies in the distribution (on its grid, where it has one).
    pub fn contains(&self, internal: f64) -> bool {
        match self {
            Distribution::Float { low, high, step, .. } => {
                if !(internal >= *low && internal <= *high) {
                    return false;
                }
                match step {
                    None => true,
                    Some(s) => {
                        let k = (internal - low) / s;
                        (k - k.round()).abs() < 1e-8
                    }
                }
            }
            Distribution::Int { low, high, step, .. } => {
                internal.fract() == 0.0
                    && internal >= *low as f64
                    && internal <= *high as f64
                    && (internal as i64 - low) % step == 0
            }
            Distribution::Categorical { choices } => {
                internal.fract() == 0.0 && internal >= 0.0 && (internal as usize) < choices.len()
            }
        }
    }

    /// A parameter's value as the user sees it (a JSON number, string or boolean).
    pub fn to_external(&self, internal: f64) -> Value {
        match self {
            Distribution::Float { .. } => json!(internal),
            Distribution::Int { .. } => json!(internal as i64),
            Distribution::Categorical { choices } => {
                choices.get(internal as usize).cloned().unwrap_or(Value::Null)
            }
        }
    }

    /// The internal form of a value given by the user (a fixed or enqueued parameter).
    pub fn to_internal(&self, value: &Value) -> Result<f64> {
        let internal = match self {
            Distribution::Float { .. } | Distribution::Int { .. } => {
                value.as_f64().ok_or_else(|| Error::invalid(format!("{value} is not a number")))?
            }
            Distribution::Categorical { choices } => choices
                .iter()
                .position(|c| c == value || numbers_equal(c, value))
                .ok_or_else(|| Error::invalid(format!("{value} is not one of the choices")))?
                as f64,
        };
        if !self.contains(internal) {
            return Err(Error::invalid(format!("{value} lies outside {}", self.describe())));
        }
        Ok(internal)
    }

    /// An internal value scaled to [0, 1] over the range (on the log scale for a log
    /// distribution); a categorical one stays its choice index.
    pub(crate) fn to_unit(&self, v: f64) -> f64 {
        let span =
            |low: f64, high: f64, v: f64| if high > low { (v - low) / (high - low) } else { 0.0 };
        match *self {
            Distribution::Float { low, high, log: true, .. } => span(low.ln(), high.ln(), v.ln()),
            Distribution::Int { low, high, log: true, .. } => {
                span((low as f64).ln(), (high as f64).ln(), v.ln())
            }
            Distribution::Float { low, high, .. } => span(low, high, v),
            Distribution::Int { low, high, .. } => span(low as f64, high as f64, v),
            Distribution::Categorical { .. } => v,
        }
    }

    /// A short human description (`float [0.0001, 1] log`).
    pub fn describe(&self) -> String {
        match self {
            Distribution::Float { low, high, step, log } => {
                let mut s = format!("float [{low}, {high}]");
                if let Some(step) = step {
                    s.push_str(&format!(" step {step}"));
                }
                if *log {
                    s.push_str(" log");
                }
                s
            }
            Distribution::Int { low, high, step, log } => {
                let mut s = format!("int [{low}, {high}]");
                if *step != 1 {
                    s.push_str(&format!(" step {step}"));
                }
                if *log {
                    s.push_str(" log");
                }
                s
            }
            Distribution::Categorical { choices } => {
                let list: Vec<String> = choices.iter().map(Value::to_string).collect();
                format!("one of {{{}}}", list.join(", "))
            }
        }
    }

    /// Every value of the distribution, for a grid: categorical choices, an int range, or a
    /// stepped float range; `None` for a continuous float. At most `limit` values.
    pub fn grid_values(&self, limit: usize) -> Option<Vec<f64>> {
        match self {
            Distribution::Categorical { choices } => {
                Some((0..choices.len()).map(|i| i as f64).collect())
            }
            Distribution::Int { low, high, step, .. } => {
                let n = ((high - low) / step) as usize + 1;
                (n <= limit).then(|| (0..n).map(|k| (low + k as i64 * step) as f64).collect())
            }
            Distribution::Float { low, high, step: Some(s), .. } => {
                let n = ((high - low) / s + 1e-9).floor() as usize + 1;
                (n <= limit).then(|| (0..n).map(|k| low + k as f64 * s).collect())
            }
            Distribution::Float { low, high, step: None, .. } => (low == high).then(|| vec![*low]),
        }
    }
}

/// `1` and `1.0` name the same choice.
fn numbers_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    fn check(input: &str, expect: Expect) {
        let value: Value = serde_json::from_str(input).unwrap();
        let got = match Distribution::from_json(&value, "params.x") {
            Ok(d) => format!("ok {}", serde_json::to_string(&d).unwrap()),
            Err(e) => format!("error {e}"),
        };
        expect.assert_eq(&got);
    }

    #[test]
    fn distributions_parse_and_bad_ones_name_the_field() {
        check(
            r#"{"type":"float","low":0.0001,"high":1,"log":true}"#,
            expect![[r#"ok {"type":"float","low":0.0001,"high":1.0,"log":true}"#]],
        );
        check(
            r#"{"type":"float","low":0,"high":1,"step":0.3}"#,
            expect![[
                r#"ok {"type":"float","low":0.0,"high":0.8999999999999999,"step":0.3,"log":false}"#
            ]],
        );
        check(
            r#"{"type":"int","low":0,"high":10,"step":3}"#,
            expect![[r#"ok {"type":"int","low":0,"high":9,"step":3,"log":false}"#]],
        );
        check(
            r#"{"type":"categorical","choices":["a",1,true]}"#,
            expect![[r#"ok {"type":"categorical","choices":["a",1,true]}"#]],
        );
        check(
            r#"{"type":"float","low":2,"high":1}"#,
            expect!["error params.x.low: low 2 is greater than high 1"],
        );
        check(
            r#"{"type":"float","low":0,"high":1,"log":true}"#,
            expect!["error params.x.low: a log range needs low > 0, got 0"],
        );
        check(
            r#"{"type":"int","low":0,"high":8,"log":true}"#,
            expect!["error params.x.low: a log range needs low ≥ 1, got 0"],
        );
        check(
            r#"{"type":"float","low":1,"high":2,"log":true,"step":0.1}"#,
            expect!["error params.x.step: a log range cannot have a step"],
        );
        check(
            r#"{"type":"int","low":1,"high":2,"step":0}"#,
            expect!["error params.x.step: must be a positive integer, got 0"],
        );
        check(
            r#"{"type":"int","low":1.5,"high":2}"#,
            expect!["error params.x.low: expected an integer"],
        );
        check(
            r#"{"type":"categorical","choices":[]}"#,
            expect!["error params.x.choices: must not be empty"],
        );
        check(
            r#"{"type":"categorical","choices":["a","a"]}"#,
            expect![[r#"error params.x.choices: choice "a" appears twice"#]],
        );
        check(
            r#"{"type":"categorical","choices":[[1]]}"#,
            expect!["error params.x.choices: choice [1] is not a string, number or boolean"],
        );
        check(
            r#"{"type":"normal","low":0,"high":1}"#,
            expect![[
                r#"error params.x.type: unknown type "normal" (expected float, int or categorical)"#
            ]],
        );
        check(r#"{"type":"float","low":0}"#, expect!["error params.x.high: missing"]);
        check(
            r#"{"type":"float","low":0,"high":1,"lgo":true}"#,
            expect![
                "error params.x.lgo: unknown field (expected type, low, high, step, log or choices)"
            ],
        );
    }

    #[test]
    fn values_convert_both_ways_and_out_of_range_values_are_refused() {
        let cat = Distribution::categorical(vec![json!("a"), json!(2), json!(false)]).unwrap();
        assert_eq!(cat.to_internal(&json!(2.0)).unwrap(), 1.0);
        assert_eq!(cat.to_external(2.0), json!(false));
        assert!(cat.to_internal(&json!("b")).is_err());
        let int = Distribution::int(0, 10, 2, false).unwrap();
        assert_eq!(int.to_internal(&json!(4)).unwrap(), 4.0);
        assert!(int.to_internal(&json!(5)).is_err());
        assert!(int.to_internal(&json!(12)).is_err());
        assert_eq!(int.to_external(4.0), json!(4));
        let stepped = Distribution::float(0.0, 1.0, Some(0.1), false).unwrap();
        assert!(stepped.contains(0.7000000000000001));
        assert!(!stepped.contains(0.75));
        assert_eq!(stepped.grid_values(100).unwrap().len(), 11);
        assert!(Distribution::float(0.0, 1.0, None, false).unwrap().grid_values(100).is_none());
    }
}
