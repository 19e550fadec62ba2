//! The matrix-vector path (M = 1): one pass over B with no packing, so a weight is streamed once
//! at memory speed.
//!
//! Two layouts are handled, the rest go to the blocked path:
//! - NT, `b = w.t()` with `w` [N, K] row-major: each output is a dot product of x with a contiguous
//!   row of `w`, several rows at a time so x is loaded once per several: eight rows with explicit
//!   AVX-512 (two accumulators a row, prefetch ahead of each row: 1.5× the throughput LLVM's
//!   vectorization of the four-row loop reached), four rows in portable Rust elsewhere.
//! - NN, B row-major: C accumulates `x[p]·B[p, ..]` over p, a column chunk at a time so the
//!   partial sums stay in L1.
//!
//! The arithmetic is plain Rust written for LLVM to vectorize, compiled once per instruction set
//! (AVX-512, AVX2+FMA, baseline) and chosen at run time with the micro-kernel's backend.

#![expect(
    clippy::inline_always,
    reason = "the arithmetic must inline into each #[target_feature] wrapper to get its SIMD"
)]

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis, s};

use super::tile::finish;
use super::{Backend, Epilogue, threads};

/// Lanes per accumulator: one zmm, two ymm or four xmm registers.
const LANES: usize = 16;
/// How far ahead of the reads the prefetches go, in floats: 1 KiB of each row. Measured on Zen 5
/// (1×4096×4096, one thread, AVX-512 path): 128 to 256 floats gave 24-25 GFLOP/s, 512 gave 22,
/// 1024 20, 2048 18, and prefetching the line being read (no help at all) 21.
const PREFETCH: usize = 256;
/// Columns per chunk on the NN path: 1 KiB of partial sums, in L1 for the whole pass over K.
const CHUNK: usize = 256;
/// Columns a thread must get, so a part streams whole cache lines of several rows.
const MIN_COLS_PER_THREAD: usize = 64;

/// Whether the matrix-vector path handles this product: one row of A, contiguous, and B with
/// contiguous columns (NT) or rows (NN).
pub(crate) fn handles(a: &ArrayView2<f32>, b: &ArrayView2<f32>) -> bool {
    a.nrows() == 1
        && a.row(0).as_slice().is_some()
        && (is_nt(b) || b.row(0).as_slice().is_some() && b.ncols() > 0 && b.strides()[1] == 1)
}

fn is_nt(b: &ArrayView2<f32>) -> bool {
    b.nrows() <= 1 || b.strides()[0] == 1
}

/// `c = alpha·a·B + beta·c`, then the epilogue, for a product [`handles`] accepts.
pub(crate) fn gemv(
    backend: Backend,
    alpha: f32,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    beta: f32,
    c: ArrayViewMut2<f32>,
    epi: Epilogue,
) {
    let n = b.ncols();
    let parts = threads::count(n * b.nrows(), n / MIN_COLS_PER_THREAD);
    let x = a.row(0);
    if parts <= 1 {
        one(
            backend,
            alpha,
            x,
            b,
            beta,
            c.index_axis_move(Axis(0), 0),
            epi,
        );
        return;
    }
    threads::run_split(c, Axis(1), parts, MIN_COLS_PER_THREAD, &|j0, piece| {
        let width = piece.ncols();
        one(
            backend,
            alpha,
            x,
            b.slice(s![.., j0..j0 + width]),
            beta,
            piece.index_axis_move(Axis(0), 0),
            epi.columns(j0, width),
        );
    });
}

