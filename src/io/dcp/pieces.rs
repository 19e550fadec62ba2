//! A tensor of a distributed checkpoint, kept as the places of its chunks until its values are
//! first asked for: then each chunk's bytes are checked (its `torch.save` archive read, its
//! dtype, shape and storage compared with the metadata) and the tensor is put together once, or
//! read in place when one contiguous chunk holds all of it. Opening a folder reads only its
//! `.metadata`; a damaged chunk is an error naming its file and the tensor when it is read.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use memmap2::Mmap;

use super::chunk::{self, c_strides};
use super::{DcpError, Problem};
use crate::io::FileError;
use crate::io::pickle::TorchDtype;
use crate::tensor::{Assemble, FetchError, Shard};

/// A tensor's shape, kept inline.
pub type Shape = smallvec::SmallVec<[usize; 4]>;

/// The tensor's bytes once read.
enum Whole {
    /// One contiguous chunk holding every element: this range of the first chunk's map.
    InPlace(std::ops::Range<usize>),
    /// The chunks copied into place.
    Copied(Box<[u8]>),
}

/// A tensor in chunks.
pub struct Pieces {
    /// The checkpoint's folder, to name a chunk's file in an error.
    folder: Arc<Path>,
    /// The tensor's name, for errors.
    tensor: String,
    dtype: TorchDtype,
    /// Inline: the [`crate::tensor::Tensor`] keeps its own, and a copy on the heap would cost an
    /// allocation per tensor.
    shape: Shape,
    /// Bytes in the whole tensor.
    len: usize,
    /// Each chunk's place, and its file mapped (the range checked to lie inside the file).
    shards: Vec<Shard>,
    maps: Vec<Arc<Mmap>>,
    whole: OnceLock<Whole>,
}

impl Pieces {
    /// The tensor `tensor` of `shape` (`len` bytes of `dtype`) covered exactly by `shards`, as
    /// the metadata says (checked when the folder opened), each with its file mapped in `maps`.
    pub fn new(
        folder: Arc<Path>,
        tensor: String,
        dtype: TorchDtype,
        shape: Shape,
        len: usize,
        maps: Vec<Arc<Mmap>>,
        shards: Vec<Shard>,
    ) -> Self {
        Pieces {
            folder,
            tensor,
            dtype,
            shape,
            len,
            shards,
            maps,
            whole: OnceLock::new(),
        }
    }

    /// Every chunk checked, then the tensor in place or put together.
    fn put_together(&self) -> Result<Whole, FileError> {
        let elem = self.dtype.size();
        let mut pieces = Vec::with_capacity(self.shards.len());
        for (shard, map) in self.shards.iter().zip(&self.maps) {
            let fail = |problem: Problem| {
                FileError::new(
                    &self.folder.join(&*shard.file),
                    DcpError::Tensor {
                        tensor: self.tensor.clone(),
                        problem,
                    },
                )
            };
            // Checked against the file's length when the folder opened.
            let start = usize::try_from(shard.bytes.start).map_err(|_| fail(Problem::Absurd))?;
            let end = usize::try_from(shard.bytes.end).map_err(|_| fail(Problem::Absurd))?;
            let piece = chunk::piece(map, start..end, self.dtype, &shard.sizes, &shard.offsets)
                .map_err(fail)?;
            pieces.push(piece);
        }
        if let [one] = pieces.as_slice()
            && let Some(range) = one.contiguous(elem).filter(|r| r.len() == self.len)
        {
            return Ok(Whole::InPlace(range));
        }
        let mut out = vec![0u8; self.len];
        let full = c_strides(&self.shape);
        for (piece, shard) in pieces.iter().zip(&self.shards) {
            if !shard.sizes.contains(&0) {
                piece.copy_into(&mut out, &full, elem);
            }
        }
        Ok(Whole::Copied(out.into_boxed_slice()))
    }

    fn bytes_of<'a>(&'a self, whole: &'a Whole) -> &'a [u8] {
        match whole {
            Whole::InPlace(range) => &self.maps[0][range.clone()],
            Whole::Copied(bytes) => bytes,
        }
    }
}

impl Assemble for Pieces {
    fn ready(&self) -> Option<&[u8]> {
        self.whole.get().map(|w| self.bytes_of(w))
    }

    fn read(&self) -> Result<&[u8], FetchError> {
        if let Some(bytes) = self.ready() {
            return Ok(bytes);
        }
        // Two threads reading at once both put it together; the first kept wins. A damaged chunk
        // is not kept: it is said again on the next read.
        let whole = self.put_together().map_err(|e| FetchError(Box::new(e)))?;
        Ok(self.bytes_of(self.whole.get_or_init(|| whole)))
    }

    fn byte_len(&self) -> usize {
        self.len
    }

    fn shards(&self) -> &[Shard] {
        &self.shards
    }

    fn in_place(&self) -> Option<(&Mmap, std::ops::Range<usize>)> {
        match self.whole.get()? {
            Whole::InPlace(range) => Some((&self.maps[0], range.clone())),
            Whole::Copied(_) => None,
        }
    }

    fn unread(&self) -> Arc<dyn Assemble> {
        Arc::new(Pieces {
            folder: Arc::clone(&self.folder),
            tensor: self.tensor.clone(),
            dtype: self.dtype,
            shape: self.shape.clone(),
            len: self.len,
            shards: self.shards.clone(),
            maps: self.maps.clone(),
            whole: OnceLock::new(),
        })
    }
}
