//! The app's one state: the model, what is selected and open, the dialogs, the caches of
//! statistics, and the work handed to the worker. Only `update` changes it; the screen only reads it.

use std::collections::HashMap;
use std::path::PathBuf;

use ndarray::ArrayD;

use super::outline::Outline;
use super::ui::theme::Theme;
use super::worker::{ForwardResult, Job, Summary};
use crate::model::init::InitScheme;
use crate::model::{Model, ParamId};
use crate::tensor::Tensor;

/// A cache key: a tensor at one version; a re-init bumps the version, so old entries stay valid
/// (they are the "before" of a re-init).
pub type SummaryKey = (ParamId, u64);

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
    /// The matrix as colours, two pixels per cell.
    Heatmap,
}

impl View {
    /// The view after this one.
    #[must_use]
    pub fn next(self) -> View {
        match self {
            View::Values => View::Histogram,
            View::Histogram => View::Heatmap,
            View::Heatmap => View::Values,
        }
    }

    /// The tab title.
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            View::Values => "values",
            View::Histogram => "histogram",
            View::Heatmap => "heatmap",
        }
    }
}

/// The values grid's cursor and scroll position within the shown slice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grid {
    /// The slice of an N-D tensor (flat index over its leading dimensions).
    pub slice: usize,
    /// Cursor row.
    pub row: usize,
    /// Cursor column.
    pub col: usize,
    /// First row on screen.
    pub row_offset: usize,
    /// First column on screen.
    pub col_offset: usize,
}

/// One field of the init dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitField {
    /// The scheme, chosen with ←/→.
    Scheme,
    /// The scheme's argument at this position, typed.
    Arg(usize),
    /// Whether weights are re-initialized.
    Weights,
    /// Whether biases are re-initialized.
    Biases,
    /// The seed, typed.
    Seed,
}

/// The re-initialize dialog.
#[derive(Debug, Clone, PartialEq)]
pub struct InitDialog {
    /// The module path the plan applies to.
    pub path: String,
    /// Whether that module is a single layer (its own weight and bias, no submodules), so that
    /// the targets can be named as tensors: `2.weight`.
    pub layer: bool,
    /// Index into [`SCHEMES`].
    pub scheme: usize,
    /// The scheme's arguments as `(name, text being edited)`, PyTorch's defaults to start.
    pub args: Vec<(&'static str, String)>,
    /// Re-initialize weights.
    pub weights: bool,
    /// Re-initialize biases.
    pub biases: bool,
    /// The seed as typed.
    pub seed: String,
    /// The field with the cursor.
    pub field: usize,
    /// Why the last submit was refused.
    pub error: Option<String>,
}

/// Every scheme of the foundation, in the order the dialog cycles through them.
pub const SCHEMES: [&str; 13] = [
    "default",
    "zeros",
    "ones",
    "constant",
    "uniform",
    "normal",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "trunc_normal",
    "orthogonal",
    "masked_uniform",
];

impl InitDialog {
    /// The dialog's fields in order, for the scheme now chosen.
    #[must_use]
    pub fn fields(&self) -> Vec<InitField> {
        let mut fields = vec![InitField::Scheme];
        fields.extend((0..self.args.len()).map(InitField::Arg));
        fields.extend([InitField::Weights, InitField::Biases, InitField::Seed]);
        fields
    }

    /// The field with the cursor.
    #[must_use]
    pub fn current(&self) -> InitField {
        let fields = self.fields();
        fields[self.field.min(fields.len() - 1)]
    }

    /// What submitting writes, in words: `2.weight`, `the biases under 0.block1`, `the model`.
    #[must_use]
    pub fn target(&self) -> String {
        let module = if self.path.is_empty() {
            "the model".to_owned()
        } else {
            self.path.clone()
        };
        let dot = |local: &str| {
            if self.path.is_empty() {
                local.to_owned()
            } else {
                format!("{}.{local}", self.path)
            }
        };
        match (self.layer, self.weights, self.biases) {
            (_, true, true) | (_, false, false) => module,
            (true, true, false) => dot("weight"),
            (true, false, true) => dot("bias"),
            (false, true, false) => format!("the weights under {module}"),
            (false, false, true) => format!("the biases under {module}"),
        }
    }

