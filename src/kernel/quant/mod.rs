//! Products with a weight kept in ggml's block-quantized layout (`y = x·wᵀ + b`, `w` [out, in]):
//! the weight is never dequantized whole.
//!
//! - One activation row (a generated token): each weight row is read once, block by block, each
//!   block decoded into registers and dotted with the activation, never written out.
//! - More rows (a prompt, a batch): the activations are packed once as the F32 micro-kernel's B,
//!   and a tile of weight rows at a time is decoded into L1 and multiplied by all of them as its A
//!   (batch.rs), so each block is decoded once per call rather than once per activation row.
//! - More rows on a CPU with AMX, for Q4_0, Q4_1, Q8_0 and Q4_K: the same product on the tile
//!   unit (amx/), the weight's integers against the activations split into exact bf16 parts, each
//!   run of 32 values scaled in f32 (see amx/mod.rs for why that is exact).
//!
//! The types with a decoder here (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K, see blocks.rs) decode in code
//! compiled for the CPU's SIMD (rows.rs); the others (Q5_0, Q5_1, Q2_K, Q3_K, Q5_K) through the
//! caller's decoder (ggml's reference, as the tensor layer decodes it). Either way the values are
//! exactly the dequantized ones, so the result equals dequantize-then-multiply in f32 up to the
//! order of the sums. The output columns are shared across the kernel's threads.

#[cfg(target_arch = "x86_64")]
mod amx;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod batch;
mod blocks;
mod rows;

use std::cell::RefCell;

use ndarray::{ArrayView2, ArrayViewMut2, Axis, s};

use super::{Backend, threads};
use batch::Activations;
use rows::Job;

/// The block types decoded by the kernel's own SIMD loops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(non_camel_case_types, reason = "the names are ggml's own")]
pub enum Fused {
    /// 32 values: f16 scale, 4-bit values offset by 8 (18 bytes).
    Q4_0,
    /// 32 values: f16 scale and minimum, 4-bit values (20 bytes).
    Q4_1,
    /// 32 values: f16 scale, signed bytes (34 bytes).
    Q8_0,
    /// 256 values: 8 groups of 32 with 6-bit scales and minimums, 4-bit values (144 bytes).
    Q4_K,
    /// 256 values: 16 groups of 16 with 8-bit scales, 6-bit values (210 bytes).
    Q6_K,
}

/// Dequantizes whole blocks (`bytes`, a run of them) appending their values to the buffer.
pub type Decode<'a> = &'a (dyn Fn(&[u8], &mut Vec<f32>) + Sync);

/// A block-quantized weight [out, in], borrowed.
#[derive(Clone, Copy)]
pub struct QuantMatrix<'a> {
    /// The rows, one after the other, each `in / block_values` blocks.
    pub bytes: &'a [u8],
    /// Rows (the layer's outputs).
    pub out_features: usize,
    /// Values per row (the layer's inputs).
    pub in_features: usize,
    /// Values per block (32, or 256 for the K types); `in_features` is a multiple of it.
    pub block_values: usize,
    /// The kernel's own decoder for this type, when it has one.
    pub fused: Option<Fused>,
    /// The decoder of the other types (and the reference the kernel's are tested against).
    pub decode: Decode<'a>,
}

/// Multiply-adds' worth a value costs to decode: what the split across threads counts.
const DECODE_COST: usize = 2;
/// Output columns a thread's part is cut in multiples of.
const UNIT: usize = 16;
/// Decoded values a panel holds at most (1 MiB of f32), when one activation row is dotted with
/// the rows of a type without a SIMD decoder here.
const PANEL_VALUES: usize = 1 << 18;

