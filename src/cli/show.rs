//! `paramscope show`: one parameter's dtype, shape, statistics and first values.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{ShowArgs, json_number, json_text};
use crate::tensor::decode::decode_f64;
use crate::tensor::stats::{Stats, stats};
use crate::tensor::{DType, Tensor};
use crate::text::escape;

pub(super) fn run(args: &ShowArgs) -> Result<String, String> {
    let model = args.model.load()?;
    let (name, id) = model.find_param(&args.name).map_err(|e| e.to_string())?;
    let tensor = model.store.get(id);
    let shared_with: Vec<String> = model
        .paths_of(id)
        .into_iter()
        .filter(|p| *p != name)
        .collect();
    let stats = stats(tensor.dtype(), tensor.bytes(), tensor.numel()).ok();
    let mut values = Vec::new();
    let shown = args.limit.min(tensor.numel());
    let decodable = decode_f64(tensor.dtype(), tensor.bytes(), 0, shown, &mut values).is_ok();
    Ok(if args.json {
        let values = decodable.then(|| {
            values
                .iter()
                .map(|v| value_json(tensor.dtype(), *v))
                .collect::<Vec<_>>()
        });
        json_text(&json!({
            "name": name,
            "dtype": tensor.dtype().name(),
            "shape": tensor.shape(),
            "numel": tensor.numel(),
            "shared_with": shared_with,
            "stats": stats.map(stats_json),
            "values": values,
        }))
    } else {
        to_text(
            &name,
            tensor,
            &shared_with,
            stats.as_ref(),
            decodable.then_some(&values[..]),
        )
    })
}

/// Integers and booleans print as integers, floats as the f64 of the stored value (as `.tolist()`).
fn value_json(dtype: DType, v: f64) -> Value {
    if !dtype.is_float() && v.is_finite() && v.fract() == 0.0 && v.abs() < 9.007_199_254_740_992e15
    {
        json!(v as i64)
    } else {
        json_number(v)
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
    values: Option<&[f64]>,
) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "{label:<8} {value}");
    };
    line("name", escape(name).into_owned());
    line("dtype", tensor.dtype().name().to_owned());
    line("shape", format!("{:?}", tensor.shape()));
    line("numel", tensor.numel().to_string());
    line("bytes", tensor.bytes().len().to_string());
    if !shared_with.is_empty() {
        line(
            "shared",
            format!("with {}", escape(&shared_with.join(", "))),
        );
    }
    match stats {
        Some(s) => {
            line("min", format!("{:.6}", s.min));
            line("max", format!("{:.6}", s.max));
            line("mean", format!("{:.6}", s.mean));
            line("std", format!("{:.6}  (unbiased)", s.std));
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
            let cells: Vec<String> = chunk.iter().map(|v| format!("{v:>10.6}")).collect();
            let _ = writeln!(out, "  {}", cells.join(" "));
        }
    }
    out
}
