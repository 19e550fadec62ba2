//! The contract between the loops and a micro-kernel: where its MR×NR tile of C goes, and how the
//! accumulated products are finished (alpha, beta, bias, `ReLU`) on the way out.

/// One tile of C and the arithmetic that finishes it.
///
/// The loops build it; a micro-kernel only reads it. Pointers rather than views because a tile is
/// made per micro-kernel call, millions of times per product: an `ArrayViewMut2` per call would cost
/// more than the write-out itself.
pub(crate) struct Tile {
    /// C[0, 0] of this tile.
    pub c: *mut f32,
    /// Row stride of C, in elements (may be negative).
    pub rs: isize,
    /// Column stride of C, in elements (may be negative).
    pub cs: isize,
    /// Rows of the tile that exist in C (at most MR).
    pub rows: usize,
    /// Columns of the tile that exist in C (at most NR).
    pub cols: usize,
    pub alpha: f32,
    /// Zero means C is written without being read.
    pub beta: f32,
    /// The bias of the tile's first column, or null for none.
    pub bias: *const f32,
    pub relu: bool,
    /// For a kernel reading A in place: the distance between A's rows, in elements.
    pub ars: isize,
}

/// A micro-kernel: accumulates a packed MR×kc panel of A times a packed kc×NR panel of B and
/// writes the finished MR×NR product into the tile.
///
/// An *unpacked* kernel reads A in place instead: `a` points at A[row0, p0], and row i of the
/// panel is the `kc` contiguous floats at `a + i·tile.ars`, for the tile's `rows` rows only (a tile
/// of fewer than MR rows is multiplied as it is, not padded).
///
/// # Safety
/// `a` must hold `kc·MR` floats (or, unpacked, `rows` rows of `kc` floats `ars` apart) and `b` `kc·NR`
/// floats (64-byte aligned for the SIMD kernels); the tile's `rows`×`cols` addresses (and `cols`
/// bias values, if any) must be valid for writing and reading, with `rows <= MR`, `cols <= NR`.
pub(crate) type KernelFn = unsafe fn(kc: usize, a: *const f32, b: *const f32, tile: &Tile);

/// Finishes one element: `alpha·acc + beta·old + bias`, then `ReLU`.
///
/// `ReLU` keeps NaN (as `PyTorch`'s does), hence the comparison rather than `f32::max`.
#[inline]
pub(crate) fn finish(
    acc: f32,
    alpha: f32,
    beta: f32,
    old: impl FnOnce() -> f32,
    bias: f32,
    relu: bool,
) -> f32 {
    let mut v = alpha * acc;
    if beta != 0.0 {
        v += beta * old();
    }
    v += bias;
    if relu && v < 0.0 { 0.0 } else { v }
}

/// Writes an accumulator block (row-major, `ld` floats per row) into the tile element by element.
///
/// Used for edge tiles and for C layouts the SIMD write-out does not handle.
///
/// # Safety
/// As for [`KernelFn`]'s tile; `acc` holds at least `rows` rows of `ld >= cols` floats.
pub(crate) unsafe fn write_scalar(acc: &[f32], ld: usize, t: &Tile) {
    for i in 0..t.rows {
        for j in 0..t.cols {
            // SAFETY: i < rows and j < cols, which the caller guarantees are inside C (and inside
            // the bias slice when there is one).
            unsafe {
                let dst = t.c.offset(i as isize * t.rs + j as isize * t.cs);
                let bias = if t.bias.is_null() {
                    0.0
                } else {
                    *t.bias.add(j)
                };
                *dst = finish(acc[i * ld + j], t.alpha, t.beta, || *dst, bias, t.relu);
            }
        }
    }
}
