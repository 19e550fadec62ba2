//! Products of several activation rows (a prompt, a batch) with a quantized weight, the kernel's
//! roles turned around: `yᵀ = w·xᵀ`, the weight the micro-kernel's A and the activations its B.
//!
//! Why this way round: A is read in place, row-major, which is how a weight row decodes; B has to
//! be packed into NR-wide panels, and the activations are packed once per product where the
//! weight's rows would have been packed (transposed) once per panel. So a tile of MR weight rows
//! is decoded, row after row as they lie in the file, into a buffer that stays in L1 or L2, and
//! multiplied at once by every activation panel: each value is decoded once per product and never
//! transposed. On a 32-token prompt through SmolLM2 the transpose had taken a fifth of the time.
//!
//! The tiles of C come out transposed ([out rows, activation rows]); each chunk of them is turned
//! back into `y`'s rows, with the bias, once its sums are whole.

use std::cell::RefCell;

use ndarray::{ArrayView2, ArrayViewMut2, s};

use super::super::driver::MicroKernel;
use super::super::pack::{AlignedBuf, pack_a, pack_b, packed_a_len, packed_b_len};
use super::super::tile::Tile;
use super::QuantMatrix;
use super::rows::{self, Job};

/// Depth of the shared dimension a tile is decoded for, at most (in values): the KC×NR panel of
/// activations (32 KiB at NR = 32) and the MR×KC decoded tile (12 KiB at MR = 12) then fit a
/// 48 KiB L1d together.
const DEPTH: usize = 256;
/// Row tiles per chunk of weight rows whose transposed outputs are gathered before they are
/// written back into `y`.
const CHUNK_TILES: usize = 8;

/// The activations, packed once per product as the micro-kernel's B panels: for each block of
/// [`Activations::kc`] values of the shared dimension, `panels` micro-panels of `kc`×NR.
pub(super) struct Activations {
    data: AlignedBuf,
    kc: usize,
    panels: usize,
    nr: usize,
}

impl Activations {
    /// Packs `x` [rows, k] for `uk`, in blocks of `kc` (a multiple of the weight's block) values.
    pub(super) fn pack(x: ArrayView2<f32>, uk: &MicroKernel, kc: usize) -> Self {
        let (rows, k) = x.dim();
        let nr = uk.nr;
        let panels = rows.div_ceil(nr);
        let mut data = AlignedBuf::new();
        let buf = data.get_mut(packed_b_len(k, panels * nr, nr));
        for pc in (0..k).step_by(kc) {
            let depth = kc.min(k - pc);
            let block = &mut buf[pc * panels * nr..][..packed_b_len(depth, rows, nr)];
            pack_b(x.t().slice(s![pc..pc + depth, ..]), nr, block);
        }
        Self {
            data,
            kc,
            panels,
            nr,
        }
    }

    /// Micro-panel `q` of the block starting at `pc`, `depth` values deep.
    fn panel(&self, pc: usize, depth: usize, q: usize) -> &[f32] {
        let start = pc * self.panels * self.nr + q * depth * self.nr;
        &self.data.as_slice()[start..start + depth * self.nr]
    }
}

/// The depth a weight of `block_values`-value blocks is decoded for at a time.
pub(super) fn depth(block_values: usize) -> usize {
    (DEPTH / block_values).max(1) * block_values
}

/// Per-thread buffers, kept so that a forward pass allocates them once.
struct Scratch {
    /// MR decoded weight rows, [`tile_stride`] apart.
    tile: Vec<f32>,
    /// The tile packed into the micro-kernel's A layout, for kernels that cannot read it in place.
    packed: AlignedBuf,
    /// A chunk of transposed outputs: a row per weight row, `panels·NR` values each.
    out: Vec<f32>,
    /// A decoder's output before it is copied into the tile (types without a SIMD decoder).
    decoded: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch {
            tile: Vec::new(),
            packed: AlignedBuf::new(),
            out: Vec::new(),
            decoded: Vec::new(),
        })
    };
}

