//! The reusing forward paths (`run_reusing`, `run_last`) compute what `run` computes, and `run`
//! computes what the layers' own formulas give, layer by layer.

mod forward_support;

use forward_support::random;

use ndarray::{ArrayD, Ix2, IxDyn};
use paramscope::kernel::gemm_reference;
use paramscope::model::forward::{ForwardBuffers, ForwardError, ForwardPlan};
use paramscope::model::layers::Layer;
use paramscope::model::tree::ModuleKind;
use paramscope::model::{Model, Module, arch, demos};

const BIGGER: &str = "Sequential(
  (0): Linear(in_features=64, out_features=96, bias=True)
  (1): ReLU()
  (2): Linear(in_features=96, out_features=80, bias=False)
  (3): LeakyReLU(negative_slope=0.1)
  (4): Linear(in_features=80, out_features=40, bias=True)
  (5): ReLU()
  (6): Flatten(start_dim=0, end_dim=-1)
  (7): Sigmoid()
)";

fn models() -> Vec<(&'static str, Model, Vec<usize>)> {
    vec![
        ("rgnet", demos::build("rgnet", 0).unwrap(), vec![2, 4]),
        ("mlp", demos::build("mlp", 3).unwrap(), vec![5, 4]),
        ("shared", demos::build("shared", 5).unwrap(), vec![2, 4]),
        (
            "bigger",
            arch::instantiate(&arch::parse(BIGGER).unwrap(), 2).unwrap(),
            vec![3, 33, 64],
        ),
    ]
}

/// Every Linear and element-wise module of `module`, in execution order.
fn leaves<'m>(module: &'m Module, out: &mut Vec<&'m Module>) {
    match module.kind {
        ModuleKind::Sequential => module.children.iter().for_each(|c| leaves(c, out)),
        _ => out.push(module),
    }
}

/// The model run layer by layer with the naive reference product (no packing, no kernel paths)
/// and the layers' own formulas: an independent path to compare with.
/// `x Wᵀ + b` over the last dimension of `x`, by the kernel's naive reference loop.
fn reference_linear(x: &ArrayD<f32>, w: &ndarray::Array2<f32>, b: Option<&[f32]>) -> ArrayD<f32> {
    let rows = x.len() / w.ncols();
    let x2 = x
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order((rows, w.ncols()))
        .unwrap();
    let mut y = ndarray::Array2::zeros((rows, w.nrows()));
    gemm_reference(1.0, x2.view(), w.t(), 0.0, y.view_mut());
    if let Some(b) = b {
        y.rows_mut()
            .into_iter()
            .for_each(|mut row| row += &ndarray::ArrayView1::from(b));
    }
    let mut shape = x.shape().to_vec();
    *shape.last_mut().unwrap() = w.nrows();
    y.into_shape_with_order(IxDyn(&shape)).unwrap()
}

fn by_hand(model: &Model, x: &ArrayD<f32>) -> Vec<ArrayD<f32>> {
    let mut mods = Vec::new();
    leaves(&model.root, &mut mods);
    let mut current = x.clone();
    let mut outs = Vec::new();
    for m in mods {
        current = match &m.kind {
            ModuleKind::Layer(Layer::Linear {
                in_features,
                out_features,
                ..
            }) => {
                let w = model
                    .store
                    .get(m.param("weight").unwrap())
                    .to_f32_vec()
                    .unwrap();
                let w = ndarray::Array2::from_shape_vec((*out_features, *in_features), w).unwrap();
                let b = m
                    .param("bias")
                    .map(|id| model.store.get(id).to_f32_vec().unwrap());
                reference_linear(&current, &w, b.as_deref())
            }
            ModuleKind::Layer(Layer::Flatten { .. }) => {
                ArrayD::from_shape_vec(IxDyn(&[current.len()]), current.iter().copied().collect())
                    .unwrap()
            }
            ModuleKind::Layer(layer) => {
                let mut y = current.clone();
                let x: Vec<f32> = current.iter().copied().collect();
                layer.apply_elementwise(&x, y.as_slice_mut().unwrap());
                y
            }
            _ => unreachable!(),
        };
        outs.push(current.clone());
    }
    outs
}

fn same_bits(a: &ndarray::ArrayViewD<f32>, b: &ndarray::ArrayViewD<f32>, what: &str) {
    assert_eq!(a.shape(), b.shape(), "{what}: shape");
    for (u, v) in a.iter().zip(b.iter()) {
        assert!(
            u.to_bits() == v.to_bits() || u.is_nan() && v.is_nan(),
            "{what}: {u} vs {v}"
        );
    }
}

fn close(a: &ndarray::ArrayViewD<f32>, b: &ndarray::ArrayViewD<f32>, what: &str) {
    assert_eq!(a.shape(), b.shape(), "{what}: shape");
    for (u, v) in a.iter().zip(b.iter()) {
        assert!(
            (u - v).abs() <= 1e-5 * (1.0 + v.abs()) || u.is_nan() && v.is_nan(),
            "{what}: {u} vs {v}"
        );
    }
}

