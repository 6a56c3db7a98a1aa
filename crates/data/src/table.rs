//! Tables: CSV and Parquet files read with Arrow. A table version's items are its file(s) (one
//! file, or a folder of parts with one schema); the manifest records the schema and the row
//! count, and a [`Profile`] of its columns is kept beside it. Tables diff by schema and by rows,
//! and sample and split by rows.

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, ArrayRef, RecordBatch, RecordBatchReader};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{ArrowError, DataType, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::profile::{DType, Profile};

const BATCH_ROWS: usize = 8192;

/// A table file's format, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Parquet,
}

impl Format {
    /// `.csv` or `.parquet`/`.pq` (any case); `None` for anything else.
    pub fn of_path(path: &str) -> Option<Format> {
        let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "parquet" | "pq" => Some(Format::Parquet),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }
}

/// One column of a table's schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// The profile's view of the type.
    pub dtype: DType,
    /// The Arrow type, as Arrow prints it (`Int64`, `Float64`, `Utf8`, ...).
    pub arrow: String,
    pub nullable: bool,
}

/// What a table version's manifest records besides its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableInfo {
    pub format: Format,
    pub columns: Vec<Column>,
    pub rows: u64,
}

/// The profile's type for an Arrow type.
pub fn dtype_of(t: &DataType) -> DType {
    match t {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => DType::Integer,
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) => {
            DType::Float
        }
        DataType::Boolean => DType::Boolean,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DType::String,
        DataType::Dictionary(_, v) if matches!(**v, DataType::Utf8 | DataType::LargeUtf8) => {
            DType::String
        }
        DataType::Date32 | DataType::Date64 => DType::Date,
        DataType::Timestamp(..) => DType::Timestamp,
        _ => DType::Other,
    }
}

fn columns_of(schema: &Schema) -> Vec<Column> {
    schema
        .fields()
        .iter()
        .map(|f| Column {
            name: f.name().clone(),
            dtype: dtype_of(f.data_type()),
            arrow: f.data_type().to_string(),
            nullable: f.is_nullable(),
        })
        .collect()
}

/// A table's record batches, from a local file or from bytes.
pub struct Batches {
    schema: SchemaRef,
    inner: Box<dyn Iterator<Item = std::result::Result<RecordBatch, ArrowError>> + Send>,
}

impl Batches {
    /// Opens a local file. CSV: a header row, types inferred from every row.
    pub fn open_file(path: &Path, format: Format) -> std::result::Result<Batches, String> {
        let file = File::open(path).map_err(|e| e.to_string())?;
        match format {
            Format::Csv => csv_batches(BufReader::new(file)),
            Format::Parquet => parquet_batches(file),
        }
    }

    /// Reads bytes (a blob).
    pub fn open_bytes(bytes: Bytes, format: Format) -> std::result::Result<Batches, String> {
        match format {
            Format::Csv => csv_batches(std::io::Cursor::new(bytes)),
            Format::Parquet => parquet_batches(bytes),
        }
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl Iterator for Batches {
    type Item = std::result::Result<RecordBatch, String>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|r| r.map_err(|e| arrow_reason(&e)))
    }
}

fn arrow_reason(e: &ArrowError) -> String {
    match e {
        ArrowError::ParseError(m) | ArrowError::CsvError(m) => m.clone(),
        ArrowError::ExternalError(inner) => inner.to_string(),
        other => other.to_string(),
    }
}

fn csv_batches<R: Read + Seek + Send + 'static>(
    mut reader: R,
) -> std::result::Result<Batches, String> {
    let format = arrow_csv::reader::Format::default().with_header(true);
    let (schema, _) = format
        .infer_schema(&mut reader, None)
        .map_err(|e| format!("not a readable CSV table: {}", arrow_reason(&e)))?;
    if schema.fields().is_empty() {
        return Err("not a readable CSV table: no header row".into());
    }
    reader.rewind().map_err(|e| e.to_string())?;
    let schema = Arc::new(schema);
    let csv = arrow_csv::ReaderBuilder::new(schema.clone())
        .with_format(format)
        .with_batch_size(BATCH_ROWS)
        .build(reader)
        .map_err(|e| arrow_reason(&e))?;
    Ok(Batches { schema, inner: Box::new(csv) })
}

