//! Serving protocols: the Open Inference Protocol v2 REST API (`/v2/…`, what KServe, Triton and
//! Seldon clients speak) and MLflow's `/invocations` (JSON `dataframe_split`,
//! `dataframe_records`, `instances`, `inputs`, or CSV), per endpoint; and the native
//! `/api/v1/endpoints` resource. Every answer carries `x-request-id`, and a prediction
//! `x-slipway-variant`: the variant that answered (routed by the endpoint's routing-key header,
//! `x-slipway-key` unless it names another; at random by weight without one).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use serve::{Batching, Datum, Labels, Live, Output, Served, Tensor};
use slipway_core::ErrorCode;

use crate::{ApiError, AppState};

impl From<serve::Error> for ApiError {
    fn from(e: serve::Error) -> ApiError {
        match e {
            serve::Error::Registry(r) => r.into(),
            serve::Error::Core(c) => c.into(),
            other => ApiError::new(other.code(), other.to_string()),
        }
    }
}

/// The client's `x-request-id`, or a new one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(slipway_core::new_id)
}

fn with_id(id: &str, response: impl IntoResponse) -> Response {
    let mut r = response.into_response();
    if let Ok(v) = HeaderValue::from_str(id) {
        r.headers_mut().insert("x-request-id", v);
    }
    r
}

fn answer(id: &str, result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(v) => with_id(id, Json(v)),
        Err(e) => with_id(id, e),
    }
}

/// A prediction's answer, naming the variant that gave it.
fn predicted(id: &str, variant: Option<&str>, result: Result<Value, ApiError>) -> Response {
    let mut r = answer(id, result);
    if let Some(v) = variant.and_then(|v| HeaderValue::from_str(v).ok()) {
        r.headers_mut().insert("x-slipway-variant", v);
    }
    r
}

/// The variant of `served` that answers a request with these headers.
/// The variant that answers a request, and whether the shadow sees it: by the request's
/// routing key, or at random without one.
fn route<'a>(served: &'a Served, headers: &HeaderMap) -> (&'a Arc<Live>, bool) {
    let key = headers.get(served.endpoint.traffic.key_header.as_str()).map(|v| v.as_bytes());
    let key = key.filter(|k| !k.is_empty());
    (served.route(key), served.endpoint.traffic.mirrors(key))
}

pub(crate) async fn server_metadata(headers: HeaderMap) -> Response {
    with_id(
        &request_id(&headers),
        Json(json!({"name": "slipway", "version": crate::VERSION, "extensions": []})),
    )
}

pub(crate) async fn health(headers: HeaderMap) -> Response {
    with_id(&request_id(&headers), Json(json!({})))
}

fn spec_json(live: &Live) -> (Vec<Value>, Vec<Value>) {
    let inputs = live
        .model
        .inputs
        .iter()
        .map(|i| {
            let shape: Vec<i64> = i.shape.iter().map(|d| d.map_or(-1, |n| n as i64)).collect();
            json!({"name": i.name, "datatype": oip_type(i.dtype), "shape": shape})
        })
        .collect();
    let outputs = live.model.outputs.iter().map(|(name, _)| json!({"name": name})).collect();
    (inputs, outputs)
}

fn oip_type(t: serve::ElemType) -> &'static str {
    match t {
        serve::ElemType::F32 => "FP32",
        serve::ElemType::F64 => "FP64",
        serve::ElemType::I64 => "INT64",
        serve::ElemType::I32 => "INT32",
    }
}

pub(crate) async fn model_metadata(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let id = request_id(&headers);
    let result = async {
        let live = s.serving.live(&name).await?;
        let (inputs, outputs) = spec_json(&live);
        Ok(json!({
            "name": name,
            "versions": [live.version.version.to_string()],
            "platform": "onnx",
            "inputs": inputs,
            "outputs": outputs,
        }))
    }
    .await;
    answer(&id, result)
}

