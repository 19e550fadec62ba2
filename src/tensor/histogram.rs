//! The distribution of a tensor's values: equal bins over [min, max], streamed in chunks, with NaN
//! and ±Inf counted apart (they have no place on the axis).

use super::DType;
use super::decode::{self, Undecodable};
use super::parallel::{self, Progress};
use super::simd::bins::{self, Bins};

/// Counts of finite values in equal-width bins over `[lo, hi]`, and of the values outside the axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Left edge of the first bin.
    pub lo: f64,
    /// Right edge of the last bin (included in it, so that the maximum is counted).
    pub hi: f64,
    /// Finite values per bin, left to right.
    pub counts: Vec<usize>,
    /// NaN values.
    pub nan: usize,
    /// +Inf values.
    pub pos_inf: usize,
    /// -Inf values.
    pub neg_inf: usize,
    /// Finite values outside `[lo, hi]` (none when the range came from the same tensor's stats).
    pub outside: usize,
}

/// Elements decoded per chunk, as the stats pass does, so that progress comes in steady steps.
const CHUNK: usize = 4096;

/// F32 elements between two progress reports of the fast path: 2 MiB, as the stats pass. Also
/// what the kernel's u32 counts hold before they are added to the histogram's.
const STRETCH: usize = 128 * CHUNK;

impl Histogram {
    /// An empty histogram of `bins` bins (at least one) over `[lo, hi]`.
    #[must_use]
    pub fn new(lo: f64, hi: f64, bins: usize) -> Self {
        Histogram {
            lo,
            hi,
            counts: vec![0; bins.max(1)],
            nan: 0,
            pos_inf: 0,
            neg_inf: 0,
            outside: 0,
        }
    }

    /// Counts one value.
    pub fn add(&mut self, v: f64) {
        if v.is_nan() {
            self.nan += 1;
        } else if v == f64::INFINITY {
            self.pos_inf += 1;
        } else if v == f64::NEG_INFINITY {
            self.neg_inf += 1;
        } else if let Some(bin) = self.bin_of(v) {
            self.counts[bin] += 1;
        } else {
            self.outside += 1;
        }
    }

    /// The bin a finite value falls in: `⌊(v − lo)·bins/(hi − lo)⌋`, the maximum in the last; a
    /// zero-width range (a constant tensor) puts it in the first.
    #[must_use]
    pub fn bin_of(&self, v: f64) -> Option<usize> {
        self.bins().of(v)
    }

    fn bins(&self) -> Bins {
        Bins::new(self.lo, self.hi, self.counts.len())
    }

    /// Adds `other`'s counts (same bins) to these.
    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.nan += other.nan;
        self.pos_inf += other.pos_inf;
        self.neg_inf += other.neg_inf;
        self.outside += other.outside;
    }

    /// Finite values counted in bins.
    #[must_use]
    pub fn finite(&self) -> usize {
        self.counts.iter().sum()
    }
}

/// The histogram of `numel` elements of `dtype` in `bytes`, over `[lo, hi]` in `bins` bins;
/// `progress` hears how many elements are done after each chunk (each 2 MiB for F32).
///
/// F32, the common case, is read straight from the bytes and split over the machine's cores for
/// a large tensor, each thread counting into its own bins, merged at the end; every value lands
/// in the bin [`Histogram::bin_of`] gives it, as in the generic path.
pub fn histogram(
    dtype: DType,
    bytes: &[u8],
    numel: usize,
    (lo, hi): (f64, f64),
    bins: usize,
    mut progress: impl FnMut(usize),
) -> Result<Histogram, Undecodable> {
    if !decode::is_decodable(dtype) {
        return Err(Undecodable(dtype));
    }
    if dtype == DType::F32 {
        let hist = f32_histogram(bytes, numel, (lo, hi), bins, &mut progress);
        progress(numel);
        return Ok(hist);
    }
    let mut hist = Histogram::new(lo, hi, bins);
    let mut buffer = Vec::with_capacity(CHUNK.min(numel));
    let mut first = 0;
    while first < numel {
        let count = CHUNK.min(numel - first);
        decode::decode_f64(dtype, bytes, first, count, &mut buffer)?;
        for &v in &buffer {
            hist.add(v);
        }
        first += count;
        progress(first);
    }
    Ok(hist)
}

/// The F32 path: whole chunks per thread, the calling thread reporting progress for all of them.
fn f32_histogram(
    bytes: &[u8],
    numel: usize,
    (lo, hi): (f64, f64),
    bins: usize,
    progress: &mut dyn FnMut(usize),
) -> Histogram {
    let parts = parallel::split(
        numel,
        bytes.len(),
        CHUNK,
        &|range, done| f32_part(bytes, range, (lo, hi), bins, done),
        progress,
    );
    let mut hist = Histogram::new(lo, hi, bins);
    for part in &parts {
        hist.merge(part);
    }
    hist
}

