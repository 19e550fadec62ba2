//! The architecture language: PyTorch's own `print(model)` text, printed and parsed back.

mod errors;

pub use errors::{BindError, BindProblem, LayerError};

use std::collections::BTreeMap;
use std::fmt::Write as _;

use thiserror::Error;

use super::Model;
use super::budget::{self, TooBig};
use super::demos::Builder;
use super::layers::Layer;
use super::tree::{MAX_DEPTH, Module, ModuleKind, join};

/// The metadata key under which an exported file carries its architecture text.
pub const METADATA_KEY: &str = "paramscope.arch";

/// Why an architecture text could not be read, with the 1-based line where it went wrong.
#[derive(Debug, Error, PartialEq)]
#[error("line {line}: {message}")]
pub struct ArchError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong there.
    pub message: String,
}

/// The text `print(model)` shows for `root`.
#[must_use]
pub fn print(root: &Module) -> String {
    let mut out = String::new();
    write_module(root, &mut out, 0);
    out.push('\n');
    out
}

/// Writes `module` at `depth` straight into `out`: a checkpoint's tree can hold a million modules,
/// so no line or repr is built apart.
fn write_module(module: &Module, out: &mut String, depth: usize) {
    write_head(module, out);
    if module.children.is_empty() {
        // A module without children prints its layer repr; containers print `Sequential()`.
        if matches!(
            module.kind,
            ModuleKind::Sequential | ModuleKind::ModuleList | ModuleKind::Unknown
        ) {
            out.push_str("()");
        }
        return;
    }
    out.push_str("(\n");
    for child in &module.children {
        indent(out, depth + 1);
        out.push('(');
        out.push_str(&child.name);
        out.push_str("): ");
        write_module(child, out, depth + 1);
        out.push('\n');
    }
    indent(out, depth);
    out.push(')');
}

/// The `repr` head of `module`, as [`Module::repr`] gives it.
fn write_head(module: &Module, out: &mut String) {
    match &module.kind {
        ModuleKind::Layer(layer) => {
            let _ = write!(out, "{layer}");
        }
        ModuleKind::Class(class) => out.push_str(&class.repr),
        ModuleKind::Sequential | ModuleKind::ModuleList | ModuleKind::Unknown => {
            out.push_str(module.class_name());
        }
    }
}

/// Two spaces per level, as PyTorch indents.
fn indent(out: &mut String, depth: usize) {
    out.extend(std::iter::repeat_n(' ', 2 * depth));
}

/// The most modules a text may describe once its repeats (`(0-99): 100 x ...`) are expanded: a
/// few lines must not unfold into billions of modules.
pub const MAX_MODULES: usize = 1 << 20;

/// Parses `print(model)` text into a module tree without parameters. Nesting deeper than
/// [`MAX_DEPTH`] and more than [`MAX_MODULES`] modules are errors, so no text makes the parser (or
/// any walk of the tree it returns) recurse without bound.
pub fn parse(text: &str) -> Result<Module, ArchError> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    let Some(&(first_line, first)) = lines.first() else {
        return Err(ArchError {
            line: 1,
            message: "the architecture text is empty".into(),
        });
    };
    let mut parser = Parser {
        lines: &lines,
        next: 1,
        modules: 0,
    };
    let root = parser.module(String::new(), first, first_line, 0)?;
    if let Some(&(line, extra)) = lines.get(parser.next) {
        return Err(ArchError {
            line,
            message: format!(
                "unexpected text after the model's closing parenthesis: {:?}",
                excerpt(extra)
            ),
        });
    }
    Ok(root)
}

struct Parser<'a> {
    lines: &'a [(usize, &'a str)],
    next: usize,
    /// Modules made so far, repeats expanded.
    modules: usize,
}

