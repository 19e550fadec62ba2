//! Text to token ids with a checkpoint folder's `tokenizer.json`, through Hugging Face's
//! `tokenizers` crate (the reference implementation), as transformers' fast tokenizers call it:
//! special tokens added, no truncation, no padding (batches are padded by [`super::Batch`]).
//!
//! The crate panics, and on some inputs aborts, on malformed data; a file is checked first for
//! what would abort ([`guard`]), and the crate's construction and encoding run under
//! `catch_unwind`, so that a panic nothing foresaw becomes an error naming the file.

mod guard;

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Once;

use serde_json::Value as Json;
use thiserror::Error;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::{
    AddedToken, DecoderWrapper, PostProcessorWrapper, PreTokenizerWrapper, Tokenizer,
};

pub use guard::{Charsmap, Unsafe};

/// The largest `tokenizer.json` read: real ones are a few MB (Llama 3's is 9 MB).
pub const MAX_TOKENIZER_BYTES: u64 = 64 << 20;

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
    /// The file holds what the `tokenizers` crate would abort or panic on.
    #[error("{}: {source}", .path.display())]
    Refused {
        /// The file.
        path: PathBuf,
        /// What it holds.
        source: Unsafe,
    },
    /// The `tokenizers` crate panicked on the file.
    #[error("{}: the tokenizers crate failed while {during}: {message}", .path.display())]
    Panicked {
        /// The file.
        path: PathBuf,
        /// What it was doing: "reading it", "encoding".
        during: &'static str,
        /// The panic's message.
        message: String,
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

/// A byte-pair-encoding tokenizer described piece by piece (what a GGUF file's metadata holds),
/// for [`TextTokenizer::from_bpe`]: the vocabulary and merges as lists, the rest as the JSON a
/// `tokenizer.json` would hold.
pub struct BpeParts {
    /// Token `i` is spelled `vocab[i]`; a token listed twice keeps its last id.
    pub vocab: Vec<String>,
    /// The merges, highest priority first.
    pub merges: Vec<(String, String)>,
    /// Unknown bytes become `<0xNN>` tokens (SentencePiece-style vocabularies).
    pub byte_fallback: bool,
    /// Runs of unknown tokens are fused into one.
    pub fuse_unk: bool,
    /// The pre-tokenizer, decoder and post-processor, as `tokenizer.json` spells them.
    pub pre_tokenizer: Json,
    /// See [`Self::pre_tokenizer`].
    pub decoder: Json,
    /// See [`Self::pre_tokenizer`].
    pub post_processor: Json,
    /// Added tokens: id, text, and whether special.
    pub added: Vec<(usize, String, bool)>,
}

/// A loaded `tokenizer.json`.
pub struct TextTokenizer {
    inner: Tokenizer,
    /// The file, for messages.
    path: PathBuf,
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
        Self::from_json(&bytes, path)
    }

    /// Builds a tokenizer from its JSON (a `tokenizer.json`'s bytes, or one made from a GGUF
    /// file's metadata), checked first and built under a panic guard; `path` names the file the
    /// JSON came from in messages.
    pub fn from_json(bytes: &[u8], path: PathBuf) -> Result<Self, TokenizeError> {
        let read = |reason: String| TokenizeError::Read {
            path: path.clone(),
            reason,
        };
        guard::check(bytes).map_err(|source| TokenizeError::Refused {
            path: path.clone(),
            source,
        })?;
        let mut inner = contained(&path, "reading it", || Tokenizer::from_bytes(bytes))?
            .map_err(|e| read(e.to_string()))?;
        inner
            .with_truncation(None)
            .map_err(|e| read(e.to_string()))?;
        inner.with_padding(None);
        Ok(Self { inner, path })
    }

    /// Builds a BPE tokenizer from its parts, under the same panic guard as [`Self::from_json`].
    ///
    /// Built through the crate's builders rather than a `tokenizer.json` made from the parts:
    /// the crate's JSON reader buffers a 49,152-token vocabulary and its merges several times over
    /// (40 MB of a 98 MB model's run); the parts' vocabulary and merges are handed over as they are.
    pub fn from_bpe(parts: BpeParts, path: PathBuf) -> Result<Self, TokenizeError> {
        let pre_tokenizer: PreTokenizerWrapper = part("pre-tokenizer", parts.pre_tokenizer, &path)?;
        let decoder: DecoderWrapper = part("decoder", parts.decoder, &path)?;
        let post_processor: PostProcessorWrapper =
            part("post-processor", parts.post_processor, &path)?;
        let BpeParts {
            vocab,
            merges,
            byte_fallback,
            fuse_unk,
            added,
            ..
        } = parts;
        let inner = contained(&path, "reading it", move || {
            let mut map = Vocab::with_capacity(vocab.len());
            for (id, token) in (0u32..).zip(vocab) {
                map.insert(token, id);
            }
            let model = BPE::builder()
                .vocab_and_merges(map, merges)
                .byte_fallback(byte_fallback)
                .fuse_unk(fuse_unk)
                .build()?;
            let mut tokenizer = Tokenizer::new(model);
            tokenizer
                .with_pre_tokenizer(Some(pre_tokenizer))
                .with_decoder(Some(decoder))
                .with_post_processor(Some(post_processor));
            // As the crate's own reader adds a tokenizer.json's added tokens: all at once, each
            // keeping the id the vocabulary gives its text.
            tokenizer.add_tokens(added.into_iter().map(|(_, content, special)| {
                AddedToken::from(content, special)
                    .single_word(false)
                    .lstrip(false)
                    .rstrip(false)
                    .normalized(false)
            }))?;
            Ok::<_, tokenizers::Error>(tokenizer)
        })?
        .map_err(|e| TokenizeError::Read {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self { inner, path })
    }

    /// The ids of `text`, with the special tokens the tokenizer adds (`[CLS] … [SEP]`, `<s>`).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizeError> {
        contained(&self.path, "encoding", || self.inner.encode(text, true))?
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

    /// The text of one id as it reads in text (` The`, a newline), not as the vocabulary spells it
    /// (`ĠThe`, `Ċ`); the vocabulary's spelling when the decoder gives nothing.
    #[must_use]
    pub fn reads(&self, id: u32) -> Option<String> {
        self.decode(&[id]).or_else(|| self.token(id))
    }

    /// The text of `ids` as the tokenizer's decoder joins them, special tokens kept (the
    /// continuation generation prints); `None` when the decoder fails.
    #[must_use]
    pub fn decode(&self, ids: &[u32]) -> Option<String> {
        self.inner.decode(ids, false).ok()
    }

    /// The id of one token, when the vocabulary has it.
    #[must_use]
    pub fn id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}

/// One part of a tokenizer (`what`: "decoder", ...) from the JSON `tokenizer.json` would hold.
fn part<T: serde::de::DeserializeOwned>(
    what: &str,
    json: Json,
    path: &Path,
) -> Result<T, TokenizeError> {
    serde_json::from_value(json).map_err(|e| TokenizeError::Read {
        path: path.to_owned(),
        reason: format!("the {what} made for it: {e}"),
    })
}

thread_local! {
    /// Whether a panic on this thread is being caught by [`contained`], and so is not printed.
    static CONTAINING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `work`, which calls into the `tokenizers` crate; a panic in it becomes
/// [`TokenizeError::Panicked`], without the panic hook's lines on stderr (the error is the one
/// line said).
fn contained<T>(
    path: &Path,
    during: &'static str,
    work: impl FnOnce() -> T,
) -> Result<T, TokenizeError> {
    static QUIET_HOOK: Once = Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CONTAINING.get() {
                previous(info);
            }
        }));
    });
    CONTAINING.set(true);
    let result = catch_unwind(AssertUnwindSafe(work));
    CONTAINING.set(false);
    result.map_err(|payload| TokenizeError::Panicked {
        path: path.to_owned(),
        during,
        message: payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned()),
    })
}
