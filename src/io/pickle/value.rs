//! The values the pickle machine builds: scalars held inline, containers and torch objects in a heap
//! addressed by index, so that a memo hit is a cheap copy and Python's aliasing (a list filled after
//! it was memoized) is kept.

use std::collections::HashMap;
use std::rc::Rc;

use super::dtype::TorchDtype;
use super::globals::Global;

/// An index into the [`Heap`].
pub type ObjId = usize;

/// One pickle value.
#[derive(Clone, Debug)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An int that fits in 64 bits.
    Int(i64),
    /// A longer int: its little-endian two's complement bytes, as LONG1/LONG4 store them.
    BigInt(Rc<[u8]>),
    /// A float.
    Float(f64),
    /// A str.
    Str(Rc<str>),
    /// A bytes or bytearray.
    Bytes(Rc<[u8]>),
    /// A class or function named by GLOBAL / STACK_GLOBAL (never imported).
    Global(Rc<Global>),
    /// A container or object in the heap.
    Obj(ObjId),
}

impl Value {
    /// The int, when this is one.
    #[must_use]
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }
}

/// A dict's key, for the values Python checkpoints use as keys (others are never merged).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    None,
    Int(i64),
    Str(Rc<str>),
}

impl Key {
    /// Whether `value` is this key, as [`Key::of`] would make it.
    fn is(&self, value: &Value) -> bool {
        match (self, value) {
            (Key::None, Value::None) => true,
            (Key::Int(i), Value::Int(j)) => i == j,
            (Key::Int(i), Value::Bool(b)) => *i == i64::from(*b),
            (Key::Str(a), Value::Str(b)) => a == b,
            _ => false,
        }
    }

    fn of(value: &Value) -> Option<Key> {
        match value {
            Value::None => Some(Key::None),
            Value::Bool(b) => Some(Key::Int(i64::from(*b))),
            Value::Int(i) => Some(Key::Int(*i)),
            Value::Str(s) => Some(Key::Str(Rc::clone(s))),
            _ => None,
        }
    }
}

/// A dict in insertion order, where setting a key again replaces its value as Python does.
#[derive(Debug, Default)]
pub struct Dict {
    /// `(key, value)` in insertion order.
    pub entries: Vec<(Value, Value)>,
    /// Where each key is, once the dict outgrows [`SCAN`] entries: most dicts of a pickle are an
    /// object's few fields, found faster by a scan than by hashing (and boxed, so that the
    /// many small ones stay small).
    #[expect(
        clippy::box_collection,
        reason = "a box is one word where a map is six: every dict of a pickle carries this field"
    )]
    index: Option<Box<HashMap<Key, usize>>>,
}

/// Dicts up to this many entries find a key by scanning.
const SCAN: usize = 16;

impl Dict {
    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: Value, value: Value) {
        if let Some(k) = Key::of(&key) {
            if let Some(i) = self.position(&k) {
                self.entries[i].1 = value;
                return;
            }
            if let Some(index) = &mut self.index {
                index.insert(k, self.entries.len());
            }
        }
        self.entries.push((key, value));
        if self.entries.len() == SCAN + 1 {
            self.index = Some(Box::new(
                (self.entries.iter().enumerate())
                    .filter_map(|(i, (k, _))| Some((Key::of(k)?, i)))
                    .collect(),
            ));
        }
    }

    /// The entry holding `key`. Keys that are not [`Key`]s are never merged, as before any index.
    fn position(&self, key: &Key) -> Option<usize> {
        if let Some(index) = &self.index {
            return index.get(key).copied();
        }
        self.entries.iter().position(|(k, _)| key.is(k))
    }
}

/// A storage named by a persistent id: its bytes live elsewhere in the file under `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    /// The key of its bytes (`data/<key>` in a zip, the key list in a legacy file).
    pub key: String,
    /// The element type it counts in.
    pub dtype: TorchDtype,
    /// Its length in elements, as the pickle states it.
    pub numel: u64,
    /// A legacy storage view: `(view key, offset, length)` in elements of the root storage.
    pub view: Option<(String, u64, u64)>,
}

