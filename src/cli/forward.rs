//! `paramscope forward`: run the model on an `.npy` input or a random batch, or a family checkpoint
//! (BERT, GPT-2, Llama, Gemma...) on text or token ids, and continue a causal LM's text greedily
//! (`--generate N`).

use ndarray::ArrayD;
use serde_json::{Value, json};

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use super::json_arrays::WithArrays;
use super::{CliError, ForwardArgs, Source, all_ids, fetch_said, json_number, json_text, probes};
use crate::checkpoint::Architecture;
use crate::families::probe::Probe;
use crate::families::sentence::Pooling;
use crate::families::tokenize::TextTokenizer;
use crate::families::{self, Batch, Config, Family, Plan, Stop, gguf_config, predict};
use crate::io::{gguf, npy};
use crate::model::Model;
use crate::model::forward::{Activation, ActivationStats, ForwardBuffers, ForwardPlan};
use crate::text::escape;

pub(super) fn run(args: &ForwardArgs) -> Result<String, CliError> {
    // A remote model's tensors are fetched once the arguments and the tokenizer are known to be good.
    let loaded = args.model.open()?;
    if let Some((family, config)) = loaded.family {
        let folder = families::folder_of(Path::new(&args.model.model));
        let source = Source {
            folder: &folder,
            gguf: &loaded.gguf,
            remote: loaded.remote.as_deref(),
        };
        return run_family(args, &loaded.model, family, &config, &source);
    }
    if !args.text.is_empty() || !args.tokens.is_empty() || args.generate.is_some() {
        return Err(CliError::Arguments(format!(
            "{}: --text, --tokens and --generate run checkpoints whose config.json names a family paramscope runs ({})",
            args.model.model,
            families::supported()
        )));
    }
    let model = loaded.model;
    fetch_said(&model, &all_ids(&model), "")?;
    let plan = ForwardPlan::new(&model)?;
    if loaded.architecture == Architecture::Inferred {
        eprintln!(
            "warning: {}: the layers were read from the tensor names as a chain of Linear layers; a checkpoint does not record layers without parameters (activations), so if the model has any, pass --arch FILE (the text print(model) shows)",
            escape(&args.model.model)
        );
    }
    let x = match &args.input {
        Some(path) => npy::read(path)?,
        None => plan.random_input(args.batch as usize, args.model.seed)?,
    };
    let activations = plan.run(&x)?;
    let time_us = match args.repeat {
        Some(n) => Some(median_pass_us(&plan, &x, n)?),
        None => None,
    };
    let output = &activations
        .last()
        .expect("run yields at least one activation")
        .output;
    if let Some(path) = &args.output {
        npy::write(path, output).map_err(|source| CliError::Write {
            path: path.clone(),
            source,
        })?;
    }
    if args.json {
        let mut value = json!({
            "input_shape": x.shape(),
            "output_shape": output.shape(),
            // Written from the array as the JSON is (`WithArrays`).
            "output": Value::Null,
            "layers": activations.iter().map(layer_json).collect::<Vec<_>>(),
        });
        if let Some(t) = time_us {
            // To the nanosecond: more digits would be noise.
            value["time_us"] = json_number((t * 1e3).round() / 1e3);
        }
        let arrays = vec![("output", output.view())];
        return Ok(json_text(&WithArrays {
            object: &value,
            arrays,
        }));
    }
    let mut out = format!(
        "input  {:?}\noutput {:?}\n{output:.6}\n\nlayer outputs:\n",
        x.shape(),
        output.shape()
    );
    for a in &activations {
        let ActivationStats {
            mean,
            std,
            zero_fraction,
        } = a.stats();
        let _ = writeln!(
            out,
            "  {:<12} {:<52} mean {mean:>9.5}  std {std:>9.5}  zeros {:>5.1}%",
            escape(&a.path),
            escape(&a.repr),
            100.0 * zero_fraction
        );
    }
    if let (Some(t), Some(n)) = (time_us, args.repeat) {
        let _ = writeln!(out, "\ntime per pass: {t:.3} us (median of {n})");
    }
    Ok(out)
}

