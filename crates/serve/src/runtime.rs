//! Loading an ONNX model into an optimised tract plan, once, and running it for any batch size.

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::ops::{self, Labels};

/// What a model input accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    pub name: String,
    pub dtype: ElemType,
    /// `None` for the batch dimension (or any dimension the model leaves open).
    pub shape: Vec<Option<usize>>,
}

/// The element types Slipway feeds models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    F32,
    F64,
    I64,
    I32,
}

impl ElemType {
    pub fn as_str(self) -> &'static str {
        match self {
            ElemType::F32 => "float32",
            ElemType::F64 => "float64",
            ElemType::I64 => "int64",
            ElemType::I32 => "int32",
        }
    }

    fn datum_type(self) -> DatumType {
        match self {
            ElemType::F32 => f32::datum_type(),
            ElemType::F64 => f64::datum_type(),
            ElemType::I64 => i64::datum_type(),
            ElemType::I32 => i32::datum_type(),
        }
    }
}

impl InputSpec {
    /// `float32[N, 12]`.
    pub fn describe(&self) -> String {
        let dims: Vec<String> =
            self.shape.iter().map(|d| d.map_or("N".to_string(), |n| n.to_string())).collect();
        format!("{}[{}]", self.dtype.as_str(), dims.join(", "))
    }
}

/// One output of a run.
#[derive(Debug, Clone)]
pub enum Output {
    Tensor(Arc<Tensor>),
    /// A ZipMap's output: per row, a map from label to probability.
    ZipMap {
        labels: Labels,
        probabilities: Arc<Tensor>,
    },
}

/// A loaded model: optimised once, shared by every request.
#[derive(Debug, Clone)]
pub struct Model {
    plan: Arc<TypedSimplePlan>,
    pub inputs: Vec<InputSpec>,
    /// Output names, and the labels of those a ZipMap produced.
    pub outputs: Vec<(String, Option<Labels>)>,
}

/// An error loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The inputs do not fit the model (the client's fault).
    #[error("{0}")]
    BadInput(String),
    #[error("the model failed: {0}")]
    Failed(String),
}

fn onnx() -> tract_onnx::Onnx {
    let mut framework = tract_onnx::onnx();
    ops::register(&mut framework.op_register);
    framework
}

fn elem_type(t: i32) -> Option<ElemType> {
    match t {
        1 => Some(ElemType::F32),
        11 => Some(ElemType::F64),
        7 => Some(ElemType::I64),
        6 => Some(ElemType::I32),
        _ => None,
    }
}

impl Model {
    /// Reads, checks and optimises an ONNX model. Refuses, naming it, any operator Slipway
    /// cannot run, and inputs it cannot feed.
    pub fn load(bytes: &[u8]) -> Result<Model, String> {
        let framework = onnx();
        let proto = framework
            .proto_model_for_read(&mut &bytes[..])
            .map_err(|e| format!("not a valid ONNX model: {e}"))?;
        let graph = proto.graph.as_ref().ok_or("the ONNX model has no graph")?;
        for node in &graph.node {
            if !framework.op_register.0.contains_key(&node.op_type) {
                let domain = if node.domain.is_empty() { "ai.onnx" } else { &node.domain };
                return Err(format!(
                    "unsupported ONNX operator {domain}:{} (node '{}')",
                    node.op_type, node.name
                ));
            }
        }
        let zipmaps: HashMap<&str, Labels> = graph
            .node
            .iter()
            .filter(|n| n.op_type == "ZipMap")
            .filter_map(|n| Some((n.output.first()?.as_str(), ops::read_labels(n).ok()??)))
            .collect();
        let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let mut inputs = Vec::new();
        for input in graph.input.iter().filter(|i| !initializers.contains(&i.name.as_str())) {
            inputs.push(input_spec(input)?);
        }
        let outputs: Vec<(String, Option<Labels>)> = graph
            .output
            .iter()
            .map(|o| (o.name.clone(), zipmaps.get(o.name.as_str()).cloned()))
            .collect();
        let plan = optimise(&framework, &proto, &inputs).map_err(|e| format!("{e:#}"))?;
        Ok(Model { plan, inputs, outputs })
    }

