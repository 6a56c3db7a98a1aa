//! Tracking types as MLflow's JSON: empty fields left out, int64 as numbers, NaN and infinities
//! as strings. Views serialize straight into the response bytes (no JSON tree in between: a
//! 1000-run search page is 1.5 MB).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Value, json};
use track::{Experiment, KeyValue, Metric, Run, RunInfo};

pub(crate) fn number(value: f64) -> Value {
    serde_json::to_value(Number(value)).unwrap_or(Value::Null)
}

/// A metric value: finite numbers as JSON numbers, NaN and infinities as MLflow's strings.
struct Number(f64);

impl Serialize for Number {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_nan() {
            s.serialize_str("NaN")
        } else if v == f64::INFINITY {
            s.serialize_str("Infinity")
        } else if v == f64::NEG_INFINITY {
            s.serialize_str("-Infinity")
        } else {
            s.serialize_f64(v)
        }
    }
}

struct KeyValues<'a>(&'a [KeyValue]);

impl Serialize for KeyValues<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.0.iter().map(|kv| Pairs([("key", kv.key.as_str()), ("value", kv.value.as_str())])),
        )
    }
}

/// A small JSON object of string fields.
struct Pairs<'a, const N: usize>([(&'static str, &'a str); N]);

impl<const N: usize> Serialize for Pairs<'_, N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(N))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

pub(crate) struct MetricView<'a>(&'a Metric);

impl Serialize for MetricView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let mut out = s.serialize_map(Some(4))?;
        out.serialize_entry("key", &m.key)?;
        out.serialize_entry("value", &Number(m.value))?;
        out.serialize_entry("timestamp", &m.timestamp)?;
        out.serialize_entry("step", &m.step)?;
        out.end()
    }
}

pub(crate) fn metric(m: &Metric) -> MetricView<'_> {
    MetricView(m)
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
        out["tags"] = serde_json::to_value(KeyValues(&e.tags)).unwrap_or(Value::Null);
    }
    out
}

pub(crate) struct RunInfoView<'a>(&'a RunInfo);

impl Serialize for RunInfoView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let i = self.0;
        let mut out = s.serialize_map(None)?;
        out.serialize_entry("run_uuid", &i.run_id)?;
        out.serialize_entry("run_id", &i.run_id)?;
        out.serialize_entry("run_name", &i.run_name)?;
        out.serialize_entry("experiment_id", &i.experiment_id)?;
        out.serialize_entry("user_id", &i.user_id)?;
        out.serialize_entry("status", i.status.as_str())?;
        out.serialize_entry("start_time", &i.start_time)?;
        if let Some(end) = i.end_time {
            out.serialize_entry("end_time", &end)?;
        }
        out.serialize_entry("artifact_uri", &i.artifact_uri)?;
        out.serialize_entry("lifecycle_stage", i.lifecycle_stage.as_str())?;
        out.end()
    }
}

pub(crate) fn run_info(i: &RunInfo) -> RunInfoView<'_> {
    RunInfoView(i)
}

pub(crate) struct RunView<'a>(&'a Run);

impl Serialize for RunView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut out = s.serialize_map(None)?;
        out.serialize_entry("info", &RunInfoView(&r.info))?;
        out.serialize_entry("data", &RunData(r))?;
        out.serialize_entry("inputs", &RunInputs(r))?;
        if !r.outputs.is_empty() {
            out.serialize_entry("outputs", &json!({"model_outputs": r.outputs}))?;
        }
        out.end()
    }
}

struct RunData<'a>(&'a Run);

impl Serialize for RunData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut out = s.serialize_map(None)?;
        if !r.metrics.is_empty() {
            out.serialize_entry("metrics", &Items(&r.metrics, metric))?;
        }
        if !r.params.is_empty() {
            out.serialize_entry("params", &KeyValues(&r.params))?;
        }
        if !r.tags.is_empty() {
            out.serialize_entry("tags", &KeyValues(&r.tags))?;
        }
        out.end()
    }
}

struct RunInputs<'a>(&'a Run);

impl Serialize for RunInputs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut out = s.serialize_map(None)?;
        if !r.inputs.is_empty() {
            out.serialize_entry("dataset_inputs", &r.inputs)?;
        }
        if !r.model_inputs.is_empty() {
            out.serialize_entry("model_inputs", &r.model_inputs)?;
        }
        out.end()
    }
}

pub(crate) fn run(r: &Run) -> RunView<'_> {
    RunView(r)
}

/// A list serialized through a view function, item by item.
struct Items<'a, T, F>(&'a [T], F);

impl<'a, T, V, F> Serialize for Items<'a, T, F>
where
    F: Fn(&'a T) -> V,
    V: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(&self.1))
    }
}

/// `{"<name>": value}` as a JSON response.
pub(crate) fn wrapped(name: &str, value: impl Serialize) -> Response {
    json_response(|s| {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(name, &value)?;
        m.end()
    })
}

/// A page of results as MLflow sends it: `{"<name>": [...], "next_page_token": …}`, with the
/// list left out when empty and the token only when there is another page.
pub(crate) fn page<'a, T, V: Serialize>(
    name: &str,
    page: &'a track::Page<T>,
    view: impl Fn(&'a T) -> V,
) -> Response {
    json_response(|s| {
        let mut m = s.serialize_map(None)?;
        if !page.items.is_empty() {
            m.serialize_entry(name, &Items(&page.items, &view))?;
        }
        if let Some(token) = &page.next_page_token {
            m.serialize_entry("next_page_token", token)?;
        }
        m.end()
    })
}

fn json_response(
    write: impl FnOnce(&mut serde_json::Serializer<&mut Vec<u8>>) -> serde_json::Result<()>,
) -> Response {
    let mut body = Vec::with_capacity(4096);
    match write(&mut serde_json::Serializer::new(&mut body)) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        // Only a failing Serialize impl gets here, and ours do not fail.
        Err(e) => crate::ApiError::new(slipway_core::ErrorCode::InternalError, e.to_string())
            .into_response(),
    }
}
