//! Matrix multiplication: the one door through which every product in paramscope passes.
//!
//! `matmul`, `gemm` and `gemm_packed` accept views of any layout (row-major, column-major,
//! transposed, strided) and check shapes before any arithmetic; `linear_packed` is `gemm_packed`
//! for a forward pass's flat C-order slices. Inside, a product takes one of three paths:
//! - tiny products (small.rs): a direct loop, no packing, no threads, no allocation;
//! - M = 1 (gemv.rs): one streaming pass over B, or over a prepacked weight's panels;
//! - the rest (driver.rs): the five BLIS loops with packed panels (pack.rs, blocking.rs) around a
//!   micro-kernel chosen at run time (avx512.rs, avx2.rs, generic.rs), reading a small row-major A
//!   in place where the micro-kernel can, and split across a persistent pool of threads
//!   (threads.rs) when the product is big enough.
//!
//! `unsafe` lives only in the micro-kernels, their write-out (tile.rs) and the calls that
//! dispatch to code compiled for an instruction set, each block with its `SAFETY` argument.
#![expect(
    unsafe_code,
    reason = "SIMD micro-kernels write C through raw pointers and need CPU-feature dispatch"
)]
#![expect(
    clippy::needless_pass_by_value,
    reason = "ndarray views are cheap handles, passed by value as ndarray's own API does"
)]

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod blocking;
mod driver;
mod gemv;
mod generic;
mod pack;
mod packed;
pub mod quant;
mod reference;
mod small;
mod threads;
mod tile;

pub use packed::PackedWeight;
pub use reference::gemm_reference;
pub use threads::max_threads;

/// How many parts to cut `work` multiply-adds' worth of independent work into, at most `units`
/// pieces: the rule the products themselves follow (1 when it is too little for a second thread,
/// or `PARAMSCOPE_THREADS=1`; else a few per thread, claimed as threads come free).
#[must_use]
pub fn parts_for(work: usize, units: usize) -> usize {
    threads::parts(work, units)
}

/// Runs `work(i)` for every `i < parts` on the products' thread pool (part 0 on the calling
/// thread), returning when all are done; a panic in a part is raised again here.
///
/// For the work around the products that splits the same way (attention's heads, an activation's
/// blocks): sharing the pool keeps the machine at one thread per core. A product inside a part
/// finds the pool busy and runs on its part's thread alone.
pub fn run_parts(parts: usize, work: &(dyn Fn(usize) + Sync)) {
    threads::run(parts, work);
}

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, s};

use driver::{BSource, MicroKernel};
use packed::PackedSource;

/// What happens to each element of C after `alpha·A·B + beta·C`, in the same pass: a bias per
/// column, then `ReLU`.
///
/// For a Linear layer, `C = x·wᵀ`, so the columns are the layer's outputs and the bias is the
/// layer's. `ReLU` keeps NaN, as `PyTorch`'s does.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// Added to every row of C; one value per column.
    pub bias: Option<&'a [f32]>,
    /// Replace negative results by zero.
    pub relu: bool,
}

impl Epilogue<'_> {
    /// The epilogue of the columns `j0 .. j0 + width`.
    fn columns(self, j0: usize, width: usize) -> Self {
        Self {
            bias: self.bias.map(|b| &b[j0..j0 + width]),
            relu: self.relu,
        }
    }
}

/// A micro-kernel implementation, for tests and benchmarks that force one.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// 12×32 tile in zmm registers; x86-64 with AVX-512F.
    Avx512,
    /// 8×32 tile in zmm registers, which `Avx512` switches to for products of few rows that are
    /// closer to a multiple of 8 than of 12; x86-64 with AVX-512F.
    Avx512Short,
    /// 6×16 tile in ymm registers; x86-64 with AVX2 and FMA.
    Avx2,
    /// 4×8 tile of plain Rust that LLVM vectorizes; everywhere.
    Generic,
}

impl Backend {
    /// Whether this CPU can run the backend.
    #[must_use]
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 | Self::Avx512Short => is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            Self::Generic => true,
            #[cfg(not(target_arch = "x86_64"))]
            Self::Avx512 | Self::Avx512Short | Self::Avx2 => false,
        }
    }

    /// The fastest backend this CPU can run.
    #[must_use]
    pub fn best() -> Self {
        [Self::Avx512, Self::Avx2]
            .into_iter()
            .find(|b| b.is_available())
            .unwrap_or(Self::Generic)
    }

    /// The register tile and block sizes, `[MR, NR, MC, KC, NC]`, so tests can aim just past each
    /// edge.
    #[must_use]
    pub fn block_sizes(self) -> [usize; 5] {
        let uk = self.micro_kernel();
        let b = blocking::Blocking::new(uk.mr, uk.nr);
        [uk.mr, uk.nr, b.mc, b.kc, b.nc]
    }

    /// The backend's micro-kernel; callers make sure the backend is available.
    fn micro_kernel(self) -> MicroKernel {
        assert!(self.is_available(), "{self:?} is not available on this CPU");
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => MicroKernel {
                mr: avx512::MR,
                nr: avx512::NR,
                run: avx512::kernel,
                unpacked: Some(avx512::kernel_unpacked),
                short: Some(&AVX512_SHORT),
            },
            #[cfg(target_arch = "x86_64")]
            Self::Avx512Short => AVX512_SHORT,
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => MicroKernel {
                mr: avx2::MR,
                nr: avx2::NR,
                run: avx2::kernel,
                unpacked: None,
                short: None,
            },
            _ => MicroKernel {
                mr: generic::MR,
                nr: generic::NR,
                run: generic::kernel,
                unpacked: None,
                short: None,
            },
        }
    }
}

