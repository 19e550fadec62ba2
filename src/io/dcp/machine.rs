//! A pickle machine made for one layout, a distributed checkpoint's `.metadata`: the same opcodes
//! and the same refusal to import or call anything as [`crate::io::pickle`], but values of its own.
//! A 2,000-tensor folder saved by 8 ranks writes a 2.7 MB pickle of some 300,000 objects (each
//! chunk a dataclass holding a dict, two `torch.Size` and a `_StorageInfo`); the general machine
//! gives each object a heap allocation and spent fifteen times a safetensors `tree` on that alone.
//! Here every value is a copyable word or two: strings borrow the pickle's bytes, containers are
//! runs of one shared arena, and the only classes called are the DCP dataclasses (kept as a class
//! and its BUILD state), `torch.Size`, dtypes, and the few helpers torch pickles beside them.

use super::memo::{MAX_MEMO, Memo, Put};
use crate::io::pickle::reader::{Reader, op, small_long};
use crate::io::pickle::{Error, Problem};

mod build;
mod classes;

pub(super) use classes::classify;
pub use classes::{Class, Record};

/// The most values on the stack.
const MAX_STACK: usize = 1 << 22;
/// The most container items, and the most containers and objects: some 600 MiB at worst, and
/// more than a checkpoint of 2,000 tensors on 1,000 ranks holds.
const MAX_VALUES: usize = 1 << 24;
/// The most distinct globals outside the allow-list.
const MAX_FOREIGN: usize = 64;
/// Where a run has no continuation.
const END: u32 = u32::MAX;

/// One value, 16 bytes. Copied freely: a memo hit or a DUP is a copy.
#[derive(Clone, Copy, Debug)]
pub enum V {
    /// `None`.
    None,
    /// An int that fits in 64 bits (`True` and `False` too).
    Int(i64),
    /// A str: where its bytes are in the pickle, checked as UTF-8 when read.
    Str(u32, u32),
    /// A value the layout never reads (a float, bytes, a big int, what a helper returns).
    Other,
    /// A global the pickle named.
    Class(Class),
    /// A tuple: where its items are in the arena.
    Tuple(u32, u32),
    /// A list or set: the run it starts at.
    List(u32),
    /// A dict: the run of its keys and values, alternating.
    Dict(u32),
    /// An object of a DCP dataclass: its index in [`Machine::objects`].
    Obj(u32),
}

/// An object of a DCP dataclass.
#[derive(Clone, Copy, Debug)]
pub struct Object {
    /// Its class.
    pub class: Record,
    /// Its BUILD state: a dataclass's `__dict__`, or `TensorProperties`' tuple; for the classes
    /// of which there is one per chunk, the tuple of scalars BUILD made of it (see `build`).
    pub state: V,
    /// The arena's and the runs' lengths when it was made: what came after is its state's.
    mark: (u32, u32),
    /// Whether the memo keeps it, so that what its state holds is shared.
    shared: bool,
}

/// Part of a container: `len` items of the arena from `start`, then the run `next`. A container
/// filled by one opcode (almost all) is one run; `last` (kept in the first run) makes appending
/// another cheap.
#[derive(Clone, Copy, Debug)]
struct Run {
    start: u32,
    len: u32,
    next: u32,
    last: u32,
}

/// The machine, and after [`run`] what it built.
pub struct Machine<'a> {
    bytes: &'a [u8],
    r: Reader<'a>,
    stack: Vec<V>,
    marks: Vec<usize>,
    memo: Memo<V>,
    items: Vec<V>,
    runs: Vec<Run>,
    /// The arena's and the runs' lengths when a value the memo keeps was last stored or
    /// filled: everything below may be read again, so is never dropped.
    kept: (usize, usize),
    /// The dataclass objects.
    pub objects: Vec<Object>,
    /// Every global outside this layout's allow-list the pickle names, `module.name`, in order.
    pub foreign: Vec<String>,
}

