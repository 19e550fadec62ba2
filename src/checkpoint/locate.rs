//! Which checkpoint file a folder stands for.
//!
//! A folder opens whatever format it holds, as `from_pretrained` looks: its shard index, else the
//! file a Hugging Face folder names (`model.safetensors`, `pytorch_model.bin`), else its one
//! checkpoint of any format (`.safetensors`, `.bin`, `.pt`, `.pth`, `.ckpt`, `.gguf`, `.npz`,
//! `.npy`). Re-initialized copies the app writes (`NAME.reinit.safetensors`) and a trainer's own
//! files (`optimizer.pt`, `training_args.bin`, …) are not the model, so they never make a folder
//! ambiguous. A checkpoint that is a link leading out of the folder is named, since opening the
//! folder then reads a file elsewhere.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::io::sniff::is_index;

/// A folder that does not name one checkpoint.
#[derive(Debug, Error)]
pub enum LocateError {
    /// The folder cannot be listed.
    #[error("{folder}: {source}")]
    Unreadable {
        /// The folder.
        folder: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// No checkpoint in the folder.
    #[error(
        "{0}: the folder holds no checkpoint (.safetensors, .bin, .pt, .pth, .ckpt, .gguf, .npz, .npy) and no *.index.json"
    )]
    Empty(String),
    /// Several checkpoints and no index to say which.
    #[error(
        "{folder}: the folder holds {} checkpoints and no index saying which is the model; name one: {}",
        .names.len(),
        .names.join(", ")
    )]
    Several {
        /// The folder.
        folder: String,
        /// The checkpoint files' names, sorted: the choices a picker offers.
        names: Vec<String>,
    },
}

/// The checkpoint a folder stands for, and a note when reaching it leaves the folder.
#[derive(Debug)]
pub struct Located {
    /// The file to open.
    pub file: PathBuf,
    /// Set when `file` is a link to a file outside the folder: where it leads.
    pub outside: Option<PathBuf>,
}

/// Files a Hugging Face folder names, in `from_pretrained`'s order of preference.
const PREFERRED: [&str; 4] = [
    "model.safetensors.index.json",
    "model.safetensors",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
];

/// The extensions of checkpoint files (compared without case).
const CHECKPOINT_EXTENSIONS: [&str; 8] = [
    "safetensors",
    "bin",
    "pt",
    "pth",
    "ckpt",
    "gguf",
    "npz",
    "npy",
];

/// A trainer's files beside the model, which are pickles but not the model's weights.
const NOT_THE_MODEL: [&str; 5] = [
    "training_args.bin",
    "optimizer.pt",
    "scheduler.pt",
    "scaler.pt",
    "rng_state.pth",
];

/// The suffix of the re-initialized copies the app writes beside a model.
pub const REINIT_SUFFIX: &str = ".reinit.safetensors";

/// The checkpoint a folder holds: see the module's doc for the order in which it is looked for.
pub fn checkpoint_in(folder: &Path) -> Result<Located, LocateError> {
    let preferred = PREFERRED
        .iter()
        .map(|n| folder.join(n))
        .find(|p| p.is_file());
    let file = if let Some(file) = preferred {
        file
    } else {
        let mut files = choices(folder)?;
        match files.len() {
            1 => files.swap_remove(0),
            0 => return Err(LocateError::Empty(folder.display().to_string())),
            _ => {
                return Err(LocateError::Several {
                    folder: folder.display().to_string(),
                    names: files.iter().map(|p| file_name(p)).collect(),
                });
            }
        }
    };
    let outside = leads_outside(folder, &file);
    Ok(Located { file, outside })
}

/// Every checkpoint file of `folder` that could be the model, sorted by name: the choices to offer
/// when a folder holds several (a shard index stands for its shards, which are left out).
pub fn choices(folder: &Path) -> Result<Vec<PathBuf>, LocateError> {
    let entries = std::fs::read_dir(folder).map_err(|source| LocateError::Unreadable {
        folder: folder.display().to_string(),
        source,
    })?;
    let files = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    Ok(narrow(files))
}

/// The files among `files` that could be the model, sorted, a shard index standing for its shards.
fn narrow(mut files: Vec<PathBuf>) -> Vec<PathBuf> {
    files.retain(|p| could_be_the_model(p));
    files.sort();
    if files.iter().any(|p| is_index(p)) {
        files.retain(|p| is_index(p));
    }
    files
}

/// The checkpoint a remote folder (a Hub repo or subfolder, an S3 prefix) named `folder` stands
/// for, by the rules a local folder holding the same `files` (its top-level file names) follows.
pub fn checkpoint_among(folder: &str, files: &[&str]) -> Result<String, LocateError> {
    if let Some(name) = PREFERRED.iter().find(|n| files.contains(n)) {
        return Ok((*name).to_owned());
    }
    let mut found = narrow(files.iter().map(PathBuf::from).collect());
    match found.len() {
        1 => Ok(file_name(&found.swap_remove(0))),
        0 => Err(LocateError::Empty(folder.to_owned())),
        _ => Err(LocateError::Several {
            folder: folder.to_owned(),
            names: found.iter().map(|p| file_name(p)).collect(),
        }),
    }
}

/// Whether the file at `path` is named as a model's checkpoint is: a checkpoint extension or a shard
/// index, and not a re-initialized copy or a trainer's file.
fn could_be_the_model(path: &Path) -> bool {
    let name = file_name(path);
    if is_index(path) {
        return true;
    }
    let lower = name.to_ascii_lowercase();
    let extension_fits = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| CHECKPOINT_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
    extension_fits
        && !lower.ends_with(REINIT_SUFFIX)
        && !NOT_THE_MODEL.contains(&lower.as_str())
        && !lower.starts_with("rng_state")
}

