//! Opening a model for the app: the checkpoint layer's `open`, its notes kept for the status bar
//! (an architecture found beside the file as `NAME.arch.txt`, tensors an index does not list).

use super::error::AppError;
use super::family::Runs;
use super::job::{OpenSpec, Opened};
use crate::checkpoint::{self, LoadOptions};

/// Opens `spec` as the command line's `MODEL` would be.
pub fn open(spec: &OpenSpec) -> Result<Opened, AppError> {
    let options = LoadOptions {
        arch: spec.arch.as_deref(),
        seed: spec.seed,
    };
    let loaded = checkpoint::open(&spec.model, &options)?;
    Ok(Opened {
        runs: Runs::of(&spec.model, loaded.family),
        model: loaded.model,
        notices: loaded.warnings,
    })
}
