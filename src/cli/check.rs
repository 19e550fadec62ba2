//! `paramscope check MODEL`: the tensors that look broken, and with `--spectral` the spectral
//! figures of every 2-D weight.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{CheckArgs, CliError, all_ids, fetch_said, json_number, json_text};
use crate::checkpoint::adapter::Attached;
use crate::checkpoint::training;
use crate::compare::adapter::{self as lora, Finding as LoraFinding};
use crate::compare::health::{self, Finding};
use crate::compare::spectral::{self, Spectral};
use crate::model::Model;
use crate::text::escape;

/// Indices listed per finding in text; JSON lists them all.
const SHOWN: usize = 12;

pub(super) fn run(args: &CheckArgs) -> Result<String, CliError> {
    let loaded = args.model.open()?;
    fetch_said(&loaded.model, &all_ids(&loaded.model), "")?;
    if let Some(adapter) = &loaded.adapter {
        return Ok(coverage(adapter, args.json));
    }
    let model = loaded.model;
    let findings = health::check(&model);
    let steps = outliers(&model, &loaded.values);
    let scales = scale_findings(&model);
    let spectra = if args.spectral {
        Some(spectra(&model))
    } else {
        None
    };
    Ok(if args.json {
        let mut listed: Vec<Value> = findings.iter().map(finding_json).collect();
        listed.extend(scales.iter().map(|(name, kind, count, total)| {
            json!({"kind": kind, "severity": if *kind == "outlier_scales" { "info" } else { "defect" },
                   "tensor": name, "count": count, "scales": total})
        }));
        let mut value = json!({"findings": listed});
        if let Some((outliers, median)) = &steps {
            value["update_ratio_outliers"] = json!({
                "median": json_number(*median),
                "tensors": outliers
                    .iter()
                    .map(|(n, r)| json!({"tensor": n, "update_ratio": json_number(*r)}))
                    .collect::<Vec<_>>(),
            });
        }
        if let Some(spectra) = &spectra {
            value["spectral"] = spectra
                .iter()
                .map(|(name, s)| {
                    json!({
                        "tensor": name,
                        "spectral_norm": json_number(s.spectral_norm),
                        "stable_rank": json_number(s.stable_rank),
                        "alpha": s.alpha.map_or(Value::Null, json_number),
                        "iterations": s.iterations,
                        "caps": s.caps.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    })
                })
                .collect();
        }
        json_text(&value)
    } else {
        let mut text = String::new();
        for (name, kind, count, total) in &scales {
            let _ = writeln!(
                text,
                "{kind:<16} {}  {count} of {total} scales",
                escape(name)
            );
        }
        text += &to_text(&model, &findings, spectra.as_deref());
        if let Some((outliers, median)) = &steps {
            for (name, ratio) in outliers {
                let _ = writeln!(
                    text,
                    "{:<16} {}  the optimizer's next step moves it {ratio:.3e} of its norm, over {}x the median parameter's ({median:.3e})",
                    "update_ratio",
                    escape(name),
                    training::UPDATE_OUTLIER
                );
            }
        }
        text
    })
}

/// The parameters whose next optimizer step (with a zero gradient) is an outlier: a ratio
/// `||update|| / ||param||` over [`training::UPDATE_OUTLIER`] times the model's median, or not
/// finite; `None` without optimizer state. A state that cannot be matched is said on stderr.
fn outliers(
    model: &Model,
    values: &[(String, crate::io::pickle::Scalar)],
) -> Option<(Vec<(String, f64)>, f64)> {
    match training::update_ratios(model, values) {
        Ok((ratios, _)) if ratios.is_empty() => None,
        Ok((ratios, median)) => Some((
            ratios
                .into_iter()
                .filter(|(_, r)| !r.is_finite() || *r > training::UPDATE_OUTLIER * median)
                .collect(),
            median,
        )),
        Err(e) => {
            eprintln!(
                "warning: optimizer state not checked: {}",
                escape(&e.to_string())
            );
            None
        }
    }
}

