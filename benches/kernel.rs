//! The kernel against its peers, `matrixmultiply` and the `gemm` crate (candle's engine), in GFLOP/s.
//!
//! Throughput is counted in floating-point operations (2·m·k·n per product), so divan's
//! "item/s" column reads as FLOP/s. Threads come from the environment, the same for everyone:
//! `PARAMSCOPE_THREADS` for paramscope and for the `gemm` crate's `Parallelism`,
//! `MATMUL_NUM_THREADS` for `matrixmultiply`. BENCHMARKS.md has the commands.
#![expect(
    unsafe_code,
    reason = "the peers' entry points take raw pointers and strides"
)]

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use ndarray::{Array2, ArrayView2};
use paramscope::kernel::{Epilogue, PackedWeight, gemm, gemm_packed};
use paramscope::model::forward::{ForwardBuffers, ForwardPlan};

fn main() {
    divan::main();
}

/// An `m×k · k×n` product, with B either row-major (NN) or the transpose of a row-major `[n, k]`
/// Linear weight (NT: `b = w.t()`).
#[derive(Clone, Copy, Debug)]
struct Shape {
    m: usize,
    k: usize,
    n: usize,
    nt: bool,
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { m, k, n, nt } = self;
        write!(f, "{m}x{k}x{n}{}", if *nt { " NT" } else { "" })
    }
}

const fn nn(n: usize) -> Shape {
    Shape {
        m: n,
        k: n,
        n,
        nt: false,
    }
}

const fn nt(m: usize, k: usize, n: usize) -> Shape {
    Shape { m, k, n, nt: true }
}

const SHAPES: &[Shape] = &[
    nn(64),
    nn(128),
    nn(256),
    nn(512),
    nn(1024),
    nn(2048),
    nt(32, 4096, 4096),
    nt(1, 4096, 4096),
    nt(64, 256, 512),
    nt(2, 4, 8),
];

/// The operands of one product: A `[m, k]`, the stored B (`[k, n]`, or `[n, k]` for NT).
struct Operands {
    a: Array2<f32>,
    stored_b: Array2<f32>,
    shape: Shape,
}

impl Operands {
    fn new(shape: Shape) -> Self {
        let Shape { m, k, n, nt } = shape;
        let value = |i: usize, j: usize| ((i * 31 + j * 17) % 97) as f32 / 97.0 - 0.5;
        let b_dim = if nt { (n, k) } else { (k, n) };
        Self {
            a: Array2::from_shape_fn((m, k), |(i, j)| value(i, j)),
            stored_b: Array2::from_shape_fn(b_dim, |(i, j)| value(j, i)),
            shape,
        }
    }

    /// B as the `k×n` operand: the stored array, or its transpose for NT.
    fn b(&self) -> ArrayView2<'_, f32> {
        if self.shape.nt {
            self.stored_b.t()
        } else {
            self.stored_b.view()
        }
    }

    /// A C to write into.
    fn c(&self) -> Array2<f32> {
        Array2::zeros((self.shape.m, self.shape.n))
    }

    fn flops(&self) -> ItemsCount {
        let Shape { m, k, n, .. } = self.shape;
        ItemsCount::new(2 * m * k * n)
    }
}

/// Threads for the `gemm` crate, from the variable that caps paramscope's.
fn gemm_crate_parallelism() -> gemm::Parallelism {
    let threads = std::env::var("PARAMSCOPE_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

/// Larger products need fewer samples to be measured well; 2 s per benchmark at most.
const MAX_TIME: f64 = 2.0;

#[divan::bench(args = SHAPES, max_time = MAX_TIME)]
fn paramscope(bencher: Bencher, shape: Shape) {
    let ops = Operands::new(shape);
    let mut c = ops.c();
    bencher.counter(ops.flops()).bench_local(|| {
        gemm(
            1.0,
            black_box(ops.a.view()),
            black_box(ops.b()),
            0.0,
            c.view_mut(),
        );
    });
}

/// The forward-pass path: B = wᵀ packed once, outside the timed loop.
#[divan::bench(args = SHAPES.iter().copied().filter(|s| s.nt), max_time = MAX_TIME)]
fn paramscope_prepacked(bencher: Bencher, shape: Shape) {
    let ops = Operands::new(shape);
    let mut c = ops.c();
    let packed = PackedWeight::new(ops.stored_b.view());
    bencher.counter(ops.flops()).bench_local(|| {
        let x = black_box(ops.a.view());
        gemm_packed(1.0, x, &packed, 0.0, c.view_mut(), Epilogue::default());
    });
}

#[divan::bench(args = SHAPES, max_time = MAX_TIME)]
fn matrixmultiply(bencher: Bencher, shape: Shape) {
    let ops = Operands::new(shape);
    let mut c = ops.c();
    let Shape { m, k, n, .. } = shape;
    bencher.counter(ops.flops()).bench_local(|| {
        let (a, b) = (ops.a.view(), ops.b());
        let (rsc, csc) = (c.strides()[0], c.strides()[1]);
        // SAFETY: the pointers and strides describe live m×k, k×n and m×n arrays, C is unaliased.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                black_box(a.as_ptr()),
                a.strides()[0],
                a.strides()[1],
                black_box(b.as_ptr()),
                b.strides()[0],
                b.strides()[1],
                0.0,
                c.as_mut_ptr(),
                rsc,
                csc,
            );
        }
    });
}

#[divan::bench(args = SHAPES, max_time = MAX_TIME)]
fn gemm_crate(bencher: Bencher, shape: Shape) {
    let ops = Operands::new(shape);
    let mut c = ops.c();
    let Shape { m, k, n, .. } = shape;
    let parallelism = gemm_crate_parallelism();
    bencher.counter(ops.flops()).bench_local(|| {
        let (a, b) = (ops.a.view(), ops.b());
        let (rsc, csc) = (c.strides()[0], c.strides()[1]);
        // SAFETY: as for matrixmultiply; with read_dst = false the crate computes C = 1·A·B.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                csc,
                rsc,
                false,
                black_box(a.as_ptr()),
                a.strides()[1],
                a.strides()[0],
                black_box(b.as_ptr()),
                b.strides()[1],
                b.strides()[0],
                0.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
    });
}

/// One forward pass of the chapter's `rgnet` at batch 2 with reused buffers: what
/// `paramscope forward demo:rgnet --batch 2 --repeat N` times (benches/peers_torch.py is PyTorch's).
#[divan::bench(max_time = MAX_TIME)]
fn forward_rgnet_batch2(bencher: Bencher) {
    let model = paramscope::model::demos::build("rgnet", 0).expect("a demo");
    let plan = ForwardPlan::new(&model).expect("rgnet runs");
    let x = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[2, 4]), |i| i[1] as f32 / 4.0);
    let mut buffers = ForwardBuffers::default();
    bencher.bench_local(|| {
        plan.run_reusing(&mut buffers, black_box(&x))
            .expect("the input fits")
            .len()
    });
}
