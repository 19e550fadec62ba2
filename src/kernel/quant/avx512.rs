//! The row dots of Q4_0, Q4_1, Q8_0, Q4_K and Q6_K written out in AVX-512: a generated token's
//! whole cost. Left to LLVM, the same loop came out in 128-bit registers with the block
//! spilled to the stack (1 GB/s of Q4_0 weight, where the F32 GEMV streams 8.8 GB/s); here each
//! block is 16 bytes (or 32) widened straight into two registers of 16 values.
//!
//! Each value is formed exactly as the decoders in blocks.rs form it (`q·d + m`, `(q - 8)·d`,
//! `q·d`: a product, then a sum, each rounded), then multiplied into the accumulators with one
//! rounding (FMA): the result is dequantize-then-multiply up to the order and rounding of the sums.

#![expect(
    clippy::inline_always,
    reason = "the sinks and the block loop must inline into the #[target_feature] functions"
)]

use std::arch::x86_64::{
    __m128i, __m512, _MM_HINT_T0, _mm_and_si128, _mm_cvtph_ps, _mm_cvtsi32_si128, _mm_cvtss_f32,
    _mm_loadu_si128, _mm_movehdup_ps, _mm_or_si128, _mm_prefetch, _mm_set1_epi8, _mm_slli_epi16,
    _mm_srli_epi16, _mm512_add_ps, _mm512_broadcastss_ps, _mm512_cvtepi8_epi32, _mm512_cvtepi32_ps,
    _mm512_cvtepu8_epi32, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mul_ps, _mm512_reduce_add_ps,
    _mm512_set1_epi32, _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps, _mm512_sub_epi32,
    _mm512_sub_ps,
};

use super::Fused;
use super::blocks::scale_min;

/// `out[o] = row o · x` for the rows of `row_bytes` bytes in `bytes`.
///
/// # Safety
/// The CPU must have AVX-512F, AVX-512BW, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
pub(super) unsafe fn dot_rows(
    fused: Fused,
    bytes: &[u8],
    row_bytes: usize,
    x: &[f32],
    out: &mut [f32],
) {
    for (y, row) in out.iter_mut().zip(bytes.chunks_exact(row_bytes.max(1))) {
        let mut dot = Dot {
            x,
            acc: [_mm512_setzero_ps(); 4],
        };
        blocks(fused, row, &mut dot);
        let [a, b, c, d] = dot.acc;
        *y = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a, b), _mm512_add_ps(c, d)));
    }
}

/// Decodes the whole blocks of `bytes` into `out` (as many values as they hold).
///
/// # Safety
/// The CPU must have AVX-512F, AVX-512BW, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
pub(super) unsafe fn decode(fused: Fused, bytes: &[u8], out: &mut [f32]) {
    blocks(fused, bytes, &mut Store { out });
}

/// Where the values of a run of blocks go, 16 at a time.
trait Sink {
    /// Whether the blocks are prefetched [`PREFETCH_AHEAD`] bytes ahead as they are read: a dot
    /// reads whole rows in order, where a decoder is given a row's segment at a time by a caller
    /// that prefetches in its own order (batch.rs), and a hint 1 KiB past a segment would only
    /// take a line fill buffer from the ones that matter.
    const PREFETCH: bool;

    /// Takes the values `at..at + 16` of the run.
    fn put(&mut self, at: usize, w: __m512);
}

/// Multiplies the values into four accumulators with `x`.
struct Dot<'a> {
    x: &'a [f32],
    acc: [__m512; 4],
}

impl Sink for Dot<'_> {
    const PREFETCH: bool = true;

    #[inline(always)]
    fn put(&mut self, at: usize, w: __m512) {
        let xs: &[f32; 16] = self.x[at..at + 16].try_into().expect("16 values");
        let lane = (at / 16) % 4;
        // SAFETY: `xs` holds the 16 f32 read; the sinks are only used inside functions compiled
        // with AVX-512F and FMA, which run only on CPUs that have them (rows.rs checks).
        self.acc[lane] =
            unsafe { _mm512_fmadd_ps(w, _mm512_loadu_ps(xs.as_ptr()), self.acc[lane]) };
    }
}

/// Writes the values out.
struct Store<'a> {
    out: &'a mut [f32],
}