impl Parser<'_> {
    /// Reads the module whose head is `head` (already consumed), `depth` containers deep; its
    /// children follow when it opens.
    fn module(
        &mut self,
        name: String,
        head: &str,
        line: usize,
        depth: usize,
    ) -> Result<Module, ArchError> {
        self.count(Some(1), line)?;
        let err = |message: String| ArchError { line, message };
        if let Some(class) = head.strip_suffix('(') {
            if depth >= MAX_DEPTH {
                return Err(err(format!(
                    "containers nest more than {MAX_DEPTH} deep; paramscope reads at most that"
                )));
            }
            if class != "Sequential" && class != "ModuleList" {
                return Err(err(format!(
                    "unknown container {class:?}: paramscope runs Sequential containers of {}",
                    KNOWN_LAYERS.join(", ")
                )));
            }
            let mut module = Module::new(name, ModuleKind::Sequential);
            loop {
                let Some(&(child_line, text)) = self.lines.get(self.next) else {
                    return Err(err(format!("{class}( is never closed")));
                };
                self.next += 1;
                if text == ")" {
                    return Ok(module);
                }
                module
                    .children
                    .extend(self.children(text, child_line, depth + 1)?);
            }
        }
        let (class, args) = split_call(head).ok_or_else(|| {
            err(format!(
                "expected a module like Linear(...) or Sequential(, found {:?}",
                excerpt(head)
            ))
        })?;
        if class == "Sequential" && args.trim().is_empty() {
            return Ok(Module::new(name, ModuleKind::Sequential));
        }
        let layer = parse_layer(class, args).map_err(|e| err(e.to_string()))?;
        Ok(Module::new(name, ModuleKind::Layer(layer)))
    }

    /// Reads one child line `(name): Head`, or a repeat `(0-3): 4 x Head`, into its modules.
    fn children(
        &mut self,
        text: &str,
        line: usize,
        depth: usize,
    ) -> Result<Vec<Module>, ArchError> {
        let err = |message: String| ArchError { line, message };
        let (label, head) = text
            .strip_prefix('(')
            .and_then(|t| t.split_once("): "))
            .ok_or_else(|| {
                err(format!(
                    "expected a child like (0): Linear(...), found {:?}",
                    excerpt(text)
                ))
            })?;
        if let Some((range, head)) = repeat(label, head) {
            let before = self.modules;
            let module = self.module(String::new(), head, line, depth)?;
            // The subtree was counted once; its copies add (count - 1) more of its size.
            let size = self.modules - before;
            let copies = range.end() - range.start();
            self.count(size.checked_mul(copies), line)?;
            return Ok(range
                .map(|i| Module {
                    name: compact_str::format_compact!("{i}"),
                    ..module.clone()
                })
                .collect());
        }
        Ok(vec![self.module(label.to_owned(), head, line, depth)?])
    }

    /// Adds `more` modules (`None`: past any count) to the total, refusing past [`MAX_MODULES`].
    fn count(&mut self, more: Option<usize>, line: usize) -> Result<(), ArchError> {
        match more.and_then(|m| self.modules.checked_add(m)) {
            Some(total) if total <= MAX_MODULES => {
                self.modules = total;
                Ok(())
            }
            _ => Err(ArchError {
                line,
                message: format!(
                    "the text describes more than {MAX_MODULES} modules; paramscope reads at most that"
                ),
            }),
        }
    }
}

/// PyTorch's compressed repeat `(0-3): 4 x Linear(...)`: the names and the repeated head.
fn repeat<'h>(label: &str, head: &'h str) -> Option<(std::ops::RangeInclusive<usize>, &'h str)> {
    let (first, last) = label.split_once('-')?;
    let (first, last): (usize, usize) = (first.parse().ok()?, last.parse().ok()?);
    let (count, head) = head.split_once(" x ")?;
    (count.parse::<usize>().ok()? == last.checked_sub(first)?.checked_add(1)?)
        .then_some((first..=last, head))
}

/// At most the first 60 characters of a line, for quoting it in an error.
fn excerpt(line: &str) -> String {
    match line.char_indices().nth(60) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line.to_owned(),
    }
}