/// Where `file` (in `folder`) really is, when that is outside the folder; `None` inside it or when
/// it cannot be resolved (the open then says what is wrong). A Hugging Face cache snapshot's links
/// into the repository's `blobs/` are the cache's own layout, not a surprise, and are not named.
fn leads_outside(folder: &Path, file: &Path) -> Option<PathBuf> {
    let link = std::fs::symlink_metadata(file).ok()?;
    if !link.file_type().is_symlink() {
        return None;
    }
    let folder = std::fs::canonicalize(folder).ok()?;
    let target = std::fs::canonicalize(file).ok()?;
    if target.starts_with(&folder) {
        return None;
    }
    let in_cache = folder
        .parent()
        .filter(|snapshots| snapshots.file_name().is_some_and(|n| n == "snapshots"))
        .and_then(Path::parent)
        .is_some_and(|repo| target.starts_with(repo.join("blobs")));
    (!in_cache).then_some(target)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The checkpoints a trajectory follows: one folder of `checkpoint-N` / `step_N` subfolders
/// stands for them, sorted by N; any other list is taken as given.
#[must_use]
pub fn run(checkpoints: &[String]) -> Vec<String> {
    match checkpoints {
        [one] => run_folder(Path::new(one)).unwrap_or_else(|| vec![one.clone()]),
        many => many.to_vec(),
    }
}

/// The checkpoints a run folder holds: its `checkpoint-N`, `step_N`, `stepN` or `step-N` entries,
/// sorted by N; `None` when it holds none.
fn run_folder(folder: &Path) -> Option<Vec<String>> {
    let entries = std::fs::read_dir(folder).ok()?;
    let mut found: Vec<(u64, String)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            let digits = name
                .strip_prefix("checkpoint")
                .or_else(|| name.strip_prefix("step"))?
                .trim_start_matches(['-', '_']);
            let number = digits.parse::<u64>().ok()?;
            Some((number, folder.join(&name).to_str()?.to_owned()))
        })
        .collect();
    found.sort();
    (!found.is_empty()).then(|| found.into_iter().map(|(_, path)| path).collect())
}

#[cfg(test)]
mod tests {
    use super::{LocateError, checkpoint_in};
    use std::fs;

    #[test]
    fn a_folder_of_any_one_format_opens_and_copies_and_trainer_files_are_ignored() {
        for name in [
            "pytorch_model.bin",
            "net.pt",
            "m.gguf",
            "arrays.npz",
            "W.PTH",
        ] {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join(name), b"x").unwrap();
            fs::write(dir.path().join("config.json"), b"{}").unwrap();
            fs::write(dir.path().join("optimizer.pt"), b"x").unwrap();
            let found = checkpoint_in(dir.path()).unwrap();
            assert_eq!(found.file, dir.path().join(name));
            assert!(found.outside.is_none());
        }
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("net.safetensors"), b"x").unwrap();
        fs::write(dir.path().join("net.reinit.safetensors"), b"x").unwrap();
        let found = checkpoint_in(dir.path()).unwrap();
        assert_eq!(found.file, dir.path().join("net.safetensors"));
        fs::write(dir.path().join("model.safetensors"), b"x").unwrap();
        let found = checkpoint_in(dir.path()).unwrap();
        assert_eq!(found.file, dir.path().join("model.safetensors"));
    }

    #[test]
    fn several_checkpoints_are_named_as_choices() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.gguf", "a.safetensors", "notes.txt"] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        let err = checkpoint_in(dir.path()).unwrap_err();
        let LocateError::Several { names, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(names, &["a.safetensors", "b.gguf"]);
        assert!(err.to_string().contains("name one: a.safetensors, b.gguf"));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            checkpoint_in(empty.path()),
            Err(LocateError::Empty(_))
        ));
    }

    #[test]
    fn a_remote_listing_follows_the_local_rules() {
        use super::checkpoint_among;
        let index = [
            "config.json",
            "model-00001-of-00002.safetensors",
            "model.safetensors.index.json",
        ];
        assert_eq!(
            checkpoint_among("hf://o/n", &index).unwrap(),
            "model.safetensors.index.json"
        );
        let two = ["b.gguf", "a.safetensors", "optimizer.pt", "README.md"];
        let err = checkpoint_among("s3://b/p/", &two).unwrap_err();
        assert!(
            matches!(&err, LocateError::Several { names, .. } if names == &["a.safetensors", "b.gguf"])
        );
        assert_eq!(
            checkpoint_among("x", &["q4.gguf", "x.reinit.safetensors"]).unwrap(),
            "q4.gguf"
        );
        assert!(matches!(
            checkpoint_among("x", &["README.md"]),
            Err(LocateError::Empty(_))
        ));
    }

    #[test]
    fn a_link_out_of_the_folder_is_named() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("elsewhere.safetensors");
        fs::write(&secret, b"x").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("model.safetensors")).unwrap();
        let found = checkpoint_in(dir.path()).unwrap();
        assert_eq!(found.outside, Some(fs::canonicalize(&secret).unwrap()));

        // A cache snapshot's link into its blobs is the cache's layout.
        let cache = tempfile::tempdir().unwrap();
        let blobs = cache.path().join("blobs");
        let snapshot = cache.path().join("snapshots").join("abc");
        fs::create_dir_all(&blobs).unwrap();
        fs::create_dir_all(&snapshot).unwrap();
        fs::write(blobs.join("123"), b"x").unwrap();
        std::os::unix::fs::symlink("../../blobs/123", snapshot.join("model.safetensors")).unwrap();
        assert!(checkpoint_in(&snapshot).unwrap().outside.is_none());
    }
}
