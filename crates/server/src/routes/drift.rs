//! `POST /api/v1/drift`: two tables sent as columns (JSON), compared as `slipway drift` compares
//! files.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use monitor::drift::{Values, dataset_drift};
use monitor::table::{Choices, TableColumn, pair_columns};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DriftRequest {
    reference: Vec<SentColumn>,
    current: Vec<SentColumn>,
    /// Columns declared numerical or categorical (`num`, `cat`); the rest are inferred.
    #[serde(default)]
    types: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    tests: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    thresholds: std::collections::BTreeMap<String, f64>,
    #[serde(default)]
    columns: Vec<String>,
    share: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SentColumn {
    name: String,
    /// `float`, `int`, `bool` or `str`.
    dtype: String,
    /// Values, `null` for missing.
    values: Vec<Value>,
}

impl SentColumn {
    fn table_column(self, side: &str) -> Result<TableColumn, ApiError> {
        let bad = |i: usize, v: &Value| {
            ApiError::invalid(format!(
                "{side} column '{}': value {i} ({v}) is not a {}",
                self.name, self.dtype
            ))
        };
        let (values, integer, boolean) = match self.dtype.as_str() {
            "float" | "int" | "bool" => {
                let mut out = Vec::with_capacity(self.values.len());
                for (i, v) in self.values.iter().enumerate() {
                    out.push(match v {
                        Value::Null => f64::NAN,
                        Value::Bool(b) if self.dtype == "bool" => f64::from(u8::from(*b)),
                        Value::Number(n) if self.dtype != "bool" => {
                            n.as_f64().ok_or_else(|| bad(i, v))?
                        }
                        other => return Err(bad(i, other)),
                    });
                }
                (Values::Numbers(out), self.dtype == "int", self.dtype == "bool")
            }
            "str" => {
                let mut out = Vec::with_capacity(self.values.len());
                for (i, v) in self.values.iter().enumerate() {
                    out.push(match v {
                        Value::Null => None,
                        Value::String(s) => Some(s.as_str()),
                        other => return Err(bad(i, other)),
                    });
                }
                (Values::labels(&out), false, false)
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "{side} column '{}': dtype '{other}' is not float, int, bool or str",
                    self.name
                )));
            }
        };
        Ok(TableColumn { name: self.name, values, integer, boolean })
    }
}

#[utoipa::path(post, path = "/api/v1/drift", tag = "monitoring",
    request_body(content = String, content_type = "application/json",
        description = "{reference: [{name, dtype: float|int|bool|str, values}], current: [...], types?: {col: num|cat}, tests?: {col: test}, thresholds?: {col: x}, columns?, share?}"),
    responses((status = 200, description = "per-column tests, statistics and verdicts, and the table's verdict"),
              (status = 400, description = "bad input, naming the column")))]
pub(crate) async fn drift(
    body: Result<Json<DriftRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(req) = body.map_err(|e| ApiError::invalid(e.body_text()))?;
    let share = req.share.unwrap_or(0.5);
    if !(share > 0.0 && share <= 1.0) {
        return Err(ApiError::invalid("share must be above 0 and at most 1"));
    }
    let mut choices = Choices { columns: req.columns, ..Choices::default() };
    for (column, kind) in req.types {
        match kind.as_str() {
            "num" => choices.numerical.push(column),
            "cat" => choices.categorical.push(column),
            other => {
                return Err(ApiError::invalid(format!(
                    "types: '{column}' is '{other}'; give num or cat"
                )));
            }
        }
    }
    choices.tests = req.tests.into_iter().collect();
    for (column, t) in req.thresholds {
        if !t.is_finite() {
            return Err(ApiError::invalid(format!(
                "thresholds: '{column}' is not a finite number"
            )));
        }
        choices.thresholds.push((column, t));
    }
    let reference =
        req.reference.into_iter().map(|c| c.table_column("reference")).collect::<Result<_, _>>()?;
    let current =
        req.current.into_iter().map(|c| c.table_column("current")).collect::<Result<_, _>>()?;
    let result = tokio::task::spawn_blocking(move || {
        let (columns, skipped) = pair_columns(reference, current, &choices)?;
        let d = dataset_drift(&columns, share).map_err(|e| e.to_string())?;
        Ok::<_, String>((d, skipped))
    })
    .await
    .map_err(|e| ApiError::new(slipway_core::ErrorCode::InternalError, e.to_string()))?;
    let (d, skipped) = result.map_err(ApiError::invalid)?;
    Ok(Json(json!({
        "columns": d.columns,
        "skipped": skipped.iter().map(|(c, why)| json!({"column": c, "reason": why})).collect::<Vec<_>>(),
        "drifted": d.drifted,
        "share": d.share,
        "share_threshold": d.share_threshold,
        "drift": d.drift,
    })))
}
