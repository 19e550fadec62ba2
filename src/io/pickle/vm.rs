//! The machine: a stack, a memo and a heap, run opcode by opcode until STOP. Calls go through the
//! allow-list in `globals`; nothing is ever imported or executed.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::globals::Global;
use super::reader::{Reader, op, small_long};
use super::value::{Dict, Heap, Object, Storage, Value};
use super::{Error, Problem};

mod calls;
mod containers;
mod memo;

use memo::Memo;

/// The most objects and memo entries room is reserved for before a run: a million.
const RESERVE: usize = 1 << 20;
/// The most values the stack may hold: a state dict of a million tensors needs two million.
const MAX_STACK: usize = 1 << 22;
/// The most memo entries.
const MAX_MEMO: usize = 1 << 22;
/// The most heap objects.
const MAX_OBJECTS: usize = 1 << 23;
/// The longest `module` + `name` of a STACK_GLOBAL, as GLOBAL's text lines are capped.
const MAX_GLOBAL: usize = 4096;
/// The most bytes the values built may take, estimated as they are built (an object, a memo
/// entry, a container's item): 4 million empty dicts would take over 1 GiB.
const MAX_BYTES: usize = 256 << 20;
/// The most values copied by calls (`list(x)`, argument tuples), so that copying one big list
/// over and over cannot take hours.
const MAX_COPIES: usize = 1 << 26;

/// A pickle run to its STOP.
#[derive(Debug)]
pub struct Unpickled {
    /// The value STOP returned.
    pub root: Value,
    /// The objects it refers to.
    pub heap: Heap,
    /// Every global outside torch's `weights_only` allow-list that the pickle names (called,
    /// passed or stored), `module.name`, each once, in order.
    pub foreign: Vec<String>,
    /// The file offset just past STOP (where a legacy file's next pickle starts).
    pub end: usize,
}

/// Runs the pickle in `bytes`, which start at file offset `base`.
pub fn unpickle(bytes: &[u8], base: usize) -> Result<Unpickled, Error> {
    // Room reserved up front for what a pickle of this size builds at most (an object or a memo
    // entry takes at least a few opcode bytes), so that the heap and memo do not grow by copying
    // again and again; pages never written cost no memory.
    let reserve = (bytes.len() / 4).min(RESERVE);
    let mut vm = Machine {
        r: Reader::new(bytes, base),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Memo::with_capacity(reserve),
        heap: Heap::with_capacity(reserve),
        storages: HashMap::new(),
        foreign: Vec::new(),
        foreign_seen: HashSet::new(),
        copies: 0,
        bytes: 0,
    };
    match vm.run() {
        Ok(root) => Ok(Unpickled {
            root,
            heap: vm.heap,
            foreign: vm.foreign,
            end: vm.r.offset(),
        }),
        // What torch would have imported before the error still counts.
        Err(mut error) => {
            error.foreign = vm.foreign;
            Err(error)
        }
    }
}

struct Machine<'a> {
    r: Reader<'a>,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: Memo,
    heap: Heap,
    storages: HashMap<String, Rc<Storage>>,
    foreign: Vec<String>,
    foreign_seen: HashSet<String>,
    copies: usize,
    bytes: usize,
}