/// `c = x·(the rows in bytes)ᵀ + bias`, with `x` packed in `acts`; `c` is [x rows, weight rows].
pub(super) fn product(
    uk: &MicroKernel,
    w: &QuantMatrix<'_>,
    bytes: &[u8],
    row_bytes: usize,
    acts: &Activations,
    mut c: ArrayViewMut2<f32>,
    bias: Option<&[f32]>,
) {
    let width = bytes.len() / row_bytes;
    let chunk = CHUNK_TILES * uk.mr;
    let ld = acts.panels * acts.nr;
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.out.resize(chunk * ld, 0.0);
        scratch.tile.resize(uk.mr * tile_stride(w.in_features), 0.0);
        for first in (0..width).step_by(chunk) {
            let rows = chunk.min(width - first);
            let chunk_bytes = &bytes[first * row_bytes..(first + rows) * row_bytes];
            multiply_chunk(uk, w, chunk_bytes, row_bytes, acts, scratch);
            write_back(
                &scratch.out[..rows * ld],
                ld,
                c.slice_mut(s![.., first..first + rows]),
                bias.map(|b| &b[first..first + rows]),
            );
        }
    });
}

/// `c[t, o] = out[o·ld + t] + bias[o]`: a chunk's transposed outputs put back into `y`'s rows.
///
/// Sixteen weight rows at a time, so that the reads stay within a few KiB of `out` and each row
/// of `c` gets a run of sixteen values: element by element across the chunk, this had taken 6% of
/// a prompt's time.
fn write_back(out: &[f32], ld: usize, mut c: ArrayViewMut2<f32>, bias: Option<&[f32]>) {
    const BLOCK: usize = 16;
    let rows = c.ncols();
    for o0 in (0..rows).step_by(BLOCK) {
        let h = BLOCK.min(rows - o0);
        let src = &out[o0 * ld..(o0 + h) * ld];
        let mut add = [0.0; BLOCK];
        if let Some(bias) = bias {
            add[..h].copy_from_slice(&bias[o0..o0 + h]);
        }
        for (t, mut y) in c.rows_mut().into_iter().enumerate() {
            let y = &mut y.as_slice_mut().expect("C's rows are contiguous")[o0..o0 + h];
            for (j, (y, add)) in y.iter_mut().zip(add).enumerate() {
                *y = src[j * ld + t] + add;
            }
        }
    }
}

/// `scratch.out` = the weight rows in `bytes` times the activations, one row per weight row.
///
/// A tile's rows are decoded whole, one after the other, so the weight's bytes are read in the
/// order they lie in and the decoder's prefetch runs ahead of it (the weight is a mapped file,
/// read once per product); each depth of the decoded tile is then multiplied in place.
fn multiply_chunk(
    uk: &MicroKernel,
    w: &QuantMatrix<'_>,
    bytes: &[u8],
    row_bytes: usize,
    acts: &Activations,
    scratch: &mut Scratch,
) {
    let k = w.in_features;
    let ld = acts.panels * acts.nr;
    let stride = tile_stride(k);
    for (t, tile_bytes) in bytes.chunks(uk.mr * row_bytes).enumerate() {
        let tile_rows = tile_bytes.len() / row_bytes;
        let tile = &mut scratch.tile[..tile_rows * stride];
        for (row, out) in tile_bytes
            .chunks_exact(row_bytes)
            .zip(tile.chunks_exact_mut(stride))
        {
            decode(w, row, &mut out[..k], &mut scratch.decoded);
        }
        for pc in (0..k).step_by(acts.kc) {
            let depth = acts.kc.min(k - pc);
            let (kernel, a) = if let Some(unpacked) = uk.unpacked {
                (unpacked, tile[pc..].as_ptr())
            } else {
                let view = ArrayView2::from_shape((tile_rows, stride), &*tile)
                    .expect("rows of the tile's stride");
                let packed = scratch.packed.get_mut(packed_a_len(uk.mr, depth, uk.mr));
                pack_a(view.slice(s![.., pc..pc + depth]), uk.mr, packed);
                (uk.run, packed.as_ptr())
            };
            for q in 0..acts.panels {
                let tile_out = &mut scratch.out[(t * uk.mr) * ld + q * acts.nr..];
                let target = Tile {
                    c: tile_out.as_mut_ptr(),
                    rs: ld as isize,
                    cs: 1,
                    rows: tile_rows,
                    cols: acts.nr,
                    alpha: 1.0,
                    beta: if pc == 0 { 0.0 } else { 1.0 },
                    bias: std::ptr::null(),
                    relu: false,
                    ars: stride as isize,
                };
                let b = acts.panel(pc, depth, q);
                // SAFETY: `a` is the tile's `tile_rows` rows from column pc, `depth` floats each,
                // `stride` apart (or their packed MR×depth panel); `b` is a 64-byte aligned
                // depth×NR panel (an AlignedBuf, whose blocks and panels start at multiples of NR
                // floats). The tile writes rows t·MR .. t·MR + tile_rows of `scratch.out`, which
                // has room for a chunk's rows, and its columns q·NR .. (q+1)·NR <= ld, with no
                // bias. The kernel is the best backend's.
                unsafe { kernel(depth, a, b.as_ptr(), &target) };
            }
        }
    }
}

