//! The five BLIS loops around a micro-kernel, on one thread.
//!
//! LOOP 5 walks NC columns of B and C; LOOP 4 walks KC of the shared dimension and packs that
//! KC×NC block of B (unless the weight came prepacked); LOOP 3 walks MC rows of A and packs the
//! MC×KC block; LOOP 2 and LOOP 1 walk NR and MR register tiles, and the micro-kernel accumulates
//! one MR×NR tile of C over KC. Each loop is one method of `Loops`, named by its index as BLIS
//! names them: `jc`, `pc`, `ic`, `jr`, `ir`. See blocking.rs for why each block fits the cache it
//! does.

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
    let in_place = uk.unpacked.filter(|_| uk.reads_in_place(&a));
    let blocking = if in_place.is_some() {
        Blocking::in_place(uk.mr, uk.nr)
    } else {
        Blocking::new(uk.mr, uk.nr)
    };
    let loops = Loops {
        mr: uk.mr,
        nr: uk.nr,
        run: uk.run,
        in_place,
        // Prepacked panels were cut with their own KC: follow it.
        kc_max: match b {
            BSource::Panels { kc, .. } => kc,
            BSource::View(_) => blocking.kc,
        },
        mc: blocking.mc,
        nc: blocking.nc,
        alpha,
        a,
        b,
        beta,
        c00: c.as_mut_ptr(),
        rsc: c.strides()[0],
        csc: c.strides()[1],
        epi,
        n,
    };
    SCRATCH.with_borrow_mut(|(abuf, bbuf)| loops.jc(abuf, bbuf));
}

/// One product as the loop levels see it: the kernel, the block sizes and the operands.
struct Loops<'a, 'b, 'e> {
    mr: usize,
    nr: usize,
    run: KernelFn,
    /// The kernel reading A in place, when A is read in place rather than packed.
    in_place: Option<KernelFn>,
    kc_max: usize,
    mc: usize,
    nc: usize,
    alpha: f32,
    a: ArrayView2<'a, f32>,
    b: BSource<'b>,
    beta: f32,
    /// C[0, 0] and C's strides: tiles are addressed from it (see [`Tile`] for why not views).
    c00: *mut f32,
    rsc: isize,
    csc: isize,
    epi: Epilogue<'e>,
    /// Columns of B and C.
    n: usize,
}

/// The KC×NC block of B that loops 3 to 1 multiply: its place in B and C, and its packed panels.
struct BlockB<'b> {
    jc: usize,
    nc_len: usize,
    pc: usize,
    kc: usize,
    panels: &'b [f32],
    /// Beta of this KC block: later KC blocks add to what the first one wrote.
    beta: f32,
    /// Whether this is the last KC block, the one that runs the epilogue.
    last: bool,
}

/// The MC×KC block of A that loops 2 and 1 walk: its first row, its rows, and its packed panels
/// (empty when A is read in place).
struct BlockA<'p> {
    ic: usize,
    mc_len: usize,
    panels: &'p [f32],
}

impl Loops<'_, '_, '_> {
    /// LOOP 5: NC columns of B and C at a time.
    fn jc(&self, abuf: &mut AlignedBuf, bbuf: &mut AlignedBuf) {
        for jc in (0..self.n).step_by(self.nc) {
            self.pc(jc, self.nc.min(self.n - jc), abuf, bbuf);
        }
    }

    /// LOOP 4: KC of the shared dimension; pack the KC×NC block of B (or find it prepacked).
    fn pc(&self, jc: usize, nc_len: usize, abuf: &mut AlignedBuf, bbuf: &mut AlignedBuf) {
        let (k, nr) = (self.a.ncols(), self.nr);
        for pc in (0..k).step_by(self.kc_max) {
            let kc = self.kc_max.min(k - pc);
            let panels: &[f32] = match self.b {
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
            let block = BlockB {
                jc,
                nc_len,
                pc,
                kc,
                panels,
                // The epilogue runs once, on the last KC block.
                beta: if pc == 0 { self.beta } else { 1.0 },
                last: pc + kc == k,
            };
            self.ic(&block, abuf);
        }
    }

    /// LOOP 3: MC rows of A; pack the MC×KC block (unless it is read in place).
    fn ic(&self, block: &BlockB, abuf: &mut AlignedBuf) {
        let (m, mr, kc) = (self.a.nrows(), self.mr, block.kc);
        for ic in (0..m).step_by(self.mc) {
            let mc_len = self.mc.min(m - ic);
            let panels: &[f32] = if self.in_place.is_some() {
                &[]
            } else {
                // Sized for a whole MC×KC block at once, so no later batch size allocates.
                let most = packed_a_len(self.mc, self.kc_max, mr);
                let dst = abuf.get_mut_reserving(packed_a_len(mc_len, kc, mr), most);
                pack_a(
                    self.a.slice(s![ic..ic + mc_len, block.pc..block.pc + kc]),
                    mr,
                    dst,
                );
                dst
            };
            self.jr(block, &BlockA { ic, mc_len, panels });
        }
    }

    /// LOOP 2: NR columns; each KC×NR micro-panel of B stays in L1.
    fn jr(&self, block: &BlockB, a: &BlockA) {
        let (nr, kc) = (self.nr, block.kc);
        for jr in (0..block.nc_len).step_by(nr) {
            let bpanel = &block.panels[jr / nr * kc * nr..][..kc * nr];
            let bias = match self.epi.bias {
                Some(bias) if block.last => bias[block.jc + jr..].as_ptr(),
                _ => std::ptr::null(),
            };
            self.ir(block, a, jr, bpanel, bias);
        }
    }

    /// LOOP 1: MR rows; the micro-kernel keeps MR×NR of C in registers over KC.
    fn ir(&self, block: &BlockB, a: &BlockA, jr: usize, bpanel: &[f32], bias: *const f32) {
        let (mr, kc, ic, pc) = (self.mr, block.kc, a.ic, block.pc);
        let (rsa, csa) = (self.a.strides()[0], self.a.strides()[1]);
        for ir in (0..a.mc_len).step_by(mr) {
            let (kernel, apanel) = match self.in_place {
                Some(unpacked) => (
                    unpacked,
                    self.a
                        .as_ptr()
                        .wrapping_offset((ic + ir) as isize * rsa + pc as isize * csa),
                ),
                None => (self.run, a.panels[ir / mr * kc * mr..][..kc * mr].as_ptr()),
            };
            let tile = Tile {
                c: self.c00.wrapping_offset(
                    (ic + ir) as isize * self.rsc + (block.jc + jr) as isize * self.csc,
                ),
                rs: self.rsc,
                cs: self.csc,
                rows: mr.min(a.mc_len - ir),
                cols: self.nr.min(block.nc_len - jr),
                alpha: self.alpha,
                beta: block.beta,
                bias,
                relu: block.last && self.epi.relu,
                ars: rsa,
            };
            // SAFETY: the packed panels were sliced to kc·MR and kc·NR floats (B's from a
            // 64-byte aligned buffer in whole panels of kc·NR floats); an A read in place is
            // the tile's rows ic+ir.. < m of A, columns pc..pc+kc <= k, unit column stride,
            // rows `ars` apart. The tile starts at C[ic+ir, jc+jr] and spans rows×cols inside
            // C's m×n, and the bias (checked to have n values) has cols values from jc+jr. The
            // kernel was chosen by a Backend available on this CPU.
            unsafe { kernel(kc, apanel, bpanel.as_ptr(), &tile) };
        }
    }
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
