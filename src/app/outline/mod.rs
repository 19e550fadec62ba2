//! The module tree flattened for display: one node per module and per parameter path, in
//! `state_dict` order, then the checkpoint's metadata and plain values; with what is open, what
//! the filter keeps, and which paths share a tensor.

use std::collections::HashMap;

use super::extras::Extras;
use crate::model::layers::Layer;
use crate::model::tree::join;
use crate::model::{Model, Module, ParamId, ParamStore};
use crate::tensor::DType;

pub mod node;

pub use node::{Node, NodeKind};

/// Every node of a model's tree, and the paths of each tensor.
#[derive(Debug, Clone, Default)]
pub struct Outline {
    /// The nodes in pre-order: a module, its own parameters, then its children.
    pub nodes: Vec<Node>,
    /// Every node that shows a given tensor, in `state_dict` order (more than one for a tie).
    pub aliases: HashMap<ParamId, Vec<usize>>,
    /// For each `i`, the parameter rows among `nodes[..i]`: a module's tensors are counted, and
    /// its k-th found, without walking a subtree that can hold a million of them.
    params_before: Vec<usize>,
    /// For each node, the one dtype of every tensor at or under it, if they share one. A re-init
    /// or an undo writes values in a tensor's own dtype, so this holds until the next load.
    one_dtype: Vec<Option<DType>>,
    /// What the filter searches, lowercased once (not per key on a vocabulary of 262k tokens):
    /// every node's path, label and, for a row that is not a tensor, its value (a token's text),
    /// each ended by NUL, which nothing typed holds; one text, so that a key is one scan of it.
    search_text: String,
    /// Where each node's part of `search_text` starts, and its end at the last index.
    search_starts: Vec<usize>,
}

impl Outline {
    /// Flattens `model`'s tree, then `extras`' rows.
    #[must_use]
    pub fn new(model: &Model, extras: &Extras) -> Self {
        let mut outline = Outline::default();
        let counts = param_counts(model);
        outline.push_module(&mut counts.into_iter(), &model.root, String::new(), 0, None);
        for (i, node) in outline.nodes.iter().enumerate() {
            if let Some(id) = node.param() {
                outline.aliases.entry(id).or_default().push(i);
            }
        }
        extras.mark_adapted(&mut outline.nodes);
        extras.push_rows(&mut outline.nodes);
        (outline.search_text, outline.search_starts) = search_text(&outline.nodes);
        outline.one_dtype = one_dtype_per_node(&outline.nodes, &model.store);
        outline.params_before = std::iter::once(0)
            .chain(outline.nodes.iter().scan(0, |seen, node| {
                *seen += usize::from(node.param().is_some());
                Some(*seen)
            }))
            .collect();
        outline
    }

    /// The dtype every tensor at or under node `index` has, when they all share one.
    #[must_use]
    pub fn one_dtype(&self, index: usize) -> Option<DType> {
        self.one_dtype.get(index).copied().flatten()
    }

    /// The parameter rows among `nodes[range]`.
    #[must_use]
    pub fn params_in(&self, range: std::ops::Range<usize>) -> usize {
        self.params_before[range.end] - self.params_before[range.start]
    }

    /// Where the parameter rows of `nodes[start..]` begin after skipping `skip` of them: the
    /// first node from which a walk meets only the ones after those.
    #[must_use]
    pub fn skip_params(&self, start: usize, skip: usize) -> usize {
        let target = self.params_before[start] + skip;
        // The first index whose rows before it reach the target.
        start + self.params_before[start..].partition_point(|&before| before < target)
    }

    /// Pushes `module`'s rows and its subtree's; `counts` gives each module's parameter count in
    /// the same pre-order.
    fn push_module(
        &mut self,
        counts: &mut impl Iterator<Item = usize>,
        module: &Module,
        path: String,
        depth: usize,
        parent: Option<usize>,
    ) {
        let index = self.nodes.len();
        let named = |repr: String| {
            if depth == 0 {
                repr
            } else {
                format!("({}): {repr}", module.name)
            }
        };
        let (repr, compact) = (module.repr(), compact_repr(module));
        let short = (compact != repr).then(|| named(compact));
        self.nodes.push(Node {
            depth,
            parent,
            end: 0,
            path: path.clone(),
            label: named(repr),
            short,
            kind: NodeKind::Module {
                params: counts.next().unwrap_or_default(),
            },
        });
        for (local, id) in &module.params {
            self.nodes.push(Node {
                depth: depth + 1,
                parent: Some(index),
                end: self.nodes.len() + 1,
                path: join(&path, local),
                label: local.to_string(),
                short: None,
                kind: NodeKind::Param { id: *id },
            });
        }
        for child in &module.children {
            self.push_module(
                counts,
                child,
                join(&path, &child.name),
                depth + 1,
                Some(index),
            );
        }
        self.nodes[index].end = self.nodes.len();
    }

