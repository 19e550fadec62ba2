//! The feed-forward blocks of the decoder families: the gated MLP (`down(act(gate)·up)`, gate and
//! up read as one stacked product, or as two when the file registers them apart) and the
//! mixture of experts (a top-k router over gated experts, with or without renormalised weights,
//! optionally a shared expert behind a sigmoid gate), from the per-expert layout or from the
//! fused expert tensors transformers 5 writes.
//!
//! Each block can show a probe every down projection it runs ([`DownRun`]): the super-weight
//! search reads their inputs and outputs, for dense and mixture blocks alike.

use super::error::FamilyError;
use super::ops::{Activation, add, softmax};
use super::probe::down::{DownRun, DownWeight, Seen};
use super::scope::Scope;
use super::weights::Linear;

/// A gated MLP ready to run.
#[derive(Debug)]
pub struct Gated {
    gate_up: GateUp,
    down: Linear,
    down_weight: DownWeight,
    inner: usize,
}

#[derive(Debug)]
enum GateUp {
    /// One product whose rows are `[gate | up]`.
    Stacked(Linear),
    /// Gate and up apart (Mixtral's `w1`, `w2`, `w3`, where the down projection sits between).
    Pair(Linear, Linear),
}

impl Gated {
    /// `gate`, `up` and `down` children in that order (`gate_proj`, `up_proj`, `down_proj`).
    pub fn new(
        m: &Scope,
        [gate, up, down]: [&str; 3],
        hidden: usize,
        inner: usize,
        bias: bool,
    ) -> Result<Self, FamilyError> {
        let gate_up = m.linears(&[(gate, inner), (up, inner)], hidden, bias)?;
        let down = m.pp(down);
        Ok(Self {
            gate_up: GateUp::Stacked(gate_up),
            down: down.linear(inner, hidden, bias)?,
            down_weight: down_weight(&down),
            inner,
        })
    }

    /// Phi-3's fused `gate_up_proj` (gate first) and `down_proj`.
    pub fn fused(m: &Scope, hidden: usize, inner: usize) -> Result<Self, FamilyError> {
        let gate_up = GateUp::Stacked(m.pp("gate_up_proj").linear(hidden, 2 * inner, false)?);
        let down = m.pp("down_proj");
        Ok(Self {
            gate_up,
            down: down.linear(inner, hidden, false)?,
            down_weight: down_weight(&down),
            inner,
        })
    }

    /// Mixtral's expert as transformers 4 registers it: `w1` (gate), `w2` (down), `w3` (up).
    pub fn w123(m: &Scope, hidden: usize, inner: usize) -> Result<Self, FamilyError> {
        let gate = m.pp("w1").linear(hidden, inner, false)?;
        let w2 = m.pp("w2");
        let down = w2.linear(inner, hidden, false)?;
        let up = m.pp("w3").linear(hidden, inner, false)?;
        Ok(Self {
            gate_up: GateUp::Pair(gate, up),
            down,
            down_weight: down_weight(&w2),
            inner,
        })
    }

    /// [`forward`](Self::forward), then shows `seen` the down projection, which ran on the
    /// block's input rows `rows` (`None`: all).
    fn forward_seen(
        &self,
        x: &[f32],
        act: Activation,
        out: &mut Vec<f32>,
        scratch: &mut [Vec<f32>; 2],
        (rows, seen): (Option<&[usize]>, &mut Seen),
    ) {
        self.forward(x, act, out, scratch);
        if let Some(seen) = seen.as_deref_mut() {
            seen(DownRun {
                weight: &self.down_weight,
                rows,
                // `forward` leaves the down projection's input in the first scratch buffer.
                input: &scratch[0],
                output: out,
            });
        }
    }

