//! A tensor's summary as the app shows it: its statistics, its histogram over the range of its
//! finite values, and its quantiles (exact, or read from a histogram with their error bound); a
//! large F32 tensor's in one pass over its bytes.

use std::ops::Range;

use super::decode::Undecodable;
use super::grid::Grid;
use super::histogram::{self, Histogram};
use super::moments::Moments;
use super::parallel::{self, Progress};
use super::quantile::{self, Quantiles};
use super::stats::Stats;
use super::stats::{CHUNK, PREPARE_ELEMENTS};
use super::{DType, Tensor};

/// Statistics, distribution and quantiles of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// min, max, mean, unbiased std, zeros, NaN, Inf.
    pub stats: Stats,
    /// Bins over `[min, max]` of the finite values (`[0, 0]` when there is none).
    pub histogram: Histogram,
    /// The percents asked for, of the finite values; `None` without finite values.
    pub quantiles: Option<Quantiles>,
}

/// The summary of `tensor` with `bins` bins and the quantiles at `percents` (0 to 100);
/// `progress` hears the fraction done, from 0 to 1.
///
/// Up to [`quantile::EXACT_LIMIT`] elements (and for any dtype but F32), two passes: the
/// statistics, then the histogram over `[min, max]`, every value in its own bin, and exact
/// quantiles. A larger F32 tensor is read once (see [`one_pass`]), as fast as the statistics alone.
pub fn summarize(
    tensor: &Tensor,
    bins: usize,
    percents: &[f64],
    progress: &mut dyn FnMut(f64),
) -> Result<Summary, Undecodable> {
    if tensor.dtype() == DType::F32 && tensor.numel() > quantile::EXACT_LIMIT {
        return Ok(one_pass(tensor, bins, percents, progress));
    }
    let stats = tensor.stats_with_progress(&mut |fraction| progress(fraction / 2.0))?;
    let numel = tensor.numel();
    let whole = 2.0 * numel.max(1) as f64;
    let histogram = histogram::histogram(
        tensor.dtype(),
        tensor.bytes(),
        numel,
        stats.range().unwrap_or((0.0, 0.0)),
        bins,
        |done| progress((numel + done) as f64 / whole),
    )?;
    let quantiles = quantile::quantiles(tensor, &histogram, percents)?;
    Ok(Summary {
        stats,
        histogram,
        quantiles,
    })
}

/// Bins of the one-pass grid per bin shown, at most: the grid ends at least half full, so its
/// bins are at most half as wide as the ones shown.
const GRID_PER_BIN: usize = 4;

/// Values of the sample that places the one-pass grid.
const SAMPLE: usize = 4096;

/// The summary of a large F32 tensor in one read: each thread takes 2 MiB stretches, finds a
/// stretch's moments (which brings it into cache), grows its [`Grid`] to the stretch's range,
/// and counts the stretch from cache. The statistics are those of [`Tensor::stats`] to the bit;
/// the histogram is the grid's counts re-binned over `[min, max]` (a value at most one grid bin,
/// under half a shown bin, from its own), and the quantiles are read from the grid, their bound
/// its final bin width.
fn one_pass(
    tensor: &Tensor,
    bins: usize,
    percents: &[f64],
    progress: &mut dyn FnMut(f64),
) -> Summary {
    let bytes = tensor.bytes();
    let numel = tensor.numel();
    let value = |i: usize| {
        f64::from(f32::from_le_bytes(
            bytes[i * 4..i * 4 + 4].try_into().expect("4 bytes"),
        ))
    };
    let step = (numel / SAMPLE).max(1);
    let start = Grid::for_sample(
        (0..numel).step_by(step).map(value),
        bins * GRID_PER_BIN / 2,
        bins * GRID_PER_BIN,
    );
    let total = bytes.len().max(1) as f64;
    let parts = parallel::split(
        numel,
        bytes.len(),
        CHUNK,
        &|range, done| one_pass_part(tensor, range, start.clone(), done),
        &mut |done| progress(done as f64 / total),
    );
    // The other threads may finish after the calling thread's last report.
    progress(1.0);
    let mut moments = Moments::EMPTY;
    let mut grid = start;
    for (m, g) in parts {
        moments = moments.merge(m);
        grid.merge(g);
    }
    let stats = moments.finish();
    let (lo, hi) = stats.range().unwrap_or((0.0, 0.0));
    let quantiles = quantile::from_histogram(&grid.histogram(), percents).map(|mut q| {
        for v in &mut q.values {
            *v = v.clamp(lo, hi);
        }
        q.bound = grid.width();
        q
    });
    Summary {
        stats,
        histogram: grid.rebin(lo, hi, bins),
        quantiles,
    }
}

