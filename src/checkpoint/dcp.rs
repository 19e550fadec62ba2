//! A PyTorch Distributed Checkpoint folder as a MODEL: recognised by its `.metadata`, opened by the
//! [`crate::io::dcp`] codec into one tensor of full shape per sharded entry, its other entries
//! (step counters, RNG states) as plain values.

use std::path::Path;

use crate::io::{Checkpoint, FileError, dcp};

/// Whether `path` is a distributed checkpoint folder.
#[must_use]
pub fn is_folder(path: &Path) -> bool {
    path.is_dir() && dcp::is_dcp(path)
}

/// The folder's tensors (each at its full shape) and values.
pub fn open(folder: &Path) -> Result<Checkpoint, FileError> {
    dcp::open(folder)
}