    /// Whether node `i`'s path, label, or shown value (an array item's text, a metadata value)
    /// holds `filter`, ignoring case: as a substring, or as a glob (`*` any run of characters,
    /// `?` one) anywhere in one of them: `layer.*.attention`.
    #[must_use]
    pub fn matches(&self, i: usize, filter: &str) -> bool {
        self.matches_lowercase(i, &filter.to_lowercase())
    }

    fn matches_lowercase(&self, i: usize, needle: &str) -> bool {
        let (Some(&start), Some(&end)) = (self.search_starts.get(i), self.search_starts.get(i + 1))
        else {
            return false;
        };
        let hay = &self.search_text[start..end];
        if needle.contains(['*', '?']) {
            hay.split('\0').any(|text| glob_within(needle, text))
        } else {
            !needle.contains('\0')
                && memchr::memmem::find(hay.as_bytes(), needle.as_bytes()).is_some()
        }
    }

    /// The nodes whose text holds `needle` (lowercase, no wildcard), in order, from one scan of
    /// the text.
    fn holding(&self, needle: &str) -> Vec<usize> {
        let mut hits: Vec<usize> = Vec::new();
        if needle.contains('\0') {
            return hits;
        }
        // The hits come in order: the node holding each is found by walking on, not searching.
        let mut node = 0;
        for at in memchr::memmem::find_iter(self.search_text.as_bytes(), needle.as_bytes()) {
            while self
                .search_starts
                .get(node + 1)
                .is_some_and(|&next| next <= at)
            {
                node += 1;
            }
            if hits.last() != Some(&node) && node < self.nodes.len() {
                hits.push(node);
            }
        }
        hits
    }

    /// The rows on screen: open subtrees only, or, with a filter, every node that
    /// [`matches`](Self::matches) it together with its ancestors.
    #[must_use]
    pub fn visible(&self, opened: &[bool], filter: &str) -> Vec<usize> {
        self.visible_where(opened, filter, None)
    }

    /// [`visible`](Self::visible), keeping besides only the nodes `only` marks (a comparison's
    /// changed tensors), with their ancestors.
    #[must_use]
    pub fn visible_where(
        &self,
        opened: &[bool],
        filter: &str,
        only: Option<&[bool]>,
    ) -> Vec<usize> {
        if filter.is_empty() && only.is_none() {
            let mut rows = Vec::new();
            let mut i = 0;
            while i < self.nodes.len() {
                rows.push(i);
                i = if opened.get(i).copied().unwrap_or(false) {
                    i + 1
                } else {
                    self.nodes[i].end
                };
            }
            return rows;
        }
        let needle = filter.to_lowercase();
        let kept_by_only = |i: usize| only.is_none_or(|only| only.get(i).copied().unwrap_or(false));
        // Only the nodes found and their ancestors are visited: a key on a 262k vocabulary
        // does not walk every row again.
        let found: Vec<usize> = if !needle.is_empty() && !needle.contains(['*', '?']) {
            self.holding(&needle)
                .into_iter()
                .filter(|&i| kept_by_only(i))
                .collect()
        } else {
            (0..self.nodes.len())
                .filter(|&i| {
                    kept_by_only(i) && (needle.is_empty() || self.matches_lowercase(i, &needle))
                })
                .collect()
        };
        let mut keep = vec![false; self.nodes.len()];
        for i in found {
            let mut node = Some(i);
            while let Some(n) = node {
                if keep[n] {
                    break;
                }
                keep[n] = true;
                node = self.nodes[n].parent;
            }
        }
        (0..self.nodes.len()).filter(|&i| keep[i]).collect()
    }

    /// The node of a parameter key or module path, as `find_param` / `find_module` name them.
    #[must_use]
    pub fn find(&self, path: &str, param: bool) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.path == path && n.param().is_some() == param)
    }

    /// The other nodes that show the same tensor as node `index`.
    #[must_use]
    pub fn other_aliases(&self, index: usize) -> Vec<usize> {
        self.nodes[index]
            .param()
            .and_then(|id| self.aliases.get(&id))
            .map(|all| all.iter().copied().filter(|&i| i != index).collect())
            .unwrap_or_default()
    }
}

