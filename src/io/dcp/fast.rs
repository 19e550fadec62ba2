//! A `.metadata` pickle read straight through, as torch's pickler lays it out: the state dict's
//! `TensorStorageMetadata` records and their chunks, and `storage_data`'s `MetadataIndex` →
//! `_StorageInfo` pairs, are each read by the opcodes that record is written with, into the
//! [`Metadata`] the machine's reading gives, chunk by chunk, without running the pickle. A
//! 2,000-tensor, 8-rank checkpoint's 16,000 chunks then cost a pass over their bytes, not 1.2
//! million opcodes on a machine, a first pass for the memo and a table of storage infos.
//!
//! It reads only what it can read exactly: the opcodes around those records (the `Metadata`
//! object, `planner_data`, `storage_meta`) run on a stack of kinds that mirrors the machine's stack
//! of values; the memo keeps the strings and globals read back; every step that the machine would
//! take differently, or refuse, or that torch never writes (a global outside the allow-list, a
//! value read back that it did not keep, a duplicate name, a frame that is not where the previous
//! one ends, a chunk without its storage, chunks that overlap) gives up, and [`read`] returns
//! `None`. The caller then runs the machine on the same bytes, which reads the file the same way or
//! says what is wrong with it. Nothing is ever called or imported.

mod kinds;
mod reader;
mod records;
mod template;

use std::collections::HashMap;

use super::machine::{Class, Record, classify};
use super::memo::Bits;
use super::metadata::{
    Chunk, Dims, Entry, Location, MAX_CHUNKS, MAX_DIMS, Metadata, TensorEntry, check_cover, fits,
};
use crate::io::pickle::TorchDtype;
use crate::io::pickle::reader::op;
use kinds::Kind;
use reader::{Kept, Memo, Reader, Span};
use template::{Hole, Role, Templates, Values};

/// The most values on the stack of kinds, and the most items in one batch of a container: a
/// quarter of the machine's stack, so that nothing read here would overflow the machine's.
const MAX_STACK: usize = 1 << 20;

/// What the chunks and storage entries may weigh in all (each 16, plus 2 per int of its offsets
/// and sizes): at least twice what the machine keeps of them (9 values per chunk, plus 3 per
/// dimension) in its arena of at most 2^24 values, so that a file read here is one the machine
/// can hold. Torch's memo numbering reaches the machine's limit before (4 Mi indices, some 17 per
/// chunk).
const BUDGET: usize = 1 << 23;

/// Reads the `.metadata` pickle `bytes` as torch lays it out; `None` where it is laid out any other
/// way, or is damaged, or where its reading is not the machine's without doubt.
pub fn read(bytes: &[u8]) -> Option<Metadata<'_>> {
    // Positions are kept in 32 bits.
    if u32::try_from(bytes.len()).is_err() {
        return None;
    }
    let mut fast = Fast {
        r: Reader {
            bytes,
            pos: 0,
            end: bytes.len(),
            framed: false,
            memo: Memo::default(),
        },
        entries: Vec::new(),
        names_read: Vec::new(),
        per_tensor: 0,
        chunks: 0,
        placed: Bits::default(),
        names: HashMap::default(),
        state_dict: false,
        storage: false,
        last: 0,
        file: None,
        budget: BUDGET,
        role: Role::Key,
        learning: false,
        holes: Vec::new(),
        templates: Templates::default(),
        values: Values::default(),
    };
    fast.root()?;
    fast.finish()
}

/// A state-dict entry as read, its chunks' storage found later in `storage_data`.
struct Raw<'a> {
    fqn: &'a str,
    /// Its name's place in [`Fast::names`].
    name: (u32, u32),
    body: Body<'a>,
}

enum Body<'a> {
    Tensor {
        dtype: TorchDtype,
        size: Dims,
        /// Its chunks as the reading gives them, each location [`UNPLACED`] until its storage is
        /// found (then the chunk's bit in [`Fast::placed`] is set): no pass over them is needed
        /// to make them the reading's chunks.
        chunks: Vec<Chunk<'a>>,
        /// The number of its first chunk, counted over every tensor's.
        first: u32,
        /// The chunk the next `storage_data` entry for this tensor most likely names.
        next: u32,
    },
    Bytes(Option<Location<'a>>),
}

/// A chunk's location before its storage entry is read.
const UNPLACED: Location<'static> = Location {
    file: "",
    offset: 0,
    length: 0,
    transforms: Vec::new(),
};

