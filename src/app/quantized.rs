//! A quantized weight's stored codes, scales and zero points, one key away from its dequantized values: which
//! part the tensor pane shows, and the one the worker computed (`work::parts`). The part chosen
//! stays chosen from weight to weight, as the view does; a tensor stored as it is, and the B or Δ
//! side of a comparison, show their values whatever it is (`App::part_key`).

use super::job::{Part, PartDetail, PartKey};

/// The part shown, and the codes, scales or zero points of the last weight asked for.
#[derive(Default)]
pub struct Parts {
    /// The part the pane shows of a quantized weight.
    pub shown: Part,
    /// Asked for under this key, and there once it came.
    pub detail: Option<(PartKey, Option<PartDetail>)>,
}

impl Parts {
    /// The part under `key`, or what the pane says while the worker computes it.
    pub fn get(&self, key: PartKey) -> Result<&PartDetail, &'static str> {
        match &self.detail {
            Some((asked, Some(detail))) if *asked == key => Ok(detail),
            _ if key.1 == Part::Codes => Err("unpacking the codes…"),
            _ if key.1 == Part::Zeros => Err("unpacking the zero points…"),
            _ => Err("reading the scales…"),
        }
    }
}