/// The filter's text of every node and where each starts: see [`Outline::search_text`].
fn search_text(nodes: &[Node]) -> (String, Vec<usize>) {
    let mut text = String::new();
    let mut starts = Vec::with_capacity(nodes.len() + 1);
    for node in nodes {
        starts.push(text.len());
        let value = match &node.kind {
            NodeKind::Info { value } => value.as_str(),
            NodeKind::Module { .. } | NodeKind::Param { .. } => "",
        };
        for part in [node.path.as_str(), &node.label, value] {
            text.push_str(&part.to_lowercase());
            text.push('\0');
        }
    }
    starts.push(text.len());
    (text, starts)
}

/// Whether `pattern` (`*` and `?` wild) matches some part of `text`: the classic two-pointer
/// match of `*pattern*`, linear in practice and without recursion.
#[must_use]
pub fn glob_within(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = std::iter::once('*')
        .chain(pattern.chars())
        .chain(std::iter::once('*'))
        .collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// [`Outline::one_dtype`] for every node, in one backward pass: nodes are in pre-order, so each
/// node's subtree is complete when the pass reaches it, and it hands its answer to its parent.
fn one_dtype_per_node(nodes: &[Node], store: &ParamStore) -> Vec<Option<DType>> {
    // `None`: nothing seen yet; `Some(None)`: several dtypes; `Some(Some(d))`: only `d`.
    let mut seen: Vec<Option<Option<DType>>> = vec![None; nodes.len()];
    for index in (0..nodes.len()).rev() {
        if let Some(id) = nodes[index].param() {
            seen[index] = Some(Some(store.get(id).dtype()));
        }
        if let (Some(parent), Some(mine)) = (nodes[index].parent, seen[index]) {
            seen[parent] = match seen[parent] {
                None => Some(mine),
                Some(theirs) if theirs == mine => Some(theirs),
                Some(_) => Some(None),
            };
        }
    }
    seen.into_iter().map(Option::flatten).collect()
}

/// Every module's parameter count, in pre-order, from one bottom-up pass (counting each module's
/// subtree apart would walk a million-module tree once per module); buffers are not parameters.
fn param_counts(model: &Model) -> Vec<usize> {
    let mut buffers = std::collections::HashSet::new();
    model.root.for_each_param(&mut |_, module, local, id| {
        if module.is_buffer(local) {
            buffers.insert(id);
        }
    });
    let numel = |id| {
        if buffers.contains(&id) {
            0
        } else {
            model.store.get(id).numel()
        }
    };
    model.root.subtree_counts(numel)
}

/// A module's repr in few columns: `Linear(4→8)` (`, no bias` when it has none), and for other
/// layers PyTorch's repr without its keywords (`LeakyReLU(0.01)`).
#[must_use]
pub fn compact_repr(module: &Module) -> String {
    if let Some(Layer::Linear {
        in_features,
        out_features,
        bias,
    }) = module.layer()
    {
        let bias = if *bias { "" } else { ", no bias" };
        return format!("Linear({in_features}→{out_features}{bias})");
    }
    let repr = module.repr();
    let Some((head, args)) = repr.strip_suffix(')').and_then(|r| r.split_once('(')) else {
        return repr;
    };
    let args: Vec<&str> = args
        .split(", ")
        .map(|arg| arg.split_once('=').map_or(arg, |(_, value)| value))
        .collect();
    format!("{head}({})", args.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::gguf::{
        self,
        value::{Array, ValueType},
    };
    use crate::io::pickle::Scalar;
    use crate::model::demos;

    #[test]
    fn module_counts_are_each_subtrees_parameters() {
        for name in ["mlp", "rgnet", "shared"] {
            let model = demos::build(name, 0).unwrap();
            let outline = Outline::new(&model, &Extras::default());
            let mut walked = Vec::new();
            model
                .root
                .walk("", &mut |_, module| walked.push(model.count_params(module)));
            let listed: Vec<usize> = outline
                .nodes
                .iter()
                .filter_map(|node| match node.kind {
                    NodeKind::Module { params } => Some(params),
                    _ => None,
                })
                .collect();
            assert_eq!(listed, walked, "{name}");
        }
    }

    #[test]
    fn one_dtype_is_said_only_where_every_tensor_below_shares_it() {
        use crate::tensor::{Bytes, DType, Tensor};
        let mut model = demos::build("mlp", 0).unwrap();
        let outline = Outline::new(&model, &Extras::default());
        assert_eq!(outline.one_dtype(0), Some(DType::F32));
        // One bias in another dtype: the root and its module mix, the other module still agrees.
        let (_, id) = model.find_param("2.bias").unwrap();
        let half = Tensor::new(vec![1], DType::F16, Bytes::Owned(vec![0u8; 2].into()));
        model.store.set(id, half);
        let outline = Outline::new(&model, &Extras::default());
        let at = |path: &str, param: bool| outline.find(path, param).unwrap();
        assert_eq!(outline.one_dtype(0), None);
        assert_eq!(outline.one_dtype(at("2", false)), None);
        assert_eq!(outline.one_dtype(at("0", false)), Some(DType::F32));
        assert_eq!(outline.one_dtype(at("2.bias", true)), Some(DType::F16));
    }

    #[test]
    fn counting_and_skipping_rows_agree_with_walking_them() {
        let model = demos::build("rgnet", 0).unwrap();
        let outline = Outline::new(&model, &Extras::default());
        for (start, node) in outline.nodes.iter().enumerate() {
            let walked: Vec<usize> = (start..node.end)
                .filter(|&i| outline.nodes[i].param().is_some())
                .collect();
            assert_eq!(outline.params_in(start..node.end), walked.len());
            for (skip, &row) in walked.iter().enumerate() {
                let from = outline.skip_params(start, skip);
                let next = (from..node.end).find(|&i| outline.nodes[i].param().is_some());
                assert_eq!(next, Some(row), "node {start}, skip {skip}");
            }
        }
    }

    #[test]
    fn the_shared_demo_has_two_paths_for_one_tensor() {
        let model = demos::build("shared", 0).unwrap();
        let outline = Outline::new(&model, &Extras::default());
        let at2 = outline.find("2.weight", true).unwrap();
        let at4 = outline.find("4.weight", true).unwrap();
        assert_eq!(outline.other_aliases(at2), [at4]);
        assert_eq!(
            outline.nodes[0].kind,
            NodeKind::Module { params: 121 },
            "the tied tensor counts once"
        );
    }

    #[test]
    fn compact_labels_keep_the_layer_shape() {
        let model = demos::build("rgnet", 0).unwrap();
        let outline = Outline::new(&model, &Extras::default());
        let linear = &outline.nodes[outline.find("0.block0.0", false).unwrap()];
        assert_eq!(
            linear.label,
            "(0): Linear(in_features=4, out_features=8, bias=True)"
        );
        assert_eq!(linear.short(), "(0): Linear(4→8)");
        let no_bias = Module::new(
            "3",
            crate::model::ModuleKind::Layer(Layer::Linear {
                in_features: 16,
                out_features: 2,
                bias: false,
            }),
        );
        assert_eq!(compact_repr(&no_bias), "Linear(16→2, no bias)");
        let leaky = Module::new(
            "1",
            crate::model::ModuleKind::Layer(Layer::LeakyReLU {
                negative_slope: 0.01,
            }),
        );
        assert_eq!(compact_repr(&leaky), "LeakyReLU(0.01)");
        let relu = Module::new("1", crate::model::ModuleKind::Layer(Layer::ReLU));
        assert_eq!(compact_repr(&relu), "ReLU()");
    }

    #[test]
    fn globs_match_anywhere_and_substrings_still_work() {
        assert!(glob_within(
            "layer.*.attention",
            "model.layer.3.attention.self.query"
        ));
        assert!(!glob_within("layer.*.attention", "model.layer.3.output"));
        assert!(glob_within("block?.0", "0.block2.0.bias"));
        assert!(glob_within("*", ""));
        let model = demos::build("rgnet", 0).unwrap();
        let outline = Outline::new(&model, &Extras::default());
        let open = vec![true; outline.nodes.len()];
        let rows = outline.visible(&open, "block*.2.bias");
        let hits = rows
            .iter()
            .filter(|&&i| outline.nodes[i].path.ends_with(".2.bias"))
            .count();
        assert_eq!(hits, 4, "one per block");
    }

    #[test]
    fn closed_modules_hide_their_subtree_and_a_filter_keeps_ancestors() {
        let model = demos::build("rgnet", 0).unwrap();
        let outline = Outline::new(&model, &Extras::default());
        let closed = vec![false; outline.nodes.len()];
        assert_eq!(outline.visible(&closed, ""), [0]);
        let rows = outline.visible(&closed, "block1.0.bias");
        let paths: Vec<&str> = rows
            .iter()
            .map(|&i| outline.nodes[i].path.as_str())
            .collect();
        assert_eq!(
            paths,
            ["", "0", "0.block1", "0.block1.0", "0.block1.0.bias"]
        );
    }

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
            adapted: Vec::new(),
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