/// Counts elements `elements` of little-endian F32 `bytes` through the SIMD kernel (a ragged end
/// through [`Histogram::add`]), adding each stretch to `done`.
fn f32_part(
    bytes: &[u8],
    elements: std::ops::Range<usize>,
    (lo, hi): (f64, f64),
    bins: usize,
    done: &mut Progress,
) -> Histogram {
    let mut hist = Histogram::new(lo, hi, bins);
    let layout = hist.bins();
    let mut counts = vec![0u32; layout.slots()];
    for stretch in elements.clone().step_by(STRETCH) {
        let end = (stretch + STRETCH).min(elements.end);
        let whole = stretch + (end - stretch) / bins::LANES * bins::LANES;
        counts.fill(0);
        let specials = bins::count_f32(&bytes[stretch * 4..whole * 4], &layout, &mut counts);
        let mut beyond = 0;
        for way in counts.chunks_exact(layout.count + 1) {
            for (total, &n) in hist.counts.iter_mut().zip(way) {
                *total += n as usize;
            }
            beyond += way[layout.count] as usize;
        }
        let (nan, pos_inf, neg_inf) = (
            specials.nan as usize,
            specials.pos_inf as usize,
            specials.neg_inf as usize,
        );
        hist.nan += nan;
        hist.pos_inf += pos_inf;
        hist.neg_inf += neg_inf;
        hist.outside += beyond - nan - pos_inf - neg_inf;
        for c in bytes[whole * 4..end * 4].chunks_exact(4) {
            hist.add(f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
        }
        done.add(end - stretch);
    }
    hist
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::decode::encode_f32;

    #[test]
    fn values_fall_in_equal_bins_and_the_maximum_in_the_last() {
        let values = [
            0.0,
            0.1,
            0.5,
            0.99,
            1.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        let h = histogram(
            DType::F32,
            &encode_f32(&values),
            values.len(),
            (0.0, 1.0),
            4,
            |_| {},
        )
        .unwrap();
        assert_eq!(h.counts, [2, 0, 1, 2]);
        assert_eq!((h.nan, h.pos_inf, h.neg_inf, h.outside), (1, 1, 1, 0));
        assert_eq!(h.finite(), 5);
    }

    #[test]
    fn a_constant_tensor_fills_one_bin_and_progress_reaches_the_end() {
        let values = vec![3.0f32; 10_000];
        let mut done = 0;
        let h = histogram(
            DType::F32,
            &encode_f32(&values),
            values.len(),
            (3.0, 3.0),
            8,
            |n| done = n,
        )
        .unwrap();
        assert_eq!(h.counts[0], 10_000);
        assert_eq!(done, 10_000);
        let empty = histogram(DType::F32, &[], 0, (0.0, 0.0), 8, |_| {}).unwrap();
        assert_eq!((empty.finite(), empty.counts.len()), (0, 8));
        assert!(histogram(DType::F4, &[], 0, (0.0, 1.0), 4, |_| {}).is_err());
    }

    /// Every value through [`Histogram::add`] one by one: the oracle of the fast path.
    fn naive(values: &[f32], range: (f64, f64), bins: usize) -> Histogram {
        let mut h = Histogram::new(range.0, range.1, bins);
        for &v in values {
            h.add(f64::from(v));
        }
        h
    }

    #[test]
    fn the_threaded_f32_path_equals_naive_binning() {
        // 3M values take the parallel path (more than 8 MiB), with a ragged end, NaN and ±Inf
        // scattered, the extremes repeated, and values on bin edges.
        let values: Vec<f32> = (0..3_000_003u64)
            .map(|i| match i % 1009 {
                0 => f32::NAN,
                7 => f32::INFINITY,
                8 => f32::NEG_INFINITY,
                9 => 2.5,
                10 => -1.5,
                _ => ((i * 7919) % 4001) as f32 / 1000.0 - 1.5,
            })
            .collect();
        let bytes = encode_f32(&values);
        for (range, bins) in [((-1.5, 2.5), 128), ((-1.5, 2.5), 7), ((0.0, 1.0), 33)] {
            let mut last = 0;
            let fast = histogram(DType::F32, &bytes, values.len(), range, bins, |n| {
                assert!(n >= last, "progress never goes back");
                last = n;
            })
            .unwrap();
            assert_eq!(fast, naive(&values, range, bins), "{range:?} {bins}");
            assert_eq!(last, values.len(), "progress reaches the end");
        }
        let fast = histogram(DType::F32, &bytes, values.len(), (-1.5, 2.5), 128, |_| {}).unwrap();
        assert_eq!(fast.nan, values.iter().filter(|v| v.is_nan()).count());
        assert_eq!(fast.pos_inf + fast.neg_inf, 2 * fast.nan);
        assert_eq!(fast.outside, 0);
        assert!(
            fast.counts[127] >= values.len() / 1009,
            "the maximum is in the last bin"
        );
        // A narrower range counts the rest as outside; the generic path agrees.
        let narrow = histogram(DType::F32, &bytes, values.len(), (0.0, 1.0), 33, |_| {}).unwrap();
        assert!(narrow.outside > 0);
        let wide: Vec<u8> = values
            .iter()
            .flat_map(|&v| f64::from(v).to_le_bytes())
            .collect();
        let generic = histogram(DType::F64, &wide, values.len(), (0.0, 1.0), 33, |_| {}).unwrap();
        assert_eq!(narrow, generic);
    }
}
