//! A stored matrix shown with its rows in another order (llama.cpp's query and key rows, shown in
//! Hugging Face's order): the stored bytes stay where they are (a mapped file), a product that
//! knows the order multiplies them in place and puts its outputs in order, and the reordered copy
//! is made only when a reader asks for the bytes. Whole rows move, so a quantized matrix stays
//! quantized and its values are exactly the stored ones.

use std::sync::{Arc, OnceLock};

use super::{FetchError, Tensor};

/// A matrix's rows in another order.
pub struct Rows {
    /// The matrix as stored.
    stored: Tensor,
    /// For each row shown, the stored row it is.
    order: Arc<[u32]>,
    /// The rows copied in order, once a reader asked for the bytes.
    copy: OnceLock<Box<[u8]>>,
}

impl Rows {
    /// `stored`'s rows shown as `order` says (row `i` shown is stored row `order[i]`); `None`
    /// unless `order` names each of its rows once.
    #[must_use]
    pub fn new(stored: Tensor, order: Vec<u32>) -> Option<Self> {
        let rows = *stored.shape().first()?;
        let mut seen = vec![false; rows];
        if order.len() != rows {
            return None;
        }
        for &r in &order {
            let slot = seen.get_mut(r as usize)?;
            if std::mem::replace(slot, true) {
                return None;
            }
        }
        Some(Self {
            stored,
            order: order.into(),
            copy: OnceLock::new(),
        })
    }

    /// The matrix as stored.
    #[must_use]
    pub fn stored(&self) -> &Tensor {
        &self.stored
    }

    /// For each row shown, the stored row it is.
    #[must_use]
    pub fn order(&self) -> &Arc<[u32]> {
        &self.order
    }

    /// The bytes in the order shown, copied from the stored ones the first time (empty while the
    /// stored bytes are not fetched: the caller fetches them first, as for any tensor).
    pub(super) fn bytes(&self) -> &[u8] {
        if let Some(copy) = self.copy.get() {
            return copy;
        }
        if self.stored.is_pending() {
            return &[];
        }
        self.copy.get_or_init(|| self.gathered())
    }

    /// [`Rows::bytes`], fetching the stored bytes first.
    pub(super) fn try_bytes(&self) -> Result<&[u8], FetchError> {
        self.stored.try_bytes()?;
        Ok(self.bytes())
    }

    /// Whether the rows were copied in order (a reader asked for the bytes).
    pub(super) fn is_copied(&self) -> bool {
        self.copy.get().is_some()
    }

    /// The same view with no copy made, reading through the stored tensor's own transient handle.
    pub(super) fn transient(&self) -> Self {
        Self {
            stored: self.stored.transient(),
            order: Arc::clone(&self.order),
            copy: OnceLock::new(),
        }
    }

    fn gathered(&self) -> Box<[u8]> {
        let bytes = self.stored.bytes();
        let row = bytes.len() / self.order.len().max(1);
        let mut out = Vec::with_capacity(bytes.len());
        for &r in self.order.iter() {
            let start = r as usize * row;
            out.extend_from_slice(&bytes[start..start + row]);
        }
        out.into_boxed_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_shown_in_order_and_copied_once() {
        let stored = Tensor::from_f32(vec![3, 2], &[0.0, 1.0, 10.0, 11.0, 20.0, 21.0]);
        let shown = Tensor::reordered(Rows::new(stored.clone(), vec![2, 0, 1]).unwrap());
        assert_eq!(shown.shape(), [3, 2]);
        assert_eq!(shown.byte_len(), 24);
        assert_eq!(
            shown.to_f32_vec().unwrap(),
            [20.0, 21.0, 0.0, 1.0, 10.0, 11.0]
        );
        let (kept, order) = shown.reordered_rows().unwrap();
        assert_eq!(kept.bytes(), stored.bytes());
        assert_eq!(&order[..], [2, 0, 1]);
        assert!(std::ptr::eq(shown.bytes(), shown.bytes()));
    }

    /// Rows reordered from a remote tensor are remote, and pending until it is fetched.
    #[test]
    fn reordered_remote_rows_are_remote() {
        struct Zeros;
        impl crate::tensor::Ranged for Zeros {
            fn read(
                &self,
                range: std::ops::Range<u64>,
            ) -> Result<Vec<u8>, crate::tensor::FetchError> {
                Ok(vec![0; usize::try_from(range.end - range.start).unwrap()])
            }
        }
        let bytes = crate::tensor::Bytes::remote(std::sync::Arc::new(Zeros), 0..24);
        let stored = Tensor::new(vec![3, 2], crate::tensor::DType::F32, bytes);
        let shown = Tensor::reordered(Rows::new(stored, vec![2, 0, 1]).unwrap());
        assert!(shown.is_remote() && shown.is_pending());
        shown.fetch().unwrap();
        assert!(shown.is_remote() && !shown.is_pending());
        assert!(!Tensor::from_f32(vec![1], &[1.0]).is_remote());
    }

    #[test]
    fn an_order_that_is_not_a_permutation_is_refused() {
        let stored = Tensor::from_f32(vec![2, 1], &[0.0, 1.0]);
        for order in [vec![0], vec![0, 0], vec![0, 2], vec![1, 0, 2]] {
            assert!(Rows::new(stored.clone(), order).is_none());
        }
        let scalar = Tensor::from_f32(vec![], &[1.0]);
        assert!(Rows::new(scalar, vec![]).is_none());
    }
}
