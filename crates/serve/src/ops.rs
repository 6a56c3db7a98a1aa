//! Slipway's ONNX-ML operators, registered with tract's ONNX operator registry in place of
//! tract's own (or where tract has none): TreeEnsembleClassifier and TreeEnsembleRegressor
//! (compiled by `tree`), Scaler, and ZipMap.
//!
//! ZipMap turns a probability matrix into a sequence of maps, which tract's tensors cannot
//! hold: here it passes the matrix through, and the runtime, which knows the output was a
//! ZipMap's (and its labels), shapes the answer as the maps the client expects.

use std::sync::Arc;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use crate::tree::{Aggregate, Ensemble, Mode, PostTransform, Spec};

/// Registers Slipway's operators (replacing tract's where both exist).
pub(crate) fn register(reg: &mut OnnxOpRegister) {
    reg.insert("TreeEnsembleClassifier", tree_classifier);
    reg.insert("TreeEnsembleRegressor", tree_regressor);
    reg.insert("Scaler", scaler);
    reg.insert("LinearClassifier", linear_classifier);
    reg.insert("ZipMap", zipmap);
}

/// Class labels: integers or strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Labels {
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

impl Labels {
    pub fn len(&self) -> usize {
        match self {
            Labels::Ints(v) => v.len(),
            Labels::Strings(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn datum_type(&self) -> DatumType {
        match self {
            Labels::Ints(_) => i64::datum_type(),
            Labels::Strings(_) => String::datum_type(),
        }
    }
}

/// Reads `classlabels_int64s` or `classlabels_strings`.
pub(crate) fn read_labels(node: &NodeProto) -> TractResult<Option<Labels>> {
    let ints = node.get_attr_opt_vec::<i64>("classlabels_int64s")?;
    let strings = node.get_attr_opt_vec::<String>("classlabels_strings")?;
    Ok(match (ints, strings) {
        (Some(i), None) => Some(Labels::Ints(i)),
        (None, Some(s)) => Some(Labels::Strings(s)),
        (None, None) => None,
        (Some(_), Some(_)) => bail!("both classlabels_int64s and classlabels_strings are set"),
    })
}

fn opt_vec<T: Default>(v: Option<Vec<T>>) -> Vec<T> {
    v.unwrap_or_default()
}

/// The floats of `name`, or of `name_as_tensor` (opset 3's double-precision form).
fn floats(node: &NodeProto, name: &str) -> TractResult<Option<Vec<f32>>> {
    if let Some(v) = node.get_attr_opt_vec::<f32>(name)? {
        return Ok(Some(v));
    }
    let as_tensor = format!("{name}_as_tensor");
    if node.attribute.iter().any(|a| a.name == as_tensor) {
        bail!("attribute {as_tensor} (double precision) is not supported");
    }
    Ok(None)
}

/// The node attributes of a tree ensemble, with the leaf attributes under `prefix`
/// (`class` or `target`).
fn spec(node: &NodeProto, prefix: &str, n_outputs: usize) -> TractResult<Spec> {
    let modes: Vec<String> = node.get_attr_vec("nodes_modes")?;
    let modes = modes
        .iter()
        .map(|m| Mode::parse(m))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format_err!("{e}"))?;
    Ok(Spec {
        tree_ids: node.get_attr_vec("nodes_treeids")?,
        node_ids: node.get_attr_vec("nodes_nodeids")?,
        feature_ids: node.get_attr_vec("nodes_featureids")?,
        modes,
        values: floats(node, "nodes_values")?.unwrap_or_default(),
        true_ids: node.get_attr_vec("nodes_truenodeids")?,
        false_ids: node.get_attr_vec("nodes_falsenodeids")?,
        missing_tracks_true: opt_vec(node.get_attr_opt_vec("nodes_missing_value_tracks_true")?),
        weight_tree_ids: node.get_attr_vec(&format!("{prefix}_treeids"))?,
        weight_node_ids: node.get_attr_vec(&format!("{prefix}_nodeids"))?,
        weight_output_ids: node.get_attr_vec(&format!("{prefix}_ids"))?,
        weights: floats(node, &format!("{prefix}_weights"))?.unwrap_or_default(),
        n_outputs,
    })
}

fn post_transform(node: &NodeProto) -> TractResult<PostTransform> {
    let s: Option<String> = node.get_attr_opt("post_transform")?;
    PostTransform::parse(s.as_deref().unwrap_or("NONE")).map_err(|e| format_err!("{e}"))
}

fn tree_classifier(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let labels = read_labels(node)?.ok_or_else(|| format_err!("no class labels"))?;
    let spec = spec(node, "class", labels.len())?;
    let ensemble = Ensemble::compile(&spec).map_err(|e| format_err!("{e}"))?;
    let op = TreeClassifier {
        ensemble: Arc::new(ensemble),
        labels: Arc::new(labels),
        base_values: Arc::new(floats(node, "base_values")?.unwrap_or_default()),
        post: post_transform(node)?,
    };
    Ok((expand(op), vec![]))
}

fn tree_regressor(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let n_targets: i64 = node.get_attr_opt("n_targets")?.unwrap_or(1);
    let aggregate: Option<String> = node.get_attr_opt("aggregate_function")?;
    let aggregate =
        Aggregate::parse(aggregate.as_deref().unwrap_or("SUM")).map_err(|e| format_err!("{e}"))?;
    let spec = spec(node, "target", n_targets.max(1) as usize)?;
    let ensemble = Ensemble::compile(&spec).map_err(|e| format_err!("{e}"))?;
    let op = TreeRegressor {
        ensemble: Arc::new(ensemble),
        aggregate,
        base_values: Arc::new(floats(node, "base_values")?.unwrap_or_default()),
        post: post_transform(node)?,
    };
    Ok((expand(op), vec![]))
}

fn scaler(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let offset = floats(node, "offset")?.unwrap_or_default();
    let scale = floats(node, "scale")?.unwrap_or_default();
    Ok((expand(Scaler { offset: Arc::new(offset), scale: Arc::new(scale) }), vec![]))
}

fn linear_classifier(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let ints = node.get_attr_opt_vec::<i64>("classlabels_ints")?;
    let strings = node.get_attr_opt_vec::<String>("classlabels_strings")?;
    let labels = match (ints, strings) {
        (Some(i), None) => Labels::Ints(i),
        (None, Some(s)) => Labels::Strings(s),
        _ => {
            bail!("LinearClassifier needs exactly one of classlabels_ints and classlabels_strings")
        }
    };
    let coefficients = floats(node, "coefficients")?.unwrap_or_default();
    let intercepts = floats(node, "intercepts")?.unwrap_or_default();
    let targets = intercepts.len();
    ensure!(targets > 0, "LinearClassifier has no intercepts");
    ensure!(
        coefficients.len() % targets == 0 && !coefficients.is_empty(),
        "LinearClassifier has {} coefficients for {targets} targets",
        coefficients.len()
    );
    ensure!(
        targets == 1 || targets == labels.len(),
        "LinearClassifier has {targets} targets for {} labels",
        labels.len()
    );
    let op = LinearClassifier {
        features: coefficients.len() / targets,
        coefficients: Arc::new(coefficients),
        intercepts: Arc::new(intercepts),
        labels: Arc::new(labels),
        post: post_transform(node)?,
    };
    Ok((expand(op), vec![]))
}

fn zipmap(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let labels = read_labels(node)?.ok_or_else(|| format_err!("ZipMap has no class labels"))?;
    Ok((expand(ZipMap { labels: Arc::new(labels) }), vec![]))
}

/// Equality by identity: each op holds its compiled data behind an `Arc`.
macro_rules! eq_by_identity {
    ($t:ty, $field:ident) => {
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.$field, &other.$field)
            }
        }
        impl Eq for $t {}
    };
}

