//! sentence-transformers folders: `modules.json` naming a Pooling module (and maybe Normalize) after
//! the transformer, whose sentence embedding is the pooled, optionally normalized, last hidden state.

use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayD, Axis};
use serde::Deserialize;
use thiserror::Error;

/// The largest `modules.json` or pooling config read.
const MAX_BYTES: u64 = 1 << 20;

/// Why a sentence-transformers folder cannot be pooled. Paths and names travel raw; they are
/// escaped where printed.
#[derive(Debug, Error)]
pub enum SentenceError {
    /// A file could not be read or parsed.
    #[error("{}: {reason}", .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A module paramscope does not run (`Dense`, ...).
    #[error("modules.json: module {0} is not supported (Transformer, Pooling and Normalize are)")]
    Module(String),
    /// A pooling mode not supported.
    #[error("{}: no pooling mode paramscope knows is on (cls, max, mean, mean_sqrt_len, lasttoken)", .0.display())]
    NoMode(PathBuf),
}

#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "sentence-transformers' config keys, one flag per mode"
)]
struct PoolingConfig {
    pooling_mode_cls_token: bool,
    pooling_mode_max_tokens: bool,
    pooling_mode_mean_tokens: bool,
    pooling_mode_mean_sqrt_len_tokens: bool,
    pooling_mode_lasttoken: bool,
}

/// One way of pooling a sequence's hidden states into one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Cls,
    Max,
    Mean,
    MeanSqrtLen,
    LastToken,
}

/// How a sentence-transformers folder makes its embedding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pooling {
    /// Concatenated in sentence-transformers' order.
    modes: Vec<Mode>,
    /// Whether a Normalize module follows.
    normalize: bool,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, SentenceError> {
    let fail = |reason: String| SentenceError::File {
        path: path.to_owned(),
        reason,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| fail(e.to_string()))?
        .len();
    if size > MAX_BYTES {
        return Err(fail(format!("{size} bytes is too long")));
    }
    let bytes = crate::io::small_file::read(path, MAX_BYTES).map_err(|e| fail(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string()))
}

impl Pooling {
    /// The pooling `folder`'s `modules.json` describes; `Ok(None)` when there is none.
    pub fn detect(folder: &Path) -> Result<Option<Self>, SentenceError> {
        let modules = folder.join("modules.json");
        if !modules.exists() {
            return Ok(None);
        }
        let entries: Vec<ModuleEntry> = read_json(&modules)?;
        let mut pooling = None;
        let mut normalize = false;
        for entry in entries {
            let kind = entry.kind.rsplit('.').next().unwrap_or_default();
            match kind {
                "Transformer" => {}
                "Normalize" => normalize = true,
                "Pooling" => {
                    // The module's folder must stay inside the checkpoint's.
                    if entry.path.contains("..") || Path::new(&entry.path).is_absolute() {
                        return Err(SentenceError::Module(entry.path));
                    }
                    let path = folder.join(&entry.path).join("config.json");
                    let c: PoolingConfig = read_json(&path)?;
                    let modes: Vec<Mode> = [
                        (c.pooling_mode_cls_token, Mode::Cls),
                        (c.pooling_mode_max_tokens, Mode::Max),
                        (c.pooling_mode_mean_tokens, Mode::Mean),
                        (c.pooling_mode_mean_sqrt_len_tokens, Mode::MeanSqrtLen),
                        (c.pooling_mode_lasttoken, Mode::LastToken),
                    ]
                    .into_iter()
                    .filter_map(|(on, mode)| on.then_some(mode))
                    .collect();
                    if modes.is_empty() {
                        return Err(SentenceError::NoMode(path));
                    }
                    pooling = Some(modes);
                }
                _ => return Err(SentenceError::Module(entry.kind)),
            }
        }
        Ok(pooling.map(|modes| Self { modes, normalize }))
    }

    /// The embedding of each sequence: `hidden` `[batch, len, width]`, sequence `b` real for
    /// `lens[b]` positions.
    #[must_use]
    pub fn embed(&self, hidden: &ArrayD<f32>, lens: &[usize]) -> Array2<f32> {
        let width = hidden.shape()[2];
        let mut out = Array2::zeros((lens.len(), width * self.modes.len()));
        for (b, (seq, &n)) in hidden.outer_iter().zip(lens).enumerate() {
            let real = seq.slice_axis(Axis(0), (0..n).into());
            for (m, mode) in self.modes.iter().enumerate() {
                let mut dst = out.slice_mut(ndarray::s![b, m * width..(m + 1) * width]);
                match mode {
                    Mode::Cls => dst.assign(&real.index_axis(Axis(0), 0)),
                    Mode::LastToken => dst.assign(&real.index_axis(Axis(0), n - 1)),
                    Mode::Max => {
                        dst.fill(f32::NEG_INFINITY);
                        for row in real.outer_iter() {
                            dst.zip_mut_with(&row, |d, v| *d = d.max(*v));
                        }
                    }
                    Mode::Mean | Mode::MeanSqrtLen => {
                        for row in real.outer_iter() {
                            dst += &row;
                        }
                        let divisor = if *mode == Mode::Mean {
                            n as f32
                        } else {
                            (n as f32).sqrt()
                        };
                        dst.mapv_inplace(|v| v / divisor);
                    }
                }
            }
        }
        if self.normalize {
            for mut row in out.outer_iter_mut() {
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                row.mapv_inplace(|v| v / norm);
            }
        }
        out
    }
}
