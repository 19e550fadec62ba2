//! What a family file gives the dispatch: its [`Blueprint`] (the `model_type`s it serves, how it
//! draws its modules and builds its [`Forward`] through a scope).

use std::fmt::Debug;

use ndarray::ArrayD;

use super::batch::Batch;
use super::config::Config;
use super::error::FamilyError;
use super::generate::KvCache;
use super::record::Recorder;
use super::scope::Scope;

/// One architecture paramscope runs, as its file declares it.
#[derive(Debug)]
pub struct Blueprint {
    /// Its name in messages (`BERT`).
    pub name: &'static str,
    /// The `model_type` values of config.json it serves.
    pub model_types: &'static [&'static str],
    /// Whether it predicts the next token (logits and top-k) rather than encoding.
    pub causal: bool,
    /// Draws its modules through the scope: the same lines as [`forward`](Self::forward)'s
    /// modules, without the settings only a run needs (an activation or a RoPE scaling paramscope
    /// does not run still gets its tree).
    pub modules: Build<()>,
    /// Checks the run's settings and builds the forward through the scope.
    pub forward: Build<Box<dyn Forward>>,
}

/// A family's code run on a scope: what it makes of the modules it draws.
pub type Build<T> = fn(&Scope, &Config) -> Result<T, FamilyError>;

/// A family's model ready to run: its weights read, upcast and packed once.
pub trait Forward: Debug + Send + Sync {
    /// The model's output for `batch` (the last hidden state of an encoder, the logits of a causal
    /// LM), recording every module boundary's output on `rec`.
    fn run(&self, batch: &Batch, rec: &mut Recorder) -> Result<ArrayD<f32>, FamilyError>;

    /// An empty cache for generation, when the family generates (a causal LM with a head).
    fn cache(&self) -> Option<KvCache> {
        None
    }

    /// Feeds `ids` (one sequence) at the cache's next positions, adding their keys and values
    /// to it; gives the logits of the last of them. Only called with a cache from
    /// [`cache`](Self::cache).
    fn step(&self, ids: &[u32], cache: &mut KvCache) -> Result<Vec<f32>, FamilyError> {
        let _ = (ids, cache);
        Err(FamilyError::Input(
            "this family does not generate text".into(),
        ))
    }
}