thread_local! {
    /// A panel of decoded rows, kept per thread so that a forward pass allocates it once.
    static PANEL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `y = x·wᵀ (+ bias)` for `x` [rows, in], `y` [rows, out] (C order).
///
/// # Panics
/// When the slices do not have the sizes `w` and `rows` imply.
pub fn linear(x: &[f32], rows: usize, w: &QuantMatrix<'_>, y: &mut [f32], bias: Option<&[f32]>) {
    linear_stacked(x, rows, std::slice::from_ref(w), y, bias);
}

/// [`linear`] with the weights `parts` stacked, their rows one after the other (a layer's query,
/// key and value, or gate and up): one product, the output columns shared across threads as one,
/// without the rows being copied together.
///
/// # Panics
/// When the parts differ in their inputs, block type or decoder kind, or the slices do not have
/// the sizes the parts and `rows` imply.
pub fn linear_stacked(
    x: &[f32],
    rows: usize,
    parts: &[QuantMatrix<'_>],
    y: &mut [f32],
    bias: Option<&[f32]>,
) {
    let Some(w) = parts.first() else {
        assert!(y.is_empty(), "no outputs without weights");
        return;
    };
    let k = w.in_features;
    let n: usize = parts.iter().map(|p| p.out_features).sum();
    for p in parts {
        assert!(
            p.in_features == k && p.block_values == w.block_values && p.fused == w.fused,
            "stacked parts are alike"
        );
        assert!(
            p.out_features == 0 || p.bytes.len().is_multiple_of(p.out_features),
            "whole rows"
        );
    }
    assert_eq!(Some(x.len()), rows.checked_mul(k), "x is [rows, in]");
    assert_eq!(Some(y.len()), rows.checked_mul(n), "y is [rows, out]");
    assert!(
        w.block_values > 0 && k.is_multiple_of(w.block_values),
        "whole blocks"
    );
    if let Some(bias) = bias {
        assert_eq!(bias.len(), n, "one bias per output");
    }
    if rows == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for row in y.chunks_exact_mut(n) {
            row.iter_mut()
                .enumerate()
                .for_each(|(o, v)| *v = bias.map_or(0.0, |b| b[o]));
        }
        return;
    }
    let c = ArrayViewMut2::from_shape((rows, n), y).expect("rows × out values");
    let a = ArrayView2::from_shape((rows, k), x).expect("rows × in values");
    let uk = Backend::best().micro_kernel();
    // Packed once here, not per thread: every thread multiplies its weight rows by all of them.
    let acts = (rows > 1).then(|| Packed::new(a, w, &uk));
    let threads = threads::parts(n * k * (rows + DECODE_COST), n.div_ceil(UNIT));
    threads::run_split(c, Axis(1), threads, UNIT, &|start, mut piece| {
        let end = start + piece.ncols();
        let mut first = 0;
        for w in parts {
            // This part's outputs are columns first .. first + out_features of y.
            let (lo, hi) = (start.max(first), end.min(first + w.out_features));
            if lo < hi {
                let row_bytes = w.bytes.len() / w.out_features;
                let bytes = &w.bytes[(lo - first) * row_bytes..(hi - first) * row_bytes];
                let bias = bias.map(|b| &b[lo..hi]);
                let mut c = piece.slice_mut(s![.., lo - start..hi - start]);
                if rows == 1 {
                    let out = c.as_slice_mut().expect("one contiguous row");
                    dot_rows(w, bytes, row_bytes, x, out);
                    if let Some(bias) = bias {
                        out.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
                    }
                } else {
                    match acts.as_ref().expect("packed for more than one row") {
                        Packed::Panels(acts) => {
                            batch::product(&uk, w, bytes, row_bytes, acts, c, bias);
                        }
                        #[cfg(target_arch = "x86_64")]
                        Packed::Tiles(acts) => {
                            let fused = w.fused.expect("the tile path takes fused types");
                            amx::product(fused, bytes, row_bytes, acts, c, bias);
                        }
                    }
                }
            }
            first += w.out_features;
        }
    });
}

/// Activation rows laid out once per product for the path that multiplies them.
enum Packed {
    /// As the f32 micro-kernel's B panels (batch.rs).
    Panels(Activations),
    /// As the tile unit's bf16 parts (amx/), for weights of a type it takes.
    #[cfg(target_arch = "x86_64")]
    Tiles(amx::Activations),
}

impl Packed {
    fn new(x: ArrayView2<f32>, w: &QuantMatrix<'_>, uk: &super::driver::MicroKernel) -> Self {
        #[cfg(target_arch = "x86_64")]
        if w.fused.is_some_and(amx::takes) {
            return Self::Tiles(amx::Activations::pack(x));
        }
        Self::Panels(Activations::pack(x, uk, batch::depth(w.block_values)))
    }
}

/// Weight rows per panel for inputs of `k` values: a multiple of [`UNIT`].
fn panel_rows(k: usize) -> usize {
    (PANEL_VALUES / k.max(1)).max(UNIT) / UNIT * UNIT
}

/// Decodes the whole rows in `bytes` through the caller's decoder into `out`, which ends up
/// holding just their values.
fn decode_rows(w: &QuantMatrix<'_>, bytes: &[u8], row_bytes: usize, out: &mut Vec<f32>) {
    out.clear();
    (w.decode)(bytes, out);
    assert_eq!(
        out.len(),
        bytes.len() / row_bytes * w.in_features,
        "a decoder gives every value of whole rows"
    );
}

/// `out[o] = row o · x` for the weight rows in `bytes`.
fn dot_rows(w: &QuantMatrix<'_>, bytes: &[u8], row_bytes: usize, x: &[f32], out: &mut [f32]) {
    if let Some(fused) = w.fused {
        rows::run(
            fused,
            Job::Dot {
                bytes,
                row_bytes,
                x,
                out,
            },
        );
        return;
    }
    let count = panel_rows(w.in_features);
    PANEL.with_borrow_mut(|panel| {
        for (bytes, out) in bytes.chunks(count * row_bytes).zip(out.chunks_mut(count)) {
            decode_rows(w, bytes, row_bytes, panel);
            rows::dot_floats(panel, x, out);
        }
    });
}