    /// `x` [rows, hidden] → `out` [rows, hidden]; `scratch` is reused between calls, and holds
    /// the down projection's input in its first buffer afterwards.
    pub fn forward(
        &self,
        x: &[f32],
        act: Activation,
        out: &mut Vec<f32>,
        scratch: &mut [Vec<f32>; 2],
    ) {
        let [mid, other] = scratch;
        let inner = self.inner;
        match &self.gate_up {
            GateUp::Stacked(gate_up) => {
                gate_up.forward(x, other);
                mid.clear();
                for row in other.chunks_exact(2 * inner) {
                    mid.extend_from_slice(&row[..inner]);
                }
                act.apply(mid);
                for (m, row) in mid
                    .chunks_exact_mut(inner)
                    .zip(other.chunks_exact(2 * inner))
                {
                    m.iter_mut().zip(&row[inner..]).for_each(|(g, u)| *g *= u);
                }
            }
            GateUp::Pair(gate, up) => {
                gate.forward(x, mid);
                up.forward(x, other);
                act.apply(mid);
                mid.iter_mut().zip(other.iter()).for_each(|(g, u)| *g *= u);
            }
        }
        self.down.forward(mid, out);
    }
}

/// What a family's mixture of experts is, from its config.
#[derive(Debug, Clone)]
pub struct MoeSpec {
    /// The class prefix (`Mixtral`, `Qwen2Moe`).
    pub class: &'static str,
    /// The experts.
    pub count: usize,
    /// The experts each token goes to.
    pub top_k: usize,
    /// Each expert's inner width.
    pub inner: usize,
    /// Whether the top-k weights are divided by their sum.
    pub renormalise: bool,
    /// The shared expert's inner width (Qwen2-MoE), if it has one.
    pub shared: Option<usize>,
    /// Whether transformers 5 registers the router before the experts.
    pub router_first: bool,
    /// The per-expert layout's block name (`block_sparse_moe`, `mlp`), its experts' class, and
    /// whether they are Mixtral's `w1`/`w2`/`w3`.
    pub per_expert: (&'static str, &'static str, bool),
}

/// The weight of the Linear at `scope`.
fn down_weight(scope: &Scope) -> DownWeight {
    DownWeight {
        name: format!("{}.weight", scope.path()),
        expert: None,
    }
}

/// A mixture-of-experts block ready to run.
#[derive(Debug)]
pub struct Moe {
    router: Linear,
    experts: Vec<Gated>,
    top_k: usize,
    renormalise: bool,
    shared: Option<(Gated, Linear)>,
}

impl Moe {
    /// The block under layer `l`, in whichever layout the checkpoint holds; gives it with the
    /// scope of the block (where its output is recorded).
    pub fn new<'s, 'm>(
        l: &Scope<'s, 'm>,
        spec: &MoeSpec,
        hidden: usize,
    ) -> Result<(Self, Scope<'s, 'm>), FamilyError> {
        let MoeSpec {
            class,
            count,
            inner,
            ..
        } = *spec;
        let block_class = format!("{class}SparseMoeBlock");
        let (block, router, experts) = if l.has("mlp.experts.gate_up_proj") {
            let block = l.pp("mlp").class(&block_class);
            let router_class = format!("{class}TopKRouter");
            let experts_class = format!("{class}Experts");
            let (router, experts) = if spec.router_first {
                let router = block.pp("gate").router(&router_class, hidden, count)?;
                let experts = block
                    .pp("experts")
                    .experts(&experts_class, count, hidden, inner)?;
                (router, experts)
            } else {
                let experts = block
                    .pp("experts")
                    .experts(&experts_class, count, hidden, inner)?;
                let router = block.pp("gate").router(&router_class, hidden, count)?;
                (router, experts)
            };
            let name = format!("{}.experts.down_proj", block.path());
            let experts = experts
                .into_iter()
                .enumerate()
                .map(|(j, (gate_up, down))| Gated {
                    gate_up: GateUp::Stacked(gate_up),
                    down,
                    down_weight: DownWeight {
                        name: name.clone(),
                        expert: Some(j),
                    },
                    inner,
                })
                .collect();
            (block, router, experts)
        } else {
            let (name, expert_class, w123) = spec.per_expert;
            let block = l.pp(name).class(&block_class);
            let router = block.pp("gate").linear(hidden, count, false)?;
            let list = block.pp("experts").list();
            let experts = (0..count)
                .map(|j| {
                    let e = list.pp(j).class(expert_class);
                    if w123 {
                        Gated::w123(&e, hidden, inner)
                    } else {
                        Gated::new(
                            &e,
                            ["gate_proj", "up_proj", "down_proj"],
                            hidden,
                            inner,
                            false,
                        )
                    }
                })
                .collect::<Result<_, _>>()?;
            (block, router, experts)
        };
        let shared = match spec.shared {
            Some(width) => {
                let s = block.pp("shared_expert").class(&format!("{class}MLP"));
                let mlp = Gated::new(
                    &s,
                    ["gate_proj", "up_proj", "down_proj"],
                    hidden,
                    width,
                    false,
                )?;
                let gate = block.pp("shared_expert_gate").linear(hidden, 1, false)?;
                Some((mlp, gate))
            }
            None => None,
        };
        Ok((
            Self {
                router,
                experts,
                top_k: spec.top_k.min(count),
                renormalise: spec.renormalise,
                shared,
            },
            block,
        ))
    }

