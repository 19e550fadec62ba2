//! Products of several activation rows with a quantized weight on the tile unit (Intel AMX): a
//! prompt's `yᵀ = w·xᵀ` as bf16 tile multiplies that lose nothing, where the AVX-512 path
//! (batch.rs) decodes the weight to f32 and spends one FMA per value and activation row.
//!
//! How the products stay exact: the weight's integers are exact in bf16 (integers.rs), and each
//! activation `x` is split into three bf16 parts whose sum is exactly `x` (`hi` its top 8 bits of
//! significand, `mid` the next 8, `lo` the last 8). A tile multiply forms each product of two bf16
//! exactly and adds it into f32, so a run's sum `Σ q·x` over its 32 values is the exact products
//! summed in f32. Each run's sum is then scaled (`scale·Σ q·x + offset·Σ x`) and added up in f32.
//! The result is dequantize-then-multiply up to the order and rounding of the sums, as the f32
//! path's; it differs from it only in those roundings.
//!
//! The shape of one step: a tile of 32 weight rows (two A tiles of 16 rows × 32 values) against
//! two groups of 16 activation rows (B tiles, one per part), into four C tiles of 16 × 16 sums;
//! three parts make twelve tile multiplies per run of 32 values, after which the C tiles are
//! stored, scaled into the output rows, and zeroed for the next run.

mod activations;
mod ahead;
mod integers;
mod steps;
mod tiles;
mod transpose;

use std::arch::x86_64::{
    __m512i, __mmask16, _mm512_castsi512_ps, _mm512_fmadd_ps, _mm512_loadu_si512,
    _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
    _mm512_setzero_si512,
};
use std::cell::RefCell;
use std::ops::Range;

use ndarray::{ArrayViewMut2, s};

use super::Fused;
pub(super) use activations::Activations;
use ahead::Ahead;
use integers::{RUN, RowOut};
use steps::{Sums, Weights, multiply};
use tiles::Session;
use transpose::transpose16;

/// Activation rows per B tile (its columns) and weight rows per A tile.
const GROUP: usize = tiles::ROWS;
/// Weight rows multiplied at once: two A tiles.
const WEIGHT_ROWS: usize = 2 * GROUP;
/// The bf16 parts an activation is split into.
const PARTS: usize = 3;
/// Weight rows whose outputs are gathered before they are written back into `y`.
const CHUNK_ROWS: usize = 4 * WEIGHT_ROWS;
/// Runs decoded at a time for a tile of weight rows (one Q4_K block): their integers, 16 KiB,
/// stay in L1 until multiplied. Whole rows did not fit, and their A tiles waited on L2.
const SEGMENT_RUNS: usize = 8;

/// `c[t, o] = out[o·ld + t]·unscale[t] + bias[o]`: a chunk's transposed outputs put back into
/// `y`'s rows, sixteen by sixteen.
#[target_feature(enable = "avx512f")]
fn write_back(
    out: &[f32],
    ld: usize,
    unscale: &[f32],
    mut c: ArrayViewMut2<f32>,
    bias: Option<&[f32]>,
) {
    let (rows, width) = c.dim();
    let stride = c.strides()[0];
    assert!(
        rows <= 1 || stride >= width.cast_signed(),
        "C's rows do not overlap"
    );
    assert!(c.strides()[1] == 1, "C's rows are contiguous");
    let y = c.as_mut_ptr();
    for o0 in (0..width).step_by(GROUP) {
        let h = GROUP.min(width - o0);
        let mask: __mmask16 = if h == GROUP { !0 } else { (1 << h) - 1 };
        // SAFETY: a masked load of the `h` biases from o0.
        let add = bias.map_or(_mm512_setzero_ps(), |b| unsafe {
            _mm512_maskz_loadu_ps(mask, b[o0..o0 + h].as_ptr())
        });
        for t0 in (0..rows).step_by(GROUP) {
            let block: [__m512i; GROUP] = std::array::from_fn(|i| {
                if i < h {
                    let at = (o0 + i) * ld + t0;
                    // SAFETY: a load of 16 f32 of output row o0 + i, which holds `ld` >= t0 + 16
                    // (ld is a whole number of groups).
                    unsafe { _mm512_loadu_si512(out[at..at + GROUP].as_ptr().cast()) }
                } else {
                    _mm512_setzero_si512()
                }
            });
            for (t, column) in (t0..rows.min(t0 + GROUP)).zip(transpose16(&block)) {
                // A multiply by 1 (every row but tiny ones) leaves the sum as the add's.
                let v =
                    _mm512_fmadd_ps(_mm512_castsi512_ps(column), _mm512_set1_ps(unscale[t]), add);
                // SAFETY: a masked store of the `h` values o0 .. o0 + h of row t < rows of C,
                // whose rows are contiguous and `stride` apart (asserted), `width` >= o0 + h
                // values long. (Through a pointer: a row view per store had taken 6% of a
                // prompt.)
                unsafe {
                    let row = y.offset(t.cast_signed() * stride).add(o0);
                    _mm512_mask_storeu_ps(row, mask, v);
                }
            }
        }
    }
}

