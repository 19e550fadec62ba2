//! The row dots of Q4_0, Q4_1, Q8_0, Q4_K and Q6_K written out in AVX-512: a generated token's
//! whole cost. Left to LLVM, the same loop came out in 128-bit registers with the block
//! spilled to the stack (1 GB/s of Q4_0 weight, where the F32 GEMV streams 8.8 GB/s); here each
//! block is 16 bytes (or 32) widened straight into two registers of 16 values.
//!
//! Each value is exactly the one the decoders in blocks.rs form (`q·d + m`, `(q - 8)·d`, `q·d`,
//! `d1·q - m1`), then multiplied into the accumulators with one rounding (FMA): the result is
//! dequantize-then-multiply up to the order and rounding of the sums. The 4-bit types form their
//! block's (or group's) sixteen possible values once and look each nibble up in them (`vpermps`),
//! with one rounding where blocks.rs has two: the products are exact (an f16 times integers of at
//! most 10 bits), so the one rounding of the sum is the same. The tests compare bits. Q8_0's dot
//! takes the block's scale out of its sum (`d·Σq·x`, [`Sink::put_scaled`]), one multiply fewer
//! per 16 values; its decode still writes `q·d`.

#![expect(
    clippy::inline_always,
    reason = "the sinks and the block loop must inline into the #[target_feature] functions"
)]

use std::arch::x86_64::{
    __m128i, __m512, __m512i, _MM_HINT_T0, _mm_and_si128, _mm_cvtph_ps, _mm_cvtsi32_si128,
    _mm_cvtss_f32, _mm_loadu_si128, _mm_movehdup_ps, _mm_or_si128, _mm_prefetch, _mm_set1_epi8,
    _mm_slli_epi16, _mm_srli_epi16, _mm512_add_ps, _mm512_and_si512, _mm512_broadcastss_ps,
    _mm512_cvtepi8_epi32, _mm512_cvtepi32_ps, _mm512_cvtepu8_epi32, _mm512_fmadd_ps,
    _mm512_fmsub_ps, _mm512_loadu_ps, _mm512_loadu_si512, _mm512_mask_blend_ps, _mm512_mul_ps,
    _mm512_or_si512, _mm512_permutexvar_epi32, _mm512_permutexvar_ps, _mm512_reduce_add_ps,
    _mm512_set1_epi32, _mm512_set1_ps, _mm512_setr_ps, _mm512_setzero_ps, _mm512_srli_epi32,
    _mm512_srlv_epi32, _mm512_storeu_ps, _mm512_sub_epi32, _mm512_sub_ps,
};

use super::Fused;
use super::blocks::{Block, Q4_0, Q4_1, Q4_K, Q6_K, Q8_0, shape};

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
    let values = values_in(fused, row_bytes);
    assert!(
        x.len() >= values,
        "an activation row shorter than a weight row"
    );
    for (y, row) in out.iter_mut().zip(bytes.chunks_exact(row_bytes.max(1))) {
        let mut dot = Dot {
            x: x.as_ptr(),
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
    /// Takes the values `at..at + 16` of the run.
    fn put(&mut self, at: usize, w: __m512);

    /// Takes the values `at..at + 32` of the run (`at` a multiple of 32): `low·d` then `high·d`.
    #[inline(always)]
    fn put_scaled(&mut self, at: usize, low: __m512, high: __m512, d: __m512) {
        // SAFETY: the sinks are only used inside functions compiled with AVX-512F.
        unsafe {
            self.put(at, _mm512_mul_ps(low, d));
            self.put(at + 16, _mm512_mul_ps(high, d));
        }
    }
}

/// Multiplies the values into four accumulators with `x`.
///
/// `x` is a pointer, checked once per call against a row's values (`dot_rows`), where a slice
/// cost two bounds checks per 16 values: scalar work on the ports the decode's vector work uses.
struct Dot {
    /// At least as many activations as a row of the blocks handed to [`blocks`] holds values.
    x: *const f32,
    acc: [__m512; 4],
}

impl Sink for Dot {
    #[inline(always)]
    fn put(&mut self, at: usize, w: __m512) {
        let lane = (at / 16) % 4;
        // SAFETY: `blocks` puts only `at..at + 16` within the values of its whole blocks, and
        // `dot_rows` checked that `x` holds that many; the sinks are only used inside functions
        // compiled with AVX-512F and FMA, which run only on CPUs that have them (rows.rs checks).
        self.acc[lane] =
            unsafe { _mm512_fmadd_ps(w, _mm512_loadu_ps(self.x.add(at)), self.acc[lane]) };
    }

    /// `d·(low·x + high·x)`: the scale taken out of the block's sum, one multiply fewer per 16
    /// values than scaling each value (the values `q·d` are exact, so only the sums' order and
    /// rounding change).
    #[inline(always)]
    fn put_scaled(&mut self, at: usize, low: __m512, high: __m512, d: __m512) {
        let lane = (at / 16) % 4;
        // SAFETY: as in `put`, for `at..at + 32`.
        unsafe {
            let sum = _mm512_mul_ps(low, _mm512_loadu_ps(self.x.add(at)));
            let sum = _mm512_fmadd_ps(high, _mm512_loadu_ps(self.x.add(at + 16)), sum);
            self.acc[lane] = _mm512_fmadd_ps(sum, d, self.acc[lane]);
        }
    }
}

/// Writes the values out.
struct Store<'a> {
    out: &'a mut [f32],
}