#[test]
fn every_path_gives_the_same_outputs() {
    for (name, model, shape) in models() {
        let plan = ForwardPlan::new(&model).unwrap();
        let mut x = random(&shape, 11);
        // NaN and a negative zero must pass through every ReLU the same way on every path.
        x.as_slice_mut().unwrap()[1] = f32::NAN;
        let run = plan.run(&x).unwrap();
        let hand = by_hand(&model, &x);
        assert_eq!(run.len(), hand.len(), "{name}");
        let mut buffers = ForwardBuffers::default();
        let mut fused = ForwardBuffers::default();
        for pass in 0..3 {
            let reused = plan.run_reusing(&mut buffers, &x).unwrap();
            assert_eq!(reused.len(), run.len());
            for (i, ((a, (path, repr)), want)) in
                run.iter().zip(plan.layers()).zip(&hand).enumerate()
            {
                assert_eq!((a.path.as_str(), a.repr.as_str()), (path, repr));
                let what = format!("{name} pass {pass}, step {i} {path}");
                same_bits(&a.output.view(), &reused.output(i), &what);
                // The naive reference sums in f64: close, not equal, and NaN where the run has NaN.
                close(&a.output.view(), &want.view(), &format!("{what} by hand"));
            }
            let last = plan.run_last(&mut fused, &x).unwrap();
            same_bits(
                &run.last().unwrap().output.view(),
                &last,
                &format!("{name}: fused"),
            );
        }
    }
}

#[test]
fn rgnet_matches_a_naive_computation() {
    let model = demos::build("rgnet", 0).unwrap();
    let plan = ForwardPlan::new(&model).unwrap();
    let x = random(&[2, 4], 3);
    let mut buffers = ForwardBuffers::default();
    let out = plan.run_reusing(&mut buffers, &x).unwrap();
    let mut mods = Vec::new();
    leaves(&model.root, &mut mods);
    let mut h: Vec<Vec<f64>> = (0..2)
        .map(|i| (0..4).map(|j| f64::from(x[[i, j]])).collect())
        .collect();
    for m in mods {
        if let ModuleKind::Layer(Layer::Linear { out_features, .. }) = m.kind {
            let w = model
                .store
                .get(m.param("weight").unwrap())
                .to_f32_vec()
                .unwrap();
            let b = model
                .store
                .get(m.param("bias").unwrap())
                .to_f32_vec()
                .unwrap();
            h = h
                .iter()
                .map(|row| {
                    (0..out_features)
                        .map(|o| {
                            let k = row.len();
                            f64::from(b[o])
                                + (0..k)
                                    .map(|p| row[p] * f64::from(w[o * k + p]))
                                    .sum::<f64>()
                        })
                        .collect()
                })
                .collect();
        } else {
            h.iter_mut().flatten().for_each(|v| *v = v.max(0.0));
        }
    }
    let y = out.last().into_dimensionality::<Ix2>().unwrap();
    for i in 0..2 {
        assert!((f64::from(y[[i, 0]]) - h[i][0]).abs() < 1e-6);
    }
}

#[test]
fn a_wrong_input_is_an_error_and_the_buffers_still_work() {
    let model = demos::build("mlp", 0).unwrap();
    let plan = ForwardPlan::new(&model).unwrap();
    let mut buffers = ForwardBuffers::default();
    let good = random(&[2, 4], 1);
    let want = plan.run(&good).unwrap().pop().unwrap().output;
    plan.run_reusing(&mut buffers, &good).unwrap();
    let err = plan
        .run_reusing(&mut buffers, &random(&[2, 5], 1))
        .unwrap_err();
    assert!(
        matches!(&err, ForwardError::Shape { path, shape, .. } if path == "0" && shape == &[2, 5]),
        "{err}"
    );
    assert!(plan.run_reusing(&mut buffers, &random(&[], 1)).is_err());
    let again = plan.run_reusing(&mut buffers, &good).unwrap();
    same_bits(&want.view(), &again.last(), "after an error");
    // Buffers made for another plan are sized again for this one.
    let other = ForwardPlan::new(&demos::build("rgnet", 0).unwrap()).unwrap();
    other.run_reusing(&mut buffers, &good).unwrap();
    let again = plan.run_reusing(&mut buffers, &good).unwrap();
    same_bits(&want.view(), &again.last(), "after another plan");
}

#[test]
fn an_empty_model_returns_its_input() {
    let model = Model {
        root: Module::new("", ModuleKind::Sequential).into(),
        store: paramscope::model::ParamStore::default(),
        metadata: std::collections::BTreeMap::new(),
    };
    let plan = ForwardPlan::new(&model).unwrap();
    let x = random(&[2, 3], 1);
    let run = plan.run(&x).unwrap();
    assert_eq!(run.len(), 1);
    assert_eq!(run[0].repr, "Sequential()");
    assert_eq!(run[0].output, x);
    assert_eq!(plan.in_features(), None);
}

#[test]
fn a_plan_knows_when_its_weights_changed() {
    let mut model = demos::build("shared", 0).unwrap();
    let plan = ForwardPlan::new(&model).unwrap();
    assert!(plan.is_current(&model));
    let (_, id) = model.find_param("2.weight").unwrap();
    let t = model.store.get(id).clone();
    model.store.set(id, t);
    assert!(!plan.is_current(&model));
    assert!(ForwardPlan::new(&model).unwrap().is_current(&model));
}
