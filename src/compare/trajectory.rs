//! A run's checkpoints as a trajectory: for one tensor across the checkpoints, its norm, its drift
//! from the first (`||W_t - W_0|| / ||W_0||`), its step change (`||W_t - W_{t-1}|| / ||W_{t-1}||`),
//! its cosine to the last and its count of NaN/Inf; and the checkpoints worth a look: where a tensor
//! first holds NaN/Inf, and where its step change jumps past [`JUMP`] times its median. Each figure
//! comes from [`super::pass::paired`] over the tensors' bytes, so no tensor is copied whole.

use super::pass::paired;
use crate::tensor::Tensor;

/// A step change over this many times the median of a tensor's step changes is a jump.
pub const JUMP: f64 = 10.0;

/// One tensor's figures, one per checkpoint (a figure that is not finite is NaN here, `null` in
/// JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The tensor's name.
    pub name: String,
    /// `||W_t||`.
    pub norm: Vec<f64>,
    /// `||W_t - W_0|| / ||W_0||`.
    pub drift: Vec<f64>,
    /// `||W_t - W_{t-1}|| / ||W_{t-1}||`; `None` for the first checkpoint.
    pub step_change: Vec<Option<f64>>,
    /// The cosine of `W_t` and the last checkpoint's.
    pub cosine_to_last: Vec<f64>,
    /// How many elements are NaN or ±Inf.
    pub nonfinite: Vec<usize>,
}

/// What a flag points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    /// The tensor first holds NaN or Inf here.
    Nonfinite,
    /// The step change into this checkpoint is over [`JUMP`] times the tensor's median.
    StepJump,
}

impl FlagKind {
    /// The name JSON and the table use.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            FlagKind::Nonfinite => "nonfinite",
            FlagKind::StepJump => "step_jump",
        }
    }
}

/// A checkpoint worth a look for one tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The tensor.
    pub name: String,
    /// The checkpoint, 0-based.
    pub checkpoint: usize,
    /// Why.
    pub kind: FlagKind,
}

/// The figures of `tensors`, one tensor's versions in checkpoint order (at least one; all of one
/// element count and decodable: the caller checks).
#[must_use]
pub fn series(name: &str, tensors: &[&Tensor]) -> Series {
    let (first, last) = (tensors[0], tensors[tensors.len() - 1]);
    let mut out = Series {
        name: name.to_owned(),
        norm: Vec::with_capacity(tensors.len()),
        drift: Vec::with_capacity(tensors.len()),
        step_change: Vec::with_capacity(tensors.len()),
        cosine_to_last: Vec::with_capacity(tensors.len()),
        nonfinite: Vec::with_capacity(tensors.len()),
    };
    let mut previous_norm = f64::NAN;
    for (t, &tensor) in tensors.iter().enumerate() {
        let from_first = paired(first, tensor, 0).total;
        let norm = from_first.bb.sqrt();
        out.norm.push(norm);
        out.drift.push(from_first.dd.sqrt() / from_first.aa.sqrt());
        out.step_change.push((t > 0).then(|| {
            let step = paired(tensors[t - 1], tensor, 0).total;
            step.dd.sqrt() / previous_norm
        }));
        let to_last = paired(tensor, last, 0).total;
        out.cosine_to_last
            .push(to_last.ab / (to_last.aa.sqrt() * to_last.bb.sqrt()));
        // A finite sum of squares has no NaN or Inf in it; only otherwise are they counted.
        let nonfinite = if from_first.bb.is_finite() {
            0
        } else {
            tensor.stats().map_or(tensor.numel(), |s| s.nan + s.inf)
        };
        out.nonfinite.push(nonfinite);
        previous_norm = norm;
    }
    out
}

/// The flags of one tensor: the first checkpoint holding NaN/Inf, and every step change over
/// [`JUMP`] times the median of its finite step changes.
#[must_use]
pub fn flags(series: &Series) -> Vec<Flag> {
    let flag = |checkpoint, kind| Flag {
        name: series.name.clone(),
        checkpoint,
        kind,
    };
    let mut out = Vec::new();
    if let Some(first) = series.nonfinite.iter().position(|&n| n > 0) {
        out.push(flag(first, FlagKind::Nonfinite));
    }
    let mut steps: Vec<f64> = series
        .step_change
        .iter()
        .flatten()
        .copied()
        .filter(|s| s.is_finite())
        .collect();
    if let Some(median) = median(&mut steps) {
        for (t, step) in series.step_change.iter().enumerate() {
            if step.is_some_and(|s| s.is_finite() && s > JUMP * median) {
                out.push(flag(t, FlagKind::StepJump));
            }
        }
    }
    out
}

/// numpy's median: the middle value, or the mean of the two middle values.
fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_unstable_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some(f64::midpoint(values[n / 2 - 1], values[n / 2])),
    }
}

#[cfg(test)]
mod tests {
    use super::{FlagKind, flags, series};
    use crate::tensor::Tensor;

    #[test]
    fn figures_and_flags_of_a_small_run() {
        let t = |v: &[f32]| Tensor::from_f32(vec![v.len()], v);
        let run = [
            t(&[3.0, 4.0]),
            t(&[3.0, 4.1]),
            t(&[3.0, 4.2]),
            t(&[6.0, 8.0]),
            t(&[f32::NAN, 8.0]),
        ];
        let refs: Vec<&Tensor> = run.iter().collect();
        let s = series("w", &refs);
        assert!((s.norm[0] - 5.0).abs() < 1e-12);
        assert!((s.drift[3] - 1.0).abs() < 1e-12);
        assert_eq!(s.step_change[0], None);
        assert!(
            (s.step_change[3].unwrap()
                - (3.0f64.powi(2) + 3.8f64.powi(2)).sqrt() / f64::from(4.2f32).hypot(3.0))
            .abs()
                < 1e-6
        );
        assert_eq!(s.nonfinite, [0, 0, 0, 0, 1]);
        let f = flags(&s);
        assert_eq!(f[0].kind, FlagKind::Nonfinite);
        assert_eq!(f[0].checkpoint, 4);
        assert!(
            f.iter()
                .any(|f| f.kind == FlagKind::StepJump && f.checkpoint == 3)
        );
    }
}
