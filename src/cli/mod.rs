//! The command line: clap's types, and one module per subcommand (text or `--json` on stdout).

mod check;
mod diff;
mod diff_adapters;
mod error;
mod export;
mod forward;
mod init;
mod json_arrays;
mod probes;
mod show;
mod trajectory;
mod tree;

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

pub use error::CliError;

use crate::checkpoint::{self, LoadOptions, OpenError, locate, remote};
use crate::families::gguf_tokenizer;
use crate::families::tokenize::{self, TextTokenizer, TokenizeError};
use crate::io::gguf;
use crate::model::{Model, ParamId};
use crate::source::Folder;

/// Explore, re-initialize and run the parameters of neural networks.
///
/// MODEL is demo:mlp, demo:rgnet or demo:shared (the nets of d2l's "parameter management" chapter),
/// a .safetensors checkpoint, a PyTorch .pt/.pth/.bin file (read without running its pickle), a
/// text file holding a model as PyTorch's print(model) shows it, or a checkpoint where it lives:
/// hf://ORG/NAME[@REVISION][/PATH], https://URL, s3://BUCKET/KEY or s3://BUCKET/PREFIX/ (read by ranges).
#[derive(Debug, Parser)]
#[command(
    name = "paramscope",
    version,
    about,
    long_about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do; without one, the interactive app opens.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The app's options, when there is no subcommand.
    #[command(flatten)]
    pub app: AppArgs,
}

/// `paramscope [MODEL]`: the interactive app.
#[derive(Debug, Args)]
pub struct AppArgs {
    /// The model the app opens (default demo:mlp; the others are a key away).
    #[arg(value_name = "MODEL")]
    pub model: Option<String>,
    /// The architecture of a checkpoint, as the text print(model) shows (NAME.arch.txt beside
    /// the checkpoint is used when this is not given).
    #[arg(long, value_name = "FILE")]
    pub arch: Option<PathBuf>,
    /// Open with this parameter or module selected (0.block1.0.bias or [0][1][0].bias).
    #[arg(long, value_name = "NAME")]
    pub select: Option<String>,
    /// The forward pass's input, a float32 or float64 .npy array (default: a random batch).
    #[arg(long, value_name = "X.npy")]
    pub input: Option<PathBuf>,
    /// torch.manual_seed for building a demo and for the random batch.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A second model to compare with: each tree row shows how far its tensor moved (rel_l2).
    #[arg(long, value_name = "MODEL")]
    pub compare: Option<String>,
    /// The base model of a LoRA adapter MODEL, a PEFT folder or a llama.cpp adapter .gguf
    /// (default: the base its adapter_config.json or GGUF metadata names, when that opens).
    #[arg(long, value_name = "MODEL")]
    pub base: Option<String>,
    /// Follow a run's checkpoints (several MODELs, or one folder of checkpoint-N or step_N
    /// subfolders): the module table gains each tensor's drift; the app opens the last one
    /// unless MODEL is given.
    #[arg(long, value_name = "CKPT", num_args = 1..)]
    pub trajectory: Vec<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the module tree as print(model) does, then every parameter in state_dict order.
    Tree(TreeArgs),
    /// Show one parameter: dtype, shape, statistics and values.
    Show(ShowArgs),
    /// Run a forward pass on an .npy input or a random batch.
    Forward(ForwardArgs),
    /// Re-initialize every Linear under a module with torch.nn.init schemes, and save the result.
    Init(InitArgs),
    /// Save the model as a .safetensors file that PyTorch's load_model reads.
    Export(ExportArgs),
    /// Compare two models tensor by tensor: what changed, and by how much.
    Diff(DiffArgs),
    /// Look for broken tensors: NaN/Inf, dead rows or columns, duplicates, outlier columns,
    /// untrained embedding rows, an untied copy of the embedding.
    Check(CheckArgs),
    /// Follow every tensor across a run's checkpoints: norm, drift, step change, NaN/Inf.
    Trajectory(TrajectoryArgs),
}

