//! `paramscope tree`: the module tree as `print(model)` shows it, and every parameter.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde::ser::SerializeMap as _;

use super::{CliError, Output, TreeArgs, json_text};
use crate::checkpoint::adapter::Attached;
use crate::compare::adapter::{self, Figures};
use crate::io::gguf;
use crate::io::pickle::Scalar;
use crate::model::arch;
use crate::model::tree::join_all;
use crate::model::{Model, Module, ParamId};
use crate::text::{self, escape};

/// Characters of a metadata value shown in text (the whole value is in `--json`).
const METADATA_WIDTH: usize = 100;

pub(super) fn run(args: &TreeArgs) -> Result<Output, CliError> {
    let loaded = args.model.open()?;
    let (model, values) = (&loaded.model, &loaded.values);
    let adapted = match &loaded.adapter {
        Some(adapter) => Some((adapter, figures(model, adapter)?)),
        None => None,
    };
    let adapted = adapted.as_ref().map(|(a, f)| (*a, f));
    let stdout = if args.json {
        json_text(&to_json(model, values, &loaded.gguf, adapted))
    } else {
        gguf_text(&loaded.gguf) + &to_text(model, adapted) + &values_text(values)
    };
    Ok(Output {
        stdout,
        code: 0,
        opened: Some(loaded),
    })
}

/// The figures of each adapted base weight.
fn figures(model: &Model, adapter: &Attached) -> Result<HashMap<ParamId, Figures>, CliError> {
    adapter
        .loras
        .iter()
        .map(|lora| {
            Ok((
                lora.id,
                adapter::figures(lora, Some(model.store.get(lora.id)))?,
            ))
        })
        .collect()
}

/// The adapter's summary line, before the parameters.
fn adapter_text(adapter: &Attached) -> String {
    format!(
        "\nLoRA adapter on {}: {} of {} target modules adapted (r={}, alpha={}, scaling={})\n",
        escape(&adapter.base),
        adapter.adapted,
        adapter.targets,
        adapter.r,
        adapter.alpha,
        adapter.scaling
    )
}

/// The tensors that several paths share, each with its paths: built once (one pass over the
/// names), and every row points at its group instead of copying the other paths, so a tensor
/// shared by many paths costs linear, not quadratic, time and output.
struct Shared {
    /// The index into `groups` of each shared tensor.
    group_of: HashMap<ParamId, usize>,
    /// Every path of each shared tensor, in state_dict order; groups ordered by their first path.
    groups: Vec<Vec<String>>,
}

/// The shared tensors of `model`, from `uses`, its paths per store index: only a shared tensor gets
/// a group, and only its paths are built; without one, the names are not walked again.
fn shared(model: &Model, uses: &[usize]) -> Shared {
    let mut group_of = HashMap::new();
    let mut groups: Vec<Vec<String>> = Vec::new();
    if uses.iter().all(|&n| n <= 1) {
        return Shared { group_of, groups };
    }
    model.root.for_each_param(&mut |segments, _, local, id| {
        if uses[id.0] > 1 {
            let group = *group_of.entry(id).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[group].push(join_all(segments, local));
        }
    });
    Shared { group_of, groups }
}

