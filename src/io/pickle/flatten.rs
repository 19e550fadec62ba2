//! Nested checkpoints made flat: every tensor and every plain value under a dotted name
//! (`model.0.weight`, `optimizer.state.0.exp_avg`, `optimizer.param_groups.0.lr`), walked with an
//! explicit stack so that a file's nesting can never overflow ours.

use std::fmt;

use super::value::{Heap, Object, TensorRef, Value};
use super::vm::Unpickled;

/// The deepest nesting walked: real checkpoints nest a handful of levels.
pub const MAX_DEPTH: usize = 200;
/// The most names produced (also stops a pickle whose shared lists multiply out).
pub const MAX_NAMES: usize = 1 << 24;

/// A nesting or size beyond any checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlattenError {
    /// Deeper than [`MAX_DEPTH`] (or a container that holds itself).
    #[error("the pickle nests deeper than {MAX_DEPTH} levels (at {0})")]
    TooDeep(String),
    /// More names than [`MAX_NAMES`].
    #[error("the pickle holds more than {MAX_NAMES} values")]
    TooMany,
}

/// A plain value of a checkpoint, shown as Python would print it.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An int.
    Int(i64),
    /// An int wider than 64 bits: its width in bytes.
    BigInt(usize),
    /// A float.
    Float(f64),
    /// A str.
    Str(String),
    /// A bytes: its length.
    Bytes(usize),
    /// An object of a class paramscope does not build: `<argparse.Namespace>`.
    Object(String),
    /// A class or function named as a value (`torch.float32`).
    Global(String),
    /// An empty container: `{}`, `[]`, `()`.
    Empty(&'static str),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::None => f.write_str("None"),
            Scalar::Bool(true) => f.write_str("True"),
            Scalar::Bool(false) => f.write_str("False"),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::BigInt(n) => write!(f, "<a {n}-byte int>"),
            Scalar::Float(x) if x.is_nan() => f.write_str("nan"),
            Scalar::Float(x) if x.is_infinite() => {
                f.write_str(if *x > 0.0 { "inf" } else { "-inf" })
            }
            Scalar::Float(x) if x.fract() == 0.0 && x.abs() < 1e16 => write!(f, "{x:.1}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Str(s) => write!(f, "{s:?}"),
            Scalar::Bytes(n) => write!(f, "<{n} bytes>"),
            Scalar::Object(class) => write!(f, "<{class}>"),
            Scalar::Global(path) => f.write_str(path),
            Scalar::Empty(text) => f.write_str(text),
        }
    }
}

impl Scalar {
    /// The value for `tree --json`: numbers, strings, booleans and null as JSON has them; the rest
    /// as their printed text.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Scalar::None => J::Null,
            Scalar::Bool(b) => J::Bool(*b),
            Scalar::Int(i) => J::from(*i),
            Scalar::Float(x) if x.is_finite() => J::from(*x),
            Scalar::Str(s) => J::String(s.clone()),
            other => J::String(other.to_string()),
        }
    }
}

/// One named thing in a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum Leaf {
    /// A tensor.
    Tensor(TensorRef),
    /// A plain value.
    Value(Scalar),
}

