//! Statistics and histogram throughput: paramscope's one-pass, multi-core stats against a plain
//! Rust loop, and the histogram pass against the stats pass.
//!
//! `cargo bench --bench stats`. After divan's table, one line gives both passes' bandwidth (the
//! best of ten runs each over the same 256 MiB) and their ratio: the histogram pass should keep
//! at least half the statistics pass's speed. A last line times the app's statistics of a 1 GiB
//! F32 tensor (the worker's own call: statistics, histogram and quantiles in one read) against
//! `paramscope show` of it as a whole process. The whole-process comparison with PyTorch on a
//! 1 GiB checkpoint is `benches/checkpoints.py` (see README).

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use divan::counter::BytesCount;
use divan::{Bencher, black_box};
use paramscope::app::summary::summarize;
use paramscope::checkpoint::{self, LoadOptions};
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
    drop(bytes);
    app_against_show();
}

/// The app's statistics of a 1 GiB F32 tensor against `show`'s, each the best of five with the
/// file in the page cache. The app's time is the worker's `summarize` of a tensor freshly opened
/// (a new mapping each round, so its pages fault in as the app's first look at it does); `show`'s
/// is the whole process. The target (issue 19): at most 1.5x `show` + 0.15 s.
fn app_against_show() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("one.safetensors");
    write_one_tensor(&path, 16384, 16384);
    let file = path.to_str().expect("a UTF-8 temp path");
    let best = |round: &mut dyn FnMut() -> Duration| {
        (0..5).map(|_| round()).min().unwrap_or(Duration::MAX)
    };
    let show = best(&mut || {
        let start = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_paramscope"))
            .args(["show", file, "w"])
            .output()
            .expect("paramscope runs");
        let time = start.elapsed();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        time
    });
    let app = best(&mut || {
        let loaded = checkpoint::open(file, &LoadOptions::default()).expect("the file opens");
        let (_, id) = loaded.model.find_param("w").expect("its one tensor");
        let tensor = loaded.model.store.get(id);
        let start = Instant::now();
        black_box(summarize(tensor, &mut |_| {}).expect("F32 decodes"));
        start.elapsed()
    });
    let (app, show) = (app.as_secs_f64(), show.as_secs_f64());
    println!(
        "app statistics of a 1 GiB F32 tensor {app:.3} s, show (whole process) {show:.3} s: \
         {:.2}x show, target at most 1.5x show + 0.15 s = {:.3} s ({})",
        app / show,
        1.5 * show + 0.15,
        if app <= 1.5 * show + 0.15 {
            "met"
        } else {
            "missed"
        }
    );
}

/// A safetensors file of one F32 tensor `w`, rows×cols, of weight-like values: near-normal (a sum
/// of four uniforms) with one value in a million 50 times out, so the app's histogram grows its
/// range while it counts, as it does on real weights.
fn write_one_tensor(path: &Path, rows: usize, cols: usize) {
    let numel = rows * cols;
    let mut header = format!(
        r#"{{"w":{{"dtype":"F32","shape":[{rows},{cols}],"data_offsets":[0,{}]}}}}"#,
        numel * 4
    );
    // Padded with spaces to 8 bytes, as safetensors writes it, so the data is aligned.
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("a temp file"));
    out.write_all(&(header.len() as u64).to_le_bytes())
        .expect("written");
    out.write_all(header.as_bytes()).expect("written");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut uniform = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / 16_777_216.0 - 0.5
    };
    let mut row = Vec::with_capacity(cols * 4);
    for r in 0..rows {
        row.clear();
        for c in 0..cols {
            let v = (uniform() + uniform() + uniform() + uniform()) * 0.02;
            let v = if (r * cols + c).is_multiple_of(1_000_003) {
                v * 50.0
            } else {
                v
            };
            row.extend_from_slice(&v.to_le_bytes());
        }
        out.write_all(&row).expect("written");
    }
    out.flush().expect("written");
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
