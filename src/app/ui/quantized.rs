//! What the tensor pane says of a quantized weight: its scheme in the title with the part shown
//! (dequantized values, codes, scales or zero points), and under the name what the shown tensor
//! is: the values with the bytes stored, the codes' width, what one scale covers, or the zero
//! points.

use crate::app::format::{bytes, count};
use crate::app::job::Part;
use crate::tensor::Tensor;
use crate::tensor::quantized::{Quantized, Scheme};

/// The title's words for `part` of `q`: `bnb_nf4 dequantized`, `gptq codes`.
pub(super) fn title(q: &Quantized, part: Part) -> String {
    format!("{} {}", q.scheme().name(), part.title())
}

/// The line under the name: the shown tensor's shape and dtype, and what it is.
pub(super) fn shape_line(q: &Quantized, part: Part, shown: &Tensor) -> String {
    let shape = format!("{:?} {}", shown.shape(), shown.dtype());
    match part {
        Part::Values => {
            let stored: u64 = q.parts().iter().map(|(_, t)| t.byte_len()).sum();
            let stored = bytes(usize::try_from(stored).unwrap_or(usize::MAX));
            // The values' count, and the bytes they are dequantized from.
            format!("{shape} · {} from {stored}", count(q.numel()))
        }
        Part::Codes => format!("{shape} · {}", codes(q.scheme())),
        Part::Scales => format!("{shape} · {}", scales(q)),
        Part::Zeros => format!("{shape} · {}", zeros(q)),
    }
}

/// What the codes are.
fn codes(scheme: Scheme) -> String {
    match scheme {
        Scheme::Fp8 | Scheme::Fp8Block { .. } => "FP8 codes".into(),
        Scheme::Gptq { bits, .. } | Scheme::Awq { bits } => format!("{bits}-bit codes"),
        Scheme::Compressed { bits, .. } => format!("{bits}-bit signed codes"),
        Scheme::Mxfp4 => "E2M1 codes".into(),
        Scheme::Bnb4 { fp4: false, .. } => "NF4 codes".into(),
        Scheme::Bnb4 { fp4: true, .. } => "FP4 codes".into(),
        Scheme::BnbInt8 => "int8 codes".into(),
    }
}

/// What the zero points are: as many as the scales, each subtracted from its group's codes.
fn zeros(q: &Quantized) -> &'static str {
    match q.scheme() {
        Scheme::Gptq { v1: true, .. } => "zero points (stored one less), 1 per scale",
        Scheme::Compressed { .. } => "signed zero points, 1 per scale",
        _ => "zero points, 1 per scale",
    }
}

/// What one scale covers.
fn scales(q: &Quantized) -> String {
    let inputs = q.shape().last().copied().unwrap_or(1);
    let per_row = |groups: usize| format!("1 per {} inputs of a row", inputs / groups.max(1));
    match q.scheme() {
        Scheme::Fp8Block { rows, cols } => format!("1 per {rows}×{cols} block"),
        Scheme::Fp8 if q.scale_shape() == [1] => "1 for the tensor".into(),
        Scheme::Fp8 => "1 per row".into(),
        // With act-order (a g_idx), a group's inputs are scattered along the row.
        Scheme::Gptq { .. } if q.parts().len() > 3 => "1 per g_idx group of a row".into(),
        Scheme::Gptq { .. } | Scheme::Awq { .. } | Scheme::Compressed { .. } => {
            per_row(q.scale_shape()[1])
        }
        Scheme::Mxfp4 => "2^(e-127) per 32 values".into(),
        Scheme::Bnb4 {
            blocksize, nested, ..
        } => {
            let nested = if nested { " (nested)" } else { "" };
            format!("absmax per {blocksize} values{nested}")
        }
        Scheme::BnbInt8 => "SCB, the absmax of a row".into(),
    }
}
