//! [`Stats`], and the moments of one chunk of values (counts, min, max and sums about a shift, in
//! f64) they are finished from, merged with Chan's formula: the f32 lane pass (its kernel is
//! `simd::moments`), the scalar f64 pass a stored value of any other dtype takes, and an exact lane
//! pass for F16 and BF16 values that gives the scalar pass's bits.

use super::DType;
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
    pub(super) fn of_f64(values: &[f64]) -> Moments {
        Moments::serial(values.iter().copied())
    }

    /// [`Moments::of_f64`] of any values, one after another.
    fn serial(values: impl Iterator<Item = f64> + Clone) -> Moments {
        let shift = values.clone().find(|v| v.is_finite()).unwrap_or(0.0);
        let mut acc = Accumulator::new(shift);
        for v in values {
            acc.add(v);
        }
        acc.finish()
    }

    /// [`Moments::of_f64`] of `values`, each a value of `dtype` (F16 or BF16), to the bit, at the
    /// f32 lanes' speed (`scratch` one chunk long).
    ///
    /// Counts, min and max are the lanes' (the same whatever the order), but for a min or max
    /// that is a zero, whose sign the scalar `f64::min` picks as it meets them: that rare chunk
    /// takes the scalar pass. The sums are the lanes' where their order cannot change them, that
    /// is while no addition rounds. Every value and the shift are whole multiples of `unit`, the
    /// dtype's spacing at the smallest nonzero magnitude among them (a larger value's spacing is
    /// a larger power of two). If the lanes' Σ(x − shift)² comes out under 2⁵³·unit², no product
    /// or partial sum of squares rounded (the first that rounded would have been at least that
    /// bound, and a sum of non-negative terms never falls back under it), so each |x − shift| is
    /// under 2^26.5·unit and, over at most 2²⁶ values, no partial Σ(x − shift) reaches 2⁵³·unit
    /// either: both sums are exact, whatever the order. Otherwise the sums are taken again one
    /// value after another, as the scalar pass takes them.
    pub(super) fn of_narrow(values: &[f32], dtype: DType, scratch: &mut [f32]) -> Moments {
        let (mut all, exact) = Moments::narrow_lanes(values, dtype, scratch);
        if all.min == 0.0 || all.max == 0.0 || values.len() > 1 << 26 {
            return Moments::serial(values.iter().map(|&v| f64::from(v)));
        }
        if !exact {
            let blocks = values.len() / LANES * LANES;
            // The blocks' non-finite values are the shift in the scratch: each adds a zero, as
            // the scalar pass adds one.
            let cleaned = scratch[..blocks].iter().copied();
            let tail = values[blocks..]
                .iter()
                .map(|&v| if v.is_finite() { v } else { all.shift as f32 });
            (all.sum, all.squares) = (0.0, 0.0);
            for v in cleaned.chain(tail) {
                let d = f64::from(v) - all.shift;
                all.sum += d;
                all.squares += d * d;
            }
        }
        all.finish()
    }

    /// The lanes' sums over `values` about their first finite value (the scratch left holding
    /// their whole blocks, each non-finite value made the shift), and whether those sums are
    /// exact (see [`Moments::of_narrow`]).
    fn narrow_lanes(values: &[f32], dtype: DType, scratch: &mut [f32]) -> (Accumulator, bool) {
        let shift = values
            .iter()
            .copied()
            .find(|v| v.is_finite())
            .unwrap_or(0.0);
        let blocks = values.len() / LANES * LANES;
        let (whole, tail) = values.split_at(blocks);
        let mut all =
            Accumulator::of_lanes(shift, blocks, moments::chunk_sums(whole, scratch, shift));
        for &v in tail {
            all.add(f64::from(v));
        }
        let finite_tail = tail.iter().copied().filter(|v| v.is_finite());
        let tiniest = moments::tiniest(&scratch[..blocks]).min(
            finite_tail
                .map(f32::abs)
                .filter(|&a| a > 0.0)
                .fold(f32::INFINITY, f32::min),
        );
        let exact = tiniest == f32::INFINITY || all.squares < exact_bound(dtype, tiniest);
        (all, exact)
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
    pub(super) fn of_f32(values: &[f32], scratch: &mut [f32]) -> Moments {
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
        let lanes =
            Accumulator::of_lanes(shift, blocks, moments::chunk_sums(whole, scratch, shift));
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

/// 2⁵³·unit², `unit` the spacing of `dtype` (F16 or BF16) at `tiniest` (a finite nonzero
/// magnitude of that dtype): the bound under which [`Moments::of_narrow`]'s sums are exact.
fn exact_bound(dtype: DType, tiniest: f32) -> f64 {
    // Mantissa bits and the least normal exponent.
    let (bits, least) = if dtype == DType::F16 {
        (10, -14)
    } else {
        (7, -126)
    };
    // The exponent of `tiniest` (an f32 subnormal, only a BF16 one, counts as 2^-127).
    let exponent = ((tiniest.to_bits() >> 23) & 0xff) as i32 - 127;
    let unit = exponent.max(least) - bits;
    // 2^(53 + 2·unit), at least 2^-213: a normal f64, made from its bits.
    f64::from_bits(((53 + 2 * unit + 1023) as u64) << 52)
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
    /// The accumulator the SIMD micro-kernel's sums of `values` whole lane blocks stand for, about
    /// `shift`.
    fn of_lanes(shift: f32, values: usize, s: moments::ChunkSums) -> Self {
        Self {
            shift: f64::from(shift),
            count: f64::from(s.finite),
            sum: s.sum,
            squares: s.squares,
            min: f64::from(s.min),
            max: f64::from(s.max),
            zeros: f64::from(s.zeros),
            nan: f64::from(s.nan),
            inf: f64::from(values as u32 - s.finite - s.nan),
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field's bits.
    fn bits(m: Moments) -> [u64; 8] {
        [
            m.count as u64,
            m.mean.to_bits(),
            m.m2.to_bits(),
            m.min.to_bits(),
            m.max.to_bits(),
            m.zeros as u64,
            m.nan as u64,
            m.inf as u64,
        ]
    }

    /// A xorshift stream: the same values on every run.
    fn stream(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// Chunks of `dtype`'s values (as `narrow` rounds f32 to it): weights of one scale, of many
    /// scales, with NaN and ±Inf, subnormals beside large values, ±0 with positives only, and
    /// lengths with a ragged tail.
    fn chunks(narrow: fn(f32) -> f32) -> Vec<Vec<f32>> {
        let mut next = stream(0x9e37_79b9_7f4a_7c15);
        let mut unit = move || (next() >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0;
        let mut out = Vec::new();
        for (len, scale) in [
            (4096, 0.02),
            (4099, 1.0),
            (4096, 3e3),
            (37, 0.1),
            (16, 1e-3),
        ] {
            out.push((0..len).map(|_| narrow(unit() * scale)).collect::<Vec<_>>());
        }
        // Each group of 128 its own scale, from 1e-6 to 1e-2, as GPTQ's groups have.
        let scales: Vec<f32> = (0..32).map(|_| 10f32.powf(unit() * 2.0 - 4.0)).collect();
        out.push(
            (0..4096)
                .map(|i| narrow(unit() * scales[i / 128]))
                .collect(),
        );
        let mut special = out[0].clone();
        special[3] = f32::NAN;
        special[100] = f32::INFINITY;
        special[4095] = f32::NEG_INFINITY;
        out.push(special);
        // The smallest subnormal beside the largest value: the lanes cannot be exact.
        let mut wide = out[0].clone();
        wide[7] = narrow(f32::MAX);
        wide[9] = narrow(1e-45);
        out.push(wide);
        // Zeros of both signs and positives: the min is a zero, whose sign the scalar pass picks.
        out.push((0..4096).map(|i| [0.0, -0.0, 0.5][i % 3]).collect());
        out.push(vec![f32::NAN; 40]);
        out.push(Vec::new());
        out
    }

    #[test]
    fn narrow_chunks_give_the_scalar_passs_bits() {
        let mut scratch = vec![0f32; 8192];
        let f16 = |v: f32| half::f16::from_f32(v).to_f32();
        let bf16 = |v: f32| half::bf16::from_f32(v).to_f32();
        for (dtype, narrow) in [(DType::F16, f16 as fn(f32) -> f32), (DType::BF16, bf16)] {
            let mut exact = 0;
            for chunk in chunks(narrow) {
                let want = bits(Moments::serial(chunk.iter().map(|&v| f64::from(v))));
                exact += usize::from(Moments::narrow_lanes(&chunk, dtype, &mut scratch).1);
                let got = Moments::of_narrow(&chunk, dtype, &mut scratch);
                assert_eq!(bits(got), want, "{dtype}, {} values", chunk.len());
            }
            // Weights of one scale take the lanes' sums (with NaN and Inf among them too); the
            // chunk of the largest and the smallest values does not.
            assert!(exact >= 5, "{dtype}: {exact} chunks' sums were exact");
            assert!(exact < 11, "{dtype}: every chunk's sums were exact");
        }
    }

    #[test]
    fn the_bound_is_two_to_the_53_spacings_squared() {
        // F16: 1.0's spacing is 2^-10; anything under 2^-14 has the subnormals' 2^-24.
        assert_eq!(exact_bound(DType::F16, 1.0), 2f64.powi(53 - 20));
        assert_eq!(exact_bound(DType::F16, 1.5e-7), 2f64.powi(53 - 48));
        assert_eq!(exact_bound(DType::F16, 6e-5), 2f64.powi(53 - 48));
        // BF16: 2^-7 at 1.0, 2^-133 for its subnormals (f32's).
        assert_eq!(exact_bound(DType::BF16, 1.0), 2f64.powi(53 - 14));
        assert_eq!(exact_bound(DType::BF16, 1e-40), 2f64.powi(53 - 266));
    }
}
