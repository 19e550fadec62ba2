//! The module tree: nested modules with their parameters, walked in PyTorch's `state_dict` order.

use compact_str::CompactString;
use smallvec::SmallVec;

use super::layers::Layer;
use super::param::ParamId;

/// The deepest nesting of modules paramscope builds, from an architecture text or from a
/// checkpoint's dotted names. Real models nest a few dozen deep at most; the bound keeps every
/// recursive pass over a tree (printing, binding, dropping) far from the stack's end whatever a file
/// says, and past it the reader gives an error instead.
pub const MAX_DEPTH: usize = 256;

/// What a module is.
#[derive(Debug, Clone, PartialEq)]
pub enum ModuleKind {
    /// `nn.Sequential`: runs its children in order.
    Sequential,
    /// `nn.ModuleList`: holds numbered children that its owner runs in its own way.
    ModuleList,
    /// A leaf layer of the architecture language.
    Layer(Layer),
    /// A module known only from a checkpoint's names, whose class is unknown.
    Unknown,
    /// A module of a known model family (`BertSelfAttention`, `Embedding`), run by the family's code.
    /// Boxed: the other kinds are small, and every module of a million-tensor file carries a kind.
    Class(Box<Class>),
}

/// A family module's class, as transformers defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct Class {
    /// The class name, as transformers calls it.
    pub name: String,
    /// Its `repr` head: `Embedding(30522, 384, padding_idx=0)`.
    pub repr: String,
    /// Which of its own tensors are buffers (`position_ids`), not parameters.
    pub buffers: Vec<String>,
}

/// A module's own tensors by local name. Most modules hold a weight and a bias, so two live inline:
/// a checkpoint of a million modules costs no list allocation each.
pub type Params = SmallVec<[(CompactString, ParamId); 2]>;

/// A module: its attribute name in the parent, its kind, its own parameters, and its children.
#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    /// The name in the parent (`"0"`, `"block1"`); empty for the root. Names are short and a
    /// checkpoint can hold a million modules, so they are kept inline, without an allocation each.
    pub name: CompactString,
    /// What the module is.
    pub kind: ModuleKind,
    /// Own parameters by local name (`"weight"`, `"bias"`), in registration order.
    pub params: Params,
    /// Child modules in registration order.
    pub children: Vec<Module>,
}

impl Module {
    /// A module with no parameters and no children yet.
    #[must_use]
    pub fn new(name: impl Into<CompactString>, kind: ModuleKind) -> Self {
        Module {
            name: name.into(),
            kind,
            params: Params::new(),
            children: Vec::new(),
        }
    }

    /// The class name: `Sequential`, `Linear`, a family's class, or `Module` when unknown.
    #[must_use]
    pub fn class_name(&self) -> &str {
        match &self.kind {
            ModuleKind::Sequential => "Sequential",
            ModuleKind::ModuleList => "ModuleList",
            ModuleKind::Layer(layer) => layer.kind(),
            ModuleKind::Unknown => "Module",
            ModuleKind::Class(class) => &class.name,
        }
    }

    /// Whether the own tensor called `local` is a buffer rather than a parameter.
    #[must_use]
    pub fn is_buffer(&self, local: &str) -> bool {
        matches!(&self.kind, ModuleKind::Class(class) if class.buffers.iter().any(|b| b == local))
    }

    /// The `repr` head PyTorch prints for this module: `Sequential`, `Linear(in_features=…)`.
    #[must_use]
    pub fn repr(&self) -> String {
        match &self.kind {
            ModuleKind::Layer(layer) => layer.to_string(),
            ModuleKind::Class(class) => class.repr.clone(),
            ModuleKind::Sequential | ModuleKind::ModuleList | ModuleKind::Unknown => {
                self.class_name().to_owned()
            }
        }
    }

    /// The layer, when this module is one.
    #[must_use]
    pub fn layer(&self) -> Option<&Layer> {
        match &self.kind {
            ModuleKind::Layer(layer) => Some(layer),
            _ => None,
        }
    }

