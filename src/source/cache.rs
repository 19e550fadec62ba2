//! paramscope's own cache (`$XDG_CACHE_HOME/paramscope`, else `~/.cache/paramscope`): byte ranges of remote
//! files and small documents (a revision's file list), keyed by content (an LFS sha256, a git blob id, an
//! ETag) so that an entry never goes stale. Entries are written atomically (temp file + rename) with a
//! sha256 trailer checked on every read (a bad entry is removed and refetched, never shown), and the cache
//! is capped (`PARAMSCOPE_CACHE_MAX`, default 10 GiB) by evicting the least recently used entries.
//! Nothing secret is ever written here: keys and bodies come from servers' answers, not requests.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// The default cap: 10 GiB.
pub const DEFAULT_MAX: u64 = 10 << 30;
const TRAILER: usize = 32;

/// A cache folder and its cap.
pub struct Cache {
    root: PathBuf,
    max_bytes: u64,
    /// Bytes held, as last counted plus what was written since (`None` until first counted).
    used: Mutex<Option<u64>>,
}

impl Cache {
    /// A cache in `root` holding at most `max_bytes`.
    #[must_use]
    pub fn new(root: PathBuf, max_bytes: u64) -> Cache {
        Cache {
            root,
            max_bytes,
            used: Mutex::new(None),
        }
    }

