//! PyTorch's CPU random generator, bit for bit: `torch.manual_seed(s)` then `uniform_`, `normal_`.
//!
//! Matching torch's stream (rather than using `rand`) is what lets `paramscope show demo:mlp 0.weight`
//! print the very numbers `torch.manual_seed(0); nn.Sequential(...)` gives, and lets the tests compare
//! every re-init with PyTorch value for value.

use std::f64::consts::PI;

const STATE: usize = 624;
const SHIFT: usize = 397;

/// The mt19937 engine behind `torch.Generator` on CPU, with torch's cached second normal sample.
#[derive(Clone)]
pub struct TorchGenerator {
    state: [u32; STATE],
    next: usize,
    /// Box–Muller makes two samples; torch keeps the second for the next small `normal_`.
    cached_normal: Option<f64>,
}

impl TorchGenerator {
    /// The generator as `torch.manual_seed(seed)` leaves it (torch keeps the low 32 bits).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        let mut state = [0u32; STATE];
        state[0] = seed as u32;
        for i in 1..STATE {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        TorchGenerator {
            state,
            next: STATE,
            cached_normal: None,
        }
    }

    /// The next raw 32-bit output (torch's `random()`).
    pub fn next_u32(&mut self) -> u32 {
        if self.next >= STATE {
            self.twist();
        }
        let mut y = self.state[self.next];
        self.next += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// torch's `random64()`: two outputs, the first as the high half.
    pub fn next_u64(&mut self) -> u64 {
        let hi = u64::from(self.next_u32());
        (hi << 32) | u64::from(self.next_u32())
    }

    fn twist(&mut self) {
        for k in 0..STATE {
            let y = (self.state[k] & 0x8000_0000) | (self.state[(k + 1) % STATE] & 0x7fff_ffff);
            let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
            self.state[k] = self.state[(k + SHIFT) % STATE] ^ (y >> 1) ^ mag;
        }
        self.next = 0;
    }

    /// One f32 from U[from, to), as torch's `uniform_real_distribution<float>`: 24 random bits,
    /// scaled in f64 (torch's accumulation type on CPU) and rounded once at the end.
    pub fn uniform_f32(&mut self, from: f32, to: f32) -> f32 {
        let unit = f64::from(self.next_u32() & 0x00ff_ffff) * (1.0 / 16_777_216.0);
        let (from, to) = (f64::from(from), f64::from(to));
        (unit * (to - from) + from) as f32
    }

    /// Fills `out` as `tensor.uniform_(from, to)` does (the bounds are rounded to f32 first, as torch does).
    pub fn fill_uniform(&mut self, out: &mut [f32], from: f64, to: f64) {
        let (from, to) = (from as f32, to as f32);
        for v in out {
            *v = self.uniform_f32(from, to);
        }
    }

    /// Fills `out` as `tensor.normal_(mean, std)` does on a contiguous CPU float tensor.
    ///
    /// torch takes two paths. From 16 elements on, uniforms for the whole tensor are turned into
    /// normals 16 at a time (Box–Muller on pairs `j`, `j+8`; a ragged tail redraws the last 16),
    /// in f32 with the Cephes-style log and sincos of its `avx_mathfun.h`: x86 builds run that
    /// kernel for every CPU with AVX2 (torch keeps `normal_` off its AVX-512 dispatch). Below 16,
    /// each value comes from the f64 Box–Muller with a cached second sample.
    pub fn fill_normal(&mut self, out: &mut [f32], mean: f64, std: f64) {
        if out.len() >= 16 {
            self.fill_normal_blocked(out, mean as f32, std as f32);
        } else {
            for v in out {
                // torch's `val * std + mean` is compiled to one fused multiply-add.
                *v = self.normal_f64().mul_add(std, mean) as f32;
            }
        }
    }

    fn fill_normal_blocked(&mut self, out: &mut [f32], mean: f32, std: f32) {
        let n = out.len();
        for v in out.iter_mut() {
            *v = self.uniform_f32(0.0, 1.0);
        }
        for block in out.chunks_exact_mut(16) {
            box_muller_16(block, mean, std);
        }
        if !n.is_multiple_of(16) {
            let tail = &mut out[n - 16..];
            for v in tail.iter_mut() {
                *v = self.uniform_f32(0.0, 1.0);
            }
            box_muller_16(tail, mean, std);
        }
    }

    /// One standard normal in f64, as torch's `normal_distribution<double>` (with its cache).
    fn normal_f64(&mut self) -> f64 {
        if let Some(cached) = self.cached_normal.take() {
            return cached;
        }
        let u1 = self.uniform_f64();
        let u2 = self.uniform_f64();
        let radius = (-2.0 * (-u2).ln_1p()).sqrt();
        let theta = 2.0 * PI * u1;
        self.cached_normal = Some(radius * theta.sin());
        radius * theta.cos()
    }

    /// One f64 from U[0, 1) with 53 random bits.
    fn uniform_f64(&mut self) -> f64 {
        (self.next_u64() & ((1u64 << 53) - 1)) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }
}

/// torch's `normal_fill_16` as its AVX2 build computes it: turns 16 uniforms into 16 normals in
/// place, lane `j` pairing with lane `j + 8`.
fn box_muller_16(data: &mut [f32], mean: f32, std: f32) {
    for j in 0..8 {
        let u1 = 1.0 - data[j];
        let u2 = data[j + 8];
        let radius = (-2.0 * cephes::log(u1)).sqrt();
        let (sin, cos) = cephes::sincos(2.0 * std::f32::consts::PI * u2);
        data[j] = (radius * cos).mul_add(std, mean);
        data[j + 8] = (radius * sin).mul_add(std, mean);
    }
}

/// The f32 log and sincos of torch's `avx_mathfun.h` (Cephes polynomials), one lane at a time,
/// with the fused multiply-adds GCC forms when it compiles them for AVX2+FMA (read from the
/// disassembly of `libtorch_cpu.so`): every rounding as torch's, so every bit as torch's.
mod cephes {
    const LOG_P: [f32; 9] = [
        7.037_683_6E-2,
        -1.151_461E-1,
        1.167_699_84E-1,
        -1.242_014_1E-1,
        1.424_932_3E-1,
        -1.666_805_8E-1,
        2.000_071_4E-1,
        -2.499_999_4E-1,
        3.333_333E-1,
    ];
    const LOG_Q1: f32 = -2.121_944_4E-4;
    const LOG_Q2: f32 = 0.693_359_4;

