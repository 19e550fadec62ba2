//! Summary statistics of a tensor in one streaming, NaN-aware pass, accumulated in f64.

use std::ops::Range;

use super::DType;
use super::decode::{self, Undecodable};
use super::parallel::{self, Progress};
use super::simd::moments::{self, F32Lanes, LANES};

/// What `show` reports about a tensor's values. NaN and ±Inf are counted and left out of the rest:
/// min, max, mean and std are over the finite values ([`Stats::all_finite`] tells whether that is
/// all of them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Finite values seen.
    pub finite: usize,
    /// Smallest finite value (NaN when there is none).
    pub min: f64,
    /// Largest finite value (NaN when there is none).
    pub max: f64,
    /// Mean of the finite values.
    pub mean: f64,
    /// Unbiased (n-1) standard deviation of the finite values, as `torch.std` computes by default.
    pub std: f64,
    /// Values equal to zero.
    pub zeros: usize,
    /// NaN values.
    pub nan: usize,
    /// Infinite values of either sign.
    pub inf: usize,
}

impl Stats {
    /// Every value counted: finite, NaN and infinite.
    #[must_use]
    pub fn total(&self) -> usize {
        self.finite + self.nan + self.inf
    }

    /// Whether every value is finite, so that the statistics are over all of them; otherwise they
    /// are over the finite values only, and a caller should say so.
    #[must_use]
    pub fn all_finite(&self) -> bool {
        self.nan == 0 && self.inf == 0
    }

    /// `(min, max)` of the finite values, or `None` when there is none (an empty tensor, or one of
    /// NaN and ±Inf only): the fields then hold NaN.
    #[must_use]
    pub fn range(&self) -> Option<(f64, f64)> {
        (self.finite > 0).then_some((self.min, self.max))
    }
}

/// Running moments of one chunk, merged with Chan's formula so that chunks may come in any order.
#[derive(Debug, Clone, Copy)]
pub(super) struct Moments {
    count: usize,
    mean: f64,
    m2: f64,
    /// Smallest finite value (+∞ when none).
    pub(super) min: f64,
    /// Largest finite value (−∞ when none).
    pub(super) max: f64,
    zeros: usize,
    nan: usize,
    inf: usize,
}

impl Moments {
    pub(super) const EMPTY: Moments = Moments {
        count: 0,
        mean: 0.0,
        m2: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        zeros: 0,
        nan: 0,
        inf: 0,
    };

    /// One pass over a chunk of f64 values, with sums taken about the chunk's first finite value
    /// (`shift`) so that squaring does not cancel catastrophically when the mean is far from zero.
    fn of_f64(values: &[f64]) -> Moments {
        let shift = values
            .iter()
            .copied()
            .find(|v| v.is_finite())
            .unwrap_or(0.0);
        let mut acc = Accumulator::new(shift);
        for &v in values {
            acc.add(v);
        }
        acc.finish()
    }

    /// The same for little-endian f32 bytes, the common case, using `scratch` (one chunk long).
    /// This is what runs at memory speed.
    pub(super) fn of_f32_bytes(bytes: &[u8], scratch: &mut [f32]) -> Moments {
        let values = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        let blocks = bytes.len() / 4 / LANES * LANES;
        Moments::of_lanes(&bytes[..blocks * 4], values, scratch)
    }

    /// The same for f32 values in memory (a chunk just dequantized).
    fn of_f32(values: &[f32], scratch: &mut [f32]) -> Moments {
        let blocks = values.len() / LANES * LANES;
        Moments::of_lanes(&values[..blocks], values.iter().copied(), scratch)
    }