// ---------------------------------------------------------------------------------------------
// TreeEnsembleClassifier

#[derive(Debug, Clone)]
struct TreeClassifier {
    ensemble: Arc<Ensemble>,
    labels: Arc<Labels>,
    base_values: Arc<Vec<f32>>,
    post: PostTransform,
}
eq_by_identity!(TreeClassifier, ensemble);

impl TreeClassifier {
    fn width(&self) -> usize {
        self.labels.len().max(2)
    }
}

impl Expansion for TreeClassifier {
    fn name(&self) -> StaticName {
        "TreeEnsembleClassifier".into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(2)
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 2)?;
        s.equals(&outputs[0].datum_type, self.labels.datum_type())?;
        s.equals(&outputs[1].datum_type, f32::datum_type())?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&outputs[0].rank, 1)?;
        s.equals(&outputs[1].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].shape[1], self.width().to_dim())?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Op for TreeClassifier {
    fn name(&self) -> StaticName {
        "TreeEnsembleClassifier".into()
    }

    op_as_typed_op!();
}

/// The input as a row-major f32 matrix: (values, rows, columns).
fn matrix(input: &TValue) -> TractResult<(Arc<Tensor>, usize, usize)> {
    let t = input.cast_to::<f32>()?.into_owned().into_arc_tensor();
    let shape = t.shape();
    ensure!(shape.len() == 2, "expected a matrix [rows, features], got shape {shape:?}");
    let (rows, cols) = (shape[0], shape[1]);
    Ok((t, rows, cols))
}