/// `(weight, kind, count, scales)` for each quantized weight with zero, non-finite or outlying
/// scales (over 20x the median's magnitude: information, where the outliers were).
fn scale_findings(model: &Model) -> Vec<(String, &'static str, usize, usize)> {
    let mut found = Vec::new();
    for (name, id) in model.named_parameters() {
        let Some(q) = model.store.get(id).quantization() else {
            continue;
        };
        let c = q.check_scales();
        for (kind, count) in [
            ("zero_scales", c.zero),
            ("nonfinite_scales", c.nonfinite),
            ("outlier_scales", c.outliers),
        ] {
            if count > 0 {
                found.push((name.clone(), kind, count, c.total));
            }
        }
    }
    found
}

/// The spectral figures of each 2-D floating-point tensor, in state_dict order (once per tensor).
fn spectra(model: &Model) -> Vec<(String, Spectral)> {
    model
        .named_parameters()
        .into_iter()
        .filter(|(_, id)| {
            let tensor = model.store.get(*id);
            tensor.shape().len() == 2 && tensor.dtype().is_float()
        })
        .filter_map(|(name, id)| {
            spectral::spectral(model.store.get(id))
                .ok()
                .map(|s| (name, s))
        })
        .collect()
}

fn finding_json(f: &Finding) -> Value {
    let severity = if f.is_defect() { "defect" } else { "info" };
    let mut value = json!({"kind": f.kind(), "severity": severity, "tensor": f.tensor()});
    match f {
        Finding::Nan { count, first, .. } | Finding::Inf { count, first, .. } => {
            value["count"] = json!(count);
            value["first_index"] = json!(first);
        }
        Finding::DeadRows { rows, .. } => value["rows"] = json!(rows),
        Finding::DeadColumns { columns, .. } => value["columns"] = json!(columns),
        Finding::OutlierColumns {
            columns, median, ..
        } => {
            value["columns"] = json!(columns);
            value["median_column_max"] = json_number(*median);
        }
        Finding::TinyNormRows { rows, median, .. } => {
            value["rows"] = json!(rows);
            value["median_row_norm"] = json_number(*median);
        }
        Finding::Duplicate { of, .. } | Finding::UntiedHead { of, .. } => value["of"] = json!(of),
    }
    value
}

/// An adapter's coverage of its base: the findings about its keys, targets, shapes and values, one
/// line each (or `--json`), and "N of M target modules adapted".
fn coverage(adapter: &Attached, json: bool) -> String {
    let mut findings = adapter.findings.clone();
    findings.extend(adapter.loras.iter().flat_map(lora::scan));
    if json {
        return json_text(&json!({
            "adapter": {
                "base": adapter.base,
                "targets": adapter.targets,
                "adapted": adapter.adapted,
                "r": adapter.r,
                "alpha": adapter.alpha,
                "scaling": adapter.scaling,
            },
            "findings": findings.iter().map(lora_json).collect::<Vec<_>>(),
        }));
    }
    let mut out = String::new();
    for f in &findings {
        let (subject, what) = match f {
            LoraFinding::UnmatchedKey { key, suggestion } => (
                key,
                suggestion.as_ref().map_or_else(
                    || "matches no module of the base".to_owned(),
                    |s| {
                        format!(
                            "matches no module of the base; with the prefix {:?} as {:?} it would adapt {}",
                            escape(&s.from),
                            escape(&s.to),
                            escape(&s.module)
                        )
                    },
                ),
            ),
            LoraFinding::UntargetedModule { path } => {
                (path, "named by target_modules, but the adapter has no weights for it".to_owned())
            }
            LoraFinding::ZeroLoraB { path } => {
                (path, "lora_B is all zeros: the update is zero, the module unchanged".to_owned())
            }
            LoraFinding::Nonfinite { key, count, .. } => (key, format!("{count} NaN/Inf values")),
            LoraFinding::ShapeMismatch {
                key,
                shape,
                expected,
                ..
            } => (key, format!("shape {shape:?}, but the base weight calls for {expected:?}")),
        };
        let _ = writeln!(out, "{:<17} {}  {what}", f.kind(), escape(subject));
    }
    let _ = writeln!(
        out,
        "{} of {} target modules adapted ({} LoRA weights on {}; r={}, alpha={}, scaling={})",
        adapter.adapted,
        adapter.targets,
        adapter.loras.len(),
        escape(&adapter.base),
        adapter.r,
        adapter.alpha,
        adapter.scaling
    );
    out
}

