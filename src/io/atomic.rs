//! Writing a file so that no reader ever sees half of it, and nothing but the target is touched: a
//! temp file with a random name created exclusively (`O_EXCL`, the `tempfile` crate) beside the
//! target, written, synced, re-read and checked, then renamed over the target, and its folder synced.
//!
//! Renaming also makes saving over a file that is still mapped safe: the map keeps the old inode.
//! Only a regular file or a missing path is written over; a symlink is resolved and its target
//! written (atomically, in the target's folder), so the link keeps pointing at the new file.
//! Devices, FIFOs, sockets and folders are refused: replacing `/dev/null` with a file breaks a system.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::fault;

/// Why a written file failed the format's own reader: that reader's typed error.
pub type CheckError = Box<dyn std::error::Error + Send + Sync>;

/// Why a file was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The path exists and is not a regular file (nor a symlink to one).
    #[error("{0}; paramscope writes only over a regular file or a new path")]
    NotRegular(String),
    /// The path names no file (`dir/`, `..`).
    #[error("the path names no file")]
    NoFileName,
    /// The file written did not read back as valid.
    #[error("the written file does not read back ({0}); the target was left as it was")]
    Invalid(CheckError),
    /// Creating, writing, syncing or renaming failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Writes `path` atomically: `write` fills a fresh temp file beside the target (through a
/// buffer), which is synced, then re-opened and given to `check` (a reader of the format), and only
/// if that passes renamed over the target. On any error the target is untouched and the temp file
/// is gone; SIGINT, SIGTERM, SIGHUP and SIGBUS remove it too ([`fault::register_temp`]).
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    check: impl FnOnce(&Path) -> Result<(), CheckError>,
) -> Result<(), WriteError> {
    let (target, permissions) = target_of(path)?;
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target.file_name().ok_or(WriteError::NoFileName)?;
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".tmp")
        .tempfile_in(&dir)?;
    let _guard = fault::register_temp(temp.path());
    {
        let mut writer = BufWriter::new(temp.as_file());
        write(&mut writer)?;
        writer.flush()?;
    }
    temp.as_file().set_permissions(permissions)?;
    temp.as_file().sync_all()?;
    check(temp.path()).map_err(WriteError::Invalid)?;
    temp.persist(&target).map_err(|e| e.error)?;
    // The rename itself is durable only once the folder is synced; not every filesystem lets a
    // folder be opened for that, so a failure here is not a failed save.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The file to replace (`path`, or what its symlinks resolve to) and the permissions the new file
/// gets: the old file's, or 0644 for a new one (tempfile creates files private).
fn target_of(path: &Path) -> Result<(PathBuf, fs::Permissions), WriteError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok((path.to_path_buf(), new_file()));
        }
        Err(e) => return Err(e.into()),
    };
    let (target, meta) = if meta.file_type().is_symlink() {
        let target = fs::canonicalize(path).map_err(|e| {
            WriteError::NotRegular(format!(
                "it is a symlink whose target cannot be resolved ({e})"
            ))
        })?;
        let meta = fs::metadata(&target)?;
        (target, meta)
    } else {
        (path.to_path_buf(), meta)
    };
    if meta.is_file() {
        Ok((target, meta.permissions()))
    } else {
        Err(WriteError::NotRegular(format!(
            "it is {}",
            super::small_file::describe(meta.file_type())
        )))
    }
}

fn new_file() -> fs::Permissions {
    use std::os::unix::fs::PermissionsExt as _;
    fs::Permissions::from_mode(0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[expect(clippy::unnecessary_wraps, reason = "the signature of a format check")]
    fn ok(_: &Path) -> Result<(), CheckError> {
        Ok(())
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        fs::write(&path, b"old").unwrap();
        let err = write_atomically(
            &path,
            |w| {
                w.write_all(b"half")?;
                Err(io::Error::other("disk full"))
            },
            ok,
        );
        assert!(err.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        let bad = write_atomically(&path, |w| w.write_all(b"junk"), |_| Err("bad".into()));
        assert!(matches!(bad, Err(WriteError::Invalid(_))));
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        write_atomically(&path, |w| w.write_all(b"new"), ok).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn keeps_permissions_and_refuses_what_is_not_a_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        write_atomically(&path, |w| w.write_all(b"new"), ok).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let err = write_atomically(Path::new("/dev/null"), |w| w.write_all(b"x"), ok).unwrap_err();
        assert!(err.to_string().contains("a device"), "{err}");
        let err = write_atomically(dir.path(), |w| w.write_all(b"x"), ok).unwrap_err();
        assert!(err.to_string().contains("a folder"), "{err}");
    }

    #[test]
    fn a_symlink_is_resolved_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.bin");
        let link = dir.path().join("link.bin");
        fs::write(&real, b"old").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomically(&link, |w| w.write_all(b"new"), ok).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&real).unwrap(), b"new");
    }
}
