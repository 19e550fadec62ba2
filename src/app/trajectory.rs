//! A run's checkpoints followed (`--trajectory CKPT...`): each tensor's norm, drift, step change,
//! cosine to the last and NaN/Inf count per checkpoint, and the checkpoints worth a look, laid
//! over the open model's tensors by name; and which checkpoint's version of the selected tensor
//! the values, histogram and heatmap show (`[`/`]`). The worker follows the run and reads those
//! versions (`work::training`); this is the state its replies come back into.

use std::collections::HashMap;

use super::job::{CheckpointKey, PartDetail};
use crate::compare::trajectory::{Flag, Run, Series};
use crate::model::{Model, ParamId};

/// The run followed, as far as the worker got.
pub struct Trajectory {
    /// The checkpoints, in order, as the user named them.
    pub checkpoints: Vec<String>,
    /// Tensors followed and tensors in all, while the worker runs.
    pub progress: Option<(usize, usize)>,
    /// The figures, once followed.
    pub run: Option<Run>,
    /// Each of the open model's tensors' series, by index into the run's.
    by_param: HashMap<ParamId, usize>,
    /// The checkpoint whose version of the selected tensor the values, histogram and heatmap
    /// show; `None` for the open model's own.
    pub at: Option<usize>,
    /// That version, asked of the worker (`None` until it comes; `Err` when it could not be
    /// read, which the status bar said).
    pub version: Option<(CheckpointKey, Option<Result<PartDetail, ()>>)>,
}

impl Trajectory {
    /// A run of `checkpoints` about to be followed.
    #[must_use]
    pub fn new(checkpoints: Vec<String>) -> Self {
        Trajectory {
            checkpoints,
            progress: Some((0, 0)),
            run: None,
            by_param: HashMap::new(),
            at: None,
            version: None,
        }
    }

    /// One checkpoint earlier or later (from the last, which the app opens unless told
    /// otherwise), kept within the run.
    pub fn step(&mut self, later: bool) {
        let last = self.checkpoints.len().saturating_sub(1);
        let from = self.at.unwrap_or(last);
        self.at = Some(if later {
            (from + 1).min(last)
        } else {
            from.saturating_sub(1)
        });
    }

    /// The version of tensor `name` the views show instead of the open model's: `None` when they
    /// show the open model's, `Err` while it is read or when it cannot be.
    #[must_use]
    pub fn shown(&self, name: &str) -> Option<Result<&PartDetail, &'static str>> {
        let at = self.at?;
        let reading = "reading this checkpoint's tensor …";
        Some(match &self.version {
            Some(((n, k), detail)) if n == name && *k == at => match detail {
                Some(Ok(detail)) => Ok(detail),
                Some(Err(())) => {
                    Err("this checkpoint's tensor could not be read (the status bar said why)")
                }
                None => Err(reading),
            },
            _ => Err(reading),
        })
    }

    /// Takes in the run followed, laid over `model`'s tensors.
    pub fn receive(&mut self, run: Run, model: &Model) {
        self.progress = None;
        self.run = Some(run);
        self.lay_over(model);
    }

    /// Lays the run over `model`'s tensors by state_dict key (again after another model opened).
    pub fn lay_over(&mut self, model: &Model) {
        let Some(run) = &self.run else {
            return;
        };
        let ids: HashMap<String, ParamId> = model.state_dict().into_iter().collect();
        self.by_param = (run.series.iter().enumerate())
            .filter_map(|(i, s)| Some((*ids.get(&s.name)?, i)))
            .collect();
    }

    /// The series of the open model's tensor `id`, when the run followed it.
    #[must_use]
    pub fn series(&self, id: ParamId) -> Option<&Series> {
        let run = self.run.as_ref()?;
        self.by_param.get(&id).map(|&i| &run.series[i])
    }

    /// The flags of the series called `name`.
    pub fn flags<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Flag> {
        (self.run.iter())
            .flat_map(|run| &run.flags)
            .filter(move |f| f.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::Trajectory;
    use crate::compare::trajectory::{Flag, FlagKind, Run, Series};
    use crate::model::demos;

    #[test]
    fn a_run_is_laid_over_the_tensors_by_name() {
        let model = demos::build("mlp", 0).unwrap();
        let (name, id) = model.state_dict()[1].clone();
        let series = |name: &str| Series {
            name: name.to_owned(),
            norm: vec![1.0, 2.0],
            drift: vec![0.0, 1.0],
            step_change: vec![None, Some(1.0)],
            cosine_to_last: vec![1.0, 1.0],
            nonfinite: vec![0, 0],
        };
        let mut t = Trajectory::new(vec!["a".into(), "b".into()]);
        assert!(t.series(id).is_none() && t.progress.is_some());
        let flag = Flag {
            name: name.clone(),
            checkpoint: 1,
            kind: FlagKind::StepJump,
        };
        t.receive(
            Run {
                series: vec![series("not.in.the.model"), series(&name)],
                flags: vec![flag.clone()],
            },
            &model,
        );
        assert_eq!(t.series(id).map(|s| s.name.as_str()), Some(name.as_str()));
        assert_eq!(t.flags(&name).collect::<Vec<_>>(), [&flag]);
        assert!(t.progress.is_none());
    }
}