impl EvalOp for TreeClassifier {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, rows, cols) = matrix(&inputs[0])?;
        ensure!(
            cols >= self.ensemble.n_features,
            "the model reads feature {} of rows with {cols} columns",
            self.ensemble.n_features - 1
        );
        let values = x.try_as_plain_ram()?.as_slice::<f32>()?;
        let (idx, probs) =
            self.ensemble.classify(values, cols, self.labels.len(), &self.base_values, self.post);
        let labels = match &*self.labels {
            Labels::Ints(l) => {
                let v: Vec<i64> = idx.iter().map(|i| l[*i]).collect();
                tensor1(&v)
            }
            Labels::Strings(l) => {
                let v: Vec<String> = idx.iter().map(|i| l[*i].clone()).collect();
                tensor1(&v)
            }
        };
        let probs = Tensor::from_shape(&[rows, self.width()], &probs)?;
        Ok(tvec!(labels.into_tvalue(), probs.into_tvalue()))
    }
}

impl TypedOp for TreeClassifier {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = inputs[0].shape[0].clone();
        Ok(tvec!(
            TypedFact::dt_shape(self.labels.datum_type(), [n.clone()]),
            f32::fact([n, self.width().to_dim()])
        ))
    }

    as_op!();
}

// ---------------------------------------------------------------------------------------------
// TreeEnsembleRegressor

#[derive(Debug, Clone)]
struct TreeRegressor {
    ensemble: Arc<Ensemble>,
    aggregate: Aggregate,
    base_values: Arc<Vec<f32>>,
    post: PostTransform,
}
eq_by_identity!(TreeRegressor, ensemble);

impl Expansion for TreeRegressor {
    fn name(&self) -> StaticName {
        "TreeEnsembleRegressor".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[1], self.ensemble.n_outputs.to_dim())?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Op for TreeRegressor {
    fn name(&self) -> StaticName {
        "TreeEnsembleRegressor".into()
    }

    op_as_typed_op!();
}

impl EvalOp for TreeRegressor {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, rows, cols) = matrix(&inputs[0])?;
        ensure!(
            cols >= self.ensemble.n_features,
            "the model reads feature {} of rows with {cols} columns",
            self.ensemble.n_features - 1
        );
        let out = self.ensemble.regress(
            x.try_as_plain_ram()?.as_slice::<f32>()?,
            cols,
            self.aggregate,
            &self.base_values,
            self.post,
        );
        let out = Tensor::from_shape(&[rows, self.ensemble.n_outputs], &out)?;
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for TreeRegressor {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = inputs[0].shape[0].clone();
        Ok(tvec!(f32::fact([n, self.ensemble.n_outputs.to_dim()])))
    }

    as_op!();
}

// ---------------------------------------------------------------------------------------------
// Scaler: y = (x - offset) * scale, per column (or one value for all).

#[derive(Debug, Clone)]
struct Scaler {
    offset: Arc<Vec<f32>>,
    scale: Arc<Vec<f32>>,
}
eq_by_identity!(Scaler, offset);

