//! One parallel pass over two tensors' bytes at once: the sums every diff figure is made from.
//!
//! The bytes are decoded a chunk at a time (never a whole f32 copy), accumulated in f64, and split
//! across threads in whole chunks by the one split of `tensor::parallel`.

use std::ops::Range;

use crate::tensor::simd::{moments, pairs};
use crate::tensor::{DType, Tensor, decode, parallel};

/// The sums of one stretch of element pairs `(a, b)`, with `d = b - a`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sums {
    /// Σ a².
    pub aa: f64,
    /// Σ b².
    pub bb: f64,
    /// Σ a·b.
    pub ab: f64,
    /// Σ d².
    pub dd: f64,
    /// max |d| over the pairs whose difference is not NaN.
    pub max_abs: f64,
    /// Pairs whose difference is NaN (a NaN on either side, or Inf - Inf).
    pub nan: usize,
    /// Pairs whose elements are bit-identical.
    pub identical: usize,
}

impl From<pairs::PairSums> for Sums {
    fn from(p: pairs::PairSums) -> Self {
        Sums {
            aa: p.aa,
            bb: p.bb,
            ab: p.ab,
            dd: p.dd,
            max_abs: p.max_abs,
            nan: p.nan as usize,
            identical: p.identical as usize,
        }
    }
}

impl Sums {
    fn merge(&mut self, other: &Sums) {
        self.aa += other.aa;
        self.bb += other.bb;
        self.ab += other.ab;
        self.dd += other.dd;
        self.max_abs = self.max_abs.max(other.max_abs);
        self.nan += other.nan;
        self.identical += other.identical;
    }
}

/// What a pass returns: the totals, and Σ d² and Σ a² of each row.
#[derive(Debug, Clone, PartialEq)]
pub struct Paired {
    /// Over every element.
    pub total: Sums,
    /// Σ d² per row (empty when the pass had no rows).
    pub row_dd: Vec<f64>,
    /// Σ a² per row.
    pub row_aa: Vec<f64>,
}

/// Elements decoded at a time.
const CHUNK: usize = 4096;

/// Elements between two page fault-in hints: 2 MiB of F32, whole chunks.
const STRETCH: usize = 128 * CHUNK;

/// Lanes of independent accumulators: they let the compiler keep several sums in flight.
const LANES: usize = 4;

/// Compares two tensors of one shape element by element, summing per row of `row_len` elements
/// (`row_len == 0`: no rows). Both must be decodable and hold the same number of elements.
///
/// # Panics
/// When the element counts differ or a dtype cannot be decoded (the caller checks both).
#[must_use]
pub fn paired(a: &Tensor, b: &Tensor, row_len: usize) -> Paired {
    let numel = a.numel();
    assert_eq!(numel, b.numel(), "paired: element counts differ");
    assert!(decode::is_decodable(a.dtype()) && decode::is_decodable(b.dtype()));
    let rows = numel.checked_div(row_len).unwrap_or(0);
    let bytes = a.bytes().len() + b.bytes().len();
    let parts = parallel::split(
        numel,
        bytes,
        CHUNK,
        &|range, _| part(a, b, range, row_len),
        &mut |_| {},
    );
    let mut out = Paired {
        total: Sums::default(),
        row_dd: vec![0.0; rows],
        row_aa: vec![0.0; rows],
    };
    for p in parts {
        out.total.merge(&p.total);
        for (i, (dd, aa)) in p.row_dd.iter().zip(&p.row_aa).enumerate() {
            // A part's rows start at its first row; a row split between two parts adds up.
            if let Some(slot) = out.row_dd.get_mut(p.first_row + i) {
                *slot += dd;
                out.row_aa[p.first_row + i] += aa;
            }
        }
    }
    out
}

/// One thread's share: its totals and the sums of the rows its range touches.
struct Part {
    total: Sums,
    first_row: usize,
    row_dd: Vec<f64>,
    row_aa: Vec<f64>,
}

/// The sums of elements `first..end`, a chunk at a time, cut at row boundaries.
fn part(a: &Tensor, b: &Tensor, Range { start: first, end }: Range<usize>, row_len: usize) -> Part {
    let (first_row, touched) = if row_len == 0 || first == end {
        (0, 0)
    } else {
        (first / row_len, (end - 1) / row_len - first / row_len + 1)
    };
    let mut out = Part {
        total: Sums::default(),
        first_row,
        row_dd: vec![0.0; touched],
        row_aa: vec![0.0; touched],
    };
    let mut chunk = Chunk::new(a.dtype(), b.dtype());
    let byte_at =
        |t: &Tensor, element: usize| t.dtype().byte_len(element).unwrap_or(t.bytes().len());
    for at in (first..end).step_by(CHUNK) {
        let count = CHUNK.min(end - at);
        if (at - first).is_multiple_of(STRETCH) {
            // Both files' pages faulted in 2 MiB at a time (of F32), as the statistics pass does.
            let stretch_end = (at + STRETCH).min(end);
            for t in [a, b] {
                t.populate(byte_at(t, at)..byte_at(t, stretch_end));
            }
        }
        chunk.load(a, b, at, count);
        let mut start = 0;
        while start < count {
            // The segment ends at the chunk's end or the next row boundary, whichever is first.
            let row = (at + start).checked_div(row_len);
            let stop = row.map_or(count, |r| count.min((r + 1) * row_len - at));
            let sums = chunk.sums(start..stop);
            if let Some(r) = row {
                out.row_dd[r - first_row] += sums.dd;
                out.row_aa[r - first_row] += sums.aa;
            }
            out.total.merge(&sums);
            start = stop;
        }
    }
    out
}