/// One thread's share, on the widest instruction set the backend allows.
fn one(
    backend: Backend,
    alpha: f32,
    x: ArrayView1<f32>,
    b: ArrayView2<f32>,
    beta: f32,
    c: ArrayViewMut1<f32>,
    epi: Epilogue,
) {
    let x = x
        .as_slice()
        .expect("handles() checked that x is contiguous");
    match backend {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a Backend is only used once `is_available` said the CPU has its features.
        Backend::Avx512 | Backend::Avx512Short => unsafe { one_avx512(alpha, x, b, beta, c, epi) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Backend::Avx2 => unsafe { one_avx2(alpha, x, b, beta, c, epi) },
        _ => one_impl::<false, false>(alpha, x, b, beta, c, epi),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn one_avx512(
    alpha: f32,
    x: &[f32],
    b: ArrayView2<f32>,
    beta: f32,
    c: ArrayViewMut1<f32>,
    epi: Epilogue,
) {
    one_impl::<true, true>(alpha, x, b, beta, c, epi);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn one_avx2(
    alpha: f32,
    x: &[f32],
    b: ArrayView2<f32>,
    beta: f32,
    c: ArrayViewMut1<f32>,
    epi: Epilogue,
) {
    one_impl::<true, false>(alpha, x, b, beta, c, epi);
}

/// `s + u·v`, fused when the instruction set has FMA (without it `mul_add` is a libm call).
#[inline(always)]
fn madd<const FMA: bool>(u: f32, v: f32, s: f32) -> f32 {
    if FMA { u.mul_add(v, s) } else { u * v + s }
}

#[inline(always)]
fn one_impl<const FMA: bool, const AVX512: bool>(
    alpha: f32,
    x: &[f32],
    b: ArrayView2<f32>,
    beta: f32,
    mut c: ArrayViewMut1<f32>,
    epi: Epilogue,
) {
    let mut put = |j: usize, acc: f32| {
        let bias = epi.bias.map_or(0.0, |bias| bias[j]);
        let dst = &mut c[j];
        // C is read only when beta asks for it (it may hold NaN when beta is 0).
        *dst = finish(acc, alpha, beta, || *dst, bias, epi.relu);
    };
    if is_nt(&b) {
        let rows = b.t();
        #[cfg(target_arch = "x86_64")]
        if AVX512 {
            let mut j = 0;
            for oct in rows.axis_chunks_iter(Axis(0), ROWS) {
                let mut sums = [0.0f32; ROWS];
                // SAFETY: AVX512 is set only by `one_avx512`, which runs on a CPU with AVX-512F;
                // each row of an NT weight is contiguous and as long as x.
                unsafe {
                    dots_avx512(
                        x,
                        |q| contiguous(oct.row(q)).as_ptr(),
                        oct.nrows(),
                        &mut sums,
                    );
                }
                for (q, &acc) in sums[..oct.nrows()].iter().enumerate() {
                    put(j + q, acc);
                }
                j += oct.nrows();
            }
            return;
        }
        let mut j = 0;
        for quad in rows.axis_chunks_iter(Axis(0), 4) {
            if quad.nrows() == 4 {
                let w = [0, 1, 2, 3].map(|q| contiguous(quad.row(q)));
                for (q, acc) in dot4::<FMA>(x, w).into_iter().enumerate() {
                    put(j + q, acc);
                }
            } else {
                for (q, row) in quad.rows().into_iter().enumerate() {
                    put(j + q, dot1::<FMA>(x, contiguous(row)));
                }
            }
            j += quad.nrows();
        }
    } else {
        for (chunk_index, chunk) in b.axis_chunks_iter(Axis(1), CHUNK).enumerate() {
            let mut acc = [0.0f32; CHUNK];
            for (row, &xp) in chunk.rows().into_iter().zip(x) {
                for (s, &v) in acc.iter_mut().zip(contiguous(row)) {
                    *s = madd::<FMA>(xp, v, *s);
                }
            }
            for (q, &sum) in acc[..chunk.ncols()].iter().enumerate() {
                put(chunk_index * CHUNK + q, sum);
            }
        }
    }
}

fn contiguous(v: ArrayView1<'_, f32>) -> &[f32] {
    v.to_slice()
        .expect("the layout was checked to be contiguous along this axis")
}

/// Dot products of `x` with four vectors of its length at once: x is loaded once per four, and
/// 4×16 independent lanes hide the FMA latency.
#[inline(always)]
fn dot4<const FMA: bool>(x: &[f32], w: [&[f32]; 4]) -> [f32; 4] {
    let mut acc = [[0.0f32; LANES]; 4];
    let whole = x.len() / LANES * LANES;
    let [w0, w1, w2, w3] = w;
    for ((((xs, a), b), c), d) in x[..whole]
        .chunks_exact(LANES)
        .zip(w0.chunks_exact(LANES))
        .zip(w1.chunks_exact(LANES))
        .zip(w2.chunks_exact(LANES))
        .zip(w3.chunks_exact(LANES))
    {
        prefetch_ahead([a, b, c, d]);
        for l in 0..LANES {
            acc[0][l] = madd::<FMA>(xs[l], a[l], acc[0][l]);
            acc[1][l] = madd::<FMA>(xs[l], b[l], acc[1][l]);
            acc[2][l] = madd::<FMA>(xs[l], c[l], acc[2][l]);
            acc[3][l] = madd::<FMA>(xs[l], d[l], acc[3][l]);
        }
    }
    let mut out = [0.0f32; 4];
    for ((o, lanes), v) in out.iter_mut().zip(&acc).zip(w) {
        let tail: f32 = x[whole..].iter().zip(&v[whole..]).map(|(u, v)| u * v).sum();
        *o = lanes.iter().sum::<f32>() + tail;
    }
    out
}

/// Asks for the lines [`PREFETCH`] floats past each chunk: four rows stream at once, more than
/// the hardware prefetcher runs ahead on by itself.
#[inline(always)]
fn prefetch_ahead(chunks: [&[f32]; 4]) {
    #[cfg(target_arch = "x86_64")]
    for chunk in chunks {
        let ahead = chunk.as_ptr().wrapping_add(PREFETCH).cast::<i8>();
        // SAFETY: a prefetch is a hint: it never faults, whatever the address.
        unsafe { core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(ahead) };
    }
}

/// The dot product of `x` with one vector of its length (the last rows of an NT weight).
#[inline(always)]
fn dot1<const FMA: bool>(x: &[f32], w: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let whole = x.len() / LANES * LANES;
    for (xs, ws) in x[..whole].chunks_exact(LANES).zip(w.chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] = madd::<FMA>(xs[l], ws[l], acc[l]);
        }
    }
    let tail: f32 = x[whole..].iter().zip(&w[whole..]).map(|(u, v)| u * v).sum();
    acc.iter().sum::<f32>() + tail
}

/// Rows of an NT weight the AVX-512 path streams at once.
const ROWS: usize = 8;

/// Dot products of `x` with `count <= ROWS` rows of its length (`row(q)` points at row q), into
/// `sums`: eight streams in flight, two zmm accumulators per row (32 floats a step), the next lines
/// of each row prefetched, and the tail of x read with a mask.
///
/// # Safety
/// The CPU must support AVX-512F, and each `row(q)` for q < count must point at `x.len()` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dots_avx512(
    x: &[f32],
    row: impl Fn(usize) -> *const f32,
    count: usize,
    sums: &mut [f32; ROWS],
) {
    use core::arch::x86_64::{
        __m512, _MM_HINT_T0, _mm_prefetch, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps,
        _mm512_maskz_loadu_ps, _mm512_reduce_add_ps, _mm512_setzero_ps,
    };
    let k = x.len();
    let xp = x.as_ptr();
    // Missing rows (count < ROWS) repeat the first, so the loop stays branch-free.
    let ptrs: [*const f32; ROWS] = std::array::from_fn(|q| row(if q < count { q } else { 0 }));
    let mut acc: [[__m512; 2]; ROWS] = [[_mm512_setzero_ps(); 2]; ROWS];
    let whole = k / 32 * 32;
    let mut p = 0;
    while p < whole {
        // SAFETY: p + 32 <= k, so x and every row hold the 32 floats read; a prefetch never faults.
        unsafe {
            let x0 = _mm512_loadu_ps(xp.add(p));
            let x1 = _mm512_loadu_ps(xp.add(p + 16));
            for (a, &r) in acc.iter_mut().zip(&ptrs) {
                _mm_prefetch::<_MM_HINT_T0>(r.wrapping_add(p + PREFETCH).cast());
                _mm_prefetch::<_MM_HINT_T0>(r.wrapping_add(p + PREFETCH + 16).cast());
                a[0] = _mm512_fmadd_ps(x0, _mm512_loadu_ps(r.add(p)), a[0]);
                a[1] = _mm512_fmadd_ps(x1, _mm512_loadu_ps(r.add(p + 16)), a[1]);
            }
        }
        p += 32;
    }
    while p < k {
        let width = (k - p).min(16);
        let mask = (u32::MAX >> (32 - width)) as u16;
        // SAFETY: the mask reads only the `width` floats left in x and in every row.
        unsafe {
            let xv = _mm512_maskz_loadu_ps(mask, xp.add(p));
            for (a, &r) in acc.iter_mut().zip(&ptrs) {
                a[0] = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(mask, r.add(p)), a[0]);
            }
        }
        p += width;
    }
    for (s, a) in sums.iter_mut().zip(&acc) {
        *s = _mm512_reduce_add_ps(_mm512_add_ps(a[0], a[1]));
    }
}

