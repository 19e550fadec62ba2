//! The module tree of a checkpoint, read from its dotted tensor names, with its ties.
//!
//! Each name finds its modules from the name before it, or through one map of every module when
//! the file does not list its names grouped by module, so a million `layers.{i}.weight` take
//! linear time either way; a name deeper than [`MAX_DEPTH`] stays whole at the root, so no walk of the tree
//! recurses deeper than that, whatever the file says.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use crate::io::aliases::{self, AliasError};

use crate::io::Checkpoint;
use crate::model::layers::Layer;
use crate::model::tree::{MAX_DEPTH, Module, ModuleKind};
use crate::model::{Model, ParamId, ParamStore};

/// The name a tied language-model head has (`tie_word_embeddings`).
const TIED_HEAD: &str = "lm_head.weight";

/// Embedding names that Hugging Face models tie `lm_head.weight` to, most common first.
const EMBEDDING_NAMES: [&str; 6] = [
    "embed_tokens.weight",
    "wte.weight",
    "word_embeddings.weight",
    "tok_embeddings.weight",
    "embed_in.weight",
    "shared.weight",
];

/// Builds the module tree of a checkpoint from its dotted names, with ties from `__metadata__`
/// (validated: [`aliases`]), and `lm_head.weight` tied to the input embedding when
/// `tie_word_embeddings` says so.
pub fn from_checkpoint(
    checkpoint: Checkpoint,
    tie_word_embeddings: bool,
) -> Result<Model, AliasError> {
    let Checkpoint {
        tensors,
        metadata,
        ties,
        ..
    } = checkpoint;
    let mut store = ParamStore::default();
    let mut names = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        names.push((name, store.insert(tensor)));
    }
    // Aliases and the tied head need names looked up; most files have neither, and then a
    // million names cost no map at all.
    let mut aliases: Vec<(String, ParamId)> = Vec::new();
    if !metadata.is_empty() || !ties.is_empty() || tie_word_embeddings {
        let ids: HashMap<&str, ParamId> = names.iter().map(|(n, id)| (n.as_str(), *id)).collect();
        let known: HashSet<&str> = ids.keys().copied().collect();
        // A safetensors file records its ties in `__metadata__`, a PyTorch file by shared storage.
        let pairs = (metadata.iter().chain(ties.iter().map(|(k, v)| (k, v))))
            .map(|(k, v)| (k.as_str(), v.as_str()));
        aliases = aliases::resolve(pairs, &known)?
            .into_iter()
            .map(|(dropped, kept)| (dropped.to_owned(), ids[kept]))
            .collect();
        if tie_word_embeddings
            && !ids.contains_key(TIED_HEAD)
            && !aliases.iter().any(|(dropped, _)| dropped == TIED_HEAD)
            && let Some(embedding) = input_embedding(ids.keys().copied())
        {
            aliases.push((TIED_HEAD.to_owned(), ids[embedding]));
        }
    }
    let build = |lookup| {
        let mut tree = Builder::new(names.len() + aliases.len(), lookup);
        for (name, id) in names.iter().chain(&aliases) {
            tree.insert(name, *id);
        }
        let mut root = tree.finish();
        order_numbered(&mut root);
        root
    };
    // Nearly every file lists its names grouped by module, and then each module is met in one run
    // and found from the name before: no map is needed. The tree is built on that guess first; a
    // module met in two runs shows as two siblings of one name, and then the names are put in
    // again through the map.
    let mut root = build(Lookup::Grouped);
    if has_repeated_siblings(&root) {
        root = build(Lookup::Map);
    }
    infer_kinds(&mut root, &store);
    Ok(Model {
        root: root.into(),
        store,
        metadata,
    })
}

/// Whether the module path `modules` (`a.b.c`) has no empty segment and is at most [`MAX_DEPTH`]
/// deep: one pass over its bytes, as every name of a million takes it.
fn fits_the_tree(modules: &str) -> bool {
    let (mut depth, mut after_dot) = (1, true);
    for &byte in modules.as_bytes() {
        let dot = byte == b'.';
        if dot && after_dot {
            return false;
        }
        depth += usize::from(dot);
        after_dot = dot;
    }
    !after_dot && depth <= MAX_DEPTH
}

/// The input embedding among `names`: the first of [`EMBEDDING_NAMES`] that some name ends with.
fn input_embedding<'a>(names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names
        .filter_map(|name| {
            let rank = EMBEDDING_NAMES.iter().position(|e| {
                name.strip_suffix(e)
                    .is_some_and(|head| head.is_empty() || head.ends_with('.'))
            })?;
            Some((rank, name))
        })
        .min()
        .map(|(_, name)| name)
}

