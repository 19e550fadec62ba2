//! A Linear weight kept in its block-quantized ggml type: which types the kernel multiplies block
//! by block, and the weight as the file's bytes (one matrix, or a stack of them read in place,
//! rows shown in another order included), multiplied through `kernel::quant`.

use std::sync::Arc;

use crate::kernel::quant::{self, Fused, QuantMatrix};
use crate::tensor::ggml::Quant;
use crate::tensor::{DType, Tensor};

/// The ggml type of `dtype` when the kernel multiplies it block by block: a kept type whose rows
/// of `k` values hold whole blocks, as ggml requires (a hostile file's rows that split a block
/// would make the row-by-row kernel read the wrong values; such a weight is dequantized whole, at
/// load, as the file's block order says).
pub(super) fn kernel_quant(dtype: DType, k: usize) -> Option<Quant> {
    match dtype {
        DType::Ggml(
            q @ (Quant::Q4_0
            | Quant::Q4_1
            | Quant::Q5_0
            | Quant::Q5_1
            | Quant::Q8_0
            | Quant::Q2_K
            | Quant::Q3_K
            | Quant::Q4_K
            | Quant::Q5_K
            | Quant::Q6_K),
        ) if k.is_multiple_of(q.block_size()) => Some(q),
        _ => None,
    }
}

/// The kernel's fused dot for `q`, when it has one (the other types go through their decoder).
fn fused(q: Quant) -> Option<Fused> {
    Some(match q {
        Quant::Q4_0 => Fused::Q4_0,
        Quant::Q4_1 => Fused::Q4_1,
        Quant::Q8_0 => Fused::Q8_0,
        Quant::Q4_K => Fused::Q4_K,
        Quant::Q6_K => Fused::Q6_K,
        _ => return None,
    })
}

/// A weight [out, in] kept in its block-quantized type: the file's bytes (mapped), read block by
/// block at each product. A stack of weights (query, key and value; gate and up) keeps each part's
/// bytes where they are, so a model holds no second copy of its rows; so does a part whose rows
/// are shown in another order (llama.cpp's query and key), whose outputs are put in order instead.
pub struct QuantWeight {
    parts: Vec<Part>,
    quant: Quant,
    pub(super) out_features: usize,
    pub(super) in_features: usize,
}

impl std::fmt::Debug for QuantWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "QuantWeight({} {}x{} in {} parts)",
            self.quant,
            self.out_features,
            self.in_features,
            self.parts.len()
        )
    }
}

/// One matrix of a stacked quantized weight, as stored.
pub(super) struct Part {
    stored: Tensor,
    /// For each output row, the stored row it is, when the rows are shown in another order.
    order: Option<Arc<[u32]>>,
}

impl Part {
    /// The stored matrix of `tensor` and the order its rows are shown in.
    pub(super) fn of(tensor: &Tensor) -> Self {
        match tensor.reordered_rows() {
            Some((stored, order)) => Part {
                stored: stored.clone(),
                order: Some(Arc::clone(order)),
            },
            None => Part {
                stored: tensor.clone(),
                order: None,
            },
        }
    }

    fn rows(&self) -> usize {
        self.stored.shape()[0]
    }
}

impl QuantWeight {
    /// `parts`, each [rows, in_features] of type `quant`, stacked.
    pub(super) fn new(parts: Vec<Part>, quant: Quant, in_features: usize) -> Self {
        Self {
            out_features: parts.iter().map(Part::rows).sum(),
            parts,
            quant,
            in_features,
        }
    }

    /// `bias` (one value per output, as shown) put in the stored rows' order, as `linear` takes
    /// it: done once, when the layer is built, since a generation multiplies in every step.
    pub(super) fn stored_bias(&self, bias: Vec<f32>) -> Vec<f32> {
        if self.parts.iter().all(|p| p.order.is_none()) {
            return bias;
        }
        let mut stored = bias.clone();
        self.move_values(&bias, &mut stored, |shown, stored| (stored, shown));
        stored
    }

    /// `y = x·wᵀ + bias` for `x` [rows, in], `y` [rows, out], `stored_bias` from `stored_bias`.
    pub(super) fn linear(
        &self,
        x: &[f32],
        rows: usize,
        y: &mut [f32],
        stored_bias: Option<&[f32]>,
    ) {
        let quant = self.quant;
        let decode = |bytes: &[u8], out: &mut Vec<f32>| {
            quant.dequantize_range(bytes, 0, usize::MAX, out);
        };
        let matrices: Vec<QuantMatrix<'_>> = (self.parts.iter())
            .map(|part| QuantMatrix {
                bytes: part.stored.bytes(),
                out_features: part.rows(),
                in_features: self.in_features,
                block_values: quant.block_size(),
                fused: fused(quant),
                decode: &decode,
            })
            .collect();
        // The product of the stored rows, each with the bias of the row it is shown as: the very
        // sums the rows copied in order would give, which then only move to their places.
        quant::linear_stacked(x, rows, &matrices, y, stored_bias);
        if self.parts.iter().all(|p| p.order.is_none()) {
            return;
        }
        // One buffer for every row: this runs in each step of a generation.
        let mut stored = vec![0.0; self.out_features];
        for row in y.chunks_exact_mut(self.out_features) {
            stored.copy_from_slice(row);
            self.move_values(&stored, row, |shown, stored| (shown, stored));
        }
    }

