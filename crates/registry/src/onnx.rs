//! Reads what registration needs from an ONNX file — the graph's inputs and outputs and the
//! operators it uses — with a small protobuf reader of the few fields involved, so that the
//! registry needs no ONNX runtime.

use serde::{Deserialize, Serialize};

/// A model's inputs and outputs, as its ONNX graph declares them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// One input or output: a tensor of `elem_type` and `shape`, or another kind of value (ZipMap's
/// `seq(map(int64,tensor(float)))`) named in `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    /// `tensor`, or the ONNX type text of a non-tensor value.
    pub kind: String,
    /// `float32`, `int64`, `string`, …; absent for non-tensors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elem_type: Option<String>,
    /// Dimensions; `None` when the graph leaves the rank open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Vec<Dim>>,
}

/// A dimension: a fixed size, a named symbol (`N`, `batch`) or unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    Fixed(i64),
    Named(String),
    Any(Option<()>),
}

impl std::fmt::Display for TensorSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.elem_type, &self.shape) {
            (Some(t), Some(shape)) => {
                let dims: Vec<String> = shape
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed(n) => n.to_string(),
                        Dim::Named(s) => s.clone(),
                        Dim::Any(_) => "?".into(),
                    })
                    .collect();
                write!(f, "{}: {t}[{}]", self.name, dims.join(", "))
            }
            (Some(t), None) => write!(f, "{}: {t}[…]", self.name),
            _ => write!(f, "{}: {}", self.name, self.kind),
        }
    }
}

/// What a model file declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnnxInfo {
    pub signature: Signature,
    /// `(domain, op_type)` of every node, each once, in first-use order (`""` is ai.onnx).
    pub operators: Vec<(String, String)>,
    pub opsets: Vec<(String, i64)>,
}

/// Reads `bytes` as an ONNX `ModelProto`.
pub fn read(bytes: &[u8]) -> Result<OnnxInfo, String> {
    let mut graph = None;
    let mut opsets = Vec::new();
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        match (number, value) {
            (7, Field::Bytes(g)) => graph = Some(g),
            (8, Field::Bytes(op)) => {
                let mut domain = String::new();
                let mut version = 0;
                for f in Fields::new(op) {
                    match f? {
                        (1, Field::Bytes(d)) => domain = text(d)?,
                        (2, Field::Varint(v)) => version = v as i64,
                        _ => {}
                    }
                }
                opsets.push((domain, version));
            }
            _ => {}
        }
    }
    let graph = graph.ok_or("the file has no graph: it is not an ONNX model")?;
    let mut initializers = Vec::new();
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    let mut operators: Vec<(String, String)> = Vec::new();
    for field in Fields::new(graph) {
        match field? {
            (1, Field::Bytes(node)) => {
                let mut op_type = String::new();
                let mut domain = String::new();
                for f in Fields::new(node) {
                    match f? {
                        (4, Field::Bytes(t)) => op_type = text(t)?,
                        (7, Field::Bytes(d)) => domain = text(d)?,
                        _ => {}
                    }
                }
                let op = (domain, op_type);
                if !operators.contains(&op) {
                    operators.push(op);
                }
            }
            (5, Field::Bytes(tensor)) => {
                for f in Fields::new(tensor) {
                    if let (8, Field::Bytes(name)) = f? {
                        initializers.push(text(name)?);
                    }
                }
            }
            (11, Field::Bytes(v)) => inputs.push(value_info(v)?),
            (12, Field::Bytes(v)) => outputs.push(value_info(v)?),
            _ => {}
        }
    }
    // Older exporters list initializers among the inputs; they are not inputs to feed.
    inputs.retain(|i: &TensorSpec| !initializers.contains(&i.name));
    if inputs.is_empty() && outputs.is_empty() {
        return Err("the graph declares no inputs or outputs".into());
    }
    Ok(OnnxInfo { signature: Signature { inputs, outputs }, operators, opsets })
}

fn value_info(bytes: &[u8]) -> Result<TensorSpec, String> {
    let mut name = String::new();
    let mut ty = None;
    for f in Fields::new(bytes) {
        match f? {
            (1, Field::Bytes(n)) => name = text(n)?,
            (2, Field::Bytes(t)) => ty = Some(t),
            _ => {}
        }
    }
    let mut spec = TensorSpec { name, kind: "unknown".into(), elem_type: None, shape: None };
    let Some(ty) = ty else { return Ok(spec) };
    for f in Fields::new(ty) {
        if let (1, Field::Bytes(tensor)) = f? {
            spec.kind = "tensor".into();
            for f in Fields::new(tensor) {
                match f? {
                    (1, Field::Varint(t)) => spec.elem_type = Some(elem_type(t).to_string()),
                    (2, Field::Bytes(shape)) => spec.shape = Some(dims(shape)?),
                    _ => {}
                }
            }
            return Ok(spec);
        }
    }
    spec.kind = type_text(ty)?;
    Ok(spec)
}

fn dims(shape: &[u8]) -> Result<Vec<Dim>, String> {
    let mut out = Vec::new();
    for f in Fields::new(shape) {
        if let (1, Field::Bytes(dim)) = f? {
            let mut d = Dim::Any(None);
            for f in Fields::new(dim) {
                match f? {
                    (1, Field::Varint(v)) => d = Dim::Fixed(v as i64),
                    (2, Field::Bytes(p)) => d = Dim::Named(text(p)?),
                    _ => {}
                }
            }
            out.push(d);
        }
    }
    Ok(out)
}

