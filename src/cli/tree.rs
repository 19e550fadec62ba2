//! `paramscope tree`: the module tree as `print(model)` shows it, and every parameter.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use super::{TreeArgs, json_text};
use crate::io::pickle::Scalar;
use crate::model::Model;
use crate::model::arch;
use crate::text::escape;

/// Characters of a metadata value shown in text (the whole value is in `--json`).
const METADATA_WIDTH: usize = 100;

pub(super) fn run(args: &TreeArgs) -> Result<String, String> {
    let loaded = args.model.open()?;
    let (model, values) = (&loaded.model, &loaded.values);
    Ok(if args.json {
        let mut json = to_json(model);
        if !values.is_empty() {
            let values: Map<String, Value> = values
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect();
            json["values"] = Value::Object(values);
        }
        json_text(&json)
    } else {
        to_text(model) + &values_text(values)
    })
}

/// Each state_dict entry with the other paths of its tensor (one pass to group paths by tensor,
/// so a checkpoint of many tensors does not compare every name with every other).
fn entries(model: &Model) -> Vec<(String, crate::model::ParamId, Vec<String>)> {
    let state_dict = model.state_dict();
    let mut paths: HashMap<crate::model::ParamId, Vec<&str>> = HashMap::new();
    for (name, id) in &state_dict {
        paths.entry(*id).or_default().push(name);
    }
    state_dict
        .iter()
        .map(|(name, id)| {
            let others = paths[id]
                .iter()
                .filter(|other| **other != name.as_str())
                .map(|other| (*other).to_owned())
                .collect();
            (name.clone(), *id, others)
        })
        .collect()
}

fn to_text(model: &Model) -> String {
    // Escaped line by line: a checkpoint's module names are untrusted text.
    let mut out = String::new();
    for line in arch::print(&model.root).lines() {
        let _ = writeln!(out, "{}", escape(line));
    }
    let rows: Vec<(String, String)> = entries(model)
        .into_iter()
        .map(|(name, id, others)| {
            let tensor = model.store.get(id);
            let mut kind = format!("{:?} {}", tensor.shape(), tensor.dtype());
            if !others.is_empty() {
                let _ = write!(kind, "  shared with {}", others.join(", "));
            }
            (escape(&name).into_owned(), kind)
        })
        .collect();
    let width = rows
        .iter()
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(0);
    out.push_str("\nparameters (state_dict order):\n");
    for (name, kind) in rows {
        let _ = writeln!(out, "  {name:width$}  {kind}");
    }
    let _ = writeln!(out, "total: {} parameters", model.total_params());
    if !model.metadata.is_empty() {
        out.push_str("\nmetadata:\n");
        for (key, value) in &model.metadata {
            let value = escape(value);
            let shown: String = value.chars().take(METADATA_WIDTH).collect();
            let more = if shown.len() < value.len() {
                " ..."
            } else {
                ""
            };
            let _ = writeln!(out, "  {}: {shown}{more}", escape(key));
        }
    }
    out
}

/// A PyTorch checkpoint's plain values, one per line: `  epoch = 7`.
fn values_text(values: &[(String, Scalar)]) -> String {
    let mut out = String::new();
    if values.is_empty() {
        return out;
    }
    out.push_str("\nvalues:\n");
    for (name, value) in values {
        let value = value.to_string();
        let value = escape(&value);
        let shown: String = value.chars().take(METADATA_WIDTH).collect();
        let more = if shown.len() < value.len() {
            " ..."
        } else {
            ""
        };
        let _ = writeln!(out, "  {} = {shown}{more}", escape(name));
    }
    out
}

fn to_json(model: &Model) -> Value {
    let params: Vec<Value> = entries(model)
        .into_iter()
        .map(|(name, id, others)| {
            let tensor = model.store.get(id);
            json!({
                "name": name,
                "shape": tensor.shape(),
                "dtype": tensor.dtype().name(),
                "shared_with": others,
            })
        })
        .collect();
    let mut modules = Map::new();
    model.root.walk("", &mut |path, module| {
        let params: Vec<String> = module
            .params
            .iter()
            .map(|(local, _)| crate::model::tree::join(path, local))
            .collect();
        let children: Vec<&str> = module.children.iter().map(|c| c.name.as_str()).collect();
        modules.insert(
            path.to_owned(),
            json!({
                "kind": module.class_name(),
                "repr": module.repr(),
                "params": params,
                "children": children,
                "num_params": model.count_params(module),
            }),
        );
    });
    json!({
        "total_params": model.total_params(),
        "metadata": model.metadata,
        "params": params,
        "modules": modules,
    })
}