/// How [`Builder`] finds a module that is not on the previous name's path.
#[derive(Clone, Copy)]
enum Lookup {
    /// It takes it to be new: right when the names come grouped by module.
    Grouped,
    /// It looks it up in a map of every module.
    Map,
}

/// Whether some module has two children of one name: a tree built with [`Lookup::Grouped`] from
/// names that were not grouped.
fn has_repeated_siblings(root: &Module) -> bool {
    let mut stack = vec![root];
    let mut seen: HashSet<&str> = HashSet::new();
    while let Some(module) = stack.pop() {
        seen.clear();
        if module.children.len() > 1 && !module.children.iter().all(|c| seen.insert(&c.name)) {
            return true;
        }
        stack.extend(&module.children);
    }
    false
}

/// The tree under construction, built in place: each module is written once, where it stays.
/// Every module gets an id (the root's is 0); with [`Lookup::Map`], one map from
/// `(parent id, segment)` to child id serves the whole tree, its keys borrowed from the names.
struct Builder<'a> {
    root: Module,
    /// Each module's position among its parent's children, by id (the root's is unused).
    positions: Vec<usize>,
    /// The map of [`Lookup::Map`]; `None` for [`Lookup::Grouped`].
    children: Option<HashMap<(usize, &'a str), usize>>,
    /// The last name's modules, `(segment, id)` from the root down: names come grouped by
    /// module, so most segments are found here without hashing.
    last: Vec<(&'a str, usize)>,
    /// The segments of a name that are new modules, kept to spare an allocation per name.
    fresh: Vec<&'a str>,
}

impl<'a> Builder<'a> {
    /// An empty tree, sized for about one module per name (the common `layers.{i}.weight`).
    fn new(names: usize, lookup: Lookup) -> Self {
        let mut positions = Vec::with_capacity(names + 1);
        positions.push(0);
        Builder {
            root: Module::new("", ModuleKind::Unknown),
            positions,
            children: match lookup {
                Lookup::Grouped => None,
                Lookup::Map => Some(HashMap::with_capacity(names)),
            },
            last: Vec::new(),
            fresh: Vec::new(),
        }
    }

    /// Puts `name` into the tree: every segment but the last is a module. A name with an empty
    /// segment (`a..b`), or nested deeper than [`MAX_DEPTH`], stays whole at the root, so that its
    /// key survives unchanged.
    fn insert(&mut self, name: &'a str, id: ParamId) {
        let (modules, local) = match name.rsplit_once('.') {
            Some((modules, local)) => (Some(modules), local),
            None => (None, name),
        };
        if local.is_empty() || modules.is_some_and(|m| !fits_the_tree(m)) {
            self.root.params.push((name.into(), id));
            return;
        }
        // Down the modules that exist; the first missing one and all below it are new.
        let mut segments = modules.into_iter().flat_map(|m| m.split('.'));
        let (mut at, mut depth) = (0, 0);
        self.fresh.clear();
        for segment in segments.by_ref() {
            if let Some(&(seen, node)) = self.last.get(depth)
                && seen == segment
            {
                at = node;
            } else if let Some(&child) = self
                .children
                .as_ref()
                .and_then(|map| map.get(&(at, segment)))
            {
                // From here down the path differs from the last name's.
                self.last.truncate(depth);
                self.last.push((segment, child));
                at = child;
            } else {
                self.fresh.push(segment);
                break;
            }
            depth += 1;
        }
        // `last` now leads from the root to `at`, the deepest module that exists.
        self.last.truncate(depth);
        self.fresh.extend(segments);
        let Builder {
            root,
            positions,
            children,
            last,
            fresh,
        } = self;
        let parent = last.iter().fold(root, |module, &(_, child)| {
            &mut module.children[positions[child]]
        });
        if fresh.is_empty() {
            parent.params.push((local.into(), id));
            return;
        }
        // A chain of new modules, each the only child of the one above, built inside out and
        // moved into its parent once.
        let mut chain = Module::new(fresh[fresh.len() - 1], ModuleKind::Unknown);
        chain.params.push((local.into(), id));
        for &segment in fresh.iter().rev().skip(1) {
            let mut outer = Module::new(segment, ModuleKind::Unknown);
            outer.children.push(chain);
            chain = outer;
        }
        let mut position = parent.children.len();
        parent.children.push(chain);
        for &segment in fresh.iter() {
            let child = positions.len();
            positions.push(position);
            if let Some(map) = children.as_mut() {
                map.insert((at, segment), child);
            }
            last.push((segment, child));
            at = child;
            position = 0;
        }
    }

    /// The finished tree; the map and the ids go.
    fn finish(self) -> Module {
        self.root
    }
}

/// Puts numbered children (`layers.0`, `layers.10`, `layers.2`) in index order, as a `ModuleList`
/// or `Sequential` prints them whatever order a file lists them in (safetensors writes names
/// sorted as text). Everything else keeps the order in which the file first names it, which is
/// `print(model)`'s registration order for any file a `state_dict()` wrote.
fn order_numbered(module: &mut Module) {
    let mut stack = vec![module];
    while let Some(module) = stack.pop() {
        let numbered = module.children.len() > 1
            && module
                .children
                .iter()
                .all(|c| !c.name.is_empty() && c.name.bytes().all(|b| b.is_ascii_digit()));
        if numbered {
            module
                .children
                .sort_by(|a, b| natural_cmp(&a.name, &b.name));
        }
        stack.extend(module.children.iter_mut());
    }
}

/// Compares strings with runs of digits taken as numbers: `layers.2` < `layers.10`.
#[must_use]
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.chars().next(), b.chars().next()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
                let (na, nb) = (digits(a), digits(b));
                let (da, db) = (
                    a[..na].trim_start_matches('0'),
                    b[..nb].trim_start_matches('0'),
                );
                let order = da
                    .len()
                    .cmp(&db.len())
                    .then_with(|| da.cmp(db))
                    .then_with(|| na.cmp(&nb));
                if order != Ordering::Equal {
                    return order;
                }
                (a, b) = (&a[na..], &b[nb..]);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(&y);
                }
                (a, b) = (&a[x.len_utf8()..], &b[y.len_utf8()..]);
            }
        }
    }
}