pub(crate) async fn model_ready(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let id = request_id(&headers);
    answer(&id, s.serving.live(&name).await.map(|_| json!({"ready": true})).map_err(ApiError::from))
}

/// The rows of a request, as one float32 matrix for the model's single input.
fn matrix(live: &Live, rows: Vec<Vec<f64>>) -> Result<Tensor, ApiError> {
    let spec =
        live.model.inputs.first().ok_or_else(|| ApiError::invalid("the model has no inputs"))?;
    if live.model.inputs.len() != 1 || spec.shape.len() != 2 {
        return Err(ApiError::invalid(format!(
            "endpoint '{}' needs named tensors (its model takes {} inputs): use the Open Inference Protocol",
            live.endpoint,
            live.model.inputs.len()
        )));
    }
    let width = spec.shape[1].unwrap_or(0);
    if rows.is_empty() {
        return Err(ApiError::invalid("the request has no rows"));
    }
    let mut flat = Vec::with_capacity(rows.len() * width);
    for (i, row) in rows.iter().enumerate() {
        if row.len() != width {
            return Err(ApiError::invalid(format!(
                "row {i} has {} values; input '{}' expects {}",
                row.len(),
                spec.name,
                spec.describe()
            )));
        }
        flat.extend(row.iter().map(|v| *v as f32));
    }
    Tensor::from_shape(&[rows.len(), width], &flat).map_err(|e| ApiError::invalid(e.to_string()))
}

/// A cell as a number (null is NaN); `what` names it, and is only built for an error.
fn number(v: &Value, what: impl FnOnce() -> String) -> Result<f64, ApiError> {
    match v {
        Value::Number(n) => {
            n.as_f64().ok_or_else(|| ApiError::invalid(format!("{} is not a number", what())))
        }
        Value::Null => Ok(f64::NAN),
        other => Err(ApiError::invalid(format!("{} must be a number, got {other}", what()))),
    }
}

fn rows_of(v: &Value, what: &str) -> Result<Vec<Vec<f64>>, ApiError> {
    let rows = v
        .as_array()
        .ok_or_else(|| ApiError::invalid(format!("'{what}' must be a list of rows")))?;
    rows.iter()
        .enumerate()
        .map(|(i, row)| match row {
            Value::Array(cells) => {
                cells.iter().map(|c| number(c, || format!("{what}[{i}]"))).collect()
            }
            Value::Number(_) => Ok(vec![number(row, || what.to_string())?]),
            other => Err(ApiError::invalid(format!(
                "{what}[{i}] must be a list of numbers, got {other}"
            ))),
        })
        .collect()
}

/// A JSON object read with its keys in the order sent (records' columns are positional).
pub(crate) struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ordered, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// `{"inputs": [[...]]}`, `{"instances": [[...]]}` or `{"dataframe_split": {..., "data": [[...]]}}`
/// with numbers only.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FastBody {
    inputs: Option<Vec<Vec<f64>>>,
    instances: Option<Vec<Vec<f64>>>,
    dataframe_split: Option<FastSplit>,
}

/// `columns` and `index` are not needed: columns are positional.
#[derive(Deserialize)]
struct FastSplit {
    data: Vec<Vec<f64>>,
}

