//! The kernel against its reference loop: every small shape, the shapes just past each block edge,
//! every layout, every micro-kernel, the fused epilogue and prepacked weights.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, ShapeBuilder, s};
use paramscope::kernel::{
    Backend, Epilogue, PackedWeight, gemm, gemm_packed, gemm_reference, gemm_with, matmul,
};
use proptest::prelude::*;

/// How a matrix is laid out in memory.
#[derive(Clone, Copy, Debug)]
enum Layout {
    RowMajor,
    ColMajor,
    /// `.t()` of a row-major array of the transposed shape.
    Transposed,
    /// Every other row and column of a larger array.
    Strided,
    /// Rows in reverse order: a negative row stride.
    Reversed,
}

const LAYOUTS: [Layout; 4] = [
    Layout::RowMajor,
    Layout::ColMajor,
    Layout::Transposed,
    Layout::Strided,
];

/// Storage for a matrix in some layout, and the view of it.
struct Matrix {
    store: Array2<f32>,
    layout: Layout,
}

impl Matrix {
    /// A `rows`×`cols` matrix laid out as asked, holding `values(i, j)`.
    fn new(rows: usize, cols: usize, layout: Layout, mut values: impl FnMut() -> f32) -> Self {
        let store = match layout {
            Layout::RowMajor | Layout::Reversed => {
                Array2::from_shape_fn((rows, cols), |_| values())
            }
            Layout::ColMajor => Array2::from_shape_fn((rows, cols).f(), |_| values()),
            Layout::Transposed => Array2::from_shape_fn((cols, rows), |_| values()),
            Layout::Strided => Array2::from_shape_fn((2 * rows, 2 * cols), |_| values()),
        };
        Self { store, layout }
    }

    fn view(&self) -> ArrayView2<'_, f32> {
        match self.layout {
            Layout::RowMajor | Layout::ColMajor => self.store.view(),
            Layout::Transposed => self.store.t(),
            Layout::Strided => self.store.slice(s![..;2, ..;2]),
            Layout::Reversed => self.store.slice(s![..;-1, ..]),
        }
    }

    fn view_mut(&mut self) -> ArrayViewMut2<'_, f32> {
        match self.layout {
            Layout::RowMajor | Layout::ColMajor => self.store.view_mut(),
            Layout::Transposed => self.store.view_mut().reversed_axes(),
            Layout::Strided => self.store.slice_mut(s![..;2, ..;2]),
            Layout::Reversed => self.store.slice_mut(s![..;-1, ..]),
        }
    }
}

/// A tiny xorshift generator: tests stay deterministic without another dependency.
struct Rng(u64);