/// ONNX's text for a `TypeProto`: `tensor(float)`, `seq(map(int64,tensor(float)))`, ….
fn type_text(ty: &[u8]) -> Result<String, String> {
    for f in Fields::new(ty) {
        match f? {
            (1, Field::Bytes(tensor)) => {
                let mut t = "undefined";
                for f in Fields::new(tensor) {
                    if let (1, Field::Varint(v)) = f? {
                        t = onnx_type_name(v);
                    }
                }
                return Ok(format!("tensor({t})"));
            }
            (4, Field::Bytes(seq)) => {
                for f in Fields::new(seq) {
                    if let (1, Field::Bytes(inner)) = f? {
                        return Ok(format!("seq({})", type_text(inner)?));
                    }
                }
                return Ok("seq".into());
            }
            (5, Field::Bytes(map)) => {
                let mut key = "undefined";
                let mut value = String::from("undefined");
                for f in Fields::new(map) {
                    match f? {
                        (1, Field::Varint(k)) => key = onnx_type_name(k),
                        (2, Field::Bytes(v)) => value = type_text(v)?,
                        _ => {}
                    }
                }
                return Ok(format!("map({key},{value})"));
            }
            _ => {}
        }
    }
    Ok("unknown".into())
}

/// Slipway's (and numpy's) name of an ONNX element type.
fn elem_type(t: u64) -> &'static str {
    match t {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        12 => "uint32",
        13 => "uint64",
        16 => "bfloat16",
        _ => "unsupported",
    }
}

/// ONNX's own name of an element type, as in its type texts.
fn onnx_type_name(t: u64) -> &'static str {
    match t {
        1 => "float",
        11 => "double",
        other => elem_type(other),
    }
}

fn text(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "a name is not UTF-8".to_string())
}

/// One protobuf field's value.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// The fields of one protobuf message, in order.
struct Fields<'a> {
    bytes: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Fields<'a> {
        Fields { bytes, pos: 0, failed: false }
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.pos)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Field<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.bytes.len() {
            return None;
        }
        let bad = |f: &mut Fields<'a>| {
            f.failed = true;
            Some(Err("the file is not a valid ONNX model (bad protobuf encoding)".to_string()))
        };
        let Some(key) = self.varint() else { return bad(self) };
        let number = (key >> 3) as u32;
        let value = match key & 7 {
            0 => match self.varint() {
                Some(v) => Field::Varint(v),
                None => return bad(self),
            },
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                if self.pos + n > self.bytes.len() {
                    return bad(self);
                }
                self.pos += n;
                Field::Fixed
            }
            2 => {
                let Some(len) = self.varint() else { return bad(self) };
                let Some(end) = self.pos.checked_add(len as usize) else { return bad(self) };
                if end > self.bytes.len() {
                    return bad(self);
                }
                let slice = &self.bytes[self.pos..end];
                self.pos = end;
                Field::Bytes(slice)
            }
            _ => return bad(self),
        };
        Some(Ok((number, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn message(number: u32, body: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(number) << 3 | 2, out);
        varint(body.len() as u64, out);
        out.extend_from_slice(body);
    }

    fn tensor_value(name: &str, elem: u64, dims: &[Option<i64>]) -> Vec<u8> {
        let mut shape = Vec::new();
        for d in dims {
            let mut dim = Vec::new();
            match d {
                Some(n) => {
                    varint(1 << 3, &mut dim);
                    varint(*n as u64, &mut dim);
                }
                None => message(2, b"N", &mut dim),
            }
            message(1, &dim, &mut shape);
        }
        let mut tensor = Vec::new();
        varint(1 << 3, &mut tensor);
        varint(elem, &mut tensor);
        message(2, &shape, &mut tensor);
        let mut ty = Vec::new();
        message(1, &tensor, &mut ty);
        let mut vi = Vec::new();
        message(1, name.as_bytes(), &mut vi);
        message(2, &ty, &mut vi);
        vi
    }

    #[test]
    fn reads_inputs_outputs_and_operators() {
        let mut node = Vec::new();
        message(4, b"TreeEnsembleClassifier", &mut node);
        message(7, b"ai.onnx.ml", &mut node);
        let mut graph = Vec::new();
        message(1, &node, &mut graph);
        message(11, &tensor_value("X", 1, &[None, Some(12)]), &mut graph);
        message(12, &tensor_value("label", 7, &[None]), &mut graph);
        let mut model = Vec::new();
        message(7, &graph, &mut model);
        let info = read(&model).unwrap();
        assert_eq!(info.signature.inputs[0].to_string(), "X: float32[N, 12]");
        assert_eq!(info.signature.outputs[0].to_string(), "label: int64[N]");
        assert_eq!(info.operators, vec![("ai.onnx.ml".into(), "TreeEnsembleClassifier".into())]);
    }

    #[test]
    fn refuses_what_is_not_onnx() {
        assert!(read(b"").is_err());
        assert!(read(b"\x0a\xff\xff\xff\xff\x0f").is_err());
        assert!(read(b"not a model at all, just text").is_err());
    }
}
