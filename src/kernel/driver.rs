//! The five BLIS loops around a micro-kernel, on one thread.
//!
//! LOOP 5 walks NC columns of B and C; LOOP 4 walks KC of the shared dimension and packs that
//! KC×NC block of B (unless the weight came prepacked); LOOP 3 walks MC rows of A and packs the
//! MC×KC block; LOOP 2 and LOOP 1 walk NR and MR register tiles, and the micro-kernel accumulates
//! one MR×NR tile of C over KC. See blocking.rs for why each block fits the cache it does.

use std::cell::RefCell;

use ndarray::{ArrayView2, ArrayViewMut2, s};

use super::Epilogue;
use super::blocking::Blocking;
use super::pack::{AlignedBuf, pack_a, pack_b, packed_a_len, packed_b_len};
use super::tile::{KernelFn, Tile, finish};

/// A micro-kernel and its register tile.
#[derive(Clone, Copy)]
pub(crate) struct MicroKernel {
    pub mr: usize,
    pub nr: usize,
    pub run: KernelFn,
    /// The same kernel reading A in place (see [`KernelFn`]), if there is one.
    pub unpacked: Option<KernelFn>,
    /// A kernel of the same NR (so the same B panels) and fewer rows, for products whose rows it
    /// tiles with less padding.
    pub short: Option<&'static MicroKernel>,
}

impl MicroKernel {
    /// This kernel or its short variant, whichever pads `a`'s rows less, counting the short
    /// variant's lower throughput (more loads per FMA: about 4% on Zen 5). An A read in place is
    /// not padded at all (its last tile has the rows it has), so it keeps the full kernel.
    pub(crate) fn for_rows(self, a: &ArrayView2<f32>) -> Self {
        let m = a.nrows();
        match self.short {
            Some(short)
                if !self.reads_in_place(a)
                    && m.next_multiple_of(self.mr) * 100
                        > m.next_multiple_of(short.mr) * SHORT_PENALTY =>
            {
                *short
            }
            _ => self,
        }
    }

    /// Whether the blocked loops read `a` in place rather than packing it: a row-contiguous A
    /// with a kernel that can, whose rows are not a multiple of 4 KiB apart.
    ///
    /// Packing costs a transpose of A per block (a third of a 64³ product; 4% of a batch of 1024
    /// tokens through MiniLM), and buys nothing a row-major block lacks: the MC×KC block read in
    /// place touches as many cache lines as its packed copy, so it stays in L2 just as well. Rows
    /// 4 KiB apart would put a tile's MR rows in the same L1 set, hence the exception.
    fn reads_in_place(self, a: &ArrayView2<f32>) -> bool {
        const SET_STRIDE: usize = 4096 / size_of::<f32>();
        self.unpacked.is_some()
            && a.strides()[1] == 1
            && (a.nrows() <= 1 || !a.strides()[0].unsigned_abs().is_multiple_of(SET_STRIDE))
    }
}

/// How much slower the short kernel runs per multiply-add, in percent of the full one (+100).
const SHORT_PENALTY: usize = 104;

/// Where B comes from: a view to pack block by block, or panels packed ahead of time.
#[derive(Clone, Copy)]
pub(crate) enum BSource<'a> {
    View(ArrayView2<'a, f32>),
    /// A [`super::PackedWeight`]'s panels: for each KC block of the shared dimension, `panels`
    /// micro-panels of KC×NR. `col0` (a multiple of NR) is the first column used here.
    Panels {
        data: &'a [f32],
        kc: usize,
        panels: usize,
        col0: usize,
    },
}

impl BSource<'_> {
    /// The columns `j0 .. j0 + width` of this B; for panels `j0` must be a multiple of NR.
    pub(crate) fn columns(self, j0: usize, width: usize) -> Self {
        match self {
            Self::View(b) => Self::View(b.slice_move(s![.., j0..j0 + width])),
            Self::Panels {
                data,
                kc,
                panels,
                col0,
            } => Self::Panels {
                data,
                kc,
                panels,
                col0: col0 + j0,
            },
        }
    }
}

thread_local! {
    /// Packing buffers, kept per thread so that repeated products allocate nothing.
    static SCRATCH: RefCell<(AlignedBuf, AlignedBuf)> =
        const { RefCell::new((AlignedBuf::new(), AlignedBuf::new())) };
}