fn parquet_batches<T: parquet::file::reader::ChunkReader + 'static>(
    source: T,
) -> std::result::Result<Batches, String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(source)
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let reader = builder
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let schema = reader.schema();
    Ok(Batches { schema, inner: Box::new(reader) })
}

/// Reads a whole table part: its schema, rows and profile. Errors are messages for the item.
pub fn inspect(
    batches: Batches,
    format: Format,
) -> std::result::Result<(TableInfo, Profile), String> {
    let schema = batches.schema();
    let columns = columns_of(&schema);
    let mut profiler = Profiler::new(&columns);
    for batch in batches {
        profiler.push(&batch?)?;
    }
    let rows = profiler.profile.rows;
    Ok((TableInfo { format, columns, rows }, profiler.profile))
}

/// Combines the parts of one table: same format, same columns (names and types).
pub fn combine(
    parts: Vec<(String, TableInfo, Profile)>,
) -> std::result::Result<(TableInfo, Profile), (String, String)> {
    let mut iter = parts.into_iter();
    let Some((first_path, mut info, mut profile)) = iter.next() else {
        return Err((".".into(), "a table needs at least one file".into()));
    };
    for (path, part, part_profile) in iter {
        if part.format != info.format {
            return Err((
                path,
                format!(
                    "is {}, but {} is {}",
                    part.format.as_str(),
                    first_path,
                    info.format.as_str()
                ),
            ));
        }
        let names =
            |c: &[Column]| c.iter().map(|c| format!("{} {}", c.name, c.arrow)).collect::<Vec<_>>();
        if names(&part.columns) != names(&info.columns) {
            return Err((
                path,
                format!(
                    "has the columns [{}], but {} has [{}]; every part of a table has one schema",
                    names(&part.columns).join(", "),
                    first_path,
                    names(&info.columns).join(", ")
                ),
            ));
        }
        info.rows += part.rows;
        for (a, b) in info.columns.iter_mut().zip(&part.columns) {
            a.nullable |= b.nullable;
        }
        profile.merge(&part_profile).map_err(|e| (path.clone(), e.to_string()))?;
    }
    Ok((info, profile))
}

/// Builds a [`Profile`] batch by batch.
pub struct Profiler {
    pub profile: Profile,
}

impl Profiler {
    pub fn new(columns: &[Column]) -> Profiler {
        let cols: Vec<(String, DType)> =
            columns.iter().map(|c| (c.name.clone(), c.dtype)).collect();
        Profiler { profile: Profile::new(&cols) }
    }

    pub fn push(&mut self, batch: &RecordBatch) -> std::result::Result<(), String> {
        self.profile.add_rows(batch.num_rows() as u64);
        let options = FormatOptions::default();
        let mut text = String::new();
        for (column, profile) in batch.columns().iter().zip(self.profile.columns.iter_mut()) {
            let numbers = if profile.dtype.is_numeric() { Some(as_f64(column)?) } else { None };
            let keys = if profile.dtype.counts_values() {
                Some(
                    ArrayFormatter::try_new(column.as_ref(), &options)
                        .map_err(|e| arrow_reason(&e))?,
                )
            } else {
                None
            };
            for row in 0..column.len() {
                if column.is_null(row) {
                    profile.push_null();
                    continue;
                }
                let key = match &keys {
                    Some(f) => {
                        text.clear();
                        use std::fmt::Write;
                        let _ = write!(text, "{}", f.value(row));
                        Some(text.as_str())
                    }
                    None => None,
                };
                match &numbers {
                    Some(n) => profile.push_number(n.value(row), key),
                    None => profile.push_text(key.unwrap_or_default()),
                }
            }
        }
        Ok(())
    }
}

/// A numeric column as Float64 (dates as days, timestamps in their unit, since the epoch).
pub fn as_f64(column: &ArrayRef) -> std::result::Result<arrow_array::Float64Array, String> {
    let cast = |a: &ArrayRef, t: &DataType| arrow_cast::cast(a, t).map_err(|e| arrow_reason(&e));
    let numeric = match column.data_type() {
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => {
            cast(&cast(column, &DataType::Int64)?, &DataType::Float64)?
        }
        _ => cast(column, &DataType::Float64)?,
    };
    Ok(numeric.as_primitive::<Float64Type>().clone())
}