    /// The moments of `all` values, whose first `whole.count()` (whole blocks of 16) go through the
    /// SIMD moments micro-kernel and the ragged tail through the scalar accumulator, both about
    /// the chunk's first finite value.
    fn of_lanes<I: F32Lanes>(
        whole: I,
        all: impl Iterator<Item = f32> + Clone,
        scratch: &mut [f32],
    ) -> Moments {
        let shift = all.clone().find(|v| v.is_finite()).unwrap_or(0.0);
        let blocks = whole.count();
        let mut rest = Accumulator::new(f64::from(shift));
        for v in all.skip(blocks) {
            rest.add(f64::from(v));
        }
        let s = moments::chunk_sums(whole, scratch, shift);
        let lanes = Accumulator {
            shift: f64::from(shift),
            count: f64::from(s.finite),
            sum: s.sum,
            squares: s.squares,
            min: f64::from(s.min),
            max: f64::from(s.max),
            zeros: f64::from(s.zeros),
            nan: f64::from(s.nan),
            inf: f64::from(blocks as u32 - s.finite - s.nan),
        };
        lanes.finish().merge(rest.finish())
    }

    pub(super) fn merge(self, other: Moments) -> Moments {
        let count = self.count + other.count;
        let (mean, m2) = if count == 0 {
            (0.0, 0.0)
        } else {
            let delta = other.mean - self.mean;
            let weight = other.count as f64 / count as f64;
            (
                self.mean + delta * weight,
                self.m2 + other.m2 + delta * delta * self.count as f64 * weight,
            )
        };
        Moments {
            count,
            mean,
            m2,
            min: self.min.min(other.min),
            max: self.max.max(other.max),
            zeros: self.zeros + other.zeros,
            nan: self.nan + other.nan,
            inf: self.inf + other.inf,
        }
    }

    pub(super) fn finish(self) -> Stats {
        let none = self.count == 0;
        Stats {
            finite: self.count,
            min: if none { f64::NAN } else { self.min },
            max: if none { f64::NAN } else { self.max },
            mean: if none { f64::NAN } else { self.mean },
            std: if self.count < 2 {
                f64::NAN
            } else {
                (self.m2 / (self.count - 1) as f64).sqrt()
            },
            zeros: self.zeros,
            nan: self.nan,
            inf: self.inf,
        }
    }
}

/// Shifted sums of one lane, updated without branches: a non-finite value adds zero to the sums
/// and one to its own count.
#[derive(Debug, Clone, Copy)]
struct Accumulator {
    shift: f64,
    count: f64,
    sum: f64,
    squares: f64,
    min: f64,
    max: f64,
    zeros: f64,
    nan: f64,
    inf: f64,
}

impl Accumulator {
    fn new(shift: f64) -> Self {
        Accumulator {
            shift,
            count: 0.0,
            sum: 0.0,
            squares: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            zeros: 0.0,
            nan: 0.0,
            inf: 0.0,
        }
    }

    #[inline]
    fn add(&mut self, v: f64) {
        let finite = v.is_finite();
        let d = if finite { v - self.shift } else { 0.0 };
        self.count += f64::from(u8::from(finite));
        self.sum += d;
        self.squares += d * d;
        self.min = self.min.min(if finite { v } else { f64::INFINITY });
        self.max = self.max.max(if finite { v } else { f64::NEG_INFINITY });
        self.zeros += f64::from(u8::from(v == 0.0));
        self.nan += f64::from(u8::from(v.is_nan()));
        self.inf += f64::from(u8::from(v.is_infinite()));
    }

    fn finish(&self) -> Moments {
        let count = self.count as usize;
        let (mean, m2) = if count == 0 {
            (0.0, 0.0)
        } else {
            let n = self.count;
            let shifted_mean = self.sum / n;
            (
                self.shift + shifted_mean,
                (self.squares - self.sum * shifted_mean).max(0.0),
            )
        };
        Moments {
            count,
            mean,
            m2,
            min: self.min,
            max: self.max,
            zeros: self.zeros as usize,
            nan: self.nan as usize,
            inf: self.inf as usize,
        }
    }
}