/// The median wall time of one pass over `n` passes, in microseconds.
///
/// Every pass keeps every layer's output, as `run` does, but writes into buffers sized by a first,
/// untimed pass, so a timed pass allocates nothing.
fn median_pass_us(plan: &ForwardPlan, x: &ArrayD<f32>, n: u64) -> Result<f64, CliError> {
    let mut buffers = ForwardBuffers::default();
    plan.run_reusing(&mut buffers, x)?;
    let mut times = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let start = Instant::now();
        let outputs = plan.run_reusing(&mut buffers, x)?;
        std::hint::black_box(outputs);
        times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    Ok(median(&mut times))
}

fn layer_json(a: &Activation) -> Value {
    let s = a.stats();
    json!({
        "path": a.path,
        "repr": a.repr,
        "shape": a.output.shape(),
        "mean": json_number(s.mean),
        "std": json_number(s.std),
        "absmax": json_number(f64::from(a.absmax())),
        "zero_fraction": s.zero_fraction,
    })
}

/// `forward` on a family checkpoint: tokens in, every module boundary out.
#[expect(
    clippy::too_many_lines,
    reason = "one straight pass: tokens, run, top-k, pooling, then JSON or text"
)]
fn run_family(
    args: &ForwardArgs,
    model: &Model,
    family: Family,
    config: &Config,
    source: &Source,
) -> Result<String, CliError> {
    let folder = source.folder;
    if args.text.is_empty() && args.tokens.is_empty() {
        return Err(CliError::Arguments(format!(
            "{}: a {family:?} checkpoint runs on text or token ids: give --text \"...\" or --tokens 1,2,3",
            args.model.model
        )));
    }
    let tokenizer = if args.text.is_empty() {
        source.tokenizer(&args.model.model).ok()
    } else {
        Some(source.tokenizer(&args.model.model)?)
    };
    let sequences = sequences(args, tokenizer.as_ref())?;
    let batch = Batch::new(&sequences, 0)?;
    fetch_said(model, &all_ids(model), "")?;
    // `--zero`: the run is the edited model's; the unedited one is the baseline.
    let specs = probes::zero_specs(args)?;
    let edited = (!specs.is_empty())
        .then(|| probes::zeroed(model, &specs))
        .transpose()?;
    let plan = Plan::new(family, edited.as_ref().unwrap_or(model), config)?;
    let mut probe = Probe::new(probes::want(args, family));
    let pass = plan.run_probed(&batch, &mut probe)?;
    let baseline = if edited.is_some() && plan.is_causal() {
        let unedited = Plan::new(family, model, config)?;
        Some(probes::baseline(&unedited, &batch, &pass, args.top_k)?)
    } else {
        None
    };
    let report = probes::Report::new(args, &plan, (&pass, probe), baseline)?;
    let time_us = match args.repeat {
        // What a probed run costs: the pass with its probes, and the lens's head products.
        Some(n) if probes::asked(args) => {
            let mut probe = Probe::new(probes::want(args, family));
            let mut last = Some(plan.run_probed(&batch, &mut probe)?);
            Some(median_us(n, || {
                let again = last.take().expect("put back after each pass");
                last = Some(probes::probed_pass(args, &plan, &batch, &mut probe, again)?);
                Ok::<_, CliError>(())
            })?)
        }
        Some(n) => {
            // Each pass writes into the buffers of the one before, as the app's re-runs do.
            let mut last = Some(plan.run(&batch)?);
            Some(median_us(n, || {
                let pass = plan.rerun(&batch, last.take().expect("put back after each pass"))?;
                last = Some(pass);
                Ok::<_, families::FamilyError>(())
            })?)
        }
        None => None,
    };
    if let Some(path) = &args.output {
        npy::write(path, &pass.output).map_err(|source| CliError::Write {
            path: path.clone(),
            source,
        })?;
    }
    let top_k: Vec<Vec<predict::Candidate>> = if plan.is_causal() && pass.output.ndim() == 3 {
        batch
            .lens
            .iter()
            .enumerate()
            .map(|(b, &n)| {
                let row = pass.output.slice(ndarray::s![b, n - 1, ..]);
                predict::top_k(&row.to_vec(), args.top_k)
            })
            .collect()
    } else {
        Vec::new()
    };
    let pooling = if family.is_causal() {
        None
    } else {
        Pooling::detect(folder)?
    };
    let embedding = pooling.map(|p| p.embed(&pass.output, &batch.lens));
    let token_text = |id: u32| tokenizer.as_ref().and_then(|t| t.token(id));
    if args.json {
        let mut value = json!({
            "tokens": sequences,
            "output_shape": pass.output.shape(),
            // Written from the array as the JSON is (`WithArrays`).
            "output": Value::Null,
            "layers": pass.activations.iter().map(layer_json).collect::<Vec<_>>(),
        });
        if !top_k.is_empty() {
            let lists: Vec<Value> = top_k
                .iter()
                .map(|list| {
                    Value::Array(
                        list.iter()
                            .map(|c| {
                                json!({
                                    "id": c.id,
                                    "token": token_text(c.id),
                                    "logit": json_number(f64::from(c.logit)),
                                    "prob": json_number(f64::from(c.prob)),
                                })
                            })
                            .collect(),
                    )
                })
                .collect();
            // One sequence: its list; a batch: one list per sequence.
            value["top_k"] = match <[Value; 1]>::try_from(lists) {
                Ok([one]) => one,
                Err(lists) => Value::Array(lists),
            };
        }
        let mut arrays = vec![("output", pass.output.view())];
        if let Some(e) = &embedding {
            value["embedding"] = Value::Null;
            arrays.push(("embedding", e.view().into_dyn()));
        }
        if !pass.experts.is_empty() {
            value["experts"] = json!(pass.experts);
        }
        if let Some(n) = args.generate {
            let start = Instant::now();
            let g = plan.generate(&sequences[0], n as usize, &config.eos_ids(), &mut |_| {})?;
            // The prompt's pass and every step, to the nanosecond.
            let time_us = (start.elapsed().as_secs_f64() * 1e9).round() / 1e3;
            value["generated"] = json!({
                "ids": g.ids,
                "text": tokenizer.as_ref().and_then(|t| t.decode(&g.ids)),
                "stop": stop_name(g.stop),
                "time_us": json_number(time_us),
            });
        }
        if !source.gguf.is_empty() {
            let text = |key| match gguf_config::get(source.gguf, key) {
                Some(gguf::Value::String(s)) => Value::from(s.as_str()),
                _ => Value::Null,
            };
            value["architecture"] = text("general.architecture");
            value["tokenizer"] = text("tokenizer.ggml.model");
        }
        if let Some(t) = time_us {
            value["time_us"] = json_number((t * 1e3).round() / 1e3);
        }
        report.json(&mut value, &token_text);
        return Ok(json_text(&WithArrays {
            object: &value,
            arrays,
        }));
    }
    let mut out = String::new();
    for (b, s) in sequences.iter().enumerate() {
        let _ = writeln!(out, "tokens[{b}] {s:?}");
    }
    let _ = writeln!(out, "output {:?}", pass.output.shape());
    for (b, list) in top_k.iter().enumerate() {
        let _ = writeln!(out, "\nnext token after sequence {b}:");
        for c in list {
            let text = token_text(c.id).unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:>8}  {:<20} logit {:>9.4}  p {:.4}",
                c.id,
                format!("{:?}", escape(&text)),
                c.logit,
                c.prob
            );
        }
    }
    if let Some(e) = &embedding {
        let _ = writeln!(out, "\nsentence embedding {:?}\n{e:.6}", e.shape());
    }
    report.text(&mut out, &token_text);
    out.push_str("\nlayer outputs:\n");
    for a in &pass.activations {
        let s = a.stats();
        let _ = writeln!(
            out,
            "  {:<40} {:<22} mean {:>9.5}  std {:>9.5}  absmax {:>9.4}",
            escape(&a.path),
            escape(&a.repr),
            s.mean,
            s.std,
            a.absmax()
        );
    }
    for (i, layer) in pass
        .experts
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
    {
        let per_token: Vec<String> = layer.iter().map(|t| format!("{t:?}")).collect();
        let _ = writeln!(
            out,
            "  experts of layer {i} per token: {}",
            per_token.join(" ")
        );
    }
    if let (Some(t), Some(n)) = (time_us, args.repeat) {
        let _ = writeln!(out, "\ntime per pass: {t:.3} us (median of {n})");
    }
    if let Some(n) = args.generate {
        out.push_str("\ncontinuation of sequence 0: ");
        // What came before is printed first, so that the continuation shows as it comes.
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
        let mut shown = Shown::default();
        let g = plan.generate(&sequences[0], n as usize, &config.eos_ids(), &mut |id| {
            shown.push(tokenizer.as_ref(), id, &mut stdout);
        })?;
        out = match g.stop {
            Stop::Length => "\n".to_owned(),
            Stop::Eos => "\n(an end-of-sequence token)\n".to_owned(),
            Stop::Positions(p) => {
                format!("\n(stopped: the model has {p} positions, max_position_embeddings)\n")
            }
        };
    }
    Ok(out)
}