impl Sink for Store<'_> {
    const PREFETCH: bool = true;

    #[inline(always)]
    fn put(&mut self, at: usize, w: __m512) {
        let run: &mut [f32; 16] = (&mut self.out[at..at + 16]).try_into().expect("16 values");
        // SAFETY: `run` holds the 16 f32 written; AVX-512F as in `Dot`.
        unsafe { _mm512_storeu_ps(run.as_mut_ptr(), w) };
    }
}

/// Feeds every value of the whole blocks of `bytes` to `sink`, in order.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
fn blocks<S: Sink>(fused: Fused, bytes: &[u8], sink: &mut S) {
    match fused {
        Fused::Q4_0 => run::<18, 32, S>(bytes, sink, q4_0::<S>),
        Fused::Q4_1 => run::<20, 32, S>(bytes, sink, q4_1::<S>),
        Fused::Q8_0 => run::<34, 32, S>(bytes, sink, q8_0::<S>),
        Fused::Q4_K => run::<144, 256, S>(bytes, sink, q4_k::<S>),
        Fused::Q6_K => run::<210, 256, S>(bytes, sink, q6_k::<S>),
    }
}

/// The run of `BYTES`-byte blocks of `VALUES` values, each decoded by `block` into the sink at its
/// offset.
#[inline(always)]
fn run<const BYTES: usize, const VALUES: usize, S: Sink>(
    bytes: &[u8],
    sink: &mut S,
    block: unsafe fn(&[u8], usize, &mut S),
) {
    for (i, b) in bytes.chunks_exact(BYTES).enumerate() {
        // SAFETY: `run` is only inlined into `blocks`, compiled with the features `block` needs.
        unsafe {
            if S::PREFETCH {
                prefetch(b);
            }
            block(b, i * VALUES, sink);
        }
    }
}

/// How far ahead of the block being read the weight is fetched into cache, in bytes: the rows
/// come from a mapped file, whose 4 KiB pages the hardware prefetcher does not cross, so the first
/// blocks of each page would otherwise wait for memory.
const PREFETCH_AHEAD: usize = 1024;

/// Asks for the weight bytes [`PREFETCH_AHEAD`] past `b` (a hint: it never faults, even past the
/// end of the mapping).
#[inline]
#[target_feature(enable = "avx512f")]
fn prefetch(b: &[u8]) {
    _mm_prefetch::<_MM_HINT_T0>(b.as_ptr().wrapping_add(PREFETCH_AHEAD).cast());
}

/// The f16 pair at `at` widened; `.0` is the first.
#[inline]
#[target_feature(enable = "avx512f,f16c")]
fn halves(b: &[u8], at: usize) -> (__m512, __m512) {
    let bits = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let both = _mm_cvtph_ps(_mm_cvtsi32_si128(bits.cast_signed()));
    (
        _mm512_broadcastss_ps(both),
        _mm512_broadcastss_ps(_mm_movehdup_ps(both)),
    )
}

/// The 16 bytes at `at`: low nibbles (values 0-15) and high nibbles (values 16-31).
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn nibbles(b: &[u8], at: usize) -> (__m128i, __m128i) {
    let bytes: &[u8; 16] = b[at..at + 16].try_into().expect("16 bytes");
    // SAFETY: `bytes` holds the 16 bytes read.
    let q = unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) };
    let mask = _mm_set1_epi8(0x0f);
    (
        _mm_and_si128(q, mask),
        _mm_and_si128(_mm_srli_epi16(q, 4), mask),
    )
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
fn q4_1<S: Sink>(b: &[u8], at: usize, sink: &mut S) {
    let (d, m) = halves(b, 0);
    let (lo, hi) = nibbles(b, 4);
    let value = |q: __m128i| {
        _mm512_add_ps(
            _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q)), d),
            m,
        )
    };
    sink.put(at, value(lo));
    sink.put(at + 16, value(hi));
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
fn q4_0<S: Sink>(b: &[u8], at: usize, sink: &mut S) {
    let (d, _) = halves(b, 0);
    let (lo, hi) = nibbles(b, 2);
    let eight = _mm512_set1_epi32(8);
    let value = |q: __m128i| {
        let q = _mm512_sub_epi32(_mm512_cvtepu8_epi32(q), eight);
        _mm512_mul_ps(_mm512_cvtepi32_ps(q), d)
    };
    sink.put(at, value(lo));
    sink.put(at + 16, value(hi));
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
fn q8_0<S: Sink>(b: &[u8], at: usize, sink: &mut S) {
    let (d, _) = halves(b, 0);
    let value = |at: usize| {
        let bytes: &[u8; 16] = b[at..at + 16].try_into().expect("16 bytes");
        // SAFETY: `bytes` holds the 16 bytes read.
        let q = unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) };
        _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), d)
    };
    sink.put(at, value(2));
    sink.put(at + 16, value(18));
}

