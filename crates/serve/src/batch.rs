//! Batch prediction: a table streamed through a model, chunk by chunk, on every core, into a
//! Parquet file — in constant memory whatever the input's size.
//!
//! The caller reads (record batches from a CSV or Parquet file or a dataset version); one
//! thread per core converts a chunk's feature columns to the model's input and runs it; the
//! writer puts the chunks back in input order. The queues between them are bounded, so at most
//! a few chunks per thread are ever held.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, Float32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::{Labels, Model, Output, Tensor};

/// How to run a batch prediction.
#[derive(Debug, Clone, Default)]
pub struct BatchOptions {
    /// The feature columns, in the model's order; default: every numeric column not in `keep`.
    pub features: Option<Vec<String>>,
    /// Input columns copied to the output beside the predictions (ids, timestamps).
    pub keep: Vec<String>,
    /// Threads running the model; 0: one per core.
    pub threads: usize,
}

/// What a batch prediction did.
#[derive(Debug, Clone)]
pub struct BatchSummary {
    pub rows: u64,
    pub features: Vec<String>,
    /// The output file's columns.
    pub columns: Vec<String>,
}

type Chunk = (u64, RecordBatch);

/// Predicts every row of `batches` (whose schema is `schema`) and writes the kept columns and
/// one column per model output value (`label`, `probabilities_0`, …) to `out` as Parquet.
/// `progress` is called with the rows done so far. Errors are messages for the user.
pub fn predict<I, W>(
    model: Arc<Model>,
    schema: SchemaRef,
    batches: I,
    out: W,
    options: &BatchOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<BatchSummary, String>
where
    I: Iterator<Item = Result<RecordBatch, String>> + Send,
    W: Write + Send,
{
    let plan = Plan::new(&model, &schema, options)?;
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let (todo_tx, todo_rx) = sync_channel::<Chunk>(threads * 2);
    let todo_rx = Arc::new(Mutex::new(todo_rx));
    let (done_tx, done_rx) = sync_channel::<Result<Chunk, String>>(threads * 2);
    let plan = Arc::new(plan);
    std::thread::scope(|scope| -> Result<BatchSummary, String> {
        for _ in 0..threads {
            let (rx, tx, plan, model) = (todo_rx.clone(), done_tx.clone(), plan.clone(), &model);
            scope.spawn(move || work(model, &plan, &rx, &tx));
        }
        // Only the workers hold the queues' other ends: when they stop, the reader stops too.
        drop(done_tx);
        drop(todo_rx);
        let reader = scope.spawn(move || read(batches, todo_tx));
        let written = write(&plan, done_rx, out, progress);
        // A writer that stopped early drops its receiver: the reader and workers then stop too.
        let read = reader.join().map_err(|_| "the reader thread failed".to_string())?;
        let (rows, columns) = written?;
        read?;
        Ok(BatchSummary { rows, features: plan.features.clone(), columns })
    })
}

fn read<I>(batches: I, tx: SyncSender<Chunk>) -> Result<(), String>
where
    I: Iterator<Item = Result<RecordBatch, String>>,
{
    let mut seq = 0u64;
    for batch in batches {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        if tx.send((seq, batch)).is_err() {
            return Ok(()); // the writer stopped: its error is the one to report
        }
        seq += 1;
    }
    Ok(())
}

fn work(
    model: &Model,
    plan: &Plan,
    rx: &Mutex<Receiver<Chunk>>,
    tx: &SyncSender<Result<Chunk, String>>,
) {
    loop {
        let next = rx.lock().map(|r| r.recv());
        let Ok(Ok((seq, batch))) = next else { return };
        let answer = plan.run(model, &batch).map(|out| (seq, out));
        let failed = answer.is_err();
        if tx.send(answer).is_err() || failed {
            return;
        }
    }
}

fn write<W: Write + Send>(
    plan: &Plan,
    rx: Receiver<Result<Chunk, String>>,
    out: W,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(u64, Vec<String>), String> {
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut writer: Option<ArrowWriter<W>> = None;
    let mut out = Some(out);
    let mut pending: BTreeMap<u64, RecordBatch> = BTreeMap::new();
    let mut next = 0u64;
    let mut rows = 0u64;
    let mut schema = plan.empty_schema();
    for answer in rx {
        let (seq, batch) = answer?;
        pending.insert(seq, batch);
        while let Some(batch) = pending.remove(&next) {
            if writer.is_none() {
                schema = batch.schema();
                let sink = out.take().expect("the sink is taken once");
                writer = Some(
                    ArrowWriter::try_new(sink, batch.schema(), Some(props.clone()))
                        .map_err(|e| format!("cannot write Parquet: {e}"))?,
                );
            }
            let w = writer.as_mut().expect("the writer exists");
            w.write(&batch).map_err(|e| format!("cannot write Parquet: {e}"))?;
            // Keep the writer's buffered row group small: memory stays flat.
            if w.in_progress_size() > 32 << 20 {
                w.flush().map_err(|e| format!("cannot write Parquet: {e}"))?;
            }
            rows += batch.num_rows() as u64;
            progress(rows);
            next += 1;
        }
    }
    if !pending.is_empty() {
        return Err("a chunk of the input was lost (a prediction thread failed)".into());
    }
    let w = match writer {
        Some(w) => w,
        None => {
            // No rows: still a valid file, with the kept columns.
            let sink = out.take().expect("the sink is unused");
            ArrowWriter::try_new(sink, schema.clone(), Some(props))
                .map_err(|e| format!("cannot write Parquet: {e}"))?
        }
    };
    let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
    w.close().map_err(|e| format!("cannot write Parquet: {e}"))?;
    Ok((rows, columns))
}

/// Which columns feed the model, which are kept, and how outputs become columns.
struct Plan {
    features: Vec<String>,
    feature_idx: Vec<usize>,
    keep_idx: Vec<usize>,
    keep_fields: Vec<Field>,
    width: usize,
    input_type: crate::ElemType,
    outputs: Vec<(String, Option<Labels>)>,
}

fn numeric(t: &DataType) -> bool {
    matches!(t, DataType::Float32 | DataType::Float64 | DataType::Int32 | DataType::Int64)
}

impl Plan {
    fn new(model: &Model, schema: &Schema, options: &BatchOptions) -> Result<Plan, String> {
        let [input] = model.inputs.as_slice() else {
            return Err(format!(
                "batch prediction feeds models with one input (a matrix of features); this one \
                 takes {}",
                model.inputs.len()
            ));
        };
        if input.shape.len() != 2 {
            return Err(format!(
                "the model's input {} is not a matrix of rows and features",
                input.describe()
            ));
        }
        if !matches!(input.dtype, crate::ElemType::F32 | crate::ElemType::F64) {
            return Err(format!("the model's input {} is not floating point", input.describe()));
        }
        let index = |name: &str| -> Result<usize, String> {
            schema.index_of(name).map_err(|_| {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                format!("the input has no column '{name}' (it has: {})", names.join(", "))
            })
        };
        let mut keep_idx = Vec::new();
        for k in &options.keep {
            keep_idx.push(index(k)?);
        }
        let features: Vec<String> = match &options.features {
            Some(f) => f.clone(),
            None => schema
                .fields()
                .iter()
                .filter(|f| numeric(f.data_type()) && !options.keep.contains(f.name()))
                .map(|f| f.name().clone())
                .collect(),
        };
        let mut feature_idx = Vec::new();
        for f in &features {
            let i = index(f)?;
            let t = schema.field(i).data_type();
            if !numeric(t) {
                return Err(format!(
                    "column '{f}' is {t}, not a number; a feature must be numeric"
                ));
            }
            feature_idx.push(i);
        }
        if let Some(want) = input.shape[1]
            && want != features.len()
        {
            return Err(format!(
                "the model takes {want} features ({}); {} {} chosen ({}): name them with --columns",
                input.describe(),
                features.len(),
                if options.features.is_some() { "columns are" } else { "numeric columns are" },
                features.join(", ")
            ));
        }
        if features.is_empty() {
            return Err("the input has no numeric columns to feed the model".into());
        }
        let keep_fields = keep_idx.iter().map(|&i| schema.field(i).clone()).collect();
        Ok(Plan {
            width: features.len(),
            features,
            feature_idx,
            keep_idx,
            keep_fields,
            input_type: input.dtype,
            outputs: model.outputs.clone(),
        })
    }

    /// The chunk's features as the model's input matrix; a null is NaN.
    fn input(&self, batch: &RecordBatch) -> Result<Tensor, String> {
        let n = batch.num_rows();
        let mut flat = vec![0f32; n * self.width];
        for (j, &c) in self.feature_idx.iter().enumerate() {
            let col = batch.column(c);
            let mut put = |i: usize, v: f32| flat[i * self.width + j] = v;
            match col.data_type() {
                DataType::Float32 => {
                    let a = col.as_primitive::<Float32Type>();
                    for i in 0..n {
                        put(i, if a.is_null(i) { f32::NAN } else { a.value(i) });
                    }
                }
                DataType::Float64 => {
                    let a = col.as_primitive::<Float64Type>();
                    for i in 0..n {
                        put(i, if a.is_null(i) { f32::NAN } else { a.value(i) as f32 });
                    }
                }
                DataType::Int64 => {
                    let a = col.as_primitive::<Int64Type>();
                    for i in 0..n {
                        put(i, if a.is_null(i) { f32::NAN } else { a.value(i) as f32 });
                    }
                }
                DataType::Int32 => {
                    let a = col.as_primitive::<Int32Type>();
                    for i in 0..n {
                        put(i, if a.is_null(i) { f32::NAN } else { a.value(i) as f32 });
                    }
                }
                other => {
                    return Err(format!(
                        "column '{}' changed type to {other} within the input",
                        self.features[j]
                    ));
                }
            }
        }
        let tensor = Tensor::from_shape(&[n, self.width], &flat).map_err(|e| e.to_string())?;
        match self.input_type {
            crate::ElemType::F64 => {
                tensor.cast_to::<f64>().map(|t| t.into_owned()).map_err(|e| e.to_string())
            }
            _ => Ok(tensor),
        }
    }

    fn run(&self, model: &Model, batch: &RecordBatch) -> Result<RecordBatch, String> {
        let outputs = model.run_one(self.input(batch)?).map_err(|e| e.to_string())?;
        let n = batch.num_rows();
        let mut fields: Vec<Field> = self.keep_fields.clone();
        let mut columns: Vec<ArrayRef> =
            self.keep_idx.iter().map(|&i| batch.column(i).clone()).collect();
        for ((name, _), out) in self.outputs.iter().zip(&outputs) {
            for (col_name, array) in output_columns(name, out, n)? {
                fields.push(Field::new(col_name, array.data_type().clone(), true));
                columns.push(array);
            }
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| e.to_string())
    }

    /// The schema of an output with no rows (its prediction columns' widths are unknown).
    fn empty_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(self.keep_fields.clone()))
    }
}

