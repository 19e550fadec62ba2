//! The `.metadata` machine's memo. Python's pickler memoizes every object it writes (280,000 in a
//! 2,000-tensor, 8-rank checkpoint) but reads back a few thousand (class names, field names,
//! shared strings); one pass over the opcodes first finds which, so that only those are kept,
//! and so that the machine knows every other value has one owner and can be dropped once read.

use std::collections::HashMap;

use crate::io::pickle::reader::{Reader, op};
use crate::io::pickle::{Error, Problem};

/// The most memo entries, and the highest memo index.
pub const MAX_MEMO: usize = 1 << 22;

/// A set of small numbers, one bit each: memo indices below [`MAX_MEMO`], or the straight
/// reading's chunks.
#[derive(Default)]
pub(super) struct Bits(Vec<u64>);

impl Bits {
    pub(super) fn contains(&self, i: u32) -> bool {
        (self.0.get(i as usize / 64)).is_some_and(|w| w >> (i % 64) & 1 == 1)
    }

    /// Adds `i`; whether it was new. For a memo index, `i` is below [`MAX_MEMO`], so the set
    /// stays under 512 KiB; a chunk's number is below 2^19.
    pub(super) fn insert(&mut self, i: u32) -> bool {
        let word = i as usize / 64;
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        let new = self.0[word] >> (i % 64) & 1 == 0;
        self.0[word] |= 1 << (i % 64);
        new
    }
}

/// The memo: the values (the machine's, any copyable type here) of the indices the pickle reads
/// back.
pub struct Memo<V> {
    /// The indices some GET reads.
    read: Bits,
    /// The indices stored so far (MEMOIZE numbers the next one by their count).
    stored: Bits,
    len: usize,
    values: HashMap<u32, V, foldhash::quality::RandomState>,
}

/// What a PUT did with its value.
pub enum Put {
    /// It is never read back: the value keeps its one owner.
    Unread,
    /// It is kept, to be read back: the value is shared from now on.
    Kept,
}

impl<V: Copy> Memo<V> {
    /// The memo of the pickle `bytes`, knowing which indices it reads. The pass stops at the
    /// first opcode it does not know; the run itself then fails there, naming it.
    pub fn of(bytes: &[u8]) -> Result<Memo<V>, Error> {
        let mut r = Reader::new(bytes, 0);
        let mut read = Bits::default();
        let mut note = |r: &Reader, i: u32| {
            if i as usize >= MAX_MEMO {
                return Err(r.error(Problem::MemoMiss(u64::from(i))));
            }
            read.insert(i);
            Ok(())
        };
        loop {
            let skip = match r.opcode()? {
                op::BINGET => {
                    let i = r.u8()?;
                    note(&r, u32::from(i))?;
                    0
                }
                op::LONG_BINGET => {
                    let i = r.u32()?;
                    note(&r, i)?;
                    0
                }
                op::PROTO | op::BININT1 | op::BINPUT => 1,
                op::BININT2 => 2,
                op::BININT | op::LONG_BINPUT => 4,
                op::FRAME | op::BINFLOAT => 8,
                op::SHORT_BINUNICODE | op::SHORT_BINSTRING | op::SHORT_BINBYTES | op::LONG1 => {
                    usize::from(r.u8()?)
                }
                op::BINUNICODE | op::BINSTRING | op::BINBYTES | op::LONG4 => r.u32()? as usize,
                op::BINUNICODE8 | op::BINBYTES8 | op::BYTEARRAY8 => r.len_u64()?,
                op::GLOBAL => {
                    r.line()?;
                    r.line()?;
                    0
                }
                op::MARK
                | op::POP
                | op::POP_MARK
                | op::DUP
                | op::NONE
                | op::NEWTRUE
                | op::NEWFALSE
                | op::EMPTY_TUPLE
                | op::EMPTY_LIST
                | op::EMPTY_DICT
                | op::EMPTY_SET
                | op::TUPLE
                | op::TUPLE1
                | op::TUPLE2
                | op::TUPLE3
                | op::LIST
                | op::DICT
                | op::FROZENSET
                | op::APPEND
                | op::APPENDS
                | op::ADDITEMS
                | op::SETITEM
                | op::SETITEMS
                | op::STACK_GLOBAL
                | op::REDUCE
                | op::NEWOBJ
                | op::NEWOBJ_EX
                | op::BUILD
                | op::MEMOIZE => 0,
                // STOP, or an opcode the machine will refuse.
                _ => break,
            };
            r.take(skip)?;
        }
        Ok(Memo {
            read,
            stored: Bits::default(),
            len: 0,
            values: HashMap::default(),
        })
    }

    /// The index MEMOIZE stores at: how many are stored.
    pub fn next(&self) -> u32 {
        self.len as u32
    }

    /// Stores `value` at `index`; `None` when the index is beyond [`MAX_MEMO`].
    pub fn put(&mut self, index: u32, value: V) -> Option<Put> {
        if index as usize >= MAX_MEMO {
            return None;
        }
        self.len += usize::from(self.stored.insert(index));
        if !self.read.contains(index) {
            return Some(Put::Unread);
        }
        self.values.insert(index, value);
        Some(Put::Kept)
    }

    /// The value at `index`.
    pub fn get(&self, index: u32) -> Option<V> {
        self.values.get(&index).copied()
    }
}