    /// The first positions (at most [`GAPS_SHOWN`]) missing from children named by number (`0`,
    /// `2`, `3` misses `1`), when every child is numbered and some are missing: a Sequential whose
    /// activations were not saved. Time is linear in the children, whatever numbers they carry.
    #[must_use]
    pub fn numbering_gaps(&self) -> Option<Vec<usize>> {
        let mut numbers: Vec<usize> = self
            .children
            .iter()
            .map(|c| c.name.parse().ok())
            .collect::<Option<_>>()?;
        numbers.sort_unstable();
        numbers.dedup();
        let mut gaps = Vec::new();
        let mut expected = 0;
        for n in numbers {
            while expected < n && gaps.len() < GAPS_SHOWN {
                gaps.push(expected);
                expected += 1;
            }
            if gaps.len() == GAPS_SHOWN {
                break;
            }
            expected = n + 1;
        }
        (!gaps.is_empty()).then_some(gaps)
    }

    /// The id of the own parameter called `local` (`"weight"`).
    #[must_use]
    pub fn param(&self, local: &str) -> Option<ParamId> {
        self.params
            .iter()
            .find(|(n, _)| n == local)
            .map(|(_, id)| *id)
    }

    /// Visits this module and every descendant, parents before children, with dotted paths.
    ///
    /// This is PyTorch's `named_modules` order, without its removal of repeated modules. The walk
    /// keeps its own stack, so its depth costs heap, not call stack.
    pub fn walk<'a>(&'a self, path: &str, visit: &mut impl FnMut(&str, &'a Module)) {
        let mut stack = vec![(path.to_owned(), self)];
        while let Some((path, module)) = stack.pop() {
            visit(&path, module);
            // Pushed last-first, so the first child is visited next.
            for child in module.children.iter().rev() {
                stack.push((join(&path, &child.name), child));
            }
        }
    }

    /// Every module with its dotted path and the elements of the distinct tensors under it (each
    /// tied tensor once, as PyTorch's `parameters()` counts), in [`walk`](Self::walk) order.
    #[must_use]
    pub fn param_counts(&self, numel: impl Fn(ParamId) -> usize) -> Vec<(String, &Module, usize)> {
        let mut modules = Vec::new();
        self.walk("", &mut |path, module| {
            modules.push((path.to_owned(), module));
        });
        modules
            .into_iter()
            .zip(self.subtree_counts(numel))
            .map(|((path, module), count)| (path, module, count))
            .collect()
    }

    /// The elements of the distinct tensors under each module, in [`walk`](Self::walk) order,
    /// without building any path.
    ///
    /// Computed in one pass, bottom-up: a tensor seen again under a module that already counted it
    /// is taken back off at the lowest module holding both paths, so the sums up the tree count it
    /// once. Time is linear in the tree (plus the tied paths' depths), not modules x descendants.
    #[must_use]
    pub fn subtree_counts(&self, numel: impl Fn(ParamId) -> usize) -> Vec<usize> {
        // Each module with its parent's index, in walk order.
        let mut order: Vec<(&Module, Option<usize>)> = Vec::new();
        let mut stack = vec![(self, None)];
        while let Some((module, parent)) = stack.pop() {
            let index = order.len();
            for child in module.children.iter().rev() {
                stack.push((child, Some(index)));
            }
            order.push((module, parent));
        }
        let mut counts: Vec<isize> = vec![0; order.len()];
        // Only a tensor held in several places needs its holders listed: the first holder of each
        // id (ids are store indexes) is kept in a slot, and a list starts at the second.
        let ids = order
            .iter()
            .flat_map(|(module, _)| module.params.iter().map(|(_, id)| id.0 + 1))
            .max()
            .unwrap_or(0);
        let mut first_holder: Vec<Option<usize>> = vec![None; ids];
        let mut holders: std::collections::HashMap<ParamId, Vec<usize>> =
            std::collections::HashMap::new();
        for (index, (module, _)) in order.iter().enumerate() {
            for (_, id) in &module.params {
                counts[index] += numel(*id) as isize;
                match first_holder[id.0] {
                    None => first_holder[id.0] = Some(index),
                    Some(first) => holders
                        .entry(*id)
                        .or_insert_with(|| vec![first])
                        .push(index),
                }
            }
        }
        for (id, holders) in holders {
            let mut counted = std::collections::HashSet::new();
            for holder in holders {
                let mut at = Some(holder);
                while let Some(node) = at {
                    if !counted.insert(node) {
                        counts[node] -= numel(id) as isize;
                        break;
                    }
                    at = order[node].1;
                }
            }
        }
        // Children come after their parent in walk order, so one backward pass sums them up.
        for index in (1..order.len()).rev() {
            if let Some(parent) = order[index].1 {
                counts[parent] += counts[index];
            }
        }
        counts.into_iter().map(|count| count as usize).collect()
    }

