//! Model families run as code: BERT, GPT-2, Llama (which also serves Mistral and Qwen2), Qwen3,
//! Gemma 1-3, Phi-3, Mixtral, Qwen2-MoE and Qwen3-MoE, each one file (the decoders on the shared
//! `decoder`), chosen by `config.json`'s `model_type` through the table `BLUEPRINTS`; the causal
//! ones also continue a text greedily over a KV cache ([`Plan::generate`]).
//!
//! A family file writes its modules once, through a [`scope::Scope`]: each call finds a weight by
//! its Hugging Face name and records the module it belongs to. Drawn without reading
//! ([`apply`]), that gives the checkpoint its real structure (PyTorch's module classes and
//! state_dict order); read ([`Plan::new`]), a forward with weights upcast to f32 and packed once,
//! which runs a batch of token ids and records every module boundary's output as the same
//! [`Activation`](crate::model::forward::Activation) list the Sequential plan produces, under the
//! paths the tree shows.
//!
//! A new family is one file declaring a [`Blueprint`] and one line in `BLUEPRINTS`.

pub mod attention;
mod batch;
mod bert;
pub mod blueprint;
mod causal;
pub mod config;
mod decoder;
pub mod error;
mod gemma;
mod gemma2;
mod gemma3;
pub mod generate;
pub mod gguf_config;
pub mod gguf_names;
pub mod gguf_tokenizer;
mod gpt2;
mod llama;
mod mixtral;
mod mlp;
pub mod ops;
mod phi3;
pub mod predict;
pub mod probe;
mod quant_weight;
mod qwen2_moe;
mod qwen3;
mod qwen3_moe;
mod record;
pub mod rope;
pub mod scope;
pub mod sentence;
pub mod tokenize;
pub mod tree;
mod weights;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use ndarray::ArrayD;

pub use batch::Batch;
pub use blueprint::{Blueprint, Forward};
pub use config::{Config, ConfigError, Origin, folder_of};
pub use error::FamilyError;
pub use generate::{Generated, KvCache, Stop};
pub use record::Recorder;
pub use tree::Applied;

use crate::model::forward::Activation;
use crate::model::{Model, ParamId};
use scope::Reading;

/// The families paramscope runs, in the order messages list them.
static BLUEPRINTS: &[&Blueprint] = &[
    &bert::BLUEPRINT,
    &gpt2::BLUEPRINT,
    &llama::BLUEPRINT,
    &qwen3::BLUEPRINT,
    &gemma::BLUEPRINT,
    &gemma2::BLUEPRINT,
    &gemma3::BLUEPRINT,
    &phi3::BLUEPRINT,
    &mixtral::BLUEPRINT,
    &qwen2_moe::BLUEPRINT,
    &qwen3_moe::BLUEPRINT,
];

