//! The app's one state, grouped by what each part is about: the document (model and history), the
//! tree view, the tensor pane, the forward panel, the cache of statistics, and the mode (dialogs).
//! Only `update` changes it; the screen only reads it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::compare::Side;
use super::error::AppError;
use super::field::Field;
use super::init_dialog::InitDialog;
use super::job::{
    ForwardResult, Input, Optimizer, Part, PartDetail, PartKey, Runs, Summary, SummaryKey,
};
use super::outline::{NodeKind, Outline};
use super::picker::Picker;
use super::probe_view::ProbeCursor;
use super::scroll::Scroll;
use super::theme::Theme;
use super::trajectory::Trajectory;
use super::tree_view::TreeView;
use crate::io::pickle::Scalar;
use crate::model::{Model, ParamId};
use crate::tensor::Tensor;
use crate::tensor::decode::Undecodable;
use crate::tensor::quantized::Quantized;

/// The text a family checkpoint's panel starts with.
pub const SAMPLE_TEXT: &str = "The quick brown fox jumps over the lazy dog.";

/// Which pane takes the movement keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// The module tree.
    Tree,
    /// The tensor pane (or the forward panel in its place).
    Tensor,
}

/// How the selected tensor is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// A scrollable grid of numbers.
    Values,
    /// The distribution of the values.
    Histogram,
    /// The matrix as colours (or signed glyphs), with a cursor.
    Heatmap,
    /// Which file holds which chunk of a distributed checkpoint's tensor.
    Shards,
    /// The optimizer's state beside the parameter, and its next update.
    Optimizer,
    /// The tensor's figures across a run's checkpoints.
    Trajectory,
}

impl View {
    /// Every view, in the order `v` cycles and the tabs list them (those that apply).
    pub const ALL: [View; 6] = [
        View::Values,
        View::Histogram,
        View::Heatmap,
        View::Shards,
        View::Optimizer,
        View::Trajectory,
    ];

    /// The tab title.
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            View::Values => "values",
            View::Histogram => "histogram",
            View::Heatmap => "heatmap",
            View::Shards => "shards",
            View::Optimizer => "optim",
            View::Trajectory => "trajectory",
        }
    }
}

/// A parameter's optimizer block, as far as the worker got.
pub enum OptimizerBlock {
    /// Asked for, not come yet.
    Asked,
    /// The state cannot be told (a count or a shape that does not fit, a damaged chunk).
    Failed(AppError),
    /// The state and next update, or `None`: the optimizer keeps none for this parameter.
    Ready(Option<Box<Optimizer>>),
}

/// The cursor of the values grid and the heatmap within the shown slice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grid {
    /// The slice of an N-D tensor (flat index over its leading dimensions).
    pub slice: usize,
    /// Cursor row and first row on screen.
    pub rows: Scroll,
    /// Cursor column and first column on screen.
    pub cols: Scroll,
}

/// A question waiting for y or n.
#[derive(Debug, Clone, PartialEq)]
pub enum Question {
    /// Overwrite this existing file (maybe the source)?
    Overwrite(PathBuf),
    /// Quit although re-inits are not written?
    QuitUnsaved,
    /// Open this model although re-inits are not written?
    OpenUnsaved(String),
}

/// A long message shown whole, wrapped, until dismissed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Popup {
    /// Whether it tells of an error (else a notice, such as a load's warnings).
    pub error: bool,
    /// The text, raw: escaped where it is laid out (`layout::popup_lines`).
    pub text: String,
    /// Lines scrolled past.
    pub offset: usize,
}

/// What has the keyboard besides the two panes.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Moving around the panes.
    Browse,
    /// Typing the tree filter.
    Filter(Field),
    /// The re-initialize dialog.
    Init(InitDialog),
    /// Typing the path to write to.
    Write(Field),
    /// A yes/no question.
    Ask(Question),
    /// Choosing another model.
    Open(Picker),
    /// The help screen, scrolled by this many lines.
    Help(usize),
    /// A long error, whole.
    Popup(Popup),
    /// Typing the text a family checkpoint runs on.
    Text(Field),
}

/// The forward panel.
#[derive(Debug)]
pub struct ForwardPanel {
    /// Whether the panel is shown in place of the tensor pane.
    pub open: bool,
    /// The input of the next run.
    pub input: Input,
    /// The text of the next run, for a family checkpoint.
    pub text: String,
    /// The last run's result, or why it failed.
    pub result: Option<Result<ForwardResult, AppError>>,
    /// Layers done and layers in all, while a run is on the worker.
    pub running: Option<(usize, usize)>,
    /// Bumped per run, so that the reply of an outdated run is dropped.
    pub generation: u64,
    /// The layer table's window.
    pub scroll: Scroll,
    /// The probe view and its cursor.
    pub probe: ProbeCursor,
    /// The most likely next token before the last `z` edit (raw text, probability), shown
    /// beside the one after it.
    pub before: Option<(String, f32)>,
}