impl Rng {
    /// A value in [-1, 1).
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// One product to check.
#[derive(Clone, Copy, Debug)]
struct Case {
    m: usize,
    k: usize,
    n: usize,
    la: Layout,
    lb: Layout,
    lc: Layout,
    alpha: f32,
    beta: f32,
}

/// The path under test: the public entry (which picks its own path) or a forced micro-kernel.
#[derive(Clone, Copy, Debug)]
enum Path {
    Auto,
    Forced(Backend),
}

const SCALARS: [f32; 3] = [0.0, 1.0, 0.5];

fn backends() -> Vec<Backend> {
    [
        Backend::Avx512,
        Backend::Avx512Short,
        Backend::Avx2,
        Backend::Generic,
    ]
    .into_iter()
    .filter(|b| b.is_available())
    .collect()
}

fn paths() -> Vec<Path> {
    let mut paths = vec![Path::Auto];
    paths.extend(backends().into_iter().map(Path::Forced));
    paths
}

/// Runs the case through `path` and through the reference, and compares.
fn check(path: Path, case: Case, seed: u64) {
    let Case {
        m,
        k,
        n,
        la,
        lb,
        lc,
        alpha,
        beta,
    } = case;
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let a = Matrix::new(m, k, la, || rng.next());
    let b = Matrix::new(k, n, lb, || rng.next());
    // beta == 0 must not read C: fill it with NaN so a read would show.
    let fill = |rng: &mut Rng| if beta == 0.0 { f32::NAN } else { rng.next() };
    let mut c = Matrix::new(m, n, lc, || fill(&mut rng));
    let mut want = c.view().to_owned();
    gemm_reference(alpha, a.view(), b.view(), beta, want.view_mut());
    match path {
        Path::Auto => gemm(alpha, a.view(), b.view(), beta, c.view_mut()),
        Path::Forced(backend) => gemm_with(backend, alpha, a.view(), b.view(), beta, c.view_mut()),
    }
    assert_close(&c.view(), &want.view(), k, &format!("{path:?} {case:?}"));
}

/// Products of values in [-1, 1) summed over k: the rounding error grows with k.
fn assert_close(got: &ArrayView2<f32>, want: &ArrayView2<f32>, k: usize, what: &str) {
    let tol = 1e-5 * (k as f32 + 1.0);
    for ((i, j), &w) in want.indexed_iter() {
        let g = got[[i, j]];
        assert!(
            (g - w).abs() <= tol || g.is_nan() && w.is_nan(),
            "{what}: C[{i},{j}] = {g}, want {w}"
        );
    }
}

#[test]
fn every_small_shape_every_layout() {
    // Each shape is tried in two layout combinations; the layouts and the scalars rotate with a
    // counter, so every combination meets every size class across the sweep without the product
    // of all of them (which would take minutes in a debug build).
    let mut count = 0usize;
    for path in paths() {
        for m in 0..=17 {
            for k in 0..=17 {
                for n in 0..=17 {
                    for _ in 0..2 {
                        count += 1;
                        let case = Case {
                            m,
                            k,
                            n,
                            la: LAYOUTS[count % 4],
                            lb: LAYOUTS[count / 4 % 4],
                            lc: [Layout::RowMajor, Layout::ColMajor, Layout::Strided]
                                [count / 3 % 3],
                            alpha: SCALARS[count % 3],
                            beta: SCALARS[count / 5 % 3],
                        };
                        check(path, case, count as u64);
                    }
                }
            }
        }
    }
}

#[test]
fn every_layout_and_scalar_pair() {
    for path in paths() {
        for (i, (la, lb)) in LAYOUTS
            .iter()
            .flat_map(|&a| LAYOUTS.map(|b| (a, b)))
            .enumerate()
        {
            for lc in [
                Layout::RowMajor,
                Layout::ColMajor,
                Layout::Strided,
                Layout::Reversed,
            ] {
                for alpha in SCALARS {
                    for beta in SCALARS {
                        let case = Case {
                            m: 13,
                            k: 11,
                            n: 19,
                            la,
                            lb,
                            lc,
                            alpha,
                            beta,
                        };
                        check(path, case, i as u64);
                    }
                }
            }
        }
    }
}

#[test]
fn just_past_each_block_edge() {
    for backend in backends() {
        let [mr, nr, mc, kc, _] = backend.block_sizes();
        let shapes = [
            (mr + 1, 7, nr + 1, Layout::RowMajor),
            (2 * mr + 1, kc + 1, nr - 1, Layout::ColMajor),
            (mc + 1, 9, 2 * nr + 1, Layout::Transposed),
            (mr - 1, 2 * kc + 1, nr + 1, Layout::Strided),
        ];
        for (i, (m, k, n, layout)) in shapes.into_iter().enumerate() {
            let case = Case {
                m,
                k,
                n,
                la: layout,
                lb: LAYOUTS[(i + 1) % 4],
                lc: Layout::RowMajor,
                alpha: 0.5,
                beta: SCALARS[i % 3],
            };
            check(Path::Forced(backend), case, i as u64);
            check(Path::Auto, case, i as u64);
        }
    }
}

#[test]
fn threads_split_uneven_shapes() {
    // Big enough to be split across threads (when the machine has several), with sides that do
    // not divide evenly: once split by columns, once by rows.
    for (m, k, n) in [(67, 130, 301), (301, 130, 67)] {
        let case = Case {
            m,
            k,
            n,
            la: Layout::RowMajor,
            lb: Layout::Transposed,
            lc: Layout::RowMajor,
            alpha: 1.0,
            beta: 0.5,
        };
        check(Path::Auto, case, 7);
    }
}

#[test]
fn matrix_vector_layouts() {
    // M = 1 takes the streaming path when A's row and B's rows or columns are contiguous.
    for (k, n) in [
        (300, 70),
        (64, 129),
        (17, 301),
        (1000, 5),
        (48, 9),
        (31, 16),
    ] {
        for lb in [
            Layout::RowMajor,
            Layout::Transposed,
            Layout::Strided,
            Layout::Reversed,
        ] {
            for (alpha, beta) in [(1.0, 0.0), (0.5, 0.5)] {
                let case = Case {
                    m: 1,
                    k,
                    n,
                    la: Layout::RowMajor,
                    lb,
                    lc: Layout::RowMajor,
                    alpha,
                    beta,
                };
                check(Path::Auto, case, k as u64);
            }
        }
    }
}

#[test]
fn matmul_is_gemm_with_zero_c() {
    let a = Array2::from_shape_fn((5, 3), |(i, j)| (i * 3 + j) as f32);
    let b = Array2::from_shape_fn((3, 4), |(i, j)| i as f32 - j as f32);
    let mut want = Array2::zeros((5, 4));
    gemm_reference(1.0, a.view(), b.view(), 0.0, want.view_mut());
    assert_eq!(matmul(a.view(), b.view()), want);
}

#[test]
#[should_panic(expected = "inner dimensions differ")]
fn inner_dimensions_must_agree() {
    let _ = matmul(Array2::zeros((2, 3)).view(), Array2::zeros((4, 2)).view());
}

/// A Linear layer's forward pass, `C = alpha·x·wᵀ + beta·C + bias`, then `ReLU`, by the reference.
fn linear_reference(
    alpha: f32,
    x: &ArrayView2<f32>,
    w: &ArrayView2<f32>,
    beta: f32,
    c: &mut Array2<f32>,
    epi: Epilogue,
) {
    gemm_reference(alpha, x.view(), w.t(), beta, c.view_mut());
    for mut row in c.rows_mut() {
        for (j, v) in row.iter_mut().enumerate() {
            *v += epi.bias.map_or(0.0, |b| b[j]);
            if epi.relu && *v < 0.0 {
                *v = 0.0;
            }
        }
    }
}

fn check_packed(
    packed: &PackedWeight,
    w: &Array2<f32>,
    m: usize,
    beta: f32,
    relu: bool,
    seed: u64,
) {
    let (n, k) = w.dim();
    let mut rng = Rng(seed | 1);
    let x = Array2::from_shape_fn((m, k), |_| rng.next());
    let bias: Vec<f32> = (0..n).map(|_| rng.next()).collect();
    let fill = |rng: &mut Rng| if beta == 0.0 { f32::NAN } else { rng.next() };
    let mut c = Array2::from_shape_fn((m, n), |_| fill(&mut rng));
    for epi in [
        Epilogue::default(),
        Epilogue {
            bias: Some(&bias),
            relu,
        },
    ] {
        let mut got = c.clone();
        let mut want = c.clone();
        linear_reference(0.5, &x.view(), &w.view(), beta, &mut want, epi);
        gemm_packed(0.5, x.view(), packed, beta, got.view_mut(), epi);
        assert_close(
            &got.view(),
            &want.view(),
            k,
            &format!("{packed:?} m={m} beta={beta} {epi:?}"),
        );
    }
    c.fill(0.0);
}

#[test]
fn prepacked_weights_with_epilogue() {
    let mut seed = 1;
    for backend in backends() {
        let [mr, nr, _, kc, _] = backend.block_sizes();
        for (n, k) in [(1, 1), (nr + 1, 3), (2 * nr - 1, kc + 1), (5, 2 * kc + 3)] {
            let mut rng = Rng(seed);
            let w = Array2::from_shape_fn((n, k), |_| rng.next());
            let packed = PackedWeight::with_backend(backend, w.view());
            for m in [0, 1, mr - 1, mr + 1] {
                seed += 1;
                check_packed(
                    &packed,
                    &w,
                    m,
                    SCALARS[seed as usize % 3],
                    seed % 2 == 0,
                    seed,
                );
            }
        }
    }
    // The public constructor: plain copies for tiny layers, panels for the rest.
    // (M = 1 against panels streams them, split across threads when big enough.)
    for (n, k) in [(8, 4), (4, 8), (70, 90), (300, 40), (33, 701), (300, 2001)] {
        let mut rng = Rng(seed);
        let w = Array2::from_shape_fn((n, k), |_| rng.next());
        let packed = PackedWeight::new(w.view());
        assert_eq!((packed.out_features(), packed.in_features()), (n, k));
        for m in [1, 2, 33] {
            seed += 1;
            check_packed(&packed, &w, m, 0.0, true, seed);
        }
    }
}

#[test]
fn relu_keeps_nan() {
    let x = Array2::from_elem((2, 3), f32::NAN);
    let w = Array2::from_elem((4, 3), 1.0);
    let mut c = Array2::zeros((2, 4));
    gemm_packed(
        1.0,
        x.view(),
        &PackedWeight::new(w.view()),
        0.0,
        c.view_mut(),
        Epilogue {
            bias: None,
            relu: true,
        },
    );
    assert!(c.iter().all(|v| v.is_nan()));
}

#[test]
#[should_panic(expected = "bias")]
fn bias_must_match_outputs() {
    let w = Array2::zeros((4, 3));
    let bias = [0.0; 3];
    let epi = Epilogue {
        bias: Some(&bias),
        relu: false,
    };
    gemm_packed(
        1.0,
        Array2::zeros((2, 3)).view(),
        &PackedWeight::new(w.view()),
        0.0,
        Array2::zeros((2, 4)).view_mut(),
        epi,
    );
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![
        Just(Layout::RowMajor),
        Just(Layout::ColMajor),
        Just(Layout::Transposed),
        Just(Layout::Strided),
        Just(Layout::Reversed),
    ]
}

fn path() -> impl Strategy<Value = Path> {
    let paths = paths();
    (0..paths.len()).prop_map(move |i| paths[i])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_shapes_and_layouts(
        path in path(),
        m in 0usize..80,
        k in 0usize..80,
        n in 0usize..80,
        la in layout(),
        lb in layout(),
        lc in layout(),
        alpha in prop::sample::select(SCALARS.to_vec()),
        beta in prop::sample::select(SCALARS.to_vec()),
        seed in any::<u64>(),
    ) {
        check(path, Case { m, k, n, la, lb, lc, alpha, beta }, seed);
    }
}

#[test]
fn a_read_in_place_whatever_its_row_stride() {
    // Row-major A small enough to be read in place by the AVX-512 kernels, as a column slice of a
    // wider array (rows further apart than k), with a partial last tile or none, across KC blocks;
    // the row counts reach both the 12-row and the 8-row kernel through the public entry, and
    // every row count of a last tile (multiplied as it is, not padded).
    let mut rng = Rng(0x5eed);
    for backend in backends() {
        let [mr, nr, _, kc, _] = backend.block_sizes();
        for m in (1..=2 * mr + 1).chain([32, 64, 65]) {
            for k in [5, kc - 1, kc + 3, 2 * kc + 1] {
                let n = nr + 3;
                let wide = Array2::from_shape_fn((m, k + 7), |_| rng.next());
                let a = wide.slice(s![.., 3..3 + k]);
                let b = Array2::from_shape_fn((k, n), |_| rng.next());
                let mut want = Array2::from_elem((m, n), 0.25f32);
                gemm_reference(0.5, a, b.view(), 0.5, want.view_mut());
                for forced in [true, false] {
                    let mut c = Array2::from_elem((m, n), 0.25f32);
                    if forced {
                        gemm_with(backend, 0.5, a, b.view(), 0.5, c.view_mut());
                    } else {
                        gemm(0.5, a, b.view(), 0.5, c.view_mut());
                    }
                    let what = format!("{backend:?} forced {forced} {m}x{k}x{n}");
                    assert_close(&c.view(), &want.view(), k, &what);
                }
            }
        }
    }
}

#[test]
fn alpha_zero_never_forms_the_product() {
    // As BLAS: with alpha = 0, A·B is not formed, so Inf in A cannot turn C into NaN through 0·Inf,
    // whichever path the shape takes (direct loop, matrix-vector, blocked, prepacked).
    for (m, k, n) in [
        (2, 3, 4),
        (1, 300, 70),
        (40, 40, 40),
        (1, 4096, 64),
        (64, 256, 512),
    ] {
        let mut a = Array2::from_elem((m, k), 1.0f32);
        a[[0, 0]] = f32::INFINITY;
        let b = Array2::from_elem((k, n), 2.0f32);
        let mut c = Array2::from_elem((m, n), 3.0f32);
        gemm(0.0, a.view(), b.view(), 0.5, c.view_mut());
        assert!(
            c.iter().all(|&v| v == 1.5),
            "{m}x{k}x{n}: alpha 0 leaked A·B"
        );
        let w = Array2::from_elem((n, k), 2.0f32);
        let packed = PackedWeight::new(w.view());
        let mut c = Array2::from_elem((m, n), 3.0f32);
        gemm_packed(
            0.0,
            a.view(),
            &packed,
            0.5,
            c.view_mut(),
            Epilogue::default(),
        );
        assert!(
            c.iter().all(|&v| v == 1.5),
            "{m}x{k}x{n}: packed alpha 0 leaked A·B"
        );
    }
}
