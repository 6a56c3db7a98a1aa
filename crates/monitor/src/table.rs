//! Tables read for drift: a CSV or Parquet file's columns as numbers or labels, each with the
//! type Evidently would infer for it from the data.

use std::collections::HashMap;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use slipway_data::profile::DType;
use slipway_data::table::{Batches, Format, as_f64, dtype_of};

use crate::drift::{Column, Kind, LabelCoder, MISSING, Test, Values};

/// One column of a table.
#[derive(Debug, Clone)]
pub struct TableColumn {
    pub name: String,
    pub values: Values,
    /// Whole numbers (an integer type).
    pub integer: bool,
    pub boolean: bool,
}

/// What a column's type is taken to be when it is not declared, from the data as Evidently
/// infers it: floats are numerical; integers categorical up to 10 distinct values; booleans
/// categorical; labels categorical unless more than half the non-missing values are distinct
/// (free text, which drift tests do not take: declare such a column categorical to test it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inferred {
    Kind(Kind),
    Text,
}

impl TableColumn {
    pub fn infer(&self) -> Inferred {
        match &self.values {
            Values::Numbers(_) if self.boolean => Inferred::Kind(Kind::Categorical),
            Values::Numbers(v) if self.integer => {
                let mut distinct: Vec<u64> =
                    v.iter().filter(|x| !x.is_nan()).map(|x| x.to_bits()).collect();
                distinct.sort_unstable();
                distinct.dedup();
                Inferred::Kind(if distinct.len() <= 10 {
                    Kind::Categorical
                } else {
                    Kind::Numerical
                })
            }
            Values::Numbers(_) => Inferred::Kind(Kind::Numerical),
            Values::Labels { codes, .. } => {
                let present: Vec<u32> = codes.iter().copied().filter(|c| *c != MISSING).collect();
                let mut distinct = present.clone();
                distinct.sort_unstable();
                distinct.dedup();
                if distinct.len() as f64 > 0.5 * present.len() as f64 {
                    Inferred::Text
                } else {
                    Inferred::Kind(Kind::Categorical)
                }
            }
        }
    }
}

/// Reads every column of a CSV or Parquet file (by its suffix). Date and time columns, and
/// types that are neither numbers, booleans nor text, are left out and named in the second
/// list.
pub fn read(path: &Path) -> Result<(Vec<TableColumn>, Vec<String>), String> {
    let shown = path.display().to_string();
    let format = Format::of_path(&path.to_string_lossy())
        .ok_or_else(|| format!("{shown}: not a .csv or .parquet file"))?;
    read_parts(&[path.to_path_buf()], format, &shown)
}