/// Recognises what names alone make certain: a leaf with a 2-D float `weight` and an optional
/// matching 1-D `bias` is a Linear (unless its name says embedding, which has the same shape).
/// A module whose children are exactly `0..n` is a Sequential when they are Linear layers (a
/// chain a forward pass can run), else a ModuleList (transformer blocks, which are not chained).
fn infer_kinds(module: &mut Module, store: &ParamStore) {
    module
        .children
        .iter_mut()
        .for_each(|c| infer_kinds(c, store));
    let numbered = !module.children.is_empty()
        && module.params.is_empty()
        && module
            .children
            .iter()
            .enumerate()
            .all(|(i, c)| names_number(&c.name, i));
    if numbered {
        let chain = module.children.iter().all(|c| c.layer().is_some());
        module.kind = if chain {
            ModuleKind::Sequential
        } else {
            ModuleKind::ModuleList
        };
    } else if module.children.is_empty()
        && let Some(layer) = linear_from_params(module, store)
    {
        module.kind = ModuleKind::Layer(layer);
    }
}

/// Whether `name` is `i` written as Rust writes it (no sign, no leading zero), without writing it.
fn names_number(name: &str, i: usize) -> bool {
    let canonical = name == "0" || !name.starts_with('0');
    canonical && name.bytes().all(|b| b.is_ascii_digit()) && name.parse() == Ok(i)
}