/// Canonical per-row hashes over the named columns (in the given order): cells in Arrow's text
/// form, nulls distinct from every value. Equal rows of a CSV and a Parquet file hash alike.
pub fn row_hashes(batches: Batches, columns: &[String]) -> std::result::Result<Vec<u128>, String> {
    let schema = batches.schema();
    let idx: Vec<usize> = columns
        .iter()
        .map(|c| schema.index_of(c).map_err(|_| format!("no column '{c}'")))
        .collect::<std::result::Result<_, _>>()?;
    let mut out = Vec::new();
    for batch in batches {
        let batch = batch?;
        out.extend(batch_row_hashes(&batch, &idx)?);
    }
    Ok(out)
}

pub(crate) fn batch_row_hashes(
    batch: &RecordBatch,
    idx: &[usize],
) -> std::result::Result<Vec<u128>, String> {
    let options = FormatOptions::default();
    let formatters: Vec<(&ArrayRef, ArrayFormatter)> = idx
        .iter()
        .map(|&i| {
            let a = batch.column(i);
            ArrayFormatter::try_new(a.as_ref(), &options)
                .map(|f| (a, f))
                .map_err(|e| arrow_reason(&e))
        })
        .collect::<std::result::Result<_, _>>()?;
    let mut text = String::new();
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut h = blake3::Hasher::new();
        for (array, f) in &formatters {
            if array.is_null(row) {
                h.update(&[0]);
            } else {
                text.clear();
                use std::fmt::Write;
                let _ = write!(text, "{}", f.value(row));
                h.update(&[1]);
                h.update(&(text.len() as u64).to_le_bytes());
                h.update(text.as_bytes());
            }
        }
        let bytes = h.finalize();
        out.push(u128::from_le_bytes(bytes.as_bytes()[..16].try_into().unwrap_or_default()));
    }
    Ok(out)
}

/// The cells of some rows in text form (`None` for null), for previews and diff examples.
pub fn rows_text(
    batch: &RecordBatch,
    rows: &[usize],
) -> std::result::Result<Vec<Vec<Option<String>>>, String> {
    let options = FormatOptions::default();
    let formatters: Vec<ArrayFormatter> = batch
        .columns()
        .iter()
        .map(|a| ArrayFormatter::try_new(a.as_ref(), &options).map_err(|e| arrow_reason(&e)))
        .collect::<std::result::Result<_, _>>()?;
    Ok(rows
        .iter()
        .map(|&r| {
            batch
                .columns()
                .iter()
                .zip(&formatters)
                .map(|(a, f)| (!a.is_null(r)).then(|| f.value(r).to_string()))
                .collect()
        })
        .collect())
}

/// What changed between two versions of a table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableDiff {
    pub columns_added: Vec<Column>,
    pub columns_removed: Vec<Column>,
    /// Columns whose kind of type changed (e.g. integer to string): (before, after).
    pub columns_changed: Vec<(Column, Column)>,
    /// The columns rows were compared on: those both versions have, by name.
    pub compared_on: Vec<String>,
    pub rows_before: u64,
    pub rows_after: u64,
    /// Rows (as multisets over `compared_on`) only in the newer version, only in the older, and
    /// in both. A changed row counts once as removed and once as added.
    pub rows_added: u64,
    pub rows_removed: u64,
    pub rows_unchanged: u64,
    /// Up to [`TableDiff::EXAMPLES`] added and removed rows, cells in `compared_on` order.
    pub added_examples: Vec<Vec<Option<String>>>,
    pub removed_examples: Vec<Vec<Option<String>>>,
}

impl TableDiff {
    pub const EXAMPLES: usize = 10;
}

