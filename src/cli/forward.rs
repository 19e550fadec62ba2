//! `paramscope forward`: run the model on an `.npy` input or a random batch.

use ndarray::{ArrayD, IxDyn};
use serde_json::{Value, json};

use std::fmt::Write as _;
use std::time::Instant;

use super::{ForwardArgs, json_number, json_text};
use crate::checkpoint::Architecture;
use crate::io::npy;
use crate::model::forward::{Activation, ActivationStats, ForwardBuffers, ForwardPlan};
use crate::text::escape;

pub(super) fn run(args: &ForwardArgs) -> Result<String, String> {
    let loaded = args.model.open()?;
    let model = loaded.model;
    let plan = ForwardPlan::new(&model).map_err(|e| e.to_string())?;
    if loaded.architecture == Architecture::Inferred {
        eprintln!(
            "warning: {}: the layers were read from the tensor names as a chain of Linear layers; a checkpoint does not record layers without parameters (activations), so if the model has any, pass --arch FILE (the text print(model) shows)",
            escape(&args.model.model)
        );
    }
    let x = match &args.input {
        Some(path) => npy::read(path).map_err(|e| e.to_string())?,
        None => plan
            .random_input(args.batch as usize, args.model.seed)
            .map_err(|e| e.to_string())?,
    };
    let activations = plan.run(&x).map_err(|e| e.to_string())?;
    let time_us = match args.repeat {
        Some(n) => Some(median_pass_us(&plan, &x, n)?),
        None => None,
    };
    let output = &activations
        .last()
        .expect("run yields at least one activation")
        .output;
    if let Some(path) = &args.output {
        npy::write(path, output)
            .map_err(|e| format!("{}: {e}", escape(&path.display().to_string())))?;
    }
    if args.json {
        let mut value = json!({
            "input_shape": x.shape(),
            "output_shape": output.shape(),
            "output": nested(output),
            "layers": activations.iter().map(layer_json).collect::<Vec<_>>(),
        });
        if let Some(t) = time_us {
            // To the nanosecond: more digits would be noise.
            value["time_us"] = json_number((t * 1e3).round() / 1e3);
        }
        return Ok(json_text(&value));
    }
    let mut out = format!(
        "input  {:?}\noutput {:?}\n{output:.6}\n\nlayer outputs:\n",
        x.shape(),
        output.shape()
    );
    for a in &activations {
        let ActivationStats {
            mean,
            std,
            zero_fraction,
        } = a.stats();
        let _ = writeln!(
            out,
            "  {:<12} {:<52} mean {mean:>9.5}  std {std:>9.5}  zeros {:>5.1}%",
            escape(&a.path),
            escape(&a.repr),
            100.0 * zero_fraction
        );
    }
    if let (Some(t), Some(n)) = (time_us, args.repeat) {
        let _ = writeln!(out, "\ntime per pass: {t:.3} us (median of {n})");
    }
    Ok(out)
}

/// The median wall time of one pass over `n` passes, in microseconds.
///
/// Every pass keeps every layer's output, as `run` does, but writes into buffers sized by a first,
/// untimed pass, so a timed pass allocates nothing.
fn median_pass_us(plan: &ForwardPlan, x: &ArrayD<f32>, n: u64) -> Result<f64, String> {
    let mut buffers = ForwardBuffers::default();
    plan.run_reusing(&mut buffers, x)
        .map_err(|e| e.to_string())?;
    let mut times = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let start = Instant::now();
        let outputs = plan
            .run_reusing(&mut buffers, x)
            .map_err(|e| e.to_string())?;
        std::hint::black_box(outputs);
        times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    let mid = times.len() / 2;
    Ok(if times.len() % 2 == 1 {
        times[mid]
    } else {
        f64::midpoint(times[mid - 1], times[mid])
    })
}

fn layer_json(a: &Activation) -> Value {
    let s = a.stats();
    json!({
        "path": a.path,
        "repr": a.repr,
        "shape": a.output.shape(),
        "mean": json_number(s.mean),
        "std": json_number(s.std),
        "zero_fraction": s.zero_fraction,
    })
}

/// An N-D array as nested JSON lists.
fn nested(a: &ArrayD<f32>) -> Value {
    if a.ndim() == 0 {
        return json_number(f64::from(a[IxDyn(&[])]));
    }
    if a.ndim() == 1 {
        return Value::Array(a.iter().map(|v| json_number(f64::from(*v))).collect());
    }
    Value::Array(a.outer_iter().map(|sub| nested(&sub.to_owned())).collect())
}
