//! Writing a file so that no reader ever sees half of it, and nothing but the target is touched: the
//! bytes go to a temp file in the target's folder, are synced, re-read and checked, and only then
//! renamed over the target, and the folder synced.
//!
//! The temp file has no name while it is written (Linux's `O_TMPFILE`): a write stopped by any
//! signal, SIGKILL and `ulimit -f`'s SIGXFSZ included, leaves nothing behind. It gets a name (at most
//! 255 bytes, whatever the target's length) only for the instant between being linked and renamed.
//! Where the filesystem has no unnamed files, a named one is created exclusively (`O_EXCL`, the
//! `tempfile` crate) and removed on error and by the handled signals ([`fault::register_temp`]).
//!
//! Renaming also makes saving over a file that is still mapped safe: the map keeps the old inode.
//! Only a regular file or a missing path is written over; a symlink the caller named is resolved
//! and its target written (atomically, in the target's folder), so the link keeps pointing at the
//! new file; a name the caller chose for the user ([`refuse_link`]) is never a link. Devices, FIFOs,
//! sockets and folders are refused: replacing `/dev/null` with a file breaks a system. The new
//! file never carries setuid, setgid or sticky bits, even when the old one did.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
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
    /// The path is a symlink, where the user did not name one ([`refuse_link`]).
    #[error(
        "it is a link (to {0}); paramscope does not write through a link it did not ask for: name another file"
    )]
    Link(PathBuf),
    /// The path names no file (`dir/`, `..`).
    #[error("the path names no file")]
    NoFileName,
    /// The file written did not read back as valid.
    #[error("the written file does not read back ({0}); the target was left as it was")]
    Invalid(CheckError),
    /// A tensor's type is one the format cannot hold (a GGUF's block-quantized weight in
    /// safetensors): refused before anything is written.
    #[error(
        "{count} tensors are of types safetensors cannot hold, first {tensor} ({dtype}); nothing was written (`paramscope export MODEL --dequantize -o FILE` writes the file's own values as F32, without an edit made since it was opened)"
    )]
    Unstorable {
        /// How many tensors.
        count: usize,
        /// The first one by name.
        tensor: String,
        /// Its type.
        dtype: String,
    },
    /// Creating, writing, syncing or renaming failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Refuses `path` when it is a symlink: for a name paramscope proposed (the app's `w`), where
/// writing through a link planted there would replace a file the user never named.
pub fn refuse_link(path: &Path) -> Result<(), WriteError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(WriteError::Link(
            fs::read_link(path).unwrap_or_else(|_| PathBuf::from("?")),
        )),
        _ => Ok(()),
    }
}

/// The longest file name most Linux filesystems take, in bytes.
const NAME_MAX: usize = 255;

/// Writes `path` atomically: `write` fills a fresh temp file beside the target (through a
/// buffer), which is synced, then re-opened and given to `check` (a reader of the format), and only
/// if that passes renamed over the target. On any error the target is untouched and no temp file
/// is left.
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
    let prefix = temp_prefix(name);
    let temp = Temp::create(&dir, &prefix)?;
    {
        let mut writer = BufWriter::new(temp.file());
        write(&mut writer)?;
        writer.flush()?;
    }
    temp.file().set_permissions(permissions)?;
    temp.file().sync_all()?;
    check(&temp.path()).map_err(WriteError::Invalid)?;
    temp.persist(&dir, &prefix, &target)?;
    // The rename itself is durable only once the folder is synced; not every filesystem lets a
    // folder be opened for that, so a failure here is not a failed save.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `.NAME.`, cut so that the temp name (this, six random characters and `.tmp`) fits in
/// [`NAME_MAX`] bytes: a legal 252-byte target name must not fail for its temp file's length.
fn temp_prefix(name: &OsStr) -> OsString {
    let room = NAME_MAX - ".".len() - ".".len() - 6 - ".tmp".len();
    let mut bytes = b".".to_vec();
    bytes.extend_from_slice(&name.as_bytes()[..name.len().min(room)]);
    bytes.push(b'.');
    OsString::from_vec(bytes)
}

/// The temp file being written: unnamed where the filesystem allows, else named.
enum Temp {
    /// An `O_TMPFILE` file: nothing to clean up whatever happens to the process.
    Unnamed(File),
    /// A named temp file, removed on drop and by the handled signals.
    Named(tempfile::NamedTempFile, fault::TempGuard),
}

