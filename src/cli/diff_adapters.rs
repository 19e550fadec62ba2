//! `paramscope diff ADAPTER_A ADAPTER_B [--base MODEL]`: two LoRA adapters compared by their updates
//! module by module (norms, the norm of the difference, cosine), through low-rank identities
//! (`compare::lora_diff`), never forming an update but a DoRA module's.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{CliError, DIFFERENT, Output, cell, json_number, json_text, summary_json};
use crate::checkpoint::{self, Loaded};
use crate::compare::diff::Status;
use crate::compare::lora_diff::{UpdateDiff, UpdateFigures, diff_updates};
use crate::text::escape;

/// Both sides opened with their adapters (the caller checked both have one).
pub(super) fn run(a: &Loaded, b: &Loaded, json: bool, exit_code: bool) -> Result<Output, CliError> {
    let (Some(adapter_a), Some(adapter_b)) = (&a.adapter, &b.adapter) else {
        unreachable!("diff calls this for two adapters only")
    };
    for (loaded, adapter) in [(a, adapter_a), (b, adapter_b)] {
        for lora in &adapter.loras {
            for tensor in [&lora.a, &lora.b].into_iter().chain(&lora.magnitude) {
                checkpoint::fetch(tensor)?;
            }
            // A DoRA update is formed from its base weight.
            if lora.magnitude.is_some() {
                checkpoint::fetch_these(&loaded.model, &[lora.id])?;
            }
        }
    }
    let updates = diff_updates((&adapter_a.loras, &a.model), (&adapter_b.loras, &b.model))?;
    let count = |status: Status| updates.iter().filter(|u| u.status == status).count();
    let summary = [
        count(Status::Same),
        count(Status::Changed),
        count(Status::OnlyA),
        count(Status::OnlyB),
        count(Status::Shape),
    ];
    let stdout = if json {
        json_text(&to_json(&updates, summary))
    } else {
        to_text(&updates, summary)
    };
    Ok(Output {
        stdout,
        code: if exit_code && summary[0] != updates.len() {
            DIFFERENT
        } else {
            0
        },
        opened: None,
    })
}

fn to_json(updates: &[UpdateDiff], summary: [usize; 5]) -> Value {
    let updates: Vec<Value> = updates
        .iter()
        .map(|u| {
            let mut value = json!({ "module": u.module, "status": u.status.name() });
            if let Some(f) = &u.figures {
                value["r"] = json!([f.r.0, f.r.1]);
                value["norm_a"] = json_number(f.norm_a);
                value["norm_b"] = json_number(f.norm_b);
                value["diff_norm"] = json_number(f.diff_norm);
                value["rel_diff"] = json_number(f.rel_diff());
                value["cosine"] = json_number(f.cosine);
                value["formed"] = json!(f.formed);
            }
            value
        })
        .collect();
    json!({
        "summary": summary_json(summary),
        "updates": updates,
    })
}

/// The changed updates by their difference relative to A's, largest first (NaN first: A's update
/// is zero), then the modules only one side adapts or whose updates cannot be compared.
fn to_text(
    updates: &[UpdateDiff],
    [same, changed, only_a, only_b, mismatched]: [usize; 5],
) -> String {
    let mut out = String::new();
    let mut shown: Vec<&UpdateDiff> = updates
        .iter()
        .filter(|u| u.status != Status::Same)
        .collect();
    let rel = |u: &UpdateDiff| {
        u.figures
            .as_ref()
            .map_or(f64::NEG_INFINITY, UpdateFigures::rel_diff)
    };
    shown.sort_by(|x, y| {
        let (x, y) = (rel(x), rel(y));
        y.is_nan().cmp(&x.is_nan()).then(y.total_cmp(&x))
    });
    let _ = writeln!(
        out,
        "{:>10} {:>10} {:>10} {:>10} {:>7}  {:<8} module",
        "rel_diff", "|dW_A|", "|dW_B|", "cosine", "r A/B", "status"
    );
    for u in shown {
        let figures = u.figures.as_ref().map_or_else(
            || format!("{:>10} {:>10} {:>10} {:>10} {:>7}", "-", "-", "-", "-", "-"),
            |f| {
                format!(
                    "{:>10} {:>10} {:>10} {:>10.6} {:>7}",
                    cell(f.rel_diff()),
                    cell(f.norm_a),
                    cell(f.norm_b),
                    f.cosine,
                    format!("{}/{}", f.r.0, f.r.1)
                )
            },
        );
        let formed = if u.figures.is_some_and(|f| f.formed) {
            "  (DoRA: formed)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{figures}  {:<8} {}{formed}",
            u.status.name(),
            escape(&u.module)
        );
    }
    let _ = writeln!(
        out,
        "summary: {changed} updates changed, {same} same, {only_a} only in A, {only_b} only in B, {mismatched} mismatched"
    );
    out
}
