//! Records read by template: a chunk's `ChunkStorageMetadata`, a `MetadataIndex` and its
//! `_StorageInfo`, or a tensor's `TensorProperties`, is read by its opcodes once and learnt as runs
//! of bytes with holes where its ints and value strs stand; the next record of its kind whose bytes
//! match the runs is read from them, its values taken from the holes, without its opcodes being
//! read one by one. A record that does not match (another rank's file, another dtype, a frame's
//! end) is read by its opcodes and learnt anew.

use super::super::memo::MAX_MEMO;
use super::reader::{Kept, Reader, Span, same};
use super::{Dims, Fast, TorchDtype};

/// What a value in a chunk or storage record is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// A field's name, a class, or any value that is not one of the below.
    Key,
    /// `ChunkStorageMetadata.offsets`, `.sizes` (and a tensor's size), `MetadataIndex.offset`
    /// (ints).
    Offsets,
    Sizes,
    IndexOffsets,
    /// `MetadataIndex.index` (an int, never read).
    Index,
    /// `_StorageInfo.offset`, `.length` (ints).
    Offset,
    Length,
    /// `MetadataIndex.fqn`, `_StorageInfo.relative_path` (strs).
    Fqn,
    File,
}

/// Where an int or a value str stood in a record read by its opcodes, and what the memo held
/// around it.
pub(super) struct Hole {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) role: Role,
    /// The memo's count before and after.
    pub(super) memo: (u32, u32),
    /// How many values the memo kept before and after.
    pub(super) kept: (usize, usize),
}

/// A record as a previous one of its kind was written: runs of its bytes, and the places where
/// an int or a str stood (a record whose bytes match the runs, with any int or str in those
/// places, is read as that one was, with those values). `R` is what it read outside the holes,
/// the same for every record that matches: whether a `MetadataIndex` had offsets, the dtype of a
/// `TensorProperties` (a global read back from the memo, whose index the runs hold).
pub(super) struct Template<R> {
    pub(super) parts: Vec<Part>,
    pub(super) read: R,
}

/// The last record of each kind read by its opcodes, as learnt.
#[derive(Default)]
pub(super) struct Templates {
    pub(super) chunk: Option<Template<()>>,
    /// Whether the `MetadataIndex` had offsets (not None).
    pub(super) storage: Option<Template<bool>>,
    pub(super) properties: Option<Template<TorchDtype>>,
    /// A tensor's `torch.Size`, its ints read as a chunk's sizes.
    pub(super) shape: Option<Template<()>>,
}

#[derive(Clone, Copy)]
pub(super) enum Part {
    /// `len` bytes as at `at` in the pickle, holding `memo` MEMOIZEs and nothing kept.
    Run { at: u32, len: u32, memo: u32 },
    /// An int or a str.
    Hole(Role),
}

/// What a record read from a template holds (its ints and value strs).
#[derive(Default)]
pub(super) struct Values {
    pub(super) offsets: Dims,
    pub(super) sizes: Dims,
    pub(super) index: Dims,
    pub(super) fqn: Span,
    pub(super) file: Span,
    pub(super) offset: u64,
    pub(super) length: u64,
}

/// Where the reading was: to go back to when a record does not match its template.
pub(super) struct Place {
    pub(super) pos: usize,
    pub(super) end: usize,
    pub(super) framed: bool,
    pub(super) memo: u32,
    pub(super) kept: usize,
}