/// MLflow's scoring formats as rows.
fn invocation_rows(body: &[u8], content_type: &str) -> Result<Vec<Vec<f64>>, ApiError> {
    if content_type.starts_with("text/csv") {
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(body);
        let mut rows = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let record = record.map_err(|e| ApiError::invalid(format!("CSV row {i}: {e}")))?;
            let row = record
                .iter()
                .map(|c| {
                    c.trim().parse::<f64>().map_err(|_| {
                        ApiError::invalid(format!("CSV row {i}: '{c}' is not a number"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            rows.push(row);
        }
        return Ok(rows);
    }
    // The common shapes, all numbers, parse straight into rows; anything else (nulls, records,
    // mistakes to explain) takes the general path below.
    if let Ok(fast) = serde_json::from_slice::<FastBody>(body) {
        let mut found = [fast.inputs, fast.instances, fast.dataframe_split.map(|s| s.data)];
        if let [Some(rows), None, None] | [None, Some(rows), None] | [None, None, Some(rows)] =
            &mut found
        {
            return Ok(std::mem::take(rows));
        }
    }
    let doc: Ordered = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(ErrorCode::MalformedRequest, format!("the body is not a JSON object: {e}"))
    })?;
    let [(key, value)] = &doc.0[..] else {
        return Err(ApiError::invalid(
            "the body must have exactly one of 'dataframe_split', 'dataframe_records', 'instances' or 'inputs'",
        ));
    };
    match key.as_str() {
        "dataframe_split" => rows_of(&value["data"], "dataframe_split.data"),
        "dataframe_records" => {
            let records: Vec<Ordered> = serde_json::from_value(value.clone()).map_err(|e| {
                ApiError::invalid(format!("'dataframe_records' must be a list of objects: {e}"))
            })?;
            records
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    r.0.iter().map(|(k, v)| number(v, || format!("record {i} '{k}'"))).collect()
                })
                .collect()
        }
        "instances" | "inputs" => rows_of(value, key),
        other => Err(ApiError::invalid(format!(
            "unknown key '{other}': expected 'dataframe_split', 'dataframe_records', 'instances' or 'inputs'"
        ))),
    }
}

/// An output's values as JSON, converted once per request.
struct Column<'a> {
    values: Vec<Value>,
    width: usize,
    /// A vector output: a row's cell is a value, not a list.
    scalar: bool,
    labels: Option<&'a Labels>,
}

impl<'a> Column<'a> {
    fn of(o: &'a Output) -> Column<'a> {
        match o {
            Output::Tensor(t) => Column {
                values: tensor_json(t),
                width: t.shape().iter().skip(1).product(),
                scalar: t.rank() == 1,
                labels: None,
            },
            Output::ZipMap { labels, probabilities } => Column {
                values: tensor_json(probabilities),
                width: probabilities.shape()[1],
                scalar: false,
                labels: Some(labels),
            },
        }
    }

    fn cell(&self, row: usize) -> Value {
        let Some(part) = self.values.get(row * self.width..(row + 1) * self.width) else {
            return Value::Null;
        };
        match self.labels {
            None if self.scalar => part[0].clone(),
            None => Value::Array(part.to_vec()),
            Some(labels) => {
                let mut m = serde_json::Map::new();
                for (j, v) in part.iter().enumerate() {
                    let key = match labels {
                        Labels::Ints(l) => l[j].to_string(),
                        Labels::Strings(l) => l[j].clone(),
                    };
                    m.insert(key, v.clone());
                }
                Value::Object(m)
            }
        }
    }
}

fn tensor_json(t: &Tensor) -> Vec<Value> {
    // Dispatch on the type: a failed `as_slice` of the wrong type builds an error (with a
    // backtrace when RUST_BACKTRACE is set), which once cost a third of a request's CPU.
    fn all<T: serde::Serialize + serve::Datum>(t: &Tensor) -> Vec<Value> {
        let Ok(plain) = t.try_as_plain_ram() else { return Vec::new() };
        plain.as_slice::<T>().map(|s| s.iter().map(|v| json!(v)).collect()).unwrap_or_default()
    }
    match t.datum_type() {
        serve::DatumType::F32 => all::<f32>(t),
        serve::DatumType::F64 => all::<f64>(t),
        serve::DatumType::I64 => all::<i64>(t),
        serve::DatumType::I32 => all::<i32>(t),
        serve::DatumType::Bool => all::<bool>(t),
        serve::DatumType::String => all::<String>(t),
        _ => Vec::new(),
    }
}

/// `/invocations` for endpoint `name`: the answer, and the variant that gave it.
async fn invoke(
    s: &AppState,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
    id: &str,
) -> (Option<String>, Result<Value, ApiError>) {
    let served = match s.serving.served(name).await {
        Ok(served) => served,
        Err(e) => return (None, Err(e.into())),
    };
    let (live, mirror) = route(&served, headers);
    (Some(live.variant.clone()), invoke_on(s, &served, (live, mirror), headers, body, id).await)
}

async fn invoke_on(
    s: &AppState,
    served: &Served,
    (live, mirror): (&Live, bool),
    headers: &HeaderMap,
    body: &[u8],
    id: &str,
) -> Result<Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let parsed = invocation_rows(body, content_type).and_then(|rows| {
        let n = rows.len();
        Ok((n, matrix(live, rows)?))
    });
    // Input the model cannot take is the client's: counted as bad input.
    let (n, input) = parsed.inspect_err(|_| {
        live.stats.bad_input.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    })?;
    let outputs = s.serving.predict(served, live, input, id, mirror).await?;
    let names: Vec<&str> = live.model.outputs.iter().map(|(n, _)| n.as_str()).collect();
    // Each output's values once, then a slice per row.
    let columns: Vec<Column> = outputs.iter().map(Column::of).collect();
    let predictions: Vec<Value> = (0..n)
        .map(|r| {
            if columns.len() == 1 {
                return columns[0].cell(r);
            }
            let mut m = serde_json::Map::new();
            for (c, name) in columns.iter().zip(&names) {
                m.insert(name.to_string(), c.cell(r));
            }
            Value::Object(m)
        })
        .collect();
    Ok(json!({"predictions": predictions}))
}

