//! The matrix-vector path (M = 1): one pass over B with no packing, so a weight is streamed once
//! at memory speed.
//!
//! Two layouts are handled, the rest go to the blocked path:
//! - NT, `b = w.t()` with `w` [N, K] row-major: each output is a dot product of x with a contiguous
//!   row of `w`, four rows at a time so x is loaded once per four.
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
/// How far ahead of the reads the prefetches go, in floats.
const PREFETCH: usize = 1024;
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
        _ => one_impl::<false>(alpha, x, b, beta, c, epi),
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
    one_impl::<true>(alpha, x, b, beta, c, epi);
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
    one_impl::<true>(alpha, x, b, beta, c, epi);
}

/// `s + u·v`, fused when the instruction set has FMA (without it `mul_add` is a libm call).
#[inline(always)]
fn madd<const FMA: bool>(u: f32, v: f32, s: f32) -> f32 {
    if FMA { u.mul_add(v, s) } else { u * v + s }
}

#[inline(always)]
fn one_impl<const FMA: bool>(
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
        let old = *dst;
        *dst = finish(acc, alpha, beta, || old, bias, epi.relu);
    };
    if is_nt(&b) {
        let rows = b.t();
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