/// `print(model)`, then one line per state_dict entry, escaped (the column widths are those of the
/// escaped text). Keys are written segment by segment, never built: a million rows cost no
/// allocation each.
fn to_text(model: &Model, adapted: Option<(&Attached, &HashMap<ParamId, Figures>)>) -> String {
    let printed = arch::print(&model.root);
    // Copied only when a module name holds something to escape.
    let mut out = match text::escape_lines(&printed) {
        Cow::Borrowed(_) => printed,
        Cow::Owned(escaped) => escaped,
    };
    // One pass for each key's width and the paths per tensor.
    let mut widths: Vec<usize> = Vec::new();
    let mut uses = vec![0usize; model.store.len()];
    model.root.for_each_param(&mut |segments, _, local, id| {
        widths.push(key_pieces(segments, local).map(|p| text::width(&p)).sum());
        uses[id.0] += 1;
    });
    let width = widths.iter().copied().max().unwrap_or(0);
    let Shared { group_of, groups } = shared(model, &uses);
    if let Some((adapter, _)) = adapted {
        out.push_str(&adapter_text(adapter));
    }
    out.push_str("\nparameters (state_dict order):\n");
    // How many paths of each shared tensor are written so far: the first names the others, each
    // other names the first, which keeps the output linear in the group.
    let mut written: HashMap<ParamId, usize> = HashMap::new();
    let mut row = 0;
    model.root.for_each_param(&mut |segments, _, local, id| {
        out.push_str("  ");
        key_pieces(segments, local).for_each(|piece| out.push_str(&piece));
        out.extend(std::iter::repeat_n(' ', width - widths[row]));
        row += 1;
        let tensor = model.store.get(id);
        let _ = write!(out, "  {:?} {}", tensor.shape(), tensor.dtype().label());
        if let Some(group) = group_of.get(&id).map(|&g| &groups[g]) {
            let nth = written.entry(id).or_default();
            let others = if *nth == 0 {
                escape(&group[1..].join(", ")).into_owned()
            } else {
                escape(&group[0]).into_owned()
            };
            *nth += 1;
            let _ = write!(out, "  shared with {others}");
        }
        if let Some(f) = adapted.and_then(|(_, figures)| figures.get(&id)) {
            let _ = write!(out, "  {}", f.label());
        }
        out.push('\n');
    });
    let _ = write!(out, "total: {} parameters", model.total_params());
    let apart = model.count_buffers(&model.root);
    if apart > 0 {
        let _ = write!(out, " (and {apart} elements of buffers or optimizer state)");
    }
    out.push('\n');
    if !model.metadata.is_empty() {
        out.push_str("\nmetadata:\n");
        for (key, value) in &model.metadata {
            let _ = writeln!(out, "  {}: {}", escape(key), shortened(value));
        }
    }
    out
}

/// The dotted key of `local` under `segments`, escaped, in pieces (each segment and the dots
/// between): measured once and written once, never built whole.
fn key_pieces<'a>(segments: &[&'a str], local: &'a str) -> impl Iterator<Item = Cow<'a, str>> {
    segments
        .iter()
        .copied()
        .chain([local])
        .enumerate()
        .flat_map(|(i, segment)| {
            (i > 0)
                .then_some(Cow::Borrowed("."))
                .into_iter()
                .chain([escape(segment)])
        })
}

/// A GGUF file's metadata, before the tree: `  llama.context_length: u32 = 4096`.
fn gguf_text(metadata: &[(String, gguf::Value)]) -> String {
    let mut out = String::new();
    if metadata.is_empty() {
        return out;
    }
    out.push_str("metadata (GGUF):\n");
    for (key, value) in metadata {
        let ty = value.value_type().name();
        let _ = writeln!(
            out,
            "  {}: {ty} = {}",
            escape(key),
            shortened(&value.to_string())
        );
    }
    out.push('\n');
    out
}

/// A PyTorch checkpoint's plain values, one per line: `  epoch = 7`.
fn values_text(values: &[(String, Scalar)]) -> String {
    let mut out = String::new();
    if !values.is_empty() {
        out.push_str("\nvalues:\n");
    }
    for (name, value) in values {
        let _ = writeln!(
            out,
            "  {} = {}",
            escape(name),
            shortened(&value.to_string())
        );
    }
    out
}

/// `value` escaped and cut to [`METADATA_WIDTH`] characters, with ` ...` when cut (the whole
/// value is in `--json`).
fn shortened(value: &str) -> String {
    let value = escape(value);
    let mut shown: String = value.chars().take(METADATA_WIDTH).collect();
    if shown.len() < value.len() {
        shown.push_str(" ...");
    }
    shown
}

/// `tree --json`, serialized straight from the model: a million tensors cost the output's size,
/// not a `Value` tree several times larger.
#[derive(Serialize)]
struct TreeJson<'a> {
    total_params: usize,
    metadata: MetadataJson<'a>,
    params: Vec<ParamJson<'a>>,
    shared: Vec<Vec<String>>,
    modules: ModulesJson<'a>,
    /// A PyTorch checkpoint's plain values (`epoch`, `optimizer.param_groups.0.lr`), by name.
    #[serde(skip_serializing_if = "ValuesJson::is_empty")]
    values: ValuesJson<'a>,
    /// The LoRA adapter opened against this model.
    #[serde(skip_serializing_if = "Option::is_none")]
    adapter: Option<serde_json::Value>,
}