    /// Runs one batch of a single-input model.
    pub fn run_one(&self, input: Tensor) -> Result<Vec<Output>, RunError> {
        self.run(tvec![input.into()])
    }

    /// Runs one batch. `inputs` are in the order of [`Model::inputs`] and checked against them.
    pub fn run(&self, inputs: TVec<TValue>) -> Result<Vec<Output>, RunError> {
        if inputs.len() != self.inputs.len() {
            return Err(RunError::BadInput(format!(
                "the model takes {} inputs, got {}",
                self.inputs.len(),
                inputs.len()
            )));
        }
        for (spec, value) in self.inputs.iter().zip(&inputs) {
            let shape = value.shape();
            let fits = shape.len() == spec.shape.len()
                && spec.shape.iter().zip(shape).all(|(want, got)| want.is_none_or(|w| w == *got));
            if !fits || value.datum_type() != spec.dtype.datum_type() {
                return Err(RunError::BadInput(format!(
                    "input '{}' expects {}, got {:?}{shape:?}",
                    spec.name,
                    spec.describe(),
                    value.datum_type()
                )));
            }
        }
        let values = self.plan.run(inputs).map_err(|e| RunError::Failed(format!("{e:#}")))?;
        values
            .into_iter()
            .zip(&self.outputs)
            .map(|(v, (_, zipmap))| {
                // tract keeps some int64 values as symbolic dimensions: hand out plain int64.
                let t = if v.datum_type() == TDim::datum_type() {
                    v.cast_to::<i64>().map(|c| c.into_owned().into_arc_tensor())
                } else {
                    Ok(v.into_arc_tensor())
                };
                let t = t.map_err(|e| RunError::Failed(format!("{e:#}")))?;
                Ok(match zipmap {
                    Some(labels) => Output::ZipMap { labels: labels.clone(), probabilities: t },
                    None => Output::Tensor(t),
                })
            })
            .collect::<Result<Vec<_>, RunError>>()
    }
}

fn input_spec(input: &pb::ValueInfoProto) -> Result<InputSpec, String> {
    let bad = |why: &str| format!("input '{}' {why}", input.name);
    let Some(pb::type_proto::Value::TensorType(tensor)) =
        input.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(bad("is not a tensor"));
    };
    let dtype = elem_type(tensor.elem_type).ok_or_else(|| {
        bad(&format!("has element type {}, which Slipway cannot feed", tensor.elem_type))
    })?;
    let shape = tensor.shape.as_ref().ok_or_else(|| bad("has no declared shape"))?;
    let mut dims = Vec::new();
    for d in &shape.dim {
        dims.push(match &d.value {
            Some(pb::tensor_shape_proto::dimension::Value::DimValue(n)) if *n > 0 => {
                Some(*n as usize)
            }
            _ => None,
        });
    }
    if dims.iter().skip(1).any(Option::is_none) {
        return Err(bad("has an open dimension other than the batch"));
    }
    Ok(InputSpec { name: input.name.clone(), dtype, shape: dims })
}

fn optimise(
    framework: &tract_onnx::Onnx,
    proto: &pb::ModelProto,
    inputs: &[InputSpec],
) -> TractResult<Arc<TypedSimplePlan>> {
    let mut model = framework.model_for_proto_model(proto)?;
    let batch = model.symbols.sym("N");
    for (i, spec) in inputs.iter().enumerate() {
        let shape: TVec<TDim> = spec
            .shape
            .iter()
            .map(|d| d.map_or_else(|| TDim::from(batch.clone()), |n| n.to_dim()))
            .collect();
        model.set_input_fact(i, InferenceFact::dt_shape(spec.dtype.datum_type(), shape))?;
    }
    let typed = model.into_optimized()?;
    typed.into_runnable_with_options(&RunOptions::default())
}