/// Compares two tables given as functions that open their batches (called twice each: once to
/// hash the rows, once to collect examples).
pub fn diff_tables(
    before: &TableInfo,
    after: &TableInfo,
    open_before: &dyn Fn() -> std::result::Result<Vec<Batches>, String>,
    open_after: &dyn Fn() -> std::result::Result<Vec<Batches>, String>,
) -> std::result::Result<TableDiff, String> {
    let mut d =
        TableDiff { rows_before: before.rows, rows_after: after.rows, ..TableDiff::default() };
    for c in &after.columns {
        match before.columns.iter().find(|b| b.name == c.name) {
            None => d.columns_added.push(c.clone()),
            // Utf8 and LargeUtf8, Int32 and Int64: the same values; only a change of kind counts.
            Some(b) if b.dtype != c.dtype => d.columns_changed.push((b.clone(), c.clone())),
            Some(_) => {}
        }
    }
    for c in &before.columns {
        if !after.columns.iter().any(|a| a.name == c.name) {
            d.columns_removed.push(c.clone());
        }
    }
    d.compared_on = after
        .columns
        .iter()
        .filter(|c| before.columns.iter().any(|b| b.name == c.name))
        .map(|c| c.name.clone())
        .collect();
    let hashes = |parts: Vec<Batches>| -> std::result::Result<Vec<u128>, String> {
        let mut all = Vec::new();
        for part in parts {
            all.extend(row_hashes(part, &d.compared_on)?);
        }
        Ok(all)
    };
    let mut a = hashes(open_before()?)?;
    let mut b = hashes(open_after()?)?;
    a.sort_unstable();
    b.sort_unstable();
    // Multiset difference: what each side has beyond the other, with multiplicity.
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => {
                d.rows_unchanged += 1;
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x < y => {
                only_a.push(*x);
                i += 1;
            }
            (Some(x), None) => {
                only_a.push(*x);
                i += 1;
            }
            (_, Some(y)) => {
                only_b.push(*y);
                j += 1;
            }
            (None, None) => break,
        }
    }
    d.rows_removed = only_a.len() as u64;
    d.rows_added = only_b.len() as u64;
    d.removed_examples = examples(open_before()?, &d.compared_on, only_a)?;
    d.added_examples = examples(open_after()?, &d.compared_on, only_b)?;
    Ok(d)
}

/// The first rows (in file order) whose hashes are in `wanted` (a multiset, sorted).
fn examples(
    parts: Vec<Batches>,
    columns: &[String],
    mut wanted: Vec<u128>,
) -> std::result::Result<Vec<Vec<Option<String>>>, String> {
    let mut out = Vec::new();
    for part in parts {
        let schema = part.schema();
        let idx: Vec<usize> = columns.iter().filter_map(|c| schema.index_of(c).ok()).collect();
        for batch in part {
            if out.len() >= TableDiff::EXAMPLES || wanted.is_empty() {
                return Ok(out);
            }
            let batch = batch?;
            let projected = batch.project(&idx).map_err(|e| arrow_reason(&e))?;
            let hashes = batch_row_hashes(&batch, &idx)?;
            let mut rows = Vec::new();
            for (r, h) in hashes.iter().enumerate() {
                if rows.len() + out.len() >= TableDiff::EXAMPLES {
                    break;
                }
                if let Ok(pos) = wanted.binary_search(h) {
                    wanted.remove(pos);
                    rows.push(r);
                }
            }
            out.extend(rows_text(&projected, &rows)?);
        }
    }
    Ok(out)
}

/// Every batch of some parts, concatenated into one batch.
pub fn read_all(parts: Vec<Batches>) -> std::result::Result<RecordBatch, String> {
    let mut schema = None;
    let mut batches = Vec::new();
    for part in parts {
        schema.get_or_insert_with(|| part.schema());
        for batch in part {
            batches.push(batch?);
        }
    }
    let schema = schema.ok_or("a table needs at least one file")?;
    arrow_select::concat::concat_batches(&schema, &batches).map_err(|e| arrow_reason(&e))
}

/// The chosen rows of `batch`, in their order.
pub fn take_rows(batch: &RecordBatch, rows: &[usize]) -> std::result::Result<RecordBatch, String> {
    let indices = arrow_array::UInt64Array::from_iter_values(rows.iter().map(|&r| r as u64));
    arrow_select::take::take_record_batch(batch, &indices).map_err(|e| arrow_reason(&e))
}

