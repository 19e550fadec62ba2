//! Vectorized element-wise and row-wise maths for a transformer's forward pass: exp, softmax (and
//! its denominator alone), GELU (exact and tanh), SiLU, LayerNorm and RMSNorm, in f32.
//!
//! Each body is written in lanes, branch-free (selects instead of branches, per-lane accumulators
//! instead of one running sum), so the compiler vectorizes it for each instruction set it is
//! compiled for; the scalar `f32::exp` and friends are calls LLVM cannot vectorize, and a softmax
//! or GELU over a batch of 8 × 128 tokens makes millions of them.
//!
//! The exponential is a Cephes-style reduction `exp(x) = 2ⁿ·exp(r)`, |r| ≤ ln2/2, with a degree-6
//! polynomial for `exp(r)`: within 2 ulp of the exact value from the normal range's bottom up to
//! 88.37; 0 below (where the exact value is subnormal, < 1.2e-38); +∞ above `ln(f32::MAX)`; NaN
//! stays NaN. Between 88.376 and `ln(f32::MAX)` it returns `exp(88.376)`, at most 0.4% low: a
//! softmax never gets there (its exponents are ≤ 0), SiLU and the GELUs only saturate there.

use super::{Level, level};

/// Independent accumulators per lane: 16 f32 lanes fill one AVX-512 register.
const LANES: usize = 16;

/// `1.5·2²³`: adding it rounds an f32 below 2²² to an integer, kept in the low mantissa bits.
const ROUND: f32 = 12_582_912.0;
/// Below this `exp` is subnormal in f32 (`ln 2⁻¹²⁶`): the result is 0.
const EXP_LOW: f32 = -87.336_54;
/// Inputs are clamped here so that `n ≤ 127` (`127.5·ln 2`, rounded down).
const EXP_CLAMP: f32 = 88.376;
/// Above `ln(f32::MAX)` the result is +∞.
const EXP_HIGH: f32 = 88.722_84;

/// `exp(x)` in lanes (see the module's note on accuracy).
#[expect(
    clippy::inline_always,
    reason = "it must inline into each loop to vectorize with it"
)]
#[inline(always)]
fn exp_lane(x: f32) -> f32 {
    let c = if x > EXP_CLAMP { EXP_CLAMP } else { x };
    let c = if c < EXP_LOW { EXP_LOW } else { c };
    let t = c * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    // ln 2 split in two so that n·ln2 is exact in its first part.
    let r = c - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // t's low mantissa bits hold n (two's complement): 2ⁿ is (n + 127) in the exponent field.
    let scale = f32::from_bits(
        t.to_bits()
            .wrapping_add(127)
            .wrapping_sub(ROUND.to_bits())
            .wrapping_shl(23),
    );
    let e = y * scale;
    let e = if x < EXP_LOW { 0.0 } else { e };
    if x > EXP_HIGH { f32::INFINITY } else { e }
}

/// The error function in lanes, to about 4e-7 absolute: Eigen's rational approximation
/// `x·P(x²)/Q(x²)` on x clamped to [-4, 4] (beyond which erf is ±1 in f32), and ±1 exactly from
/// there on, so that GELU's `1 + erf` is exactly 0 far left. It replaced Numerical Recipes'
/// `erfcc` (`t·exp(-z² + P(t))`, 3e-7): one division and 11 multiply-adds instead of a division,
/// an exponential and 15, for GELU, 6% of a batch's pass through MiniLM.
#[expect(
    clippy::inline_always,
    reason = "it must inline into each loop to vectorize with it"
)]
#[inline(always)]
fn erf_lane(x: f32) -> f32 {
    let c = if x > 4.0 { 4.0 } else { x };
    let c = if c < -4.0 { -4.0 } else { c };
    let z = c * c;
    let p = -2.726_142_3e-10;
    let p = p * z + 2.770_681_4e-8;
    let p = p * z - 2.101_024e-6;
    let p = p * z - 5.692_506_4e-5;
    let p = p * z - 7.349_906_3e-4;
    let p = p * z - 2.954_6e-3;
    let p = p * z - 1.609_603_3e-2;
    let q = -1.456_607_15e-5;
    let q = q * z - 2.133_740_5e-4;
    let q = q * z - 1.682_827e-3;
    let q = q * z - 7.373_329_2e-3;
    let q = q * z - 1.426_473_9e-2;
    let erf = c * p / q;
    // The quotient overshoots ±1 by up to 2.4e-7 (numpy in f32 over [-4, 4]), and far-left GELU
    // must be exactly 0: clamp it, and make it ±1 exactly at and past the clamp.
    let erf = if erf > 1.0 || c == 4.0 { 1.0 } else { erf };
    if erf < -1.0 || c == -4.0 { -1.0 } else { erf }
}