/// Per-thread buffers, kept so that a forward pass allocates them once.
struct Scratch {
    /// The tile's integers, run after run: each run's [`WEIGHT_ROWS`] rows of [`RUN`], so that
    /// an A tile is 1 KiB in one piece.
    integers: Vec<u16>,
    /// Each run's scale and offset: [run][weight row of the tile].
    scales: Vec<f32>,
    offsets: Vec<f32>,
    /// A chunk of transposed outputs: a row per weight row, `groups·16` values each.
    out: Vec<f32>,
    /// Two steps' C tiles: one being scaled while the next is stored.
    sums: [Sums; 2],
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch {
            integers: Vec::new(),
            scales: Vec::new(),
            offsets: Vec::new(),
            out: Vec::new(),
            sums: [const { Sums([0.0; 4 * GROUP * GROUP]) }; 2],
        })
    };
}

/// Whether the tile path can take this product: the CPU's tile unit is granted and the type's
/// integers are exact in bf16.
pub(super) fn takes(fused: Fused) -> bool {
    integers::supported(fused) && tiles::available()
}

/// `c = x·(the rows in bytes)ᵀ + bias`, with `x` split in `acts`; `c` is [x rows, weight rows].
///
/// # Panics
/// Unless [`takes`] is true for `fused`.
pub(super) fn product(
    fused: Fused,
    bytes: &[u8],
    row_bytes: usize,
    acts: &Activations,
    mut c: ArrayViewMut2<f32>,
    bias: Option<&[f32]>,
) {
    assert!(takes(fused), "the tile path takes {fused:?} here");
    let width = bytes.len() / row_bytes;
    let ld = acts.groups * GROUP;
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.integers.resize(SEGMENT_RUNS * WEIGHT_ROWS * RUN, 0);
        scratch.scales.resize(SEGMENT_RUNS * WEIGHT_ROWS, 0.0);
        scratch.offsets.resize(SEGMENT_RUNS * WEIGHT_ROWS, 0.0);
        // Every supported type's blocks are a whole number of runs with a whole number of bytes
        // each (Q4_K: 144 bytes, 8 runs).
        let run_bytes = row_bytes / acts.runs;
        scratch.out.resize(CHUNK_ROWS * ld, 0.0);
        // SAFETY: `takes` found the tile unit granted.
        let session = unsafe { Session::start() };
        for first in (0..width).step_by(CHUNK_ROWS) {
            let rows = CHUNK_ROWS.min(width - first);
            for start in (0..rows).step_by(WEIGHT_ROWS) {
                let count = WEIGHT_ROWS.min(rows - start);
                let at = (first + start) * row_bytes;
                let tile_bytes = &bytes[at..][..count * row_bytes];
                let next = &bytes[at + tile_bytes.len()..];
                let mut ahead = Ahead::new(
                    &next[..next.len().min(WEIGHT_ROWS * row_bytes)],
                    acts.runs * acts.groups.div_ceil(2) * PARTS,
                );
                scratch.out[start * ld..(start + WEIGHT_ROWS) * ld].fill(0.0);
                for seg in (0..acts.runs).step_by(SEGMENT_RUNS) {
                    let runs = seg..acts.runs.min(seg + SEGMENT_RUNS);
                    let segment = seg * run_bytes..runs.end * run_bytes;
                    decode(fused, tile_bytes, row_bytes, segment, scratch);
                    // SAFETY: as for the session; the segment's integers, scales and offsets are
                    // those `decode` wrote (rows past `count` hold an earlier tile's, and their
                    // outputs are never written back).
                    unsafe {
                        multiply(
                            &session,
                            acts,
                            runs,
                            &scratch.integers,
                            Weights {
                                scales: &scratch.scales,
                                offsets: integers::has_offset(fused)
                                    .then_some(&scratch.offsets[..]),
                            },
                            &mut scratch.out[start * ld..(start + WEIGHT_ROWS) * ld],
                            &mut scratch.sums,
                            &mut ahead,
                        );
                    }
                }
            }
            // SAFETY: as for the session.
            unsafe {
                write_back(
                    &scratch.out[..rows * ld],
                    ld,
                    &acts.unscale,
                    c.slice_mut(s![.., first..first + rows]),
                    bias.map(|b| &b[first..first + rows]),
                );
            }
        }
    });
}