/// Reads a table stored as parts of one schema (a dataset version's files, in order); errors
/// are prefixed with `label`.
pub fn read_parts(
    parts: &[std::path::PathBuf],
    format: Format,
    label: &str,
) -> Result<(Vec<TableColumn>, Vec<String>), String> {
    let opened = parts
        .iter()
        .map(|p| Batches::open_file(p, format).map_err(|e| format!("{label}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(first) = opened.first() else { return Err(format!("{label}: no parts")) };
    let schema = first.schema();
    if opened.iter().any(|b| b.schema().fields() != schema.fields()) {
        return Err(format!("{label}: its parts do not share one schema"));
    }
    read_batches(&schema, opened.into_iter().flatten(), label)
}

/// Reads record batches of one schema (a dataset version's parts, or logged predictions).
pub fn read_batches(
    schema: &arrow_schema::Schema,
    batches: impl IntoIterator<Item = Result<arrow_array::RecordBatch, String>>,
    label: &str,
) -> Result<(Vec<TableColumn>, Vec<String>), String> {
    let mut builders: Vec<Option<Builder>> =
        schema.fields().iter().map(|f| Builder::for_type(f.data_type())).collect();
    for batch in batches {
        let batch = batch.map_err(|e| format!("{label}: {e}"))?;
        if batch.schema().fields() != schema.fields() {
            return Err(format!("{label}: its parts do not share one schema"));
        }
        for (column, builder) in batch.columns().iter().zip(builders.iter_mut()) {
            if let Some(b) = builder {
                b.push(column).map_err(|e| format!("{label}: {e}"))?;
            }
        }
    }
    let mut columns = Vec::new();
    let mut left_out = Vec::new();
    for (field, builder) in schema.fields().iter().zip(builders) {
        match builder {
            Some(b) => columns.push(b.finish(field.name())),
            None => left_out.push(format!("{} ({})", field.name(), field.data_type())),
        }
    }
    Ok((columns, left_out))
}

enum Builder {
    Numbers { values: Vec<f64>, integer: bool, boolean: bool },
    Labels(LabelCoder),
}

impl Builder {
    /// By the data stage's view of the type: numbers, booleans and text are compared; dates,
    /// timestamps and anything else are left out.
    fn for_type(t: &DataType) -> Option<Builder> {
        let numbers = |integer, boolean| Builder::Numbers { values: Vec::new(), integer, boolean };
        Some(match dtype_of(t) {
            DType::Float => numbers(false, false),
            DType::Integer => numbers(true, false),
            DType::Boolean => numbers(false, true),
            DType::String => Builder::Labels(LabelCoder::default()),
            DType::Date | DType::Timestamp | DType::Other => return None,
        })
    }

    fn push(&mut self, column: &ArrayRef) -> Result<(), String> {
        match self {
            Builder::Numbers { values, boolean, .. } => {
                if *boolean {
                    let b = column.as_boolean();
                    values.extend((0..b.len()).map(|i| {
                        if b.is_null(i) { f64::NAN } else { f64::from(u8::from(b.value(i))) }
                    }));
                } else {
                    let cast = as_f64(column)?;
                    values.extend(
                        (0..cast.len())
                            .map(|i| if cast.is_null(i) { f64::NAN } else { cast.value(i) }),
                    );
                }
            }
            Builder::Labels(coder) => {
                let text = arrow_cast_utf8(column)?;
                let strings = text.as_string::<i32>();
                for i in 0..strings.len() {
                    coder.push((!strings.is_null(i)).then(|| strings.value(i)));
                }
            }
        }
        Ok(())
    }

    fn finish(self, name: &str) -> TableColumn {
        match self {
            Builder::Numbers { values, integer, boolean } => TableColumn {
                name: name.to_string(),
                values: Values::Numbers(values),
                integer,
                boolean,
            },
            Builder::Labels(coder) => TableColumn {
                name: name.to_string(),
                values: coder.finish(),
                integer: false,
                boolean: false,
            },
        }
    }
}

fn arrow_cast_utf8(a: &ArrayRef) -> Result<ArrayRef, String> {
    arrow_cast::cast(a, &DataType::Utf8).map_err(|e| e.to_string())
}

/// Columns left out, each with the reason.
pub type Skipped = Vec<(String, String)>;

/// What to compare and how: a subset of columns, declared types, tests and thresholds by column.
#[derive(Debug, Clone, Default)]
pub struct Choices {
    pub columns: Vec<String>,
    pub numerical: Vec<String>,
    pub categorical: Vec<String>,
    pub tests: Vec<(String, String)>,
    pub thresholds: Vec<(String, f64)>,
}

/// The columns to compare, paired by name, each with its type (declared, else inferred from the
/// current side), and the columns left out with the reason. Errors name the column at fault.
pub fn pair_columns(
    reference: Vec<TableColumn>,
    current: Vec<TableColumn>,
    choices: &Choices,
) -> Result<(Vec<Column>, Skipped), String> {
    let known: std::collections::HashSet<&str> = current.iter().map(|c| c.name.as_str()).collect();
    let named = choices
        .columns
        .iter()
        .chain(&choices.numerical)
        .chain(&choices.categorical)
        .chain(choices.tests.iter().map(|(c, _)| c))
        .chain(choices.thresholds.iter().map(|(c, _)| c));
    for name in named {
        if !known.contains(&name.as_str()) {
            let mut names: Vec<&str> = current.iter().map(|c| c.name.as_str()).take(50).collect();
            if current.len() > 50 {
                names.push("…");
            }
            return Err(format!(
                "no column '{name}' in the current table (it has: {})",
                names.join(", ")
            ));
        }
    }
    let only: std::collections::HashSet<&String> = choices.columns.iter().collect();
    let numerical: std::collections::HashSet<&String> = choices.numerical.iter().collect();
    let categorical: std::collections::HashSet<&String> = choices.categorical.iter().collect();
    let tests: HashMap<&String, &String> = choices.tests.iter().map(|(c, t)| (c, t)).collect();
    let thresholds: HashMap<&String, f64> =
        choices.thresholds.iter().map(|(c, t)| (c, *t)).collect();
    let mut reference: HashMap<String, TableColumn> =
        reference.into_iter().map(|c| (c.name.clone(), c)).collect();
    let (mut columns, mut skipped) = (Vec::new(), Vec::new());
    for cur in current {
        if !only.is_empty() && !only.contains(&cur.name) {
            continue;
        }
        let Some(refc) = reference.remove(&cur.name) else {
            skipped.push((cur.name.clone(), "not in the reference".to_string()));
            continue;
        };
        let kind = if numerical.contains(&cur.name) {
            Kind::Numerical
        } else if categorical.contains(&cur.name) {
            Kind::Categorical
        } else {
            match cur.infer() {
                Inferred::Kind(k) => k,
                Inferred::Text => {
                    skipped.push((
                        cur.name.clone(),
                        "free text (declare it categorical to compare it)".to_string(),
                    ));
                    continue;
                }
            }
        };
        let labels = |v: &Values| matches!(v, Values::Labels { .. });
        if kind == Kind::Numerical && (labels(&cur.values) || labels(&refc.values)) {
            return Err(format!(
                "column '{}' holds text: it cannot be compared as numerical",
                cur.name
            ));
        }
        if labels(&cur.values) != labels(&refc.values) {
            return Err(format!(
                "column '{}' holds numbers on one side and text on the other",
                cur.name
            ));
        }
        let test = match tests.get(&cur.name) {
            Some(t) => Some(Test::parse(t).ok_or_else(|| {
                format!(
                    "column '{}': no test named '{t}' (ks, chisquare, z, wasserstein, jensenshannon, psi, kl_div)",
                    cur.name
                )
            })?),
            None => None,
        };
        let threshold = thresholds.get(&cur.name).copied();
        columns.push(Column {
            integer: cur.integer && refc.integer,
            name: cur.name,
            kind,
            reference: refc.values,
            current: cur.values,
            test,
            threshold,
        });
    }
    if columns.is_empty() {
        return Err("no column to compare".to_string());
    }
    Ok((columns, skipped))
}
