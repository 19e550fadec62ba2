//! Summary statistics of a tensor in one streaming, NaN-aware pass, accumulated in f64.

use std::ops::Range;

use super::DType;
use super::decode::{self, Undecodable};
use super::moments::Moments;
pub use super::moments::Stats;
use super::parallel::{self, Progress};

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
    /// The dtype the values are of: their statistics are those of the same values stored in it,
    /// to the bit.
    fn dtype(&self) -> DType;

    /// What one thread reads elements `range` through, in order: it may keep what it made for
    /// one chunk for the next (a band of rows whose codes are stored interleaved).
    fn reader(&self, range: Range<usize>) -> Box<dyn ChunkReader + '_>;
}

/// One thread's reader of a [`Chunks`]' values.
pub trait ChunkReader {
    /// The values of elements `range`, appended to `out`; each is a value of [`Chunks::dtype`].
    fn values(&mut self, range: Range<usize>, out: &mut Vec<f32>);

    /// Called before elements `range` are asked for: the stored bytes they are made from are
    /// faulted in at once where they are mapped.
    fn prepare(&mut self, range: Range<usize>);
}

/// A ggml block-quantized tensor's values, dequantized as ggml does it (in f32).
#[derive(Clone, Copy)]
struct Ggml<'a> {
    quant: crate::tensor::ggml::Quant,
    bytes: &'a [u8],
    prepare: &'a (dyn Fn(Range<usize>) + Sync),
}

impl Chunks for Ggml<'_> {
    fn dtype(&self) -> DType {
        DType::F32
    }

    fn reader(&self, _: Range<usize>) -> Box<dyn ChunkReader + '_> {
        Box::new(*self)
    }
}

impl ChunkReader for Ggml<'_> {
    fn values(&mut self, range: Range<usize>, out: &mut Vec<f32>) {
        self.quant
            .dequantize_range(self.bytes, range.start, range.len(), out);
    }

    fn prepare(&mut self, range: Range<usize>) {
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
    let mut reader = match values {
        Values::Made(chunks) => Some(chunks.reader(range.clone())),
        Values::Stored { .. } => None,
    };
    for stretch in range.clone().step_by(PREPARE_ELEMENTS) {
        let stretch_end = (stretch + PREPARE_ELEMENTS).min(range.end);
        match (values, &mut reader) {
            (Values::Stored { dtype, prepare, .. }, _) => prepare(
                dtype.byte_len(stretch).unwrap_or(0)..dtype.byte_len(stretch_end).unwrap_or(0),
            ),
            (Values::Made(_), reader) => reader
                .as_mut()
                .expect("made values have a reader")
                .prepare(stretch..stretch_end),
        }
        for at in (stretch..stretch_end).step_by(CHUNK) {
            let count = CHUNK.min(stretch_end - at);
            total = total.merge(match (values, &mut reader) {
                (
                    Values::Stored {
                        dtype: DType::F32,
                        bytes,
                        ..
                    },
                    _,
                ) => Moments::of_f32_bytes(&bytes[at * 4..(at + count) * 4], &mut scratch),
                (
                    Values::Stored {
                        dtype: dtype @ (DType::F16 | DType::BF16),
                        bytes,
                        ..
                    },
                    _,
                ) => {
                    made.clear();
                    decode::append_f32(dtype, &bytes[at * 2..(at + count) * 2], &mut made);
                    Moments::of_narrow(&made, dtype, &mut scratch)
                }
                (Values::Stored { dtype, bytes, .. }, _) => {
                    decode::decode_f64(dtype, bytes, at, count, &mut wide)
                        .expect("checked decodable");
                    Moments::of_f64(&wide)
                }
                (Values::Made(chunks), reader) => {
                    made.clear();
                    let reader = reader.as_mut().expect("made values have a reader");
                    reader.values(at..at + count, &mut made);
                    match chunks.dtype() {
                        DType::F32 => Moments::of_f32(&made, &mut scratch),
                        // As a stored BF16 or F16 tensor's values are summed.
                        dtype @ (DType::F16 | DType::BF16) => {
                            Moments::of_narrow(&made, dtype, &mut scratch)
                        }
                        _ => {
                            wide.clear();
                            wide.extend(made.iter().map(|&v| f64::from(v)));
                            Moments::of_f64(&wide)
                        }
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
