//! `.npz` archives (`np.savez`, `np.savez_compressed`): a zip of `.npy` members, each a named
//! array. Stored members are mapped in place; deflated ones are inflated, refusing sizes no
//! deflate stream of the member's length could produce.

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::Path;
use std::sync::Arc;

use zip::result::ZipError;
use zip::{CompressionMethod, ZipArchive};

use super::FileError;
use super::npy::{self, NpyError};
use crate::tensor::Tensor;

/// Deflate expands at most about 1032 to 1: a member claiming more is lying about its size.
const MAX_RATIO: u64 = 1032;

/// Why an `.npz` could not be read (the [`FileError`]'s kind). Member names are kept raw.
#[derive(Debug, thiserror::Error)]
pub enum NpzError {
    /// The zip's directory cannot be read.
    #[error("not a readable zip archive (.npz): {0}")]
    Zip(ZipError),
    /// A member's entry cannot be read.
    #[error("zip member {index}: {source}")]
    Entry {
        /// Its place in the archive.
        index: usize,
        /// Why.
        source: ZipError,
    },
    /// A member that is not a readable array.
    #[error("member {name}: {problem}")]
    Member {
        /// Its name in the archive.
        name: String,
        /// What is wrong with it.
        problem: MemberError,
    },
}

/// What is wrong with one member of an `.npz`.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    /// A stored member whose data the archive does not locate.
    #[error("no data offset")]
    NoDataOffset,
    /// A stored member whose data runs past the file.
    #[error("its data runs past the end of the file")]
    PastEnd,
    /// A deflated member claiming more bytes than its compressed length can give.
    #[error("claims {size} bytes inflated from {compressed}, more than deflate can produce")]
    Inflation {
        /// The size it claims.
        size: u64,
        /// Its compressed size.
        compressed: u64,
    },
    /// A size smaller than the `.npy` header already read.
    #[error("its size is smaller than its header")]
    SmallerThanHeader,
    /// A compression other than stored and deflated.
    #[error("compression {0} is not supported")]
    Compression(CompressionMethod),
    /// Inflating failed (a bad stream or CRC).
    #[error("{0}")]
    Read(#[from] std::io::Error),
    /// The member is no readable `.npy` array.
    #[error("{0}")]
    Npy(#[from] NpyError),
}

/// Whether the file at `path` is an `.npz`: a zip archive whose members are all `.npy` files
/// (only the central directory is read).
#[must_use]
pub fn is_npz(path: &Path) -> bool {
    let Ok(archive) = File::open(path).map(ZipArchive::new) else {
        return false;
    };
    let Ok(archive) = archive else {
        return false;
    };
    !archive.is_empty()
        && archive
            .file_names()
            .all(|n| n.is_ok_and(|n| n.ends_with(".npy")))
}

/// Opens an `.npz`: one tensor per member, named without the `.npy` suffix, in archive order.
pub fn open(path: &Path) -> Result<Vec<(String, Tensor)>, FileError> {
    let fail = |error: NpzError| FileError::new(path, error);
    let map = super::mapped::open(path)?.map;
    let mut archive = ZipArchive::new(Cursor::new(&map[..])).map_err(|e| fail(NpzError::Zip(e)))?;
    let mut tensors = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|source| fail(NpzError::Entry { index, source }))?;
        if entry.is_dir() {
            continue;
        }
        let raw_name = entry
            .name()
            .map_err(|source| fail(NpzError::Entry { index, source }))?
            .into_owned();
        let name = raw_name
            .strip_suffix(".npy")
            .unwrap_or(&raw_name)
            .to_owned();
        let member = |problem: MemberError| {
            fail(NpzError::Member {
                name: raw_name.clone(),
                problem,
            })
        };
        let tensor = match entry.compression() {
            CompressionMethod::Stored => {
                let start = entry
                    .data_start()
                    .and_then(|s| usize::try_from(s).ok())
                    .ok_or_else(|| member(MemberError::NoDataOffset))?;
                let end = usize::try_from(entry.size())
                    .ok()
                    .and_then(|n| start.checked_add(n))
                    .filter(|&e| e <= map.len())
                    .ok_or_else(|| member(MemberError::PastEnd))?;
                let bytes = &map[start..end];
                let (header, len) =
                    npy::read_header(&mut &bytes[..]).map_err(|e| member(e.into()))?;
                npy::tensor(
                    &header,
                    &bytes[len..],
                    Some((Arc::clone(&map), start + len)),
                )
                .map_err(|e| member(e.into()))?
            }
            CompressionMethod::Deflated => {
                let size = entry.size();
                if size
                    > entry
                        .compressed_size()
                        .saturating_mul(MAX_RATIO)
                        .saturating_add(1024)
                {
                    return Err(member(MemberError::Inflation {
                        size,
                        compressed: entry.compressed_size(),
                    }));
                }
                let (header, len) = npy::read_header(&mut entry).map_err(|e| member(e.into()))?;
                let need = usize::try_from(size)
                    .ok()
                    .and_then(|s| s.checked_sub(len))
                    .ok_or_else(|| member(MemberError::SmallerThanHeader))?;
                let mut data = Vec::with_capacity(need);
                // One byte more than promised: reading to the end also checks the CRC.
                entry
                    .take(need as u64 + 1)
                    .read_to_end(&mut data)
                    .map_err(|e| member(e.into()))?;
                npy::tensor(&header, &data, None).map_err(|e| member(e.into()))?
            }
            other => return Err(member(MemberError::Compression(other))),
        };
        tensors.push((name, tensor));
    }
    Ok(tensors)
}
