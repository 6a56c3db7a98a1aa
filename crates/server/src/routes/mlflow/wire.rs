//! Typed request bodies for the hot paths (`runs/log-batch`): parsed straight from the bytes,
//! without building a JSON tree, with the same leniency as [`super::Args`] (int64 as numbers or
//! strings, NaN and infinities as strings, `run_uuid` for `run_id`).

use std::fmt;

use axum::body::Bytes;
use axum::http::{HeaderMap, header};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::Value;
use slipway_core::ErrorCode;
use track::{KeyValue, Metric};

use super::{value_f64, value_i64};
use crate::ApiError;

/// One JSON scalar, kept as sent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Scalar {
    fn into_value(self) -> Value {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(b),
            Scalar::Int(i) => Value::from(i),
            Scalar::Float(f) => Value::from(f),
            Scalar::Str(s) => Value::String(s),
        }
    }

    /// Text as [`super::Args::opt_str`] reads it: strings as they are, numbers in decimal.
    fn into_text(self) -> Option<String> {
        match self {
            Scalar::Null => None,
            Scalar::Bool(b) => Some(b.to_string()),
            Scalar::Int(i) => Some(i.to_string()),
            Scalar::Float(f) => Some(Value::from(f).to_string()),
            Scalar::Str(s) => Some(s),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, a number, a boolean or null")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(b))
            }
            fn visit_i64<E: de::Error>(self, i: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(i))
            }
            fn visit_u64<E: de::Error>(self, u: u64) -> Result<Scalar, E> {
                Ok(i64::try_from(u).map(Scalar::Int).unwrap_or(Scalar::Float(u as f64)))
            }
            fn visit_f64<E: de::Error>(self, f: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(f))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(s.to_string()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Scalar, E> {
                Ok(Scalar::Str(s))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
struct WireMetric {
    #[serde(default)]
    key: Option<Scalar>,
    #[serde(default)]
    value: Option<Scalar>,
    #[serde(default)]
    timestamp: Option<Scalar>,
    #[serde(default)]
    step: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
struct WireKeyValue {
    #[serde(default)]
    key: Option<Scalar>,
    #[serde(default)]
    value: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
struct WireBatch {
    #[serde(default)]
    run_id: Option<Scalar>,
    #[serde(default)]
    run_uuid: Option<Scalar>,
    #[serde(default)]
    metrics: Option<Vec<WireMetric>>,
    #[serde(default)]
    params: Option<Vec<WireKeyValue>>,
    #[serde(default)]
    tags: Option<Vec<WireKeyValue>>,
}

/// A `runs/log-batch` request.
#[derive(Debug)]
pub(crate) struct LogBatch {
    pub run_id: String,
    pub metrics: Vec<Metric>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
}

impl LogBatch {
    pub(crate) fn parse(headers: &HeaderMap, body: &Bytes) -> Result<LogBatch, ApiError> {
        require_json(headers)?;
        let wire: WireBatch = serde_json::from_slice(body).map_err(|e| {
            let code = if e.is_data() {
                ErrorCode::InvalidParameterValue
            } else {
                ErrorCode::MalformedRequest
            };
            ApiError::new(code, format!("Failed to parse the request body: {e}"))
        })?;
        let text = |s: Option<Scalar>| s.and_then(Scalar::into_text).filter(|t| !t.is_empty());
        let run_id = text(wire.run_id)
            .or_else(|| text(wire.run_uuid))
            .ok_or_else(|| ApiError::invalid("Missing value for required parameter 'run_id'."))?;
        let metrics = wire.metrics.unwrap_or_default();
        let metrics = metrics
            .into_iter()
            .map(|m| {
                let key = text(m.key).ok_or_else(|| {
                    ApiError::invalid("Missing value for required parameter 'key'.")
                })?;
                let scalar = |s: Option<Scalar>| s.map(Scalar::into_value);
                Ok(Metric {
                    key,
                    value: value_f64(scalar(m.value).as_ref(), "value")?,
                    timestamp: value_i64(scalar(m.timestamp).as_ref(), "timestamp")?
                        .unwrap_or_else(slipway_core::now_ms),
                    step: value_i64(scalar(m.step).as_ref(), "step")?.unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(LogBatch {
            run_id,
            metrics,
            params: key_values(wire.params, "params")?,
            tags: key_values(wire.tags, "tags")?,
        })
    }
}

fn key_values(items: Option<Vec<WireKeyValue>>, name: &str) -> Result<Vec<KeyValue>, ApiError> {
    items
        .unwrap_or_default()
        .into_iter()
        .map(|kv| {
            let key =
                kv.key.and_then(Scalar::into_text).filter(|k| !k.is_empty()).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "Missing value for required parameter 'key' in '{name}'."
                    ))
                })?;
            Ok(KeyValue { key, value: kv.value.and_then(Scalar::into_text).unwrap_or_default() })
        })
        .collect()
}

/// The same check as axum's `Json` extractor, so every JSON endpoint answers alike.
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        });
    if json {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::BadRequest,
            "Expected request with `Content-Type: application/json`",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<LogBatch, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/json; charset=utf-8".parse().unwrap());
        LogBatch::parse(&headers, &Bytes::from(body.to_string()))
    }

    #[test]
    fn batches_parse_with_mlflows_leniency() {
        let b = parse(
            r#"{"run_uuid": "r1", "metrics": [
                {"key": "a", "value": "NaN", "timestamp": "17", "step": 3},
                {"key": "b", "value": 1.5e300, "timestamp": 5},
                {"key": "c", "value": "-Infinity", "timestamp": 5, "step": "-2", "extra": [1]}],
              "params": [{"key": "lr", "value": 0.01}, {"key": "n", "value": 3}],
              "tags": null}"#,
        )
        .unwrap();
        assert_eq!(b.run_id, "r1");
        assert!(b.metrics[0].value.is_nan());
        assert_eq!((b.metrics[0].timestamp, b.metrics[0].step), (17, 3));
        assert_eq!((b.metrics[1].value, b.metrics[1].step), (1.5e300, 0));
        assert_eq!((b.metrics[2].value, b.metrics[2].step), (f64::NEG_INFINITY, -2));
        assert_eq!(b.params.iter().map(|p| p.value.as_str()).collect::<Vec<_>>(), ["0.01", "3"]);
        assert!(b.tags.is_empty());
    }

    #[test]
    fn bad_batches_are_client_errors() {
        for body in [
            r#"{"metrics": []}"#,
            r#"{"run_id": "r", "metrics": [{"value": 1}]}"#,
            r#"{"run_id": "r", "metrics": [{"key": "a", "value": "x"}]}"#,
            r#"{"run_id": "r", "metrics": [{"key": "a", "value": 1, "step": 1.5}]}"#,
            r#"{"run_id": "r", "metrics": [{"key": "a", "value": {}}]}"#,
            r#"{"run_id": "r", "params": [{"value": "1"}]}"#,
            r#"{"run_id": "r", "metrics": 3}"#,
            r#"{"run_id": "r""#,
            r#"[]"#,
        ] {
            let err = parse(body).expect_err(body);
            assert_eq!(err.code.http_status(), 400, "{body}: {}", err.message);
        }
        let err = LogBatch::parse(&HeaderMap::new(), &Bytes::from_static(b"{}")).unwrap_err();
        assert_eq!(err.code.http_status(), 400);
    }
}