/// One thread's share of [`one_pass`]: elements `range`, chunk by chunk as the statistics pass
/// takes them (so that its moments merge in the same order, to the same bits).
fn one_pass_part(
    tensor: &Tensor,
    range: Range<usize>,
    mut grid: Grid,
    done: &mut Progress,
) -> (Moments, Grid) {
    let bytes = tensor.bytes();
    let mut total = Moments::EMPTY;
    let mut scratch = vec![0f32; CHUNK];
    let mut counts = Vec::new();
    for stretch in range.clone().step_by(PREPARE_ELEMENTS) {
        let end = (stretch + PREPARE_ELEMENTS).min(range.end);
        tensor.populate(stretch * 4..end * 4);
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for at in (stretch..end).step_by(CHUNK) {
            let count = CHUNK.min(end - at);
            let m = Moments::of_f32_bytes(&bytes[at * 4..(at + count) * 4], &mut scratch);
            (lo, hi) = (lo.min(m.min), hi.max(m.max));
            total = total.merge(m);
        }
        if lo <= hi {
            grid.cover(lo, hi);
        }
        grid.count_f32(&bytes[stretch * 4..end * 4], &mut counts);
        done.add((end - stretch) * 4);
    }
    (total, grid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::DType;
    use crate::tensor::decode::encode_f32;

    #[test]
    fn the_histogram_spans_the_finite_range_and_progress_reaches_one() {
        // 3M values take the parallel paths, with NaN and ±Inf scattered and a ragged end.
        let values: Vec<f32> = (0..3_000_003u64)
            .map(|i| match i % 1009 {
                0 => f32::NAN,
                7 => f32::INFINITY,
                8 => f32::NEG_INFINITY,
                _ => ((i * 7919) % 4001) as f32 / 1000.0 - 1.5,
            })
            .collect();
        let tensor = Tensor::from_f32(vec![values.len()], &values);
        let mut last = 0.0;
        let s = summarize(&tensor, 128, &[50.0], &mut |f| {
            assert!(f >= last && f <= 1.0, "{f} after {last}");
            last = f;
        })
        .unwrap();
        let want = histogram::histogram(
            DType::F32,
            &encode_f32(&values),
            values.len(),
            (-1.5, 2.5),
            128,
            |_| {},
        )
        .unwrap();
        assert_eq!(
            (s.stats.range(), &s.histogram, last),
            (Some((-1.5, 2.5)), &want, 1.0)
        );
        let q = s.quantiles.unwrap();
        assert!(q.exact(), "3M values are selected exactly");
        // The one-pass path on the same values: the same statistics to the bit, every value
        // counted, each within one grid bin of its own bin, quantiles within their bound.
        let mut last = 0.0;
        let one = one_pass(&tensor, 128, &[1.0, 50.0, 99.0], &mut |f| {
            assert!(f >= last && f <= 1.0);
            last = f;
        });
        assert_eq!((one.stats, last), (s.stats, 1.0));
        assert_eq!(
            (
                one.histogram.finite(),
                one.histogram.nan,
                one.histogram.pos_inf
            ),
            (want.finite(), want.nan, want.pos_inf)
        );
        let moved: usize = one
            .histogram
            .counts
            .iter()
            .zip(&want.counts)
            .map(|(a, b)| a.abs_diff(*b))
            .sum();
        assert!(moved < want.finite() / 100, "{moved} values moved a bin");
        let q = one.quantiles.unwrap();
        let mut finite: Vec<f64> = values
            .iter()
            .filter(|v| v.is_finite())
            .map(|&v| f64::from(v))
            .collect();
        let exact = quantile::exact(&mut finite, &[1.0, 50.0, 99.0]).unwrap();
        assert!(q.bound > 0.0 && q.bound <= 4.0 / 128.0 / 2.0, "{}", q.bound);
        for (got, want) in q.values.iter().zip(exact) {
            assert!(
                (got - want).abs() <= q.bound,
                "{got} vs {want} ± {}",
                q.bound
            );
        }
        let empty = summarize(&Tensor::from_f32(vec![0], &[]), 8, &[50.0], &mut |_| {}).unwrap();
        assert_eq!(
            (
                empty.stats.range(),
                empty.histogram.finite(),
                empty.quantiles
            ),
            (None, 0, None)
        );
    }
}