/// The layer kinds the language knows.
const KNOWN_LAYERS: [&str; 9] = [
    "Linear",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "GELU",
    "LeakyReLU",
    "Identity",
    "Dropout",
    "Flatten",
];

/// `Class(args)` into its class and argument text.
fn split_call(head: &str) -> Option<(&str, &str)> {
    let open = head.find('(')?;
    let args = head[open + 1..].strip_suffix(')')?;
    let class = &head[..open];
    (!class.is_empty() && class.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some((class, args))
}

/// Builds a layer from its class and `k=v` arguments, as its PyTorch repr writes them.
fn parse_layer(class: &str, args: &str) -> Result<Layer, LayerError> {
    if !KNOWN_LAYERS.contains(&class) {
        return Err(LayerError::UnknownKind {
            class: class.to_owned(),
            known: KNOWN_LAYERS.join(", "),
        });
    }
    let mut kwargs: BTreeMap<&str, &str> = BTreeMap::new();
    for pair in args.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| LayerError::NotKeyValue {
                class: class.to_owned(),
                found: excerpt(pair),
            })?;
        kwargs.insert(k.trim(), v.trim());
    }
    // Every activation may say inplace=…, which changes nothing for a forward pass.
    kwargs.remove("inplace");
    let mut take = |key: &str| kwargs.remove(key);
    let number = |key: &str, v: &str| -> Result<f64, LayerError> {
        v.parse().map_err(|_| LayerError::NotNumber {
            class: class.to_owned(),
            key: key.to_owned(),
            value: v.to_owned(),
        })
    };
    let layer = match class {
        "Linear" => {
            let size = |key: &str, v: Option<&str>| -> Result<usize, LayerError> {
                v.ok_or_else(|| LayerError::LinearNeeds(key.to_owned()))?
                    .parse()
                    .map_err(|_| LayerError::NotWhole(key.to_owned()))
            };
            let in_features = size("in_features", take("in_features"))?;
            let out_features = size("out_features", take("out_features"))?;
            let bias = match take("bias").unwrap_or("True") {
                "True" => true,
                "False" => false,
                other => return Err(LayerError::Bias(other.to_owned())),
            };
            Layer::Linear {
                in_features,
                out_features,
                bias,
            }
        }
        "ReLU" => Layer::ReLU,
        "Sigmoid" => Layer::Sigmoid,
        "Tanh" => Layer::Tanh,
        "Identity" => Layer::Identity,
        "GELU" => match take("approximate").map(|v| v.trim_matches(['\'', '"'])) {
            None | Some("none") => Layer::Gelu { tanh: false },
            Some("tanh") => Layer::Gelu { tanh: true },
            Some(other) => {
                return Err(LayerError::Approximate(other.to_owned()));
            }
        },
        "LeakyReLU" => Layer::LeakyReLU {
            negative_slope: take("negative_slope")
                .map_or(Ok(0.01), |v| number("negative_slope", v))?,
        },
        "Dropout" => Layer::Dropout {
            p: take("p").map_or(Ok(0.5), |v| number("p", v))?,
        },
        "Flatten" => {
            let dim = |key: &str, v: Option<&str>, default: i64| -> Result<i64, LayerError> {
                v.map_or(Ok(default), |v| {
                    v.parse().map_err(|_| LayerError::NotInteger {
                        key: key.to_owned(),
                        value: v.to_owned(),
                    })
                })
            };
            Layer::Flatten {
                start_dim: dim("start_dim", take("start_dim"), 1)?,
                end_dim: dim("end_dim", take("end_dim"), -1)?,
            }
        }
        _ => unreachable!("checked against KNOWN_LAYERS"),
    };
    if let Some((key, _)) = kwargs.into_iter().next() {
        return Err(LayerError::NoArgument {
            class: class.to_owned(),
            key: key.to_owned(),
        });
    }
    Ok(layer)
}