/// A re-initialization that `u` can take back.
#[derive(Clone)]
pub struct InitRecord {
    /// What was done, for the status line: `xavier_uniform on 0.block1`, `zeros on 2.weight`.
    pub label: String,
    /// Each tensor written: its id, its version before and after, and its old values.
    pub changes: Vec<(ParamId, u64, u64, Tensor)>,
}

/// A line for the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Something done: raw text (names as the file spells them), escaped where the status bar
    /// draws it, so no caller can forget to.
    Info(String),
    /// Something refused or failed: raw, as [`Message::Info`].
    Error(String),
}

/// A re-init, a write or a load on the worker, shown in the status bar as `… working`.
#[derive(Debug, Clone, PartialEq)]
pub struct Busy {
    /// What runs: `re-initializing: xavier_uniform on 2.weight`, `writing x.safetensors` (raw:
    /// escaped where drawn).
    pub what: String,
}

/// The model and its history: what was loaded, the re-inits since, and what was written.
pub struct Doc {
    /// The model being explored, with any re-inits applied.
    pub model: Model,
    /// What the model was loaded from, as the user typed it (`demo:mlp`, a path).
    pub source: String,
    /// The source file, when the model came from one (never overwritten without asking).
    pub source_path: Option<PathBuf>,
    /// The tree, flattened.
    pub outline: Outline,
    /// Re-inits that can be undone, the last on top.
    pub undo: Vec<InitRecord>,
    /// How many re-inits the undo stack held when the model was last written, or `None` when it
    /// was not written or that state can no longer be reached by undoing.
    pub saved_at: Option<usize>,
    /// Counts the loads, so the worker knows when a kept forward plan belongs to another model.
    pub load: u64,
    /// How `f` runs the model: as a chain, as its family's code, or not.
    pub runs: Runs,
    /// Whether the model came from a GGUF file, whose header lists dimensions innermost first.
    pub from_gguf: bool,
    /// The checkpoint's plain values when they hold an optimizer's `param_groups`: what the
    /// optimizer view reads.
    pub optimizer: Option<Arc<[(String, Scalar)]>>,
}

impl Doc {
    /// Whether quitting would lose re-inits: the model differs both from what was loaded and
    /// from what was last written.
    #[must_use]
    pub fn unsaved(&self) -> bool {
        !self.undo.is_empty() && self.saved_at != Some(self.undo.len())
    }

    /// Where `w` proposes to write: `x.safetensors` -> `x.reinit.safetensors` beside it; a demo
    /// -> `NAME.reinit.safetensors` here.
    #[must_use]
    pub fn default_output(&self) -> String {
        if let Some(name) = self.source.strip_prefix("demo:") {
            return format!("{name}.reinit.safetensors");
        }
        let path = std::path::Path::new(&self.source);
        let stem = path
            .file_stem()
            .map_or_else(|| "model".to_owned(), |s| s.to_string_lossy().into_owned());
        let stem = stem.strip_suffix(".safetensors").unwrap_or(&stem);
        path.with_file_name(format!("{stem}.reinit.safetensors"))
            .display()
            .to_string()
    }

    /// The model's parameter count, as the outline computed it once.
    #[must_use]
    pub fn total_params(&self) -> usize {
        match self.outline.nodes.first().map(|n| &n.kind) {
            Some(NodeKind::Module { params }) => *params,
            _ => 0,
        }
    }
}

/// The tensor pane: the view, its cursor, and the module table's cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorPane {
    /// The tensor view.
    pub view: View,
    /// The values grid and heatmap cursor of the selected tensor.
    pub grid: Grid,
    /// Whether the histogram's bars are log-scaled counts.
    pub log_counts: bool,
    /// Whether the heatmap spans ±absmax rather than the 99th percentile of |x|.
    pub heat_absmax: bool,
    /// The module table's cursor.
    pub module: Scroll,
}

/// Statistics and histograms computed so far.
#[derive(Default)]
pub struct Cache {
    /// By tensor version.
    pub summaries: HashMap<SummaryKey, Result<Summary, Undecodable>>,
    /// The summary being computed on the worker, and how far it got (0 to 1).
    pub pending: Option<(SummaryKey, f64)>,
    /// Optimizer blocks by parameter version.
    pub optimizer: HashMap<SummaryKey, OptimizerBlock>,
}

impl Cache {
    /// The summary of `id` at `version`, if done and readable.
    #[must_use]
    pub fn get(&self, id: ParamId, version: u64) -> Option<&Summary> {
        self.summaries
            .get(&(id, version))
            .and_then(|s| s.as_ref().ok())
    }
}

/// The terminal: its colours and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Screen {
    /// Colours for this terminal.
    pub theme: Theme,
    /// Columns and rows.
    pub size: (u16, u16),
}

