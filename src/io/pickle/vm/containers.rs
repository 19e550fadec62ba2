//! Filling containers: the items above a MARK (or the top one or two) moved from the stack into
//! the list, set, dict or opaque object below them, and a dict built from key, value pairs.

use super::Machine;
use crate::io::pickle::value::{Dict, Object, Value};
use crate::io::pickle::{Error, Problem};

impl Machine<'_> {
    /// key, value, key, value… as a dict.
    pub(super) fn pairs(&self, items: Vec<Value>) -> Result<Dict, Error> {
        if !items.len().is_multiple_of(2) {
            return Err(self.malformed("a dict from an odd number of values"));
        }
        let mut dict = Dict::default();
        let mut items = items.into_iter();
        while let (Some(k), Some(v)) = (items.next(), items.next()) {
            dict.insert(k, v);
        }
        Ok(dict)
    }

    /// The object right below stack position `from` (where a container's items start).
    fn target(&self, from: usize, what: &str) -> Result<usize, Error> {
        match from.checked_sub(1).map(|i| &self.stack[i]) {
            None => Err(self.fail(Problem::StackUnderflow)),
            Some(Value::Obj(id)) => Ok(*id),
            Some(_) => Err(self.malformed(what)),
        }
    }

    /// APPEND(S) / ADDITEMS: the stack's values from `from` on, into the list, set or opaque
    /// object below them.
    pub(super) fn extend(&mut self, from: usize) -> Result<(), Error> {
        const NOT_A_LIST: &str = "APPENDS to something that is not a list";
        self.charge((self.stack.len() - from) * size_of::<Value>())?;
        let id = self.target(from, NOT_A_LIST)?;
        let items = self.stack.drain(from..);
        match self.heap.get_mut(id) {
            Object::List(list) | Object::Set(list) => list.extend(items),
            Object::Opaque(o) => o.elements.extend(items),
            _ => {
                drop(items);
                return Err(self.malformed(NOT_A_LIST));
            }
        }
        Ok(())
    }

    /// SETITEM(S): the stack's values from `from` on (key, value, key, value…), into the dict or
    /// opaque object below them.
    pub(super) fn set_items(&mut self, from: usize) -> Result<(), Error> {
        const NOT_A_DICT: &str = "SETITEMS on something that is not a dict";
        let n = self.stack.len() - from;
        // Each pair is an entry and an index slot.
        self.charge(n * size_of::<Value>() * 2)?;
        if !n.is_multiple_of(2) {
            return Err(self.malformed("SETITEMS with an odd number of values"));
        }
        let id = self.target(from, NOT_A_DICT)?;
        let mut pairs = self.stack.drain(from..);
        match self.heap.get_mut(id) {
            Object::Dict(dict) => {
                while let (Some(k), Some(v)) = (pairs.next(), pairs.next()) {
                    dict.insert(k, v);
                }
            }
            Object::Opaque(o) => {
                while let (Some(k), Some(v)) = (pairs.next(), pairs.next()) {
                    o.items.push((k, v));
                }
            }
            _ => {
                drop(pairs);
                return Err(self.malformed(NOT_A_DICT));
            }
        }
        Ok(())
    }
}