/// Encodes a batch as a file of `format` (Parquet with Snappy; CSV with a header row). The same
/// rows give the same bytes.
pub fn encode(batch: &RecordBatch, format: Format) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    match format {
        Format::Parquet => {
            let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
            let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))
                .map_err(|e| Error::invalid(format!("cannot write Parquet: {e}")))?;
            writer
                .write(batch)
                .map_err(|e| Error::invalid(format!("cannot write Parquet: {e}")))?;
            writer.close().map_err(|e| Error::invalid(format!("cannot write Parquet: {e}")))?;
        }
        Format::Csv => {
            let mut writer = arrow_csv::WriterBuilder::new().with_header(true).build(&mut out);
            writer.write(batch).map_err(|e| Error::invalid(format!("cannot write CSV: {e}")))?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str) -> Batches {
        Batches::open_bytes(Bytes::from(text.to_string()), Format::Csv).unwrap()
    }

    #[test]
    fn csv_types_rows_and_profile() {
        let (info, profile) = inspect(
            csv("clip,activity,hip_velocity,fallen\nc1,fall,-3.5,true\nc2,walk,0.25,false\nc3,walk,,false\n"),
            Format::Csv,
        )
        .unwrap();
        assert_eq!(info.rows, 3);
        let types: Vec<(&str, DType)> =
            info.columns.iter().map(|c| (c.name.as_str(), c.dtype)).collect();
        assert_eq!(
            types,
            [
                ("clip", DType::String),
                ("activity", DType::String),
                ("hip_velocity", DType::Float),
                ("fallen", DType::Boolean)
            ]
        );
        let v = profile.column("hip_velocity").unwrap();
        assert_eq!((v.count, v.nulls), (2, 1));
        assert_eq!(v.numeric.as_ref().unwrap().mean(), Some(-1.625));
        let a = profile.column("activity").unwrap();
        assert_eq!(a.frequent.as_ref().unwrap().top(1), [("walk", 2)]);
        assert_eq!(a.distinct_count(), 2);
    }

    #[test]
    fn a_csv_that_does_not_parse_names_the_line() {
        let open =
            |t: &'static str| Batches::open_bytes(Bytes::from_static(t.as_bytes()), Format::Csv);
        let e = open("a,b\n1,2\n3\n").and_then(|b| inspect(b, Format::Csv)).unwrap_err();
        assert!(e.contains("line 3"), "{e}");
        // Types are inferred from every row: a late non-number makes the column a string.
        let (info, _) = inspect(open("a\n1\n2\nx\n").unwrap(), Format::Csv).unwrap();
        assert_eq!(info.columns[0].dtype, DType::String);
        assert!(Batches::open_bytes(Bytes::from_static(b"PAR1garbage"), Format::Parquet).is_err());
    }

    #[test]
    fn parquet_round_trips_and_rows_hash_alike_across_formats() {
        let batch = read_all(vec![csv("id,x,label\n1,0.5,a\n2,1.5,b\n3,,a\n")]).unwrap();
        let bytes = encode(&batch, Format::Parquet).unwrap();
        assert_eq!(bytes, encode(&batch, Format::Parquet).unwrap(), "deterministic");
        let cols = vec!["id".to_string(), "x".into(), "label".into()];
        let from_parquet =
            row_hashes(Batches::open_bytes(bytes.clone().into(), Format::Parquet).unwrap(), &cols)
                .unwrap();
        let from_csv = row_hashes(csv("id,x,label\n1,0.5,a\n2,1.5,b\n3,,a\n"), &cols).unwrap();
        assert_eq!(from_parquet, from_csv);
        let (info, _) =
            inspect(Batches::open_bytes(bytes.into(), Format::Parquet).unwrap(), Format::Parquet)
                .unwrap();
        assert_eq!(info.rows, 3);
    }

    #[test]
    fn table_diffs_name_schema_and_row_changes() {
        let before_text = "id,x,label\n1,0.5,a\n2,1.5,b\n3,2.5,a\n3,2.5,a\n";
        let after_text = "id,x,label,extra\n1,0.5,a,q\n2,9.0,b,q\n3,2.5,a,q\n4,1.0,c,q\n";
        let info = |t: &str| inspect(csv(t), Format::Csv).unwrap().0;
        let d = diff_tables(
            &info(before_text),
            &info(after_text),
            &|| Ok(vec![csv(before_text)]),
            &|| Ok(vec![csv(after_text)]),
        )
        .unwrap();
        assert_eq!(d.columns_added.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["extra"]);
        assert_eq!(d.compared_on, ["id", "x", "label"]);
        assert_eq!((d.rows_added, d.rows_removed, d.rows_unchanged), (2, 2, 2));
        assert_eq!(d.added_examples[0], [Some("2".into()), Some("9.0".into()), Some("b".into())]);
        assert_eq!(d.removed_examples.len(), 2, "the changed row and one of the duplicates");
    }
}
