//! A histogram whose range grows while it is filled, for the one-pass summary of a large tensor:
//! equal bins on a fixed grid (`origin + k·width`), extended when a stretch's values fall past
//! its ends and coarsened by merging pairs of bins (exactly: each bin of width `2w` is two bins of
//! width `w`) when it would hold too many. Every count stays exact for its bin, so a quantile read
//! from it is within one final bin width of the true one.

use super::histogram::Histogram;
use super::simd::bins::{self, Bins};

/// Counts on the grid `origin + k·width`, bins `first..first + counts.len()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    origin: f64,
    width: f64,
    first: i64,
    counts: Vec<usize>,
    most: usize,
    nan: usize,
    pos_inf: usize,
    neg_inf: usize,
}

impl Grid {
    /// An empty grid of bins `width` wide from `origin`, holding at most `most` bins (at least 4).
    #[must_use]
    pub fn new(origin: f64, width: f64, most: usize) -> Grid {
        Grid {
            origin,
            width,
            first: 0,
            counts: Vec::new(),
            most: most.max(4),
            nan: 0,
            pos_inf: 0,
            neg_inf: 0,
        }
    }

    /// The grid a sample of a tensor's values suggests: `bins` bins over the sample's finite range
    /// (or around its one value), holding at most `most`.
    #[must_use]
    pub fn for_sample(sample: impl Iterator<Item = f64>, bins: usize, most: usize) -> Grid {
        let (lo, hi) = sample
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
        if lo > hi {
            return Grid::new(0.0, 1.0, most);
        }
        let width = (hi - lo) / bins.max(1) as f64;
        // A constant sample says nothing of the spread: a width far below the value's size, which
        // coarsening widens as the data asks.
        let width = if width > 0.0 && width.is_finite() {
            width
        } else {
            (lo.abs().max(f64::MIN_POSITIVE) * f64::EPSILON * 1024.0).max(f64::MIN_POSITIVE)
        };
        Grid::new(lo, width, most)
    }

    /// The bin `v` (finite) falls in on the grid.
    fn index(&self, v: f64) -> i64 {
        // Saturating: a value that far out is covered by coarsening first.
        ((v - self.origin) / self.width).floor() as i64
    }

    /// Makes the bins span `[lo, hi]` (finite), with a spare bin at each end so that rounding in
    /// the counting kernel never puts a value outside: extends, and first coarsens as often as it
    /// takes to stay within the bin limit.
    pub fn cover(&mut self, lo: f64, hi: f64) {
        // The origin is always inside, so that every bin index stays within the limit.
        let (lo, hi) = if self.counts.is_empty() {
            (lo.min(self.origin), hi.max(self.origin))
        } else {
            (lo.min(self.left()), hi.max(self.right()))
        };
        while (hi - lo) / self.width + 3.0 > self.most as f64 {
            self.coarsen();
        }
        let (from, to) = (self.index(lo) - 1, self.index(hi) + 1);
        if self.counts.is_empty() {
            self.first = from;
            self.counts = vec![0; usize::try_from(to - from + 1).expect("within the limit")];
            return;
        }
        let last = self.first + self.counts.len() as i64 - 1;
        if to > last {
            self.counts.resize(
                self.counts.len() + usize::try_from(to - last).expect("positive"),
                0,
            );
        }
        if from < self.first {
            let extra = usize::try_from(self.first - from).expect("positive");
            self.counts.splice(0..0, std::iter::repeat_n(0, extra));
            self.first = from;
        }
    }

    /// Doubles the bin width, each new bin holding the two old ones it is made of.
    fn coarsen(&mut self) {
        self.width *= 2.0;
        if self.counts.is_empty() {
            return;
        }
        let first = self.first.div_euclid(2);
        let last = (self.first + self.counts.len() as i64 - 1).div_euclid(2);
        let mut merged = vec![0; usize::try_from(last - first + 1).expect("ordered")];
        for (i, &n) in self.counts.iter().enumerate() {
            let k = (self.first + i as i64).div_euclid(2) - first;
            merged[usize::try_from(k).expect("inside")] += n;
        }
        self.first = first;
        self.counts = merged;
    }

    /// Left edge of the first bin.
    fn left(&self) -> f64 {
        self.origin + self.first as f64 * self.width
    }

    /// Right edge of the last bin.
    fn right(&self) -> f64 {
        self.origin + (self.first + self.counts.len() as i64) as f64 * self.width
    }

    /// The bins as the counting kernel takes them.
    fn bins(&self) -> Bins {
        Bins::new(self.left(), self.right(), self.counts.len())
    }

