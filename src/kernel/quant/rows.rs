//! The loops over a quantized weight's rows, chosen at run time for the CPU: decode rows into
//! f32, or dot each row with one activation vector, block by block, without writing the row out.
//! AVX-512 has them written out (avx512.rs); elsewhere the decoders of blocks.rs are compiled
//! once for AVX2 with FMA and F16C and once plain, and LLVM vectorizes them.

#![expect(
    clippy::inline_always,
    reason = "the loops must inline into the #[target_feature] wrapper to get its SIMD"
)]

use std::sync::OnceLock;

use super::Fused;
#[cfg(target_arch = "x86_64")]
use super::avx512;
#[cfg(target_arch = "x86_64")]
use super::blocks::F16c;
use super::blocks::{Arithmetic, Block, Q4_0, Q4_1, Q4_K, Q6_K, Q8_0, Widen};

/// One call's work.
pub(super) enum Job<'a> {
    /// Decode the whole blocks of `bytes` into `out` (as many values as they hold).
    Decode { bytes: &'a [u8], out: &'a mut [f32] },
    /// `out[o] = row o · x` for the rows of `row_bytes` bytes in `bytes`.
    Dot {
        bytes: &'a [u8],
        row_bytes: usize,
        x: &'a [f32],
        out: &'a mut [f32],
    },
}

/// The instruction sets the loops are compiled for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Isa {
    Avx512,
    Avx2,
    Plain,
}

fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            let f16c = is_x86_feature_detected!("f16c");
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("fma")
                && f16c
            {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && f16c {
                return Isa::Avx2;
            }
        }
        Isa::Plain
    })
}

