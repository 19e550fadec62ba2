//! One parallel pass over one tensor seen as rows: non-finite values, all-zero rows, row norms and
//! column maxima, the raw material of the health findings.

use std::ops::Range;

use crate::tensor::{Tensor, decode, parallel};

/// What one pass learns about a tensor of `rows` rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    /// NaN values, and the flat index of the first.
    pub nan: (usize, Option<usize>),
    /// ±Inf values, and the flat index of the first.
    pub inf: (usize, Option<usize>),
    /// Whether each row holds only zeros.
    pub zero_rows: Vec<bool>,
    /// Σ v² of each row's finite values.
    pub row_squares: Vec<f64>,
    /// max |v| of each column's finite values (empty unless asked for).
    pub column_max: Vec<f64>,
    /// Whether each column holds only zeros (empty unless asked for).
    pub zero_columns: Vec<bool>,
}

/// Elements decoded at a time.
const CHUNK: usize = 4096;

/// Scans `tensor` (decodable) as `rows` rows of `numel / rows` values; `columns` asks for the
/// column maxima too.
///
/// # Panics
/// When the dtype is not decodable or `rows` does not divide the element count.
#[must_use]
pub fn scan(tensor: &Tensor, rows: usize, columns: bool) -> Scan {
    let numel = tensor.numel();
    assert!(decode::is_decodable(tensor.dtype()));
    let cols = numel.checked_div(rows).unwrap_or(0);
    assert_eq!(rows * cols, numel, "scan: rows do not divide the tensor");
    let column_len = if columns { cols } else { 0 };
    // Whole rows per thread: a chunk of one row.
    let parts = parallel::split(
        rows,
        tensor.bytes().len(),
        1,
        &|range, _| scan_rows(tensor, range, cols, column_len),
        &mut |_| {},
    );
    let mut out = Scan {
        nan: (0, None),
        inf: (0, None),
        zero_rows: Vec::with_capacity(rows),
        row_squares: Vec::with_capacity(rows),
        column_max: vec![0.0; column_len],
        zero_columns: vec![true; column_len],
    };
    // Parts come in row order, so the first part with a first index has the first overall.
    for p in parts {
        out.nan = (out.nan.0 + p.nan.0, out.nan.1.or(p.nan.1));
        out.inf = (out.inf.0 + p.inf.0, out.inf.1.or(p.inf.1));
        out.zero_rows.extend(p.zero_rows);
        out.row_squares.extend(p.row_squares);
        for (m, v) in out.column_max.iter_mut().zip(p.column_max) {
            *m = m.max(v);
        }
        for (z, v) in out.zero_columns.iter_mut().zip(p.zero_columns) {
            *z &= v;
        }
    }
    out
}

/// The scan of rows `first..end`.
fn scan_rows(
    tensor: &Tensor,
    Range { start: first, end }: Range<usize>,
    cols: usize,
    column_len: usize,
) -> Scan {
    let mut out = Scan {
        nan: (0, None),
        inf: (0, None),
        zero_rows: Vec::with_capacity(end - first),
        row_squares: Vec::with_capacity(end - first),
        column_max: vec![0.0; column_len],
        zero_columns: vec![true; column_len],
    };
    let mut buffer = Vec::with_capacity(CHUNK);
    for row in first..end {
        let (mut zero, mut squares) = (true, 0.0);
        for at in (0..cols).step_by(CHUNK) {
            let start = row * cols + at;
            decode::decode_f64(
                tensor.dtype(),
                tensor.bytes(),
                start,
                CHUNK.min(cols - at),
                &mut buffer,
            )
            .expect("checked decodable");
            for (i, &v) in buffer.iter().enumerate() {
                if v.is_nan() {
                    out.nan.0 += 1;
                    out.nan.1.get_or_insert(start + i);
                } else if v.is_infinite() {
                    out.inf.0 += 1;
                    out.inf.1.get_or_insert(start + i);
                } else {
                    squares += v * v;
                    if let Some(m) = out.column_max.get_mut(at + i) {
                        *m = m.max(v.abs());
                    }
                }
                zero &= v == 0.0;
                if let Some(z) = out.zero_columns.get_mut(at + i) {
                    *z &= v == 0.0;
                }
            }
        }
        out.zero_rows.push(zero);
        out.row_squares.push(squares);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_columns_and_non_finite_values() {
        let t = Tensor::from_f32(
            vec![3, 3],
            &[
                0.0,
                0.0,
                0.0,
                1.0,
                f32::NAN,
                -4.0,
                2.0,
                f32::INFINITY,
                f32::NAN,
            ],
        );
        let s = scan(&t, 3, true);
        assert_eq!((s.nan, s.inf), ((2, Some(4)), (1, Some(7))));
        assert_eq!(s.zero_rows, [true, false, false]);
        assert_eq!(s.row_squares, [0.0, 17.0, 4.0]);
        assert_eq!(s.column_max, [2.0, 0.0, 4.0]);
        assert_eq!(s.zero_columns, [false, false, false]);
    }

    #[test]
    fn the_parallel_split_agrees_with_one_thread() {
        // 4 MiB of F32 times two: past the parallel threshold, in rows of 3 chunks and a bit.
        let (rows, cols) = (170, 12_500);
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| {
                if i / cols == 77 {
                    0.0
                } else {
                    ((i * 31) % 1001) as f32 - 500.0
                }
            })
            .collect();
        let t = Tensor::from_f32(vec![rows, cols], &values);
        let s = scan(&t, rows, true);
        assert_eq!(s.zero_rows.iter().filter(|z| **z).count(), 1);
        assert!(s.zero_rows[77]);
        for c in [0, 4096, 12_499] {
            let want = (0..rows)
                .map(|r| f64::from(values[r * cols + c]).abs())
                .fold(0.0, f64::max);
            assert_eq!(s.column_max[c], want);
        }
    }
}
