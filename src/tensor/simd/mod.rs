//! The SIMD kernels of the statistics and histogram passes, of the quantized dequantization, of `diff`'s paired pass, and of a forward pass's element-wise
//! maths, compiled for AVX-512 and AVX2 as well as the baseline and chosen at run time from the
//! CPU's features, detected once.
//!
//! Each kernel is one body written in lanes (selects instead of branches) and always inlined into
//! wrappers carrying `#[target_feature]`, so the compiler vectorizes the same code for each
//! instruction set; every path gives the same bits. `unsafe` here is only the calls into those
//! wrappers, each after the feature check, and one explicit AVX-512 loop.
#![expect(
    unsafe_code,
    reason = "calling code compiled for an instruction set needs the CPU feature checked first"
)]

pub mod bins;
// `per_level!`, the wrappers compiled per instruction set, is defined there.
#[macro_use]
pub mod math;
pub mod dequant;
pub mod moments;
pub mod pairs;

use std::sync::OnceLock;

/// The widest instruction set this CPU runs that the kernels are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// x86-64 with AVX-512F.
    Avx512,
    /// x86-64 with AVX2.
    Avx2,
    /// Whatever the binary was compiled for.
    Baseline,
}

/// The CPU's level, detected on first use.
fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return Level::Avx512;
            }
            if is_x86_feature_detected!("avx2") {
                return Level::Avx2;
            }
        }
        Level::Baseline
    })
}
