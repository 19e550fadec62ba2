//! The memo: values stored by index for later GETs. Pickles number them densely from 0 (MEMOIZE,
//! and PUT as `pickle` writes it), so they live in a vector indexed directly; a far index (a
//! hand-made or hostile pickle) goes to a map, so that one opcode cannot grow the vector by
//! millions of slots.

use std::collections::HashMap;

use crate::io::pickle::value::Value;

/// How far past the vector's end an index may land and still extend it.
const SLACK: usize = 1024;

/// The memo of one pickle.
#[derive(Default)]
pub struct Memo {
    near: Vec<Option<Value>>,
    far: HashMap<u32, Value>,
    len: usize,
}

impl Memo {
    /// A memo with room for `n` near indices before it first grows.
    pub fn with_capacity(n: usize) -> Self {
        Memo {
            near: Vec::with_capacity(n),
            ..Memo::default()
        }
    }

    /// How many indices hold a value.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether `index` holds a value.
    pub fn contains(&self, index: u32) -> bool {
        self.get(index).is_some()
    }

    /// The value at `index`.
    pub fn get(&self, index: u32) -> Option<&Value> {
        let i = index as usize;
        match self.near.get(i) {
            Some(slot) => slot.as_ref(),
            None => self.far.get(&index),
        }
    }

    /// Stores `value` at `index`, replacing what was there; the bytes the memo grew by (slots
    /// added, each doubled for the vector's or the table's slack), for the caller's budget.
    pub fn put(&mut self, index: u32, value: Value) -> usize {
        let i = index as usize;
        let slot = size_of::<Option<Value>>();
        if i < self.near.len() + SLACK && !self.far.contains_key(&index) {
            let grown = (i + 1).saturating_sub(self.near.len());
            if grown > 0 {
                self.near.resize(i + 1, None);
            }
            self.len += usize::from(self.near[i].is_none());
            self.near[i] = Some(value);
            2 * grown * slot
        } else {
            let new = self.far.insert(index, value).is_none();
            self.len += usize::from(new);
            2 * usize::from(new) * (size_of::<u32>() + slot)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Memo;
    use crate::io::pickle::value::Value;

    #[test]
    fn near_and_far_indices_count_once_and_read_back() {
        let mut memo = Memo::default();
        assert!(memo.put(0, Value::Int(1)) > 0);
        assert_eq!(
            memo.put(0, Value::Int(2)),
            0,
            "a replaced value grows nothing"
        );
        assert!(memo.put(3, Value::Int(3)) >= 3 * size_of::<Option<Value>>());
        assert!(memo.put(u32::MAX, Value::Int(4)) > 0);
        assert_eq!(memo.len(), 3);
        assert!(matches!(memo.get(0), Some(Value::Int(2))));
        assert!(matches!(memo.get(3), Some(Value::Int(3))));
        assert!(memo.get(2).is_none() && !memo.contains(1));
        assert!(matches!(memo.get(u32::MAX), Some(Value::Int(4))));
        // The far entry stays where it is, even once the vector could reach it.
        for i in 4..2000 {
            memo.put(i, Value::None);
        }
        assert_eq!(memo.len(), 3 + 1996);
        assert!(memo.get(1999).is_some() && memo.get(2000).is_none());
    }
}