/// A tensor as `_rebuild_tensor_v2` would make it: a view of a storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    /// The storage it views.
    pub storage: Rc<Storage>,
    /// Its element type (the storage's, or `_rebuild_tensor_v3`'s dtype argument).
    pub dtype: TorchDtype,
    /// The offset of its first element, in elements.
    pub offset: u64,
    /// Its shape.
    pub shape: Vec<u64>,
    /// Its strides, in elements.
    pub strides: Vec<u64>,
}

/// An object built by a global that is not on the allow-list: named, never constructed. The
/// pickle's later opcodes may still fill it (BUILD state, SETITEMS, APPENDS), and what they put
/// in is kept so that tensors inside (a pickled `nn.Module`, a TorchScript module) can be listed.
#[derive(Debug)]
pub struct Opaque {
    /// `module.name` of the global.
    pub class: Rc<str>,
    /// The state BUILD gave it.
    pub state: Option<Value>,
    /// Items SETITEM(S) put in it.
    pub items: Vec<(Value, Value)>,
    /// Elements APPEND(S) put in it.
    pub elements: Vec<Value>,
}

/// Everything the heap holds.
#[derive(Debug)]
pub enum Object {
    /// A list.
    List(Vec<Value>),
    /// A tuple (also a `torch.Size`).
    Tuple(Vec<Value>),
    /// A dict or OrderedDict.
    Dict(Dict),
    /// A set or frozenset.
    Set(Vec<Value>),
    /// A storage.
    Storage(Rc<Storage>),
    /// A tensor (boxed, as the opaque objects: the heap's many small containers stay small).
    Tensor(Box<TensorRef>),
    /// An object of a class paramscope does not build.
    Opaque(Box<Opaque>),
}

/// The objects of one pickle.
#[derive(Debug, Default)]
pub struct Heap {
    objects: Vec<Object>,
}

impl Heap {
    /// A heap with room for `n` objects before it first grows.
    #[must_use]
    pub fn with_capacity(n: usize) -> Self {
        Heap {
            objects: Vec::with_capacity(n),
        }
    }

    /// Adds `object` and returns its value.
    pub fn add(&mut self, object: Object) -> Value {
        self.objects.push(object);
        Value::Obj(self.objects.len() - 1)
    }

    /// How many objects there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The object `id`.
    #[must_use]
    pub fn get(&self, id: ObjId) -> &Object {
        &self.objects[id]
    }

    /// The object `id`, to fill.
    pub fn get_mut(&mut self, id: ObjId) -> &mut Object {
        &mut self.objects[id]
    }

    /// The elements of a tuple or list value.
    #[must_use]
    pub fn sequence(&self, value: &Value) -> Option<&[Value]> {
        match value {
            Value::Obj(id) => match self.get(*id) {
                Object::Tuple(items) | Object::List(items) => Some(items),
                _ => None,
            },
            _ => None,
        }
    }
}

impl Heap {
    /// Every object, in creation order.
    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.objects.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::{Dict, SCAN, Value};

    #[test]
    fn a_key_set_again_replaces_its_value_below_and_above_the_scan_size() {
        let mut dict = Dict::default();
        let key = |i: usize| Value::Str(format!("k{i}").into());
        for i in 0..3 * SCAN {
            dict.insert(key(i), Value::Int(i as i64));
        }
        dict.insert(key(1), Value::Int(-1));
        dict.insert(key(2 * SCAN), Value::Int(-2));
        // True is 1 as a key, as in Python.
        dict.insert(Value::Int(1), Value::Int(7));
        dict.insert(Value::Bool(true), Value::Int(8));
        assert_eq!(dict.entries.len(), 3 * SCAN + 1);
        let value = |i: usize| dict.entries[i].1.as_int();
        assert_eq!((value(1), value(2 * SCAN)), (Some(-1), Some(-2)));
        assert_eq!(value(3 * SCAN), Some(8));
    }
}
