//! The records read straight through: `state_dict_metadata`'s entries (each tensor's dtype,
//! size and chunks), and `storage_data`'s pairs, each given to the chunk it names.

use super::super::machine::{Class, Record};
use super::reader::{Kept, Span, same, same_dims};
use super::template::Role;
use super::{
    Body, Chunk, Dims, Fast, Location, MAX_CHUNKS, MAX_DIMS, Raw, TorchDtype, UNPLACED, laid_out,
};
use crate::io::pickle::reader::op;

impl<'a> Fast<'a> {
    /// `state_dict_metadata`'s dict, after its EMPTY_DICT: each name and its entry.
    pub(super) fn state_dict(&mut self) -> Option<()> {
        if self.state_dict {
            return None;
        }
        self.state_dict = true;
        self.memoize(Some(Kept::Taken))?;
        self.items(op::SETITEM, op::SETITEMS, |f| {
            let fqn = f.string()?;
            let fqn = std::str::from_utf8(f.r.text(fqn)).ok()?;
            let body = match f.class()? {
                Class::Record(Record::TensorStorage) => {
                    f.new_object()?;
                    f.tensor()?
                }
                Class::Record(Record::BytesStorage) => {
                    f.new_object()?;
                    Body::Bytes(None)
                }
                _ => return None,
            };
            // A name listed twice is left to the machine.
            if f.names.insert(fqn, f.entries.len() as u32).is_some() {
                return None;
            }
            let name = (f.names_read.len() as u32, fqn.len() as u32);
            f.names_read.extend_from_slice(fqn.as_bytes());
            f.entries.push(Raw { fqn, name, body });
            Some(())
        })
    }