/// An output as columns: a vector is one column; a matrix is one column per class
/// (`probabilities_0`, or `probabilities_<label>` for a ZipMap's labels).
fn output_columns(name: &str, out: &Output, n: usize) -> Result<Vec<(String, ArrayRef)>, String> {
    let (tensor, labels) = match out {
        Output::Tensor(t) => (t, None),
        Output::ZipMap { labels, probabilities } => (probabilities, Some(labels)),
    };
    let shape = tensor.shape();
    if shape.first() != Some(&n) {
        return Err(format!("the model's output '{name}' has shape {shape:?} for {n} rows"));
    }
    let width: usize = shape.iter().skip(1).product();
    let plain = tensor.try_as_plain_ram().map_err(|e| e.to_string())?;
    let column_name = |k: usize| -> String {
        if shape.len() == 1 || width == 1 {
            return name.to_string();
        }
        match labels {
            Some(Labels::Ints(l)) => format!("{name}_{}", l[k]),
            Some(Labels::Strings(l)) => format!("{name}_{}", l[k]),
            None => format!("{name}_{k}"),
        }
    };
    let mut cols: Vec<(String, ArrayRef)> = Vec::with_capacity(width);
    // Dispatch on the type (a failed `as_slice` builds an error, with a backtrace when
    // RUST_BACKTRACE is set).
    let bad = |e: tract_onnx::prelude::TractError| e.to_string();
    match tensor.datum_type() {
        crate::DatumType::F32 => {
            let s = plain.as_slice::<f32>().map_err(bad)?;
            for k in 0..width {
                let v: Float32Array = (0..n).map(|i| s[i * width + k]).collect::<Vec<_>>().into();
                cols.push((column_name(k), Arc::new(v)));
            }
        }
        crate::DatumType::I64 => {
            let s = plain.as_slice::<i64>().map_err(bad)?;
            for k in 0..width {
                let v: Int64Array = (0..n).map(|i| s[i * width + k]).collect::<Vec<_>>().into();
                cols.push((column_name(k), Arc::new(v)));
            }
        }
        crate::DatumType::F64 => {
            let s = plain.as_slice::<f64>().map_err(bad)?;
            for k in 0..width {
                let v: Float32Array =
                    (0..n).map(|i| s[i * width + k] as f32).collect::<Vec<_>>().into();
                cols.push((column_name(k), Arc::new(v)));
            }
        }
        crate::DatumType::String => {
            let s = plain.as_slice::<String>().map_err(bad)?;
            for k in 0..width {
                let v: StringArray = (0..n).map(|i| Some(s[i * width + k].as_str())).collect();
                cols.push((column_name(k), Arc::new(v)));
            }
        }
        other => {
            return Err(format!(
                "the model's output '{name}' is of a type batch prediction cannot write ({other:?})"
            ));
        }
    }
    Ok(cols)
}