/// Every tensor and plain value under `unpickled.root`, by dotted name, in the pickle's order. An
/// opaque object is a value named by its class, and what its state holds is listed under it (the
/// `_parameters`, `_buffers` and `_modules` levels of a pickled `nn.Module` are skipped, so that its
/// names are its state_dict's). A root that is not a container is named `""`.
pub fn flatten(unpickled: &Unpickled) -> Result<Vec<(String, Leaf)>, FlattenError> {
    let heap = &unpickled.heap;
    let mut out = Vec::new();
    // (name, value, depth, inside an opaque object's state)
    let mut todo: Vec<(String, Value, usize, bool)> =
        vec![(String::new(), unpickled.root.clone(), 0, false)];
    let mut visits = 0usize;
    while let Some((name, value, depth, in_object)) = todo.pop() {
        visits += 1;
        if visits > MAX_NAMES || out.len() >= MAX_NAMES {
            return Err(FlattenError::TooMany);
        }
        if depth > MAX_DEPTH {
            let shown: String = name.chars().take(60).collect();
            return Err(FlattenError::TooDeep(shown));
        }
        let mut children: Vec<(String, Value, bool)> = Vec::new();
        let leaf = match &value {
            Value::None => Some(Scalar::None),
            Value::Bool(b) => Some(Scalar::Bool(*b)),
            Value::Int(i) => Some(Scalar::Int(*i)),
            Value::BigInt(b) => Some(Scalar::BigInt(b.len())),
            Value::Float(x) => Some(Scalar::Float(*x)),
            Value::Str(s) => Some(Scalar::Str(s.to_string())),
            Value::Bytes(b) => Some(Scalar::Bytes(b.len())),
            Value::Global(g) => Some(Scalar::Global(g.path.clone())),
            Value::Obj(id) => match heap.get(*id) {
                Object::Tensor(t) => {
                    out.push((name, Leaf::Tensor(t.clone())));
                    continue;
                }
                Object::Storage(_) => Some(Scalar::Object("storage".into())),
                Object::List(items) | Object::Set(items) if items.is_empty() => {
                    Some(Scalar::Empty("[]"))
                }
                Object::Tuple(items) if items.is_empty() => Some(Scalar::Empty("()")),
                Object::Dict(d) if d.entries.is_empty() => Some(Scalar::Empty("{}")),
                Object::List(items) | Object::Tuple(items) | Object::Set(items) => {
                    for (i, item) in items.iter().enumerate() {
                        children.push((i.to_string(), item.clone(), false));
                    }
                    None
                }
                Object::Dict(d) => {
                    for (k, v) in &d.entries {
                        children.push((key_text(heap, k), v.clone(), in_object));
                    }
                    None
                }
                Object::Opaque(o) => {
                    if let Some(state) = &o.state {
                        match state {
                            Value::Obj(sid) if matches!(heap.get(*sid), Object::Dict(_)) => {
                                if let Object::Dict(d) = heap.get(*sid) {
                                    for (k, v) in &d.entries {
                                        children.push((key_text(heap, k), v.clone(), true));
                                    }
                                }
                            }
                            other => children.push(("state".into(), other.clone(), false)),
                        }
                    }
                    for (k, v) in &o.items {
                        children.push((key_text(heap, k), v.clone(), false));
                    }
                    for (i, v) in o.elements.iter().enumerate() {
                        children.push((i.to_string(), v.clone(), false));
                    }
                    Some(Scalar::Object(o.class.to_string()))
                }
            },
        };
        if let Some(scalar) = leaf {
            out.push((name.clone(), Leaf::Value(scalar)));
        }
        for (key, child, skip_module_levels) in children.into_iter().rev() {
            // A pickled nn.Module keeps its parameters in `_parameters`, `_buffers` and
            // `_modules`; its state_dict names leave those levels out.
            let skip = skip_module_levels
                && matches!(key.as_str(), "_parameters" | "_buffers" | "_modules");
            let child_name = if skip {
                name.clone()
            } else if name.is_empty() {
                key
            } else {
                format!("{name}.{key}")
            };
            todo.push((child_name, child, depth + 1, skip));
        }
    }
    Ok(out)
}

/// A dict key as a name segment.
fn key_text(heap: &Heap, key: &Value) -> String {
    match key {
        Value::Str(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::None => "None".into(),
        Value::Float(x) => x.to_string(),
        Value::Global(g) => g.path.clone(),
        Value::Obj(id) => match heap.get(*id) {
            Object::Opaque(o) => format!("<{}>", o.class),
            _ => "<key>".into(),
        },
        Value::BigInt(_) | Value::Bytes(_) => "<key>".into(),
    }
}
