//! The token ids a forward runs on: a batch of sequences right-padded to one length.

use super::error::FamilyError;

/// Token ids of a batch, right-padded to one length, with each sequence's real length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// `batch × len` ids in C order; padding positions hold `pad`.
    pub ids: Vec<u32>,
    /// The real length of each sequence.
    pub lens: Vec<usize>,
    /// The padded length.
    pub len: usize,
}

impl Batch {
    /// Pads `sequences` on the right with `pad`; refuses an empty batch or an empty sequence.
    pub fn new(sequences: &[Vec<u32>], pad: u32) -> Result<Self, FamilyError> {
        if sequences.is_empty() || sequences.iter().any(Vec::is_empty) {
            return Err(FamilyError::Input(
                "every sequence needs at least one token".into(),
            ));
        }
        let len = sequences.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(len * sequences.len());
        for s in sequences {
            ids.extend_from_slice(s);
            ids.extend(std::iter::repeat_n(pad, len - s.len()));
        }
        Ok(Self {
            ids,
            lens: sequences.iter().map(Vec::len).collect(),
            len,
        })
    }

    /// The number of sequences.
    #[must_use]
    pub fn size(&self) -> usize {
        self.lens.len()
    }
}