/// Where the model comes from; shared by every subcommand.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// demo:mlp | demo:rgnet | demo:shared | FILE.safetensors | FILE.pt | ARCH.txt
    #[arg(value_name = "MODEL")]
    pub model: String,
    /// The architecture of a checkpoint, as the text print(model) shows.
    #[arg(long, value_name = "FILE")]
    pub arch: Option<PathBuf>,
    /// torch.manual_seed for every random step: building a demo or an architecture text, an init, a batch.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Take the part of a nested checkpoint under this key as the model (--key model of a
    /// training checkpoint {"model": ..., "optimizer": ..., "epoch": 7}).
    #[arg(long, value_name = "K")]
    pub key: Option<String>,
    /// The base model of a LoRA adapter MODEL (a folder holding adapter_config.json and
    /// adapter_model.safetensors, or a llama.cpp adapter .gguf); default: the base its config or
    /// GGUF metadata names, when that opens. tree and check show the adapter against it; the other
    /// commands use the merged model.
    #[arg(long, value_name = "MODEL")]
    pub base: Option<String>,
}

impl ModelArgs {
    /// Loads the model these arguments name, every value in reach (a remote model's tensors fetched,
    /// a LoRA adapter merged into its base); warnings go to stderr.
    pub fn load(&self) -> Result<Model, CliError> {
        let model = self.load_unfetched()?;
        fetch_said(&model, &all_ids(&model), "")?;
        Ok(model)
    }

    /// [`ModelArgs::load`] without fetching a remote model's tensors or putting a distributed
    /// checkpoint's together (but a LoRA adapter's base, whose values its merge reads), for a
    /// command that reads only the tensors it needs.
    pub fn load_unfetched(&self) -> Result<Model, CliError> {
        merged(self.open()?)
    }

    /// [`ModelArgs::load`], keeping where the architecture came from, and an adapter apart from
    /// its base.
    pub fn open(&self) -> Result<checkpoint::Loaded, CliError> {
        let options = LoadOptions {
            arch: self.arch.as_deref(),
            seed: self.seed,
            array_items: None,
        };
        let loaded = checkpoint::open_adapted(
            &self.model,
            &options,
            self.key.as_deref(),
            self.base.as_deref(),
        )?;
        for warning in &loaded.warnings {
            eprintln!("warning: {}", crate::text::escape(warning));
        }
        Ok(loaded)
    }
}

/// The model `loaded` opened, with its adapter merged in when it was one (its base's tensors
/// fetched for that); a remote model's other tensors are left to fetch.
fn merged(loaded: checkpoint::Loaded) -> Result<Model, CliError> {
    let mut model = loaded.model;
    if let Some(adapter) = &loaded.adapter {
        fetch_said(&model, &all_ids(&model), "")?;
        checkpoint::adapter::merge_into(&mut model, adapter)?;
    }
    Ok(model)
}

/// The exit code of `--exit-code` when the models differ (1 is taken by errors, as in git).
const DIFFERENT: u8 = 3;

/// A figure in a table cell: scientific notation, "-" when undefined.
fn cell(v: f64) -> String {
    if v.is_nan() {
        "nan".to_owned()
    } else {
        format!("{v:.3e}")
    }
}

/// The `"summary"` object both diffs give: how many entries were the same, changed, only on one
/// side, or could not be compared.
fn summary_json([same, changed, only_a, only_b, mismatched]: [usize; 5]) -> serde_json::Value {
    serde_json::json!({
        "same": same,
        "changed": changed,
        "only_a": only_a,
        "only_b": only_b,
        "mismatched": mismatched,
    })
}

/// Every tensor of `model`.
fn all_ids(model: &Model) -> Vec<ParamId> {
    (0..model.store.len()).map(ParamId).collect()
}

/// Fetches the tensors `ids` of a remote `model` that are not in yet, after saying on stderr how many
/// and how many bytes (with `note` after; nothing is said when nothing is to fetch), and puts a
/// distributed checkpoint's sharded ones together.
fn fetch_said(model: &Model, ids: &[ParamId], note: &str) -> Result<(), CliError> {
    let (bytes, tensors) = checkpoint::pending(model, ids);
    if tensors > 0 {
        eprintln!(
            "fetching {tensors} tensor(s), {bytes} bytes ({:.1} MiB){note}",
            bytes as f64 / f64::from(1 << 20)
        );
    }
    checkpoint::fetch_these(model, ids)?;
    Ok(())
}

/// `paramscope tree`.
#[derive(Debug, Args)]
pub struct TreeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// `paramscope show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// A state_dict key (0.block1.0.bias) or the chapter's indexing ([0][1][0].bias).
    #[arg(value_name = "NAME")]
    name: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// How many values to print, in C order.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    limit: usize,
    /// Show the optimizer's tensor for this parameter instead of its values: exp_avg,
    /// exp_avg_sq, momentum_buffer, or update (what step() would subtract with a zero gradient).
    #[arg(long, value_name = "STATE", value_parser = ["exp_avg", "exp_avg_sq", "momentum_buffer", "update"])]
    state: Option<String>,
    /// For a quantized weight, the stored codes instead of the dequantized values.
    #[arg(long)]
    raw: bool,
}

