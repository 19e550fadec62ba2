//! `paramscope show`: one parameter's dtype, shape, statistics and first values.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{CliError, ShowArgs, json_number, json_text};
use crate::checkpoint::training::{self, Next};
use crate::tensor::Tensor;
use crate::tensor::decode::Scalar;
use crate::tensor::stats::Stats;
use crate::text::escape;

pub(super) fn run(args: &ShowArgs) -> Result<String, CliError> {
    let loaded = args.model.open()?;
    let model = &loaded.model;
    let (name, id) = match model.find_param(&args.name) {
        Ok(found) => found,
        // A plain value `tree` lists (`epoch = 7`) is shown as it is there.
        Err(missing) => {
            let value = loaded.values.iter().find(|(n, _)| *n == args.name);
            let (name, value) = value.ok_or(missing)?;
            return Ok(if args.json {
                json_text(&json!({ "name": name, "value": value.to_json() }))
            } else {
                format!("{} = {}\n", escape(name), escape(&value.to_string()))
            });
        }
    };
    let param = model.store.get(id);
    let optimizer = optimizer(model, &loaded.values, &name, param, args.state.is_some())?;
    let tensor = match (&args.state, &optimizer) {
        (None, _) => param,
        (Some(state), Some(o)) => o.tensor(state).ok_or_else(|| {
            CliError::Arguments(format!(
                "{}: the optimizer keeps no {state} for it ({} keeps {})",
                escape(&name),
                o.state.group.kind.name(),
                o.names().join(", ")
            ))
        })?,
        (Some(_), None) => {
            return Err(CliError::Arguments(format!(
                "{}: the checkpoint holds no optimizer state for it",
                escape(&name)
            )));
        }
    };
    let tensor = match tensor.quantization() {
        Some(q) if args.raw => &q.parts()[0].1,
        _ => tensor,
    };
    // A remote tensor: exactly its range is fetched, once.
    crate::checkpoint::fetch(tensor)?;
    let shared_with: Vec<String> = model
        .paths_of(id)
        .into_iter()
        .filter(|p| *p != name)
        .collect();
    let stats = tensor.stats().ok();
    let shown = args.limit.min(tensor.numel());
    let values = tensor.scalars(0, shown).ok();
    Ok(if args.json {
        let values = values
            .as_ref()
            .map(|v| v.iter().map(scalar_json).collect::<Vec<_>>());
        let mut out = json!({
            "name": name,
            "dtype": tensor.dtype().name(),
            "bits_per_weight": tensor.dtype().bits_per_weight(),
            "shape": tensor.shape(),
            "numel": tensor.numel(),
            "shared_with": shared_with,
            "stats": stats.map(stats_json),
            "values": values,
        });
        if let Some(o) = &optimizer {
            out["optimizer"] = optimizer_json(o);
        }
        if let Some(state) = &args.state {
            out["state"] = json!(state);
        }
        json_text(&out)
    } else {
        let mut text = to_text(
            &name,
            tensor,
            &shared_with,
            stats.as_ref(),
            values.as_deref(),
        );
        if let Some(o) = &optimizer {
            text.push_str(&optimizer_text(o, args.state.as_deref()));
        }
        text
    })
}

/// A step count: an integer as JSON has it, when it is one.
fn step_json(step: f64) -> Value {
    if step.fract() == 0.0 && step.abs() < 9e15 {
        #[expect(clippy::cast_possible_truncation, reason = "an integer below 2^53")]
        let n = step as i64;
        json!(n)
    } else {
        json_number(step)
    }
}

/// The optimizer state of `name` with its next update, when the checkpoint holds one. A state
/// that cannot be matched to the parameters is an error when `--state` asks for it, else a warning.
fn optimizer(
    model: &crate::model::Model,
    values: &[(String, crate::io::pickle::Scalar)],
    name: &str,
    param: &Tensor,
    asked: bool,
) -> Result<Option<Next>, CliError> {
    let state = match training::state_of(model, values, name) {
        Ok(Some(state)) => state,
        Ok(None) => return Ok(None),
        Err(e) if asked => return Err(CliError::Arguments(format!("optimizer state: {e}"))),
        Err(e) => {
            eprintln!(
                "warning: optimizer state not shown: {}",
                escape(&e.to_string())
            );
            return Ok(None);
        }
    };
    training::read(param, &state)?;
    Ok(Some(training::next_step(param, state)?))
}

/// `show --json`'s `"optimizer"`.
fn optimizer_json(o: &Next) -> Value {
    let g = &o.state.group;
    let adam = g.kind != training::OptimizerKind::Sgd;
    let stats = |t: &Tensor| t.stats().ok().map(stats_json);
    let state: serde_json::Map<String, Value> = o
        .state
        .tensors
        .iter()
        .map(|(n, t)| ((*n).to_owned(), json!(stats(t))))
        .collect();
    json!({
        "kind": g.kind.name(),
        "step": o.state.step.map(step_json),
        "lr": json_number(g.lr),
        "betas": adam.then(|| [json_number(g.betas.0), json_number(g.betas.1)]),
        "eps": adam.then(|| json_number(g.eps)),
        "weight_decay": json_number(g.weight_decay),
        "momentum": (!adam).then(|| json_number(g.momentum)),
        "state": state,
        "update": stats(&o.update),
        "update_ratio": json_number(o.ratio),
    })
}