/// A fresh model of this architecture, initialized as PyTorch's constructors would from `seed`
/// (layers draw in the order they appear, as `nn.Sequential(...)`'s arguments are evaluated).
///
/// Refused before anything is allocated when its parameters (counted with checked arithmetic:
/// `Linear(in_features=18446744073709551615, ...)` overflows) exceed the memory available.
pub fn instantiate(arch: &Module, seed: u64) -> Result<Model, TooBig> {
    budget::check(
        "the architecture",
        budget::Kind::Parameters,
        budget::bytes_of(parameter_count(arch), 4),
    )?;
    let mut builder = Builder::new(seed);
    let root = with_fresh_params(arch, &mut builder);
    Ok(Model {
        root: root.into(),
        store: builder.store,
        metadata: BTreeMap::new(),
    })
}

/// The elements of every Linear's weight and bias under `arch`; `None` when the count overflows.
fn parameter_count(arch: &Module) -> Option<u64> {
    let mut total: u64 = 0;
    let mut stack = vec![arch];
    while let Some(module) = stack.pop() {
        if let Some(Layer::Linear {
            in_features,
            out_features,
            bias,
        }) = module.layer()
        {
            let (n_in, n_out) = (*in_features as u64, *out_features as u64);
            let weight = n_in.checked_mul(n_out)?;
            let bias = if *bias { n_out } else { 0 };
            total = total.checked_add(weight)?.checked_add(bias)?;
        }
        stack.extend(&module.children);
    }
    Some(total)
}

fn with_fresh_params(arch: &Module, builder: &mut Builder) -> Module {
    let mut module = match arch.layer() {
        Some(layer) => builder.layer(&arch.name, layer.clone()),
        None => Module::new(arch.name.clone(), arch.kind.clone()),
    };
    module.children = arch
        .children
        .iter()
        .map(|c| with_fresh_params(c, builder))
        .collect();
    module
}

/// Puts a checkpoint's tensors into this architecture, checking names and shapes as PyTorch's
/// `load_state_dict(strict=True)` does: every expected key present with its shape, nothing left over.
pub fn bind(arch: &Module, checkpoint: &Model) -> Result<Model, BindError> {
    let available: BTreeMap<String, _> = checkpoint.state_dict().into_iter().collect();
    let mut used = std::collections::HashSet::new();
    let mut problems = Vec::new();
    let root = bind_module(arch, "", checkpoint, &available, &mut used, &mut problems);
    let unexpected: Vec<_> = available
        .keys()
        .filter(|k| !used.contains(*k))
        .cloned()
        .collect();
    if !unexpected.is_empty() {
        problems.push(BindProblem::Unexpected(unexpected));
    }
    if problems.is_empty() {
        Ok(Model {
            root: root.into(),
            store: checkpoint.store.clone(),
            metadata: checkpoint.metadata.clone(),
        })
    } else {
        Err(BindError(problems))
    }
}