#[expect(clippy::inline_always, reason = "inlined into the vectorized loops")]
#[inline(always)]
fn gelu_lane(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_lane(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[inline(always)]
fn gelu_tanh_lane(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    let y = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
    // tanh(y) = 1 - 2/(e^{2y} + 1): exact at both ends (e^{2y} = ∞ gives 1, 0 gives -1), and
    // its absolute error near 0, a few 1e-8, is what 0.5·x·(1 + tanh) needs.
    let tanh = 1.0 - 2.0 / (exp_lane(2.0 * y) + 1.0);
    0.5 * x * (1.0 + tanh)
}

#[expect(clippy::inline_always, reason = "inlined into the vectorized loops")]
#[inline(always)]
fn silu_lane(x: f32) -> f32 {
    x / (1.0 + exp_lane(-x))
}

/// Defines `pub fn $name`, which runs `$body` compiled for the widest instruction set this CPU
/// has: the same source, so every level computes the same formula (the lanes may round
/// differently only where LLVM chose another instruction for it, which it does not for these).
macro_rules! per_level {
    ($(#[$doc:meta])* pub fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? = $body:ident;) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            fn avx512($($arg: $ty),*) $(-> $ret)? {
                $body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            fn avx2($($arg: $ty),*) $(-> $ret)? {
                $body($($arg),*)
            }
            match level() {
                // SAFETY: the CPU supports AVX-512F (that is what this level means).
                #[cfg(target_arch = "x86_64")]
                Level::Avx512 => unsafe { avx512($($arg),*) },
                // SAFETY: the CPU supports AVX2 (that is what this level means).
                #[cfg(target_arch = "x86_64")]
                Level::Avx2 => unsafe { avx2($($arg),*) },
                _ => $body($($arg),*),
            }
        }
    };
}

/// Applies `f` to every value (the loop LLVM vectorizes).
#[expect(clippy::inline_always, reason = "inlined into the per-level wrappers")]
#[inline(always)]
fn map(x: &mut [f32], f: impl Fn(f32) -> f32) {
    for v in x.iter_mut() {
        *v = f(*v);
    }
}

#[expect(clippy::inline_always, reason = "inlined into the per-level wrappers")]
#[inline(always)]
fn gelu_body(x: &mut [f32]) {
    map(x, gelu_lane);
}

#[expect(clippy::inline_always, reason = "inlined into the per-level wrappers")]
#[inline(always)]
fn gelu_tanh_body(x: &mut [f32]) {
    map(x, gelu_tanh_lane);
}

#[expect(clippy::inline_always, reason = "inlined into the per-level wrappers")]
#[inline(always)]
fn silu_body(x: &mut [f32]) {
    map(x, silu_lane);
}

/// Σ f(x) with one accumulator per lane, then the lanes added: a sum LLVM can vectorize.
#[expect(clippy::inline_always, reason = "inlined into the per-level wrappers")]
#[inline(always)]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let blocks = x.chunks_exact(LANES);
    let tail = blocks.remainder();
    for block in blocks {
        for l in 0..LANES {
            acc[l] += f(block[l]);
        }
    }
    for (a, &v) in acc.iter_mut().zip(tail) {
        *a += f(v);
    }
    fold_halves(&mut acc, |a, b| a + b)
}

/// The largest value, -∞ for none; a NaN is passed over (as `f32::max` does).
#[expect(clippy::inline_always, reason = "inlined into the per-level wrappers")]
#[inline(always)]
fn lane_max(x: &[f32]) -> f32 {
    let mut acc = lane_maxima_body(x);
    // No NaN reaches the accumulators (a comparison with NaN is false), so any order will do.
    fold_halves(&mut acc, |a, b| if b > a { b } else { a })
}

/// The largest of the values at each lane position (`x[l]`, `x[l + 16]`, …), -∞ where there are
/// none; a NaN is passed over.
#[expect(clippy::inline_always, reason = "inlined into the per-level wrappers")]
#[inline(always)]
fn lane_maxima_body(x: &[f32]) -> [f32; LANES] {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let blocks = x.chunks_exact(LANES);
    let tail = blocks.remainder();
    for block in blocks {
        for l in 0..LANES {
            acc[l] = if block[l] > acc[l] { block[l] } else { acc[l] };
        }
    }
    for (a, &v) in acc.iter_mut().zip(tail) {
        *a = if v > *a { v } else { *a };
    }
    acc
}

/// Combines the accumulators pairwise, half onto half, down to one: a few vector operations.
/// Folding them one by one was a chain of dependent scalar adds, 16 to 32 long, once per row:
/// the pace of a 128-key softmax row, and thus of attention.
#[expect(clippy::inline_always, reason = "inlined into the per-level wrappers")]
#[inline(always)]
fn fold_halves<const N: usize>(acc: &mut [f32; N], op: impl Fn(f32, f32) -> f32) -> f32 {
    const { assert!(N.is_power_of_two(), "halves must pair up to the last") };
    let mut n = N;
    while n > 1 {
        n /= 2;
        for i in 0..n {
            acc[i] = op(acc[i], acc[i + n]);
        }
    }
    acc[0]
}

#[expect(clippy::inline_always, reason = "inlined into the per-level wrappers")]
#[inline(always)]
fn softmax_body(row: &mut [f32]) {
    let max = lane_max(row);
    if max == f32::NEG_INFINITY {
        row.fill(1.0 / row.len() as f32);
        return;
    }
    map(row, |v| exp_lane(v - max));
    let inv = 1.0 / lane_sum(row, |v| v);
    map(row, |v| v * inv);
}

/// Values summed in f32 lanes before the partial sum is added in f64: a vocabulary-wide sum stays
/// within a few 1e-7 of the f64 one, and the lanes still vectorize.
const SUM_BLOCK: usize = 1024;

#[expect(clippy::inline_always, reason = "inlined into the per-level wrappers")]
#[inline(always)]
fn sum_exp_body(x: &[f32], shift: f32) -> f64 {
    // A loop, not `Iterator::sum`: its `fold` would be a call compiled without the level's
    // instructions, and the exponentials in it would not vectorize.
    let mut total = 0.0;
    for block in x.chunks(SUM_BLOCK) {
        total += f64::from(lane_sum(block, |v| exp_lane(v - shift)));
    }
    total
}

#[expect(clippy::inline_always, reason = "inlined into the per-level wrappers")]
#[inline(always)]
fn layer_norm_body(x: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
    let width = weight.len();
    for row in x.chunks_exact_mut(width) {
        let mean = lane_sum(row, |v| v) / width as f32;
        let var = lane_sum(row, |v| (v - mean) * (v - mean)) / width as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, w), b) in row.iter_mut().zip(weight).zip(bias) {
            *v = (*v - mean) * inv * w + b;
        }
    }
}

