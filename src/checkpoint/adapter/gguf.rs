//! A llama.cpp LoRA adapter (`general.type = adapter`, as `convert_lora_to_gguf.py` writes it),
//! read as llama.cpp's `llama_adapter_lora_init` reads it: `adapter.type = lora`, one
//! `adapter.lora.alpha`, tensors `NAME.lora_a` and `NAME.lora_b` paired by `NAME` (the GGUF name of
//! the base weight), norms passed over, anything else refused; each module's rank is its `lora_b`'s
//! columns and its scaling `alpha / rank`. The pairs then go back under PEFT's keys
//! (`families::gguf_names::peft_pair`), so both kinds of adapter attach through one matcher.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use thiserror::Error;

use super::config::Config;
use crate::families::Config as FamilyConfig;
use crate::families::gguf_config::get;
use crate::families::gguf_names::{self, LoraUndoError};
use crate::io::FileError;
use crate::io::gguf::{self, Value};
use crate::io::small_file;
use crate::tensor::Tensor;

/// Where the converter puts the Hub page of the base the adapter's model card names.
const HUB: &str = "https://huggingface.co/";

/// Why a llama.cpp adapter is refused, as llama.cpp itself refuses it (or cannot be read here).
#[derive(Debug, Error)]
pub enum GgufAdapterError {
    /// Another kind of adapter (a control vector, …).
    #[error("adapter.type {0:?}: only LoRA adapters open against a base")]
    NotLora(String),
    /// No architecture: the tensor names cannot be mapped.
    #[error("no general.architecture: its tensor names cannot be read")]
    NoArchitecture,
    /// No alpha, or 0, where llama.cpp would apply the update unscaled.
    #[error(
        "no adapter.lora.alpha (or 0): llama.cpp would then apply the update unscaled, PEFT scaled by alpha / r; the scaling is not guessed"
    )]
    NoAlpha,
    /// A tensor that is neither factor of a pair nor a norm.
    #[error("tensor {0}: neither a lora_a, a lora_b nor a norm (llama.cpp refuses the adapter)")]
    Unexpected(String),
    /// One factor of a pair without the other.
    #[error("{name}: {has} without its {missing}")]
    Lone {
        /// The base weight's GGUF name.
        name: String,
        /// The factor stored.
        has: &'static str,
        /// The factor missing.
        missing: &'static str,
    },
    /// A factor that is not a matrix.
    #[error("{name}.{part}: shape {shape:?}, not a matrix")]
    NotMatrix {
        /// The base weight's GGUF name.
        name: String,
        /// `lora_a` or `lora_b`.
        part: &'static str,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// Factors of different ranks.
    #[error("{name}: lora_a has rank {a} and lora_b rank {b}")]
    RankMismatch {
        /// The base weight's GGUF name.
        name: String,
        /// `lora_a`'s rank.
        a: usize,
        /// `lora_b`'s rank.
        b: usize,
    },
    /// No pair at all.
    #[error("holds no lora_a/lora_b pair")]
    Empty,
    /// A base GGUF of another architecture.
    #[error("an adapter for {adapter} on a {base} base (llama.cpp refuses the pair)")]
    Architecture {
        /// The adapter's architecture.
        adapter: String,
        /// The base's.
        base: String,
    },
    /// A pair whose conversion cannot be undone.
    #[error(transparent)]
    Undo(#[from] LoraUndoError),
}

/// Whether `path` is a local GGUF file whose `general.type` is `adapter` (only its header read);
/// a GGUF file whose header cannot be read is an error, whatever it was meant to be.
pub fn is_adapter(path: &Path) -> Result<bool, FileError> {
    if !path.is_file() || !small_file::head(path, 4).is_ok_and(|head| gguf::sniff(&head)) {
        return Ok(false);
    }
    let file = gguf::open(path, 0)?;
    Ok(text(&file.metadata, "general.type") == Some("adapter"))
}

fn text<'a>(metadata: &'a [(String, Value)], key: &str) -> Option<&'a str> {
    match get(metadata, key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// A llama.cpp adapter's pairs as stored, by the GGUF name of their base weight.
pub struct Pairs {
    architecture: String,
    factors: Vec<(String, Tensor, Tensor)>,
    /// Norms (mergekit's extracted adapters carry them), which llama.cpp passes over.
    norms: Vec<(String, Tensor)>,
}

/// The adapter a GGUF file of `metadata` and `tensors` holds, checked as llama.cpp checks it.
pub fn parse(
    metadata: &[(String, Value)],
    tensors: Vec<(String, Tensor)>,
) -> Result<(Config, Pairs), GgufAdapterError> {
    let kind = text(metadata, "adapter.type").unwrap_or_default();
    if kind != "lora" {
        return Err(GgufAdapterError::NotLora(kind.to_owned()));
    }
    let architecture = text(metadata, "general.architecture")
        .ok_or(GgufAdapterError::NoArchitecture)?
        .to_owned();
    let alpha = match get(metadata, "adapter.lora.alpha") {
        Some(Value::Float(_, alpha)) if *alpha != 0.0 => *alpha,
        _ => return Err(GgufAdapterError::NoAlpha),
    };
    let mut halves: BTreeMap<String, (Option<Tensor>, Option<Tensor>)> = BTreeMap::new();
    let mut norms = Vec::new();
    for (name, tensor) in tensors {
        if let Some(base) = name.strip_suffix(".lora_a") {
            halves.entry(base.to_owned()).or_default().0 = Some(tensor);
        } else if let Some(base) = name.strip_suffix(".lora_b") {
            halves.entry(base.to_owned()).or_default().1 = Some(tensor);
        } else if name.ends_with("_norm.weight") {
            norms.push((name, tensor));
        } else {
            return Err(GgufAdapterError::Unexpected(name));
        }
    }
    let mut pairs = Vec::with_capacity(halves.len());
    let mut targets = BTreeSet::new();
    for (name, halves) in halves {
        let (a, b) = match halves {
            (Some(a), Some(b)) => (a, b),
            (a, _) => {
                let (has, missing) = if a.is_some() {
                    ("lora_a", "lora_b")
                } else {
                    ("lora_b", "lora_a")
                };
                return Err(GgufAdapterError::Lone { name, has, missing });
            }
        };
        let (a_rank, b_rank) = ranks(&name, &a, &b)?;
        if a_rank != b_rank {
            return Err(GgufAdapterError::RankMismatch {
                name,
                a: a_rank,
                b: b_rank,
            });
        }
        if let Some(hf) = gguf_names::hugging_face_name(&architecture, &name)
            && let Some(leaf) = hf
                .strip_suffix(".weight")
                .and_then(|m| m.rsplit('.').next())
        {
            targets.insert(leaf.to_owned());
        }
        pairs.push((name, a, b));
    }
    let r = match pairs.first() {
        Some((_, _, b)) => b.shape()[1],
        None => return Err(GgufAdapterError::Empty),
    };
    let base = match get(metadata, "general.base_model.0.repo_url") {
        Some(Value::String(url)) => named_base(url),
        _ => None,
    };
    let config = Config::llama_cpp(r, alpha, targets.into_iter().collect(), base);
    Ok((
        config,
        Pairs {
            architecture,
            factors: pairs,
            norms,
        },
    ))
}

/// The ranks `lora_a` and `lora_b` give, as llama.cpp reads them: `lora_a` is (r, in), but the
/// token embedding's is stored transposed, (vocabulary, r); `lora_b` is (out, r).
fn ranks(name: &str, a: &Tensor, b: &Tensor) -> Result<(usize, usize), GgufAdapterError> {
    let matrix = |part, t: &Tensor| match *t.shape() {
        [rows, cols] => Ok((rows, cols)),
        _ => Err(GgufAdapterError::NotMatrix {
            name: name.to_owned(),
            part,
            shape: t.shape().to_vec(),
        }),
    };
    let (a_rows, a_cols) = matrix("lora_a", a)?;
    let (_, b_cols) = matrix("lora_b", b)?;
    let a_rank = if name == "token_embd.weight" {
        a_cols
    } else {
        a_rows
    };
    Ok((a_rank, b_cols))
}

/// The base a converter's `repo_url` names: the model card's `base_model` after the Hub's address
/// (a repo id, or the path the adapter was trained on, which the converter writes there too).
fn named_base(url: &str) -> Option<String> {
    let base = url.strip_prefix(HUB)?;
    (!base.is_empty()).then(|| base.to_owned())
}

impl Pairs {
    /// The pairs under PEFT's keys (the norms under their Hugging Face names, which the matcher
    /// lists as not applied), undone for a base whose family config is `base_config` (its head
    /// counts put Llama's query and key rows back) and whose GGUF metadata is `base_gguf`.
    pub fn peft_tensors(
        self,
        base_config: Option<&FamilyConfig>,
        base_gguf: &[(String, Value)],
    ) -> Result<Vec<(String, Tensor)>, GgufAdapterError> {
        if let Some(base) = text(base_gguf, "general.architecture")
            && base != self.architecture
        {
            return Err(GgufAdapterError::Architecture {
                adapter: self.architecture,
                base: base.to_owned(),
            });
        }
        let unknown = FamilyConfig::default();
        let config = base_config.unwrap_or(&unknown);
        let mut tensors = Vec::with_capacity(2 * self.factors.len() + self.norms.len());
        for (name, a, b) in self.factors {
            tensors.extend(gguf_names::peft_pair(
                &self.architecture,
                config,
                &name,
                a,
                b,
            )?);
        }
        tensors.extend(self.norms.into_iter().map(|(name, t)| {
            let hf = gguf_names::hugging_face_name(&self.architecture, &name);
            (hf.unwrap_or(name), t)
        }));
        Ok(tensors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_is_the_model_card_s() {
        assert_eq!(
            named_base("https://huggingface.co/HuggingFaceTB/SmolLM2-135M").as_deref(),
            Some("HuggingFaceTB/SmolLM2-135M")
        );
        // A base trained from a folder: the converter writes its path after the Hub's address.
        assert_eq!(
            named_base("https://huggingface.co//data/base").as_deref(),
            Some("/data/base")
        );
        assert_eq!(named_base("https://huggingface.co/"), None);
        assert_eq!(named_base("https://example.com/x/y"), None);
    }

    fn metadata(alpha: Option<f64>) -> Vec<(String, Value)> {
        let s = |k: &str, v: &str| (k.to_owned(), Value::String(v.to_owned()));
        let mut m = vec![
            s("general.architecture", "llama"),
            s("general.type", "adapter"),
            s("adapter.type", "lora"),
        ];
        if let Some(alpha) = alpha {
            m.push((
                "adapter.lora.alpha".to_owned(),
                Value::Float(gguf::ValueType::F32, alpha),
            ));
        }
        m
    }

    fn zeros(shape: &[usize]) -> Tensor {
        Tensor::from_f32(shape.to_vec(), &vec![0.0; shape.iter().product()])
    }

    #[test]
    fn ranks_come_from_lora_b_and_targets_from_the_names() {
        let tensors = vec![
            ("blk.0.attn_q.weight.lora_a".to_owned(), zeros(&[3, 8])),
            ("blk.0.attn_q.weight.lora_b".to_owned(), zeros(&[8, 3])),
            ("token_embd.weight.lora_a".to_owned(), zeros(&[10, 2])),
            ("token_embd.weight.lora_b".to_owned(), zeros(&[8, 2])),
            ("blk.0.attn_norm.weight".to_owned(), zeros(&[8])),
        ];
        let (config, pairs) = parse(&metadata(Some(6.0)), tensors).unwrap();
        assert_eq!((config.r, config.alpha), (3, 6.0));
        assert_eq!(
            config
                .rank_and_alpha("model.layers.0.self_attn.q_proj", &[8, 3])
                .0,
            3
        );
        assert!(config.targets("model.layers.4.self_attn.q_proj"));
        assert!(config.targets("model.embed_tokens"));
        assert!(!config.targets("model.layers.0.self_attn.k_proj"));
        assert_eq!(pairs.norms.len(), 1);
    }

    #[test]
    fn what_llama_cpp_refuses_is_refused() {
        let pair = |a: &[usize], b: &[usize]| {
            vec![
                ("blk.0.attn_v.weight.lora_a".to_owned(), zeros(a)),
                ("blk.0.attn_v.weight.lora_b".to_owned(), zeros(b)),
            ]
        };
        let refused = |alpha, tensors| parse(&metadata(alpha), tensors).err().unwrap();
        assert!(matches!(
            refused(None, pair(&[2, 8], &[4, 2])),
            GgufAdapterError::NoAlpha
        ));
        assert!(matches!(
            refused(Some(0.0), pair(&[2, 8], &[4, 2])),
            GgufAdapterError::NoAlpha
        ));
        assert!(matches!(
            refused(Some(1.0), pair(&[2, 8], &[4, 3])),
            GgufAdapterError::RankMismatch { a: 2, b: 3, .. }
        ));
        assert!(matches!(
            refused(Some(1.0), pair(&[2, 8, 1], &[4, 2])),
            GgufAdapterError::NotMatrix { part: "lora_a", .. }
        ));
        let mut lone = pair(&[2, 8], &[4, 2]);
        lone.remove(0);
        assert!(matches!(
            refused(Some(1.0), lone),
            GgufAdapterError::Lone { has: "lora_b", .. }
        ));
        assert!(matches!(
            refused(Some(1.0), Vec::new()),
            GgufAdapterError::Empty
        ));
        let odd = vec![("blk.0.attn_v.weight".to_owned(), zeros(&[4, 8]))];
        assert!(matches!(
            refused(Some(1.0), odd),
            GgufAdapterError::Unexpected(_)
        ));
    }

    #[test]
    fn a_base_gguf_of_another_architecture_is_refused() {
        let tensors = vec![
            ("blk.0.attn_v.weight.lora_a".to_owned(), zeros(&[2, 8])),
            ("blk.0.attn_v.weight.lora_b".to_owned(), zeros(&[4, 2])),
        ];
        let (_, pairs) = parse(&metadata(Some(1.0)), tensors).unwrap();
        let base = vec![(
            "general.architecture".to_owned(),
            Value::String("qwen2".to_owned()),
        )];
        assert!(matches!(
            pairs.peft_tensors(None, &base),
            Err(GgufAdapterError::Architecture { .. })
        ));
    }
}
