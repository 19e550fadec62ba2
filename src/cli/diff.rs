//! `paramscope diff A B`: what changed between two models, tensor by tensor. Of two remote models,
//! only the tensors the comparison reads are fetched: a tensor in a file whose content hash (LFS
//! sha256) matches the other side's is the same without its values. Two LoRA adapters are compared
//! by their updates instead (`diff_adapters`); an adapter against a model, merged into its base.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{
    CliError, DIFFERENT, DiffArgs, ModelArgs, Output, cell, diff_adapters, fetch_said, json_number,
    json_text, merged, summary_json,
};
use crate::compare::diff::{self, Entry, Status};
use crate::text::escape;

pub(super) fn run(args: &DiffArgs) -> Result<Output, CliError> {
    let open = |spec: &str| {
        ModelArgs {
            model: spec.to_owned(),
            arch: None,
            seed: 0,
            key: None,
            base: args.base.clone(),
        }
        .open()
    };
    let (a, b) = (open(&args.a)?, open(&args.b)?);
    // Two adapters: their updates, compared through their factors.
    if a.adapter.is_some() && b.adapter.is_some() {
        return diff_adapters::run(&a, &b, args.json, args.exit_code);
    }
    let (a, b) = (merged(a)?, merged(b)?);
    let (read_a, read_b) = diff::to_read(&a, &b, &args.map)?;
    fetch_said(&a, &read_a, " of A")?;
    fetch_said(&b, &read_b, " of B")?;
    let entries = diff::diff(&a, &b, &args.map)?;
    let summary = diff::summary(&entries);
    let differs = summary[0] != entries.len();
    let stdout = if args.json {
        json_text(&to_json(&entries, summary))
    } else {
        to_text(&entries, summary, &a)
    };
    Ok(Output {
        stdout,
        code: if args.exit_code && differs {
            DIFFERENT
        } else {
            0
        },
        opened: None,
    })
}

fn to_json(entries: &[Entry], summary: [usize; 5]) -> Value {
    let tensors: Vec<Value> = entries.iter().map(entry_json).collect();
    let mut value = json!({
        "summary": summary_json(summary),
        "tensors": tensors,
    });
    // Only remote models' tensors can be told the same by their files' hashes.
    let by_hash = entries.iter().filter(|e| e.by_hash).count();
    if by_hash > 0 {
        value["summary"]["same_by_hash"] = json!(by_hash);
    }
    value
}

/// One tensor: `shape` and `dtype` are A's (B's for `only_b`), with `shape_b` and `dtype_b` where B's differ.
fn entry_json(e: &Entry) -> Value {
    let shape = e.shape.0.as_ref().or(e.shape.1.as_ref());
    let dtype = e.dtype.0.or(e.dtype.1);
    let figure = |f: fn(&diff::Figures) -> f64| {
        e.figures
            .as_ref()
            .map_or(Value::Null, |figures| json_number(f(figures)))
    };
    let mut value = json!({
        "name": e.name,
        "status": e.status.name(),
        "shape": shape,
        "dtype": dtype.map(crate::tensor::DType::name),
        "max_abs_diff": figure(|f| f.max_abs_diff),
        "rel_l2": figure(|f| f.rel_l2),
        "cosine": figure(|f| f.cosine),
        "identical_fraction": figure(|f| f.identical_fraction),
    });
    if let (Some(a), Some(b)) = (&e.shape.0, &e.shape.1)
        && a != b
    {
        value["shape_b"] = json!(b);
    }
    if let (Some(a), Some(b)) = (e.dtype.0, e.dtype.1)
        && a != b
    {
        value["dtype_b"] = json!(b.name());
    }
    if e.by_hash {
        // No figures: the values were not fetched, their files' content hashes being equal.
        value["same_by_hash"] = json!(true);
    }
    if let Some(f) = e.figures.as_ref().filter(|f| !f.top_rows.is_empty()) {
        value["rows"] = f
            .top_rows
            .iter()
            .map(
                |r| json!({"row": r.row, "l2": json_number(r.l2), "rel_l2": json_number(r.rel_l2)}),
            )
            .collect();
    }
    value
}

fn to_text(entries: &[Entry], summary: [usize; 5], a: &crate::model::Model) -> String {
    let mut out = String::new();
    // Measured tensors by rel_l2, largest first (NaN first of all: something broke); then the
    // tensors that cannot be measured, in state_dict order.
    let mut measured: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.status != Status::Same && e.figures.is_some())
        .collect();
    let rel = |e: &Entry| e.figures.as_ref().map_or(f64::NAN, |f| f.rel_l2);
    measured.sort_by(|x, y| {
        let (x, y) = (rel(x), rel(y));
        y.is_nan().cmp(&x.is_nan()).then(y.total_cmp(&x))
    });
    let unmeasured = entries
        .iter()
        .filter(|e| e.status != Status::Same && e.figures.is_none());
    let _ = writeln!(
        out,
        "{:>10} {:>10} {:>10} {:>9}  {:<8} name",
        "rel_l2", "max|Δ|", "cosine", "identical", "status"
    );
    for e in measured.into_iter().chain(unmeasured) {
        let (rel_l2, max, cosine, identical) = e.figures.as_ref().map_or_else(
            || {
                (
                    "-".to_owned(),
                    "-".to_owned(),
                    "-".to_owned(),
                    "-".to_owned(),
                )
            },
            |f| {
                (
                    cell(f.rel_l2),
                    cell(f.max_abs_diff),
                    format!("{:.6}", f.cosine),
                    format!("{:.2}%", 100.0 * f.identical_fraction),
                )
            },
        );
        let _ = write!(
            out,
            "{rel_l2:>10} {max:>10} {cosine:>10} {identical:>9}  {:<8} {}",
            e.status.name(),
            escape(&e.name)
        );
        let _ = writeln!(out, "{}", detail(e));
    }
    let same: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.status == Status::Same)
        .collect();
    if !same.is_empty() {
        let elements: usize = same
            .iter()
            .filter_map(|e| e.shape.0.as_ref())
            .map(|s| s.iter().product::<usize>())
            .sum();
        let _ = writeln!(out, "{} tensors unchanged ({elements} values)", same.len());
        let by_hash = same.iter().filter(|e| e.by_hash).count();
        if by_hash > 0 {
            let _ = writeln!(
                out,
                "{by_hash} of them without fetching their values: their files' content hashes (the LFS sha256 on the Hub) match in A and B"
            );
        }
    }
    let [same, changed, only_a, only_b, mismatched] = summary;
    let _ = writeln!(
        out,
        "summary: {changed} changed, {same} same, {only_a} only in A, {only_b} only in B, {mismatched} mismatched (of {} names in A)",
        a.state_dict().len()
    );
    out
}

/// What follows the name: the rows that moved most, or why there are no figures.
fn detail(e: &Entry) -> String {
    let shapes = |s: &Option<Vec<usize>>| s.as_ref().map_or_else(String::new, |s| format!("{s:?}"));
    match (e.status, &e.figures) {
        (Status::Shape, _) => format!("  {} vs {}", shapes(&e.shape.0), shapes(&e.shape.1)),
        (Status::Dtype, _) => format!(
            "  {} vs {}",
            e.dtype.0.map_or("", |d| d.name()),
            e.dtype.1.map_or("", |d| d.name())
        ),
        (_, Some(f)) if !f.top_rows.is_empty() => {
            let rows: Vec<String> = f.top_rows.iter().map(|r| r.row.to_string()).collect();
            format!("  rows {}", rows.join(", "))
        }
        _ => String::new(),
    }
}
