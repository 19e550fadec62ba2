//! Parameter identity: one tensor per [`ParamId`], however many module paths refer to it.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::tensor::Tensor;

/// The next version stamp; process-wide, so no two tensors states ever share one.
fn next_version() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The identity of one parameter tensor. Two paths with the same id are the same tensor (a tie).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub usize);

/// Every parameter tensor of a model, each stored once, with a version stamped on every write.
#[derive(Clone, Default)]
pub struct ParamStore {
    tensors: Vec<Tensor>,
    versions: Vec<u64>,
}

impl ParamStore {
    /// Adds a tensor and returns its new id.
    pub fn insert(&mut self, tensor: Tensor) -> ParamId {
        self.tensors.push(tensor);
        self.versions.push(next_version());
        ParamId(self.tensors.len() - 1)
    }

    /// The tensor behind `id`.
    ///
    /// # Panics
    /// When `id` does not come from this store.
    #[must_use]
    pub fn get(&self, id: ParamId) -> &Tensor {
        &self.tensors[id.0]
    }

    /// Replaces the tensor behind `id`: every path that refers to it sees the new values.
    pub fn set(&mut self, id: ParamId, tensor: Tensor) {
        self.tensors[id.0] = tensor;
        self.versions[id.0] = next_version();
    }

    /// A stamp of the tensor's contents: new on every write, and unique in the process, so that a
    /// cache keyed on `(id, version)` can never confuse two models' tensors or two states of one.
    #[must_use]
    pub fn version(&self, id: ParamId) -> u64 {
        self.versions[id.0]
    }

    /// The number of distinct tensors.
    #[must_use]
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the store holds no tensor.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
}
