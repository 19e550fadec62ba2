//! The Hugging Face cache, read in place and never written: `models--ORG--NAME/refs/REV` holds a branch's
//! commit, `snapshots/SHA/PATH` the files (links into `blobs/`). A file found there opens like a local file.

use std::fs;
use std::path::{Path, PathBuf};

use super::location::is_repo_path;

/// Files listed from one snapshot, at most (a folder of millions is not a checkpoint).
const MAX_FILES: usize = 100_000;
/// Folder depth walked in a snapshot.
const MAX_DEPTH: usize = 16;

/// The cache folder (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`).
#[derive(Debug, Clone)]
pub struct HfCache {
    root: PathBuf,
}

impl HfCache {
    /// The cache at `root`.
    #[must_use]
    pub fn new(root: PathBuf) -> HfCache {
        HfCache { root }
    }

    /// The cache the environment names, as `huggingface_hub` finds it.
    #[must_use]
    pub fn from_env() -> Option<HfCache> {
        let env = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let root = env("HF_HUB_CACHE")
            .or_else(|| env("HF_HOME").map(|h| h.join("hub")))
            .or_else(|| env("HOME").map(|h| h.join(".cache/huggingface/hub")))?;
        Some(HfCache::new(root))
    }

    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.root
            .join(format!("models--{}", repo.replace('/', "--")))
    }

    /// The commit `revision` names here: itself when it is a sha with a snapshot, else its `refs` file.
    #[must_use]
    pub fn commit(&self, repo: &str, revision: &str) -> Option<String> {
        let dir = self.repo_dir(repo);
        if is_sha(revision) && dir.join("snapshots").join(revision).is_dir() {
            return Some(revision.to_owned());
        }
        if !is_repo_path(revision) {
            return None;
        }
        let text = fs::read_to_string(dir.join("refs").join(revision)).ok()?;
        let sha = text.trim();
        is_sha(sha).then(|| sha.to_owned())
    }

    /// The path of `path` in the snapshot of `sha`, when the file is there.
    #[must_use]
    pub fn file(&self, repo: &str, sha: &str, path: &str) -> Option<PathBuf> {
        if !is_sha(sha) || !is_repo_path(path) || path.is_empty() {
            return None;
        }
        let full = self.snapshot(repo, sha).join(path);
        full.is_file().then_some(full)
    }

    /// The snapshot folder of `sha` (which may not exist).
    #[must_use]
    pub fn snapshot(&self, repo: &str, sha: &str) -> PathBuf {
        self.repo_dir(repo).join("snapshots").join(sha)
    }

    /// Every file of the snapshot of `sha`, with its size: what an offline run can list.
    #[must_use]
    pub fn list(&self, repo: &str, sha: &str) -> Option<Vec<(String, u64)>> {
        let root = self.snapshot(repo, sha);
        if !is_sha(sha) || !root.is_dir() {
            return None;
        }
        let mut files = Vec::new();
        let mut pending = vec![(root.clone(), 0)];
        while let Some((dir, depth)) = pending.pop() {
            for entry in fs::read_dir(&dir).ok()?.flatten() {
                let path = entry.path();
                // Snapshot entries are links into blobs/: follow them with metadata, not symlink_metadata.
                let Ok(meta) = fs::metadata(&path) else {
                    continue;
                };
                if meta.is_dir() && depth < MAX_DEPTH {
                    pending.push((path, depth + 1));
                } else if meta.is_file()
                    && let Some(rel) = relative(&root, &path)
                {
                    files.push((rel, meta.len()));
                    if files.len() >= MAX_FILES {
                        return Some(files);
                    }
                }
            }
        }
        files.sort();
        Some(files)
    }
}

fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?.to_str()?;
    is_repo_path(rel).then(|| rel.to_owned())
}

/// A full 40-digit lowercase hex commit sha.
#[must_use]
pub fn is_sha(text: &str) -> bool {
    text.len() == 40
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_snapshots_and_listing_are_read_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let repo = dir.path().join("models--org--name");
        fs::create_dir_all(repo.join("refs")).unwrap();
        fs::create_dir_all(repo.join("snapshots").join(sha).join("sub")).unwrap();
        fs::write(repo.join("refs/main"), format!("{sha}\n")).unwrap();
        fs::write(repo.join("snapshots").join(sha).join("config.json"), "{}").unwrap();
        fs::write(repo.join("snapshots").join(sha).join("sub/a.bin"), "abc").unwrap();
        let cache = HfCache::new(dir.path().to_owned());
        assert_eq!(cache.commit("org/name", "main").as_deref(), Some(sha));
        assert_eq!(cache.commit("org/name", sha).as_deref(), Some(sha));
        assert_eq!(cache.commit("org/name", "dev"), None);
        assert!(cache.file("org/name", sha, "sub/a.bin").is_some());
        assert!(cache.file("org/name", sha, "../refs/main").is_none());
        assert_eq!(
            cache.list("org/name", sha).unwrap(),
            vec![("config.json".to_owned(), 2), ("sub/a.bin".to_owned(), 3)]
        );
    }
}