/// The 8×32 AVX-512 kernel, which the 12×32 one hands products of few rows to.
#[cfg(target_arch = "x86_64")]
static AVX512_SHORT: MicroKernel = MicroKernel {
    mr: avx512::MR_SHORT,
    nr: avx512::NR,
    run: avx512::kernel_short,
    unpacked: Some(avx512::kernel_short_unpacked),
    short: None,
};

/// Returns `a · b`.
///
/// # Panics
/// When the inner dimensions differ (`a` is m×k, `b` must be k×n).
#[must_use]
pub fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let mut c = Array2::zeros((a.nrows(), b.ncols()));
    gemm(1.0, a, b, 0.0, c.view_mut());
    c
}

/// Computes `C = alpha·A·B + beta·C` in place.
///
/// When `beta` is zero, `C` is written without being read, so NaN already in `C` does not leak.
///
/// # Panics
/// When the shapes do not agree: `a` m×k, `b` k×n, `c` m×n.
pub fn gemm(alpha: f32, a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, c: ArrayViewMut2<f32>) {
    check_shapes(&a, &b, &c);
    dispatch(alpha, a, b, beta, c, Epilogue::default());
}

/// Computes `C = alpha·A·wᵀ + beta·C`, then the epilogue, with a prepacked Linear weight `w`.
///
/// This is a Linear layer's forward pass (`alpha = 1`, `beta = 0`, the layer's bias): it writes
/// into the caller's `c`, and for small layers it allocates nothing.
///
/// # Panics
/// When the shapes do not agree: `a` m×in, `c` m×out, the bias `out` values.
pub fn gemm_packed(
    alpha: f32,
    a: ArrayView2<f32>,
    w: &PackedWeight,
    beta: f32,
    c: ArrayViewMut2<f32>,
    epilogue: Epilogue<'_>,
) {
    assert_eq!(
        a.ncols(),
        w.in_features(),
        "gemm_packed: A has {} columns but the weight has {} inputs",
        a.ncols(),
        w.in_features()
    );
    assert_eq!(
        c.dim(),
        (a.nrows(), w.out_features()),
        "gemm_packed: C is {:?} but A·wᵀ is {}x{}",
        c.dim(),
        a.nrows(),
        w.out_features()
    );
    check_bias(epilogue, w.out_features());
    packed_product(alpha, a, w, beta, c, epilogue);
}

/// `y = x·wᵀ`, then the epilogue, for C-order `x` [rows, in] and `y` [rows, out] given as flat
/// slices: [`gemm_packed`] for a forward pass that keeps its activations as vectors, without the
/// cost of checking a view's shape and strides on every call (a tenth of a tiny layer's time).
///
/// # Panics
/// When `x` does not hold `rows·in` values, `y` `rows·out`, or the bias `out`.
pub fn linear_packed(
    x: &[f32],
    rows: usize,
    w: &PackedWeight,
    y: &mut [f32],
    epilogue: Epilogue<'_>,
) {
    let (k, n) = (w.in_features(), w.out_features());
    // Checked products: a wrapped rows·k would make the views below longer than the slices.
    assert_eq!(
        Some(x.len()),
        rows.checked_mul(k),
        "linear_packed: x is not rows·in values"
    );
    assert_eq!(
        Some(y.len()),
        rows.checked_mul(n),
        "linear_packed: y is not rows·out values"
    );
    check_bias(epilogue, n);
    // SAFETY: `x` holds rows·k floats and `y` rows·n (asserted above), so C-order views of those
    // shapes stay inside them; `y` is borrowed uniquely for the view's life.
    let (a, c) = unsafe {
        (
            ArrayView2::from_shape_ptr((rows, k), x.as_ptr()),
            ArrayViewMut2::from_shape_ptr((rows, n), y.as_mut_ptr()),
        )
    };
    packed_product(1.0, a, w, 0.0, c, epilogue);
}

