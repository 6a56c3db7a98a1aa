//! `POST /api/v1/drift`: two tables sent as columns (JSON), compared as `slipway drift` compares
//! files. Values are read straight into typed vectors (8 bytes a number), within caps on the
//! body, the values and the columns; one comparison runs at a time.

use std::collections::BTreeMap;
use std::fmt;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use monitor::drift::{Values, dataset_drift};
use monitor::table::{Choices, TableColumn, pair_columns};
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, de};
use serde_json::{Value, json};

use crate::ApiError;

/// The request body's limit.
pub(crate) const BODY_LIMIT: usize = 64 << 20;
/// Values per column, and columns per side, at most.
const MAX_VALUES: usize = 10_000_000;
const MAX_COLUMNS: usize = 1_000;

/// One comparison at a time: each already uses every core.
static RUNNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DriftRequest {
    reference: Vec<SentColumn>,
    current: Vec<SentColumn>,
    /// Columns declared numerical or categorical (`num`, `cat`); the rest are inferred.
    #[serde(default)]
    types: BTreeMap<String, String>,
    #[serde(default)]
    tests: BTreeMap<String, String>,
    #[serde(default)]
    thresholds: BTreeMap<String, f64>,
    #[serde(default)]
    columns: Vec<String>,
    share: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SentColumn {
    name: String,
    /// `float`, `int`, `bool` or `str`.
    dtype: String,
    /// Values, `null` for missing: all numbers, all booleans or all strings.
    values: Cells,
}

/// A column's values as sent, typed by the first one that is not null.
enum Cells {
    Nulls(usize),
    Numbers(Vec<f64>),
    Bools(Vec<Option<bool>>),
    Strings(Vec<Option<String>>),
}

/// One value, read without buffering.
enum Cell {
    Null,
    Number(f64),
    Bool(bool),
    Str(String),
}

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cell, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Cell;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, a boolean, a string or null")
            }
            fn visit_unit<E>(self) -> Result<Cell, E> {
                Ok(Cell::Null)
            }
            fn visit_none<E>(self) -> Result<Cell, E> {
                Ok(Cell::Null)
            }
            fn visit_f64<E>(self, v: f64) -> Result<Cell, E> {
                Ok(Cell::Number(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Cell, E> {
                Ok(Cell::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Cell, E> {
                Ok(Cell::Number(v as f64))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Cell, E> {
                Ok(Cell::Bool(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Cell, E> {
                Ok(Cell::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Cell, E> {
                Ok(Cell::Str(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Cells {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cells, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cells;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of values")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cells, A::Error> {
                let mut cells = Cells::Nulls(0);
                let mut n = 0usize;
                while let Some(cell) = seq.next_element::<Cell>()? {
                    n += 1;
                    if n > MAX_VALUES {
                        return Err(de::Error::custom(format!("more than {MAX_VALUES} values")));
                    }
                    cells = push(cells, cell, n - 1).map_err(de::Error::custom)?;
                }
                Ok(cells)
            }
        }
        d.deserialize_seq(V)
    }
}

/// Adds a cell; the first non-null one sets the column's kind.
fn push(cells: Cells, cell: Cell, at: usize) -> Result<Cells, String> {
    let mixed = || format!("value {at} is not of the same kind as the values before it");
    Ok(match (cells, cell) {
        (Cells::Nulls(n), Cell::Null) => Cells::Nulls(n + 1),
        (Cells::Nulls(n), Cell::Number(x)) => {
            let mut v = vec![f64::NAN; n];
            v.push(x);
            Cells::Numbers(v)
        }
        (Cells::Nulls(n), Cell::Bool(b)) => {
            let mut v = vec![None; n];
            v.push(Some(b));
            Cells::Bools(v)
        }
        (Cells::Nulls(n), Cell::Str(s)) => {
            let mut v = vec![None; n];
            v.push(Some(s));
            Cells::Strings(v)
        }
        (Cells::Numbers(mut v), Cell::Number(x)) => {
            v.push(x);
            Cells::Numbers(v)
        }
        (Cells::Numbers(mut v), Cell::Null) => {
            v.push(f64::NAN);
            Cells::Numbers(v)
        }
        (Cells::Bools(mut v), Cell::Bool(b)) => {
            v.push(Some(b));
            Cells::Bools(v)
        }
        (Cells::Bools(mut v), Cell::Null) => {
            v.push(None);
            Cells::Bools(v)
        }
        (Cells::Strings(mut v), Cell::Str(s)) => {
            v.push(Some(s));
            Cells::Strings(v)
        }
        (Cells::Strings(mut v), Cell::Null) => {
            v.push(None);
            Cells::Strings(v)
        }
        _ => return Err(mixed()),
    })
}

impl SentColumn {
    fn table_column(self, side: &str) -> Result<TableColumn, ApiError> {
        let wrong = |what: &str| {
            ApiError::invalid(format!(
                "{side} column '{}': dtype {} but the values are {what}",
                self.name, self.dtype
            ))
        };
        let (values, integer, boolean) = match (self.dtype.as_str(), self.values) {
            ("float" | "int", Cells::Numbers(v)) => {
                (Values::Numbers(v), self.dtype == "int", false)
            }
            ("float" | "int", Cells::Nulls(n)) => {
                (Values::Numbers(vec![f64::NAN; n]), self.dtype == "int", false)
            }
            ("bool", Cells::Bools(v)) => (
                Values::Numbers(
                    v.iter().map(|b| b.map_or(f64::NAN, |b| f64::from(u8::from(b)))).collect(),
                ),
                false,
                true,
            ),
            ("bool", Cells::Nulls(n)) => (Values::Numbers(vec![f64::NAN; n]), false, true),
            ("str", Cells::Strings(v)) => (Values::labels(&v), false, false),
            ("str", Cells::Nulls(n)) => (Values::labels(&vec![None::<String>; n]), false, false),
            ("bool" | "str", Cells::Numbers(_)) => return Err(wrong("numbers")),
            ("float" | "int" | "str", Cells::Bools(_)) => return Err(wrong("booleans")),
            ("float" | "int" | "bool", Cells::Strings(_)) => return Err(wrong("text")),
            (other, _) => {
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
        description = "{reference: [{name, dtype: float|int|bool|str, values}], current: [...], types?: {col: num|cat}, tests?: {col: test}, thresholds?: {col: x}, columns?, share?} (at most 64 MiB, 1,000 columns a side, 10 million values a column)"),
    responses((status = 200, description = "per-column tests, statistics and verdicts, and the table's verdict"),
              (status = 400, description = "bad input, naming the column")))]
pub(crate) async fn drift(body: Result<Bytes, BytesRejection>) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|e| ApiError::invalid(e.body_text()))?;
    let _turn = RUNNING.acquire().await.map_err(|e| ApiError::invalid(e.to_string()))?;
    let result = tokio::task::spawn_blocking(move || run(&body))
        .await
        .map_err(|e| ApiError::new(slipway_core::ErrorCode::InternalError, e.to_string()))?;
    Ok(Json(result?))
}

fn run(body: &[u8]) -> Result<Value, ApiError> {
    let req: DriftRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("the body is not a drift request: {e}")))?;
    let share = req.share.unwrap_or(0.5);
    if !(share > 0.0 && share <= 1.0) {
        return Err(ApiError::invalid("share must be above 0 and at most 1"));
    }
    if req.reference.len() > MAX_COLUMNS || req.current.len() > MAX_COLUMNS {
        return Err(ApiError::invalid(format!("at most {MAX_COLUMNS} columns a side")));
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
    let (columns, skipped) =
        pair_columns(reference, current, &choices).map_err(ApiError::invalid)?;
    let d = dataset_drift(&columns, share).map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(json!({
        "columns": d.columns,
        "skipped": skipped.iter().map(|(c, why)| json!({"column": c, "reason": why})).collect::<Vec<_>>(),
        "drifted": d.drifted,
        "share": d.share,
        "share_threshold": d.share_threshold,
        "drift": d.drift,
    }))
}