    /// Switches to scheme `index`, with PyTorch's default arguments.
    pub fn choose(&mut self, index: usize) {
        self.scheme = index % SCHEMES.len();
        self.args = InitScheme::with_defaults(SCHEMES[self.scheme])
            .map(|s| s.arguments())
            .unwrap_or_default();
        self.error = None;
    }
}

/// A question waiting for y or n.
#[derive(Debug, Clone, PartialEq)]
pub enum Question {
    /// Overwrite this existing file (maybe the source)?
    Overwrite(PathBuf),
    /// Quit although re-inits are not written?
    QuitUnsaved,
}

/// What has the keyboard besides the two panes.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Moving around the panes.
    Browse,
    /// Typing the tree filter.
    Filter,
    /// The re-initialize dialog.
    Init(InitDialog),
    /// Typing the path to write to.
    Write(String),
    /// A yes/no question.
    Ask(Question),
    /// Choosing another model; the index of the highlighted choice.
    Models(usize),
    /// The help screen, scrolled by this many lines.
    Help(usize),
}

/// Where the forward pass takes its input.
#[derive(Debug, Clone)]
pub enum Input {
    /// `torch.rand(batch, in_features)` after `torch.manual_seed(seed)`.
    Random {
        /// Rows of the batch.
        batch: usize,
        /// The seed.
        seed: u64,
    },
    /// An `.npy` array given with `--input`.
    File {
        /// The file name, for the panel's title.
        name: String,
        /// Its values.
        array: ArrayD<f32>,
    },
}

/// The forward panel.
#[derive(Debug, Clone)]
pub struct ForwardPanel {
    /// Whether the panel is shown in place of the tensor pane.
    pub open: bool,
    /// The input of the next run.
    pub input: Input,
    /// The last run's result, or why it failed.
    pub result: Option<Result<ForwardResult, String>>,
    /// Layers done and layers in all, while a run is on the worker.
    pub running: Option<(usize, usize)>,
    /// Bumped per run, so that the reply of an outdated run is dropped.
    pub generation: u64,
    /// First layer row on screen.
    pub scroll: usize,
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
    /// Something done.
    Info(String),
    /// Something refused or failed.
    Error(String),
}

/// A re-init, a write or a load on the worker, shown in the status bar as `… working`: these
/// report no fraction done, so no gauge is drawn that would sit at 0% (the statistics of a big
/// tensor, which do report one, have their own gauge in the tensor pane).
#[derive(Debug, Clone, PartialEq)]
pub struct Busy {
    /// What runs: `re-initializing: xavier_uniform on 2.weight`, `writing x.safetensors`.
    pub what: String,
}

/// The whole state of the app.
pub struct App {
    /// The model being explored, with any re-inits applied.
    pub model: Model,
    /// What the model was loaded from, as the user typed it (`demo:mlp`, a path).
    pub source: String,
    /// The source file, when the model came from one (never overwritten without asking).
    pub source_path: Option<PathBuf>,
    /// The models the picker offers: the demos and the files of `demo-models/`.
    pub choices: Vec<String>,
    /// The tree, flattened.
    pub outline: Outline,
    /// Open modules, by node.
    pub opened: Vec<bool>,
    /// Rows on screen, by node, after folding and filtering.
    pub visible: Vec<usize>,
    /// The selected node.
    pub selected: usize,
    /// First tree row on screen.
    pub tree_offset: usize,
    /// The tree filter.
    pub filter: String,
    /// The pane with the focus.
    pub focus: Focus,
    /// The tensor view.
    pub view: View,
    /// The values grid of the selected tensor.
    pub grid: Grid,
    /// Dialogs and prompts.
    pub mode: Mode,
    /// The forward panel.
    pub forward: ForwardPanel,
    /// Statistics and histograms computed so far.
    pub summaries: HashMap<SummaryKey, Result<Summary, String>>,
    /// The summary being computed on the worker, and how far it got (0 to 1).
    pub pending: Option<(SummaryKey, f64)>,
    /// A re-init or a write on the worker.
    pub busy: Option<Busy>,
    /// Re-inits that can be undone, the last on top.
    pub undo: Vec<InitRecord>,
    /// How many re-inits the undo stack held when the model was last written, or `None` when it
    /// was not written or that state can no longer be reached by undoing (a re-init replaced it).
    pub saved_at: Option<usize>,
    /// Where `w` proposes to write: a new file beside the source.
    pub default_out: String,
    /// The status line.
    pub message: Option<Message>,
    /// Colours for this terminal.
    pub theme: Theme,
    /// The terminal's columns and rows.
    pub size: (u16, u16),
    /// Jobs for the worker, sent by the event loop after each update.
    pub outbox: Vec<Job>,
    /// Set when the app should end.
    pub quit: bool,
    /// Set by every change that shows; the loop draws only when it is set.
    pub dirty: bool,
}

impl App {
    /// Whether quitting would lose re-inits: the model differs both from what was loaded (the
    /// undo stack is not empty) and from what was last written.
    #[must_use]
    pub fn unsaved(&self) -> bool {
        !self.undo.is_empty() && self.saved_at != Some(self.undo.len())
    }
}