/// A file's metadata: safetensors' `__metadata__` strings, or GGUF's typed keys in file order
/// (`{"key": {"type": "u32", "value": 4096}}`).
enum MetadataJson<'a> {
    Strings(&'a std::collections::BTreeMap<String, String>),
    Gguf(&'a [(String, gguf::Value)]),
}

impl Serialize for MetadataJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MetadataJson::Strings(map) => map.serialize(serializer),
            MetadataJson::Gguf(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in *entries {
                    let entry = serde_json::json!({
                        "type": value.value_type().name(),
                        "value": value.to_json(),
                    });
                    map.serialize_entry(key, &entry)?;
                }
                map.end()
            }
        }
    }
}

/// Plain values as one JSON object, name to value.
struct ValuesJson<'a>(&'a [(String, Scalar)]);

impl ValuesJson<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for ValuesJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, &value.to_json())?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct ParamJson<'a> {
    name: String,
    shape: &'a [usize],
    dtype: &'static str,
    shared: Option<usize>,
    /// The update of the adapter on this weight.
    #[serde(skip_serializing_if = "Option::is_none")]
    adapter: Option<&'a Figures>,
    /// The scheme and stored parts of a quantized weight (its shape and dtype are the dequantized ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    quantization: Option<serde_json::Value>,
}

/// Every module by path, each made into its JSON object only as it is written.
struct ModulesJson<'a>(Vec<(String, &'a Module, usize)>);

#[derive(Serialize)]
struct ModuleJson<'a> {
    kind: &'a str,
    repr: String,
    params: Vec<String>,
    children: Vec<&'a str>,
    num_params: usize,
}

impl Serialize for ModulesJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (path, module, count) in &self.0 {
            let entry = ModuleJson {
                kind: (*module).class_name(),
                repr: module.repr(),
                params: module
                    .params
                    .iter()
                    .map(|(local, _)| crate::model::tree::join(path, local))
                    .collect(),
                children: module.children.iter().map(|c| c.name.as_str()).collect(),
                num_params: *count,
            };
            map.serialize_entry(path, &entry)?;
        }
        map.end()
    }
}

fn to_json<'a>(
    model: &'a Model,
    values: &'a [(String, Scalar)],
    gguf: &'a [(String, gguf::Value)],
    adapted: Option<(&Attached, &'a HashMap<ParamId, Figures>)>,
) -> TreeJson<'a> {
    let state_dict = model.state_dict();
    let mut uses = vec![0usize; model.store.len()];
    for (_, id) in &state_dict {
        uses[id.0] += 1;
    }
    let Shared { group_of, groups } = shared(model, &uses);
    let params = state_dict
        .into_iter()
        .map(|(name, id)| {
            let tensor = model.store.get(id);
            ParamJson {
                name,
                shape: tensor.shape(),
                dtype: tensor.dtype().name(),
                shared: group_of.get(&id).copied(),
                adapter: adapted.and_then(|(_, figures)| figures.get(&id)),
                quantization: tensor.quantization().map(|q| {
                    serde_json::json!({
                        "scheme": q.scheme().name(),
                        "parts": q.parts().iter().map(|(n, _)| n).collect::<Vec<_>>(),
                    })
                }),
            }
        })
        .collect();
    let counts = model.root.param_counts(|id| model.store.get(id).numel());
    TreeJson {
        total_params: counts.first().map_or(0, |(_, _, n)| *n),
        metadata: if gguf.is_empty() {
            MetadataJson::Strings(&model.metadata)
        } else {
            MetadataJson::Gguf(gguf)
        },
        params,
        shared: groups,
        modules: ModulesJson(counts),
        values: ValuesJson(values),
        adapter: adapted.map(|(a, _)| {
            serde_json::json!({
                "base": a.base,
                "targets": a.targets,
                "adapted": a.adapted,
                "r": a.r,
                "alpha": a.alpha,
                "scaling": a.scaling,
            })
        }),
    }
}