/// Elements per chunk: each chunk's sums are small enough to stay exact, and its shift is local.
pub(super) const CHUNK: usize = 4096;

/// The stats of `numel` elements of `dtype` stored in `bytes`: one streaming pass, split across
/// the machine's cores for large tensors.
pub fn stats(dtype: DType, bytes: &[u8], numel: usize) -> Result<Stats, Undecodable> {
    stats_with(dtype, bytes, numel, &|_| {}, &mut |_| {})
}

/// Elements per call of the `prepare` hook of [`stats_with`]: 2 MiB of F32.
pub(super) const PREPARE_ELEMENTS: usize = 128 * CHUNK;

/// Values made a chunk at a time rather than read as stored (a quantized tensor's, dequantized),
/// so that a pass over them never holds them all.
pub trait Chunks: Sync {
    /// The values of elements `range`, appended to `out`; each is a value of [`Chunks::dtype`].
    fn values(&self, range: Range<usize>, out: &mut Vec<f32>);

    /// The dtype the values are of: their statistics are those of the same values stored in it,
    /// to the bit.
    fn dtype(&self) -> DType;

    /// Called before elements `range` are asked for, from the thread that asks: the stored bytes
    /// they are made from are faulted in at once where they are mapped.
    fn prepare(&self, range: Range<usize>);
}

/// A ggml block-quantized tensor's values, dequantized as ggml does it (in f32).
struct Ggml<'a> {
    quant: crate::tensor::ggml::Quant,
    bytes: &'a [u8],
    prepare: &'a (dyn Fn(Range<usize>) + Sync),
}

impl Chunks for Ggml<'_> {
    fn values(&self, range: Range<usize>, out: &mut Vec<f32>) {
        self.quant
            .dequantize_range(self.bytes, range.start, range.len(), out);
    }

    fn dtype(&self) -> DType {
        DType::F32
    }

    fn prepare(&self, range: Range<usize>) {
        let byte_at = |e| {
            DType::Ggml(self.quant)
                .byte_len(e)
                .unwrap_or(self.bytes.len())
        };
        (self.prepare)(byte_at(range.start)..byte_at(range.end));
    }
}

/// Where a pass reads its values.
#[derive(Clone, Copy)]
enum Values<'a> {
    /// Stored as `dtype` in `bytes`: `prepare` is told their byte ranges.
    Stored {
        dtype: DType,
        bytes: &'a [u8],
        prepare: &'a (dyn Fn(Range<usize>) + Sync),
    },
    /// Made a chunk at a time.
    Made(&'a dyn Chunks),
}

/// [`stats`], calling `prepare(byte_range)` before each stretch of about 2 MiB is read (from the
/// thread that reads it): a mapped tensor uses it to fault its pages in bulk, which is much
/// cheaper than one page fault per 4 KiB. `progress(bytes_done)` is called on the calling thread
/// only, after each of its stretches, with the bytes all threads have read so far.
///
/// # Panics
/// When `bytes` is not exactly `numel` values of `dtype`.
pub fn stats_with(
    dtype: DType,
    bytes: &[u8],
    numel: usize,
    prepare: &(dyn Fn(Range<usize>) + Sync),
    progress: &mut dyn FnMut(usize),
) -> Result<Stats, Undecodable> {
    if !decode::is_decodable(dtype) {
        return Err(Undecodable(dtype));
    }
    assert_eq!(
        dtype.byte_len(numel),
        Some(bytes.len()),
        "stats: {numel} values of {dtype} do not fill {} bytes",
        bytes.len()
    );
    // Quantized types have no whole bytes per element, but chunk ends fall on block ends.
    let byte_at = |element: usize| dtype.byte_len(element).unwrap_or(bytes.len());
    let mut progress = |done| progress(byte_at(done));
    Ok(match dtype {
        DType::Ggml(quant) => stats_of(
            Values::Made(&Ggml {
                quant,
                bytes,
                prepare,
            }),
            numel,
            bytes.len(),
            &mut progress,
        ),
        _ => stats_of(
            Values::Stored {
                dtype,
                bytes,
                prepare,
            },
            numel,
            bytes.len(),
            &mut progress,
        ),
    })
}

