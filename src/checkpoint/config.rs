//! What a Hugging Face `config.json` beside a checkpoint says about the model's structure.

use std::path::Path;

use crate::io::small_file;

/// The largest `config.json` read; real ones are a few KB.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The parts of a `config.json` that change how a checkpoint is read. An absent, unreadable or
/// malformed file gives the defaults: the checkpoint still opens on its names alone.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `tie_word_embeddings: true`: `lm_head.weight` is the input embedding, saved or not.
    pub tie_word_embeddings: bool,
}

impl Config {
    /// The `config.json` in the checkpoint's folder. It is read only when it is a regular file of
    /// at most 1 MiB, so a FIFO or a device planted there cannot block or flood the load.
    #[must_use]
    pub fn beside(checkpoint: &Path) -> Config {
        let path = super::beside(checkpoint, "config.json");
        let Ok(bytes) = small_file::read(&path, MAX_CONFIG_BYTES) else {
            return Config::default();
        };
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return Config::default();
        };
        Config {
            tie_word_embeddings: json
                .get("tie_word_embeddings")
                .and_then(serde_json::Value::as_bool)
                == Some(true),
        }
    }
}
