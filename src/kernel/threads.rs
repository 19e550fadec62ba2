//! Threads: how many a product gets, and running its parts on scoped threads.
//!
//! `PARAMSCOPE_THREADS=N` caps the count (1 = single-threaded); it is read once. The default is
//! the machine's available parallelism. Plain `std::thread::scope` rather than a pool such as
//! rayon: a product splits into at most as many parts as there are cores, each a whole blocked
//! product, so there is nothing for work stealing to balance, and a spawn (~20 µs) is small next
//! to the work a part must have before we split at all.

use std::sync::OnceLock;
use std::thread;

use ndarray::{ArrayViewMut2, Axis};

/// Multiply-adds a part must have to be worth a thread: about 20 µs of a core's work, the cost of
/// spawning and joining one.
const MIN_WORK_PER_THREAD: usize = 1 << 21;

/// The cap on threads: `PARAMSCOPE_THREADS` if set to a positive number, else the cores available.
pub(crate) fn max_threads() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        std::env::var("PARAMSCOPE_THREADS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| thread::available_parallelism().map_or(1, usize::from))
    })
}

/// Threads worth using for `work` multiply-adds that can be cut into at most `units` parts.
pub(crate) fn count(work: usize, units: usize) -> usize {
    max_threads()
        .min(work / MIN_WORK_PER_THREAD)
        .min(units)
        .max(1)
}

/// Cuts `c` along `axis` into `parts` pieces whose lengths are multiples of `unit` (the last takes
/// the rest), each with its offset along the axis.
pub(crate) fn split(
    c: ArrayViewMut2<f32>,
    axis: Axis,
    parts: usize,
    unit: usize,
) -> Vec<(usize, ArrayViewMut2<f32>)> {
    let len = c.len_of(axis);
    let step = len.div_ceil(parts).next_multiple_of(unit);
    let mut pieces = Vec::with_capacity(parts);
    let mut rest = c;
    let mut start = 0;
    while rest.len_of(axis) > step {
        let (head, tail) = rest.split_at(axis, step);
        pieces.push((start, head));
        start += step;
        rest = tail;
    }
    pieces.push((start, rest));
    pieces
}

/// Runs `work` on every part: the first on the calling thread, the others on scoped threads.
pub(crate) fn run<P: Send>(parts: Vec<P>, work: impl Fn(P) + Sync) {
    let mut parts = parts.into_iter();
    let Some(first) = parts.next() else { return };
    thread::scope(|scope| {
        for part in parts {
            scope.spawn(|| work(part));
        }
        work(first);
    });
}
