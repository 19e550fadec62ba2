//! Reading a small file whole (an architecture text, a `config.json`, an index) without trusting it:
//! only regular files, and never more than a cap, so a FIFO or `/dev/zero` cannot block or stream.

use std::fs::File;
use std::io::{self, Read as _};
use std::path::Path;

/// Why a small file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SmallFileError {
    /// The path is a FIFO, a device, a socket or a folder.
    #[error("not a regular file ({0}); paramscope reads only regular files")]
    NotRegular(&'static str),
    /// The file is longer than the cap.
    #[error("{size} bytes is over the {cap}-byte limit for this kind of file")]
    TooLong {
        /// The size found (at least `cap + 1`).
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// The bytes are not UTF-8 text.
    #[error("it is not UTF-8 text")]
    NotUtf8,
    /// The operating system's error.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Opens `path` for reading when it is a regular file (following symlinks). The open itself does
/// not wait (`O_NONBLOCK`: opening a FIFO with no writer would), and the type is checked on the
/// opened file, so a path swapped between a check and the open cannot slip through.
pub fn open_regular(path: &Path) -> Result<File, SmallFileError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        return Ok(file);
    }
    Err(SmallFileError::NotRegular(describe(kind)))
}

/// The whole of the regular file at `path`, when it holds at most `cap` bytes.
pub fn read(path: &Path, cap: u64) -> Result<Vec<u8>, SmallFileError> {
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    // One byte past the cap tells "exactly at the cap" from "over it" without trusting the length
    // the metadata reports (it can change while we read).
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(SmallFileError::TooLong {
            size: bytes.len() as u64,
            cap,
        });
    }
    Ok(bytes)
}

/// The first `n` bytes of the regular file at `path` (fewer when it is shorter): what a format
/// is told by, read without blocking on a FIFO or streaming a device.
pub fn head(path: &Path, n: u64) -> Result<Vec<u8>, SmallFileError> {
    let mut bytes = Vec::new();
    open_regular(path)?.take(n).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The regular file at `path` as UTF-8 text, when it holds at most `cap` bytes.
pub fn read_text(path: &Path, cap: u64) -> Result<String, SmallFileError> {
    String::from_utf8(read(path, cap)?).map_err(|_| SmallFileError::NotUtf8)
}

/// A word for a file type that is not a regular file.
pub(crate) fn describe(kind: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if kind.is_dir() {
        "a folder"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(test)]
mod tests {
    use super::{SmallFileError, read};
    use std::path::Path;

    #[test]
    fn devices_and_folders_are_refused_and_long_files_capped() {
        assert!(matches!(
            read(Path::new("/dev/zero"), 10),
            Err(SmallFileError::NotRegular("a device"))
        ));
        assert!(matches!(
            read(Path::new("/"), 10),
            Err(SmallFileError::NotRegular("a folder"))
        ));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read(&path, 10).unwrap(), b"0123456789");
        assert!(matches!(
            read(&path, 9),
            Err(SmallFileError::TooLong { size: 10, cap: 9 })
        ));
    }
}