impl Sink for Store<'_> {
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
        Fused::Q4_0 => run::<{ Q4_0::BYTES }, { Q4_0::VALUES }, S>(bytes, sink, q4_0::<S>),
        Fused::Q4_1 => run::<{ Q4_1::BYTES }, { Q4_1::VALUES }, S>(bytes, sink, q4_1::<S>),
        Fused::Q8_0 => run::<{ Q8_0::BYTES }, { Q8_0::VALUES }, S>(bytes, sink, q8_0::<S>),
        Fused::Q4_K => q4_k_run(bytes, sink),
        Fused::Q6_K => run::<{ Q6_K::BYTES }, { Q6_K::VALUES }, S>(bytes, sink, q6_k::<S>),
    }
}

/// The values the whole blocks of `bytes` bytes hold, as [`blocks`] feeds them.
fn values_in(fused: Fused, bytes: usize) -> usize {
    let (block, values) = shape(fused);
    bytes / block * values
}

/// The run of `BYTES`-byte blocks of `VALUES` values, each decoded by `block` into the sink at its
/// offset. Blocks go two at a time, so that every offset is a known multiple of 64 plus a
/// constant: [`Dot`] then picks its accumulators at compile time and keeps them in registers.
/// Taken one at a time, the 32-value types' offsets alternate between two accumulator pairs, and
/// the array was indexed in memory: each multiply-add waited on the last one's store.
#[inline(always)]
fn run<const BYTES: usize, const VALUES: usize, S: Sink>(
    bytes: &[u8],
    sink: &mut S,
    block: unsafe fn(&[u8], usize, &mut S),
) {
    let ahead = if BYTES >= VALUES {
        PREFETCH_AHEAD_WIDE
    } else {
        PREFETCH_AHEAD
    };
    let mut pairs = bytes.chunks_exact(2 * BYTES);
    let mut done = 0;
    for (p, two) in pairs.by_ref().enumerate() {
        let (first, second) = two.split_at(BYTES);
        let at = p * 2 * VALUES;
        // SAFETY: `run` is only inlined into `blocks`, compiled with the features `block` needs.
        unsafe {
            prefetch(first, ahead);
            prefetch(second, ahead);
            block(first, at, sink);
            block(second, at + VALUES, sink);
        }
        done = p + 1;
    }
    if let Some(last) = pairs.remainder().get(..BYTES) {
        // SAFETY: as above.
        unsafe {
            prefetch(last, ahead);
            block(last, done * 2 * VALUES, sink);
        }
    }
}