/// `c = alpha·x·B + beta·c`, then the epilogue, for one row `x` and B a prepacked weight's
/// AVX-512 panels (see [`super::PackedWeight`]): the M = 1 product of a forward pass at batch 1,
/// streamed panel by panel instead of padding one row to a 12-row tile.
///
/// `panels` is the weight's panel count, `kc` the depth of its blocks; `c` has `panels·32` or
/// fewer columns, all of this weight (its `col0` is 0).
#[expect(
    clippy::too_many_arguments,
    reason = "the pieces of a product and its panel layout"
)]
pub(crate) fn gemv_panels(
    alpha: f32,
    x: &[f32],
    data: &[f32],
    kc: usize,
    panels: usize,
    beta: f32,
    c: ArrayViewMut2<f32>,
    epi: Epilogue,
) {
    const NR: usize = super::avx512::NR;
    let n = c.ncols();
    assert!(data.len() >= panels * NR * x.len() && n <= panels * NR);
    let parts = threads::count(n * x.len(), n.div_ceil(NR));
    threads::run_split(c, Axis(1), parts, NR, &|j0, piece| {
        let width = piece.ncols();
        let out = piece.index_axis_move(Axis(0), 0);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: panels exist only for a backend available on this CPU, and this path is taken
        // for AVX-512 panels only; the data holds `panels` panels of 32 columns over all of x
        // (asserted above), and j0 is a multiple of 32.
        unsafe {
            panels_avx512(
                alpha,
                x,
                data,
                kc,
                panels,
                j0 / NR,
                beta,
                out,
                epi.columns(j0, width),
            );
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (alpha, x, data, kc, panels, beta, out, epi, width);
    });
}

/// One thread's columns of [`gemv_panels`], starting at panel `q0`.
///
/// # Safety
/// The CPU must support AVX-512F; `data` must hold `panels` panels of 32 columns over `x.len()`
/// rows, in blocks of `kc` rows, and `c` at most `(panels - q0)·32` columns.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[expect(
    clippy::too_many_arguments,
    reason = "the pieces of a product and its panel layout"
)]
unsafe fn panels_avx512(
    alpha: f32,
    x: &[f32],
    data: &[f32],
    kc_max: usize,
    panels: usize,
    q0: usize,
    beta: f32,
    mut c: ArrayViewMut1<f32>,
    epi: Epilogue,
) {
    use core::arch::x86_64::{
        _mm512_add_ps, _mm512_fmadd_ps, _mm512_load_ps, _mm512_set1_ps, _mm512_setzero_ps,
        _mm512_storeu_ps,
    };
    const NR: usize = super::avx512::NR;
    /// k steps in flight: four independent pairs of accumulators hide the FMA latency.
    const U: usize = 4;
    let k = x.len();
    let n = c.len();
    for (qi, j) in (0..n).step_by(NR).enumerate() {
        let q = q0 + qi;
        let mut acc = [[_mm512_setzero_ps(); 2]; U];
        for pc in (0..k).step_by(kc_max) {
            let kc = kc_max.min(k - pc);
            // Block pc starts after pc rows of every panel; panel q after q panels of kc rows.
            let block = &data[pc * panels * NR + q * kc * NR..][..kc * NR];
            let xs = &x[pc..pc + kc];
            let mut p = 0;
            while p + U <= kc {
                for (u, a) in acc.iter_mut().enumerate() {
                    // SAFETY: p + u < kc, so row p + u of the panel (32 floats, 64-byte aligned as
                    // packed panels are) is inside `block`.
                    unsafe {
                        let row = block.as_ptr().add((p + u) * NR);
                        let xv = _mm512_set1_ps(*xs.get_unchecked(p + u));
                        a[0] = _mm512_fmadd_ps(xv, _mm512_load_ps(row), a[0]);
                        a[1] = _mm512_fmadd_ps(xv, _mm512_load_ps(row.add(16)), a[1]);
                    }
                }
                p += U;
            }
            for (pp, &xp) in xs.iter().enumerate().skip(p) {
                // SAFETY: pp < kc, as above.
                unsafe {
                    let row = block.as_ptr().add(pp * NR);
                    let xv = _mm512_set1_ps(xp);
                    acc[0][0] = _mm512_fmadd_ps(xv, _mm512_load_ps(row), acc[0][0]);
                    acc[0][1] = _mm512_fmadd_ps(xv, _mm512_load_ps(row.add(16)), acc[0][1]);
                }
            }
        }
        let mut sums = [0.0f32; NR];
        let [a0, a1, a2, a3] = acc;
        for h in 0..2 {
            let v = _mm512_add_ps(_mm512_add_ps(a0[h], a1[h]), _mm512_add_ps(a2[h], a3[h]));
            // SAFETY: 16 floats into the 32-float array, at 0 or 16.
            unsafe { _mm512_storeu_ps(sums.as_mut_ptr().add(16 * h), v) };
        }
        for (jj, &sum) in sums.iter().enumerate().take(NR.min(n - j)) {
            let bias = epi.bias.map_or(0.0, |b| b[j + jj]);
            let dst = &mut c[j + jj];
            *dst = finish(sum, alpha, beta, || *dst, bias, epi.relu);
        }
    }
}