    /// Each reordered part's values of `from` (one per output) written to `to` (which holds the
    /// others already): `place` gives, for a row shown and the stored row it is, the place
    /// written and the place read.
    fn move_values(
        &self,
        from: &[f32],
        to: &mut [f32],
        place: impl Fn(usize, usize) -> (usize, usize),
    ) {
        let mut first = 0;
        for part in &self.parts {
            if let Some(order) = &part.order {
                for (shown, &stored) in order.iter().enumerate() {
                    let (write, read) = place(shown, stored as usize);
                    to[first + write] = from[first + read];
                }
            }
            first += part.rows();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rows_of_whole_blocks_stay_quantized() {
        assert_eq!(
            kernel_quant(DType::Ggml(Quant::Q4_0), 64),
            Some(Quant::Q4_0)
        );
        assert_eq!(kernel_quant(DType::Ggml(Quant::Q4_0), 48), None);
        assert_eq!(kernel_quant(DType::Ggml(Quant::Q4_K), 128), None);
        assert_eq!(
            kernel_quant(DType::Ggml(Quant::Q6_K), 512),
            Some(Quant::Q6_K)
        );
        assert_eq!(kernel_quant(DType::F32, 64), None);
    }

    /// A Q8_0 matrix of `rows` rows of 64 values, each row's values its own.
    fn q8_0(rows: usize) -> Tensor {
        let scale = half::f16::from_f32(0.25).to_le_bytes();
        let bytes: Vec<u8> = (0..rows * 2)
            .flat_map(|block| {
                let values = (0..32).map(move |i| ((block * 7 + i * 3) % 200) as u8);
                scale.into_iter().chain(values)
            })
            .collect();
        let bytes = crate::tensor::Bytes::Owned(bytes.into());
        Tensor::new(vec![rows, 64], DType::Ggml(Quant::Q8_0), bytes)
    }

    /// A stack whose query and key rows are shown in another order (llama.cpp's, put back) gives,
    /// bit for bit, what the stack of those rows copied in order gives: one activation row and
    /// several, with a bias and without.
    #[test]
    fn reordered_rows_multiply_in_place_as_if_copied() {
        use crate::tensor::reordered::Rows;
        let (q, k, v) = (q8_0(8), q8_0(4), q8_0(4));
        let q_order = vec![0, 2, 4, 6, 1, 3, 5, 7];
        let k_order = vec![3, 1, 0, 2];
        let shown = [
            Tensor::reordered(Rows::new(q, q_order).unwrap()),
            Tensor::reordered(Rows::new(k, k_order).unwrap()),
            v,
        ];
        let copied: Vec<Tensor> = shown
            .iter()
            .map(|t| {
                let bytes = crate::tensor::Bytes::Owned(t.bytes().into());
                Tensor::new(t.shape().to_vec(), t.dtype(), bytes)
            })
            .collect();
        let in_place = QuantWeight::new(shown.iter().map(Part::of).collect(), Quant::Q8_0, 64);
        assert!(in_place.parts.iter().filter(|p| p.order.is_some()).count() == 2);
        let reference = QuantWeight::new(copied.iter().map(Part::of).collect(), Quant::Q8_0, 64);
        let bias: Vec<f32> = (0..16).map(|o| o as f32 * 0.375 - 2.0).collect();
        // Only the reordered parts' bias moves: the query's and key's, not the value's.
        let moved = in_place.stored_bias(bias.clone());
        assert_eq!(moved[..4], [bias[0], bias[4], bias[1], bias[5]]);
        assert_eq!(moved[8..12], [bias[10], bias[9], bias[11], bias[8]]);
        assert_eq!(moved[12..], bias[12..]);
        assert_eq!(reference.stored_bias(bias.clone()), bias);
        for rows in [1, 5] {
            let x: Vec<f32> = (0..rows * 64)
                .map(|i| ((i % 11) as f32 - 5.0) / 3.0)
                .collect();
            for bias in [None, Some(&bias)] {
                let got_bias = bias.map(|b| in_place.stored_bias(b.clone()));
                let want_bias = bias.map(|b| reference.stored_bias(b.clone()));
                let (mut got, mut want) = (vec![0.0; rows * 16], vec![0.0; rows * 16]);
                in_place.linear(&x, rows, &mut got, got_bias.as_deref());
                reference.linear(&x, rows, &mut want, want_bias.as_deref());
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "rows {rows}, bias {}",
                    bias.is_some()
                );
            }
        }
    }
}