impl Machine<'_> {
    /// The global `module.name`, named by the pickle: a foreign one is recorded, whatever the
    /// pickle then does with it.
    fn global(&mut self, module: &str, name: &str) -> Value {
        let global = Global::new(module, name);
        if !global.allowed && self.foreign_seen.insert(global.path.to_string()) {
            self.foreign.push(global.path.to_string());
        }
        Value::Global(Rc::new(global))
    }

    fn fail(&self, problem: Problem) -> Error {
        self.r.error(problem)
    }

    fn malformed(&self, what: &str) -> Error {
        self.fail(Problem::Malformed(what.to_owned()))
    }

    fn push(&mut self, value: Value) -> Result<(), Error> {
        if self.stack.len() >= MAX_STACK {
            return Err(self.fail(Problem::TooMany {
                what: "values on the stack",
                limit: MAX_STACK,
            }));
        }
        self.stack.push(value);
        Ok(())
    }

    fn pop(&mut self) -> Result<Value, Error> {
        // A MARK's position is a floor: values below it belong to the outer level.
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.fail(Problem::StackUnderflow));
        }
        Ok(self.stack.pop().expect("checked above"))
    }

    fn top(&self) -> Result<&Value, Error> {
        self.stack
            .last()
            .ok_or_else(|| self.fail(Problem::StackUnderflow))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, Error> {
        let mark = self.mark()?;
        Ok(self.stack.split_off(mark))
    }

    /// Where the values above the last MARK start on the stack, that MARK gone.
    fn mark(&mut self) -> Result<usize, Error> {
        self.marks.pop().ok_or_else(|| self.fail(Problem::NoMark))
    }

    /// Where the top `n` values start on the stack, when they are all above the last MARK.
    fn top_n(&self, n: usize) -> Result<usize, Error> {
        let floor = self.marks.last().copied().unwrap_or(0);
        self.stack
            .len()
            .checked_sub(n)
            .filter(|&from| from >= floor)
            .ok_or_else(|| self.fail(Problem::StackUnderflow))
    }

    /// Counts `n` more bytes of what the pickle built against [`MAX_BYTES`].
    fn charge(&mut self, n: usize) -> Result<(), Error> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > MAX_BYTES {
            return Err(self.fail(Problem::TooMany {
                what: "bytes of values built (containers, objects and memo entries, estimated)",
                limit: MAX_BYTES,
            }));
        }
        Ok(())
    }

    fn add(&mut self, object: Object) -> Result<Value, Error> {
        // The heap's vector doubles as it grows: an object may take twice its size.
        self.charge(2 * size_of::<Object>())?;
        if self.heap.len() >= MAX_OBJECTS {
            return Err(self.fail(Problem::TooMany {
                what: "objects",
                limit: MAX_OBJECTS,
            }));
        }
        Ok(self.heap.add(object))
    }

    fn count_copies(&mut self, n: usize) -> Result<(), Error> {
        self.copies = self.copies.saturating_add(n);
        if self.copies > MAX_COPIES {
            return Err(self.fail(Problem::TooMany {
                what: "values copied by calls",
                limit: MAX_COPIES,
            }));
        }
        Ok(())
    }

    fn memo_put(&mut self, index: u32) -> Result<(), Error> {
        let value = self.top()?.clone();
        if self.memo.len() >= MAX_MEMO && !self.memo.contains(index) {
            return Err(self.fail(Problem::TooMany {
                what: "memo entries",
                limit: MAX_MEMO,
            }));
        }
        // Charged once made: a put grows the memo by at most a few thousand slots.
        let grown = self.memo.put(index, value);
        self.charge(grown)
    }

    fn memo_get(&mut self, index: u32) -> Result<(), Error> {
        let value = self
            .memo
            .get(index)
            .cloned()
            .ok_or_else(|| self.fail(Problem::MemoMiss(u64::from(index))))?;
        self.push(value)
    }

    fn text_index(&mut self) -> Result<u32, Error> {
        let line = self.r.line()?;
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| self.malformed("a memo index that is not a number"))
    }

    fn run(&mut self) -> Result<Value, Error> {
        loop {
            let op = self.r.opcode()?;
            if op == op::STOP {
                return self.pop();
            }
            let handled = self.frame_op(op)?
                || self.literal_op(op)?
                || self.container_op(op)?
                || self.call_op(op)?;
            if !handled && !self.memo_op(op)? {
                return Err(self.fail(Problem::UnknownOpcode));
            }
        }
    }

    /// Protocol, framing, marks and plain stack moves.
    fn frame_op(&mut self, op: u8) -> Result<bool, Error> {
        match op {
            op::PROTO => {
                self.r.u8()?;
            }
            // Frames only group opcodes for buffered reading; the bytes are all here.
            op::FRAME => {
                self.r.take(8)?;
            }
            op::MARK => {
                if self.marks.len() >= MAX_STACK {
                    return Err(self.fail(Problem::TooMany {
                        what: "marks",
                        limit: MAX_STACK,
                    }));
                }
                self.marks.push(self.stack.len());
            }
            op::POP => {
                self.pop()?;
            }
            op::POP_MARK => {
                self.pop_mark()?;
            }
            op::DUP => {
                let top = self.top()?.clone();
                self.push(top)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// None, booleans, numbers, strings and bytes.
    fn literal_op(&mut self, op: u8) -> Result<bool, Error> {
        let value = match op {
            op::NONE => Value::None,
            op::NEWTRUE => Value::Bool(true),
            op::NEWFALSE => Value::Bool(false),
            op::BININT => Value::Int(i64::from(i32::from_le_bytes(self.r.array()?))),
            op::BININT1 => Value::Int(i64::from(self.r.u8()?)),
            op::BININT2 => Value::Int(i64::from(self.r.u16()?)),
            op::LONG1 => {
                let n = usize::from(self.r.u8()?);
                long(self.r.take(n)?)
            }
            op::LONG4 => {
                let n = self.r.u32()? as usize;
                long(self.r.take(n)?)
            }
            op::INT | op::LONG => {
                let line = self.r.line()?;
                text_int(line).ok_or_else(|| self.malformed("a bad INT"))?
            }
            op::BINFLOAT => Value::Float(f64::from_be_bytes(self.r.array()?)),
            op::FLOAT => {
                let line = self.r.line()?;
                let v = std::str::from_utf8(line)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .ok_or_else(|| self.malformed("a bad FLOAT"))?;
                Value::Float(v)
            }
            op::SHORT_BINUNICODE | op::SHORT_BINSTRING => {
                let n = usize::from(self.r.u8()?);
                text(self.r.take(n)?)
            }
            op::BINUNICODE | op::BINSTRING => {
                let n = self.r.u32()? as usize;
                text(self.r.take(n)?)
            }
            op::BINUNICODE8 => {
                let n = self.r.len_u64()?;
                text(self.r.take(n)?)
            }
            op::UNICODE => text(self.r.line()?),
            op::STRING => {
                let line = self.r.line()?;
                let unquoted = line
                    .strip_prefix(b"'")
                    .and_then(|l| l.strip_suffix(b"'"))
                    .or_else(|| line.strip_prefix(b"\"")?.strip_suffix(b"\""))
                    .unwrap_or(line);
                text(unquoted)
            }
            op::SHORT_BINBYTES => {
                let n = usize::from(self.r.u8()?);
                Value::Bytes(self.r.take(n)?.into())
            }
            op::BINBYTES => {
                let n = self.r.u32()? as usize;
                Value::Bytes(self.r.take(n)?.into())
            }
            op::BINBYTES8 | op::BYTEARRAY8 => {
                let n = self.r.len_u64()?;
                Value::Bytes(self.r.take(n)?.into())
            }
            _ => return Ok(false),
        };
        self.push(value)?;
        Ok(true)
    }

    /// Building and filling lists, tuples, dicts and sets.
    fn container_op(&mut self, op: u8) -> Result<bool, Error> {
        match op {
            op::EMPTY_DICT | op::EMPTY_LIST | op::EMPTY_TUPLE | op::EMPTY_SET => {
                let object = match op {
                    op::EMPTY_DICT => Object::Dict(Dict::default()),
                    op::EMPTY_LIST => Object::List(Vec::new()),
                    op::EMPTY_TUPLE => Object::Tuple(Vec::new()),
                    _ => Object::Set(Vec::new()),
                };
                let v = self.add(object)?;
                self.push(v)?;
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = usize::from(op - op::TUPLE1 + 1);
                let floor = self.marks.last().copied().unwrap_or(0);
                if self.stack.len() < floor + n {
                    return Err(self.fail(Problem::StackUnderflow));
                }
                let items = self.stack.split_off(self.stack.len() - n);
                let v = self.add(Object::Tuple(items))?;
                self.push(v)?;
            }
            op::TUPLE | op::LIST | op::FROZENSET | op::DICT => {
                let items = self.pop_mark()?;
                self.charge(items.len() * size_of::<Value>())?;
                let object = match op {
                    op::TUPLE => Object::Tuple(items),
                    op::LIST => Object::List(items),
                    op::FROZENSET => Object::Set(items),
                    _ => Object::Dict(self.pairs(items)?),
                };
                let v = self.add(object)?;
                self.push(v)?;
            }
            // The items are moved from the stack into their container, with no copy between.
            op::APPEND => {
                let from = self.top_n(1)?;
                self.extend(from)?;
            }
            op::APPENDS | op::ADDITEMS => {
                let from = self.mark()?;
                self.extend(from)?;
            }
            op::SETITEM => {
                let from = self.top_n(2)?;
                self.set_items(from)?;
            }
            op::SETITEMS => {
                let from = self.mark()?;
                self.set_items(from)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Naming globals, calling them (through the allow-list), BUILD and persistent ids.
    fn call_op(&mut self, op: u8) -> Result<bool, Error> {
        let v = match op {
            op::GLOBAL => {
                let module = String::from_utf8_lossy(self.r.line()?).into_owned();
                let name = String::from_utf8_lossy(self.r.line()?).into_owned();
                self.global(&module, &name)
            }
            op::STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Value::Str(module), Value::Str(name)) = (module, name) else {
                    return Err(self.malformed("STACK_GLOBAL wants two strings"));
                };
                // As long as GLOBAL's lines may be: a memoized huge string named over and over
                // must not be copied into a name each time.
                if module.len() + name.len() > MAX_GLOBAL {
                    return Err(self.malformed("STACK_GLOBAL with a name longer than 4096 bytes"));
                }
                self.global(&module, &name)
            }
            op::REDUCE | op::NEWOBJ | op::NEWOBJ_EX => {
                if op == op::NEWOBJ_EX {
                    self.pop()?; // keyword arguments: no allowed global takes any
                }
                let args = self.pop()?;
                let callee = self.pop()?;
                self.call(&callee, &args, 0)?
            }
            op::INST => {
                let module = String::from_utf8_lossy(self.r.line()?).into_owned();
                let name = String::from_utf8_lossy(self.r.line()?).into_owned();
                let args = self.pop_mark()?;
                let args = self.add(Object::Tuple(args))?;
                let callee = self.global(&module, &name);
                self.call(&callee, &args, 0)?
            }
            op::OBJ => {
                let mut items = self.pop_mark()?.into_iter();
                let callee = items
                    .next()
                    .ok_or_else(|| self.fail(Problem::StackUnderflow))?;
                let args = self.add(Object::Tuple(items.collect()))?;
                self.call(&callee, &args, 0)?
            }
            op::BUILD => {
                let state = self.pop()?;
                self.build(state)?;
                return Ok(true);
            }
            op::BINPERSID => {
                let pid = self.pop()?;
                self.persistent(&pid)?
            }
            op::PERSID => {
                return Err(self.malformed("a text persistent id (torch writes BINPERSID)"));
            }
            _ => return Ok(false),
        };
        self.push(v)?;
        Ok(true)
    }

    /// Storing to and reading from the memo.
    fn memo_op(&mut self, op: u8) -> Result<bool, Error> {
        match op {
            op::BINPUT => {
                let i = self.r.u8()?;
                self.memo_put(u32::from(i))?;
            }
            op::LONG_BINPUT => {
                let i = self.r.u32()?;
                self.memo_put(i)?;
            }
            op::PUT => {
                let i = self.text_index()?;
                self.memo_put(i)?;
            }
            op::MEMOIZE => {
                let i = u32::try_from(self.memo.len()).unwrap_or(u32::MAX);
                self.memo_put(i)?;
            }
            op::BINGET => {
                let i = self.r.u8()?;
                self.memo_get(u32::from(i))?;
            }
            op::LONG_BINGET => {
                let i = self.r.u32()?;
                self.memo_get(i)?;
            }
            op::GET => {
                let i = self.text_index()?;
                self.memo_get(i)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// LONG1/LONG4's little-endian two's complement.
fn long(bytes: &[u8]) -> Value {
    small_long(bytes).map_or_else(|| Value::BigInt(bytes.into()), Value::Int)
}

/// A str from the file's bytes (invalid UTF-8 replaced: names are for showing).
fn text(bytes: &[u8]) -> Value {
    Value::Str(String::from_utf8_lossy(bytes).into())
}

/// INT / LONG's decimal text (`I01\n` is True in protocol 0).
fn text_int(line: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(line).ok()?.trim();
    match text {
        "01" => return Some(Value::Bool(true)),
        "00" => return Some(Value::Bool(false)),
        _ => {}
    }
    let text = text.strip_suffix('L').unwrap_or(text);
    text.parse().ok().map(Value::Int)
}
