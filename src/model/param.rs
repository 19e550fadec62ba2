//! Parameter identity: one tensor per [`ParamId`], however many module paths refer to it.

use std::sync::Arc;
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
///
/// Cloning is O(1): the lists are shared with the clone (a snapshot the app hands its worker)
/// and copied on the first write to one that is shared (`Arc::make_mut`), so a job can take the
/// model as it is while the app goes on editing its own.
#[derive(Clone, Default)]
pub struct ParamStore {
    tensors: Arc<Vec<Tensor>>,
    versions: Arc<Vec<u64>>,
}

impl ParamStore {
    /// Adds a tensor and returns its new id.
    pub fn insert(&mut self, tensor: Tensor) -> ParamId {
        Arc::make_mut(&mut self.tensors).push(tensor);
        Arc::make_mut(&mut self.versions).push(next_version());
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

    /// Replaces the tensor behind `id`: every path that refers to it sees the new values. The
    /// first write to a store shared with a snapshot copies its lists (not the tensors' bytes).
    pub fn set(&mut self, id: ParamId, tensor: Tensor) {
        Arc::make_mut(&mut self.tensors)[id.0] = tensor;
        Arc::make_mut(&mut self.versions)[id.0] = next_version();
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

#[cfg(test)]
mod tests {
    use super::ParamStore;
    use crate::tensor::Tensor;

    #[test]
    fn a_clone_shares_until_one_side_writes_and_then_neither_sees_the_other() {
        let mut store = ParamStore::default();
        let id = store.insert(Tensor::from_f32(vec![2], &[1.0, 2.0]));
        let snapshot = store.clone();
        assert!(
            std::sync::Arc::ptr_eq(&store.tensors, &snapshot.tensors),
            "a clone copies nothing"
        );
        store.set(id, Tensor::from_f32(vec![2], &[3.0, 4.0]));
        assert_eq!(snapshot.get(id).to_f32_vec().unwrap(), [1.0, 2.0]);
        assert_eq!(store.get(id).to_f32_vec().unwrap(), [3.0, 4.0]);
        assert_ne!(store.version(id), snapshot.version(id));
        let other = store.insert(Tensor::from_f32(vec![1], &[5.0]));
        assert_eq!((store.len(), snapshot.len()), (2, 1));
        assert_eq!(store.get(other).to_f32_vec().unwrap(), [5.0]);
    }
}
