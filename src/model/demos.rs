//! The chapter's three nets, built as PyTorch builds them, in the same order of construction, so that
//! `--seed S` gives the parameters of `torch.manual_seed(S)` followed by the chapter's code.

use std::collections::BTreeMap;

use super::Model;
use super::init::{InitScheme, Role};
use super::layers::Layer;
use super::param::ParamStore;
use super::rng::TorchGenerator;
use super::tree::{Module, ModuleKind};
use crate::tensor::Tensor;

/// The names `demo:NAME` accepts, with what each is.
pub const DEMOS: [(&str, &str); 3] = [
    (
        "mlp",
        "Sequential(Linear(4,8), ReLU(), Linear(8,1)): the chapter's first net",
    ),
    (
        "rgnet",
        "Sequential(block2(), Linear(4,1)): four nested blocks, rgnet[0][1][0].bias",
    ),
    (
        "shared",
        "one Linear(8,8) used at positions 2 and 4: a tied parameter",
    ),
];

/// Builds `demo:NAME` from `seed`; `None` for an unknown name.
#[must_use]
pub fn build(name: &str, seed: u64) -> Option<Model> {
    let mut net = Builder::new(seed);
    let root = match name {
        "mlp" => sequential(
            "",
            vec![
                net.linear("0", 4, 8),
                layer("1", Layer::ReLU),
                net.linear("2", 8, 1),
            ],
        ),
        "rgnet" => {
            let blocks = (0..4)
                .map(|i| {
                    sequential(
                        &format!("block{i}"),
                        vec![
                            net.linear("0", 4, 8),
                            layer("1", Layer::ReLU),
                            net.linear("2", 8, 4),
                            layer("3", Layer::ReLU),
                        ],
                    )
                })
                .collect();
            let block2 = sequential("0", blocks);
            sequential("", vec![block2, net.linear("1", 4, 1)])
        }
        "shared" => {
            // `shared = nn.Linear(8, 8)` is constructed first, so it draws first.
            let shared = net.linear("", 8, 8);
            let at = |name: &str| Module {
                name: name.into(),
                ..shared.clone()
            };
            let first = net.linear("0", 4, 8);
            let last = net.linear("6", 8, 1);
            sequential(
                "",
                vec![
                    first,
                    layer("1", Layer::ReLU),
                    at("2"),
                    layer("3", Layer::ReLU),
                    at("4"),
                    layer("5", Layer::ReLU),
                    last,
                ],
            )
        }
        _ => return None,
    };
    Some(Model {
        root: root.into(),
        store: net.store,
        metadata: BTreeMap::new(),
    })
}

/// Creates Linear layers with PyTorch's default init, drawing from one generator in call order.
pub struct Builder {
    /// The tensors made so far.
    pub store: ParamStore,
    rng: TorchGenerator,
}

impl Builder {
    /// A builder whose generator is `torch.manual_seed(seed)`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Builder {
            store: ParamStore::default(),
            rng: TorchGenerator::new(seed),
        }
    }

    /// `nn.Linear(in_features, out_features)` named `name`: weight, then bias, drawn by `reset_parameters`.
    pub fn linear(&mut self, name: &str, in_features: usize, out_features: usize) -> Module {
        self.layer(
            name,
            Layer::Linear {
                in_features,
                out_features,
                bias: true,
            },
        )
    }

    /// A module for `layer`, with freshly initialized parameters when it has any.
    pub fn layer(&mut self, name: &str, layer: Layer) -> Module {
        let mut module = Module::new(name, ModuleKind::Layer(layer.clone()));
        if let Layer::Linear {
            in_features,
            out_features,
            bias,
        } = layer
        {
            let mut draw = |shape: Vec<usize>, role| {
                let values = InitScheme::Default
                    .sample(&shape, role, &mut self.rng)
                    .expect("default init fits every Linear");
                self.store.insert(Tensor::from_f32(shape, &values))
            };
            let weight = draw(vec![out_features, in_features], Role::Weight);
            module.params.push(("weight".into(), weight));
            if bias {
                let id = draw(
                    vec![out_features],
                    Role::Bias {
                        fan_in: in_features,
                    },
                );
                module.params.push(("bias".into(), id));
            }
        }
        module
    }
}

fn layer(name: &str, layer: Layer) -> Module {
    Module::new(name, ModuleKind::Layer(layer))
}

fn sequential(name: &str, children: Vec<Module>) -> Module {
    Module {
        children,
        ..Module::new(name, ModuleKind::Sequential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_match_the_chapter() {
        let count = |name| build(name, 0).unwrap().total_params();
        assert_eq!(
            (count("mlp"), count("rgnet"), count("shared")),
            (49, 309, 121)
        );
        assert!(build("resnet", 0).is_none());
    }

    #[test]
    fn the_shared_layer_is_one_tensor_at_two_paths() {
        let model = build("shared", 0).unwrap();
        let (_, at2) = model.find_param("2.weight").unwrap();
        let (_, at4) = model.find_param("4.weight").unwrap();
        assert_eq!(at2, at4);
        assert_eq!(model.paths_of(at2), ["2.weight", "4.weight"]);
        assert_eq!(model.state_dict().len(), 8);
        assert_eq!(model.named_parameters().len(), 6);
    }

    #[test]
    fn the_chapters_indexing_reaches_nested_blocks() {
        let model = build("rgnet", 0).unwrap();
        let (key, id) = model.find_param("rgnet[0][1][0].bias").unwrap();
        assert_eq!(key, "0.block1.0.bias");
        assert_eq!(model.find_param("[0][1][0].bias").unwrap().1, id);
        assert_eq!(model.find_param("0.block1.0.bias").unwrap().1, id);
        let err = model.find_param("0.block1.0.bais").unwrap_err().to_string();
        assert!(err.contains("did you mean \"0.block1.0.bias\""), "{err}");
    }
}