struct Fast<'a> {
    r: Reader<'a>,
    entries: Vec<Raw<'a>>,
    /// Every entry's name, one after another: compared with a `storage_data` entry's name, 60 KB
    /// for 2,000 names stay in the cache, where the names in the pickle are spread over a MB.
    names_read: Vec<u8>,
    /// How many chunks the last tensor had: the next most likely has as many.
    per_tensor: usize,
    /// How many chunks all tensors have so far, and which of them have their storage (a second
    /// `storage_data` entry for one is left to the machine).
    chunks: u32,
    placed: Bits,
    /// Each entry's index by name.
    names: HashMap<&'a str, u32, foldhash::quality::RandomState>,
    /// Whether `state_dict_metadata`, `storage_data` were read.
    state_dict: bool,
    storage: bool,
    /// The entry the last `storage_data` entry named: the next one most likely names the next.
    last: usize,
    /// The last storage file's name, checked UTF-8: the file of a rank's chunks is one memoized
    /// str, read back.
    file: Option<(Span, &'a str)>,
    /// What chunks may weigh still (see [`BUDGET`]).
    budget: usize,
    /// What the value being read is for, in the record being read.
    role: Role,
    /// Whether a record is being read by its opcodes to be learnt, and where its ints and value
    /// strs were.
    learning: bool,
    holes: Vec<Hole>,
    templates: Templates,
    /// What the last record read from a template holds.
    values: Values,
}

/// One state-dict entry as read, or `None` when a chunk of it is not in `placed` (no storage
/// entry gave it its place) or a bytes entry has no storage location.
fn entry<'a>(raw: Raw<'a>, placed: &Bits) -> Option<(String, Entry<'a>)> {
    let entry = match raw.body {
        Body::Bytes(location) => Entry::Bytes(location?),
        Body::Tensor {
            dtype,
            size,
            chunks,
            first,
            ..
        } => {
            // Their layout was checked as the list was read (`laid_out`); here, their storage.
            let n = chunks.len() as u32;
            (first..first + n)
                .all(|i| placed.contains(i))
                .then_some(())?;
            Entry::Tensor(TensorEntry {
                dtype,
                size,
                chunks,
            })
        }
    };
    Some((raw.fqn.to_owned(), entry))
}