/// The stats of `numel` values made a chunk at a time by `chunks`, never all held at once: one
/// pass, split across the machine's cores when they would take `bytes` or more stored.
/// `progress(values_done)` is called on the calling thread, after each of its stretches.
pub fn stats_made(
    chunks: &dyn Chunks,
    numel: usize,
    bytes: usize,
    progress: &mut dyn FnMut(usize),
) -> Stats {
    stats_of(Values::Made(chunks), numel, bytes, progress)
}

/// The stats of `numel` values, split across the cores when they take `bytes` or more;
/// `progress` hears the values done.
fn stats_of(values: Values, numel: usize, bytes: usize, progress: &mut dyn FnMut(usize)) -> Stats {
    parallel::split(
        numel,
        bytes,
        CHUNK,
        &|range, done| moments_of(values, range, done),
        progress,
    )
    .into_iter()
    .fold(Moments::EMPTY, Moments::merge)
    .finish()
}

/// The moments of elements `range`, chunk by chunk, preparing each stretch before reading it and
/// adding its values to `done` after.
fn moments_of(values: Values, range: Range<usize>, done: &mut Progress) -> Moments {
    let mut total = Moments::EMPTY;
    let mut wide = Vec::with_capacity(CHUNK);
    let mut made = Vec::with_capacity(CHUNK);
    let mut scratch = vec![0f32; CHUNK];
    for stretch in range.clone().step_by(PREPARE_ELEMENTS) {
        let stretch_end = (stretch + PREPARE_ELEMENTS).min(range.end);
        match values {
            Values::Stored { dtype, prepare, .. } => prepare(
                dtype.byte_len(stretch).unwrap_or(0)..dtype.byte_len(stretch_end).unwrap_or(0),
            ),
            Values::Made(chunks) => chunks.prepare(stretch..stretch_end),
        }
        for at in (stretch..stretch_end).step_by(CHUNK) {
            let count = CHUNK.min(stretch_end - at);
            total = total.merge(match values {
                Values::Stored {
                    dtype: DType::F32,
                    bytes,
                    ..
                } => Moments::of_f32_bytes(&bytes[at * 4..(at + count) * 4], &mut scratch),
                Values::Stored { dtype, bytes, .. } => {
                    decode::decode_f64(dtype, bytes, at, count, &mut wide)
                        .expect("checked decodable");
                    Moments::of_f64(&wide)
                }
                Values::Made(chunks) => {
                    made.clear();
                    chunks.values(at..at + count, &mut made);
                    if chunks.dtype() == DType::F32 {
                        Moments::of_f32(&made, &mut scratch)
                    } else {
                        // As a stored BF16 or F16 tensor's values are summed.
                        wide.clear();
                        wide.extend(made.iter().map(|&v| f64::from(v)));
                        Moments::of_f64(&wide)
                    }
                }
            });
        }
        done.add(stretch_end - stretch);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::decode::encode_f32;

    #[test]
    fn nan_and_inf_are_counted_and_left_out() {
        let values = [1.0, f32::NAN, 3.0, f32::INFINITY, 0.0, f32::NEG_INFINITY];
        let s = stats(DType::F32, &encode_f32(&values), values.len()).unwrap();
        assert_eq!((s.nan, s.inf, s.zeros, s.finite), (1, 2, 1, 3));
        assert_eq!((s.min, s.max, s.mean), (0.0, 3.0, 4.0 / 3.0));
        assert_eq!(
            (s.range(), s.total(), s.all_finite()),
            (Some((0.0, 3.0)), 6, false)
        );
        // Unbiased: sum of squared deviations 14/3 over n-1 = 2.
        assert!((s.std - (7.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn chunks_merge_to_the_exact_moments() {
        let values: Vec<f32> = (0..10_001).map(|i| (i % 7) as f32 - 3.0 + 1e3).collect();
        let s = stats(DType::F32, &encode_f32(&values), values.len()).unwrap();
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = values
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0);
        assert!((s.mean - mean).abs() < 1e-9);
        assert!((s.std - var.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn non_finite_values_inside_the_lanes_are_left_out() {
        // 10,003 values: whole lane blocks, several chunks, and a ragged tail, with NaN and ±Inf
        // scattered through all of them (the first value too, so that the shift skips it).
        let values: Vec<f32> = (0..10_003)
            .map(|i| match i % 97 {
                0 => f32::NAN,
                13 => f32::INFINITY,
                50 => f32::NEG_INFINITY,
                _ => (i % 11) as f32 - 5.0,
            })
            .collect();
        let s = stats(DType::F32, &encode_f32(&values), values.len()).unwrap();
        let finite: Vec<f64> = values
            .iter()
            .filter(|v| v.is_finite())
            .map(|&v| f64::from(v))
            .collect();
        let n = finite.len() as f64;
        let mean = finite.iter().sum::<f64>() / n;
        let std = (finite.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        assert_eq!(s.nan, values.iter().filter(|v| v.is_nan()).count());
        assert_eq!(s.inf, values.iter().filter(|v| v.is_infinite()).count());
        assert_eq!(s.zeros, values.iter().filter(|v| **v == 0.0).count());
        assert_eq!(s.finite, finite.len());
        assert_eq!((s.min, s.max), (-5.0, 5.0));
        assert!((s.mean - mean).abs() < 1e-12 && (s.std - std).abs() < 1e-12);
    }

    #[test]
    fn a_large_offset_does_not_cancel_the_variance() {
        // Mean 1e6, spread 1e-2: naive sums of squares lose every digit of the variance.
        let values: Vec<f32> = (0..100_000)
            .map(|i| 1e6 + if i % 2 == 0 { 0.0625 } else { -0.0625 })
            .collect();
        let s = stats(DType::F32, &encode_f32(&values), values.len()).unwrap();
        let n = values.len() as f64;
        assert!(
            (s.std - 0.0625 * (n / (n - 1.0)).sqrt()).abs() < 1e-9,
            "{}",
            s.std
        );
    }

    #[test]
    fn threads_and_chunks_agree_with_one_pass() {
        // 3M values take the parallel path; every statistic must equal the plain computation.
        let values: Vec<f32> = (0..3_000_001u64)
            .map(|i| ((i * 7919) % 10007) as f32 / 100.0 - 50.0)
            .collect();
        let s = stats(DType::F32, &encode_f32(&values), values.len()).unwrap();
        let wide: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
        let n = wide.len() as f64;
        let mean = wide.iter().sum::<f64>() / n;
        let std = (wide.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        assert!((s.mean - mean).abs() < 1e-9 && (s.std - std).abs() < 1e-9);
        assert_eq!(s.min, -50.0);
        assert_eq!(s.finite, values.len());
        let generic = stats(
            DType::F64,
            &wide
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<_>>(),
            wide.len(),
        )
        .unwrap();
        assert!((generic.std - std).abs() < 1e-9, "the generic path agrees");
    }

    #[test]
    fn an_empty_tensor_has_no_moments() {
        let s = stats(DType::F32, &[], 0).unwrap();
        assert_eq!((s.finite, s.total(), s.range()), (0, 0, None));
        assert!(s.mean.is_nan() && s.std.is_nan() && s.min.is_nan());
        let only_nan = stats(DType::F32, &encode_f32(&[f32::NAN, f32::INFINITY]), 2).unwrap();
        assert_eq!((only_nan.range(), only_nan.total()), (None, 2));
        assert!(!only_nan.all_finite());
    }
}
