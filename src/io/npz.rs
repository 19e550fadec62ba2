//! `.npz` archives (`np.savez`, `np.savez_compressed`): a zip of `.npy` members, each a named
//! array. Stored members are mapped in place; deflated ones are inflated, refusing sizes no
//! deflate stream of the member's length could produce.

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::Path;
use std::sync::Arc;

use zip::{CompressionMethod, ZipArchive};

use super::npy;
use super::safetensors::FileError;
use crate::tensor::Tensor;
use crate::text::escape;

/// Deflate expands at most about 1032 to 1: a member claiming more is lying about its size.
const MAX_RATIO: u64 = 1032;

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
    let fail = |reason: String| FileError::new(path, reason);
    let map = super::mapped::open(path)?.map;
    let mut archive = ZipArchive::new(Cursor::new(&map[..]))
        .map_err(|e| fail(format!("not a readable zip archive (.npz): {e}")))?;
    let mut tensors = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|e| fail(format!("zip member {index}: {e}")))?;
        if entry.is_dir() {
            continue;
        }
        let raw_name = entry
            .name()
            .map_err(|e| fail(format!("zip member {index}: {e}")))?
            .into_owned();
        let name = raw_name
            .strip_suffix(".npy")
            .unwrap_or(&raw_name)
            .to_owned();
        let member = |e: &dyn std::fmt::Display| fail(format!("member {}: {e}", escape(&raw_name)));
        let tensor = match entry.compression() {
            CompressionMethod::Stored => {
                let start = entry
                    .data_start()
                    .and_then(|s| usize::try_from(s).ok())
                    .ok_or_else(|| member(&"no data offset"))?;
                let end = usize::try_from(entry.size())
                    .ok()
                    .and_then(|n| start.checked_add(n))
                    .filter(|&e| e <= map.len())
                    .ok_or_else(|| member(&"its data runs past the end of the file"))?;
                let bytes = &map[start..end];
                let (header, len) = npy::read_header(&mut &bytes[..]).map_err(|e| member(&e))?;
                npy::tensor(
                    &header,
                    &bytes[len..],
                    Some((Arc::clone(&map), start + len)),
                )
                .map_err(|e| member(&e))?
            }
            CompressionMethod::Deflated => {
                let size = entry.size();
                if size
                    > entry
                        .compressed_size()
                        .saturating_mul(MAX_RATIO)
                        .saturating_add(1024)
                {
                    return Err(member(&format!(
                        "claims {size} bytes inflated from {}, more than deflate can produce",
                        entry.compressed_size()
                    )));
                }
                let (header, len) = npy::read_header(&mut entry).map_err(|e| member(&e))?;
                let need = usize::try_from(size)
                    .ok()
                    .and_then(|s| s.checked_sub(len))
                    .ok_or_else(|| member(&"its size is smaller than its header"))?;
                let mut data = Vec::with_capacity(need);
                // One byte more than promised: reading to the end also checks the CRC.
                entry
                    .take(need as u64 + 1)
                    .read_to_end(&mut data)
                    .map_err(|e| member(&e))?;
                npy::tensor(&header, &data, None).map_err(|e| member(&e))?
            }
            other => return Err(member(&format!("compression {other} is not supported"))),
        };
        tensors.push((name, tensor));
    }
    Ok(tensors)
}