#[expect(clippy::inline_always, reason = "inlined into the per-level wrappers")]
#[inline(always)]
fn rms_norm_body(x: &mut [f32], weight: &[f32], eps: f32) {
    let width = weight.len();
    for row in x.chunks_exact_mut(width) {
        let mean_square = lane_sum(row, |v| v * v) / width as f32;
        let inv = 1.0 / (mean_square + eps).sqrt();
        for (v, w) in row.iter_mut().zip(weight) {
            // transformers multiplies the normalized value by the weight after the scaling.
            *v = w * (*v * inv);
        }
    }
}

per_level! {
    /// `x·Φ(x)` with the error function (`nn.GELU()`), in place.
    pub fn gelu(x: &mut [f32]) = gelu_body;
}

per_level! {
    /// GELU's tanh approximation (`gelu_new`): `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    pub fn gelu_tanh(x: &mut [f32]) = gelu_tanh_body;
}

per_level! {
    /// `x·σ(x)` in place.
    pub fn silu(x: &mut [f32]) = silu_body;
}

per_level! {
    /// Softmax of one row in place. A row with no finite maximum (every entry -∞: masked whole)
    /// becomes uniform, as transformers' additive `finfo.min` mask makes it, rather than NaN.
    pub fn softmax(row: &mut [f32]) = softmax_body;
}

per_level! {
    /// `LayerNorm(x)` over each row of `weight.len()` values: `(x - mean) / sqrt(var + eps) ·
    /// weight + bias`, the variance biased, as PyTorch's.
    pub fn layer_norm(x: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) = layer_norm_body;
}

per_level! {
    /// The largest value at each of the 16 lane positions (`x[l]`, `x[l + 16]`, …): 16 values of
    /// `x` itself (-∞ for a lane with none), so the k-th largest of them is a floor under the k-th
    /// largest of `x`, found in one vectorized pass (the logit lens's top-k starts from it).
    pub fn lane_maxima(x: &[f32]) -> [f32; 16] = lane_maxima_body;
}

per_level! {
    /// `Σ exp(x - shift)`: a softmax's denominator without writing the exponentials (the logit
    /// lens needs it at every position of every layer, over the whole vocabulary).
    pub fn sum_exp(x: &[f32], shift: f32) -> f64 = sum_exp_body;
}