/// How a generation stopped, in the JSON.
fn stop_name(stop: Stop) -> &'static str {
    match stop {
        Stop::Length => "length",
        Stop::Eos => "eos",
        Stop::Positions(_) => "positions",
    }
}

/// The generated text printed so far: each new id decodes the whole continuation again (a
/// byte-level BPE token may hold half a character) and prints what is new once it is whole.
#[derive(Default)]
struct Shown {
    ids: Vec<u32>,
    bytes: usize,
}

impl Shown {
    fn push(&mut self, tokenizer: Option<&TextTokenizer>, id: u32, to: &mut impl std::io::Write) {
        self.ids.push(id);
        let Some(text) = tokenizer.and_then(|t| t.decode(&self.ids)) else {
            let _ = write!(to, "{id} ");
            let _ = to.flush();
            return;
        };
        if text.ends_with('\u{fffd}') || !text.is_char_boundary(self.bytes) {
            return;
        }
        let _ = write!(to, "{}", escape(&text[self.bytes..]));
        let _ = to.flush();
        self.bytes = text.len();
    }
}

/// The batch's id sequences: each `--text` tokenized, or each `--tokens` list parsed.
fn sequences(
    args: &ForwardArgs,
    tokenizer: Option<&TextTokenizer>,
) -> Result<Vec<Vec<u32>>, CliError> {
    if !args.text.is_empty() {
        let tokenizer = tokenizer.expect("opened when --text is given");
        return args
            .text
            .iter()
            .map(|t| tokenizer.encode(t).map_err(CliError::from))
            .collect();
    }
    args.tokens
        .iter()
        .map(|list| {
            list.split(',')
                .map(|id| {
                    id.trim().parse::<u32>().map_err(|_| {
                        CliError::Arguments(format!("--tokens {list}: {id:?} is not a token id"))
                    })
                })
                .collect()
        })
        .collect()
}

/// The median wall time of `n` runs of `pass`, in microseconds.
fn median_us<E: Into<CliError>>(
    n: u64,
    mut pass: impl FnMut() -> Result<(), E>,
) -> Result<f64, CliError> {
    let mut times = Vec::with_capacity(n.min(1 << 20) as usize);
    for _ in 0..n {
        let start = Instant::now();
        pass().map_err(Into::into)?;
        times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    Ok(median(&mut times))
}

/// The median of `times` (sorted in place).
fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    let mid = times.len() / 2;
    if times.len() % 2 == 1 {
        times[mid]
    } else {
        f64::midpoint(times[mid - 1], times[mid])
    }
}