pub(crate) async fn invocations(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = request_id(&headers);
    let (variant, result) = invoke(&s, &name, &headers, &body, &id).await;
    predicted(&id, variant.as_deref(), result)
}

/// `/invocations` at the root: the process's default endpoint (`slipway serve --endpoint`), or
/// the only one there is.
pub(crate) async fn default_invocations(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = request_id(&headers);
    let name = match s.default_endpoint.as_deref() {
        Some(n) => Ok(n.to_string()),
        None => match s.serving.list().await {
            Ok(list) if list.len() == 1 => Ok(list[0].name.clone()),
            Ok(list) => Err(ApiError::invalid(format!(
                "/invocations needs a default endpoint ({} exist): use /endpoints/NAME/invocations",
                list.len()
            ))),
            Err(e) => Err(e.into()),
        },
    };
    let (variant, result) = match name {
        Ok(n) => invoke(&s, &n, &headers, &body, &id).await,
        Err(e) => (None, Err(e)),
    };
    predicted(&id, variant.as_deref(), result)
}

/// `POST /v2/models/{name}/infer`.
pub(crate) async fn infer(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = request_id(&headers);
    let served = match s.serving.served(&name).await {
        Ok(served) => served,
        Err(e) => return answer(&id, Err(e.into())),
    };
    let (live, mirror) = route(&served, &headers);
    let result = async {
        // Input the model cannot take is the client's: counted as bad input.
        let parsed = (|| -> Result<(Option<String>, Tensor), ApiError> {
            let req: Value = serde_json::from_slice(&body).map_err(|e| {
                ApiError::new(ErrorCode::MalformedRequest, format!("the body is not JSON: {e}"))
            })?;
            let req_id = req.get("id").and_then(Value::as_str).map(str::to_string);
            let inputs = req["inputs"]
                .as_array()
                .ok_or_else(|| ApiError::invalid("'inputs' must be a list of tensors"))?;
            let [input] = &inputs[..] else {
                return Err(ApiError::invalid(format!(
                    "the model takes {} input(s), the request has {}",
                    live.model.inputs.len(),
                    inputs.len()
                )));
            };
            let spec = &live.model.inputs[0];
            let in_name = input["name"].as_str().unwrap_or_default();
            if in_name != spec.name {
                return Err(ApiError::invalid(format!(
                    "unknown input '{in_name}': the model takes '{}' ({})",
                    spec.name,
                    spec.describe()
                )));
            }
            let datatype = input["datatype"].as_str().unwrap_or_default();
            if datatype != oip_type(spec.dtype) {
                return Err(ApiError::invalid(format!(
                    "input '{}' has datatype {datatype}; expected {}",
                    spec.name,
                    oip_type(spec.dtype)
                )));
            }
            let shape: Vec<usize> = input["shape"]
                .as_array()
                .map(|a| a.iter().filter_map(|d| d.as_u64().map(|n| n as usize)).collect())
                .unwrap_or_default();
            let fits = shape.len() == spec.shape.len()
                && spec.shape.iter().zip(&shape).all(|(w, g)| w.is_none_or(|w| w == *g))
                && shape.first().is_some_and(|n| *n > 0);
            if !fits {
                return Err(ApiError::invalid(format!(
                    "input '{}' has shape {shape:?}; expected {}",
                    spec.name,
                    spec.describe()
                )));
            }
            let data = flatten(&input["data"])?;
            let expected: usize = shape.iter().product();
            if data.len() != expected {
                return Err(ApiError::invalid(format!(
                    "input '{}' has {} values for shape {shape:?} ({expected} expected)",
                    spec.name,
                    data.len()
                )));
            }
            let data: Vec<f32> = data.iter().map(|v| *v as f32).collect();
            let tensor =
                Tensor::from_shape(&shape, &data).map_err(|e| ApiError::invalid(e.to_string()))?;
            Ok((req_id, tensor))
        })();
        let (req_id, tensor) = parsed.inspect_err(|_| {
            live.stats.bad_input.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })?;
        let outputs = s.serving.predict(&served, live, tensor, &id, mirror).await?;
        let views: Vec<Value> = outputs
            .iter()
            .zip(&live.model.outputs)
            .map(|(o, (out_name, _))| output_json(out_name, o))
            .collect();
        let mut out = json!({
            "model_name": name,
            "model_version": live.version.version.to_string(),
            "outputs": views,
        });
        out["id"] = json!(req_id.unwrap_or_else(|| id.clone()));
        Ok(out)
    }
    .await;
    predicted(&id, Some(&live.variant), result)
}

