//! Prepacked weights: a Linear layer's weight packed once into the micro-kernel's B panels, so a
//! forward pass skips packing B on every call.

use std::fmt;

use ndarray::{Array2, ArrayView2, s};

use super::Backend;
use super::blocking::Blocking;
use super::driver::BSource;
use super::pack::{AlignedBuf, pack_b, packed_b_len};

/// Weights this small (in·out) are kept as a plain copy: a product with them takes the direct
/// loop, where panels would only add index arithmetic.
const PLAIN_MAX: usize = 64 * 64;

/// The weight of a Linear layer, `w` [out, in], ready to multiply as `B = wᵀ` (K = in, N = out).
///
/// Build it once when the weights change (load, re-init) and pass it to
/// [`gemm_packed`](super::gemm_packed) on every forward pass.
pub struct PackedWeight {
    k: usize,
    n: usize,
    layout: Layout,
}

enum Layout {
    /// A row-major copy of `wᵀ` [in, out], for tiny layers: B with contiguous rows, which the
    /// direct loop walks as whole rows of C at a time.
    Plain(Array2<f32>),
    /// For each KC block of the shared dimension, NR-column micro-panels of `wᵀ` covering every
    /// output, in the layout of `backend`'s micro-kernel.
    Panels {
        backend: Backend,
        kc: usize,
        panels: usize,
        data: AlignedBuf,
    },
}

impl PackedWeight {
    /// Packs `w` [out, in] for the fastest micro-kernel this CPU has.
    #[must_use]
    pub fn new(w: ArrayView2<f32>) -> Self {
        let (n, k) = w.dim();
        if n * k <= PLAIN_MAX {
            return Self {
                k,
                n,
                layout: Layout::Plain(w.t().as_standard_layout().into_owned()),
            };
        }
        Self::with_backend(Backend::best(), w)
    }

    /// Packs `w` into panels for `backend`'s micro-kernel, whatever its size (for tests).
    ///
    /// # Panics
    /// When the backend is not available on this CPU.
    #[doc(hidden)]
    #[must_use]
    pub fn with_backend(backend: Backend, w: ArrayView2<f32>) -> Self {
        let (n, k) = w.dim();
        let uk = backend.micro_kernel();
        let kc_max = Blocking::new(uk.mr, uk.nr).kc;
        let panels = n.div_ceil(uk.nr);
        let mut data = AlignedBuf::new();
        let all = data.get_mut(panels * uk.nr * k);
        let b = w.t();
        for pc in (0..k).step_by(kc_max) {
            let kc = kc_max.min(k - pc);
            let block = &mut all[pc * panels * uk.nr..][..packed_b_len(kc, n, uk.nr)];
            pack_b(b.slice(s![pc..pc + kc, ..]), uk.nr, block);
        }
        Self {
            k,
            n,
            layout: Layout::Panels {
                backend,
                kc: kc_max,
                panels,
                data,
            },
        }
    }

    /// The layer's `in` features: rows of B, columns of A.
    #[must_use]
    pub fn in_features(&self) -> usize {
        self.k
    }

    /// The layer's `out` features: columns of B and C.
    #[must_use]
    pub fn out_features(&self) -> usize {
        self.n
    }

    /// How the product reads this weight.
    pub(crate) fn source(&self) -> PackedSource<'_> {
        match &self.layout {
            Layout::Plain(wt) => PackedSource::Plain(wt.view()),
            Layout::Panels {
                backend,
                kc,
                panels,
                data,
            } => PackedSource::Panels(
                *backend,
                BSource::Panels {
                    data: data.as_slice(),
                    kc: *kc,
                    panels: *panels,
                    col0: 0,
                },
            ),
        }
    }
}

/// A [`PackedWeight`] as the product reads it.
pub(crate) enum PackedSource<'a> {
    /// B as a view of the plain copy.
    Plain(ArrayView2<'a, f32>),
    /// Panels for this backend's micro-kernel.
    Panels(Backend, BSource<'a>),
}

impl fmt::Debug for PackedWeight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layout = match &self.layout {
            Layout::Plain(_) => "plain".to_owned(),
            Layout::Panels { backend, kc, .. } => format!("{backend:?} panels, KC {kc}"),
        };
        f.debug_struct("PackedWeight")
            .field("in_features", &self.k)
            .field("out_features", &self.n)
            .field("layout", &layout)
            .finish()
    }
}
