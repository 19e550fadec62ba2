//! A local file as a [`ByteSource`](super::ByteSource): for files the Hugging Face cache already holds, and
//! for tests. Checkpoints opened by path keep the mapped route in `io`; this one reads by system call.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{ByteSource, SourceError};

/// An open regular file read with positioned reads.
pub struct LocalFile {
    file: File,
    len: u64,
    name: String,
}

impl LocalFile {
    /// Opens `path` for reading; `name` is what messages call it.
    pub fn open(path: &Path, name: &str) -> Result<LocalFile, SourceError> {
        let io = |source| SourceError::Io {
            name: name.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(io(std::io::Error::other("not a regular file")));
        }
        Ok(LocalFile {
            file,
            len: meta.len(),
            name: name.to_owned(),
        })
    }
}

impl ByteSource for LocalFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|source| SourceError::Io {
                name: self.name.clone(),
                source,
            })
    }

    fn name(&self) -> &str {
        &self.name
    }
}
