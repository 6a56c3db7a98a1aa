//! Tracking types as MLflow's JSON: empty fields left out, int64 as numbers, NaN and infinities
//! as strings.

use serde_json::{Map, Value, json};
use track::{Experiment, KeyValue, Metric, Run, RunInfo};

fn key_values(items: &[KeyValue]) -> Value {
    Value::Array(items.iter().map(|kv| json!({"key": kv.key, "value": kv.value})).collect())
}

pub(crate) fn number(value: f64) -> Value {
    if value.is_nan() {
        Value::String("NaN".into())
    } else if value == f64::INFINITY {
        Value::String("Infinity".into())
    } else if value == f64::NEG_INFINITY {
        Value::String("-Infinity".into())
    } else {
        json!(value)
    }
}

pub(crate) fn metric(m: &Metric) -> Value {
    json!({"key": m.key, "value": number(m.value), "timestamp": m.timestamp, "step": m.step})
}

pub(crate) fn experiment(e: &Experiment) -> Value {
    let mut out = json!({
        "experiment_id": e.experiment_id,
        "name": e.name,
        "artifact_location": e.artifact_location,
        "lifecycle_stage": e.lifecycle_stage.as_str(),
        "last_update_time": e.last_update_time,
        "creation_time": e.creation_time,
    });
    if !e.tags.is_empty() {
        out["tags"] = key_values(&e.tags);
    }
    out
}

pub(crate) fn run_info(i: &RunInfo) -> Value {
    let mut out = json!({
        "run_uuid": i.run_id,
        "run_id": i.run_id,
        "run_name": i.run_name,
        "experiment_id": i.experiment_id,
        "user_id": i.user_id,
        "status": i.status.as_str(),
        "start_time": i.start_time,
        "artifact_uri": i.artifact_uri,
        "lifecycle_stage": i.lifecycle_stage.as_str(),
    });
    if let Some(end) = i.end_time {
        out["end_time"] = json!(end);
    }
    out
}

pub(crate) fn run(r: &Run) -> Value {
    let mut data = Map::new();
    if !r.metrics.is_empty() {
        data.insert("metrics".into(), Value::Array(r.metrics.iter().map(metric).collect()));
    }
    if !r.params.is_empty() {
        data.insert("params".into(), key_values(&r.params));
    }
    if !r.tags.is_empty() {
        data.insert("tags".into(), key_values(&r.tags));
    }
    let mut inputs = Map::new();
    if !r.inputs.is_empty() {
        inputs.insert("dataset_inputs".into(), Value::Array(r.inputs.clone()));
    }
    if !r.model_inputs.is_empty() {
        inputs.insert("model_inputs".into(), Value::Array(r.model_inputs.clone()));
    }
    let mut out = json!({"info": run_info(&r.info), "data": data, "inputs": inputs});
    if !r.outputs.is_empty() {
        out["outputs"] = json!({"model_outputs": r.outputs});
    }
    out
}
