//! Writing a file so that no reader ever sees half of it: a temp file beside it, fsync, rename.
//!
//! Renaming also makes saving over a file that is still mapped safe: the map keeps the old inode.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes `path` atomically: `fill` creates and writes the temp file whose path it is given, then
/// that file is synced and renamed over `path`. On any error the old file (if any) is untouched.
pub fn write_atomically(path: &Path, fill: impl FnOnce(&Path) -> io::Result<()>) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let permissions = fs::metadata(path).map(|m| m.permissions()).ok();
    let result = (|| {
        fill(&temp)?;
        set_permissions(&temp, permissions)?;
        File::open(&temp)?.sync_all()?;
        fs::rename(&temp, path)?;
        // The rename itself is durable only once the directory is synced; not every filesystem
        // lets a directory be opened for that, so a failure here is not a failed save.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Gives the new file the old one's permissions, or the usual 0644 for a new file (a filler such as
/// the safetensors crate's may create its file private).
fn set_permissions(temp: &Path, old: Option<fs::Permissions>) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(
            temp,
            old.unwrap_or_else(|| fs::Permissions::from_mode(0o644)),
        )
    }
    #[cfg(not(unix))]
    {
        old.map_or(Ok(()), |p| fs::set_permissions(temp, p))
    }
}

/// Creates `path` and writes it through a buffer: the usual filler for [`write_atomically`].
pub fn write_buffered(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let mut writer = BufWriter::new(File::create(path)?);
    write(&mut writer)?;
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        fs::write(&path, b"old").unwrap();
        let err = write_atomically(&path, |temp| {
            fs::write(temp, b"half")?;
            Err(io::Error::other("disk full"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        write_atomically(&path, |temp| write_buffered(temp, |w| w.write_all(b"new"))).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }
}