/// One chunk of both tensors. F32 pairs are read in place (the common case, and the fast one):
/// a chunk whose bytes are the same on both sides costs a comparison and one sum of squares.
/// Any other pair of dtypes is decoded to f64 with a flag per element for bit identity.
enum Chunk<'t> {
    F32 {
        a: &'t [u8],
        b: &'t [u8],
        same: bool,
        scratch: Vec<f32>,
    },
    Wide {
        a: Vec<f64>,
        b: Vec<f64>,
        same: Vec<bool>,
        same_dtype: bool,
    },
}

impl<'t> Chunk<'t> {
    fn new(a: DType, b: DType) -> Chunk<'t> {
        if a == DType::F32 && b == DType::F32 {
            Chunk::F32 {
                a: &[],
                b: &[],
                same: false,
                scratch: vec![0.0; CHUNK],
            }
        } else {
            Chunk::Wide {
                a: Vec::with_capacity(CHUNK),
                b: Vec::with_capacity(CHUNK),
                same: Vec::with_capacity(CHUNK),
                same_dtype: a == b,
            }
        }
    }

    /// Loads elements `at..at + count` of both tensors.
    fn load(&mut self, ta: &'t Tensor, tb: &'t Tensor, at: usize, count: usize) {
        match self {
            Chunk::F32 { a, b, same, .. } => {
                *a = &ta.bytes()[at * 4..(at + count) * 4];
                *b = &tb.bytes()[at * 4..(at + count) * 4];
                *same = a == b;
            }
            Chunk::Wide {
                a,
                b,
                same,
                same_dtype,
            } => {
                decode::decode_f64(ta.dtype(), ta.bytes(), at, count, a).expect("checked");
                decode::decode_f64(tb.dtype(), tb.bytes(), at, count, b).expect("checked");
                same.clear();
                // A quantized element has no bytes of its own (a block shares its scale), so its
                // identity is of the dequantized value, as across dtypes.
                if *same_dtype && !matches!(ta.dtype(), DType::Ggml(_)) {
                    // Bit identity is a property of the stored bytes, not of the decoded values.
                    let size = ta.dtype().bits() / 8;
                    let range = at * size..(at + count) * size;
                    same.extend(
                        ta.bytes()[range.clone()]
                            .chunks_exact(size)
                            .zip(tb.bytes()[range].chunks_exact(size))
                            .map(|(x, y)| x == y),
                    );
                } else {
                    same.extend(
                        a.iter()
                            .zip(b.iter())
                            .map(|(x, y)| x.to_bits() == y.to_bits()),
                    );
                }
            }
        }
    }

    /// The sums of the loaded elements in `range`.
    fn sums(&mut self, range: Range<usize>) -> Sums {
        match self {
            Chunk::F32 {
                a,
                b,
                same,
                scratch,
            } => {
                let (a, b) = (
                    &a[range.start * 4..range.end * 4],
                    &b[range.start * 4..range.end * 4],
                );
                if *same && let Some(sums) = identical_f32(a, scratch) {
                    return sums;
                }
                // Whole blocks of 16 pairs in the vector kernel, the rest (a row's end) here.
                let blocks = range.len() - range.len() % pairs::LANES;
                let mut sums = Sums::from(pairs::pair_sums(&a[..blocks * 4], &b[..blocks * 4]));
                let value = |bytes: &[u8], i: usize| {
                    let at = 4 * (blocks + i);
                    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
                };
                sums.merge(&sums_of(range.len() - blocks, |i| {
                    let (x, y) = (value(a, i), value(b, i));
                    (
                        f64::from(f32::from_bits(x)),
                        f64::from(f32::from_bits(y)),
                        x == y,
                    )
                }));
                sums
            }
            Chunk::Wide { a, b, same, .. } => sums_of(range.len(), |i| {
                let j = range.start + i;
                (a[j], b[j], same[j])
            }),
        }
    }
}

