//! Statistics and histogram throughput: paramscope's one-pass, multi-core stats against a plain
//! Rust loop, and the histogram pass against the stats pass.
//!
//! `cargo bench --bench stats`. After divan's table, one line gives both passes' bandwidth (the
//! best of ten runs each over the same 256 MiB) and their ratio: the histogram pass should keep
//! at least half the statistics pass's speed. The whole-process comparison with PyTorch on a
//! 1 GiB checkpoint is `benches/checkpoints.py` (see README).

use std::time::{Duration, Instant};

use divan::counter::BytesCount;
use divan::{Bencher, black_box};
use paramscope::tensor::DType;
use paramscope::tensor::histogram::histogram;
use paramscope::tensor::stats::stats;

/// Bins of the app's histogram of a large tensor.
const BINS: usize = 128;

fn main() {
    divan::main();
    let bytes = data();
    let numel = bytes.len() / 4;
    let best = |pass: &dyn Fn()| {
        (0..10)
            .map(|_| {
                let start = Instant::now();
                pass();
                start.elapsed()
            })
            .min()
            .unwrap_or(Duration::MAX)
    };
    let gbps = |t: Duration| bytes.len() as f64 / t.as_secs_f64() / 1e9;
    let s = stats(DType::F32, &bytes, numel).unwrap();
    let stats_time = best(&|| {
        black_box(stats(DType::F32, black_box(&bytes), numel).unwrap());
    });
    let histogram_time = best(&|| {
        let h = histogram(
            DType::F32,
            black_box(&bytes),
            numel,
            (s.min, s.max),
            BINS,
            |_| {},
        );
        black_box(h.unwrap());
    });
    println!(
        "statistics pass {:.1} GB/s, histogram pass {:.1} GB/s ({:.0}% of statistics), over {} MiB",
        gbps(stats_time),
        gbps(histogram_time),
        100.0 * stats_time.as_secs_f64() / histogram_time.as_secs_f64(),
        bytes.len() >> 20
    );
}

/// 64 Mi F32 values (256 MiB): far larger than the caches, as a weight matrix is.
fn data() -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..64 << 20)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / 16_777_216.0 - 0.5).to_le_bytes()
        })
        .collect()
}

#[divan::bench(sample_count = 10)]
fn paramscope_stats(bencher: Bencher) {
    let bytes = data();
    bencher
        .counter(BytesCount::new(bytes.len()))
        .bench(|| stats(DType::F32, black_box(&bytes), bytes.len() / 4).unwrap());
}

/// What one would write first: one thread, min/max/sum/sum of squares in f64, NaN-unaware.
#[divan::bench(sample_count = 10)]
fn plain_loop(bencher: Bencher) {
    let bytes = data();
    bencher.counter(BytesCount::new(bytes.len())).bench(|| {
        let (mut min, mut max, mut sum, mut squares) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0.0);
        for c in black_box(&bytes).chunks_exact(4) {
            let v = f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            min = min.min(v);
            max = max.max(v);
            sum += v;
            squares += v * v;
        }
        (min, max, sum, squares)
    });
}

/// The memory's read speed, for scale: two threads summing the same bytes as 64-bit words (no
/// decoding, nothing but loads and integer adds), the most a streaming pass could reach.
#[divan::bench(sample_count = 10)]
fn memory_read_two_threads(bencher: Bencher) {
    let bytes = data();
    bencher.counter(BytesCount::new(bytes.len())).bench(|| {
        let (left, right) = black_box(&bytes).split_at(bytes.len() / 2);
        let words = |half: &[u8]| {
            half.chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .fold(0u64, u64::wrapping_add)
        };
        std::thread::scope(|s| {
            let other = s.spawn(|| words(right));
            words(left).wrapping_add(other.join().expect("no panic"))
        })
    });
}

/// The app's histogram pass over the same bytes, with the range the statistics found.
#[divan::bench(sample_count = 10)]
fn paramscope_histogram(bencher: Bencher) {
    let bytes = data();
    let numel = bytes.len() / 4;
    let s = stats(DType::F32, &bytes, numel).unwrap();
    bencher.counter(BytesCount::new(bytes.len())).bench(|| {
        histogram(
            DType::F32,
            black_box(&bytes),
            numel,
            (s.min, s.max),
            BINS,
            |_| {},
        )
        .unwrap()
    });
}