impl Temp {
    fn create(dir: &Path, prefix: &OsStr) -> io::Result<Self> {
        let unnamed = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE)
            .open(dir);
        // `/proc/self/fd` is how an unnamed file is re-opened and linked; without it, a named one.
        if let Ok(file) = unnamed
            && Path::new("/proc/self/fd").is_dir()
        {
            return Ok(Temp::Unnamed(file));
        }
        let named = tempfile::Builder::new()
            .prefix(prefix)
            .suffix(".tmp")
            .tempfile_in(dir)?;
        let guard = fault::register_temp(named.path());
        Ok(Temp::Named(named, guard))
    }

    fn file(&self) -> &File {
        match self {
            Temp::Unnamed(file) => file,
            Temp::Named(named, _) => named.as_file(),
        }
    }

    /// A path that opens the temp file, for the check to read it as any reader would.
    fn path(&self) -> PathBuf {
        match self {
            Temp::Unnamed(file) => self_path(file),
            Temp::Named(named, _) => named.path().to_path_buf(),
        }
    }

    /// Puts the temp file in place of `target`: an unnamed one is first linked under a fresh name
    /// in `dir` (registered for the handlers for that instant), then renamed.
    fn persist(self, dir: &Path, prefix: &OsStr, target: &Path) -> io::Result<()> {
        match self {
            Temp::Named(named, _guard) => named.persist(target).map(drop).map_err(|e| e.error),
            Temp::Unnamed(file) => {
                let source = self_path(&file);
                for attempt in 0..100u32 {
                    let mut name = prefix.to_os_string();
                    name.push(format!(
                        "{:06}.tmp",
                        (std::process::id() ^ attempt) % 1_000_000
                    ));
                    let linked = dir.join(name);
                    let guard = fault::register_temp(&linked);
                    match rustix::fs::linkat(
                        rustix::fs::CWD,
                        &source,
                        rustix::fs::CWD,
                        &linked,
                        rustix::fs::AtFlags::SYMLINK_FOLLOW,
                    ) {
                        Ok(()) => {}
                        Err(rustix::io::Errno::EXIST) => continue,
                        Err(e) => return Err(e.into()),
                    }
                    let renamed = fs::rename(&linked, target);
                    if renamed.is_err() {
                        let _ = fs::remove_file(&linked);
                    }
                    drop(guard);
                    return renamed;
                }
                Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "no free temp name in the target's folder",
                ))
            }
        }
    }
}

/// `/proc/self/fd/N` for `file`.
fn self_path(file: &File) -> PathBuf {
    use std::os::fd::AsRawFd as _;
    PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// The file to replace (`path`, or what its symlinks resolve to) and the permissions the new file
/// gets: the old file's read, write and execute bits (never setuid, setgid or sticky), or 0644 for
/// a new one (tempfile creates files private).
fn target_of(path: &Path) -> Result<(PathBuf, fs::Permissions), WriteError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok((path.to_path_buf(), fs::Permissions::from_mode(0o644)));
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
        let mode = meta.permissions().mode() & 0o777;
        Ok((target, fs::Permissions::from_mode(mode)))
    } else {
        Err(WriteError::NotRegular(format!(
            "it is {}",
            super::small_file::describe(meta.file_type())
        )))
    }
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

    #[test]
    fn the_new_file_drops_setuid_and_setgid() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o6755)).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
            0o6755
        );
        write_atomically(&path, |w| w.write_all(b"new"), ok).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
            0o755
        );
    }

    #[test]
    fn a_name_of_252_bytes_is_written_and_no_temp_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{}.st", "a".repeat(249)));
        write_atomically(&path, |w| w.write_all(b"new"), ok).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let prefix = temp_prefix(path.file_name().unwrap());
        assert!(prefix.len() + 6 + ".tmp".len() <= NAME_MAX);
        // A write that fails half-way leaves only the target.
        let err = write_atomically(&path, |_| Err(io::Error::other("stopped")), ok);
        assert!(err.is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_link_where_none_was_named_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.bin");
        let link = dir.path().join("model.reinit.safetensors");
        fs::write(&real, b"old").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = refuse_link(&link).unwrap_err();
        assert!(err.to_string().starts_with("it is a link (to "), "{err}");
        assert!(refuse_link(&real).is_ok());
        assert!(refuse_link(&dir.path().join("new")).is_ok());
    }
}
