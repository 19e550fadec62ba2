//! Splitting a pass over a tensor's elements across the machine's cores: the one helper the
//! statistics and histogram passes share.
//!
//! A pass takes whole chunks per thread, so every part starts on a chunk boundary; the calling
//! thread works on the first part and alone reports progress, for all parts. Scoped threads rather
//! than the kernel's pool: a pass over a large tensor runs for milliseconds to seconds, so the
//! ~20 µs of a spawn is noise, and the pool is the matrix products'.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Below this many bytes a second thread costs more than it saves.
const PARALLEL_BYTES: usize = 8 << 20;

/// The cap on threads, shared with the matrix products: every core available, or fewer if
/// `PARAMSCOPE_THREADS` asks for fewer.
#[must_use]
pub fn max_threads() -> usize {
    crate::kernel::max_threads()
}

/// How far a pass has got, summed over all its threads.
pub struct Progress<'a> {
    done: &'a AtomicUsize,
    /// Told the total after each report; only the calling thread's part has one.
    report: Option<&'a mut dyn FnMut(usize)>,
}

impl Progress<'_> {
    /// Adds `n` to what is done, telling the total to the caller's callback on its own thread.
    pub fn add(&mut self, n: usize) {
        let total = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(report) = &mut self.report {
            report(total);
        }
    }
}

/// Runs `part` over elements `0..numel` split into at most one part per thread (one part below
/// 8 MiB of `bytes`), each part whole `chunk`s but the last, and returns the parts' results in
/// order. `part` reports its work through [`Progress::add`]; `progress` hears the running total
/// on the calling thread.
///
/// # Panics
/// When a part panics (the panic is passed on).
pub fn split<T: Send>(
    numel: usize,
    bytes: usize,
    chunk: usize,
    part: &(dyn Fn(Range<usize>, &mut Progress) -> T + Sync),
    progress: &mut dyn FnMut(usize),
) -> Vec<T> {
    let threads = if bytes < PARALLEL_BYTES {
        1
    } else {
        max_threads()
    };
    let per_thread = numel.div_ceil(threads).div_ceil(chunk).max(1) * chunk;
    let done = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let done = &done;
        // A range whose thread cannot be started (a process at its thread limit) is done on this
        // thread after its own, so the work falls back to fewer threads instead of failing.
        let others: Vec<_> = (per_thread..numel)
            .step_by(per_thread)
            .map(|first| {
                let range = first..(first + per_thread).min(numel);
                std::thread::Builder::new()
                    .spawn_scoped(scope, {
                        let range = range.clone();
                        move || part(range, &mut Progress { done, report: None })
                    })
                    .map_err(|_| range)
            })
            .collect();
        let mut own = Progress {
            done,
            report: Some(progress),
        };
        let mut results = vec![part(0..per_thread.min(numel), &mut own)];
        results.extend(others.into_iter().map(|started| {
            match started {
                Ok(handle) => handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(range) => part(range, &mut Progress { done, report: None }),
            }
        }));
        results
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_tile_the_elements_on_chunk_boundaries() {
        for (numel, bytes) in [(0, 0), (5, 20), (10_000, 40_000), (3_000_001, 12_000_004)] {
            let mut last = 0;
            let parts = split(
                numel,
                bytes,
                4096,
                &|range, progress| {
                    progress.add(range.len());
                    range
                },
                &mut |total| {
                    assert!(total >= last);
                    last = total;
                },
            );
            assert_eq!(parts[0].start, 0);
            for pair in parts.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
                assert!(pair[0].end.is_multiple_of(4096));
            }
            assert_eq!(parts.last().unwrap().end, numel);
            assert!(parts.len() <= max_threads().max(1));
            assert!(last <= numel && (parts.len() > 1 || last == numel));
        }
    }
}
