//! Nested checkpoints made flat: every tensor and every plain value under a dotted name
//! (`model.0.weight`, `optimizer.state.0.exp_avg`, `optimizer.param_groups.0.lr`), walked with an
//! explicit stack so that a file's nesting can never overflow ours.

use std::collections::HashMap;
use std::fmt;

use super::value::{Heap, Object, TensorRef, Value};
use super::vm::Unpickled;

/// The deepest nesting walked: real checkpoints nest a handful of levels.
pub const MAX_DEPTH: usize = 200;
/// The most names produced.
pub const MAX_NAMES: usize = 1 << 24;
/// The most bytes of names and text the listing may copy: a value is copied once per name it is
/// reached by, so one memoized 1 MiB string referenced 20,000 times would be 20 GiB.
pub const MAX_TEXT: usize = 64 << 20;

/// A nesting or size beyond any checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlattenError {
    /// Deeper than [`MAX_DEPTH`].
    #[error("the pickle nests deeper than {MAX_DEPTH} levels (at {0})")]
    TooDeep(String),
    /// More names than [`MAX_NAMES`].
    #[error("the pickle holds more than {MAX_NAMES} values")]
    TooMany,
    /// More text than [`MAX_TEXT`].
    #[error(
        "listing the pickle's values would copy more than {MAX_TEXT} bytes of names and strings (a string or name reached many times)"
    )]
    TooMuchText,
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
    /// A container met before, under the name given: listed once, so that shared (or
    /// self-containing) containers cannot multiply the names.
    Same(String),
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
            Scalar::Float(x) => f.write_str(&python_float(*x)),
            Scalar::Str(s) => write!(f, "{s:?}"),
            Scalar::Bytes(n) => write!(f, "<{n} bytes>"),
            Scalar::Object(class) => write!(f, "<{class}>"),
            Scalar::Global(path) => f.write_str(path),
            Scalar::Empty(text) => f.write_str(text),
            Scalar::Same(name) => write!(f, "<the same object as {name}>"),
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

/// A finite float as Python's `repr` writes it: the shortest digits that read back the same, in
/// scientific notation below 1e-4 and from 1e16 (`1e-08`, `0.001`, `7.0`).
fn python_float(x: f64) -> String {
    let magnitude = x.abs();
    if x != 0.0 && !(1e-4..1e16).contains(&magnitude) {
        let text = format!("{x:e}");
        let (mantissa, exponent) = text.split_once('e').expect("{:e} has an exponent");
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exponent),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    if x.fract() == 0.0 {
        format!("{x:.1}")
    } else {
        format!("{x}")
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
    let mut todo: Vec<(String, Value, usize, Place)> =
        vec![(String::new(), unpickled.root.clone(), 0, Place::Plain)];
    let mut visits = 0usize;
    let mut expanded: HashMap<usize, String> = HashMap::new();
    let mut text = 0usize;
    while let Some((name, value, depth, place)) = todo.pop() {
        visits += 1;
        if visits > MAX_NAMES || out.len() >= MAX_NAMES {
            return Err(FlattenError::TooMany);
        }
        if text > MAX_TEXT {
            return Err(FlattenError::TooMuchText);
        }
        if depth > MAX_DEPTH {
            let shown: String = name.chars().take(60).collect();
            return Err(FlattenError::TooDeep(shown));
        }
        let mut children: Vec<(String, Value, Place)> = Vec::new();
        let leaf = match &value {
            Value::Obj(id) => {
                let object = heap.get(*id);
                if let Object::Tensor(t) = object {
                    out.push((name, Leaf::Tensor((**t).clone())));
                    continue;
                }
                let empty = is_empty(heap, &value);
                // An empty `_parameters` of a pickled module says nothing.
                if empty && place == Place::ModuleLevel {
                    continue;
                }
                if !empty && expands(object) {
                    if let Some(first) = expanded.get(id) {
                        let first = if first.is_empty() { "the root" } else { first };
                        out.push((name, Leaf::Value(Scalar::Same(first.to_owned()))));
                        continue;
                    }
                    expanded.insert(*id, name.clone());
                }
                open_object(heap, object, &mut children)
            }
            plain => Some(scalar(plain)),
        };
        if let Some(scalar) = leaf {
            text = text.saturating_add(name.len() + scalar_text(&scalar));
            out.push((name.clone(), Leaf::Value(scalar)));
        }
        for (key, child, place) in children.into_iter().rev() {
            let child_name = match place {
                Place::Private => continue,
                Place::ModuleLevel => name.clone(),
                Place::Plain if name.is_empty() => key,
                Place::Plain => format!("{name}.{key}"),
            };
            text = text.saturating_add(child_name.len());
            todo.push((child_name, child, depth + 1, place));
        }
    }
    Ok(out)
}

/// The bytes of text a listed value holds.
fn scalar_text(scalar: &Scalar) -> usize {
    match scalar {
        Scalar::Str(s) | Scalar::Object(s) | Scalar::Global(s) | Scalar::Same(s) => s.len(),
        _ => 0,
    }
}

/// A value that is not in the heap.
fn scalar(value: &Value) -> Scalar {
    match value {
        Value::None => Scalar::None,
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Int(i) => Scalar::Int(*i),
        Value::BigInt(b) => Scalar::BigInt(b.len()),
        Value::Float(x) => Scalar::Float(*x),
        Value::Str(s) => Scalar::Str(s.to_string()),
        Value::Bytes(b) => Scalar::Bytes(b.len()),
        Value::Global(g) => Scalar::Global(g.path.to_string()),
        Value::Obj(_) => Scalar::Object("object".into()),
    }
}

/// What a heap object shows as a value (an empty container, an opaque object's class), with
/// what it holds pushed onto `children` to be named under it.
fn open_object(
    heap: &Heap,
    object: &Object,
    children: &mut Vec<(String, Value, Place)>,
) -> Option<Scalar> {
    match object {
        Object::Tensor(_) => None,
        Object::Storage(_) => Some(Scalar::Object("storage".into())),
        Object::List(items) | Object::Set(items) if items.is_empty() => Some(Scalar::Empty("[]")),
        Object::Tuple(items) if items.is_empty() => Some(Scalar::Empty("()")),
        Object::Dict(d) if d.entries.is_empty() => Some(Scalar::Empty("{}")),
        Object::List(items) | Object::Tuple(items) | Object::Set(items) => {
            for (i, item) in items.iter().enumerate() {
                children.push((i.to_string(), item.clone(), Place::Plain));
            }
            None
        }
        Object::Dict(d) => {
            for (k, v) in &d.entries {
                children.push((key_text(heap, k), v.clone(), Place::Plain));
            }
            None
        }
        Object::Opaque(o) => {
            match &o.state {
                Some(Value::Obj(sid)) if matches!(heap.get(*sid), Object::Dict(_)) => {
                    if let Object::Dict(d) = heap.get(*sid) {
                        let scripted = o.class.starts_with("__torch__.");
                        for (k, v) in &d.entries {
                            let key = key_text(heap, k);
                            let place = Place::in_state(&key, scripted);
                            children.push((key, v.clone(), place));
                        }
                    }
                }
                Some(other) => children.push(("state".into(), other.clone(), Place::Plain)),
                None => {}
            }
            for (k, v) in &o.items {
                children.push((key_text(heap, k), v.clone(), Place::Plain));
            }
            for (i, v) in o.elements.iter().enumerate() {
                children.push((i.to_string(), v.clone(), Place::Plain));
            }
            Some(Scalar::Object(o.class.to_string()))
        }
    }
}

/// Where a value sits, for naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Named by its key.
    Plain,
    /// `_parameters`, `_buffers` or `_modules` of a pickled `nn.Module`: its state_dict names leave
    /// these levels out, and so do ours.
    ModuleLevel,
    /// Another `_private` attribute of an opaque object (hooks, caches): not listed.
    Private,
}