impl Fast<'_> {
    /// Where a record starts, its holes noted from here on: to learn it once read.
    pub(super) fn learn(&mut self) -> Place {
        self.holes.clear();
        self.learning = true;
        self.place()
    }

    pub(super) fn place(&self) -> Place {
        place(&self.r)
    }

    pub(super) fn go_back(&mut self, place: &Place) {
        self.r.pos = place.pos;
        self.r.end = place.end;
        self.r.framed = place.framed;
        self.r.memo.len = place.memo;
        self.r.memo.kept.truncate(place.kept);
        self.r.memo.recent = [(u32::MAX, Kept::Unknown); 64];
    }

    /// The record read by its opcodes since `start` (which read `read` outside its holes) made the
    /// template of its kind, in `slot`, when it can be one: it lies in one frame, `plain` (nothing
    /// read that a template does not give back), every hole is an int or value str of its fields,
    /// and the memo kept nothing but those strs.
    pub(super) fn learnt<R>(
        &mut self,
        start: &Place,
        read: R,
        plain: bool,
        slot: fn(&mut Templates) -> &mut Option<Template<R>>,
    ) {
        self.learning = false;
        let holes = &self.holes;
        let one_frame = self.r.end == start.end && self.r.framed == start.framed;
        let kept_in_holes: usize = holes.iter().map(|h| h.kept.1 - h.kept.0).sum();
        let learnable = plain
            && one_frame
            && self.r.memo.kept.len() - start.kept == kept_in_holes
            && holes.iter().all(|h| h.role != Role::Key);
        if !learnable {
            return;
        }
        let mut parts = Vec::with_capacity(2 * holes.len() + 1);
        let (mut at, mut memo) = (start.pos, start.memo);
        for h in holes {
            // Nothing between two ints (a chunk's offsets): no run to match.
            if h.start > at || h.memo.0 > memo {
                parts.push(Part::Run {
                    at: at as u32,
                    len: (h.start - at) as u32,
                    memo: h.memo.0 - memo,
                });
            }
            parts.push(Part::Hole(h.role));
            (at, memo) = (h.end, h.memo.1);
        }
        parts.push(Part::Run {
            at: at as u32,
            len: (self.r.pos - at) as u32,
            memo: self.r.memo.len - memo,
        });
        *slot(&mut self.templates) = Some(Template { parts, read });
    }

    /// The record here read from the template of its kind, in `slot`: what it read outside its
    /// holes, and its values, when its bytes match the template's runs; nothing read otherwise.
    #[inline]
    pub(super) fn replay<R: Copy>(
        &mut self,
        slot: fn(&Templates) -> &Option<Template<R>>,
    ) -> Option<R> {
        let template = slot(&self.templates).as_ref()?;
        let start = place(&self.r);
        if replay(&mut self.r, &mut self.values, &template.parts).is_some() {
            return Some(template.read);
        }
        self.go_back(&start);
        None
    }
}

/// Where the reading is.
fn place(r: &Reader<'_>) -> Place {
    Place {
        pos: r.pos,
        end: r.end,
        framed: r.framed,
        memo: r.memo.len,
        kept: r.memo.kept.len(),
    }
}

/// The template's `parts` matched at `r`, the values in its holes read into `values`.
#[inline]
fn replay(r: &mut Reader<'_>, values: &mut Values, parts: &[Part]) -> Option<()> {
    values.offsets.clear();
    values.sizes.clear();
    values.index.clear();
    for &part in parts {
        match part {
            Part::Run { at, len, memo } => {
                let (at, len) = (at as usize, len as usize);
                let end = r.pos + len;
                if end > r.end || !same(r.bytes.get(r.pos..end)?, r.bytes.get(at..at + len)?) {
                    return None;
                }
                r.pos = end;
                r.memo.len += memo;
                if r.memo.len as usize > MAX_MEMO {
                    return None;
                }
            }
            Part::Hole(role) => match role {
                Role::Fqn => values.fqn = r.string()?,
                Role::File => values.file = r.string()?,
                Role::Offsets => values.offsets.push(r.int()?),
                Role::Sizes => values.sizes.push(r.int()?),
                Role::IndexOffsets => values.index.push(r.int()?),
                Role::Offset => values.offset = r.int()?,
                Role::Length => values.length = r.int()?,
                Role::Index => _ = r.int()?,
                Role::Key => return None,
            },
        }
    }
    Some(())
}