/// Decodes the `segment` of the weight rows in `bytes` (at most [`WEIGHT_ROWS`]) into the
/// scratch's integers, scales and offsets.
fn decode(
    fused: Fused,
    bytes: &[u8],
    row_bytes: usize,
    segment: Range<usize>,
    scratch: &mut Scratch,
) {
    for (w, row) in bytes.chunks_exact(row_bytes).enumerate() {
        let out = RowOut {
            q: &mut scratch.integers[w * RUN..],
            run_stride: WEIGHT_ROWS * RUN,
            scales: &mut scratch.scales[w..],
            offsets: &mut scratch.offsets[w..],
            scale_stride: WEIGHT_ROWS,
        };
        // SAFETY: the tile path runs only where `tiles::available` found AVX-512F/BW and F16C;
        // the type is supported (`product` asserted it).
        unsafe { integers::decode_row(fused, &row[segment.clone()], out) };
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayView2, ArrayViewMut2};

    use super::super::rows::{self, Job};
    use super::*;

    /// A xorshift stream.
    struct Stream(u64);

    impl Stream {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// Uniform in [lo, hi).
        fn float(&mut self, lo: f32, hi: f32) -> f32 {
            lo + (hi - lo) * (self.next() % 1_000_000) as f32 / 1e6
        }
    }

    /// `n` rows of `k` values of `fused`: random integers, scales in [1/128, 1/16), minimums of
    /// magnitude below 0.1 (Q4_1) or 0.07 (Q4_K's 6-bit minimums times a dmin below 1/1024).
    fn weight(fused: Fused, n: usize, k: usize, s: &mut Stream) -> Vec<u8> {
        let (bytes, values) = super::super::blocks::shape(fused);
        let mut w: Vec<u8> = (0..n * k / values * bytes)
            .map(|_| s.next() as u8)
            .collect();
        let f16 = |v: f32| half::f16::from_f32(v).to_le_bytes();
        for block in w.chunks_exact_mut(bytes) {
            block[..2].copy_from_slice(&f16(s.float(1.0 / 128.0, 1.0 / 16.0)));
            match fused {
                Fused::Q4_1 => block[2..4].copy_from_slice(&f16(s.float(-0.1, 0.1))),
                Fused::Q4_K => block[2..4].copy_from_slice(&f16(s.float(0.0, 1.0 / 1024.0))),
                _ => {}
            }
        }
        w
    }

    /// A product to check: `n` weight rows of `fused` in `w`, `rows` activation rows in `x`.
    struct Case<'a> {
        fused: Fused,
        w: &'a [u8],
        n: usize,
        x: &'a [f32],
        rows: usize,
        bias: Option<&'a [f32]>,
    }

    impl Case<'_> {
        /// `y = x·wᵀ + bias` through the tile path.
        fn product(&self) -> Vec<f32> {
            let (rows, n) = (self.rows, self.n);
            let x = ArrayView2::from_shape((rows, self.x.len() / rows), self.x).unwrap();
            let mut y = vec![f32::NAN; rows * n];
            let c = ArrayViewMut2::from_shape((rows, n), &mut y[..]).unwrap();
            let row_bytes = self.w.len() / n;
            product(
                self.fused,
                self.w,
                row_bytes,
                &Activations::pack(x),
                c,
                self.bias,
            );
            y
        }

        /// Each output against dequantize-then-multiply in f64, within the rounding the factored
        /// sums allow: per run, 96 exact products summed in f32, a scale, an offset times the
        /// run's f32 sum; then one addition per run (`(k/32 + 140)·2⁻²⁴` of the magnitudes).
        fn assert_close(&self, y: &[f32]) {
            let Case {
                fused,
                w,
                n,
                x,
                rows,
                bias,
            } = *self;
            let k = x.len() / rows;
            let mut values = vec![0.0; n * k];
            rows::run(
                fused,
                Job::Decode {
                    bytes: w,
                    out: &mut values,
                },
            );
            for t in 0..rows {
                for o in 0..n {
                    let (x, w) = (&x[t * k..(t + 1) * k], &values[o * k..(o + 1) * k]);
                    let want: f64 = x
                        .iter()
                        .zip(w)
                        .map(|(&x, &w)| f64::from(x) * f64::from(w))
                        .sum::<f64>()
                        + bias.map_or(0.0, |b| f64::from(b[o]));
                    let magnitude: f64 = x
                        .iter()
                        .zip(w)
                        .map(|(&x, &w)| f64::from(x).abs() * (f64::from(w).abs() + 0.2))
                        .sum();
                    let bound = (k as f64 / 32.0 + 140.0) * f64::from(f32::EPSILON) / 2.0
                        * magnitude
                        + bias.map_or(0.0, |b| f64::from(b[o]).abs()) * f64::from(f32::EPSILON);
                    let got = f64::from(y[t * n + o]);
                    assert!(
                        (got - want).abs() <= bound,
                        "{fused:?}: y[{t}, {o}] = {got}, want {want} (within {bound})"
                    );
                }
            }
        }
    }

    /// Every type, across partial tiles of weight rows (50 = 32 + 18), chunks (130 > 128 rows),
    /// one group of activation rows and a pair with a partial one (2, 17, 33 rows), segments
    /// (576 values: runs 8 + 8 + 2), with and without a bias.
    #[test]
    fn products_match_dequantize_then_multiply() {
        if !tiles::available_to_test() {
            return;
        }
        let mut s = Stream(0x9e37_79b9_7f4a_7c15);
        for (fused, k) in [
            (Fused::Q4_0, 576),
            (Fused::Q4_1, 576),
            (Fused::Q8_0, 512),
            (Fused::Q4_K, 768),
        ] {
            for (rows, n) in [(2, 50), (17, 130), (33, 16)] {
                let w = weight(fused, n, k, &mut s);
                let x: Vec<f32> = (0..rows * k).map(|_| s.float(-2.0, 2.0)).collect();
                let bias: Vec<f32> = (0..n).map(|_| s.float(-1.0, 1.0)).collect();
                let bias = (rows % 2 == 1).then_some(&bias[..]);
                let case = Case {
                    fused,
                    w: &w,
                    n,
                    x: &x,
                    rows,
                    bias,
                };
                case.assert_close(&case.product());
            }
        }
    }

    /// A NaN makes its row's outputs NaN, an infinity its row's non-finite, and neither reaches
    /// the other rows; a row of values near f32's smallest keeps them (the tile unit would read
    /// their bf16 parts as zero, were the row not scaled up first).
    #[test]
    fn odd_values_stay_in_their_row() {
        if !tiles::available_to_test() {
            return;
        }
        let mut s = Stream(7);
        let (fused, n, k, rows) = (Fused::Q4_1, 40, 64, 4);
        let w = weight(fused, n, k, &mut s);
        let mut x: Vec<f32> = (0..rows * k).map(|_| s.float(-1.0, 1.0)).collect();
        x[5] = f32::NAN;
        x[k + 9] = f32::INFINITY;
        for v in &mut x[2 * k..3 * k] {
            *v *= 1e-38;
        }
        let y = Case {
            fused,
            w: &w,
            n,
            x: &x,
            rows,
            bias: None,
        }
        .product();
        assert!(y[..n].iter().all(|v| v.is_nan()), "row 0: {:?}", &y[..n]);
        assert!(
            y[n..2 * n].iter().all(|v| !v.is_finite()),
            "row 1: {:?}",
            &y[n..2 * n]
        );
        let (kept_x, kept_y): (Vec<f32>, Vec<f32>) = (x[2 * k..].to_vec(), y[2 * n..].to_vec());
        assert!(
            kept_y[..n].iter().any(|&v| v != 0.0),
            "the tiny row's outputs are not all zero"
        );
        let kept = Case {
            fused,
            w: &w,
            n,
            x: &kept_x,
            rows: 2,
            bias: None,
        };
        kept.assert_close(&kept_y);
    }
}
