//! Opening a model for the app: the loader, plus the `NAME.arch.txt` found beside a checkpoint
//! whose tree would otherwise be guessed from its tensor names (so that it can run forward).

use std::path::{Path, PathBuf};

use super::error::AppError;
use super::job::{OpenSpec, Opened};
use crate::source::{self, Architecture, LoadOptions};
use crate::text::escape;

/// Opens `spec`; a checkpoint without an architecture takes the one in `NAME.arch.txt` beside it.
pub fn open(spec: &OpenSpec) -> Result<Opened, AppError> {
    let options = LoadOptions {
        arch: spec.arch.as_deref(),
        seed: spec.seed,
    };
    let loaded = source::open(&spec.model, &options).map_err(AppError::Open)?;
    let mut notices = loaded.warnings;
    if loaded.architecture == Architecture::Inferred
        && let Some(arch) = beside(Path::new(&spec.model))
    {
        let with_arch = LoadOptions {
            arch: Some(&arch),
            seed: spec.seed,
        };
        let shown = escape(&arch.display().to_string()).into_owned();
        match source::open(&spec.model, &with_arch) {
            Ok(bound) => {
                notices.push(format!("architecture from {shown}"));
                notices.extend(bound.warnings);
                return Ok(Opened {
                    model: bound.model,
                    notices,
                });
            }
            Err(e) => notices.push(format!("{shown} not used: {e}")),
        }
    }
    Ok(Opened {
        model: loaded.model,
        notices,
    })
}

/// `x.arch.txt` beside `x.safetensors` (or beside the folder's index), if it is a file.
#[must_use]
pub fn beside(model: &Path) -> Option<PathBuf> {
    let name = model.file_name()?.to_str()?;
    let stem = name
        .strip_suffix(".safetensors.index.json")
        .or_else(|| name.strip_suffix(".index.json"))
        .or_else(|| name.strip_suffix(".safetensors"))
        .unwrap_or(name);
    let arch = model.with_file_name(format!("{stem}.arch.txt"));
    arch.is_file().then_some(arch)
}

#[cfg(test)]
mod tests {
    use super::beside;

    #[test]
    fn the_architecture_beside_a_checkpoint_shares_its_stem() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("net.safetensors");
        assert_eq!(beside(&model), None);
        std::fs::write(dir.path().join("net.arch.txt"), "Sequential()").unwrap();
        assert_eq!(beside(&model), Some(dir.path().join("net.arch.txt")));
    }
}
