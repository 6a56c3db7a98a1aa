//! Drift statistics and verdicts against Evidently 0.7.23 and SciPy 1.17.1 on the reference
//! vectors of `python/tests/monitor/drift_refs.json` (made by `make_drift_refs.py` there, from
//! Evidently's own report output): every column's test, statistic (to 1e-9 relative) and
//! verdict, and every dataset's drifted count, share and verdict.

use serde_json::Value;
use slipway_monitor::drift::{Column, Kind, Test, Values, column_drift, dataset_drift};

fn refs() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../python/tests/monitor/drift_refs.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("reference vectors")).unwrap()
}

fn number(v: &Value) -> f64 {
    match v {
        Value::String(s) => match s.as_str() {
            "nan" => f64::NAN,
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            other => panic!("unexpected {other}"),
        },
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Null => f64::NAN,
        v => v.as_f64().unwrap(),
    }
}

fn values(dtype: &str, list: &Value) -> Values {
    let list = list.as_array().unwrap();
    match dtype {
        "object" => Values::labels(&list.iter().map(|v| v.as_str()).collect::<Vec<_>>()),
        _ => Values::Numbers(list.iter().map(number).collect()),
    }
}

fn column(c: &Value) -> Column {
    let dtype = c["dtype"].as_str().unwrap();
    Column {
        name: c["column"].as_str().unwrap().to_string(),
        kind: if c["type_used"] == "num" { Kind::Numerical } else { Kind::Categorical },
        integer: dtype == "int64",
        reference: values(dtype, &c["reference"]),
        current: values(dtype, &c["current"]),
        test: c["method_forced"].as_str().map(|m| Test::parse(m).unwrap()),
        threshold: None,
    }
}

fn same(got: f64, want: f64, rel: f64) -> bool {
    if want.is_nan() {
        return got.is_nan();
    }
    if want.is_infinite() || want == 0.0 {
        return got == want;
    }
    (got - want).abs() <= rel * want.abs()
}

#[test]
fn every_column_matches_evidently_to_1e_9() {
    let refs = refs();
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in refs["cases"].as_array().unwrap() {
        for c in case["columns"].as_array().unwrap() {
            let want = &c["expected"];
            let got = column_drift(&column(c)).unwrap();
            let name = format!("{}/{}", case["name"].as_str().unwrap(), c["column"]);
            let stat = number(&want["statistic"]);
            if got.test.name() != want["stattest"]
                || !same(got.statistic, stat, 1e-9)
                || got.drift != want["drift"].as_bool().unwrap()
                || got.threshold != want["threshold"].as_f64().unwrap()
            {
                failures.push(format!(
                    "{name}: got {} {:e} drift {}, want {} {stat:e} drift {}",
                    got.test.name(),
                    got.statistic,
                    got.drift,
                    want["stattest"],
                    want["drift"]
                ));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 80, "{checked}");
}

#[test]
fn every_dataset_matches_evidently() {
    let refs = refs();
    for case in refs["cases"].as_array().unwrap() {
        // Evidently's dataset count keeps ±inf on a side without a NaN (its per-column result
        // drops them); Slipway follows the per-column result, so those two cases differ there.
        let quirk = case["notes"].as_str().is_some_and(|n| n.contains("QUIRK"));
        if quirk {
            continue;
        }
        let columns: Vec<Column> = case["columns"].as_array().unwrap().iter().map(column).collect();
        let d = dataset_drift(&columns, 0.5).unwrap();
        let want = &case["dataset"];
        let name = case["name"].as_str().unwrap();
        assert_eq!(d.drifted as u64, want["drifted_count"].as_u64().unwrap(), "{name}");
        assert!(same(d.share, want["drifted_share"].as_f64().unwrap(), 1e-12), "{name}");
        assert_eq!(d.drift, want["dataset_drift"].as_bool().unwrap(), "{name}");
    }
}

#[test]
fn ks_beyond_10000_values_follows_scipys_asymptotic_methods() {
    // The reference cases reach each of SciPy's regions: twice the Smirnov tail, Pelz-Good,
    // the exact distribution for n <= 140 (both of SciPy's methods), and a tiny D.
    let refs = refs();
    let cases: Vec<&Value> = refs["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"].as_str().unwrap().starts_with("num_ks_asymp"))
        .collect();
    assert!(cases.len() >= 5);
    for case in cases {
        let c = &case["columns"][0];
        let got = column_drift(&column(c)).unwrap();
        let want = number(&c["expected"]["statistic"]);
        assert_eq!(got.test, Test::Ks);
        assert!(same(got.statistic, want, 1e-9), "{}: {} vs {want}", case["name"], got.statistic);
    }
}

#[test]
fn tests_refused_for_a_column_type_or_an_empty_side_say_so() {
    let num = Column {
        name: "x".into(),
        kind: Kind::Numerical,
        integer: false,
        reference: Values::Numbers(vec![1.0, 2.0, 3.0]),
        current: Values::Numbers(vec![f64::NAN, f64::INFINITY]),
        test: None,
        threshold: None,
    };
    let err = column_drift(&num).unwrap_err().to_string();
    assert!(err.contains("no current values"), "{err}");
    let forced = Column { test: Some(Test::ChiSquare), current: Values::Numbers(vec![1.0]), ..num };
    let err = column_drift(&forced).unwrap_err().to_string();
    assert!(err.contains("chisquare test does not apply to numerical"), "{err}");
}
