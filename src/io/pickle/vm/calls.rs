//! What the machine does when a pickle calls something: objects built only for the globals on
//! the allow-list (torch's tensors, storages and containers), every other call an opaque object
//! named by its global (which was recorded when the pickle named it).

use std::rc::Rc;

use smallvec::SmallVec;

use super::Machine;
use crate::io::pickle::Error;
use crate::io::pickle::dtype::TorchDtype;
use crate::io::pickle::globals::Kind;
use crate::io::pickle::value::{Dict, Object, Opaque, Storage, TensorRef, Value};

/// The most dimensions a tensor may have.
const MAX_DIMS: usize = 64;

impl Machine<'_> {
    /// BUILD: an opaque object keeps its state; torch's own objects ignore theirs (an
    /// OrderedDict's `_metadata`, a tensor's hooks).
    pub(super) fn build(&mut self, state: Value) -> Result<(), Error> {
        let target = self.top()?.clone();
        if let Value::Obj(id) = target
            && let Object::Opaque(o) = self.heap.get_mut(id)
        {
            o.state = Some(state);
        }
        Ok(())
    }

    fn opaque(&mut self, class: Rc<str>) -> Result<Value, Error> {
        self.charge(size_of::<Opaque>())?;
        self.add(Object::Opaque(Box::new(Opaque {
            class,
            state: None,
            items: Vec::new(),
            elements: Vec::new(),
        })))
    }

    /// What calling `callee(*args)` gives, built only for allowed globals. `depth` is 1 inside
    /// `_rebuild_from_type_v2`, which may not nest.
    pub(super) fn call(&mut self, callee: &Value, args: &Value, depth: u8) -> Result<Value, Error> {
        let Value::Global(global) = callee else {
            return self.opaque("<a call of a non-class>".into());
        };
        // Calls take a few arguments: copied without an allocation of their own.
        let args: Option<SmallVec<[Value; 4]>> = self
            .heap
            .sequence(args)
            .map(|a| a.iter().cloned().collect());
        let args = args.ok_or_else(|| self.malformed("call arguments are not a tuple"))?;
        self.count_copies(args.len())?;
        match global.kind {
            Kind::Opaque | Kind::StorageClass(_) | Kind::Dtype(_) => {
                self.opaque(Rc::clone(&global.path))
            }
            Kind::Dict => self.add(Object::Dict(Dict::default())),
            Kind::List | Kind::Tuple | Kind::Set => {
                let items = match args.first() {
                    None => Vec::new(),
                    Some(v) => self
                        .heap
                        .sequence(v)
                        .map(<[Value]>::to_vec)
                        .ok_or_else(|| self.malformed("a container built from a non-sequence"))?,
                };
                self.count_copies(items.len())?;
                self.add(match global.kind {
                    Kind::List => Object::List(items),
                    Kind::Tuple => Object::Tuple(items),
                    _ => Object::Set(items),
                })
            }
            Kind::ByteArray => Ok(match args.first() {
                Some(Value::Bytes(b)) => Value::Bytes(Rc::clone(b)),
                _ => Value::Bytes(Rc::from(&[][..])),
            }),
            Kind::Encode => match args.first() {
                Some(Value::Str(s)) => Ok(Value::Bytes(latin1(s).into())),
                _ => Err(self.malformed("_codecs.encode wants a string")),
            },
            Kind::Device => Ok(args.first().cloned().unwrap_or(Value::None)),
            Kind::RebuildTensor => self.rebuild_tensor(&args, None),
            Kind::RebuildTensorV3 => {
                let dtype = match args.get(6) {
                    Some(Value::Global(g)) => match g.kind {
                        Kind::Dtype(d) => d,
                        _ => return Err(self.malformed("_rebuild_tensor_v3 without a dtype")),
                    },
                    _ => return Err(self.malformed("_rebuild_tensor_v3 without a dtype")),
                };
                self.rebuild_tensor(&args, Some(dtype))
            }
            Kind::RebuildParameter => args
                .into_iter()
                .next()
                .ok_or_else(|| self.malformed("_rebuild_parameter without a tensor")),
            Kind::RebuildFromType => {
                if depth > 0 {
                    return Err(self.malformed("_rebuild_from_type_v2 nested in itself"));
                }
                let (Some(func), Some(inner)) = (args.first(), args.get(2)) else {
                    return Err(
                        self.malformed("_rebuild_from_type_v2 wants (func, type, args, state)")
                    );
                };
                self.call(func, inner, depth + 1)
            }
        }
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, …)`.
    fn rebuild_tensor(
        &mut self,
        args: &[Value],
        dtype: Option<TorchDtype>,
    ) -> Result<Value, Error> {
        let bad = || "a tensor rebuild wants (storage, offset, size, stride, …)";
        let storage = match args.first() {
            Some(Value::Obj(id)) => match self.heap.get(*id) {
                Object::Storage(s) => Rc::clone(s),
                _ => return Err(self.malformed(bad())),
            },
            _ => return Err(self.malformed(bad())),
        };
        let offset = args.get(1).and_then(Value::as_int);
        let shape = args.get(2).and_then(|v| self.dims(v));
        let strides = args.get(3).and_then(|v| self.dims(v));
        let (Some(offset), Some(shape), Some(strides)) = (offset, shape, strides) else {
            return Err(self.malformed(bad()));
        };
        let offset =
            u64::try_from(offset).map_err(|_| self.malformed("a negative storage offset"))?;
        if shape.len() != strides.len() {
            return Err(self.malformed("a tensor's shape and strides differ in length"));
        }
        let tensor = TensorRef {
            dtype: dtype.unwrap_or(storage.dtype),
            storage,
            offset,
            shape,
            strides,
        };
        self.charge(size_of::<TensorRef>())?;
        self.add(Object::Tensor(Box::new(tensor)))
    }

    /// A tuple of non-negative ints (a shape or strides).
    fn dims(&self, value: &Value) -> Option<Vec<u64>> {
        let items = self.heap.sequence(value)?;
        if items.len() > MAX_DIMS {
            return None;
        }
        items
            .iter()
            .map(|v| v.as_int().and_then(|i| u64::try_from(i).ok()))
            .collect()
    }

    /// BINPERSID: `('storage', storage_class, key, location, numel[, view])`, the form both torch
    /// layouts use. The same key always gives the same storage.
    pub(super) fn persistent(&mut self, pid: &Value) -> Result<Value, Error> {
        let bad = "a persistent id that is not ('storage', class, key, location, numel)";
        let items = self
            .heap
            .sequence(pid)
            .ok_or_else(|| self.malformed(bad))?
            .to_vec();
        let [kind, class, key, _location, numel, rest @ ..] = items.as_slice() else {
            return Err(self.malformed(bad));
        };
        let is_storage = matches!(kind, Value::Str(s) if &**s == "storage");
        let dtype = match class {
            Value::Global(g) => match g.kind {
                Kind::StorageClass(d) => Some(d),
                _ => None,
            },
            _ => None,
        };
        let key = match key {
            Value::Str(s) => s.to_string(),
            Value::Int(i) => i.to_string(),
            _ => return Err(self.malformed(bad)),
        };
        let numel = numel.as_int().and_then(|n| u64::try_from(n).ok());
        let (true, Some(dtype), Some(numel)) = (is_storage, dtype, numel) else {
            return Err(self.malformed(bad));
        };
        let view = match rest.first() {
            None | Some(Value::None) => None,
            Some(v) => {
                let parts = self.heap.sequence(v).unwrap_or(&[]);
                match parts {
                    [Value::Str(k), offset, size] => {
                        let offset = offset.as_int().and_then(|n| u64::try_from(n).ok());
                        let size = size.as_int().and_then(|n| u64::try_from(n).ok());
                        match (offset, size) {
                            (Some(o), Some(s)) => Some((k.to_string(), o, s)),
                            _ => return Err(self.malformed("a bad storage view")),
                        }
                    }
                    _ => return Err(self.malformed("a bad storage view")),
                }
            }
        };
        let storage = Storage {
            key: key.clone(),
            dtype,
            numel,
            view,
        };
        let storage = match self.storages.get(&key) {
            Some(known) if **known == storage => Rc::clone(known),
            Some(_) => return Err(self.malformed("one storage key with two different storages")),
            None => {
                let rc = Rc::new(storage);
                self.storages.insert(key, Rc::clone(&rc));
                rc
            }
        };
        self.add(Object::Storage(storage))
    }
}

/// `_codecs.encode(s, 'latin1')`: protocol 2's way of storing bytes, each char one byte.
fn latin1(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}
