//! What the forward-pass tests share: seeded inputs.

use ndarray::{ArrayD, IxDyn};
use paramscope::model::rng::TorchGenerator;

/// Values uniform in [-1, 1) of `shape`, from `torch.manual_seed(seed)`.
pub fn random(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut values = vec![0f32; shape.iter().product()];
    TorchGenerator::new(seed).fill_uniform(&mut values, -1.0, 1.0);
    ArrayD::from_shape_vec(IxDyn(shape), values).unwrap()
}