    /// `log256_ps` for one lane: NaN for x <= 0, denormals read as the smallest normal.
    pub fn log(x: f32) -> f32 {
        if x.is_nan() || x <= 0.0 {
            return f32::NAN;
        }
        let x = x.max(f32::MIN_POSITIVE);
        // The exponent, and the mantissa as a number in [0.5, 1).
        let mut e = ((x.to_bits() >> 23) as i32 - 0x7f) as f32 + 1.0;
        let mut m = f32::from_bits((x.to_bits() & !0x7f80_0000) | 0.5f32.to_bits());
        // Below √½, use 2m − 1 and one less in the exponent, so the polynomial's argument stays small.
        if m < std::f32::consts::FRAC_1_SQRT_2 {
            e -= 1.0;
            m = (m - 1.0) + m;
        } else {
            m -= 1.0;
        }
        let z = m * m;
        let mut y = LOG_P[0];
        for p in &LOG_P[1..] {
            y = y.mul_add(m, *p);
        }
        y = (y * m).mul_add(z, e * LOG_Q1);
        y = (-z).mul_add(0.5, y);
        e.mul_add(LOG_Q2, m + y)
    }

    const DP: [f32; 3] = [-0.785_156_25, -2.418_756_5E-4, -3.774_895E-8];
    const SIN_P: [f32; 3] = [-1.951_529_6E-4, 8.332_161E-3, -1.666_665_5E-1];
    const COS_P: [f32; 3] = [2.443_315_7E-5, -1.388_731_6E-3, 4.166_664_6E-2];
    const FOUR_OVER_PI: f32 = 1.273_239_5;

    /// `sincos256_ps` for one lane: (sin x, cos x), for the finite arguments Box–Muller gives it.
    pub fn sincos(x: f32) -> (f32, f32) {
        let sign_of_x = x.to_bits() & 0x8000_0000;
        let a = x.abs();
        // The octant, rounded up to even (as Cephes does), truncated like `cvttps`.
        let j = ((a * FOUR_OVER_PI) as i32 + 1) & !1;
        let y = j as f32;
        // The argument reduced by y·π/4 in three parts, for extra precision.
        let r = y.mul_add(DP[2], y.mul_add(DP[1], y.mul_add(DP[0], a)));
        let sin_sign = sign_of_x ^ (((j & 4) as u32) << 29);
        let cos_sign = ((!(j - 2) & 4) as u32) << 29;
        let z = r * r;
        let cos_poly =
            (COS_P[0].mul_add(z, COS_P[1]).mul_add(z, COS_P[2]) * z).mul_add(z, -(z * 0.5)) + 1.0;
        let sin_poly = (SIN_P[0].mul_add(z, SIN_P[1]).mul_add(z, SIN_P[2]) * z).mul_add(r, r);
        // In octants 1 and 2 (mod 4) the polynomials swap roles. torch selects by masking and
        // adding, so a chosen −0 comes out as +0: adding +0 does the same.
        let (s, c) = if j & 2 == 0 {
            (0.0 + sin_poly, 0.0 + cos_poly)
        } else {
            (0.0 + cos_poly, 0.0 + sin_poly)
        };
        (
            f32::from_bits(s.to_bits() ^ sin_sign),
            f32::from_bits(c.to_bits() ^ cos_sign),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_matches_the_reference_sequence() {
        // The C++ standard fixes the 10000th output of mt19937 seeded with 5489.
        let mut g = TorchGenerator::new(5489);
        let mut last = 0;
        for _ in 0..10_000 {
            last = g.next_u32();
        }
        assert_eq!(last, 4_123_659_995);
    }
}