    /// A `TensorStorageMetadata`'s state.
    pub(super) fn tensor(&mut self) -> Option<Body<'a>> {
        let (mut dtype, mut size, mut chunks) = (None, None, None);
        self.state(|f, key| {
            match key {
                b"properties" if dtype.is_none() => dtype = Some(f.properties()?),
                b"size" if size.is_none() => size = Some(f.shape()?),
                b"chunks" if chunks.is_none() => chunks = Some(f.chunks()?),
                _ => return None,
            }
            Some(())
        })?;
        let ((first, chunks), size) = (chunks?, size?);
        laid_out(&size, &chunks)?;
        Some(Body::Tensor {
            dtype: dtype?,
            size,
            chunks,
            first,
            next: 0,
        })
    }

    /// A `TensorProperties` (its dtype). Read from the template of the last one when its bytes
    /// match (every tensor of a dtype is written with the same bytes, the globals read back from
    /// the memo), else by its opcodes (and learnt).
    pub(super) fn properties(&mut self) -> Option<TorchDtype> {
        if let Some(dtype) = self.replay(|t| &t.properties) {
            return Some(dtype);
        }
        let start = self.learn();
        let dtype = self.properties_by_opcodes()?;
        self.learnt(&start, dtype, true, |t| &mut t.properties);
        Some(dtype)
    }

    /// A `TensorProperties` by its opcodes: its state is a tuple, the dtype first.
    fn properties_by_opcodes(&mut self) -> Option<TorchDtype> {
        self.object(Record::TensorProperties)?;
        self.r.expect(op::MARK)?;
        let Class::Dtype(dtype) = self.class()? else {
            return None;
        };
        self.kinds(op::TUPLE, false)?;
        self.memoize(None)?;
        self.r.expect(op::BUILD)?;
        Some(dtype)
    }

    /// A tensor's `torch.Size`. Read from the template of the last one when its bytes match (as
    /// many dimensions, each int as wide), else by its opcodes (and learnt).
    pub(super) fn shape(&mut self) -> Option<Dims> {
        if self.replay(|t| &t.shape).is_some() {
            return Some(std::mem::take(&mut self.values.sizes));
        }
        let start = self.learn();
        self.role = Role::Sizes;
        let size = self.size()?;
        self.learnt(&start, (), true, |t| &mut t.shape);
        Some(size)
    }

    /// A tensor's list of `ChunkStorageMetadata`, and the number of its first chunk.
    pub(super) fn chunks(&mut self) -> Option<(u32, Vec<Chunk<'a>>)> {
        self.r.expect(op::EMPTY_LIST)?;
        self.memoize(None)?;
        let mut chunks = Vec::with_capacity(self.per_tensor.min(MAX_CHUNKS));
        self.items(op::APPEND, op::APPENDS, |f| {
            (chunks.len() < MAX_CHUNKS).then_some(())?;
            f.chunk(&mut chunks)
        })?;
        self.per_tensor = chunks.len();
        let first = self.chunks;
        // Each chunk spends 16 of the BUDGET: at most 2^19 in all.
        self.chunks += chunks.len() as u32;
        Some((first, chunks))
    }

    /// One `ChunkStorageMetadata` (its offsets and sizes), put in `chunks`. Read from the template
    /// of the last one when its bytes match, else by its opcodes (and learnt).
    #[inline]
    pub(super) fn chunk(&mut self, chunks: &mut Vec<Chunk<'a>>) -> Option<()> {
        let (offsets, sizes) = if self.replay(|t| &t.chunk).is_some() {
            let v = &mut self.values;
            (std::mem::take(&mut v.offsets), std::mem::take(&mut v.sizes))
        } else {
            let start = self.learn();
            let read = self.chunk_by_opcodes()?;
            self.learnt(&start, (), true, |t| &mut t.chunk);
            read
        };
        self.spend(offsets.len() + sizes.len())?;
        chunks.push(Chunk {
            offsets,
            sizes,
            location: UNPLACED,
        });
        Some(())
    }

    pub(super) fn chunk_by_opcodes(&mut self) -> Option<(Dims, Dims)> {
        self.object(Record::ChunkStorage)?;
        let (mut offsets, mut sizes) = (None, None);
        self.state(|f, key| {
            match key {
                b"offsets" if offsets.is_none() => {
                    f.role = Role::Offsets;
                    offsets = Some(f.size()?);
                }
                b"sizes" if sizes.is_none() => {
                    f.role = Role::Sizes;
                    sizes = Some(f.size()?);
                }
                _ => return None,
            }
            Some(())
        })?;
        Some((offsets?, sizes?))
    }

    /// Takes a chunk's or storage entry's weight (its dimensions) from the budget.
    #[inline]
    pub(super) fn spend(&mut self, dims: usize) -> Option<()> {
        self.budget = self.budget.checked_sub(16 + 2 * dims)?;
        Some(())
    }

    /// `storage_data`'s dict, after its EMPTY_DICT: each `MetadataIndex` and its `_StorageInfo`,
    /// given to the chunk (or non-tensor entry) it names.
    pub(super) fn storage(&mut self) -> Option<()> {
        if !self.state_dict || self.storage {
            return None;
        }
        self.storage = true;
        self.memoize(Some(Kept::Taken))?;
        self.items(op::SETITEM, op::SETITEMS, |f| {
            let (fqn, offsets, location) = if let Some(index_offsets) = f.replay(|t| &t.storage) {
                let file = f.file_name(f.values.file)?;
                let v = &mut f.values;
                let offsets = index_offsets.then(|| std::mem::take(&mut v.index));
                let location = Location {
                    file,
                    offset: v.offset,
                    length: v.length,
                    transforms: Vec::new(),
                };
                (v.fqn, offsets, location)
            } else {
                let start = f.learn();
                let (fqn, offsets) = f.index()?;
                let location = f.location()?;
                let plain = location.transforms.is_empty();
                f.learnt(&start, offsets.is_some(), plain, |t| &mut t.storage);
                (fqn, offsets, location)
            };
            f.spend(offsets.as_ref().map_or(0, Dims::len))?;
            f.give(fqn, offsets, location)
        })
    }

    /// A `MetadataIndex`: the name and the chunk's offsets (`None` for a non-tensor entry).
    pub(super) fn index(&mut self) -> Option<(Span, Option<Dims>)> {
        self.object(Record::MetadataIndex)?;
        let (mut fqn, mut offset, mut index) = (None, None, false);
        self.state(|f, key| {
            match key {
                b"fqn" if fqn.is_none() => {
                    f.role = Role::Fqn;
                    fqn = Some(f.string()?);
                }
                b"offset" if offset.is_none() => {
                    f.role = Role::IndexOffsets;
                    offset = Some(if f.r.eat(op::NONE)? {
                        None
                    } else {
                        Some(f.size()?)
                    });
                }
                // Never read: a hint for the loader.
                b"index" if !index => {
                    f.role = Role::Index;
                    index = true;
                    if !f.r.eat(op::NONE)? {
                        f.int()?;
                    }
                }
                _ => return None,
            }
            Some(())
        })?;
        Some((fqn?, offset.flatten()))
    }

    /// A `_StorageInfo`.
    pub(super) fn location(&mut self) -> Option<Location<'a>> {
        self.object(Record::StorageInfo)?;
        let (mut file, mut offset, mut length, mut transforms) = (None, None, None, None);
        self.state(|f, key| {
            match key {
                b"relative_path" if file.is_none() => {
                    f.role = Role::File;
                    file = Some(f.string()?);
                }
                b"offset" if offset.is_none() => {
                    f.role = Role::Offset;
                    offset = Some(f.int()?);
                }
                b"length" if length.is_none() => {
                    f.role = Role::Length;
                    length = Some(f.int()?);
                }
                b"transform_descriptors" if transforms.is_none() => {
                    transforms = Some(f.transforms()?);
                }
                _ => return None,
            }
            Some(())
        })?;
        Some(Location {
            file: self.file_name(file?)?,
            offset: offset?,
            length: length?,
            transforms: transforms.unwrap_or_default(),
        })
    }

    /// A storage file's name, checked UTF-8 (once for a rank's chunks, which name it by one str).
    #[inline]
    pub(super) fn file_name(&mut self, span: Span) -> Option<&'a str> {
        match self.file {
            Some((last, name)) if last == span => Some(name),
            _ => {
                let name = std::str::from_utf8(self.r.text(span)).ok()?;
                self.file = Some((span, name));
                Some(name)
            }
        }
    }

    /// `transform_descriptors`: None, or a list of strs.
    pub(super) fn transforms(&mut self) -> Option<Vec<String>> {
        if self.r.eat(op::NONE)? {
            return Some(Vec::new());
        }
        self.r.expect(op::EMPTY_LIST)?;
        self.memoize(None)?;
        let mut out = Vec::new();
        self.items(op::APPEND, op::APPENDS, |f| {
            (out.len() < MAX_DIMS).then_some(())?;
            let text = f.string()?;
            let text = std::str::from_utf8(f.r.text(text)).ok()?;
            out.push(text.to_owned());
            Some(())
        })?;
        Some(out)
    }

    /// Gives `location` to the entry `fqn` names and, for a tensor, its chunk at `offsets`. A
    /// name no entry has is passed over, as the machine's reading never asks for it; a second
    /// storage entry for one chunk, or one for no chunk, is left to the machine.
    pub(super) fn give(
        &mut self,
        fqn: Span,
        offsets: Option<Dims>,
        location: Location<'a>,
    ) -> Option<()> {
        let name = self.r.text(fqn);
        // Each rank's entries come in the state dict's order.
        let guess = self.last + 1;
        let i = if self.entries.get(guess).is_some_and(|e| {
            let (at, n) = (e.name.0 as usize, e.name.1 as usize);
            same(&self.names_read[at..at + n], name)
        }) {
            guess
        } else {
            let name = std::str::from_utf8(name).ok()?;
            match self.names.get(name) {
                Some(&i) => i as usize,
                None => return Some(()),
            }
        };
        self.last = i;
        match (&mut self.entries[i].body, offsets) {
            (Body::Bytes(slot @ None), None) => *slot = Some(location),
            (
                Body::Tensor {
                    chunks,
                    first,
                    next,
                    ..
                },
                Some(offsets),
            ) => {
                let at = |c: &Chunk| same_dims(&c.offsets, &offsets);
                // Each rank's chunks of a tensor come in the chunk list's order.
                let k = if chunks.get(*next as usize).is_some_and(at) {
                    *next as usize
                } else if chunks.len() <= 64 {
                    chunks.iter().position(at)?
                } else {
                    return None;
                };
                if !self.placed.insert(*first + k as u32) {
                    return None;
                }
                chunks[k].location = location;
                *next = k as u32 + 1;
            }
            _ => return None,
        }
        Some(())
    }
}