impl Expansion for Scaler {
    fn name(&self) -> StaticName {
        "Scaler".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Op for Scaler {
    fn name(&self) -> StaticName {
        "Scaler".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Scaler {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let mut t = inputs[0].cast_to::<f32>()?.into_owned();
        let cols = t.shape().last().copied().unwrap_or(1).max(1);
        let pick = |v: &[f32], j: usize, default: f32| match v.len() {
            0 => default,
            1 => v[0],
            _ => v.get(j).copied().unwrap_or(default),
        };
        for n in [self.offset.len(), self.scale.len()] {
            ensure!(n <= 1 || n == cols, "Scaler has {n} values for {cols} columns");
        }
        for (i, v) in t.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?.iter_mut().enumerate() {
            let j = i % cols;
            *v = (*v - pick(&self.offset, j, 0.0)) * pick(&self.scale, j, 1.0);
        }
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for Scaler {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

// ---------------------------------------------------------------------------------------------
// ZipMap: the probabilities pass through; the runtime makes the maps.

#[derive(Debug, Clone)]
struct ZipMap {
    labels: Arc<Labels>,
}
eq_by_identity!(ZipMap, labels);

impl Expansion for ZipMap {
    fn name(&self) -> StaticName {
        "ZipMap".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        _prefix: &str,
        _model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        Ok(inputs.into())
    }
}

// ---------------------------------------------------------------------------------------------
// LinearClassifier: scores = x · Wᵀ + b, labels by the best score (the sign of a single one),
// as onnxruntime computes them (tract's own cannot output string labels).

#[derive(Debug, Clone)]
struct LinearClassifier {
    features: usize,
    coefficients: Arc<Vec<f32>>,
    intercepts: Arc<Vec<f32>>,
    labels: Arc<Labels>,
    post: PostTransform,
}
eq_by_identity!(LinearClassifier, coefficients);

impl LinearClassifier {
    fn width(&self) -> usize {
        let targets = self.intercepts.len();
        if targets == 1 && self.labels.len() == 2 { 2 } else { targets }
    }
}

impl Expansion for LinearClassifier {
    fn name(&self) -> StaticName {
        "LinearClassifier".into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(2)
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 2)?;
        s.equals(&outputs[0].datum_type, self.labels.datum_type())?;
        s.equals(&outputs[1].datum_type, f32::datum_type())?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&outputs[0].rank, 1)?;
        s.equals(&outputs[1].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].shape[1], self.width().to_dim())?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Op for LinearClassifier {
    fn name(&self) -> StaticName {
        "LinearClassifier".into()
    }

    op_as_typed_op!();
}

impl EvalOp for LinearClassifier {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, rows, cols) = matrix(&inputs[0])?;
        ensure!(cols == self.features, "the model takes {} features, got {cols}", self.features);
        let x = x.try_as_plain_ram()?;
        let x = x.as_slice::<f32>()?;
        let targets = self.intercepts.len();
        let width = self.width();
        let mut probs = vec![0f32; rows * width];
        let mut best = Vec::with_capacity(rows);
        for r in 0..rows {
            let row = &x[r * cols..(r + 1) * cols];
            let out = &mut probs[r * width..(r + 1) * width];
            for (t, o) in out.iter_mut().enumerate().take(targets) {
                let w = &self.coefficients[t * cols..(t + 1) * cols];
                *o = row.iter().zip(w).map(|(a, b)| a * b).sum::<f32>() + self.intercepts[t];
            }
            if targets == 1 {
                best.push(usize::from(out[0] > 0.0));
                if width == 2 {
                    let mut s = [out[0]];
                    crate::tree::transform(&mut s, self.post);
                    out[0] = 1.0 - s[0];
                    out[1] = s[0];
                } else {
                    crate::tree::transform(&mut out[..1], self.post);
                }
                continue;
            }
            let mut m = 0;
            for t in 1..targets {
                if out[t] > out[m] {
                    m = t;
                }
            }
            best.push(m);
            crate::tree::transform(out, self.post);
        }
        let labels = match &*self.labels {
            Labels::Ints(l) => tensor1(
                &best.iter().map(|i| l.get(*i).copied().unwrap_or(*i as i64)).collect::<Vec<_>>(),
            ),
            Labels::Strings(l) => tensor1(
                &best
                    .iter()
                    .map(|i| l.get(*i).cloned().unwrap_or_else(|| i.to_string()))
                    .collect::<Vec<_>>(),
            ),
        };
        let probs = Tensor::from_shape(&[rows, width], &probs)?;
        Ok(tvec!(labels.into_tvalue(), probs.into_tvalue()))
    }
}

impl TypedOp for LinearClassifier {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = inputs[0].shape[0].clone();
        Ok(tvec!(
            TypedFact::dt_shape(self.labels.datum_type(), [n.clone()]),
            f32::fact([n, self.width().to_dim()])
        ))
    }

    as_op!();
}
