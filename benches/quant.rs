//! Quantized GEMV, 1 x 4096 x 4096 (Q4_0, Q4_1, Q8_0, Q4_K), in GB/s of weight read, next to the
//! machine's copy bandwidth and paramscope's own F32 GEMV of the same shape; numpy's F32 GEMV comes
//! from `benches/quant_numpy.py` in the same run (README, "GGUF", has the command). Then the same
//! weights against 32 activation rows (a prompt), F32 and each type, in GFLOP/s.
//!
//! Threads come from `PARAMSCOPE_THREADS`, as for every product.

use std::hint::black_box;
use std::time::Instant;

use ndarray::Array2;
use paramscope::kernel::quant::{self, Fused, QuantMatrix};
use paramscope::kernel::{Epilogue, PackedWeight, linear_packed};
use paramscope::tensor::ggml::Quant;

const N: usize = 4096;
const K: usize = 4096;
/// Activation rows of the prompt product: a 32-token prompt.
const PROMPT: usize = 32;

/// The median seconds of `f` over `runs` runs, after two warm-ups.
fn median(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    f();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

fn main() {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let x: Vec<f32> = (0..K)
        .map(|_| (next() % 1000) as f32 / 1000.0 - 0.5)
        .collect();

    // Copy bandwidth: 256 MiB, far past the caches, counted once (the bytes read).
    let big = vec![1u8; 256 << 20];
    let mut dst = vec![0u8; 256 << 20];
    let t = median(5, || {
        dst.copy_from_slice(black_box(&big));
        black_box(&dst);
    });
    let copy = big.len() as f64 / t / 1e9;
    println!("copy 256 MiB: {copy:.1} GB/s read (plus as much written)");

    let w: Vec<f32> = (0..N * K)
        .map(|_| (next() % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let packed = PackedWeight::new(Array2::from_shape_vec((N, K), w).unwrap().view());
    let mut y = vec![0f32; N];
    let t = median(30, || {
        linear_packed(&x, 1, &packed, &mut y, Epilogue::default());
        black_box(&y);
    });
    let bytes = (N * K * 4) as f64;
    println!(
        "F32 GEMV (paramscope):  {:8.3} ms  {:6.1} GB/s",
        t * 1e3,
        bytes / t / 1e9
    );
    let xs: Vec<f32> = (0..PROMPT * K)
        .map(|i| x[i % K] * (1.0 + (i / K) as f32 / 64.0))
        .collect();
    let mut ys = vec![0f32; PROMPT * N];
    let t = median(10, || {
        linear_packed(&xs, PROMPT, &packed, &mut ys, Epilogue::default());
        black_box(&ys);
    });
    println!(
        "F32 {PROMPT} rows (paramscope): {:8.3} ms  {:6.1} GFLOP/s",
        t * 1e3,
        (2 * PROMPT * N * K) as f64 / t / 1e9
    );

    for (quant, fused, scales) in [
        (Quant::Q4_0, Fused::Q4_0, &[0usize][..]),
        (Quant::Q4_1, Fused::Q4_1, &[0, 2][..]),
        (Quant::Q8_0, Fused::Q8_0, &[0][..]),
        (Quant::Q4_K, Fused::Q4_K, &[0, 2][..]),
    ] {
        let mut bytes: Vec<u8> = (0..N * K / quant.block_size() * quant.type_size())
            .map(|_| next() as u8)
            .collect();
        for block in bytes.chunks_exact_mut(quant.type_size()) {
            for &at in scales {
                block[at..at + 2].copy_from_slice(&half::f16::from_f32(0.01).to_le_bytes());
            }
        }
        let decode = |b: &[u8], out: &mut Vec<f32>| quant.dequantize_range(b, 0, usize::MAX, out);
        let matrix = QuantMatrix {
            bytes: &bytes,
            out_features: N,
            in_features: K,
            block_values: quant.block_size(),
            fused: Some(fused),
            decode: &decode,
        };
        let t = median(30, || {
            quant::linear(&x, 1, &matrix, &mut y, None);
            black_box(&y);
        });
        println!(
            "{quant} GEMV (paramscope): {:8.3} ms  {:6.1} GB/s of weight",
            t * 1e3,
            bytes.len() as f64 / t / 1e9
        );
        let t = median(10, || {
            quant::linear(&xs, PROMPT, &matrix, &mut ys, None);
            black_box(&ys);
        });
        println!(
            "{quant} {PROMPT} rows (paramscope): {:8.3} ms  {:6.1} GFLOP/s",
            t * 1e3,
            (2 * PROMPT * N * K) as f64 / t / 1e9
        );
    }
}