/// `paramscope forward`.
#[derive(Debug, Args)]
pub struct ForwardArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Text for a BERT, GPT-2, Llama, Mistral or Qwen2 checkpoint, tokenized with its tokenizer.json; repeat for a batch.
    #[arg(long, value_name = "TEXT", conflicts_with_all = ["input", "batch", "tokens"])]
    text: Vec<String>,
    /// Token ids for such a checkpoint, comma-separated (1,5,9); repeat for a batch.
    #[arg(long, value_name = "IDS", conflicts_with_all = ["input", "batch"])]
    tokens: Vec<String>,
    /// Continue the (first) text of a causal LM by N tokens, greedily, printing them as they come.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    generate: Option<u64>,
    /// How many next tokens a causal LM lists.
    #[arg(long, value_name = "K", default_value_t = 10)]
    top_k: usize,
    /// The input, a float32 or float64 .npy array whose last dimension is the model's input width.
    #[arg(long, value_name = "X.npy")]
    input: Option<PathBuf>,
    /// Draw the input as torch.rand(B, in_features) from --seed (without --input: a batch of 2, as
    /// the app runs).
    #[arg(long, value_name = "B", conflicts_with = "input", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    batch: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also write the output to this .npy file.
    #[arg(short = 'o', long = "output", value_name = "OUT.npy")]
    output: Option<PathBuf>,
    /// Time N more passes (reusing buffers) and report the median time of one, excluding load.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    repeat: Option<u64>,
    /// What the pass also looks at.
    #[command(flatten)]
    probes: ProbeArgs,
}

/// `forward`'s probes: the logit lens, attention maps, zero-and-rerun.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The logit lens: the final norm and LM head applied to every layer's output, top-k per position.
    #[arg(long)]
    lens: bool,
    /// Each layer's and head's attention entropy and first-token (sink) share per query, of text 0.
    #[arg(long)]
    attention: bool,
    /// --attention, with the weights themselves ([heads][queries][keys]) in JSON.
    #[arg(long)]
    attention_full: bool,
    /// Set PATH[i,j], PATH[i,:] or PATH[:,j] (indices as stored) to 0 for this run, and report the
    /// change of the next token against the unedited run; repeatable.
    #[arg(long, value_name = "PATH[i,j]")]
    zero: Vec<String>,
}

/// `paramscope init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The module whose Linear layers are re-initialized (dotted or [i] indexing); default: the whole model.
    #[arg(long, value_name = "PATH", default_value = "")]
    at: String,
    /// The scheme for each weight, NAME[:k=v,...], e.g. normal:std=0.01 or xavier_uniform.
    #[arg(long, value_name = "SCHEME")]
    weight: String,
    /// The scheme for each bias; without it, biases are left as they are.
    #[arg(long, value_name = "SCHEME")]
    bias: Option<String>,
    /// Where to save the result.
    #[arg(short = 'o', long = "output", value_name = "OUT.safetensors")]
    output: PathBuf,
}

/// `paramscope export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Where to save the model.
    #[arg(short = 'o', long = "output", value_name = "OUT.safetensors")]
    output: PathBuf,
    /// Write GGUF quantized tensors as F32 (their dequantized values); without it they are refused.
    #[arg(long)]
    dequantize: bool,
    /// Write a LoRA adapter's base with the adapter merged in, as PEFT's merge_and_unload.
    #[arg(long)]
    merge: bool,
}

/// `paramscope diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The first model (any MODEL paramscope opens).
    #[arg(value_name = "A")]
    a: String,
    /// The second model; its format may differ from A's.
    #[arg(value_name = "B")]
    b: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Rename a name prefix in both models before matching (--map model.= drops "model.").
    #[arg(long, value_name = "FROM=TO")]
    map: Vec<crate::compare::diff::Rename>,
    /// Exit with 3 when the models differ (errors still exit 1).
    #[arg(long)]
    exit_code: bool,
    /// The base of A and B when they are LoRA adapters: each is compared merged into it.
    #[arg(long, value_name = "MODEL")]
    base: Option<String>,
}