    /// Every `(dotted name, id)` in `state_dict` order: a module's own parameters, then its children's.
    #[must_use]
    pub fn state_dict(&self) -> Vec<(String, ParamId)> {
        let mut out = Vec::new();
        self.for_each_param(&mut |segments, _, local, id| {
            out.push((join_all(segments, local), id));
        });
        out
    }

    /// Visits every own tensor of this module and its descendants in `state_dict` order, as
    /// `(module path segments, module, local name, id)`: no path text is built, so a pass that
    /// needs few names (one tensor's paths, a count) costs no allocation per tensor. The walk keeps
    /// its own stack, as [`walk`](Self::walk) does.
    pub fn for_each_param<'a>(
        &'a self,
        visit: &mut impl FnMut(&[&'a str], &'a Module, &'a str, ParamId),
    ) {
        let mut segments: Vec<&str> = Vec::new();
        let mut stack = vec![(0, self)];
        while let Some((depth, module)) = stack.pop() {
            // `depth` counts the segments of the module's path; the root has none.
            segments.truncate(depth.max(1) - 1);
            if depth > 0 {
                segments.push(&module.name);
            }
            for (local, id) in &module.params {
                visit(&segments, module, local, *id);
            }
            for child in module.children.iter().rev() {
                stack.push((depth + 1, child));
            }
        }
    }

    /// The descendant at `path`: dotted names (`0.block1`) or positions (`[0][1]`); empty is self.
    #[must_use]
    pub fn find(&self, path: &[PathStep]) -> Option<&Module> {
        path.iter().try_fold(self, |m, step| m.child(step))
    }

    /// The child named or numbered by `step`.
    #[must_use]
    pub fn child(&self, step: &PathStep) -> Option<&Module> {
        match step {
            PathStep::Name(name) => self.children.iter().find(|c| c.name == *name),
            PathStep::Index(i) => self.children.get(*i),
        }
    }
}

/// How many missing positions [`Module::numbering_gaps`] lists.
pub const GAPS_SHOWN: usize = 8;

/// One step down a module path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    /// By attribute name, as in a state_dict key.
    Name(String),
    /// By position, as the chapter's `rgnet[0][1]` indexes a Sequential.
    Index(usize),
}

/// Joins a parent path and a local name with PyTorch's dot.
#[must_use]
pub fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// The dotted key of `local` under the module at `segments`: [`join`] applied segment by segment.
#[must_use]
pub fn join_all(segments: &[&str], local: &str) -> String {
    let mut out = String::new();
    for segment in segments.iter().chain([&local]) {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(segment);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::demos;

    #[test]
    fn counts_bottom_up_match_counting_each_subtree() {
        for name in ["mlp", "rgnet", "shared"] {
            let model = demos::build(name, 0).unwrap();
            let counts = model.root.param_counts(|id| model.store.get(id).numel());
            let mut walked = Vec::new();
            model.root.walk("", &mut |path, module| {
                walked.push((path.to_owned(), model.count_params(module)));
            });
            let fast: Vec<_> = counts.into_iter().map(|(p, _, n)| (p, n)).collect();
            assert_eq!(fast, walked, "{name}");
        }
    }

    #[test]
    fn gaps_are_listed_first_few_whatever_the_numbers() {
        let mut module = Module::new("", ModuleKind::Unknown);
        for name in ["0", "2", "99999999999"] {
            module.children.push(Module::new(name, ModuleKind::Unknown));
        }
        assert_eq!(module.numbering_gaps(), Some(vec![1, 3, 4, 5, 6, 7, 8, 9]));
        module.children.truncate(1);
        assert_eq!(module.numbering_gaps(), None);
    }

    #[test]
    fn walks_a_deep_chain_without_recursing() {
        let mut root = Module::new("", ModuleKind::Unknown);
        let mut at = &mut root;
        for _ in 0..100 {
            at.children.push(Module::new("a", ModuleKind::Unknown));
            at = &mut at.children[0];
        }
        let mut deepest = 0;
        root.walk("", &mut |path, _| {
            deepest = deepest.max(path.split('.').count());
        });
        assert_eq!(deepest, 100);
    }
}
