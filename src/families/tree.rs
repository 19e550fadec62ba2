//! A family's module tree as its scope draws it (PyTorch's classes, registration order, buffers),
//! and that tree bound to a checkpoint's tensors by name.

use std::collections::{HashMap, HashSet};

use crate::model::tree::join;
use crate::model::{Model, Module, ModuleKind, ParamId};

/// The modules a family registers, in registration order, in one arena: node [`Tree::TOP`] stands
/// above the root, which is its one child, named `""`.
#[derive(Debug)]
pub struct Tree {
    nodes: Vec<Node>,
}

#[derive(Debug)]
struct Node {
    name: String,
    kind: ModuleKind,
    /// Own tensor names in registration order (parameters, then buffers, as state_dict lists them).
    tensors: Vec<String>,
    children: Vec<usize>,
}

/// What [`Tree::bind`] made.
pub struct Applied {
    /// The model with the family's tree.
    pub model: Model,
    /// Tensors the family does not have, kept at the root under their full names.
    pub extra: Vec<String>,
}

impl Tree {
    /// The node above the root.
    pub const TOP: usize = 0;

    /// A tree with nothing under its top.
    #[must_use]
    pub fn new() -> Self {
        Self {
            nodes: vec![Node {
                name: String::new(),
                kind: ModuleKind::Unknown,
                tensors: Vec::new(),
                children: Vec::new(),
            }],
        }
    }

    /// Adds a module of unknown kind named `name` after `parent`'s other children.
    pub fn add(&mut self, parent: usize, name: String) -> usize {
        let node = self.nodes.len();
        self.nodes.push(Node {
            name,
            kind: ModuleKind::Unknown,
            tensors: Vec::new(),
            children: Vec::new(),
        });
        self.nodes[parent].children.push(node);
        node
    }

    /// Says what `node` is, and names its own parameters.
    pub fn set(&mut self, node: usize, kind: ModuleKind, params: &[&str]) {
        let node = &mut self.nodes[node];
        node.kind = kind;
        node.tensors = params.iter().map(|p| (*p).to_owned()).collect();
    }

    /// Adds buffers to `node` after its parameters, as state_dict lists them.
    pub fn add_buffers(&mut self, node: usize, buffers: &[&str]) {
        let node = &mut self.nodes[node];
        if let ModuleKind::Class(class) = &mut node.kind {
            class
                .buffers
                .extend(buffers.iter().map(|s| (*s).to_owned()));
        }
        node.tensors.extend(buffers.iter().map(|s| (*s).to_owned()));
    }

    /// The repr `print(model)` gives `node` (a container's class, a leaf's whole head); `None`
    /// while it is not known what the module is.
    #[must_use]
    pub fn repr(&self, node: usize) -> Option<String> {
        let kind = &self.nodes[node].kind;
        (!matches!(kind, ModuleKind::Unknown)).then(|| Module::new("", kind.clone()).repr())
    }

    /// `model` with this tree: modules none of whose tensors the checkpoint holds are left out;
    /// tensors the family does not know are kept at the root, whole.
    #[must_use]
    pub fn bind(&self, model: &Model) -> Applied {
        let state_dict = model.state_dict();
        let ids: HashMap<String, ParamId> = state_dict.iter().cloned().collect();
        let mut used = HashSet::new();
        let mut root = self.nodes[Self::TOP]
            .children
            .first()
            .and_then(|&node| self.bind_node(node, "", &ids, &mut used))
            .unwrap_or_else(|| Module::new("", ModuleKind::Unknown));
        root.name.clear();
        let mut extra = Vec::new();
        let bound: HashSet<ParamId> = used.iter().map(|n| ids[n]).collect();
        for (name, id) in state_dict {
            // A second name of a tensor the family already placed is a tie this family does not
            // have (config.json's tie_word_embeddings on an encoder): dropped, not listed twice.
            if !used.contains(&name) && !bound.contains(&id) {
                root.params.push((name.as_str().into(), id));
                extra.push(name);
            }
        }
        Applied {
            model: Model {
                root: root.into(),
                ..model.clone()
            },
            extra,
        }
    }

    /// The module for `node` at `path` with the tensors `ids` holds; `None` when it would be empty.
    fn bind_node(
        &self,
        node: usize,
        path: &str,
        ids: &HashMap<String, ParamId>,
        used: &mut HashSet<String>,
    ) -> Option<Module> {
        let node = &self.nodes[node];
        let mut module = Module::new(node.name.as_str(), node.kind.clone());
        for local in &node.tensors {
            let full = join(path, local);
            if let Some(id) = ids.get(&full) {
                module.params.push((local.as_str().into(), *id));
                used.insert(full);
            }
        }
        for &child in &node.children {
            let child_path = join(path, &self.nodes[child].name);
            if let Some(m) = self.bind_node(child, &child_path, ids, used) {
                module.children.push(m);
            }
        }
        (!module.params.is_empty() || !module.children.is_empty()).then_some(module)
    }
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

/// A float as Python prints it in a repr: `1e-12`, `1e-05`, `0.5`.
#[must_use]
pub fn python_float(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-4 || v.abs() >= 1e16) {
        let text = format!("{v:e}");
        // Rust writes 1e-12 and 1e-5; Python pads the exponent to two digits.
        match text.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
                format!("{m}e{sign}{digits:0>2}")
            }
            None => text,
        }
    } else if v.fract() == 0.0 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::python_float;

    #[test]
    fn floats_print_as_python_does() {
        assert_eq!(python_float(1e-12), "1e-12");
        assert_eq!(python_float(1e-5), "1e-05");
        assert_eq!(python_float(1e-6), "1e-06");
        assert_eq!(python_float(0.5), "0.5");
        assert_eq!(python_float(0.001), "0.001");
        assert_eq!(python_float(1e20), "1e+20");
    }
}
