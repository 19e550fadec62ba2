//! Opening a model for the app: the checkpoint layer's `open`, its notes kept for the status bar
//! (an architecture found beside the file as `NAME.arch.txt`, tensors an index does not list, a
//! pickle's calls that were not made), its metadata and plain values kept for the tree.

use super::error::AppError;
use super::extras::{ARRAY_ROWS, Extras};
use super::family::Runs;
use super::job::{OpenSpec, Opened};
use crate::checkpoint::{self, LoadOptions};

/// Opens `spec` as the command line's `MODEL` would be.
pub fn open(spec: &OpenSpec) -> Result<Opened, AppError> {
    let options = LoadOptions {
        arch: spec.arch.as_deref(),
        seed: spec.seed,
        array_items: Some(ARRAY_ROWS),
    };
    let loaded = checkpoint::open(&spec.model, &options)?;
    Ok(Opened {
        runs: Runs::of(&spec.model, loaded.family),
        model: loaded.model,
        notices: loaded.warnings,
        extras: Extras {
            gguf: loaded.gguf,
            values: loaded.values,
        },
    })
}
