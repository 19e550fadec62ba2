//! Massive activations (Sun et al., 2024): at each `hidden_states` boundary before the final norm,
//! text 0's three largest magnitudes with their (token, channel), and the median magnitude; a
//! boundary is flagged where the largest is above [`FLOOR`] and [`RATIO`] times the median.

use super::Probe;
use crate::families::predict::offer;

/// The magnitude a massive activation exceeds.
pub const FLOOR: f64 = 100.0;
/// How many times the median a massive activation exceeds.
pub const RATIO: f64 = 1000.0;
/// How many of the largest are listed.
const TOP: usize = 3;

/// One large activation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    /// `|value|`.
    pub value: f32,
    /// Its position in text 0.
    pub token: usize,
    /// Its channel.
    pub channel: usize,
}

/// One boundary's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Massive {
    /// `l` of `hidden_states[l]`.
    pub layer: usize,
    /// The module whose output it is.
    pub path: String,
    /// The largest magnitudes, largest first (equal ones in C order, as numpy's stable argsort).
    pub top: Vec<Peak>,
    /// The median magnitude (the mean of the middle two of an even count, as numpy's).
    pub median: f64,
    /// Whether the largest is massive.
    pub flagged: bool,
}

/// The figures at every boundary `probe` kept.
#[must_use]
pub fn massive(probe: &Probe) -> Vec<Massive> {
    let rows = (probe.lens.len() * probe.len).max(1);
    let n = probe.first_len();
    probe
        .residuals
        .iter()
        .enumerate()
        .map(|(layer, r)| {
            let width = (r.values.len() / rows).max(1);
            let mut magnitudes: Vec<f32> = r.values[..n * width].iter().map(|v| v.abs()).collect();
            let top: Vec<Peak> = largest(&magnitudes)
                .into_iter()
                .map(|(value, i)| Peak {
                    value,
                    token: i / width,
                    channel: i % width,
                })
                .collect();
            let median = median(&mut magnitudes);
            let largest = top.first().map_or(0.0, |p| f64::from(p.value));
            Massive {
                layer,
                path: r.path.clone(),
                top,
                median,
                flagged: largest > FLOOR && largest > RATIO * median,
            }
        })
        .collect()
}

/// The [`TOP`] largest of `x` with their indices, largest first, equal ones in index order (as
/// numpy's stable argsort): one pass keeping the best so far, not an ordered index of them all.
fn largest(x: &[f32]) -> Vec<(f32, usize)> {
    let mut best = Vec::with_capacity(TOP + 1);
    for (i, &v) in x.iter().enumerate() {
        offer(&mut best, TOP, v, i);
    }
    best
}

/// numpy's median: the middle value, or the mean of the middle two (reordering `x`).
fn median(x: &mut [f32]) -> f64 {
    if x.is_empty() {
        return f64::NAN;
    }
    let (mid, odd) = (x.len() / 2, x.len() % 2 == 1);
    let (low, m, _) = x.select_nth_unstable_by(mid, f32::total_cmp);
    let m = f64::from(*m);
    if odd {
        return m;
    }
    let below = low.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    f64::midpoint(f64::from(below), m)
}

#[cfg(test)]
mod tests {
    use super::{largest, median};

    #[test]
    fn the_largest_come_first_and_equal_ones_in_index_order() {
        assert_eq!(
            largest(&[1.0, 5.0, 3.0, 5.0, 0.5]),
            [(5.0, 1), (5.0, 3), (3.0, 2)]
        );
        assert_eq!(largest(&[2.0]), [(2.0, 0)]);
    }

    #[test]
    fn median_as_numpy() {
        assert!((median(&mut [3.0, 1.0, 2.0]) - 2.0).abs() < 1e-12);
        assert!((median(&mut [4.0, 1.0, 3.0, 2.0]) - 2.5).abs() < 1e-12);
        assert!(median(&mut []).is_nan());
    }
}
