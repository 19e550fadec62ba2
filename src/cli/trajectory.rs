//! `paramscope trajectory CKPT...`: a run's checkpoints as a story per tensor (norm, drift from the
//! first, step change, cosine to the last, NaN/Inf), and the checkpoints worth a look. One folder of
//! `checkpoint-N` / `step_N` subfolders stands for them, sorted by number. Every model is opened
//! mapped; values are read one tensor at a time across the checkpoints, all versions side by side.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{CliError, ModelArgs, TrajectoryArgs, json_number, json_text};
use crate::compare::trajectory::{self, Flag, Series};
use crate::model::Model;
use crate::text::escape;

pub(super) fn run(args: &TrajectoryArgs) -> Result<String, CliError> {
    let specs = crate::checkpoint::locate::run(&args.checkpoints);
    if specs.len() < 2 {
        return Err(CliError::Arguments(format!(
            "a trajectory needs two checkpoints or more; {} is one (give several MODELs, or a folder of checkpoint-N or step_N subfolders)",
            escape(&specs[0])
        )));
    }
    let models = specs
        .iter()
        .map(|spec| {
            ModelArgs {
                model: spec.clone(),
                arch: None,
                seed: 0,
                key: None,
                base: None,
            }
            .load_unfetched()
        })
        .collect::<Result<Vec<Model>, _>>()?;
    // One tensor at a time: a remote version is fetched, a sharded one put together.
    let run = trajectory::follow(&models, &crate::checkpoint::fetch, &mut |_, _| {})?;
    let (all, flags) = (run.series, run.flags);
    Ok(if args.json {
        json_text(&to_json(&specs, &all, &flags))
    } else {
        to_text(&specs, &all, &flags)
    })
}

fn numbers(values: &[f64]) -> Vec<Value> {
    values.iter().map(|&v| json_number(v)).collect()
}

fn to_json(specs: &[String], all: &[Series], flags: &[Flag]) -> Value {
    let tensors: Vec<Value> = all
        .iter()
        .map(|s| {
            let steps: Vec<Value> = s
                .step_change
                .iter()
                .map(|v| v.map_or(Value::Null, json_number))
                .collect();
            json!({
                "name": s.name,
                "norm": numbers(&s.norm),
                "drift": numbers(&s.drift),
                "step_change": steps,
                "cosine_to_last": numbers(&s.cosine_to_last),
                "nonfinite": s.nonfinite,
            })
        })
        .collect();
    let flags: Vec<Value> = flags
        .iter()
        .map(|f| json!({"name": f.name, "checkpoint": f.checkpoint, "kind": f.kind.name()}))
        .collect();
    json!({"checkpoints": specs, "tensors": tensors, "flags": flags})
}

/// A figure for the table: 4 significant digits, `-` when not finite.
fn figure(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4e}")
    } else {
        "-".into()
    }
}

fn to_text(specs: &[String], all: &[Series], flags: &[Flag]) -> String {
    let mut out = String::new();
    for (i, spec) in specs.iter().enumerate() {
        let _ = writeln!(out, "[{i}] {}", escape(spec));
    }
    let width = all
        .iter()
        .map(|s| escape(&s.name).chars().count())
        .max()
        .unwrap_or(0)
        .max(6);
    let _ = writeln!(
        out,
        "\n{:width$}  {:>11}  {:>11}  {:>11}  {:>15}  {:>9}",
        "TENSOR", "NORM[0]", "NORM[last]", "DRIFT[last]", "MAX STEP (at)", "NONFINITE"
    );
    for s in all {
        let max_step = s
            .step_change
            .iter()
            .enumerate()
            .filter_map(|(t, v)| v.filter(|x| x.is_finite()).map(|x| (t, x)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let max_step = max_step.map_or("-".into(), |(t, v)| format!("{} ({t})", figure(v)));
        let last = s.norm.len() - 1;
        let _ = writeln!(
            out,
            "{:width$}  {:>11}  {:>11}  {:>11}  {:>15}  {:>9}",
            escape(&s.name),
            figure(s.norm[0]),
            figure(s.norm[last]),
            figure(s.drift[last]),
            max_step,
            s.nonfinite[last]
        );
    }
    if !flags.is_empty() {
        out.push_str("\nflags:\n");
        for f in flags {
            let why = match f.kind {
                trajectory::FlagKind::Nonfinite => "first holds NaN/Inf".to_owned(),
                trajectory::FlagKind::StepJump => format!(
                    "step change over {}x the median of its step changes",
                    trajectory::JUMP
                ),
            };
            let _ = writeln!(out, "  {} at [{}]: {why}", escape(&f.name), f.checkpoint);
        }
    }
    out
}