fn bind_module(
    arch: &Module,
    path: &str,
    checkpoint: &Model,
    available: &BTreeMap<String, super::ParamId>,
    used: &mut std::collections::HashSet<String>,
    problems: &mut Vec<BindProblem>,
) -> Module {
    let mut module = Module::new(arch.name.clone(), arch.kind.clone());
    if let Some(Layer::Linear {
        in_features,
        out_features,
        bias,
    }) = arch.layer()
    {
        let mut expected = vec![("weight", vec![*out_features, *in_features])];
        if *bias {
            expected.push(("bias", vec![*out_features]));
        }
        for (local, shape) in expected {
            let key = join(path, local);
            match available.get(&key) {
                None => problems.push(BindProblem::Missing(key.clone())),
                Some(&id) => {
                    let found = checkpoint.store.get(id).shape();
                    if found == shape.as_slice() {
                        module.params.push((local.into(), id));
                    } else {
                        problems.push(BindProblem::Shape {
                            key: key.clone(),
                            found: found.to_vec(),
                            needed: shape.clone(),
                        });
                    }
                    used.insert(key);
                }
            }
        }
    }
    module.children = arch
        .children
        .iter()
        .map(|c| {
            bind_module(
                c,
                &join(path, &c.name),
                checkpoint,
                available,
                used,
                problems,
            )
        })
        .collect();
    module
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::demos;

    const MLP: &str = "Sequential(
  (0): Linear(in_features=4, out_features=8, bias=True)
  (1): ReLU()
  (2): Linear(in_features=8, out_features=1, bias=True)
)
";

    #[test]
    fn prints_as_pytorch_and_parses_back() {
        let mlp = demos::build("mlp", 0).unwrap();
        assert_eq!(print(&mlp.root), MLP);
        let rgnet = demos::build("rgnet", 0).unwrap();
        let text = print(&rgnet.root);
        let parsed = parse(&text).unwrap();
        assert_eq!(print(&parsed), text);
        assert_eq!(instantiate(&parsed, 0).unwrap().total_params(), 309);
    }

    #[test]
    fn errors_name_the_line() {
        let text = "Sequential(\n  (0): Linear(in_features=4, out_features=8, bias=True)\n  (1): Conv2d(3, 8, kernel_size=(3, 3))\n)\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.line, 3);
        assert!(
            err.message.contains("unknown module kind \"Conv2d\""),
            "{err}"
        );
        assert_eq!(parse("Sequential(\n  (0): ReLU()\n").unwrap_err().line, 1);
        assert!(
            parse("Linear(in_features=4)")
                .unwrap_err()
                .message
                .contains("needs out_features")
        );
        assert!(
            parse("ReLU(foo=1)")
                .unwrap_err()
                .message
                .contains("no argument \"foo\"")
        );
    }

    #[test]
    fn reads_compressed_repeats_and_activation_arguments() {
        let text = "Sequential(\n  (0-2): 3 x Linear(in_features=4, out_features=4, bias=False)\n  (3): ReLU(inplace=True)\n  (4): GELU(approximate='tanh')\n)";
        let root = parse(text).unwrap();
        let names: Vec<_> = root.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["0", "1", "2", "3", "4"]);
        assert_eq!(root.children[4].layer(), Some(&Layer::Gelu { tanh: true }));
    }

    #[test]
    fn deep_nesting_and_huge_repeats_are_errors_not_overflows() {
        let deep = format!(
            "{}{}",
            "Sequential(\n(0): ".repeat(100_000),
            ")\n".repeat(100_000)
        );
        assert!(matches!(parse(&deep), Err(e) if e.message.contains("nest more than")));
        let fine = format!(
            "{}ReLU()\n{}",
            "Sequential(\n(0): ".repeat(MAX_DEPTH - 1),
            ")\n".repeat(MAX_DEPTH - 1)
        );
        assert!(parse(&fine).is_ok());
        let wide = "Sequential(\n(0-99999999999): 100000000000 x ReLU()\n)";
        assert!(matches!(parse(wide), Err(e) if e.message.contains("more than")));
        let nested = "Sequential(\n(0-1999): 2000 x Sequential(\n(0-999): 1000 x ReLU()\n)\n)";
        assert!(matches!(parse(nested), Err(e) if e.message.contains("more than")));
    }

    #[test]
    fn a_huge_linear_is_refused_before_allocating() {
        let huge =
            parse("Linear(in_features=100000000, out_features=100000000, bias=True)").unwrap();
        let err = instantiate(&huge, 0).err().unwrap().to_string();
        assert!(err.starts_with("the architecture needs 40"), "{err}");
        let max = format!(
            "Linear(in_features={}, out_features=3, bias=True)",
            u64::MAX
        );
        let err = instantiate(&parse(&max).unwrap(), 0)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("more than 18 EB"), "{err}");
    }
}