fn flatten(v: &Value) -> Result<Vec<f64>, ApiError> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<f64>) -> Result<(), ApiError> {
        match v {
            Value::Array(items) => items.iter().try_for_each(|i| walk(i, out)),
            other => {
                out.push(number(other, || "a data value".to_string())?);
                Ok(())
            }
        }
    }
    walk(v, &mut out)?;
    Ok(out)
}

fn output_json(name: &str, o: &Output) -> Value {
    match o {
        Output::Tensor(t) => {
            let dt = t.datum_type();
            let datatype = if dt == f32::datum_type() {
                "FP32"
            } else if dt == i64::datum_type() {
                "INT64"
            } else {
                "BYTES"
            };
            json!({"name": name, "shape": t.shape(), "datatype": datatype, "data": tensor_json(t)})
        }
        Output::ZipMap { labels, probabilities } => {
            let labels: Value = match labels {
                Labels::Ints(l) => json!(l),
                Labels::Strings(l) => json!(l),
            };
            json!({
                "name": name,
                "shape": probabilities.shape(),
                "datatype": "FP32",
                "data": tensor_json(probabilities),
                "parameters": {"labels": labels},
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The native resource.

fn endpoint_view(e: &serve::Endpoint, served: Option<&Served>) -> Value {
    let mut v = json!({
        "name": e.name,
        "model": e.model,
        "reference": e.reference,
        "max_batch_size": e.batching.max_batch_size,
        "max_queue_delay_us": e.batching.max_queue_delay_us,
        "max_queue_len": e.batching.max_queue_len,
        "key_header": e.traffic.key_header,
        "revision": e.revision,
        "created_ms": e.created_ms,
        "log": e.log,
    });
    // Each variant with its weight; served here, with its version and counts too.
    let live_of = |name: &str| served.and_then(|s| s.lives().find(|l| l.variant == name));
    let variant_view = |var: &serve::Variant, weight: Option<f64>| {
        let mut view = json!({"name": var.name, "reference": var.reference, "weight": weight});
        if let Some(l) = live_of(&var.name) {
            view["version"] = json!(l.version.version);
            view["stats"] = stats_view(&l.stats);
        }
        view
    };
    let variants: Vec<Value> =
        e.traffic.variants.iter().map(|var| variant_view(var, Some(var.weight()))).collect();
    v["variants"] = json!(variants);
    v["shadow"] = e.traffic.shadow.as_ref().map_or(Value::Null, |s| {
        let mut view = variant_view(s, None);
        view["percent"] = json!(s.weight());
        if let Some(l) = live_of(&s.name) {
            use std::sync::atomic::Ordering::Relaxed;
            view["compared_rows"] = json!(l.stats.shadow_rows.load(Relaxed));
            view["agreed_rows"] = json!(l.stats.shadow_agreed.load(Relaxed));
            view["dropped"] = json!(l.stats.shadow_dropped.load(Relaxed));
        }
        view
    });
    if let Some(s) = served {
        let l = s.baseline();
        v["version"] = json!(l.version.version);
        let (inputs, outputs) = spec_json(l);
        v["inputs"] = json!(inputs);
        v["outputs"] = json!(outputs);
        // The endpoint's totals: every variant that answers (a shadow answers nobody).
        v["stats"] = stats_view(&serve::Stats::merged(s.variants.iter().map(|l| &*l.stats)));
    }
    v
}

/// Counts since this process started serving the version, and latency percentiles estimated
/// from the histogram `/metrics` exposes.
fn stats_view(st: &serve::Stats) -> Value {
    use std::sync::atomic::Ordering::Relaxed;
    let ms = |q: f64| st.latency.quantile(serve::LATENCY_BUCKETS_S, q).map(|s| s * 1e3);
    json!({
        "requests": {
            "ok": st.ok.load(Relaxed),
            "bad_input": st.bad_input.load(Relaxed),
            "overloaded": st.overloaded.load(Relaxed),
            "failed": st.failed.load(Relaxed),
        },
        "queue_depth": st.queue_depth.load(Relaxed),
        "in_flight": st.in_flight.load(Relaxed),
        "latency_ms": {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99)},
        "mean_batch_rows": st.batch_rows.mean(),
    })
}

#[derive(Deserialize)]
pub(crate) struct CreateEndpoint {
    name: String,
    /// `NAME@VERSION` or `NAME@ALIAS`.
    model: String,
    max_batch_size: Option<usize>,
    max_queue_delay_us: Option<u64>,
    max_queue_len: Option<usize>,
}

#[utoipa::path(post, path = "/api/v1/endpoints", tag = "serving",
    request_body(content = String, content_type = "application/json",
        description = "{name, model: NAME@VERSION or NAME@ALIAS, max_batch_size?, max_queue_delay_us?, max_queue_len?}"),
    responses((status = 200, description = "the endpoint"), (status = 400, description = "bad input")))]
pub(crate) async fn create_endpoint(
    State(s): State<AppState>,
    body: Result<Json<CreateEndpoint>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(req) = body.map_err(|e| ApiError::invalid(e.body_text()))?;
    let (model, reference) = registry::parse_ref(&req.model)?;
    let d = Batching::default();
    let batching = Batching {
        max_batch_size: req.max_batch_size.unwrap_or(d.max_batch_size),
        max_queue_delay_us: req.max_queue_delay_us.unwrap_or(d.max_queue_delay_us),
        max_queue_len: req.max_queue_len.unwrap_or(d.max_queue_len),
    };
    let e = s.serving.create(&req.name, &model, &reference, batching).await?;
    let served = s.serving.served(&e.name).await?;
    Ok(Json(endpoint_view(&e, Some(&served))))
}

#[utoipa::path(get, path = "/api/v1/endpoints", tag = "serving",
    responses((status = 200, description = "{endpoints: [...]}, each with its variants, shadow and live stats")))]