per_level! {
    /// `RMSNorm(x)` over each row: `x / sqrt(mean(x²) + eps) · weight`, as Llama's, in f32.
    pub fn rms_norm(x: &mut [f32], weight: &[f32], eps: f32) = rms_norm_body;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        a.to_bits().abs_diff(b.to_bits())
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_f64_value_and_exact_at_the_edges() {
        let mut xs: Vec<f32> = (-8733..=8837).map(|i| i as f32 / 100.0).collect();
        xs.extend([0.0, -0.0, 1e-30, -1e-30, 0.5, -0.5]);
        let mut got = xs.clone();
        map(&mut got, exp_lane);
        for (&x, &e) in xs.iter().zip(&got) {
            let want = f64::from(x).exp() as f32;
            assert!(ulps(e, want) <= 2, "exp({x}) = {e}, want {want}");
        }
        let mut edges = [f32::NEG_INFINITY, -200.0, 89.0, f32::INFINITY, f32::NAN];
        map(&mut edges, exp_lane);
        assert_eq!(edges[..4], [0.0, 0.0, f32::INFINITY, f32::INFINITY]);
        assert!(edges[4].is_nan());
    }

    #[test]
    fn sum_exp_is_the_f64_sum_to_a_few_1e_7() {
        let xs: Vec<f32> = (0..50_000)
            .map(|i| ((i * 7919) % 4001) as f32 / 200.0 - 10.0)
            .collect();
        let want: f64 = xs.iter().map(|&x| (f64::from(x) - 10.0).exp()).sum();
        let got = sum_exp(&xs, 10.0);
        assert!((got / want - 1.0).abs() < 5e-7, "{got} against {want}");
        assert!(sum_exp(&[], 0.0).abs() < f64::MIN_POSITIVE);
        let m = lane_maxima(&[1.0, f32::NAN, 3.0]);
        assert_eq!(m[..3], [1.0, f32::NEG_INFINITY, 3.0]);
        let wide: Vec<f32> = (0..40).map(|i| i as f32).collect();
        assert_eq!(lane_maxima(&wide)[..2], [32.0, 33.0]);
        assert_eq!(lane_maxima(&wide)[15], 31.0);
    }

    #[test]
    fn activations_match_their_f64_definitions() {
        let xs: Vec<f32> = (-1200..=1200).map(|i| i as f32 / 100.0).collect();
        let (mut g, mut t, mut s) = (xs.clone(), xs.clone(), xs.clone());
        gelu(&mut g);
        gelu_tanh(&mut t);
        silu(&mut s);
        for (i, &x) in xs.iter().enumerate() {
            let x64 = f64::from(x);
            let exact = 0.5 * x64 * (1.0 + crate::math::erf(x64 / std::f64::consts::SQRT_2));
            let tanh = 0.5
                * x64
                * (1.0 + (0.797_884_560_802_865_4 * (x64 + 0.044_715 * x64.powi(3))).tanh());
            let sig = x64 / (1.0 + (-x64).exp());
            let tol = 1e-6 * x64.abs().max(1.0);
            assert!(
                (f64::from(g[i]) - exact).abs() < tol,
                "gelu({x}) = {}",
                g[i]
            );
            assert!(
                (f64::from(t[i]) - tanh).abs() < tol,
                "gelu_tanh({x}) = {}",
                t[i]
            );
            assert!((f64::from(s[i]) - sig).abs() < tol, "silu({x}) = {}", s[i]);
        }
        let mut ends = [f32::NEG_INFINITY, f32::INFINITY, -1e30, 1e30];
        gelu(&mut ends);
        assert_eq!(ends[1..], [f32::INFINITY, -0.0, 1e30]);
    }

    #[test]
    fn softmax_and_norms_by_hand() {
        let mut s = [0.0, f32::NEG_INFINITY, 0.0];
        softmax(&mut s);
        assert_eq!(s, [0.5, 0.0, 0.5]);
        let mut masked = [f32::NEG_INFINITY; 4];
        softmax(&mut masked);
        assert_eq!(masked, [0.25; 4]);
        // 37 values: two whole lane blocks and a tail.
        let mut long: Vec<f32> = (0..37).map(|i| (i as f32 * 0.3).sin()).collect();
        let want: Vec<f64> = {
            let e: Vec<f64> = long.iter().map(|&v| f64::from(v).exp()).collect();
            let sum: f64 = e.iter().sum();
            e.iter().map(|v| v / sum).collect()
        };
        softmax(&mut long);
        for (g, w) in long.iter().zip(&want) {
            assert!((f64::from(*g) - w).abs() < 1e-7);
        }
        let mut x = [1.0, 2.0, 3.0, 4.0];
        layer_norm(&mut x, &[1.0, 1.0], &[0.0, 0.5], 0.0);
        assert_eq!(x, [-1.0, 1.5, -1.0, 1.5]);
        let mut y = [3.0, 4.0];
        rms_norm(&mut y, &[1.0, 2.0], 0.0);
        let r = (12.5f32).sqrt();
        assert_eq!(y, [3.0 / r, 2.0 * (4.0 / r)]);
    }
}