/// A tensor's chunks checked as the machine's reading checks them: inside the tensor of `size`,
/// not overlapping, covering it. Run as soon as its list is read, while the chunks are in the
/// cache, not in a pass over all of them at the end.
fn laid_out(size: &[u64], chunks: &[Chunk<'_>]) -> Option<()> {
    for c in chunks {
        fits(size, &c.offsets, &c.sizes).then_some(())?;
    }
    check_cover(size, chunks.len(), |i| {
        (&chunks[i].offsets, &chunks[i].sizes)
    })
    .ok()?;
    // Empty chunks may share offsets, and with them a storage entry, which this reading gives to
    // one of them only.
    if chunks.iter().any(|c| c.sizes.contains(&0)) {
        let mut offsets: Vec<&Dims> = chunks.iter().map(|c| &c.offsets).collect();
        offsets.sort_unstable();
        if offsets.windows(2).any(|w| w[0] == w[1]) {
            return None;
        }
    }
    Some(())
}

/// A str, or a global read back.
enum Named {
    Str(Span),
    Class(Class),
}

impl<'a> Fast<'a> {
    /// `PROTO`, then `Metadata` built with its dict, `STOP`.
    fn root(&mut self) -> Option<()> {
        self.r.expect(op::PROTO)?;
        self.r.u8()?;
        // From here on, frames (if any) follow each other.
        self.r.framed = true;
        self.r.end = self.r.pos;
        self.object(Record::Metadata)?;
        self.r.expect(op::EMPTY_DICT)?;
        self.memoize(None)?;
        self.r.expect(op::MARK)?;
        let pairs = self.kinds(op::SETITEMS, true)?;
        self.r.expect(op::BUILD)?;
        self.r.expect(op::STOP)?;
        if pairs.len() % 2 == 1 {
            return None;
        }
        // The machine reads each field's last value.
        let (mut state_dict, mut storage) = (None, None);
        for pair in pairs.chunks_exact(2) {
            if let Kind::Str(key) = pair[0] {
                match self.r.text(key) {
                    b"state_dict_metadata" => state_dict = Some(pair[1]),
                    b"storage_data" => storage = Some(pair[1]),
                    _ => {}
                }
            }
        }
        (state_dict == Some(Kind::StateDict) && storage == Some(Kind::Storage)).then_some(())
    }

    /// Every entry checked as the machine's reading checks it (each chunk with its storage; their
    /// layout was checked as each list was read), then the reading.
    fn finish(self) -> Option<Metadata<'a>> {
        // Collected in place: each entry takes its raw reading's room, not 200 KB more.
        let placed = &self.placed;
        let entries = (self.entries.into_iter())
            .map(|raw| entry(raw, placed))
            .collect::<Option<Vec<_>>>()?;
        Some(Metadata {
            entries,
            foreign: Vec::new(),
        })
    }

    /// MEMOIZE, if next, keeping `kept` for the value just read.
    #[inline]
    fn memoize(&mut self, kept: Option<Kept>) -> Option<()> {
        self.r.memoize(kept)
    }

    /// A str, or a str or global read back, and its MEMOIZE (a hole, in a record being learnt,
    /// when it is a field's value).
    #[inline]
    fn named(&mut self) -> Option<Named> {
        let (start, before) = (self.r.pos, self.memo_place());
        let kept = self.r.named()?;
        if self.learning && matches!(self.role, Role::Fqn | Role::File) {
            self.hole(start, before);
        }
        match kept {
            Kept::Str(span) => Some(Named::Str(span)),
            Kept::Class(class) => Some(Named::Class(class)),
            Kept::Taken | Kept::Unknown => None,
        }
    }

    /// A str (new or read back).
    #[inline]
    fn string(&mut self) -> Option<Span> {
        match self.named()? {
            Named::Str(span) => Some(span),
            Named::Class(_) => None,
        }
    }

    /// A global on the allow-list: STACK_GLOBAL of two strs, or one read back.
    #[inline]
    fn class(&mut self) -> Option<Class> {
        let class = match self.named()? {
            Named::Class(class) => return Some(class),
            Named::Str(module) => {
                let name = self.string()?;
                self.r.expect(op::STACK_GLOBAL)?;
                let text = |span| std::str::from_utf8(self.r.text(span)).ok();
                classify(text(module)?, text(name)?)
            }
        };
        if class == Class::Foreign {
            return None;
        }
        self.memoize(Some(Kept::Class(class)))?;
        Some(class)
    }

    /// A non-negative int that fits in 64 bits (a hole, in a record being learnt).
    #[inline]
    fn int(&mut self) -> Option<u64> {
        let (start, before) = (self.r.pos, self.memo_place());
        let int = self.r.int()?;
        if self.learning {
            self.hole(start, before);
        }
        Some(int)
    }

    /// The memo's count and how many values it kept.
    #[inline]
    fn memo_place(&self) -> (u32, usize) {
        (self.r.memo.len, self.r.memo.kept.len())
    }

    /// Notes, while a record is learnt, that a value for the current role stood from `start` to
    /// here (an int, or a str with its MEMOIZE), the memo as `before` before it.
    #[cold]
    fn hole(&mut self, start: usize, before: (u32, usize)) {
        self.holes.push(Hole {
            start,
            end: self.r.pos,
            role: self.role,
            memo: (before.0, self.r.memo.len),
            kept: (before.1, self.r.memo.kept.len()),
        });
    }

    /// A tuple of ints: `()`, one to three ints and TUPLE1-3, or MARK, ints, TUPLE.
    #[inline]
    fn ints(&mut self) -> Option<Dims> {
        let mut dims = Dims::new();
        if !self.r.eat(op::EMPTY_TUPLE)? {
            let marked = self.r.eat(op::MARK)?;
            loop {
                match self.r.peek()? {
                    op::TUPLE1 | op::TUPLE2 | op::TUPLE3 if !marked => {
                        let n = usize::from(self.r.op()? - op::TUPLE1 + 1);
                        (dims.len() == n).then_some(())?;
                        break;
                    }
                    op::TUPLE if marked => {
                        self.r.pos += 1;
                        break;
                    }
                    _ if dims.len() < MAX_DIMS => dims.push(self.int()?),
                    _ => return None,
                }
            }
        }
        self.memoize(None)?;
        Some(dims)
    }

    /// `torch.Size(tuple)`, as REDUCE of the class and a 1-tuple holding the tuple of ints.
    #[inline]
    fn size(&mut self) -> Option<Dims> {
        (self.class()? == Class::Size).then_some(())?;
        let dims = self.ints()?;
        self.r.expect(op::TUPLE1)?;
        self.memoize(None)?;
        self.r.expect(op::REDUCE)?;
        self.memoize(None)?;
        Some(dims)
    }

    /// An object of `record` made by NEWOBJ with no arguments.
    #[inline]
    fn object(&mut self, record: Record) -> Option<()> {
        self.role = Role::Key;
        (self.class()? == Class::Record(record)).then_some(())?;
        self.new_object()
    }

    /// `()`, NEWOBJ, after the class.
    #[inline]
    fn new_object(&mut self) -> Option<()> {
        self.r.expect(op::EMPTY_TUPLE)?;
        self.r.expect(op::NEWOBJ)?;
        self.memoize(None)
    }

    /// A container's items, after it and its MEMOIZE: batches of MARK, items, `many` (as the
    /// pickler writes two or more), or one item and `one`. `item` reads one item (a key and its
    /// value, for a dict).
    #[inline]
    fn items(
        &mut self,
        one: u8,
        many: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        if !self.r.eat(op::MARK)? {
            item(self)?;
            return self.r.expect(one);
        }
        loop {
            let mut n = 0;
            while !self.r.eat(many)? {
                n += 1;
                if n > MAX_STACK {
                    return None;
                }
                item(self)?;
            }
            if !self.r.eat(op::MARK)? {
                return Some(());
            }
        }
    }

    /// A dataclass's state: a dict of field names (each read by `field`), then BUILD.
    #[inline]
    fn state(&mut self, mut field: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.r.expect(op::EMPTY_DICT)?;
        self.memoize(None)?;
        self.items(op::SETITEM, op::SETITEMS, |f| {
            f.role = Role::Key;
            let key = f.string()?;
            field(f, f.r.text(key))
        })?;
        self.role = Role::Key;
        self.r.expect(op::BUILD)
    }
}
