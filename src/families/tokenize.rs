//! Text to token ids with a checkpoint folder's `tokenizer.json`, through Hugging Face's
//! `tokenizers` crate (the reference implementation), as transformers' fast tokenizers call it:
//! special tokens added, no truncation, no padding (batches are padded by [`super::Batch`]).

use std::path::{Path, PathBuf};

use thiserror::Error;
use tokenizers::Tokenizer;

/// The largest `tokenizer.json` read: real ones are a few MB (Llama 3's is 9 MB).
const MAX_TOKENIZER_BYTES: u64 = 64 << 20;

/// Why text could not be made into ids. Paths and text travel raw; they are escaped where printed.
#[derive(Debug, Error)]
pub enum TokenizeError {
    /// The folder has no `tokenizer.json`.
    #[error("{}: no tokenizer.json beside the checkpoint, so --text cannot be tokenized; give ids with --tokens 1,2,3", .0.display())]
    Absent(PathBuf),
    /// The file could not be read, or is too long.
    #[error("{}: {reason}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The text could not be encoded.
    #[error("tokenizing {text}: {reason}")]
    Encode {
        /// The text.
        text: String,
        /// What the tokenizer said.
        reason: String,
    },
}

/// A loaded `tokenizer.json`.
pub struct TextTokenizer {
    inner: Tokenizer,
}

impl TextTokenizer {
    /// Loads `tokenizer.json` from `folder`.
    pub fn open(folder: &Path) -> Result<Self, TokenizeError> {
        let path = folder.join("tokenizer.json");
        if !path.exists() {
            return Err(TokenizeError::Absent(folder.to_owned()));
        }
        let read = |reason: String| TokenizeError::Read {
            path: path.clone(),
            reason,
        };
        let size = std::fs::metadata(&path)
            .map_err(|e| read(e.to_string()))?
            .len();
        if size > MAX_TOKENIZER_BYTES {
            return Err(read(format!(
                "{size} bytes is too long for a tokenizer.json (at most {MAX_TOKENIZER_BYTES})"
            )));
        }
        let bytes = crate::io::small_file::read(&path, MAX_TOKENIZER_BYTES)
            .map_err(|e| read(e.to_string()))?;
        let mut inner = Tokenizer::from_bytes(&bytes).map_err(|e| read(e.to_string()))?;
        inner
            .with_truncation(None)
            .map_err(|e| read(e.to_string()))?;
        inner.with_padding(None);
        Ok(Self { inner })
    }

    /// Wraps a tokenizer built elsewhere (from a GGUF file's metadata), which must have neither
    /// truncation nor padding.
    #[must_use]
    pub fn from_tokenizer(inner: Tokenizer) -> Self {
        Self { inner }
    }

    /// The ids of `text`, with the special tokens the tokenizer adds (`[CLS] … [SEP]`, `<s>`).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizeError> {
        self.inner
            .encode(text, true)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| TokenizeError::Encode {
                text: text.to_owned(),
                reason: e.to_string(),
            })
    }

    /// The text of one id as the vocabulary spells it (`Ġthe`, `##ing`), when it has one.
    #[must_use]
    pub fn token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The id of one token, when the vocabulary has it.
    #[must_use]
    pub fn id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}
