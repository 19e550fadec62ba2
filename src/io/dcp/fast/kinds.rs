//! The opcodes around the records read straight through (the `Metadata` object and its fields,
//! `planner_data`, `storage_meta`, a `TensorProperties` tuple) run on a stack of kinds: what the
//! machine's stack would hold, without the values, so that what the machine would refuse or read
//! otherwise is seen, and the reading gives up.

use smallvec::SmallVec;

use super::super::machine::{Class, Record, classify};
use super::reader::{Kept, Span};
use super::{Fast, MAX_STACK};
use crate::io::pickle::reader::op;

/// The kind of a value on the machine's stack, where its value is not needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Scalar,
    Str(Span),
    Class(Class),
    Tuple,
    List,
    Dict,
    Obj(Record),
    /// What an allowed helper returns.
    Other,
    /// A value read back from the memo that it did not keep: anything.
    Unknown,
    /// `state_dict_metadata`'s dict, read here.
    StateDict,
    /// `storage_data`'s dict, read here.
    Storage,
}

/// The kinds on the stack. Inline: a tensor's `TensorProperties` tuple is run here, and a heap
/// buffer freed per tensor would leave malloc a small free chunk to sweep up (`malloc_consolidate`)
/// at each tensor's list of chunks, some 3% of opening a 2,000-tensor checkpoint.
pub(super) type Stack = SmallVec<[Kind; 16]>;

