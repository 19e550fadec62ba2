//! Opening a model for the app: the checkpoint layer's `open`, its notes kept for the status bar
//! (an architecture found beside the file as `NAME.arch.txt`, tensors an index does not list, a
//! pickle's calls that were not made), its metadata and plain values kept for the tree.

use std::path::Path;
use std::sync::Arc;

use crate::app::error::AppError;
use crate::app::extras::{ARRAY_ROWS, Extras};
use crate::app::job::{FamilyCheckpoint, OpenSpec, Opened, Runs};
use crate::checkpoint::{self, LoadOptions};
use crate::compare::adapter;
use crate::families::{self, Config, Family};

/// Opens `spec` as the command line's `MODEL` would be.
pub fn open(spec: &OpenSpec) -> Result<Opened, AppError> {
    open_with_base(spec, None)
}

/// Opens `spec` as [`open`] does; a LoRA adapter opens against `base` (`--base MODEL`).
pub fn open_with_base(spec: &OpenSpec, base: Option<&str>) -> Result<Opened, AppError> {
    let options = LoadOptions {
        arch: spec.arch.as_deref(),
        seed: spec.seed,
        array_items: Some(ARRAY_ROWS),
    };
    let loaded = checkpoint::open_adapted(&spec.model, &options, None, base)?;
    let mut notices = loaded.warnings;
    let adapted = loaded.adapter.as_ref().map_or_else(Vec::new, |adapter| {
        notices.push(format!(
            "LoRA adapter on {}: {} of {} target modules adapted, {} findings (paramscope check lists them)",
            adapter.base,
            adapter.adapted,
            adapter.targets,
            adapter.findings.len()
        ));
        // The base weights are not read here: the marks come from the adapter's r x r cores.
        adapter
            .loras
            .iter()
            .filter_map(|lora| {
                let figures = adapter::figures(lora, None).ok()?;
                Some((lora.weight.clone(), figures.label()))
            })
            .collect()
    });
    Ok(Opened {
        runs: runs_of(&spec.model, loaded.family, !loaded.gguf.is_empty()),
        model: loaded.model,
        notices,
        extras: Extras {
            gguf: loaded.gguf,
            values: loaded.values,
            adapted,
        },
    })
}

/// How the model opened from `source` runs, given the family the loader applied, if any.
/// Without one, `config.json` is read again only to tell why (an unknown `model_type`). A GGUF
/// file's tokenizer is its own.
fn runs_of(source: &str, applied: Option<(Family, Config)>, gguf: bool) -> Runs {
    if source.starts_with("demo:") {
        return Runs::Chain;
    }
    let path = Path::new(source);
    let found = match applied {
        Some(found) => Some(found),
        None => match families::detect(path) {
            Ok(found) => found,
            Err(e) => return Runs::Refused(Arc::new(e)),
        },
    };
    match found {
        Some((family, config)) => Runs::Family(Arc::new(FamilyCheckpoint {
            family,
            config,
            folder: families::folder_of(path),
            gguf: gguf.then(|| match checkpoint::locate::checkpoint_in(path) {
                Ok(located) if path.is_dir() => located.file,
                _ => path.to_owned(),
            }),
        })),
        None => Runs::Chain,
    }
}