/// How far ahead of the block being read the weight is fetched into cache, in bytes: the rows
/// come from a mapped file, whose 4 KiB pages the hardware prefetcher does not cross, so the first
/// blocks of each page would otherwise wait for memory. The decode of a prompt's segments gains
/// too, though batch.rs prefetches the next tile itself: SmolLM2's 32-token pass took 97.6-100.5
/// ms with it against 103.0-108.2 ms without (one thread, four rounds each, 2026-12-08 on a Zen 4).
const PREFETCH_AHEAD: usize = 1024;

/// How far ahead the blocks of a type of a byte or more per value (Q8_0) are fetched: they are
/// read twice as fast, and the bench's 1×4096×4096 Q8_0 dot took 0.87-0.99 ms fetching 4 KiB
/// ahead against 1.08-1.36 ms at 1 KiB (Q4_K was slower at 4 KiB), 2026-12-08 on a Zen 4.
const PREFETCH_AHEAD_WIDE: usize = 4096;

/// Asks for the weight bytes `ahead` past `b` (a hint: it never faults, even past the end of the
/// mapping).
#[inline]
#[target_feature(enable = "avx512f")]
fn prefetch(b: &[u8], ahead: usize) {
    _mm_prefetch::<_MM_HINT_T0>(b.as_ptr().wrapping_add(ahead).cast());
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

/// The sixteen values a nibble can stand for, `table[q]`, looked up by the low four bits of each
/// 32-bit lane of `q` (`vpermps` reads no other bits, so a byte needs no mask for its low nibble).
#[inline]
#[target_feature(enable = "avx512f")]
fn look_up(q: __m512i, table: __m512) -> __m512 {
    _mm512_permutexvar_ps(q, table)
}

/// The 16 bytes at `at`, each widened to a 32-bit lane: the low nibble is the lane's low four
/// bits, the high nibble those of the lane shifted right by 4.
#[inline]
#[target_feature(enable = "avx512f")]
fn lanes(b: &[u8], at: usize) -> (__m512i, __m512i) {
    let q = _mm512_cvtepu8_epi32(bytes16(b, at));
    (q, _mm512_srli_epi32::<4>(q))
}

/// `0, 1, …, 15`: the nibbles as f32.
#[inline]
#[target_feature(enable = "avx512f")]
fn nibble_values() -> __m512 {
    _mm512_setr_ps(
        0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0,
    )
}

/// Q4_1: the block's 16 values `q·d + m` formed once (one rounding: `q·d` is exact, an f16 times
/// a 4-bit integer), then looked up by each nibble.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
fn q4_1<S: Sink>(b: &[u8], at: usize, sink: &mut S) {
    let (d, m) = halves(b, 0);
    let table = _mm512_fmadd_ps(nibble_values(), d, m);
    let (lo, hi) = lanes(b, 4);
    sink.put(at, look_up(lo, table));
    sink.put(at + 16, look_up(hi, table));
}

/// Q4_0: the block's 16 values `(q - 8)·d` (exact products) formed once, then looked up.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
fn q4_0<S: Sink>(b: &[u8], at: usize, sink: &mut S) {
    let (d, _) = halves(b, 0);
    let table = _mm512_mul_ps(_mm512_sub_ps(nibble_values(), _mm512_set1_ps(8.0)), d);
    let (lo, hi) = lanes(b, 2);
    sink.put(at, look_up(lo, table));
    sink.put(at + 16, look_up(hi, table));
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
fn q8_0<S: Sink>(b: &[u8], at: usize, sink: &mut S) {
    let (d, _) = halves(b, 0);
    let value = |at: usize| _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes16(b, at)));
    sink.put_scaled(at, value(2), value(18), d);
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
/// the 32 bytes of chunk `c` (as blocks.rs). Each group's 16 values are formed once with one
/// rounding (`d1·q` is exact: an f16 times a 6-bit and a 4-bit integer), then looked up.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
fn q4_k<S: Sink>(b: &[u8], at: usize, factors: &[f32; 16], sink: &mut S) {
    let table = |j: usize| {
        _mm512_fmsub_ps(
            nibble_values(),
            _mm512_set1_ps(factors[j]),
            _mm512_set1_ps(factors[8 + j]),
        )
    };
    for c in 0..4 {
        let (low, high) = (table(2 * c), table(2 * c + 1));
        for h in 0..2 {
            let (lo, hi) = lanes(b, 16 + c * 32 + h * 16);
            sink.put(at + c * 64 + h * 16, look_up(lo, low));
            sink.put(at + c * 64 + 32 + h * 16, look_up(hi, high));
        }
    }
}

/// Q4_K blocks whose factors are unpacked ahead, a batch at a time.
const BATCH: usize = 16;

/// The run of Q4_K blocks: each batch's factors unpacked into memory first, then its blocks
/// decoded. Unpacked beside its block, LLVM kept the 16 factors in a register and broadcast each
/// with two shuffles, on the pipes the nibble lookups need; read back from memory, a broadcast
/// is part of the load.
#[inline(always)]
fn q4_k_run<S: Sink>(bytes: &[u8], sink: &mut S) {
    let mut factors = [[0f32; 16]; BATCH];
    for (n, batch) in bytes.chunks(BATCH * Q4_K::BYTES).enumerate() {
        let blocks = batch.chunks_exact(Q4_K::BYTES);
        for (f, b) in factors.iter_mut().zip(blocks.clone()) {
            // SAFETY: `q4_k_run` is only inlined into `blocks`, compiled with the features needed.
            *f = unsafe { scales_mins(b) };
        }
        for (i, (b, f)) in blocks.zip(&factors).enumerate() {
            // SAFETY: as above.
            unsafe {
                prefetch(b, PREFETCH_AHEAD);
                q4_k(b, (n * BATCH + i) * Q4_K::VALUES, f, sink);
            }
        }
    }
}

/// A Q4_K block's eight `d·sc` then eight `dmin·m` (each product exact), unpacked from its 12
/// bytes of 6-bit fields in one vector pass, as `scale_min` unpacks them one by one: one byte per
/// lane, the lane's field bits picked by a shift and a mask, and the two high bits of the fields
/// past the fourth from a second byte. One field at a time took scalar work on every group.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,f16c")]
fn scales_mins(b: &[u8]) -> [f32; 16] {
    // Lanes 0-7: scales 0-7; lanes 8-15: minimums 0-7. `packed[k]` is byte `4 + k` of the block.
    const LOW_BYTE: [i32; 16] = [0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11];
    const LOW_SHIFT: [i32; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4];
    const LOW_MASK: [i32; 16] = [
        63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 15, 15, 15, 15,
    ];
    const HIGH_BYTE: [i32; 16] = [0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 0, 0, 4, 5, 6, 7];
    const HIGH_MASK: [i32; 16] = [0, 0, 0, 0, 48, 48, 48, 48, 0, 0, 0, 0, 48, 48, 48, 48];
    let (d, dmin) = halves(b, 0);
    let packed = _mm512_cvtepu8_epi32(bytes16(b, 4));
    let vector = |v: [i32; 16]| {
        // SAFETY: `v` holds 16 i32.
        unsafe { _mm512_loadu_si512(v.as_ptr().cast()) }
    };
    let low = _mm512_and_si512(
        _mm512_srlv_epi32(
            _mm512_permutexvar_epi32(vector(LOW_BYTE), packed),
            vector(LOW_SHIFT),
        ),
        vector(LOW_MASK),
    );
    let high = _mm512_and_si512(
        _mm512_srli_epi32::<2>(_mm512_permutexvar_epi32(vector(HIGH_BYTE), packed)),
        vector(HIGH_MASK),
    );
    let fields = _mm512_cvtepi32_ps(_mm512_or_si512(low, high));
    let mut out = [0f32; 16];
    // SAFETY: `out` holds 16 f32.
    unsafe {
        _mm512_storeu_ps(
            out.as_mut_ptr(),
            _mm512_mul_ps(fields, _mm512_mask_blend_ps(0xff00, d, dmin)),
        );
    }
    out
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