/// The whole state of the app.
pub struct App {
    /// The model and its history.
    pub doc: Doc,
    /// The tree pane.
    pub tree: TreeView,
    /// The tensor pane.
    pub tensor: TensorPane,
    /// The forward panel.
    pub forward: ForwardPanel,
    /// Statistics computed so far.
    pub cache: Cache,
    /// Dialogs and prompts.
    pub mode: Mode,
    /// The pane with the focus.
    pub focus: Focus,
    /// A re-init, a write or a load on the worker.
    pub busy: Option<Busy>,
    /// The status line.
    pub message: Option<Message>,
    /// The terminal.
    pub screen: Screen,
    /// The last re-init dialog submitted, whose choices the next one starts from.
    pub last_init: Option<InitDialog>,
    /// How the model was opened (for `--arch` and the seed of the next open).
    pub seed: u64,
    /// A second model compared with this one.
    pub compare: super::compare::Compare,
    /// The codes or scales of a quantized weight, when the pane shows them.
    pub parts: super::quantized::Parts,
    /// A run's checkpoints followed (`--trajectory`).
    pub trajectory: Option<Trajectory>,
}

impl App {
    /// The selected node's tensor id, if it is a parameter.
    #[must_use]
    pub fn selected_param(&self) -> Option<ParamId> {
        self.doc.outline.nodes[self.tree.selected()].param()
    }

    /// The selected node's path.
    #[must_use]
    pub fn selected_path(&self) -> &str {
        &self.doc.outline.nodes[self.tree.selected()].path
    }

    /// The quantized weight `id` is dequantized from, if it is one.
    #[must_use]
    pub fn quantized(&self, id: ParamId) -> Option<&Quantized> {
        self.doc.model.store.get(id).quantization()
    }

    /// The key of the codes, scales or zero points of `id` the pane shows, when it shows them: not
    /// when the part chosen is the values, the tensor is not quantized (or has no zero points, when
    /// they are chosen), or B or Δ is shown.
    #[must_use]
    pub fn part_key(&self, id: ParamId) -> Option<PartKey> {
        let part = self.parts.shown;
        let on_a = self
            .compare
            .loaded
            .as_ref()
            .is_none_or(|c| c.side == Side::A);
        // A weight without zero points shows its values when they are the part chosen.
        let has = |q: &Quantized| part != Part::Zeros || q.has_zeros();
        (part != Part::Values && on_a && self.quantized(id).is_some_and(has))
            .then(|| ((id, self.doc.model.store.version(id)), part))
    }

    /// The codes or scales of `id` the pane shows, when it shows them (`Err` while the worker
    /// computes them).
    #[must_use]
    pub fn part_shown(&self, id: ParamId) -> Option<Result<&PartDetail, &'static str>> {
        self.part_key(id).map(|key| self.parts.get(key))
    }

    /// The views the tensor pane offers for tensor `id`: values, histogram and heatmap; its
    /// chunks when it is in pieces of a distributed checkpoint; its optimizer block when the
    /// checkpoint holds an optimizer's state; its figures when a run is followed.
    #[must_use]
    pub fn views(&self, id: ParamId) -> Vec<View> {
        let offered = |view: &View| match view {
            View::Values | View::Histogram | View::Heatmap => true,
            View::Shards => !self.doc.model.store.get(id).shards().is_empty(),
            View::Optimizer => self.doc.optimizer.is_some(),
            View::Trajectory => self.trajectory.is_some(),
        };
        View::ALL.into_iter().filter(offered).collect()
    }

    /// The view the tensor pane shows for `id`: the one chosen when it is offered, else values.
    #[must_use]
    pub fn view_of(&self, id: ParamId) -> View {
        let chosen = self.tensor.view;
        if self.views(id).contains(&chosen) {
            chosen
        } else {
            View::Values
        }
    }

    /// The summary of tensor `id` as it is now.
    #[must_use]
    pub fn summary(&self, id: ParamId) -> Option<&Summary> {
        self.cache.get(id, self.doc.model.store.version(id))
    }

    /// The summary of `id` before the last re-init, if that re-init touched `id`.
    #[must_use]
    pub fn summary_before(&self, id: ParamId) -> Option<&Summary> {
        let now = self.doc.model.store.version(id);
        self.doc.undo.last().and_then(|record| {
            record
                .changes
                .iter()
                .find(|(changed, _, after, _)| *changed == id && *after == now)
                .and_then(|(_, before, ..)| self.cache.get(id, *before))
        })
    }

    /// How many rows the module table has: the parameter paths under the selected module.
    #[must_use]
    pub fn module_row_count(&self) -> usize {
        let selected = self.tree.selected();
        let end = self.doc.outline.nodes[selected].end;
        self.doc.outline.params_in(selected..end)
    }

    /// The module table's rows from row `first`: `(path relative to the module, id)` of the
    /// parameter paths under the selected module, in `state_dict` order. The names are borrowed
    /// from the outline and the first row is found without a walk: a module of a million tensors
    /// is drawn a page at a time.
    pub fn module_rows(&self, first: usize) -> impl Iterator<Item = (&str, ParamId)> {
        let selected = self.tree.selected();
        let outline = &self.doc.outline;
        let module = &outline.nodes[selected];
        let from = outline.skip_params(selected, first).min(module.end);
        outline.nodes[from..module.end].iter().filter_map(|n| {
            let local = n
                .path
                .strip_prefix(module.path.as_str())
                .map_or(n.path.as_str(), |rest| rest.trim_start_matches('.'));
            n.param().map(|id| (local, id))
        })
    }
}