fn lora_json(f: &LoraFinding) -> Value {
    let mut value = json!({"kind": f.kind()});
    match f {
        LoraFinding::UnmatchedKey { key, suggestion } => {
            value["key"] = json!(key);
            value["suggestion"] = suggestion.as_ref().map_or(
                Value::Null,
                |s| json!({"from": s.from, "to": s.to, "module": s.module}),
            );
        }
        LoraFinding::UntargetedModule { path } | LoraFinding::ZeroLoraB { path } => {
            value["path"] = json!(path);
        }
        LoraFinding::Nonfinite { path, key, count } => {
            value["path"] = json!(path);
            value["key"] = json!(key);
            value["count"] = json!(count);
        }
        LoraFinding::ShapeMismatch {
            path,
            key,
            shape,
            expected,
        } => {
            value["path"] = json!(path);
            value["key"] = json!(key);
            value["shape"] = json!(shape);
            value["expected"] = json!(expected);
        }
    }
    value
}

/// Up to [`SHOWN`] indices, then how many more.
fn list(indices: &[usize]) -> String {
    let shown: Vec<String> = indices.iter().take(SHOWN).map(usize::to_string).collect();
    let more = indices.len().saturating_sub(SHOWN);
    if more == 0 {
        shown.join(", ")
    } else {
        format!("{}, … ({more} more)", shown.join(", "))
    }
}

fn to_text(model: &Model, findings: &[Finding], spectra: Option<&[(String, Spectral)]>) -> String {
    let mut out = String::new();
    for f in findings {
        let what = match f {
            Finding::Nan { count, first, .. } | Finding::Inf { count, first, .. } => {
                format!("{count} values, the first at {first:?}")
            }
            Finding::DeadRows { rows, .. } => format!("all-zero rows {}", list(rows)),
            Finding::DeadColumns { columns, .. } => format!("all-zero columns {}", list(columns)),
            Finding::OutlierColumns {
                columns, median, ..
            } => format!(
                "columns {} reach {}x the median column's max |w| ({median:.3e})",
                list(columns),
                health::OUTLIER_RATIO
            ),
            Finding::TinyNormRows { rows, median, .. } => format!(
                "rows {} have norms under {} of the median ({median:.3e})",
                list(rows),
                health::TINY_NORM
            ),
            Finding::Duplicate { of, .. } => format!("byte-identical to {}", escape(of)),
            Finding::UntiedHead { of, .. } => {
                format!("equal to {} but stored twice (not tied)", escape(of))
            }
        };
        // Information (a trained model's outlier features) is told apart from defects.
        let info = if f.is_defect() { "" } else { "info: " };
        let _ = writeln!(out, "{:<16} {}  {info}{what}", f.kind(), escape(f.tensor()));
    }
    let tensors = model.named_parameters().len();
    if findings.is_empty() {
        let _ = writeln!(out, "no findings in {tensors} tensors");
    } else if !findings.iter().any(Finding::is_defect) {
        let _ = writeln!(
            out,
            "no defects in {tensors} tensors (information only above)"
        );
    }
    if let Some(spectra) = spectra {
        let _ = writeln!(
            out,
            "\n{:>14} {:>12} {:>8}  tensor",
            "spectral_norm", "stable_rank", "alpha"
        );
        for (name, s) in spectra {
            let alpha = s
                .alpha
                .map_or_else(|| "-".to_owned(), |a| format!("{a:.4}"));
            let _ = writeln!(
                out,
                "{:>14.6e} {:>12.4} {alpha:>8}  {}",
                s.spectral_norm,
                s.stable_rank,
                escape(name)
            );
        }
        for (name, s) in spectra {
            for cap in &s.caps {
                let _ = writeln!(out, "{}: {cap}", escape(name));
            }
        }
    }
    out
}