/// Runs `job` for blocks of type `fused`, on the best instruction set the CPU has.
pub(super) fn run(fused: Fused, job: Job<'_>) {
    match isa() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => match job {
            Job::Dot {
                bytes,
                row_bytes,
                x,
                out,
            } => {
                // SAFETY: `isa` found AVX-512F, BW, FMA and F16C on this CPU.
                unsafe { avx512::dot_rows(fused, bytes, row_bytes, x, out) }
            }
            // SAFETY: as above.
            Job::Decode { bytes, out } => unsafe { avx512::decode(fused, bytes, out) },
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` found AVX2, FMA and F16C on this CPU.
        Isa::Avx2 => unsafe { run_avx2(fused, job) },
        _ => run_typed::<Arithmetic>(fused, job),
    }
}

/// `out[o] = w row o · x` for f32 rows of `x.len()` values: the dot for the types without a
/// decoder here, once the caller has decoded their rows.
pub(super) fn dot_floats(w: &[f32], x: &[f32], out: &mut [f32]) {
    match isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `run`.
        Isa::Avx512 => unsafe { dot_floats_avx512(w, x, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `run`.
        Isa::Avx2 => unsafe { dot_floats_avx2(w, x, out) },
        _ => dot_floats_impl(w, x, out),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn run_avx2(fused: Fused, job: Job<'_>) {
    run_typed::<F16c>(fused, job);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
fn dot_floats_avx512(w: &[f32], x: &[f32], out: &mut [f32]) {
    dot_floats_impl(w, x, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_floats_avx2(w: &[f32], x: &[f32], out: &mut [f32]) {
    dot_floats_impl(w, x, out);
}

#[inline(always)]
fn run_typed<W: Widen>(fused: Fused, job: Job<'_>) {
    match fused {
        Fused::Q4_0 => run_block::<Q4_0, W>(job),
        Fused::Q4_1 => run_block::<Q4_1, W>(job),
        Fused::Q8_0 => run_block::<Q8_0, W>(job),
        Fused::Q4_K => run_block::<Q4_K, W>(job),
        Fused::Q6_K => run_block::<Q6_K, W>(job),
    }
}

/// Lanes of the accumulators: two AVX-512 registers (four AVX2 ones), so that the additions of
/// one row run as independent chains.
const LANES: usize = 32;

#[inline(always)]
fn run_block<B: Block, W: Widen>(job: Job<'_>) {
    match job {
        Job::Decode { bytes, out } => {
            for (block, values) in bytes
                .chunks_exact(B::BYTES)
                .zip(out.chunks_exact_mut(B::VALUES))
            {
                B::decode::<W>(block, values);
            }
        }
        Job::Dot {
            bytes,
            row_bytes,
            x,
            out,
        } => {
            // Every block type holds a multiple of LANES values (32 or 256).
            let mut values = [0f32; 256];
            for (y, row) in out.iter_mut().zip(bytes.chunks_exact(row_bytes.max(1))) {
                let mut acc = [0f32; LANES];
                for (block, xs) in row.chunks_exact(B::BYTES).zip(x.chunks_exact(B::VALUES)) {
                    B::decode::<W>(block, &mut values);
                    for (ws, xs) in values[..B::VALUES]
                        .chunks_exact(LANES)
                        .zip(xs.chunks_exact(LANES))
                    {
                        for l in 0..LANES {
                            acc[l] += ws[l] * xs[l];
                        }
                    }
                }
                *y = reduce(&mut acc);
            }
        }
    }
}

#[inline(always)]
fn dot_floats_impl(w: &[f32], x: &[f32], out: &mut [f32]) {
    let k = x.len();
    let whole = k / LANES * LANES;
    for (y, row) in out.iter_mut().zip(w.chunks_exact(k.max(1))) {
        let mut acc = [0f32; LANES];
        for (ws, xs) in row[..whole]
            .chunks_exact(LANES)
            .zip(x[..whole].chunks_exact(LANES))
        {
            for l in 0..LANES {
                acc[l] += ws[l] * xs[l];
            }
        }
        let tail: f32 = row[whole..]
            .iter()
            .zip(&x[whole..])
            .map(|(a, b)| a * b)
            .sum();
        *y = reduce(&mut acc) + tail;
    }
}

/// The sum of the lanes, halving the width each step: lane-parallel additions, where a plain
/// left-to-right sum would be a chain of 32 dependent ones per row.
#[inline(always)]
fn reduce(acc: &mut [f32; LANES]) -> f32 {
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            acc[l] += acc[l + width];
        }
    }
    acc[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random blocks of `fused` (scales random too: NaN and Inf included), `count` of them.
    fn random_blocks(fused: Fused, count: usize, seed: u64) -> (Vec<u8>, usize) {
        let (bytes, values) = super::super::blocks::shape(fused);
        let mut state = seed;
        let data = (0..bytes * count)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[3]
            })
            .collect();
        (data, values * count)
    }

    #[test]
    fn every_instruction_set_decodes_the_same_bits() {
        // The plain decoders are checked against the tensor layer's in tests/gguf_quant.rs
        // through whichever set this CPU picks; here every set this CPU has is checked against
        // them, so a machine with AVX-512 still tests the AVX2 build and the other way round.
        for fused in [
            Fused::Q4_0,
            Fused::Q4_1,
            Fused::Q8_0,
            Fused::Q4_K,
            Fused::Q6_K,
        ] {
            let (bytes, values) = random_blocks(fused, 24, 0x5eed_0000 + fused as u64);
            let mut plain = vec![0f32; values];
            run_typed::<Arithmetic>(
                fused,
                Job::Decode {
                    bytes: &bytes,
                    out: &mut plain,
                },
            );
            let mut best = vec![0f32; values];
            run(
                fused,
                Job::Decode {
                    bytes: &bytes,
                    out: &mut best,
                },
            );
            #[cfg(target_arch = "x86_64")]
            let avx2 = (is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c"))
            .then(|| {
                let mut out = vec![0f32; values];
                // SAFETY: the features were just found on this CPU.
                unsafe {
                    run_avx2(
                        fused,
                        Job::Decode {
                            bytes: &bytes,
                            out: &mut out,
                        },
                    );
                }
                out
            });
            #[cfg(not(target_arch = "x86_64"))]
            let avx2: Option<Vec<f32>> = None;
            for (name, got) in [("best", Some(best)), ("avx2", avx2)] {
                let Some(got) = got else { continue };
                for (i, (a, b)) in plain.iter().zip(&got).enumerate() {
                    assert!(
                        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                        "{fused:?} {name} value {i}: {b} against {a}"
                    );
                }
            }
        }
    }
}