impl Place {
    /// The place of the attribute `key` of an opaque object. A TorchScript module's (`scripted`)
    /// attributes are its parameters, buffers and submodules themselves, private names included
    /// (silero-vad's `_model`), as `torch.jit.load(...).state_dict()` names them.
    fn in_state(key: &str, scripted: bool) -> Place {
        match key {
            _ if scripted => Place::Plain,
            "_parameters" | "_buffers" | "_modules" => Place::ModuleLevel,
            k if k.starts_with('_') => Place::Private,
            _ => Place::Plain,
        }
    }
}

/// Whether `object` is a container whose contents are listed under it.
fn expands(object: &Object) -> bool {
    !matches!(object, Object::Tensor(_) | Object::Storage(_))
}

/// Whether `value` is an empty container.
fn is_empty(heap: &Heap, value: &Value) -> bool {
    match value {
        Value::Obj(id) => match heap.get(*id) {
            Object::List(items) | Object::Tuple(items) | Object::Set(items) => items.is_empty(),
            Object::Dict(d) => d.entries.is_empty(),
            _ => false,
        },
        _ => false,
    }
}

/// A dict key as a name segment.
fn key_text(heap: &Heap, key: &Value) -> String {
    match key {
        Value::Str(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::None => "None".into(),
        Value::Float(x) => x.to_string(),
        Value::Global(g) => g.path.to_string(),
        Value::Obj(id) => match heap.get(*id) {
            Object::Opaque(o) => format!("<{}>", o.class),
            _ => "<key>".into(),
        },
        Value::BigInt(_) | Value::Bytes(_) => "<key>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::python_float;

    #[test]
    fn floats_print_as_python_prints_them() {
        for (x, text) in [
            (1e-8, "1e-08"),
            (0.001, "0.001"),
            (7.0, "7.0"),
            (-2.5e-5, "-2.5e-05"),
            (1e16, "1e+16"),
            (0.0, "0.0"),
            (0.9, "0.9"),
        ] {
            assert_eq!(python_float(x), text);
        }
    }
}
