//! Opening a file to read in place, for every format: a regular file only (a FIFO would block, a
//! device stream forever), mapped read-only, its range registered with [`super::fault`] so that a
//! file truncated under the map ends in `FILE changed on disk while being read`, not a crash.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;

use super::FileError;
use super::small_file::SmallFileError;

/// Why a file could not be opened to read in place (the [`FileError`]'s kind).
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// Not a regular file, or not readable.
    #[error(transparent)]
    Open(#[from] SmallFileError),
    /// The system refused the map.
    #[error("cannot map the file: {0}")]
    Map(std::io::Error),
}

/// A file opened for reading in place: the handle (for reads by system call) and its map.
pub struct Mapped {
    /// The open file.
    pub file: File,
    /// Its bytes, shared with every tensor that reads them.
    pub map: Arc<Mmap>,
}

/// Opens and maps `path` read-only.
pub fn open(path: &Path) -> Result<Mapped, FileError> {
    let fail = |error: MapError| FileError::new(path, error);
    let file = super::small_file::open_regular(path).map_err(|e| fail(e.into()))?;
    // SAFETY: the map is read-only and paramscope never writes a file it has mapped (saves go to a
    // temp file and are renamed over). Another process truncating the file while it is open could
    // still fault a read: the range registered below turns that fault into a one-line error.
    #[expect(
        unsafe_code,
        reason = "memory-mapping is the only way to open a 100 GB file at once"
    )]
    let map = unsafe { Mmap::map(&file) }.map_err(|e| fail(MapError::Map(e)))?;
    super::fault::register_map(map.as_ptr(), map.len(), path);
    Ok(Mapped {
        file,
        map: Arc::new(map),
    })
}
