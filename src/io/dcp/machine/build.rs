//! BUILD: a dataclass object gets its state. The three classes of which a checkpoint holds one
//! per chunk (`ChunkStorageMetadata`, `MetadataIndex`, `_StorageInfo`) have theirs read at once
//! into a tuple of scalars, and the dict, `torch.Size`s and argument tuples it was made of are
//! dropped when nothing else can reach them: the machine then holds a few bytes per chunk rather
//! than a few hundred, and its memory stays a fraction of the pickle's size.

use smallvec::SmallVec;

use super::{MAX_VALUES, Machine, Record, V};
use crate::io::pickle::Error;

/// The most dimensions a chunk's offsets may have.
const MAX_DIMS: usize = 64;

impl Machine<'_> {
    /// BUILD with `state` on the object on top of the stack (on anything else, nothing).
    pub(super) fn build(&mut self, state: V) -> Result<(), Error> {
        let V::Obj(id) = self.top()? else {
            return Ok(());
        };
        let object = self.objects[id as usize];
        let Some(scalars) = self.scalars(object.class, state)? else {
            self.objects[id as usize].state = state;
            if object.shared {
                self.keep();
            }
            return Ok(());
        };
        // What came after the object is its state's, unless something kept can reach it. An
        // object the memo keeps may come back to the top of the stack over values made after
        // it: then nothing is dropped.
        if !object.shared {
            self.items.truncate(self.kept.0.max(object.mark.0 as usize));
            self.runs.truncate(self.kept.1.max(object.mark.1 as usize));
        }
        if self.items.len() + scalars.len() >= MAX_VALUES {
            return Err(self.too_many("values built", MAX_VALUES));
        }
        let start = self.items.len() as u32;
        self.items.extend_from_slice(&scalars);
        self.objects[id as usize].state = V::Tuple(start, scalars.len() as u32);
        if object.shared {
            self.keep();
        }
        Ok(())
    }

    /// The scalars a per-chunk record keeps, read from its `__dict__` state:
    /// - `ChunkStorageMetadata`: the number of offsets, the offsets, the sizes;
    /// - `MetadataIndex`: the name, then `None` or the number of offsets and the offsets;
    /// - `_StorageInfo`: the file, offset, length, then each transform descriptor.
    ///
    /// `None` for the other classes, which keep their state as it is.
    fn scalars(&self, class: Record, state: V) -> Result<Option<SmallVec<[V; 16]>>, Error> {
        let field = |name: &str| {
            self.field(state, name)
                .ok_or_else(|| self.malformed(&format!("a {} without {name}", class.name())))
        };
        let mut out = SmallVec::new();
        match class {
            Record::ChunkStorage => {
                let (offsets, sizes) = (field("offsets")?, field("sizes")?);
                out.push(V::Int(self.len(offsets) as i64));
                self.push_seq(&mut out, offsets, class)?;
                self.push_seq(&mut out, sizes, class)?;
            }
            Record::MetadataIndex => {
                out.push(field("fqn")?);
                match self.field(state, "offset") {
                    None | Some(V::None) => out.push(V::None),
                    Some(offsets) => {
                        out.push(V::Int(self.len(offsets) as i64));
                        self.push_seq(&mut out, offsets, class)?;
                    }
                }
            }
            Record::StorageInfo => {
                out.extend([field("relative_path")?, field("offset")?, field("length")?]);
                match self.field(state, "transform_descriptors") {
                    None | Some(V::None) => {}
                    Some(transforms) => self.push_seq(&mut out, transforms, class)?,
                }
            }
            _ => return Ok(None),
        }
        Ok(Some(out))
    }

    /// Pushes the items of the tuple or list `seq`: scalars, and no more than [`MAX_DIMS`].
    fn push_seq(&self, out: &mut SmallVec<[V; 16]>, seq: V, class: Record) -> Result<(), Error> {
        let wrong = || self.malformed(&format!("a {} holding a malformed field", class.name()));
        let items = self.seq(seq).ok_or_else(wrong)?;
        for (i, item) in items.enumerate() {
            if i == MAX_DIMS || !matches!(item, V::Int(_) | V::Str(..)) {
                return Err(wrong());
            }
            out.push(item);
        }
        Ok(())
    }
}
