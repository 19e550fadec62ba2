//! A run's checkpoints as a trajectory: for one tensor across the checkpoints, its norm, its drift
//! from the first (`||W_t - W_0|| / ||W_0||`), its step change (`||W_t - W_{t-1}|| / ||W_{t-1}||`),
//! its cosine to the last and its count of NaN/Inf; and the checkpoints worth a look: where a tensor
//! first holds NaN/Inf, and where its step change jumps past [`JUMP`] times its median. Every
//! figure of every checkpoint comes from one pass reading all versions of the tensor side by side,
//! a chunk at a time: each byte is read once, no tensor is copied whole, and the pages of a mapped
//! file are given back as soon as the pass is past them, so memory stays a few stretches deep
//! however many checkpoints there are.

use std::ops::Range;

use crate::model::Model;
use crate::tensor::{DType, Tensor, decode, parallel};

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

/// A run followed: every tensor the checkpoints share, and the checkpoints worth a look.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// One series per tensor, in the first checkpoint's state_dict order.
    pub series: Vec<Series>,
    /// Every tensor's flags, in the same order.
    pub flags: Vec<Flag>,
}

/// Follows every tensor the `models` (at least one, in checkpoint order) share: one tensor at a
/// time, its versions read by `read` first (a remote one fetched, a sharded one put together, and
/// dropped once the tensor is done: the models keep none of it),
/// `progress` told `(tensors done, tensors in all)` after each.
pub fn follow<E>(
    models: &[Model],
    read: &dyn Fn(&Tensor) -> Result<(), E>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Run, E> {
    let common = common_tensors(models);
    let mut run = Run {
        series: Vec::with_capacity(common.len()),
        flags: Vec::new(),
    };
    for (done, (name, versions)) in common.iter().enumerate() {
        // Read through transient handles, dropped after this tensor: a sharded or remote
        // checkpoint's tensors are put together (or fetched) one at a time and not kept.
        let versions: Vec<Tensor> = versions.iter().map(|t| t.transient()).collect();
        let versions: Vec<&Tensor> = versions.iter().collect();
        versions.iter().try_for_each(|t| read(t))?;
        let series = series(name, &versions);
        run.flags.extend(flags(&series));
        run.series.push(series);
        progress(done + 1, common.len());
    }
    Ok(run)
}

/// Every tensor of the first model's state dict that every model holds with the same number of
/// elements, in a decodable dtype: its versions in checkpoint order.
fn common_tensors(models: &[Model]) -> Vec<(String, Vec<&Tensor>)> {
    let mut out = Vec::new();
    for (name, id) in models[0].state_dict() {
        let first = models[0].store.get(id);
        let versions: Option<Vec<&Tensor>> = models
            .iter()
            .map(|m| {
                let (_, id) = m.find_param(&name).ok()?;
                let t = m.store.get(id);
                (t.numel() == first.numel() && decode::is_decodable(t.dtype())).then_some(t)
            })
            .collect();
        if let Some(versions) = versions {
            out.push((name, versions));
        }
    }
    out
}

/// Elements decoded at a time, per checkpoint.
const CHUNK: usize = 4096;

/// Elements between two page fault-in hints, and between two releases: 2 MiB of F32.
const STRETCH: usize = 128 * CHUNK;

/// Lanes of independent accumulators, so that the sums vectorize.
const LANES: usize = 4;

/// One checkpoint's sums over a stretch of elements (`x` its values, `x0` the first checkpoint's,
/// `xp` the one before's, `xl` the last's).
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    /// Σ x².
    norm: f64,
    /// Σ (x - x0)².
    from_first: f64,
    /// Σ (x - xp)².
    step: f64,
    /// Σ x·xl.
    to_last: f64,
}

impl Sums {
    fn merge(&mut self, other: Sums) {
        self.norm += other.norm;
        self.from_first += other.from_first;
        self.step += other.step;
        self.to_last += other.to_last;
    }
}