fn linear_from_params(module: &Module, store: &ParamStore) -> Option<Layer> {
    let name = module.name.as_bytes();
    let says_embedding = name.windows(5).any(|w| w.eq_ignore_ascii_case(b"embed"))
        || name.eq_ignore_ascii_case(b"wte")
        || name.eq_ignore_ascii_case(b"wpe");
    if says_embedding {
        return None;
    }
    let weight = store.get(module.param("weight")?);
    let &[out_features, in_features] = weight.shape() else {
        return None;
    };
    let bias = module.param("bias").map(|id| store.get(id));
    let fits = |t: &crate::tensor::Tensor| t.dtype().is_float();
    let bias_fits = bias.is_none_or(|b| b.shape() == [out_features] && fits(b));
    let only_these = module.params.len() == 1 + usize::from(bias.is_some());
    (fits(weight) && bias_fits && only_these).then_some(Layer::Linear {
        in_features,
        out_features,
        bias: bias.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::{from_checkpoint, natural_cmp};
    use crate::io::Checkpoint;
    use crate::model::tree::MAX_DEPTH;
    use crate::model::tree::ModuleKind;
    use crate::tensor::Tensor;
    use std::cmp::Ordering;

    #[test]
    fn natural_order_compares_numbers_as_numbers() {
        assert_eq!(natural_cmp("layers.2", "layers.10"), Ordering::Less);
        assert_eq!(natural_cmp("block 10", "block 9"), Ordering::Greater);
        assert_eq!(natural_cmp("a", "a.0"), Ordering::Less);
        assert_eq!(natural_cmp("x01", "x1"), Ordering::Greater);
        assert_eq!(natural_cmp("bias", "weight"), Ordering::Less);
    }

    fn model_of(names: &[&str]) -> crate::model::Model {
        let tensors = names
            .iter()
            .map(|n| ((*n).to_owned(), Tensor::from_f32(vec![2, 2], &[0.0; 4])))
            .collect();
        from_checkpoint(
            Checkpoint::new(tensors, std::collections::BTreeMap::new()),
            false,
        )
        .unwrap()
    }

    #[test]
    fn numbered_blocks_are_a_module_list_and_numbered_linears_a_sequential() {
        let model = model_of(&["layers.0.attn.weight", "layers.1.attn.weight"]);
        assert_eq!(model.root.children[0].kind, ModuleKind::ModuleList);
        let model = model_of(&["0.weight", "1.weight"]);
        assert_eq!(model.root.kind, ModuleKind::Sequential);
    }

    #[test]
    fn names_deeper_than_the_bound_stay_whole_at_the_root() {
        let deep = vec!["a"; MAX_DEPTH + 2].join(".");
        let model = model_of(&[&deep, "b.weight"]);
        assert_eq!(model.root.params[0].0, deep);
        assert_eq!(model.state_dict().len(), 2);
    }

    #[test]
    fn module_paths_with_an_empty_segment_or_too_deep_do_not_fit() {
        use super::fits_the_tree;
        assert!(fits_the_tree("a") && fits_the_tree("a.b.c"));
        for bad in ["", ".a", "a.", "a..b", "."] {
            assert!(!fits_the_tree(bad), "{bad:?}");
        }
        assert!(fits_the_tree(&vec!["a"; MAX_DEPTH].join(".")));
        assert!(!fits_the_tree(&vec!["a"; MAX_DEPTH + 1].join(".")));
    }

    #[test]
    fn names_out_of_module_order_find_their_modules() {
        let names = [
            "a.b.weight",
            "a.c.weight",
            "a.b.bias",
            "a.weight",
            "x.y.z.weight",
            "a.b.c.d",
            "x.y.bias",
            "top",
        ];
        let model = model_of(&names);
        let mut keys: Vec<String> = model.state_dict().into_iter().map(|(k, _)| k).collect();
        keys.sort();
        let mut expected: Vec<&str> = names.to_vec();
        expected.sort_unstable();
        assert_eq!(keys, expected);
        let a = &model.root.children[0];
        let names_of = |m: &crate::model::Module| -> Vec<String> {
            m.children.iter().map(|c| c.name.to_string()).collect()
        };
        assert_eq!(names_of(a), ["b", "c"]);
        assert_eq!(names_of(&a.children[0]), ["c"]);
        assert_eq!(a.children[0].params.len(), 2);
    }

    #[test]
    fn modules_keep_the_files_order_and_numbered_ones_their_index_order() {
        // facenet's OrderedDict: a PReLU registered between two convolutions.
        let model = model_of(&[
            "conv1.weight",
            "conv1.bias",
            "prelu1.weight",
            "conv2.weight",
            "conv2.bias",
            "prelu2.weight",
            "dense.weight",
        ]);
        let names: Vec<&str> = model
            .root
            .children
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["conv1", "prelu1", "conv2", "prelu2", "dense"]);
        let keys: Vec<String> = model.state_dict().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys[..3], ["conv1.weight", "conv1.bias", "prelu1.weight"]);
        // safetensors lists names sorted as text; a ModuleList prints by index.
        let model = model_of(&["h.0.w", "h.1.w", "h.10.w", "h.2.w", "ln_f.weight"]);
        let h: Vec<&str> = model.root.children[0]
            .children
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(h, ["0", "1", "2", "10"]);
        assert_eq!(model.root.children[1].name, "ln_f");
    }

    #[test]
    fn a_hundred_thousand_siblings_build_in_linear_time() {
        let names: Vec<String> = (0..100_000).map(|i| format!("layers.{i}.weight")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let model = model_of(&refs);
        assert_eq!(model.root.children[0].children.len(), 100_000);
        assert_eq!(model.root.children[0].children[10].name, "10");
    }
}
