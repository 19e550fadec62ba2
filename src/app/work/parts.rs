//! The worker's side of a quantized weight's parts: its codes unpacked along the weight, its
//! scales or its zero points, as a tensor with its summary (the views draw it as any tensor).

use crate::app::job::{Part, PartDetail};
use crate::app::summary::summarize;
use crate::tensor::Tensor;
use crate::tensor::decode::Undecodable;

/// The codes, the scales or the zero points of `weight`. A weight whose stored parts cannot be fetched (a remote
/// one) gives itself back, undecodable, as a remote tensor that failed does.
#[must_use]
pub fn part(weight: &Tensor, part: Part) -> PartDetail {
    let fetched = crate::checkpoint::fetch(weight).ok();
    let unpacked = fetched.and(weight.quantization()).and_then(|q| match part {
        Part::Codes => Some(q.codes_tensor()),
        Part::Zeros => q.zeros_tensor(),
        // The app asks for the codes, scales and zero points only: the values are the weight.
        Part::Scales | Part::Values => Some(q.scales_tensor()),
    });
    match unpacked {
        Some(tensor) => {
            let summary = summarize(&tensor, &mut |_| {});
            PartDetail { tensor, summary }
        }
        None => PartDetail {
            tensor: weight.clone(),
            summary: Err(Undecodable(weight.dtype())),
        },
    }
}
