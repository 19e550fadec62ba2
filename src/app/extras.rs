//! What a checkpoint holds besides tensors, as rows after the model's tree: a GGUF file's
//! metadata (each array opening into its items) and a PyTorch checkpoint's plain values
//! (`epoch = 7`, `optimizer.param_groups.0.lr = 0.001`).

use super::format::counted;
use super::outline::node::{Node, NodeKind};
use crate::io::gguf;
use crate::io::pickle::Scalar;

/// Items of a GGUF metadata array the app lists. A vocabulary of 152,064 tokens lists its first
/// 100,000 and says how many more there are: a file cannot grow the tree past what paging and
/// the filter handle at once.
pub const ARRAY_ROWS: usize = 100_000;

/// Item rows of all arrays together: a vocabulary's four arrays (tokens, scores, types, merges)
/// are listed whole up to [`ARRAY_ROWS`] each, but a 6 MB file of fourteen 100,000-item arrays
/// cannot make the tree hold 1.4 million rows (460 MB).
pub const ALL_ARRAY_ROWS: usize = 4 * ARRAY_ROWS;

/// A checkpoint's non-tensor contents, as the checkpoint layer read them.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// A GGUF file's metadata pairs, in file order; arrays keep up to [`ARRAY_ROWS`] items.
    pub gguf: Vec<(String, gguf::Value)>,
    /// A PyTorch checkpoint's plain values by dotted name.
    pub values: Vec<(String, Scalar)>,
    /// Each base weight a LoRA adapter updates, by state_dict key, with what its row adds.
    pub adapted: Vec<(String, String)>,
}

impl Extras {
    /// Appends each adapted weight's mark (`lora r=4 scaling=2 |dW|=…`) to its row's label.
    pub fn mark_adapted(&self, nodes: &mut [Node]) {
        if self.adapted.is_empty() {
            return;
        }
        let marks: std::collections::HashMap<&str, &str> = self
            .adapted
            .iter()
            .map(|(key, mark)| (key.as_str(), mark.as_str()))
            .collect();
        for node in nodes.iter_mut().filter(|n| n.param().is_some()) {
            if let Some(mark) = marks.get(node.path.as_str()) {
                node.label.push_str("  ");
                node.label.push_str(mark);
            }
        }
    }

    /// Appends a `metadata` and a `values` heading, each with its rows, after the model's nodes.
    pub fn push_rows(&self, nodes: &mut Vec<Node>) {
        if !self.gguf.is_empty() {
            let heading = push(
                nodes,
                0,
                None,
                "metadata",
                "",
                plural(self.gguf.len(), "key"),
            );
            let mut rows_left = ALL_ARRAY_ROWS;
            for (key, value) in &self.gguf {
                let row = push(nodes, 1, Some(heading), key, key, typed(value));
                if let gguf::Value::Array(array) = value {
                    push_items(nodes, row, key, array, &mut rows_left);
                }
                close(nodes, row);
            }
            close(nodes, heading);
        }
        if !self.values.is_empty() {
            let summary = plural(self.values.len(), "plain value");
            let heading = push(nodes, 0, None, "values", "", summary);
            for (name, value) in &self.values {
                let row = push(nodes, 1, Some(heading), name, name, format!(" = {value}"));
                close(nodes, row);
            }
            close(nodes, heading);
        }
    }
}

/// An array's items as rows `[i]`, as many as `rows_left` allows (which they use up), then one
/// row for those not listed.
fn push_items(
    nodes: &mut Vec<Node>,
    row: usize,
    key: &str,
    array: &gguf::value::Array,
    rows_left: &mut usize,
) {
    let listed = array.head.len().min(*rows_left);
    *rows_left -= listed;
    for (i, item) in array.head[..listed].iter().enumerate() {
        let item_row = push(
            nodes,
            2,
            Some(row),
            &format!("[{i}]"),
            &format!("{key}[{i}]"),
            format!(" {item}"),
        );
        close(nodes, item_row);
    }
    let listed = listed as u64;
    if array.len > listed {
        let more = push(
            nodes,
            2,
            Some(row),
            "…",
            key,
            format!(" {} more items not listed", array.len - listed),
        );
        close(nodes, more);
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
    nodes: &mut Vec<Node>,
    depth: usize,
    parent: Option<usize>,
    label: &str,
    path: &str,
    value: String,
) -> usize {
    let index = nodes.len();
    nodes.push(Node {
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
fn close(nodes: &mut [Node], index: usize) {
    nodes[index].end = nodes.len();
}

#[cfg(test)]
mod tests {
    use super::{ALL_ARRAY_ROWS, ARRAY_ROWS, Extras};
    use crate::app::outline::Outline;
    use crate::app::outline::node::{Node, NodeKind};
    use crate::io::gguf::Value;
    use crate::io::gguf::value::{Array, ValueType};
    use crate::model::demos;

    #[test]
    fn many_long_arrays_list_their_items_up_to_one_total() {
        // Five arrays of ARRAY_ROWS items: the first four are listed whole, the fifth not at all.
        let array = || {
            Value::Array(Array {
                item: ValueType::U32,
                len: ARRAY_ROWS as u64,
                head: (0..ARRAY_ROWS as u64)
                    .map(|i| Value::Uint(ValueType::U32, i))
                    .collect(),
            })
        };
        let extras = Extras {
            gguf: (0..5).map(|k| (format!("a{k}"), array())).collect(),
            ..Extras::default()
        };
        let mut nodes: Vec<Node> = Vec::new();
        extras.push_rows(&mut nodes);
        let items = nodes.iter().filter(|n| n.label.starts_with('[')).count();
        assert_eq!(items, ALL_ARRAY_ROWS);
        let last = nodes.last().unwrap();
        assert_eq!(last.label, "…");
        assert_eq!(
            last.kind,
            NodeKind::Info {
                value: format!(" {ARRAY_ROWS} more items not listed")
            }
        );
        assert_eq!(
            last.parent,
            Some(nodes.len() - 2),
            "under the fifth array's row"
        );
    }

    #[test]
    fn an_adapted_weight_carries_its_mark_and_no_other_row_does() {
        let extras = Extras {
            adapted: vec![("0.weight".into(), "lora r=2".into())],
            ..Extras::default()
        };
        let outline = Outline::new(&demos::build("mlp", 0).unwrap(), &extras);
        let marked: Vec<&str> = outline
            .nodes
            .iter()
            .filter(|n| n.label.ends_with("lora r=2"))
            .map(|n| n.path.as_str())
            .collect();
        assert_eq!(marked, ["0.weight"]);
    }
}
