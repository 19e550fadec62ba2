//! `.npz` archives (`np.savez`, `np.savez_compressed`): a zip of `.npy` members, each a named
//! array. Stored members are mapped in place; deflated ones are inflated, refusing sizes no
//! deflate stream of the member's length could produce, and more than [`MAX_INFLATED`] bytes in
//! all, counted before each member is inflated. A member name given twice is refused: the zip
//! crate keeps only the last, and numpy's `NpzFile` would show the other.

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
    /// A member name the central directory lists twice.
    #[error("the member {0} is in the archive twice; refusing to pick one")]
    Repeated(String),
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
    /// Deflated members that inflate to more than the cap, all together.
    #[error(
        "the compressed members inflate to more than {0} bytes in all (the cap on inflated .npz data; np.savez without compression is mapped in place, with no cap)"
    )]
    OverCap(u64),
    /// Inflating failed (a bad stream or CRC).
    #[error("{0}")]
    Read(#[from] std::io::Error),
    /// The member is no readable `.npy` array.
    #[error("{0}")]
    Npy(#[from] NpyError),
}

/// The most bytes the deflated members of one archive may inflate to, all together: inflated
/// data lives in memory (stored members are mapped instead), and a few kilobytes of deflate can
/// claim gigabytes.
pub const MAX_INFLATED: u64 = 4 << 30;

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
    open_capped(path, MAX_INFLATED)
}

/// [`open`] with `cap` bytes of inflated data at most.
fn open_capped(path: &Path, cap: u64) -> Result<Vec<(String, Tensor)>, FileError> {
    let fail = |error: NpzError| FileError::new(path, error);
    let map = super::mapped::open(path)?.map;
    let mut archive = ZipArchive::new(Cursor::new(&map[..])).map_err(|e| fail(NpzError::Zip(e)))?;
    if let Some(name) = repeated_name(&map) {
        return Err(fail(NpzError::Repeated(
            String::from_utf8_lossy(name).into_owned(),
        )));
    }
    let mut inflated: u64 = 0;
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
                inflated = inflated.saturating_add(size);
                if inflated > cap {
                    return Err(member(MemberError::OverCap(cap)));
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

/// A member name the zip's central directory lists twice, read from the directory itself (the zip
/// crate's map keeps one entry per name). `None` when every name is listed once, or when the
/// directory is not where its end record says (the zip crate reads such archives its own way).
fn repeated_name(zip: &[u8]) -> Option<&[u8]> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(zip.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(zip.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(zip.get(at..at + 8)?.try_into().ok()?));
    // The end record is in the last 64 KiB + 22 bytes (its comment is at most 65,535 bytes).
    let floor = zip.len().saturating_sub(65_557);
    let end = (floor..zip.len().saturating_sub(21))
        .rev()
        .find(|&at| zip[at..].starts_with(b"PK\x05\x06"))?;
    let (mut count, mut start) = (u64::from(u16_at(end + 10)?), u64::from(u32_at(end + 16)?));
    if count == 0xFFFF || start == 0xFFFF_FFFF {
        // Zip64: a locator just before the end record gives the zip64 end record's offset.
        let locator = end.checked_sub(20)?;
        if !zip[locator..].starts_with(b"PK\x06\x07") {
            return None;
        }
        let record = usize::try_from(u64_at(locator + 8)?).ok()?;
        if !zip.get(record..)?.starts_with(b"PK\x06\x06") {
            return None;
        }
        (count, start) = (u64_at(record + 32)?, u64_at(record + 48)?);
    }
    let mut at = usize::try_from(start).ok()?;
    let mut names: Vec<&[u8]> = Vec::new();
    for _ in 0..count {
        if !zip.get(at..)?.starts_with(b"PK\x01\x02") {
            return None;
        }
        let name_len = usize::from(u16_at(at + 28)?);
        let rest = usize::from(u16_at(at + 30)?) + usize::from(u16_at(at + 32)?);
        names.push(zip.get(at + 46..at + 46 + name_len)?);
        at += 46 + name_len + rest;
    }
    names.sort_unstable();
    names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

#[cfg(test)]
mod tests {
    use super::{open, open_capped};
    use std::io::Write as _;

    fn npy(values: &[f32]) -> Vec<u8> {
        let header = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
            values.len()
        );
        let mut header = header.into_bytes();
        header.resize(118, b' ');
        header.push(b'\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
        bytes.extend_from_slice(&header);
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn deflated_members_are_counted_against_the_cap_before_inflating() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npz");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for name in ["a.npy", "b.npy"] {
            zip.start_file(name, options).unwrap();
            zip.write_all(&npy(&[1.0; 100])).unwrap();
        }
        zip.finish().unwrap();
        assert_eq!(open(&path).unwrap().len(), 2);
        // The second member passes a cap of both members' bytes, and not one byte less.
        let member = npy(&[1.0; 100]).len() as u64;
        assert_eq!(open_capped(&path, 2 * member).unwrap().len(), 2);
        let Err(err) = open_capped(&path, 2 * member - 1) else {
            panic!("over the cap")
        };
        assert!(err.to_string().contains("member b.npy"), "{err}");
        let said = format!("more than {} bytes in all", 2 * member - 1);
        assert!(err.to_string().contains(&said), "{err}");
    }

    #[test]
    fn a_member_named_twice_is_refused() {
        // What Python's zipfile writes for two `writestr("w.npy", ...)` (it warns, and keeps both).
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/checkpoint_trust/duplicate_member.npz");
        let Err(err) = open(&path) else {
            panic!("a repeated name")
        };
        let said = err.to_string();
        assert!(
            said.contains("the member w.npy is in the archive twice"),
            "{said}"
        );
    }
}