/// Runs the pickle `bytes` to its STOP: the value it returns and the machine holding it.
pub fn run(bytes: &[u8]) -> Result<(V, Machine<'_>), Error> {
    let mut m = Machine {
        bytes,
        r: Reader::new(bytes, 0),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Memo::of(bytes)?,
        items: Vec::new(),
        runs: Vec::new(),
        kept: (0, 0),
        objects: Vec::new(),
        foreign: Vec::new(),
    };
    match m.step_to_stop() {
        Ok(root) => Ok((root, m)),
        Err(mut e) => {
            e.foreign = std::mem::take(&mut m.foreign);
            Err(e)
        }
    }
}

impl<'a> Machine<'a> {
    /// The items of the tuple, list or set `value`.
    pub fn seq(&self, value: V) -> Option<impl Iterator<Item = V> + '_> {
        let (head, run) = match value {
            V::Tuple(start, len) => (self.slice(start, len), END),
            V::List(run) => (&[][..], run),
            _ => return None,
        };
        Some(
            std::iter::once(head)
                .chain(self.runs_from(run))
                .flatten()
                .copied(),
        )
    }

    /// The `(key, value)` pairs of the dict `value`, in insertion order (a key set twice comes
    /// twice: the caller keeps the last, as Python does).
    pub fn pairs(&self, value: V) -> Option<impl Iterator<Item = (V, V)> + '_> {
        let V::Dict(run) = value else { return None };
        let mut items = self.runs_from(run).flatten().copied();
        Some(std::iter::from_fn(move || {
            Some((items.next()?, items.next()?))
        }))
    }

    /// The field `name` of the dataclass state `state` (the last, if set twice).
    pub fn field(&self, state: V, name: &str) -> Option<V> {
        let is = |k: V| self.bytes(k) == Some(name.as_bytes());
        // A dataclass's dict is filled by one SETITEMS: one run, searched from its end.
        if let V::Dict(run) = state
            && let Some(r) = self.runs.get(run as usize)
            && r.next == END
        {
            let pairs = self.slice(r.start, r.len).chunks_exact(2);
            return pairs.rev().find(|p| is(p[0])).map(|p| p[1]);
        }
        self.pairs(state)?
            .filter(|&(k, _)| is(k))
            .last()
            .map(|(_, v)| v)
    }

    /// The items of the tuple `value`.
    pub fn tuple(&self, value: V) -> Option<&[V]> {
        match value {
            V::Tuple(start, len) => Some(self.slice(start, len)),
            _ => None,
        }
    }

    /// How many items (for a dict, pairs) the container `value` holds.
    pub fn len(&self, value: V) -> usize {
        match value {
            V::Tuple(_, len) => len as usize,
            V::List(run) => self.runs_from(run).map(<[V]>::len).sum(),
            V::Dict(run) => self.runs_from(run).map(<[V]>::len).sum::<usize>() / 2,
            _ => 0,
        }
    }

    /// The bytes of the str `value`.
    pub fn bytes(&self, value: V) -> Option<&'a [u8]> {
        match value {
            V::Str(start, len) => Some(&self.bytes[start as usize..(start + len) as usize]),
            _ => None,
        }
    }

    /// The items of the runs from `first` on, run by run.
    fn runs_from(&self, first: u32) -> impl Iterator<Item = &[V]> + '_ {
        let mut at = first;
        std::iter::from_fn(move || {
            let run = self.runs.get(at as usize)?;
            at = run.next;
            Some(self.slice(run.start, run.len))
        })
    }

    /// `len` items of the arena from `start`: what BUILD dropped reads as empty, though nothing
    /// that can still be reached was dropped.
    fn slice(&self, start: u32, len: u32) -> &[V] {
        (self
            .items
            .get(start as usize..start as usize + len as usize))
        .unwrap_or(&[])
    }

    fn fail(&self, problem: Problem) -> Error {
        self.r.error(problem)
    }

    fn malformed(&self, what: &str) -> Error {
        self.fail(Problem::Malformed(what.to_owned()))
    }

    fn too_many(&self, what: &'static str, limit: usize) -> Error {
        self.fail(Problem::TooMany { what, limit })
    }

    fn push(&mut self, value: V) -> Result<(), Error> {
        if self.stack.len() >= MAX_STACK {
            return Err(self.too_many("values on the stack", MAX_STACK));
        }
        self.stack.push(value);
        Ok(())
    }

    /// Where the values above the last MARK (or the whole stack) start.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<V, Error> {
        if self.stack.len() <= self.floor() {
            return Err(self.fail(Problem::StackUnderflow));
        }
        Ok(self.stack.pop().expect("checked above"))
    }

    fn top(&self) -> Result<V, Error> {
        if self.stack.len() <= self.floor() {
            return Err(self.fail(Problem::StackUnderflow));
        }
        Ok(self.stack[self.stack.len() - 1])
    }

    fn pop_mark(&mut self) -> Result<usize, Error> {
        self.marks.pop().ok_or_else(|| self.fail(Problem::NoMark))
    }

    /// Where the top `n` values start, when they are all above the last MARK.
    fn top_n(&self, n: usize) -> Result<usize, Error> {
        (self.stack.len().checked_sub(n))
            .filter(|&from| from >= self.floor())
            .ok_or_else(|| self.fail(Problem::StackUnderflow))
    }

    /// Moves the stack's values from `from` up to the end of the arena: where they are now.
    fn move_to_arena(&mut self, from: usize) -> Result<(u32, u32), Error> {
        let n = self.stack.len() - from;
        if self.items.len() + n >= MAX_VALUES {
            return Err(self.too_many("values built", MAX_VALUES));
        }
        let start = self.items.len() as u32;
        self.items.extend_from_slice(&self.stack[from..]);
        self.stack.truncate(from);
        Ok((start, n as u32))
    }

    /// A new, empty run: a list, set or dict to fill.
    fn empty(&mut self) -> Result<u32, Error> {
        if self.runs.len() >= MAX_VALUES {
            return Err(self.too_many("containers", MAX_VALUES));
        }
        let id = self.runs.len() as u32;
        self.runs.push(Run {
            start: 0,
            len: 0,
            next: END,
            last: id,
        });
        Ok(id)
    }

    /// SETITEM(S), APPEND(S) and ADDITEMS: moves the values above the container to its end.
    /// Only dicts, lists and sets are filled; what is put into anything else (an opaque object
    /// of a foreign class) is dropped, as it is never read.
    fn fill(&mut self, op: u8) -> Result<(), Error> {
        let from = match op {
            op::APPEND => self.top_n(1)?,
            op::SETITEM => self.top_n(2)?,
            _ => self.pop_mark()?,
        };
        // The container sits just below its items, on the same level.
        if from <= self.floor() {
            return Err(self.fail(Problem::StackUnderflow));
        }
        let pairs = matches!(op, op::SETITEM | op::SETITEMS);
        if pairs && (self.stack.len() - from) % 2 == 1 {
            return Err(self.malformed("SETITEMS with an odd number of values"));
        }
        let head = match (self.stack[from - 1], pairs) {
            (V::Dict(run), true) | (V::List(run), false) => run as usize,
            (V::Other, _) => {
                self.stack.truncate(from);
                return Ok(());
            }
            _ => return Err(self.malformed("items put into something not a container")),
        };
        // Every container a value can still reach is kept; this one, had it been dropped, is
        // refused rather than filled.
        if head >= self.runs.len() {
            return Err(self.malformed("items put into a container no longer built"));
        }
        if self.stack.len() == from {
            return Ok(());
        }
        let (start, len) = self.move_to_arena(from)?;
        // A container filled once (almost all) is its first run, filled in place.
        if self.runs[head].len == 0 && self.runs[head].next == END {
            self.runs[head].start = start;
            self.runs[head].len = len;
            if head < self.kept.1 {
                self.keep();
            }
            return Ok(());
        }
        let run = self.empty()?;
        self.runs[run as usize].start = start;
        self.runs[run as usize].len = len;
        let last = self.runs[head].last as usize;
        if last >= run as usize {
            return Err(self.malformed("items put into a container no longer built"));
        }
        self.runs[last].next = run;
        self.runs[head].last = run;
        // A container made before what is kept may be kept itself: so is what it now holds.
        if head < self.kept.1 {
            self.keep();
        }
        Ok(())
    }

    /// What `callee(*args)` gives: nothing is called but the dataclasses' and `torch.Size`'s
    /// constructors, as records.
    fn call(&mut self, callee: V, args: V) -> Result<V, Error> {
        let V::Class(class) = callee else {
            return Err(self.malformed("a call of something that is not a class"));
        };
        Ok(match class {
            Class::Record(record) => {
                if self.objects.len() >= MAX_VALUES {
                    return Err(self.too_many("objects", MAX_VALUES));
                }
                self.objects.push(Object {
                    class: record,
                    state: V::None,
                    mark: (self.items.len() as u32, self.runs.len() as u32),
                    shared: false,
                });
                V::Obj(self.objects.len() as u32 - 1)
            }
            Class::Size => match self.seq(args).and_then(|mut a| a.next()) {
                Some(tuple @ V::Tuple(..)) => tuple,
                _ => return Err(self.malformed("torch.Size of something not a tuple")),
            },
            Class::Dict => V::Dict(self.empty()?),
            Class::Dtype(_) | Class::Inert | Class::Foreign => V::Other,
        })
    }

    /// The global `module.name`; one outside the allow-list is recorded.
    fn global(&mut self, module: &str, name: &str) -> Result<V, Error> {
        let class = classify(module, name);
        if class == Class::Foreign {
            let path = format!("{module}.{name}");
            if !self.foreign.contains(&path) {
                // Each is said in a warning; past a few, the file is no checkpoint's metadata.
                if self.foreign.len() >= MAX_FOREIGN {
                    return Err(self.too_many("foreign globals", MAX_FOREIGN));
                }
                self.foreign.push(path);
            }
        }
        Ok(V::Class(class))
    }

    /// A str opcode's bytes, which are `n` long.
    fn text(&mut self, n: usize) -> Result<V, Error> {
        let start = self.r.offset();
        self.r.take(n)?;
        // The pickle is at most `MAX_METADATA` bytes long: positions fit.
        Ok(V::Str(start as u32, n as u32))
    }

    fn memo_put(&mut self, index: u32) -> Result<(), Error> {
        let value = self.top()?;
        match self.memo.put(index, value) {
            None => Err(self.too_many("memo entries", MAX_MEMO)),
            Some(Put::Unread) => Ok(()),
            Some(Put::Kept) => {
                if let V::Obj(id) = value {
                    self.objects[id as usize].shared = true;
                }
                self.keep();
                Ok(())
            }
        }
    }

    /// Everything built so far may be read again.
    fn keep(&mut self) {
        self.kept = (self.items.len(), self.runs.len());
    }

    fn memo_get(&mut self, index: u32) -> Result<(), Error> {
        let value =
            (self.memo.get(index)).ok_or_else(|| self.fail(Problem::MemoMiss(u64::from(index))))?;
        self.push(value)
    }

    fn step_to_stop(&mut self) -> Result<V, Error> {
        loop {
            let op = self.r.opcode()?;
            let value = match op {
                op::STOP => return self.pop(),
                op::PROTO => {
                    self.r.u8()?;
                    continue;
                }
                // Frames only group opcodes for buffered reading; the bytes are all here.
                op::FRAME => {
                    self.r.take(8)?;
                    continue;
                }
                op::MARK => {
                    if self.marks.len() >= MAX_STACK {
                        return Err(self.too_many("marks", MAX_STACK));
                    }
                    self.marks.push(self.stack.len());
                    continue;
                }
                op::POP => {
                    self.pop()?;
                    continue;
                }
                op::POP_MARK => {
                    let from = self.pop_mark()?;
                    self.stack.truncate(from);
                    continue;
                }
                op::DUP => self.top()?,
                op::MEMOIZE => {
                    let index = self.memo.next();
                    self.memo_put(index)?;
                    continue;
                }
                op::BINPUT => {
                    let index = self.r.u8()?;
                    self.memo_put(u32::from(index))?;
                    continue;
                }
                op::LONG_BINPUT => {
                    let index = self.r.u32()?;
                    self.memo_put(index)?;
                    continue;
                }
                op::BINGET => {
                    let index = self.r.u8()?;
                    self.memo_get(u32::from(index))?;
                    continue;
                }
                op::LONG_BINGET => {
                    let index = self.r.u32()?;
                    self.memo_get(index)?;
                    continue;
                }
                op::APPEND | op::APPENDS | op::ADDITEMS | op::SETITEM | op::SETITEMS => {
                    self.fill(op)?;
                    continue;
                }
                op::BUILD => {
                    let state = self.pop()?;
                    self.build(state)?;
                    continue;
                }
                _ => self.value_op(op)?,
            };
            self.push(value)?;
        }
    }

    /// An opcode that leaves one value on the stack (having taken its arguments off it).
    fn value_op(&mut self, op: u8) -> Result<V, Error> {
        Ok(match op {
            op::NONE => V::None,
            op::NEWTRUE => V::Int(1),
            op::NEWFALSE => V::Int(0),
            op::BININT => V::Int(i64::from(i32::from_le_bytes(self.r.array()?))),
            op::BININT1 => V::Int(i64::from(self.r.u8()?)),
            op::BININT2 => V::Int(i64::from(self.r.u16()?)),
            op::LONG1 | op::LONG4 => {
                let n = if op == op::LONG1 {
                    usize::from(self.r.u8()?)
                } else {
                    self.r.u32()? as usize
                };
                small_long(self.r.take(n)?).map_or(V::Other, V::Int)
            }
            op::BINFLOAT => {
                self.r.take(8)?;
                V::Other
            }
            op::SHORT_BINUNICODE | op::SHORT_BINSTRING => {
                let n = usize::from(self.r.u8()?);
                self.text(n)?
            }
            op::BINUNICODE | op::BINSTRING => {
                let n = self.r.u32()? as usize;
                self.text(n)?
            }
            op::BINUNICODE8 => {
                let n = self.r.len_u64()?;
                self.text(n)?
            }
            op::SHORT_BINBYTES | op::BINBYTES | op::BINBYTES8 | op::BYTEARRAY8 => {
                let n = match op {
                    op::SHORT_BINBYTES => usize::from(self.r.u8()?),
                    op::BINBYTES => self.r.u32()? as usize,
                    _ => self.r.len_u64()?,
                };
                self.r.take(n)?;
                V::Other
            }
            op::EMPTY_TUPLE => V::Tuple(0, 0),
            op::EMPTY_LIST | op::EMPTY_SET => V::List(self.empty()?),
            op::EMPTY_DICT => V::Dict(self.empty()?),
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let from = self.top_n(usize::from(op - op::TUPLE1 + 1))?;
                let (start, len) = self.move_to_arena(from)?;
                V::Tuple(start, len)
            }
            op::TUPLE => {
                let from = self.pop_mark()?;
                let (start, len) = self.move_to_arena(from)?;
                V::Tuple(start, len)
            }
            op::LIST | op::FROZENSET | op::DICT => {
                let from = self.pop_mark()?;
                if op == op::DICT && (self.stack.len() - from) % 2 == 1 {
                    return Err(self.malformed("DICT with an odd number of values"));
                }
                let run = self.empty()?;
                let (start, len) = self.move_to_arena(from)?;
                self.runs[run as usize].start = start;
                self.runs[run as usize].len = len;
                if op == op::DICT {
                    V::Dict(run)
                } else {
                    V::List(run)
                }
            }
            op::GLOBAL => {
                let module = String::from_utf8_lossy(self.r.line()?).into_owned();
                let name = String::from_utf8_lossy(self.r.line()?).into_owned();
                self.global(&module, &name)?
            }
            op::STACK_GLOBAL => {
                let (name, module) = (self.pop()?, self.pop()?);
                let text = |v| self.bytes(v).and_then(|b| std::str::from_utf8(b).ok());
                let (Some(module), Some(name)) = (text(module), text(name)) else {
                    return Err(self.malformed("STACK_GLOBAL wants two strings"));
                };
                self.global(module, name)?
            }
            op::REDUCE | op::NEWOBJ | op::NEWOBJ_EX => {
                if op == op::NEWOBJ_EX {
                    self.pop()?; // keyword arguments: no class here takes any
                }
                let args = self.pop()?;
                let callee = self.pop()?;
                self.call(callee, args)?
            }
            _ => return Err(self.fail(Problem::UnknownOpcode)),
        })
    }
}