/// `C = alpha·A·B + beta·C`, then the epilogue, on the calling thread.
///
/// Shapes are checked by the caller: `a` m×k, `b` k×n, `c` m×n, bias (if any) n values.
pub(crate) fn gemm_blocked(
    uk: MicroKernel,
    alpha: f32,
    a: ArrayView2<f32>,
    b: BSource,
    beta: f32,
    mut c: ArrayViewMut2<f32>,
    epi: Epilogue,
) {
    let (m, k) = a.dim();
    let n = c.ncols();
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || alpha == 0.0 {
        scale(beta, c, epi);
        return;
    }
    let MicroKernel {
        mr,
        nr,
        run,
        unpacked,
        ..
    } = uk;
    let in_place = unpacked.filter(|_| uk.reads_in_place(&a));
    let blocking = if in_place.is_some() {
        Blocking::in_place(mr, nr)
    } else {
        Blocking::new(mr, nr)
    };
    let (a00, rsa, csa) = (a.as_ptr(), a.strides()[0], a.strides()[1]);
    // Prepacked panels were cut with their own KC: follow it.
    let kc_max = match b {
        BSource::Panels { kc, .. } => kc,
        BSource::View(_) => blocking.kc,
    };
    let (mc, nc) = (blocking.mc, blocking.nc);
    let (rsc, csc) = (c.strides()[0], c.strides()[1]);
    let c00 = c.as_mut_ptr();

    SCRATCH.with_borrow_mut(|(abuf, bbuf)| {
        // LOOP 5: NC columns of B and C at a time.
        for jc in (0..n).step_by(nc) {
            let nc_len = nc.min(n - jc);
            // LOOP 4: KC of the shared dimension; pack the KC×NC block of B.
            for pc in (0..k).step_by(kc_max) {
                let kc = kc_max.min(k - pc);
                let bblock: &[f32] = match b {
                    BSource::View(bv) => {
                        let dst = bbuf.get_mut(packed_b_len(kc, nc_len, nr));
                        pack_b(bv.slice(s![pc..pc + kc, jc..jc + nc_len]), nr, dst);
                        dst
                    }
                    BSource::Panels {
                        data, panels, col0, ..
                    } => {
                        // Block pc starts after pc rows of every panel; within it, panel q
                        // starts after q panels of kc rows.
                        &data[pc * panels * nr + (col0 + jc) / nr * kc * nr..]
                    }
                };
                // Later KC blocks add to what the first one wrote; the epilogue runs once, last.
                let beta_now = if pc == 0 { beta } else { 1.0 };
                let last = pc + kc == k;
                // LOOP 3: MC rows of A; pack the MC×KC block (unless it is read in place).
                for ic in (0..m).step_by(mc) {
                    let mc_len = mc.min(m - ic);
                    let ablock: &[f32] = if in_place.is_some() {
                        &[]
                    } else {
                        // Sized for a whole MC×KC block at once, so no later batch size allocates.
                        let most = packed_a_len(mc, kc_max, mr);
                        let ablock = abuf.get_mut_reserving(packed_a_len(mc_len, kc, mr), most);
                        pack_a(a.slice(s![ic..ic + mc_len, pc..pc + kc]), mr, ablock);
                        ablock
                    };
                    // LOOP 2: NR columns; this KC×NR micro-panel of B stays in L1.
                    for jr in (0..nc_len).step_by(nr) {
                        let bpanel = &bblock[jr / nr * kc * nr..][..kc * nr];
                        let bias = match epi.bias {
                            Some(bias) if last => bias[jc + jr..].as_ptr(),
                            _ => std::ptr::null(),
                        };
                        // LOOP 1: MR rows; the micro-kernel keeps MR×NR of C in registers.
                        for ir in (0..mc_len).step_by(mr) {
                            let (kernel, apanel) = match in_place {
                                Some(unpacked) => (
                                    unpacked,
                                    a00.wrapping_offset(
                                        (ic + ir) as isize * rsa + pc as isize * csa,
                                    ),
                                ),
                                None => (run, ablock[ir / mr * kc * mr..][..kc * mr].as_ptr()),
                            };
                            let tile = Tile {
                                c: c00.wrapping_offset(
                                    (ic + ir) as isize * rsc + (jc + jr) as isize * csc,
                                ),
                                rs: rsc,
                                cs: csc,
                                rows: mr.min(mc_len - ir),
                                cols: nr.min(nc_len - jr),
                                alpha,
                                beta: beta_now,
                                bias,
                                relu: last && epi.relu,
                                ars: rsa,
                            };
                            // SAFETY: the packed panels were sliced to kc·MR and kc·NR floats (B's
                            // from a 64-byte aligned buffer in whole panels of kc·NR floats); an A
                            // read in place is the tile's rows ic+ir.. < m of A, columns pc..pc+kc
                            // <= k, unit column stride, rows `ars` apart. The tile starts at
                            // C[ic+ir, jc+jr] and spans rows×cols inside C's m×n, and the bias
                            // (checked to have n values) has cols values from jc+jr. The kernel
                            // was chosen by a Backend available on this CPU.
                            unsafe { kernel(kc, apanel, bpanel.as_ptr(), &tile) };
                        }
                    }
                }
            }
        }
    });
}

/// `C = beta·C`, then the epilogue: the whole product when A·B is empty or alpha is zero.
pub(crate) fn scale(beta: f32, mut c: ArrayViewMut2<f32>, epi: Epilogue) {
    for mut row in c.rows_mut() {
        for (j, x) in row.iter_mut().enumerate() {
            let bias = epi.bias.map_or(0.0, |b| b[j]);
            let old = *x;
            *x = finish(0.0, 0.0, beta, || old, bias, epi.relu);
        }
    }
}