    /// Counts little-endian f32 `bytes` (at most 2³¹ values) whose finite values the grid covers,
    /// using `scratch` for the kernel's counts.
    pub fn count_f32(&mut self, bytes: &[u8], scratch: &mut Vec<u32>) {
        if self.counts.is_empty() {
            // No finite value was seen yet: only NaN and ±Inf can be here.
            self.cover(self.origin, self.origin);
        }
        let layout = self.bins();
        let whole = bytes.len() / (4 * bins::LANES) * (4 * bins::LANES);
        scratch.clear();
        scratch.resize(layout.slots(), 0);
        let specials = bins::count_f32(&bytes[..whole], &layout, scratch);
        for way in scratch.chunks_exact(layout.count + 1) {
            for (total, &n) in self.counts.iter_mut().zip(way) {
                *total += n as usize;
            }
        }
        self.nan += specials.nan as usize;
        self.pos_inf += specials.pos_inf as usize;
        self.neg_inf += specials.neg_inf as usize;
        for c in bytes[whole..].chunks_exact(4) {
            let v = f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            if v.is_nan() {
                self.nan += 1;
            } else if v.is_infinite() {
                *(if v > 0.0 {
                    &mut self.pos_inf
                } else {
                    &mut self.neg_inf
                }) += 1;
            } else if let Some(bin) = layout.of(v) {
                self.counts[bin] += 1;
            }
        }
    }

    /// Adds `other` (a grid of the same origin and first width) to this one.
    pub fn merge(&mut self, mut other: Grid) {
        while other.width < self.width {
            other.coarsen();
        }
        while self.width < other.width {
            self.coarsen();
        }
        if !other.counts.is_empty() {
            let (lo, hi) = (other.left(), other.right());
            if self.counts.is_empty() {
                self.first = other.first;
                self.counts = vec![0; other.counts.len()];
            } else {
                self.cover(lo + self.width / 2.0, hi - self.width / 2.0);
                // Covering may have coarsened this grid past the other's width.
                while other.width < self.width {
                    other.coarsen();
                }
            }
            for (i, n) in other.counts.iter().enumerate() {
                let k = other.first + i as i64 - self.first;
                self.counts[usize::try_from(k).expect("covered")] += n;
            }
        }
        self.nan += other.nan;
        self.pos_inf += other.pos_inf;
        self.neg_inf += other.neg_inf;
    }

    /// The bin width: the most a quantile read from these counts is off by.
    #[must_use]
    pub fn width(&self) -> f64 {
        self.width
    }

    /// The counts as a histogram over the grid's own bins.
    #[must_use]
    pub fn histogram(&self) -> Histogram {
        let mut h = Histogram::new(self.left(), self.right(), self.counts.len());
        h.counts.clone_from(&self.counts);
        (h.nan, h.pos_inf, h.neg_inf) = (self.nan, self.pos_inf, self.neg_inf);
        h
    }

    /// `bins` equal bins over `[lo, hi]` (the finite range), each grid bin counted in the bin its
    /// centre falls in: a value lands at most one grid bin away from its own bin.
    #[must_use]
    pub fn rebin(&self, lo: f64, hi: f64, bins: usize) -> Histogram {
        let mut h = Histogram::new(lo, hi, bins);
        for (i, &n) in self.counts.iter().enumerate().filter(|(_, n)| **n > 0) {
            let centre = self.origin + ((self.first + i as i64) as f64 + 0.5) * self.width;
            let bin = h.bin_of(centre.clamp(lo, hi)).unwrap_or(0);
            h.counts[bin] += n;
        }
        (h.nan, h.pos_inf, h.neg_inf) = (self.nan, self.pos_inf, self.neg_inf);
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn growing_and_merging_keep_every_count() {
        let mut scratch = Vec::new();
        let mut a = Grid::for_sample([0.0, 1.0].into_iter(), 8, 32);
        let first: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        a.cover(0.0, 0.99);
        a.count_f32(&bytes(&first), &mut scratch);
        // A stretch reaching 100x further: the grid coarsens, every earlier count kept.
        let second: Vec<f32> = (0..100).map(|i| -(i as f32)).chain([f32::NAN]).collect();
        a.cover(-99.0, 0.0);
        a.count_f32(&bytes(&second), &mut scratch);
        let h = a.histogram();
        assert_eq!((h.finite(), h.nan), (200, 1));
        assert!(h.lo <= -99.0 && h.hi >= 0.99 && h.counts.len() <= 32);
        // Another thread's grid, still fine, merges into the coarse one.
        let mut b = Grid::for_sample([0.0, 1.0].into_iter(), 8, 32);
        b.cover(0.5, 0.5);
        b.count_f32(&bytes(&[0.5; 17]), &mut scratch);
        a.merge(b);
        let h = a.histogram();
        assert_eq!(h.finite(), 217);
        let bin = h.bin_of(0.5).unwrap();
        assert!(h.counts[bin] >= 17);
        let shown = a.rebin(-99.0, 0.99, 10);
        assert_eq!(shown.finite(), 217);
        // -99..=-90 belong in the first of ten bins; the grid's bins (one value per unit of
        // width) may move the values of one of them across its edge.
        let moved = shown.counts[0].abs_diff(10);
        assert!(
            moved as f64 <= a.width().ceil(),
            "{:?} {}",
            shown.counts,
            a.width()
        );
    }
}