/// `paramscope check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also give each 2-D weight's spectral norm, stable rank and power-law alpha.
    #[arg(long)]
    spectral: bool,
    /// Also run a text through a Llama-style model and report its super weights (the down_proj
    /// weights behind outputs above 50).
    #[arg(long)]
    super_weights: bool,
    /// The text --super-weights runs (default: "Apple Inc. is a worldwide tech company.").
    #[arg(
        long,
        value_name = "TEXT",
        requires = "super_weights",
        conflicts_with = "tokens"
    )]
    text: Option<String>,
    /// Token ids --super-weights runs instead of the text, comma-separated.
    #[arg(long, value_name = "IDS", requires = "super_weights")]
    tokens: Option<String>,
}

/// `paramscope trajectory`.
#[derive(Debug, Args)]
pub struct TrajectoryArgs {
    /// The checkpoints in order (any MODELs, formats may differ), or one folder of checkpoint-N
    /// or step_N subfolders (sorted by N).
    #[arg(value_name = "CKPT", required = true)]
    checkpoints: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// What a subcommand prints on stdout, the exit code it asks for, and (for `tree`) the model it
/// opened, for the binary to leave unfreed.
pub struct Output {
    /// The text for stdout.
    pub stdout: String,
    /// 0, or `diff --exit-code`'s 3 when the models differ.
    pub code: u8,
    /// The model the text was made from, handed back unfreed (by `tree`): the binary ends
    /// without freeing it, since the end of the process frees it at once, where freeing the
    /// 16,000 shards of a distributed checkpoint one by one took half a millisecond. A library
    /// caller just drops it.
    pub opened: Option<checkpoint::Loaded>,
}

/// Runs one subcommand and returns what it prints on stdout; the error is the one line to show
/// after `error: `.
pub fn run(command: Command) -> Result<Output, CliError> {
    let stdout = match command {
        Command::Tree(args) => return tree::run(&args),
        Command::Show(args) => show::run(&args),
        Command::Forward(args) => forward::run(&args),
        Command::Init(args) => init::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Trajectory(args) => trajectory::run(&args),
        Command::Diff(args) => return diff::run(&args),
    }?;
    Ok(Output {
        stdout,
        code: 0,
        opened: None,
    })
}

/// Where a family checkpoint's tokenizer comes from.
struct Source<'a> {
    /// The folder of `tokenizer.json` (and a sentence-transformers pooling).
    folder: &'a Path,
    /// A GGUF file's metadata (empty for other formats): the tokenizer is the file's own.
    gguf: &'a [(String, gguf::Value)],
    /// The remote folder the checkpoint was read from, whose `tokenizer.json` is fetched whole.
    remote: Option<&'a dyn Folder>,
}

impl Source<'_> {
    /// The tokenizer of the checkpoint `spec` names: its folder's `tokenizer.json` (fetched whole
    /// from a remote folder), or a GGUF file's own vocabulary.
    fn tokenizer(&self, spec: &str) -> Result<TextTokenizer, CliError> {
        if let Some(folder) = self.remote {
            let name = Path::new(folder.name());
            let bytes = remote::beside(folder, "tokenizer.json", tokenize::MAX_TOKENIZER_BYTES)
                .map_err(OpenError::from)?
                .ok_or_else(|| TokenizeError::Absent(name.to_owned()))?;
            return Ok(TextTokenizer::from_json(
                &bytes,
                name.join("tokenizer.json"),
            )?);
        }
        if self.gguf.is_empty() {
            return Ok(TextTokenizer::open(self.folder)?);
        }
        let path = Path::new(spec);
        let file = if path.is_dir() {
            locate::checkpoint_in(path).map_or_else(|_| path.to_owned(), |l| l.file)
        } else {
            path.to_owned()
        };
        Ok(gguf_tokenizer::open(&file)?)
    }
}

/// JSON text followed by a newline, with every unsafe character (controls, bidi, format
/// characters: [`crate::text::is_unsafe`]) inside strings written as `\uXXXX`. Written straight
/// from `value` (no intermediate `Value` tree), and copied again only when something is escaped.
fn json_text(value: &impl serde::Serialize) -> String {
    let raw = serde_json::to_string_pretty(value).expect("paramscope's JSON always serializes");
    let mut text = match crate::text::escape_json(&raw) {
        std::borrow::Cow::Borrowed(_) => raw,
        std::borrow::Cow::Owned(escaped) => escaped,
    };
    text.push('\n');
    text
}

/// A number for JSON: NaN and ±Inf (which JSON cannot hold) become null.
fn json_number(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}