/// The figures of `tensors`, one tensor's versions in checkpoint order (at least one; all of one
/// element count, decodable and read: the caller checks and fetches).
#[must_use]
pub fn series(name: &str, tensors: &[&Tensor]) -> Series {
    let numel = tensors[0].numel();
    let bytes = tensors.iter().map(|t| t.bytes().len()).sum();
    let parts = parallel::split(
        numel,
        bytes,
        CHUNK,
        &|range, _| part(tensors, range),
        &mut |_| {},
    );
    let mut sums = vec![Sums::default(); tensors.len()];
    for p in parts {
        for (total, s) in sums.iter_mut().zip(p) {
            total.merge(s);
        }
    }
    let norms: Vec<f64> = sums.iter().map(|s| s.norm.sqrt()).collect();
    let last = norms[norms.len() - 1];
    Series {
        name: name.to_owned(),
        drift: sums
            .iter()
            .map(|s| s.from_first.sqrt() / norms[0])
            .collect(),
        step_change: sums
            .iter()
            .enumerate()
            .map(|(t, s)| (t > 0).then(|| s.step.sqrt() / norms[t - 1]))
            .collect(),
        cosine_to_last: sums
            .iter()
            .zip(&norms)
            .map(|(s, n)| s.to_last / (n * last))
            .collect(),
        // A finite sum of squares has no NaN or Inf in it; only otherwise are they counted.
        nonfinite: sums
            .iter()
            .zip(tensors)
            .map(|(s, t)| {
                if s.norm.is_finite() {
                    0
                } else {
                    t.stats().map_or(t.numel(), |st| st.nan + st.inf)
                }
            })
            .collect(),
        norm: norms,
    }
}

/// The sums of every checkpoint over elements `range`, a chunk at a time.
fn part(tensors: &[&Tensor], Range { start: first, end }: Range<usize>) -> Vec<Sums> {
    let mut sums = vec![Sums::default(); tensors.len()];
    let mut values = vec![Vec::with_capacity(CHUNK); tensors.len()];
    let byte_at =
        |t: &Tensor, element: usize| t.dtype().byte_len(element).unwrap_or(t.bytes().len());
    for at in (first..end).step_by(CHUNK) {
        if (at - first).is_multiple_of(STRETCH) {
            let stretch = at..(at + STRETCH).min(end);
            for t in tensors {
                // The stretch before is done: its pages go back; this one's come in at once.
                if at > first {
                    t.release(byte_at(t, at - STRETCH)..byte_at(t, at));
                }
                t.populate(byte_at(t, stretch.start)..byte_at(t, stretch.end));
            }
        }
        let count = CHUNK.min(end - at);
        for (t, v) in tensors.iter().zip(&mut values) {
            load(t, at, count, v);
        }
        let last = &values[values.len() - 1];
        for (t, s) in sums.iter_mut().enumerate() {
            s.merge(chunk_sums(
                &values[t],
                &values[0],
                &values[t.saturating_sub(1)],
                last,
            ));
        }
    }
    let stretch_start = first + (end - first).saturating_sub(1) / STRETCH * STRETCH;
    for t in tensors {
        t.release(byte_at(t, stretch_start)..byte_at(t, end));
    }
    sums
}

/// Elements `at..at + count` of `t` as f64 into `out`: F32 read in place, any other dtype decoded.
fn load(t: &Tensor, at: usize, count: usize, out: &mut Vec<f64>) {
    if t.dtype() == DType::F32 {
        out.clear();
        out.extend(
            t.bytes()[at * 4..(at + count) * 4]
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
        );
    } else {
        decode::decode_f64(t.dtype(), t.bytes(), at, count, out).expect("checked decodable");
    }
}

/// One checkpoint's sums over one chunk, in [`LANES`] interleaved accumulators.
fn chunk_sums(x: &[f64], x0: &[f64], xp: &[f64], xl: &[f64]) -> Sums {
    let mut acc = [[0f64; LANES]; 4];
    let whole = x.len() - x.len() % LANES;
    let mut add = |i: usize, lane: usize| {
        let v = x[i];
        acc[0][lane] += v * v;
        acc[1][lane] += (v - x0[i]) * (v - x0[i]);
        acc[2][lane] += (v - xp[i]) * (v - xp[i]);
        acc[3][lane] += v * xl[i];
    };
    for i in (0..whole).step_by(LANES) {
        for lane in 0..LANES {
            add(i + lane, lane);
        }
    }
    for i in whole..x.len() {
        add(i, 0);
    }
    let total = |a: &[f64; LANES]| a.iter().sum();
    Sums {
        norm: total(&acc[0]),
        from_first: total(&acc[1]),
        step: total(&acc[2]),
        to_last: total(&acc[3]),
    }
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