/// The distance between a decoded tile's rows: `k`, or a little more when `k` floats are a
/// multiple of 4 KiB, so that the MR rows the micro-kernel reads at once do not all fall in one
/// L1 set.
fn tile_stride(k: usize) -> usize {
    if (k * size_of::<f32>()).is_multiple_of(4096) {
        k + 16
    } else {
        k
    }
}

/// Decodes the whole blocks `bytes` into `out`, which they fill.
fn decode(w: &QuantMatrix<'_>, bytes: &[u8], out: &mut [f32], decoded: &mut Vec<f32>) {
    if let Some(fused) = w.fused {
        rows::run(fused, Job::Decode { bytes, out });
    } else {
        decoded.clear();
        (w.decode)(bytes, decoded);
        assert_eq!(
            decoded.len(),
            out.len(),
            "a decoder gives every value of whole blocks"
        );
        out.copy_from_slice(decoded);
    }
}

#[cfg(test)]
mod tests {
    use super::super::Fused;
    use super::*;
    use crate::kernel::Backend;

    /// Q8_0 blocks of `values` (32 per block, scale 1/64 so every value is exact).
    fn q8_0(values: &[i8]) -> Vec<u8> {
        let scale = half::f16::from_f32(1.0 / 64.0).to_le_bytes();
        values
            .chunks_exact(32)
            .flat_map(|block| {
                scale
                    .into_iter()
                    .chain(block.iter().map(|&v| v.cast_unsigned()))
            })
            .collect()
    }

    /// Every backend's micro-kernel, its A packed or read in place, gives dequantize-then-multiply
    /// across depth blocks (320 = 256 + 64), chunks (130 rows > 8 tiles of 12), activation panels
    /// (40 rows > NR) and a padded tile stride (1024 values, 4 KiB), with a bias.
    #[test]
    fn products_match_for_every_backend() {
        for (n, k) in [(130, 320), (50, 1024)] {
            products_match(n, k);
        }
    }

    fn products_match(n: usize, k: usize) {
        let values: Vec<i8> = (0..n * k).map(|i| ((i * 37 + 11) % 255) as i8).collect();
        let bytes = q8_0(&values);
        let decode = |b: &[u8], out: &mut Vec<f32>| {
            for block in b.chunks_exact(34) {
                out.extend(
                    block[2..]
                        .iter()
                        .map(|&q| f32::from(q.cast_signed()) / 64.0),
                );
            }
        };
        let bias: Vec<f32> = (0..n).map(|o| o as f32 / 8.0).collect();
        for backend in [
            Backend::Avx512,
            Backend::Avx512Short,
            Backend::Avx2,
            Backend::Generic,
        ] {
            if !backend.is_available() {
                continue;
            }
            let uk = backend.micro_kernel();
            for (rows, fused) in [(3, None), (40, Some(Fused::Q8_0))] {
                let w = QuantMatrix {
                    bytes: &bytes,
                    out_features: n,
                    in_features: k,
                    block_values: 32,
                    fused,
                    decode: &decode,
                };
                let x: Vec<f32> = (0..rows * k)
                    .map(|i| ((i % 13) as f32 - 6.0) / 4.0)
                    .collect();
                let a = ArrayView2::from_shape((rows, k), &x).unwrap();
                let acts = Activations::pack(a, &uk, depth(32));
                let mut y = vec![f32::NAN; rows * n];
                let c = ArrayViewMut2::from_shape((rows, n), &mut y[..]).unwrap();
                product(&uk, &w, &bytes, bytes.len() / n, &acts, c, Some(&bias));
                for (t, o) in (0..rows).flat_map(|t| (0..n).map(move |o| (t, o))) {
                    let want: f64 = (0..k)
                        .map(|p| f64::from(values[o * k + p]) / 64.0 * f64::from(x[t * k + p]))
                        .sum::<f64>()
                        + f64::from(bias[o]);
                    let got = f64::from(y[t * n + o]);
                    assert!(
                        (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                        "{backend:?} rows {rows}: y[{t}, {o}] = {got}, want {want}"
                    );
                }
            }
        }
    }
}
