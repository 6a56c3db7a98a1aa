//! Slipway's runtime against onnxruntime: every model `python/tests/serving/models.py` exports
//! from scikit-learn (linear, forest, boosting, MLP, scaler pipeline; with and without ZipMap;
//! regressors) gives onnxruntime's labels exactly and its probabilities within 1e-5, on a whole
//! batch and row by row. `scripts/test` generates the models and sets `SLIPWAY_SERVING_MODELS`.

use std::path::PathBuf;

use serde_json::Value;
use slipway_serve::{Labels, Model, Output, Tensor, tvec};

fn models_dir() -> PathBuf {
    let dir = std::env::var("SLIPWAY_SERVING_MODELS").unwrap_or_else(|_| {
        panic!(
            "these tests need SLIPWAY_SERVING_MODELS: a folder written by \
             `python python/tests/serving/models.py DIR` (scripts/test makes one)"
        )
    });
    PathBuf::from(dir)
}

fn read_json(path: &PathBuf) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A model's outputs as JSON-like values: labels as strings, numbers as f64 rows.
fn outputs_as_values(outputs: &[Output]) -> Vec<Value> {
    outputs
        .iter()
        .map(|o| match o {
            Output::Tensor(t) => tensor_value(t),
            Output::ZipMap { labels, probabilities } => {
                let probs = tensor_value(probabilities);
                let rows = probs.as_array().unwrap();
                Value::Array(
                    rows.iter()
                        .map(|row| {
                            let mut m = serde_json::Map::new();
                            for (i, p) in row.as_array().unwrap().iter().enumerate() {
                                let key = match labels {
                                    Labels::Ints(l) => l[i].to_string(),
                                    Labels::Strings(l) => l[i].clone(),
                                };
                                m.insert(key, p.clone());
                            }
                            Value::Object(m)
                        })
                        .collect(),
                )
            }
        })
        .collect()
}

fn tensor_value(t: &Tensor) -> Value {
    let shape = t.shape().to_vec();
    let flat: Vec<Value> = if let Ok(v) =
        t.try_as_plain_ram().and_then(|p| p.as_slice::<f32>().map(|s| s.to_vec()))
    {
        v.iter().map(|x| serde_json::json!(*x as f64)).collect()
    } else if let Ok(v) = t.try_as_plain_ram().and_then(|p| p.as_slice::<i64>().map(|s| s.to_vec()))
    {
        v.iter().map(|x| serde_json::json!(x.to_string())).collect()
    } else {
        let p = t.try_as_plain_ram().unwrap();
        p.as_slice::<String>().unwrap().iter().map(|x| serde_json::json!(x)).collect()
    };
    if shape.len() == 2 {
        Value::Array(flat.chunks(shape[1]).map(|c| Value::Array(c.to_vec())).collect())
    } else {
        Value::Array(flat)
    }
}

/// Compares one output with onnxruntime's; returns the largest absolute difference.
fn compare(name: &str, got: &Value, want: &Value) -> f64 {
    match (got, want) {
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "{name}: lengths differ");
            g.iter().zip(w).map(|(a, b)| compare(name, a, b)).fold(0.0, f64::max)
        }
        (Value::Object(g), Value::Object(w)) => {
            assert_eq!(
                g.keys().collect::<Vec<_>>(),
                w.keys().collect::<Vec<_>>(),
                "{name}: map keys"
            );
            g.iter().map(|(k, a)| compare(name, a, &w[k])).fold(0.0, f64::max)
        }
        (Value::Number(a), Value::Number(b)) => (a.as_f64().unwrap() - b.as_f64().unwrap()).abs(),
        (Value::String(a), b) => {
            let b = match b {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(a, &b, "{name}: labels differ");
            0.0
        }
        (a, b) => panic!("{name}: {a} vs {b}"),
    }
}

fn batch(reference: &Value) -> (Vec<f32>, usize, usize) {
    let rows = reference["batch"].as_array().unwrap();
    let cols = rows[0].as_array().unwrap().len();
    let flat = rows
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32))
        .collect();
    (flat, rows.len(), cols)
}

#[test]
fn every_sklearn_export_matches_onnxruntime() {
    let dir = models_dir();
    let index = read_json(&dir.join("index.json"));
    let models = index["models"].as_array().unwrap();
    assert!(models.len() >= 20, "the export wrote {} models", models.len());
    for entry in models {
        let name = entry["name"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(entry["onnx"].as_str().unwrap())).unwrap();
        let reference = read_json(&dir.join(entry["ref"].as_str().unwrap()));
        let model = Model::load(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (x, rows, cols) = batch(&reference);
        let input = Tensor::from_shape(&[rows, cols], &x).unwrap();
        let outputs = model.run(tvec![input.into()]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = outputs_as_values(&outputs);
        let want = reference["outputs"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{name}: number of outputs");
        for (g, w) in got.iter().zip(want) {
            let out = format!("{name}.{}", w["name"].as_str().unwrap());
            let diff = compare(&out, g, &w["values"]);
            assert!(diff <= 1e-5, "{out}: differs from onnxruntime by {diff}");
        }
        // Row by row (batch 1) gives the same answers as the batch.
        for r in [0, rows / 2, rows - 1] {
            let one = Tensor::from_shape(&[1, cols], &x[r * cols..(r + 1) * cols]).unwrap();
            let single = outputs_as_values(&model.run(tvec![one.into()]).unwrap());
            for (s, g) in single.iter().zip(&got) {
                let diff = compare(name, &s[0], &g[r]);
                assert!(diff <= 1e-6, "{name}: row {r} alone differs by {diff}");
            }
        }
    }
}

#[test]
fn bad_inputs_are_refused_with_what_was_expected() {
    let dir = models_dir();
    let bytes = std::fs::read(dir.join("rf_activity.onnx")).unwrap();
    let model = Model::load(&bytes).unwrap();
    assert_eq!(model.inputs[0].describe(), "float32[N, 12]");
    let narrow = Tensor::from_shape(&[2, 11], &[0f32; 22]).unwrap();
    let err = model.run(tvec![narrow.into()]).unwrap_err().to_string();
    assert!(err.contains("float32[N, 12]"), "{err}");
    let ints = Tensor::from_shape(&[1, 12], &[0i64; 12]).unwrap();
    assert!(model.run(tvec![ints.into()]).is_err());
}

#[test]
fn unsupported_operators_are_named_at_load() {
    // A graph with one SVMClassifier node, hand-encoded.
    fn field(number: u32, body: &[u8], out: &mut Vec<u8>) {
        out.push((number << 3 | 2) as u8);
        out.push(body.len() as u8);
        out.extend_from_slice(body);
    }
    let mut node = Vec::new();
    field(1, b"X", &mut node);
    field(2, b"Y", &mut node);
    field(3, b"svm", &mut node);
    field(4, b"SVMClassifier", &mut node);
    field(7, b"ai.onnx.ml", &mut node);
    let mut graph = Vec::new();
    field(1, &node, &mut graph);
    let mut model = Vec::new();
    model.extend_from_slice(&[0x08, 0x08]); // ir_version 8
    field(7, &graph, &mut model);
    let err = Model::load(&model).unwrap_err();
    assert_eq!(err, "unsupported ONNX operator ai.onnx.ml:SVMClassifier (node 'svm')");
    assert!(Model::load(b"not onnx").is_err());
}