/// The `model_type` values run as code, for messages: `bert, gpt2, llama, ...`.
#[must_use]
pub fn supported() -> String {
    BLUEPRINTS
        .iter()
        .flat_map(|b| b.model_types.iter().copied())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A supported architecture.
#[derive(Clone, Copy)]
pub struct Family(&'static Blueprint);

impl Family {
    /// The family a config names; `Ok(None)` when it names no `model_type` at all.
    pub fn detect(config: &Config) -> Result<Option<Self>, FamilyError> {
        let Some(model_type) = config.model_type.as_deref() else {
            return Ok(None);
        };
        BLUEPRINTS
            .iter()
            .find(|b| b.model_types.contains(&model_type))
            .map(|b| Some(Self(b)))
            .ok_or_else(|| FamilyError::Unsupported {
                model_type: model_type.to_owned(),
                supported: supported(),
            })
    }

    /// Whether the family predicts the next token (and so has logits and top-k) rather than
    /// encoding (and so may be pooled into a sentence embedding).
    #[must_use]
    pub fn is_causal(self) -> bool {
        self.0.causal
    }
}

impl PartialEq for Family {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for Family {}

impl fmt::Debug for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

/// The family a checkpoint's `config.json` names, with the config; `Ok(None)` when there is no
/// config beside it or it names no `model_type`.
pub fn detect(checkpoint: &Path) -> Result<Option<(Family, Config)>, FamilyError> {
    named(Config::beside(checkpoint)?)
}

/// The family `config` names, with the config; `Ok(None)` when there is none or it names no
/// `model_type`.
pub fn named(config: Option<Config>) -> Result<Option<(Family, Config)>, FamilyError> {
    let Some(config) = config else {
        return Ok(None);
    };
    Ok(Family::detect(&config)?.map(|family| (family, config)))
}

/// Rebuilds `model`'s tree as `family` registers its modules, reading no tensor. Modules none of
/// whose tensors the checkpoint holds are left out; tensors the family does not know are kept at
/// the root, whole.
pub fn apply(family: Family, config: &Config, model: &Model) -> Result<Applied, FamilyError> {
    let built = scope::build(model, Reading::TreeOnly, |s| (family.0.modules)(s, config))
        .map_err(|e| e.read_from(config.origin))?;
    Ok(built.tree.bind(model))
}

/// What a pass produced.
#[derive(Debug, Clone)]
pub struct Pass {
    /// Every module boundary's output, in execution order, under its tree path.
    pub activations: Vec<Activation>,
    /// The model's output: the last hidden state `[batch, len, hidden]` for an encoder, the logits
    /// `[batch, len, vocab]` for a causal LM.
    pub output: ArrayD<f32>,
    /// A mixture of experts' router choices, `[layer][token of sequence 0][expert ids]`, best
    /// first; empty for a model without experts.
    pub experts: Vec<Vec<Vec<u32>>>,
}

/// A family's model ready to run: its weights read, upcast and packed once.
#[derive(Debug, Clone)]
pub struct Plan {
    family: Family,
    forward: Arc<dyn Forward>,
    /// The config's `max_position_embeddings`: no sequence runs longer.
    max_positions: Option<usize>,
    /// Where the config was read, for the message when a batch is longer.
    origin: Origin,
    /// Every tensor read, with its version then: the plan is stale once any changes.
    versions: Vec<(ParamId, u64)>,
}

impl Plan {
    /// Reads the weights `config` implies from `model`.
    pub fn new(family: Family, model: &Model, config: &Config) -> Result<Self, FamilyError> {
        let built = scope::build(model, Reading::Values, |s| (family.0.forward)(s, config))
            .map_err(|e| e.read_from(config.origin))?;
        Ok(Self {
            family,
            forward: built.value.into(),
            max_positions: config.max_position_embeddings,
            origin: config.origin,
            versions: built.versions,
        })
    }

    /// Runs the batch, recording every module boundary.
    pub fn run(&self, batch: &Batch) -> Result<Pass, FamilyError> {
        self.run_with_progress(batch, &mut |_, _| {})
    }

    /// [`run`](Self::run), telling `progress` (blocks done, blocks in all) after each block.
    pub fn run_with_progress(
        &self,
        batch: &Batch,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Pass, FamilyError> {
        self.record(batch, Recorder::new(batch.size(), batch.len, progress))
    }

    /// [`run`](Self::run), writing into the buffers of `last`, an earlier pass's result: what a
    /// loop of passes (`forward --repeat`, the app re-running a model) does, so that it touches
    /// no fresh memory once the batch's shape is set.
    pub fn rerun(&self, batch: &Batch, last: Pass) -> Result<Pass, FamilyError> {
        let mut progress = |_, _| {};
        let spare = last.activations;
        self.record(
            batch,
            Recorder::reusing(batch.size(), batch.len, &mut progress, spare),
        )
    }

    /// [`run`](Self::run), also filling `probe` with what it asks for.
    pub fn run_probed(&self, batch: &Batch, probe: &mut probe::Probe) -> Result<Pass, FamilyError> {
        self.run_probed_with_progress(batch, probe, &mut |_, _| {})
    }

    /// [`run_probed`](Self::run_probed), telling `progress` after each block.
    pub fn run_probed_with_progress(
        &self,
        batch: &Batch,
        probe: &mut probe::Probe,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Pass, FamilyError> {
        probe.start(&batch.lens, batch.len);
        self.record(
            batch,
            Recorder::new(batch.size(), batch.len, progress).probing(probe),
        )
    }

    /// [`run_probed`](Self::run_probed), writing into the buffers of `last` (and `probe`'s own of
    /// its last pass), as [`rerun`](Self::rerun) does.
    pub fn rerun_probed(
        &self,
        batch: &Batch,
        probe: &mut probe::Probe,
        last: Pass,
    ) -> Result<Pass, FamilyError> {
        let mut progress = |_, _| {};
        probe.start(&batch.lens, batch.len);
        let recorder = Recorder::reusing(batch.size(), batch.len, &mut progress, last.activations);
        self.record(batch, recorder.probing(probe))
    }

    /// The final norm and LM head applied to residual-stream rows `h` (normed in place), logits
    /// into `logits`; `false` when the model has no head.
    pub fn head(&self, h: &mut [f32], logits: &mut Vec<f32>) -> bool {
        self.forward.head(h, logits)
    }

    fn record(&self, batch: &Batch, mut recorder: Recorder) -> Result<Pass, FamilyError> {
        attention::check_len(batch, self.max_positions, self.origin)?;
        let output = self.forward.run(batch, &mut recorder)?;
        let experts = recorder.take_experts();
        Ok(Pass {
            activations: recorder.into_activations(),
            output,
            experts,
        })
    }

    /// Continues `prompt` greedily by up to `n` tokens (fewer at an id of `eos` or the model's
    /// last position), telling `on_token` each id as it comes.
    pub fn generate(
        &self,
        prompt: &[u32],
        n: usize,
        eos: &[u32],
        on_token: &mut dyn FnMut(u32),
    ) -> Result<Generated, FamilyError> {
        let mut cache = self.forward.cache().ok_or_else(|| {
            FamilyError::Input(format!(
                "a {:?} model does not generate text (it has no language-model head)",
                self.family
            ))
        })?;
        let forward = &self.forward;
        let mut step = |ids: &[u32], cache: &mut KvCache| forward.step(ids, cache);
        generate::greedy(&mut step, &mut cache, prompt, n, eos, on_token)
    }

    /// Whether the plan predicts tokens (logits and top-k) rather than encoding.
    #[must_use]
    pub fn is_causal(&self) -> bool {
        self.family.is_causal()
    }

    /// Whether `model`'s tensors are still those the plan read (no re-init since).
    #[must_use]
    pub fn is_current(&self, model: &Model) -> bool {
        self.versions
            .iter()
            .all(|&(id, v)| id.0 < model.store.len() && model.store.version(id) == v)
    }
}