    /// `x` [rows, hidden] → `out` [rows, hidden]; gives each row's chosen experts, best first,
    /// and shows `seen` each expert's down projection.
    pub fn forward(
        &self,
        x: &[f32],
        act: Activation,
        out: &mut Vec<f32>,
        scratch: &mut [Vec<f32>; 2],
        mut seen: Seen,
    ) -> Vec<Vec<u32>> {
        let hidden = self.router.in_features().max(1);
        let rows = x.len() / hidden;
        let mut logits = Vec::new();
        self.router.forward(x, &mut logits);
        let count = self.experts.len();
        // Each expert's rows and their weights.
        let mut routed: Vec<Vec<(usize, f32)>> = vec![Vec::new(); count];
        let mut chosen = Vec::with_capacity(rows);
        for (r, probs) in logits.chunks_exact_mut(count).enumerate() {
            softmax(probs);
            let mut order: Vec<usize> = (0..count).collect();
            // As torch.topk: the largest first, the lower index first among equals.
            order.sort_by(|a, b| probs[*b].total_cmp(&probs[*a]).then(a.cmp(b)));
            order.truncate(self.top_k);
            let sum: f32 = order.iter().map(|&e| probs[e]).sum();
            for &e in &order {
                let w = if self.renormalise {
                    probs[e] / sum
                } else {
                    probs[e]
                };
                routed[e].push((r, w));
            }
            chosen.push(order.into_iter().map(|e| e as u32).collect());
        }
        out.clear();
        out.resize(x.len(), 0.0);
        let (mut input, mut y, mut ids) = (Vec::new(), Vec::new(), Vec::new());
        for (expert, rows) in self.experts.iter().zip(&routed) {
            if rows.is_empty() {
                continue;
            }
            input.clear();
            for &(r, _) in rows {
                input.extend_from_slice(&x[r * hidden..(r + 1) * hidden]);
            }
            if seen.is_some() {
                ids.clear();
                ids.extend(rows.iter().map(|&(r, _)| r));
            }
            expert.forward_seen(&input, act, &mut y, scratch, (Some(&ids), &mut seen));
            for (&(r, w), y) in rows.iter().zip(y.chunks_exact(hidden)) {
                let o = &mut out[r * hidden..(r + 1) * hidden];
                o.iter_mut().zip(y).for_each(|(o, y)| *o += y * w);
            }
        }
        if let Some((mlp, gate)) = &self.shared {
            mlp.forward_seen(x, act, &mut y, scratch, (None, &mut seen));
            let mut g = Vec::new();
            gate.forward(x, &mut g);
            for (row, g) in y.chunks_exact_mut(hidden).zip(&g) {
                let s = 1.0 / (1.0 + (-g).exp());
                for v in row {
                    *v *= s;
                }
            }
            add(out, &y);
        }
        chosen
    }
}

/// A decoder layer's feed-forward block.
#[derive(Debug)]
pub enum Mlp {
    /// One gated MLP.
    Dense(Gated),
    /// A mixture of experts.
    Moe(Moe),
}

impl Mlp {
    /// Runs the block, showing `seen` its down projections; gives the experts chosen per row
    /// (none for a dense block).
    pub fn forward(
        &self,
        x: &[f32],
        act: Activation,
        out: &mut Vec<f32>,
        scratch: &mut [Vec<f32>; 2],
        mut seen: Seen,
    ) -> Option<Vec<Vec<u32>>> {
        match self {
            Self::Dense(g) => {
                g.forward_seen(x, act, out, scratch, (None, &mut seen));
                None
            }
            Self::Moe(m) => Some(m.forward(x, act, out, scratch, seen)),
        }
    }
}