/// The 16 bytes `b[at..at + 16]`.
#[inline]
#[target_feature(enable = "avx512f")]
fn bytes16(b: &[u8], at: usize) -> __m128i {
    let run: &[u8; 16] = b[at..at + 16].try_into().expect("16 bytes");
    // SAFETY: `run` holds the 16 bytes read.
    unsafe { _mm_loadu_si128(run.as_ptr().cast()) }
}

/// Q4_K: value `d1·q - m1` per group of 32, groups `2c` and `2c + 1` the low and high nibbles of
/// the 32 bytes of chunk `c` (as blocks.rs).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
fn q4_k<S: Sink>(b: &[u8], at: usize, sink: &mut S) {
    let (d, dmin) = halves(b, 0);
    let packed = &b[4..16];
    let mask = _mm_set1_epi8(0x0f);
    for c in 0..4 {
        for (j, shift) in [(2 * c, false), (2 * c + 1, true)] {
            let (sc, m) = scale_min(packed, j);
            let d1 = _mm512_mul_ps(d, _mm512_set1_ps(sc));
            let m1 = _mm512_mul_ps(dmin, _mm512_set1_ps(m));
            for h in 0..2 {
                let q = bytes16(b, 16 + c * 32 + h * 16);
                let q = if shift { _mm_srli_epi16(q, 4) } else { q };
                let q = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(q, mask)));
                let w = _mm512_sub_ps(_mm512_mul_ps(d1, q), m1);
                sink.put(at + j * 32 + h * 16, w);
            }
        }
    }
}

/// Q6_K: value `(d·scale)·(q - 32)` per group of 16, the low 4 bits of value `h·128 + s·32 + l`
/// in nibble `s / 2` of `ql[h·64 + (s % 2)·32 + l]`, the high 2 in bits `2s..2s+2` of
/// `qh[h·32 + l]` (as blocks.rs).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
fn q6_k<S: Sink>(b: &[u8], at: usize, sink: &mut S) {
    let d = f16_at(b, 208);
    let (mask, three, offset) = (
        _mm_set1_epi8(0x0f),
        _mm_set1_epi8(0x03),
        _mm512_set1_epi32(32),
    );
    for h in 0..2 {
        for s in 0..4 {
            for g in 0..2 {
                let low = bytes16(b, h * 64 + (s % 2) * 32 + g * 16);
                let low = if s >= 2 { _mm_srli_epi16(low, 4) } else { low };
                let high = bytes16(b, 128 + h * 32 + g * 16);
                let high = _mm_and_si128(srl_crumb(high, s), three);
                let q = _mm_or_si128(_mm_and_si128(low, mask), _mm_slli_epi16(high, 4));
                let q = _mm512_sub_epi32(_mm512_cvtepu8_epi32(q), offset);
                let within = h * 128 + s * 32 + g * 16;
                let dl = d * f32::from(b[192 + within / 16].cast_signed());
                let w = _mm512_mul_ps(_mm512_set1_ps(dl), _mm512_cvtepi32_ps(q));
                sink.put(at + within, w);
            }
        }
    }
}

/// `q` shifted right by `2s` bits in each 16-bit lane (`s` < 4; the caller masks the bytes).
#[inline]
#[target_feature(enable = "avx512f")]
fn srl_crumb(q: __m128i, s: usize) -> __m128i {
    match s {
        0 => q,
        1 => _mm_srli_epi16(q, 2),
        2 => _mm_srli_epi16(q, 4),
        _ => _mm_srli_epi16(q, 6),
    }
}

/// The f16 at `at`, widened.
#[inline]
#[target_feature(enable = "avx512f,f16c")]
fn f16_at(b: &[u8], at: usize) -> f32 {
    let bits = u16::from_le_bytes([b[at], b[at + 1]]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}
