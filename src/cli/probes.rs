//! The probes on the command line: `forward`'s `--lens`, `--attention`, `--attention-full`,
//! `--zero` and its always-present `"massive"`, and `check --super-weights`, as JSON fields and
//! text sections.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use super::{CheckArgs, CliError, ForwardArgs, Source, json_number};
use crate::checkpoint::Loaded;
use crate::families::predict::{self, Candidate};
use crate::families::probe::lens::{self, LensRow};
use crate::families::probe::massive::{self, Massive};
use crate::families::probe::super_weight::{self, SuperWeight};
use crate::families::probe::zero::{self, ZeroSpec};
use crate::families::probe::{LayerMap, Probe, ProbeError, Want, Weights};
use crate::families::{self, Batch, Family, Pass, Plan};
use crate::model::Model;
use crate::text::escape;

/// The text `check --super-weights` runs by default (the super-weight paper's).
const SUPER_WEIGHT_TEXT: &str = "Apple Inc. is a worldwide tech company.";

/// A token id's text, when there is a tokenizer.
pub(super) type TokenText<'a> = &'a dyn Fn(u32) -> Option<String>;

/// What `forward`'s flags ask a pass to record: the residual stream always for a causal LM (for
/// `"massive"`), attention with `--attention` or `--attention-full`.
pub(super) fn want(args: &ForwardArgs, family: Family) -> Want {
    Want {
        residuals: family.is_causal(),
        attention: args.probes.attention || args.probes.attention_full,
        weights: if args.probes.attention_full {
            Weights::All
        } else {
            Weights::None
        },
        down_proj: false,
    }
}

/// Whether `--lens`, `--attention` or `--attention-full` asks for more than a plain pass.
pub(super) fn asked(args: &ForwardArgs) -> bool {
    let p = &args.probes;
    p.lens || p.attention || p.attention_full
}

/// One pass with the probes `args` ask for, the lens included, written into the buffers of
/// `last` and `probe`'s as the plain passes reuse theirs: what `--repeat` times then.
pub(super) fn probed_pass(
    args: &ForwardArgs,
    plan: &Plan,
    batch: &Batch,
    probe: &mut Probe,
    last: Pass,
) -> Result<Pass, CliError> {
    let pass = plan.rerun_probed(batch, probe, last)?;
    if args.probes.lens {
        std::hint::black_box(lens::lens(plan, probe, logits(&pass), args.top_k)?);
    }
    std::hint::black_box(massive::massive(probe));
    Ok(pass)
}

/// A pass's output as the lens reads the model's own logits: `[rows, vocab]`, C order.
fn logits(pass: &Pass) -> &[f32] {
    // Its output is made in C order; were it not, the lens computes the last row itself.
    pass.output.as_slice().unwrap_or_default()
}

/// `--zero`'s specs, parsed.
pub(super) fn zero_specs(args: &ForwardArgs) -> Result<Vec<ZeroSpec>, CliError> {
    Ok(args
        .probes
        .zero
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, ProbeError>>()?)
}

/// `model` with `specs` zeroed.
pub(super) fn zeroed(model: &Model, specs: &[ZeroSpec]) -> Result<Model, CliError> {
    let mut edited = model.clone();
    for spec in specs {
        spec.apply(&mut edited)?;
    }
    Ok(edited)
}

/// The unedited run's top-k, and KL(baseline || edited), at text 0's last position.
pub(super) struct Baseline {
    top_k: Vec<Candidate>,
    kl: f64,
}

/// Runs the unedited `plan` and compares its next token with `edited`'s.
pub(super) fn baseline(
    plan: &Plan,
    batch: &Batch,
    edited: &Pass,
    k: usize,
) -> Result<Baseline, CliError> {
    let before = plan.run(batch)?;
    let last = |pass: &Pass| {
        pass.output
            .slice(ndarray::s![0, batch.lens[0] - 1, ..])
            .to_vec()
    };
    let (p, q) = (last(&before), last(edited));
    Ok(Baseline {
        top_k: predict::top_k(&p, k),
        kl: zero::kl(&p, &q),
    })
}

