//! What a checkpoint holds besides tensors, as rows after the model's tree: a GGUF file's
//! metadata (each array opening into its items) and a PyTorch checkpoint's plain values
//! (`epoch = 7`, `optimizer.param_groups.0.lr = 0.001`).

use super::format::counted;
use super::outline::{Node, NodeKind, Outline};
use crate::io::gguf;
use crate::io::pickle::Scalar;

/// Items of a GGUF metadata array the app lists. A vocabulary of 152,064 tokens lists its first
/// 100,000 and says how many more there are: a file cannot grow the tree past what paging and
/// the filter handle at once.
pub const ARRAY_ROWS: usize = 100_000;

/// A checkpoint's non-tensor contents, as the checkpoint layer read them.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// A GGUF file's metadata pairs, in file order; arrays keep up to [`ARRAY_ROWS`] items.
    pub gguf: Vec<(String, gguf::Value)>,
    /// A PyTorch checkpoint's plain values by dotted name.
    pub values: Vec<(String, Scalar)>,
}

impl Extras {
    /// Appends a `metadata` and a `values` heading, each with its rows, after the model's nodes.
    pub fn push_rows(&self, outline: &mut Outline) {
        if !self.gguf.is_empty() {
            let heading = push(
                outline,
                0,
                None,
                "metadata",
                "",
                plural(self.gguf.len(), "key"),
            );
            for (key, value) in &self.gguf {
                let row = push(outline, 1, Some(heading), key, key, typed(value));
                if let gguf::Value::Array(array) = value {
                    push_items(outline, row, key, array);
                }
                close(outline, row);
            }
            close(outline, heading);
        }
        if !self.values.is_empty() {
            let summary = plural(self.values.len(), "plain value");
            let heading = push(outline, 0, None, "values", "", summary);
            for (name, value) in &self.values {
                let row = push(outline, 1, Some(heading), name, name, format!(" = {value}"));
                close(outline, row);
            }
            close(outline, heading);
        }
    }
}

/// An array's items as rows `[i]`, then one row for those not kept.
fn push_items(outline: &mut Outline, row: usize, key: &str, array: &gguf::value::Array) {
    for (i, item) in array.head.iter().enumerate() {
        let item_row = push(
            outline,
            2,
            Some(row),
            &format!("[{i}]"),
            &format!("{key}[{i}]"),
            format!(" {item}"),
        );
        close(outline, item_row);
    }
    let listed = array.head.len() as u64;
    if array.len > listed {
        let more = push(
            outline,
            2,
            Some(row),
            "…",
            key,
            format!(" {} more items not listed", array.len - listed),
        );
        close(outline, more);
    }
}

/// `: u32 = 4096`, `: str = "llama"`, `: arr = [32000 strings]`, as `tree` prints them.
fn typed(value: &gguf::Value) -> String {
    format!(": {} = {value}", value.value_type().name())
}

/// A heading's count: ` (24 keys)`.
fn plural(n: usize, what: &str) -> String {
    format!(" ({})", counted(n, what))
}

/// Appends an info row whose subtree is closed later by [`close`]; its index.
fn push(
    outline: &mut Outline,
    depth: usize,
    parent: Option<usize>,
    label: &str,
    path: &str,
    value: String,
) -> usize {
    let index = outline.nodes.len();
    outline.nodes.push(Node {
        depth,
        parent,
        end: index + 1,
        path: path.to_owned(),
        label: label.to_owned(),
        short: None,
        kind: NodeKind::Info { value },
    });
    index
}

/// Ends row `index`'s subtree at the nodes pushed so far.
fn close(outline: &mut Outline, index: usize) {
    outline.nodes[index].end = outline.nodes.len();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::gguf::value::{Array, ValueType};
    use crate::model::demos;

    fn outline_with(extras: &Extras) -> Outline {
        Outline::new(&demos::build("mlp", 0).unwrap(), extras)
    }

    #[test]
    fn metadata_then_values_follow_the_model_with_their_subtrees_closed() {
        let tokens = Array {
            item: ValueType::String,
            len: 5,
            head: vec![
                gguf::Value::String("<s>".into()),
                gguf::Value::String("a".into()),
            ],
        };
        let extras = Extras {
            gguf: vec![
                (
                    "general.architecture".into(),
                    gguf::Value::String("llama".into()),
                ),
                ("tokenizer.ggml.tokens".into(), gguf::Value::Array(tokens)),
            ],
            values: vec![("epoch".into(), Scalar::Int(7))],
        };
        let outline = outline_with(&extras);
        let model_end = outline.nodes[0].end;
        let rows: Vec<(usize, &str, String)> = outline.nodes[model_end..]
            .iter()
            .map(|n| match &n.kind {
                NodeKind::Info { value } => (n.depth, n.label.as_str(), value.clone()),
                other => panic!("not an info row: {other:?}"),
            })
            .collect();
        let want = [
            (0, "metadata", " (2 keys)"),
            (1, "general.architecture", ": str = \"llama\""),
            (1, "tokenizer.ggml.tokens", ": arr = [5 strings]"),
            (2, "[0]", " \"<s>\""),
            (2, "[1]", " \"a\""),
            (2, "…", " 3 more items not listed"),
            (0, "values", " (1 plain value)"),
            (1, "epoch", " = 7"),
        ];
        let want: Vec<(usize, &str, String)> =
            want.iter().map(|&(d, l, v)| (d, l, v.to_owned())).collect();
        assert_eq!(rows, want);
        let tokens_row = model_end + 2;
        assert_eq!(outline.nodes[tokens_row].end, model_end + 6);
        assert_eq!(outline.nodes[model_end].end, model_end + 6);
        assert_eq!(outline.nodes.len(), model_end + 8);
        assert_eq!(outline.visible(&[], ""), [0, model_end, model_end + 6]);
    }
}