impl Fast<'_> {
    /// Runs the opcodes after a MARK on a stack of kinds, as the machine runs them on values, to
    /// the opcode that pops that MARK, which must be `close` (SETITEMS or TUPLE): the kinds above
    /// the MARK then. With `fields`, the dict that is the value of a `state_dict_metadata` or
    /// `storage_data` key right above that MARK is read here.
    #[expect(
        clippy::too_many_lines,
        reason = "one short arm per opcode, as the machine's"
    )]
    pub(super) fn kinds(&mut self, close: u8, fields: bool) -> Option<Stack> {
        let mut stack = Stack::new();
        let mut marks: SmallVec<[usize; 8]> = SmallVec::new();
        loop {
            let floor = marks.last().copied().unwrap_or(0);
            let op = self.r.op()?;
            let kind = match op {
                op::MARK => {
                    (marks.len() < MAX_STACK).then_some(())?;
                    marks.push(stack.len());
                    continue;
                }
                op::POP => {
                    pop(&mut stack, floor)?;
                    continue;
                }
                op::POP_MARK => {
                    let from = marks.pop()?;
                    stack.truncate(from);
                    continue;
                }
                op::DUP => match top(&stack, floor)? {
                    Kind::StateDict | Kind::Storage => return None,
                    kind => kind,
                },
                op::MEMOIZE => {
                    let kept = match top(&stack, floor)? {
                        Kind::Str(span) => Some(Kept::Str(span)),
                        Kind::Class(class) => Some(Kept::Class(class)),
                        Kind::StateDict | Kind::Storage => Some(Kept::Taken),
                        _ => None,
                    };
                    self.r.memo.put(kept)?;
                    continue;
                }
                op::BINGET | op::LONG_BINGET => {
                    let i = if op == op::BINGET {
                        u32::from(self.r.u8()?)
                    } else {
                        u32::from_le_bytes(self.r.array()?)
                    };
                    match self.r.memo.get(i)? {
                        Kept::Str(span) => Kind::Str(span),
                        Kept::Class(class) => Kind::Class(class),
                        Kept::Taken => return None,
                        Kept::Unknown => Kind::Unknown,
                    }
                }
                op::APPEND | op::APPENDS | op::ADDITEMS | op::SETITEM | op::SETITEMS => {
                    let from = match op {
                        op::APPEND => top_n(&stack, floor, 1)?,
                        op::SETITEM => top_n(&stack, floor, 2)?,
                        _ => match marks.pop() {
                            Some(from) => from,
                            None if op == close && close == op::SETITEMS => return Some(stack),
                            None => return None,
                        },
                    };
                    let floor = marks.last().copied().unwrap_or(0);
                    (from > floor).then_some(())?;
                    let pairs = matches!(op, op::SETITEM | op::SETITEMS);
                    if pairs && (stack.len() - from) % 2 == 1 {
                        return None;
                    }
                    match (stack[from - 1], pairs) {
                        (Kind::Dict, true) | (Kind::List, false) | (Kind::Other, _) => {}
                        _ => return None,
                    }
                    stack.truncate(from);
                    continue;
                }
                op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                    let from = top_n(&stack, floor, usize::from(op - op::TUPLE1 + 1))?;
                    stack.truncate(from);
                    Kind::Tuple
                }
                op::TUPLE | op::LIST | op::DICT | op::FROZENSET => {
                    let Some(from) = marks.pop() else {
                        return (op == close && close == op::TUPLE).then_some(stack);
                    };
                    if op == op::DICT && (stack.len() - from) % 2 == 1 {
                        return None;
                    }
                    stack.truncate(from);
                    match op {
                        op::TUPLE => Kind::Tuple,
                        op::DICT => Kind::Dict,
                        _ => Kind::List,
                    }
                }
                op::EMPTY_TUPLE => Kind::Tuple,
                op::EMPTY_LIST | op::EMPTY_SET => Kind::List,
                op::EMPTY_DICT => {
                    let key = match stack.last() {
                        Some(&Kind::Str(key))
                            if fields && marks.is_empty() && stack.len() % 2 == 1 =>
                        {
                            self.r.text(key)
                        }
                        _ => b"",
                    };
                    match key {
                        b"state_dict_metadata" => {
                            self.state_dict()?;
                            Kind::StateDict
                        }
                        b"storage_data" => {
                            self.storage()?;
                            Kind::Storage
                        }
                        _ => Kind::Dict,
                    }
                }
                op::NONE | op::NEWTRUE | op::NEWFALSE => Kind::Scalar,
                op::BININT1 | op::BININT2 | op::BININT | op::BINFLOAT => {
                    let n = match op {
                        op::BININT1 => 1,
                        op::BININT2 => 2,
                        op::BININT => 4,
                        _ => 8,
                    };
                    self.r.take(n)?;
                    Kind::Scalar
                }
                op::LONG1 | op::SHORT_BINBYTES => {
                    let n = self.r.u8()?;
                    self.r.take(usize::from(n))?;
                    Kind::Scalar
                }
                op::BINBYTES => {
                    let n = u32::from_le_bytes(self.r.array()?);
                    self.r.take(n as usize)?;
                    Kind::Scalar
                }
                op::SHORT_BINUNICODE => {
                    let n = self.r.u8()?;
                    Kind::Str(self.r.span(usize::from(n))?)
                }
                op::BINUNICODE => {
                    let n = u32::from_le_bytes(self.r.array()?);
                    Kind::Str(self.r.span(n as usize)?)
                }
                op::STACK_GLOBAL => {
                    let name = pop(&mut stack, floor)?;
                    let module = pop(&mut stack, floor)?;
                    let (Kind::Str(module), Kind::Str(name)) = (module, name) else {
                        return None;
                    };
                    let text = |span| std::str::from_utf8(self.r.text(span)).ok();
                    match classify(text(module)?, text(name)?) {
                        Class::Foreign => return None,
                        class => Kind::Class(class),
                    }
                }
                op::REDUCE | op::NEWOBJ => {
                    pop(&mut stack, floor)?;
                    match pop(&mut stack, floor)? {
                        Kind::Class(Class::Record(record)) => Kind::Obj(record),
                        Kind::Class(Class::Dict) => Kind::Dict,
                        Kind::Class(Class::Dtype(_) | Class::Inert) => Kind::Other,
                        _ => return None,
                    }
                }
                op::BUILD => {
                    pop(&mut stack, floor)?;
                    match top(&stack, floor)? {
                        // The machine reads these records' state into scalars, or refuses it.
                        Kind::Obj(
                            Record::ChunkStorage | Record::MetadataIndex | Record::StorageInfo,
                        )
                        | Kind::Unknown => return None,
                        _ => continue,
                    }
                }
                _ => return None,
            };
            (stack.len() < MAX_STACK).then_some(())?;
            stack.push(kind);
        }
    }
}

/// The top value above `floor`, taken.
fn pop(stack: &mut Stack, floor: usize) -> Option<Kind> {
    (stack.len() > floor).then(|| stack.pop())?
}

/// The top value above `floor`.
fn top(stack: &[Kind], floor: usize) -> Option<Kind> {
    (stack.len() > floor).then(|| stack.last().copied())?
}

/// Where the top `n` values start, when they all lie above `floor`.
fn top_n(stack: &[Kind], floor: usize, n: usize) -> Option<usize> {
    stack.len().checked_sub(n).filter(|&from| from >= floor)
}