    /// The cache the environment names, or `None` when there is no home to put it in.
    #[must_use]
    pub fn from_env() -> Option<Cache> {
        let env = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        let root = env("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| env("HOME").map(|h| Path::new(&h).join(".cache")))?
            .join("paramscope");
        let max = std::env::var("PARAMSCOPE_CACHE_MAX")
            .ok()
            .and_then(|v| parse_size(&v))
            .unwrap_or(DEFAULT_MAX);
        Some(Cache::new(root, max))
    }

    /// The folder.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Bytes `start..start+len` of the file whose content is `key`, when an entry holds them intact.
    #[must_use]
    pub fn get_range(&self, key: &str, start: u64, len: usize) -> Option<Vec<u8>> {
        let end = start.checked_add(len as u64)?;
        let dir = self.range_dir(key);
        let entry = fs::read_dir(&dir).ok()?.flatten().find_map(|e| {
            let (s, t) = parse_range_name(e.file_name().to_str()?)?;
            (s <= start && end <= t).then_some((e.path(), s, t))
        })?;
        let (path, s, t) = entry;
        let bytes = read_checked(&path, usize::try_from(t - s).ok()?)?;
        let offset = usize::try_from(start - s).ok()?;
        Some(bytes[offset..offset + len].to_vec())
    }

    /// Keeps `bytes`, the range from `start` of the file whose content is `key`. Failures are ignored:
    /// the cache only saves requests.
    pub fn put_range(&self, key: &str, start: u64, bytes: &[u8]) {
        let name = format!("{start:016x}-{:016x}", start + bytes.len() as u64);
        self.put(&self.range_dir(key), &name, bytes);
    }

    /// A small document kept under `name` (a revision's file list, a branch's commit).
    #[must_use]
    pub fn get_doc(&self, name: &str) -> Option<Vec<u8>> {
        let path = self.root.join("docs").join(hex_digest(name.as_bytes()));
        let len = fs::metadata(&path)
            .ok()?
            .len()
            .checked_sub(TRAILER as u64)?;
        read_checked(&path, usize::try_from(len).ok()?)
    }

    /// Keeps a small document under `name`, replacing what was there.
    pub fn put_doc(&self, name: &str, bytes: &[u8]) {
        self.put(&self.root.join("docs"), &hex_digest(name.as_bytes()), bytes);
    }

    fn range_dir(&self, key: &str) -> PathBuf {
        self.root.join("ranges").join(hex_digest(key.as_bytes()))
    }

    fn put(&self, dir: &Path, name: &str, bytes: &[u8]) {
        let written = (|| -> std::io::Result<()> {
            fs::create_dir_all(dir)?;
            let mut temp = tempfile::NamedTempFile::new_in(dir)?;
            temp.write_all(bytes)?;
            temp.write_all(&Sha256::digest(bytes))?;
            temp.persist(dir.join(name)).map_err(|e| e.error)?;
            Ok(())
        })();
        if written.is_ok() {
            self.account(bytes.len() as u64 + TRAILER as u64);
        }
    }

    /// Adds `added` to the bytes held and evicts the least recently used entries past the cap.
    fn account(&self, added: u64) {
        let Ok(mut used) = self.used.lock() else {
            return;
        };
        let now = used.map_or_else(|| self.entries().iter().map(|e| e.1).sum(), |u| u + added);
        if now <= self.max_bytes {
            *used = Some(now);
            return;
        }
        let mut entries = self.entries();
        entries.sort_by_key(|e| e.2);
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        for (path, size, _) in entries {
            if total <= self.max_bytes {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                total -= size;
            }
        }
        *used = Some(total);
    }

    /// Every entry: path, size, last use.
    fn entries(&self) -> Vec<(PathBuf, u64, SystemTime)> {
        let files_in = |dir: &Path| -> Vec<PathBuf> {
            fs::read_dir(dir)
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default()
        };
        let mut files = files_in(&self.root.join("docs"));
        for dir in files_in(&self.root.join("ranges")) {
            files.extend(files_in(&dir));
        }
        files
            .into_iter()
            .filter_map(|path| {
                let meta = fs::metadata(&path).ok()?;
                let used = meta.modified().ok()?;
                meta.is_file().then_some((path, meta.len(), used))
            })
            .collect()
    }
}

/// Reads an entry of `len` data bytes and checks its trailer; a bad entry is removed. A hit is marked as
/// used now (its modification time), for the eviction order.
fn read_checked(path: &Path, len: usize) -> Option<Vec<u8>> {
    let mut file = File::open(path).ok()?;
    let mut bytes = Vec::new();
    let read = (&mut file)
        .take(len as u64 + TRAILER as u64 + 1)
        .read_to_end(&mut bytes);
    let good = read.is_ok()
        && bytes.len() == len + TRAILER
        && Sha256::digest(&bytes[..len]).as_slice() == &bytes[len..];
    if !good {
        let _ = fs::remove_file(path);
        return None;
    }
    if let Ok(f) = File::options().append(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
    bytes.truncate(len);
    Some(bytes)
}

fn parse_range_name(name: &str) -> Option<(u64, u64)> {
    let (s, t) = name.split_once('-')?;
    let (s, t) = (
        u64::from_str_radix(s, 16).ok()?,
        u64::from_str_radix(t, 16).ok()?,
    );
    (s <= t).then_some((s, t))
}

/// The lowercase hex sha256 of `bytes`.
#[must_use]
pub fn hex_digest(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    Sha256::digest(bytes)
        .iter()
        .fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// `10G`, `512M`, `1048576`: a size in bytes (binary units).
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, shift) = match text.char_indices().last()? {
        (i, 'K' | 'k') => (&text[..i], 10),
        (i, 'M' | 'm') => (&text[..i], 20),
        (i, 'G' | 'g') => (&text[..i], 30),
        (i, 'T' | 't') => (&text[..i], 40),
        _ => (text, 0),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_come_back_from_any_covering_entry_and_bad_entries_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_owned(), 1 << 20);
        cache.put_range("sha256:ab", 100, b"0123456789");
        assert_eq!(
            cache.get_range("sha256:ab", 102, 3).as_deref(),
            Some(&b"234"[..])
        );
        assert_eq!(cache.get_range("sha256:ab", 105, 10), None);
        assert_eq!(cache.get_range("sha256:other", 100, 3), None);
        // Corrupt the entry: it is refused and removed.
        let entry = fs::read_dir(cache.range_dir("sha256:ab"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut bytes = fs::read(&entry).unwrap();
        bytes[0] ^= 1;
        fs::write(&entry, bytes).unwrap();
        assert_eq!(cache.get_range("sha256:ab", 100, 3), None);
        assert!(!entry.exists());
    }

    #[test]
    fn the_cap_evicts_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_owned(), 2 * (1000 + TRAILER as u64));
        let old = SystemTime::now() - std::time::Duration::from_secs(100);
        cache.put_range("a", 0, &[1; 1000]);
        cache.put_range("b", 0, &[2; 1000]);
        for key in ["a", "b"] {
            for e in fs::read_dir(cache.range_dir(key)).unwrap() {
                let f = File::options()
                    .append(true)
                    .open(e.unwrap().path())
                    .unwrap();
                f.set_modified(old).unwrap();
            }
        }
        assert!(cache.get_range("a", 0, 1).is_some()); // a is now the most recent
        cache.put_range("c", 0, &[3; 1000]);
        assert!(cache.get_range("a", 0, 1).is_some());
        assert!(cache.get_range("b", 0, 1).is_none());
        assert!(cache.get_range("c", 0, 1).is_some());
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("10G"), Some(10 << 30));
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("x"), None);
    }
}