pub(crate) async fn list_endpoints(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let list = s.serving.list().await?;
    let served = s.serving.snapshot();
    let views: Vec<Value> = list
        .iter()
        .map(|e| endpoint_view(e, served.iter().find(|l| l.endpoint.name == e.name).map(|s| &**s)))
        .collect();
    Ok(Json(json!({ "endpoints": views })))
}

#[utoipa::path(get, path = "/api/v1/endpoints/{name}", tag = "serving", params(("name" = String, Path)),
    responses((status = 200, description = "the endpoint: model, traffic, shadow, inputs, outputs, stats"),
              (status = 404, description = "no such endpoint")))]
pub(crate) async fn get_endpoint(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let e = s.serving.get(&name).await?;
    let served = s.serving.served(&name).await.ok();
    Ok(Json(endpoint_view(&e, served.as_deref())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetTraffic {
    /// `{"v1": 90, "v2": 10}` or `[["v1", 90], ["v2", 10]]`: variants (a version as `v3` or
    /// `3`, `latest` or an alias) and percent weights summing to 100, baseline first.
    split: Option<SplitBody>,
    /// A variant to mirror requests to, or `null` to stop; absent leaves it as it is.
    #[serde(default, deserialize_with = "present")]
    shadow: Option<Option<String>>,
    /// The percent of requests the shadow sees (default 100): a key is always or never in it.
    shadow_percent: Option<f64>,
    /// The header that carries a request's routing key (default `x-slipway-key`).
    key_header: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum SplitBody {
    Pairs(Vec<(String, Value)>),
    Object(Ordered),
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PUT /api/v1/endpoints/{name}/traffic`: a new split and/or shadow, atomically.
#[utoipa::path(put, path = "/api/v1/endpoints/{name}/traffic", tag = "serving", params(("name" = String, Path)),
    request_body(content = String, content_type = "application/json",
        description = "{split?: [[variant, percent], ...] or {variant: percent}, shadow?: variant or null, shadow_percent?, key_header?}"),
    responses((status = 200, description = "the endpoint with its new traffic"),
              (status = 400, description = "weights that do not sum to 100, unknown variants, ...; nothing changed")))]
pub(crate) async fn set_traffic(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<SetTraffic>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(req) = body.map_err(|e| ApiError::invalid(e.body_text()))?;
    let mut split = Vec::new();
    if let Some(body) = &req.split {
        let pairs = match body {
            SplitBody::Pairs(p) => p,
            SplitBody::Object(Ordered(p)) => p,
        };
        for (variant, weight) in pairs {
            let w = weight.as_f64().ok_or_else(|| {
                ApiError::invalid(format!("the weight of '{variant}' must be a number"))
            })?;
            split.push((variant.clone(), w));
        }
    }
    if req.shadow_percent.is_some() && !matches!(req.shadow, Some(Some(_))) {
        return Err(ApiError::invalid("'shadow_percent' goes with a 'shadow' to mirror to"));
    }
    if req.split.is_none() && req.shadow.is_none() && req.key_header.is_none() {
        return Err(ApiError::invalid("give 'split', 'shadow' or 'key_header'"));
    }
    let e = s
        .serving
        .set_traffic(&name, |t| {
            let t = if req.split.is_some() { t.with_split(&split)? } else { t.clone() };
            let t = match &req.shadow {
                Some(shadow) => {
                    t.with_shadow(shadow.as_deref(), req.shadow_percent.unwrap_or(100.0))?
                }
                None => t,
            };
            match &req.key_header {
                Some(name) => t.with_key_header(name),
                None => Ok(t),
            }
        })
        .await?;
    let served = s.serving.served(&name).await.ok();
    Ok(Json(endpoint_view(&e, served.as_deref())))
}

#[utoipa::path(delete, path = "/api/v1/endpoints/{name}", tag = "serving", params(("name" = String, Path)),
    responses((status = 200, description = "deleted"), (status = 404, description = "no such endpoint")))]
pub(crate) async fn delete_endpoint(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    s.serving.delete(&name).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeedbackItem {
    request_id: String,
    /// The true label of a one-row request.
    label: Option<Value>,
    /// The true labels of a request's rows, in order.
    labels: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum FeedbackBody {
    Many { items: Vec<FeedbackItem> },
    One(FeedbackItem),
}

/// `POST /api/v1/endpoints/{name}/feedback`: ground truth for answered requests, by request id
/// (`{"request_id", "label"}`, or `{"items": [...]}`). Ids with no remembered answer are listed
/// back, not refused.
#[utoipa::path(post, path = "/api/v1/endpoints/{name}/feedback", tag = "serving", params(("name" = String, Path)),
    request_body(content = String, content_type = "application/json",
        description = "{request_id, label} or {request_id, labels: [...]}, or {items: [...]} of them"),
    responses((status = 200, description = "{scored, unknown: [request ids]}"),
              (status = 400, description = "bad feedback; nothing written")))]
pub(crate) async fn feedback(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<FeedbackBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| {
        ApiError::invalid(format!(
            "expected {{\"request_id\", \"label\"}} or {{\"items\": [...]}}: {}",
            e.body_text()
        ))
    })?;
    let items = match body {
        FeedbackBody::Many { items } => items,
        FeedbackBody::One(item) => vec![item],
    };
    let mut truth = Vec::with_capacity(items.len());
    for item in items {
        let values = match (item.label, item.labels) {
            (Some(l), None) => vec![l],
            (None, Some(ls)) => ls,
            _ => {
                return Err(ApiError::invalid(format!(
                    "request {}: give 'label' or 'labels', one of them",
                    item.request_id
                )));
            }
        };
        let labels = values
            .iter()
            .map(|v| {
                serve::truth_text(v).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "request {}: a label must be a string, number or boolean",
                        item.request_id
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        truth.push((item.request_id, labels));
    }
    let scored = s.serving.feedback(&name, &truth).await?;
    Ok(Json(json!({"scored": scored.scored, "unknown": scored.unknown})))
}

#[derive(Deserialize)]
pub(crate) struct AbQuery {
    /// Since when, ms since the epoch (default: the last 24 hours).
    since_ms: Option<i64>,
    /// The label precision, recall, F1 and ROC AUC are about (default `1`).
    positive: Option<String>,
}

/// `GET /api/v1/endpoints/{name}/abtest`: each variant against the baseline.
#[utoipa::path(get, path = "/api/v1/endpoints/{name}/abtest", tag = "serving",
    params(("name" = String, Path), ("since_ms" = Option<i64>, Query, description = "default: the last 24 hours"),
           ("positive" = Option<String>, Query, description = "the label precision, recall, F1 and ROC AUC are about (default 1)")),
    responses((status = 200, description = "per-variant figures, comparisons with the baseline, the sample-ratio check")))]
pub(crate) async fn abtest(
    State(s): State<AppState>,
    Path(name): Path<String>,
    query: Result<axum::extract::Query<AbQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query?.0;
    let since = q.since_ms.unwrap_or_else(|| slipway_core::now_ms() - 24 * 3600 * 1000);
    let positive = q.positive.as_deref().unwrap_or(serve::outcomes::DEFAULT_POSITIVE);
    Ok(Json(s.serving.abtest(&name, since, positive).await?))
}