/// The sums of F32 pairs whose two sides are the same bytes `a`, at the statistics kernel's
/// speed: Σa² once for Σa², Σb² and Σab alike (so the cosine of identical tensors is exactly 1),
/// no difference. `None` when a value is NaN or infinite, whose difference is NaN: the general
/// path counts those.
fn identical_f32(a: &[u8], scratch: &mut [f32]) -> Option<Sums> {
    let n = a.len() / 4;
    let blocks = n - n % moments::LANES;
    let lanes = moments::chunk_sums(&a[..blocks * 4], scratch, 0.0);
    let mut squares = lanes.squares;
    let mut finite = lanes.finite as usize;
    for c in a[blocks * 4..].chunks_exact(4) {
        let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        finite += usize::from(v.is_finite());
        squares += f64::from(v) * f64::from(v);
    }
    (finite == n).then_some(Sums {
        aa: squares,
        bb: squares,
        ab: squares,
        dd: 0.0,
        max_abs: 0.0,
        nan: 0,
        identical: n,
    })
}

/// The sums of `n` pairs given by `pair(i) = (a, b, bit_identical)`, in [`LANES`] interleaved
/// accumulators.
#[inline]
fn sums_of(n: usize, pair: impl Fn(usize) -> (f64, f64, bool)) -> Sums {
    let mut aa = [0f64; LANES];
    let mut bb = [0f64; LANES];
    let mut ab = [0f64; LANES];
    let mut dd = [0f64; LANES];
    let mut max_abs = [0f64; LANES];
    let mut nan = [0usize; LANES];
    let mut identical = [0usize; LANES];
    for i in 0..n {
        let lane = i % LANES;
        let (x, y, same) = pair(i);
        let d = y - x;
        aa[lane] += x * x;
        bb[lane] += y * y;
        ab[lane] += x * y;
        dd[lane] += d * d;
        // f64::max skips NaN, which is counted apart.
        max_abs[lane] = max_abs[lane].max(d.abs());
        nan[lane] += usize::from(d.is_nan());
        identical[lane] += usize::from(same);
    }
    Sums {
        aa: aa.iter().sum(),
        bb: bb.iter().sum(),
        ab: ab.iter().sum(),
        dd: dd.iter().sum(),
        max_abs: max_abs.iter().copied().fold(0.0, f64::max),
        nan: nan.iter().sum(),
        identical: identical.iter().sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(a: &[f32], b: &[f32], row_len: usize) -> (Sums, Vec<f64>) {
        let mut s = Sums::default();
        let mut rows = vec![0.0; a.len().checked_div(row_len).unwrap_or(0)];
        for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
            let (x64, y64) = (f64::from(x), f64::from(y));
            let d = y64 - x64;
            s.aa += x64 * x64;
            s.bb += y64 * y64;
            s.ab += x64 * y64;
            s.dd += d * d;
            s.max_abs = s.max_abs.max(d.abs());
            s.nan += usize::from(d.is_nan());
            s.identical += usize::from(x.to_bits() == y.to_bits());
            if let Some(r) = i.checked_div(row_len) {
                rows[r] += d * d;
            }
        }
        (s, rows)
    }

    fn close(x: f64, y: f64) -> bool {
        (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-300)
    }

    #[test]
    fn threads_chunks_and_rows_agree_with_one_plain_loop() {
        // 3M elements take the parallel path; rows of 1000 straddle chunks and thread ranges.
        let n = 3_000_000u64;
        let a: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 10007) as f32 / 1e3 - 5.0)
            .collect();
        let b: Vec<f32> = a
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                if i % 3 == 0 {
                    x
                } else {
                    x + (i % 13) as f32 * 1e-3
                }
            })
            .collect();
        let (ta, tb) = (
            Tensor::from_f32(vec![3000, 1000], &a),
            Tensor::from_f32(vec![3000, 1000], &b),
        );
        let got = paired(&ta, &tb, 1000);
        let (want, rows) = plain(&a, &b, 1000);
        assert_eq!(got.total.identical, want.identical);
        assert_eq!(got.total.max_abs, want.max_abs);
        for (g, w) in [
            (got.total.aa, want.aa),
            (got.total.bb, want.bb),
            (got.total.ab, want.ab),
            (got.total.dd, want.dd),
        ] {
            assert!(close(g, w), "{g} vs {w}");
        }
        assert!(got.row_dd.iter().zip(&rows).all(|(g, w)| close(*g, *w)));
    }

    #[test]
    fn nan_is_counted_and_bit_identity_holds_across_dtypes() {
        let a = Tensor::from_f32(vec![4], &[1.0, f32::NAN, -0.0, 2.0]);
        let b = Tensor::from_f32(vec![4], &[1.0, 1.0, 0.0, 2.5]);
        let got = paired(&a, &b, 0);
        assert_eq!(
            (got.total.nan, got.total.identical),
            (1, 1),
            "-0.0 and 0.0 differ in bits"
        );
        assert_eq!(got.total.max_abs, 0.5);
        // F64 against F32: equal values count as identical, their bit patterns being equal in f64.
        let wide = Tensor::new(
            vec![4],
            DType::F64,
            crate::tensor::Bytes::Owned(
                [1.0f64, 1.0, 0.0, 2.5]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<_>>()
                    .into(),
            ),
        );
        assert_eq!(paired(&b, &wide, 0).total.identical, 4);
    }
}