/// [`gemm_packed`] once its shapes are checked.
fn packed_product(
    alpha: f32,
    a: ArrayView2<f32>,
    w: &PackedWeight,
    beta: f32,
    c: ArrayViewMut2<f32>,
    epilogue: Epilogue<'_>,
) {
    if alpha == 0.0 || a.ncols() == 0 {
        // As BLAS: A·B is not formed, so Inf or NaN in A or B cannot leak through 0·x.
        driver::scale(beta, c, epilogue);
        return;
    }
    match w.source() {
        PackedSource::Plain(b) => dispatch(alpha, a, b, beta, c, epilogue),
        #[cfg(target_arch = "x86_64")]
        PackedSource::Panels(
            Backend::Avx512,
            BSource::Panels {
                data, kc, panels, ..
            },
        ) if a.nrows() == 1 && a.row(0).as_slice().is_some() => {
            let x = a.row(0);
            let x = x.as_slice().expect("checked contiguous");
            gemv::gemv_panels(alpha, x, data, kc, panels, beta, c, epilogue);
        }
        PackedSource::Panels(backend, b) => {
            let uk = backend.micro_kernel().for_rows(&a);
            blocked(uk, alpha, a, b, beta, c, epilogue);
        }
    }
}

/// [`gemm`] through the blocked path with a chosen micro-kernel, bypassing the direct and
/// matrix-vector paths, so tests reach every micro-kernel's edge tiles.
///
/// # Panics
/// As [`gemm`], and when the backend is not available on this CPU.
#[doc(hidden)]
pub fn gemm_with(
    backend: Backend,
    alpha: f32,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    beta: f32,
    c: ArrayViewMut2<f32>,
) {
    check_shapes(&a, &b, &c);
    let uk = backend.micro_kernel();
    blocked(uk, alpha, a, BSource::View(b), beta, c, Epilogue::default());
}

/// Picks the path for a product whose shapes are checked.
fn dispatch(
    alpha: f32,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    beta: f32,
    c: ArrayViewMut2<f32>,
    epi: Epilogue,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    if alpha == 0.0 || k == 0 {
        // As BLAS: A·B is not formed, so every path agrees when A or B holds Inf or NaN.
        driver::scale(beta, c, epi);
        return;
    }
    if m.saturating_mul(n).saturating_mul(k) <= small::MAX_WORK {
        small::gemm_small(alpha, a, b, beta, c, epi);
    } else if gemv::handles(&a, &b) {
        gemv::gemv(Backend::best(), alpha, a, b, beta, c, epi);
    } else {
        let uk = Backend::best().micro_kernel().for_rows(&a);
        blocked(uk, alpha, a, BSource::View(b), beta, c, epi);
    }
}

/// The blocked path, split across threads along the longer side of C when it is big enough.
fn blocked(
    uk: MicroKernel,
    alpha: f32,
    a: ArrayView2<f32>,
    b: BSource,
    beta: f32,
    c: ArrayViewMut2<f32>,
    epi: Epilogue,
) {
    let (m, k) = a.dim();
    let n = c.ncols();
    let (axis, unit) = if n >= m {
        (Axis(1), uk.nr)
    } else {
        (Axis(0), uk.mr)
    };
    let (work, units) = (m * n * k, c.len_of(axis).div_ceil(unit));
    // A product with prepacked weights (a forward pass's) is cut a few parts per thread, measured
    // to even out a slow core. Others are cut once per thread: each part packs the B it uses (the
    // whole B, for a split by rows) and reads A again, and 2048³ on two threads measured 233
    // GFLOP/s cut finer against 303 and 282 cut once per thread (single runs on a noisy VM).
    let parts = match b {
        BSource::Panels { .. } => threads::parts(work, units),
        BSource::View(_) => threads::count(work, units),
    };
    if parts <= 1 {
        driver::gemm_blocked(uk, alpha, a, b, beta, c, epi);
        return;
    }
    threads::run_split(c, axis, parts, unit, &|start, piece| {
        let (rows, cols) = piece.dim();
        if axis == Axis(1) {
            let (b, epi) = (b.columns(start, cols), epi.columns(start, cols));
            driver::gemm_blocked(uk, alpha, a, b, beta, piece, epi);
        } else {
            let a = a.slice(s![start..start + rows, ..]);
            driver::gemm_blocked(uk, alpha, a, b, beta, piece, epi);
        }
    });
}

fn check_shapes(a: &ArrayView2<f32>, b: &ArrayView2<f32>, c: &ArrayViewMut2<f32>) {
    assert_eq!(
        a.ncols(),
        b.nrows(),
        "matmul: inner dimensions differ ({}x{} times {}x{})",
        a.nrows(),
        a.ncols(),
        b.nrows(),
        b.ncols()
    );
    assert_eq!(
        c.dim(),
        (a.nrows(), b.ncols()),
        "gemm: C is {:?} but A·B is {}x{}",
        c.dim(),
        a.nrows(),
        b.ncols()
    );
}

fn check_bias(epi: Epilogue, n: usize) {
    if let Some(bias) = epi.bias {
        assert_eq!(
            bias.len(),
            n,
            "gemm: the bias has {} values for {n} columns",
            bias.len()
        );
    }
}