/// The optimizer lines of `show`; `shown` is the `--state` whose values were printed.
fn optimizer_text(o: &Next, shown: Option<&str>) -> String {
    let g = &o.state.group;
    let mut out = String::new();
    let settings = match g.kind {
        training::OptimizerKind::Sgd => format!(
            "momentum {}  nesterov {}",
            number_text(g.momentum),
            g.nesterov
        ),
        _ => format!("betas ({}, {})  eps {:e}", g.betas.0, g.betas.1, g.eps),
    };
    let step = o
        .state
        .step
        .map_or(String::new(), |s| format!("  step {s}"));
    let _ = writeln!(
        out,
        "optimizer {}{step}  lr {:e}  weight_decay {}  {settings}",
        g.kind.name(),
        g.lr,
        g.weight_decay
    );
    let mut line = |label: &str, t: &Tensor| {
        if let Ok(s) = t.stats() {
            let _ = writeln!(
                out,
                "  {label:<15} mean {}  std {}  min {}  max {}  nan {}  inf {}",
                number_text(s.mean),
                number_text(s.std),
                number_text(s.min),
                number_text(s.max),
                s.nan,
                s.inf
            );
        }
    };
    for (name, t) in &o.state.tensors {
        line(name, t);
    }
    line("update", &o.update);
    let _ = writeln!(
        out,
        "  update ratio    ||update|| / ||param|| = {}",
        number_text(o.ratio)
    );
    if let Some(shown) = shown {
        let _ = writeln!(out, "(the values above are {shown}'s)");
    }
    out
}

/// A value as JSON: booleans and integers exactly, floats as the f64 of the stored value (what
/// `.tolist()` gives), complex as `[re, im]`; NaN and ±Inf, which JSON cannot hold, as null.
fn scalar_json(v: &Scalar) -> Value {
    match *v {
        Scalar::Bool(b) => json!(b),
        Scalar::Int(i) => i64::try_from(i).map_or_else(|_| json!(i as u64), |i| json!(i)),
        Scalar::Float(f) => json_number(f),
        Scalar::Complex(re, im) => json!([json_number(f64::from(re)), json_number(f64::from(im))]),
    }
}

/// A float with six decimals, or in scientific notation when that would hide it.
fn number_text(v: f64) -> String {
    if v != 0.0 && v.is_finite() && !(1e-4..1e6).contains(&v.abs()) {
        format!("{v:.6e}")
    } else {
        format!("{v:.6}")
    }
}

/// A value as text, as PyTorch prints it: `True`, `7`, `-0.250000`, `(1+2j)`.
fn scalar_text(v: &Scalar) -> String {
    match *v {
        Scalar::Bool(b) => if b { "True" } else { "False" }.to_owned(),
        Scalar::Int(i) => i.to_string(),
        Scalar::Float(f) => number_text(f),
        Scalar::Complex(re, im) => format!("({re}{im:+}j)"),
    }
}

fn stats_json(s: Stats) -> Value {
    json!({
        "min": json_number(s.min),
        "max": json_number(s.max),
        "mean": json_number(s.mean),
        "std": json_number(s.std),
        "zeros": s.zeros,
        "nan": s.nan,
        "inf": s.inf,
    })
}

fn to_text(
    name: &str,
    tensor: &Tensor,
    shared_with: &[String],
    stats: Option<&Stats>,
    values: Option<&[Scalar]>,
) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "{label:<8} {value}");
    };
    line("name", escape(name).into_owned());
    line("dtype", tensor.dtype().label());
    line("shape", format!("{:?}", tensor.shape()));
    line("numel", tensor.numel().to_string());
    line("bytes", tensor.byte_len().to_string());
    if !shared_with.is_empty() {
        line(
            "shared",
            format!("with {}", escape(&shared_with.join(", "))),
        );
    }
    match stats {
        Some(_) if tensor.numel() == 0 => line("values", "(empty)".to_owned()),
        Some(s) => {
            if s.nan + s.inf > 0 {
                line(
                    "over",
                    "finite values only (NaN and Inf are counted apart)".to_owned(),
                );
            }
            line("min", number_text(s.min));
            line("max", number_text(s.max));
            line("mean", number_text(s.mean));
            line("std", format!("{}  (unbiased)", number_text(s.std)));
            line("zeros", s.zeros.to_string());
            line("nan", s.nan.to_string());
            line("inf", s.inf.to_string());
        }
        None => line(
            "values",
            format!(
                "dtype {} cannot be decoded; shape and size only",
                tensor.dtype()
            ),
        ),
    }
    if let Some(values) = values {
        let _ = writeln!(
            out,
            "values (first {} of {}, C order):",
            values.len(),
            tensor.numel()
        );
        let row = tensor.shape().last().copied().unwrap_or(1).max(1);
        for chunk in values.chunks(row) {
            let cells: Vec<String> = chunk
                .iter()
                .map(|v| format!("{:>10}", scalar_text(v)))
                .collect();
            let _ = writeln!(out, "  {}", cells.join(" "));
        }
    }
    out
}