/// What the probes found on one `forward` run.
pub(super) struct Report {
    /// Text 0's length: its positions come first in the lens.
    first: usize,
    massive: Vec<Massive>,
    lens: Option<Vec<LensRow>>,
    attention: Option<Vec<LayerMap>>,
    baseline: Option<Baseline>,
}

impl Report {
    /// Reads `probe` after `plan`'s `pass`, with the lens when asked.
    pub(super) fn new(
        args: &ForwardArgs,
        plan: &Plan,
        (pass, probe): (&Pass, Probe),
        baseline: Option<Baseline>,
    ) -> Result<Self, CliError> {
        if args.probes.lens && !plan.is_causal() {
            return Err(ProbeError::Unsupported(
                "--lens reads a language model's predictions; this model encodes",
            )
            .into());
        }
        let lens = if args.probes.lens {
            Some(lens::lens(plan, &probe, logits(pass), args.top_k)?)
        } else {
            None
        };
        Ok(Self {
            first: probe.first_len(),
            massive: massive::massive(&probe),
            lens,
            attention: (args.probes.attention || args.probes.attention_full)
                .then_some(probe.attention),
            baseline,
        })
    }

    /// Adds the probes' fields to `forward --json`'s object.
    pub(super) fn json(&self, value: &mut Value, token: TokenText) {
        let candidate = |c: &Candidate| json!({"id": c.id, "token": token(c.id), "prob": json_number(f64::from(c.prob))});
        if plan_is_decoder(&self.massive) {
            value["massive"] = self
                .massive
                .iter()
                .map(|m| {
                    json!({
                        "layer": m.layer,
                        "path": m.path,
                        "top": m.top.iter().map(|p| json!({
                            "value": json_number(f64::from(p.value)),
                            "token": p.token,
                            "channel": p.channel,
                        })).collect::<Vec<_>>(),
                        "median": json_number(m.median),
                        "flagged": m.flagged,
                    })
                })
                .collect();
        }
        if let Some(rows) = &self.lens {
            value["lens"] = rows
                .iter()
                .map(|r| {
                    json!({
                        "layer": r.layer,
                        "path": r.path,
                        "positions": r.positions.iter().map(|top| json!({
                            "top_k": top.iter().map(candidate).collect::<Vec<_>>(),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
        }
        if let Some(layers) = &self.attention {
            let numbers = |v: &[f32]| -> Vec<Value> {
                v.iter().map(|&x| json_number(f64::from(x))).collect()
            };
            let mut list = Vec::new();
            for (l, layer) in layers.iter().enumerate() {
                for (h, head) in layer.heads.iter().enumerate() {
                    let mut item = json!({
                        "layer": l,
                        "head": h,
                        "entropy": numbers(&head.entropy),
                        "sink": numbers(&head.sink),
                    });
                    if let Some(w) = &head.weights {
                        item["weights"] = w
                            .chunks(layer.tokens.max(1))
                            .map(|row| Value::Array(numbers(row)))
                            .collect();
                    }
                    list.push(item);
                }
            }
            value["attention"] = Value::Array(list);
        }
        if let Some(b) = &self.baseline {
            value["baseline"] = json!({"top_k": b.top_k.iter().map(candidate).collect::<Vec<_>>()});
            value["kl"] = json_number(b.kl);
        }
    }

    /// Adds the probes' sections to `forward`'s text.
    pub(super) fn text(&self, out: &mut String, token: TokenText) {
        let shown = |id: u32| format!("{:?}", escape(&token(id).unwrap_or_else(|| id.to_string())));
        if let Some(b) = &self.baseline {
            let _ = writeln!(
                out,
                "\nzeroed: KL(baseline || edited) = {:.6} nats; the unedited run's next token:",
                b.kl
            );
            for c in &b.top_k {
                let _ = writeln!(out, "  {:>8}  {:<20} p {:.4}", c.id, shown(c.id), c.prob);
            }
        }
        if let Some(rows) = &self.lens {
            let _ = writeln!(out, "\nlogit lens (top token at each position of text 0):");
            for r in rows {
                let tops: Vec<String> = r
                    .positions
                    .iter()
                    .take(self.first)
                    .filter_map(|top| top.first().map(|c| shown(c.id)))
                    .collect();
                let _ = writeln!(
                    out,
                    "  {:>3} {:<28} {}",
                    r.layer,
                    escape(&r.path),
                    tops.join(" ")
                );
            }
        }
        if let Some(layers) = &self.attention {
            let _ = writeln!(out, "\nattention of text 0 (mean over queries):");
            for (l, layer) in layers.iter().enumerate() {
                for (h, head) in layer.heads.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "  layer {l:>3} head {h:>3}  entropy {:>7.4} nats  sink {:>6.4}",
                        mean(&head.entropy),
                        mean(&head.sink)
                    );
                }
            }
        }
        if plan_is_decoder(&self.massive) {
            let _ = writeln!(
                out,
                "\nmassive activations (|value| at token, channel of text 0):"
            );
            for m in &self.massive {
                let tops: Vec<String> = m
                    .top
                    .iter()
                    .map(|p| format!("{:.4} @ ({}, {})", p.value, p.token, p.channel))
                    .collect();
                let flag = if m.flagged { "  massive" } else { "" };
                let _ = writeln!(
                    out,
                    "  {:>3} {:<28} {}  median {:.3e}{flag}",
                    m.layer,
                    escape(&m.path),
                    tops.join(", "),
                    m.median
                );
            }
        }
    }
}

/// Whether the pass kept a residual stream (a causal LM's), so `"massive"` is reported.
fn plan_is_decoder(massive: &[Massive]) -> bool {
    !massive.is_empty()
}

fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len().max(1) as f64
}

/// `check --super-weights`: runs the text (or ids) through the model's family and finds them.
pub(super) fn super_weights(
    args: &CheckArgs,
    loaded: &Loaded,
) -> Result<Vec<SuperWeight>, CliError> {
    let Some((family, config)) = &loaded.family else {
        return Err(CliError::Arguments(format!(
            "{}: --super-weights runs checkpoints whose config.json names a Llama-style family ({})",
            args.model.model,
            families::supported()
        )));
    };
    let ids: Vec<u32> = if let Some(list) = &args.tokens {
        list.split(',')
            .map(|id| {
                id.trim().parse().map_err(|_| {
                    CliError::Arguments(format!("--tokens {list}: {id:?} is not a token id"))
                })
            })
            .collect::<Result<_, _>>()?
    } else {
        let folder = families::folder_of(Path::new(&args.model.model));
        let source = Source {
            folder: &folder,
            gguf: &loaded.gguf,
            remote: loaded.remote.as_deref(),
        };
        let text = args.text.as_deref().unwrap_or(SUPER_WEIGHT_TEXT);
        source.tokenizer(&args.model.model)?.encode(text)?
    };
    let batch = Batch::new(&[ids], 0)?;
    let plan = Plan::new(*family, &loaded.model, config)?;
    let mut probe = Probe::new(Want {
        down_proj: true,
        ..Want::default()
    });
    plan.run_probed(&batch, &mut probe)?;
    Ok(super_weight::find(&loaded.model, &probe)?)
}

/// A super weight as one of `check --json`'s findings (`"expert"` only for a stacked experts'
/// tensor, whose coordinates are `[expert, row, col]`).
pub(super) fn super_weight_json(s: &SuperWeight) -> Value {
    let mut finding = json!({
        "kind": "super_weight",
        "path": s.path,
        "layer": s.layer,
        "row": s.row,
        "col": s.col,
        "value": json_number(f64::from(s.value)),
        "output_magnitude": json_number(f64::from(s.output_magnitude)),
    });
    if let Some(expert) = s.expert {
        finding["expert"] = json!(expert);
    }
    finding
}

/// A super weight as a line of `check`'s text.
pub(super) fn super_weight_text(s: &SuperWeight) -> String {
    let expert = s.expert.map(|e| format!("{e}, ")).unwrap_or_default();
    format!(
        "super_weight     {}  [{expert}{}, {}] = {:.6}: layer {}'s down_proj output reaches {:.2}",
        escape(&s.path),
        s.row,
        s.col,
        s.value,
        s.layer,
        s.output_magnitude
    )
}
