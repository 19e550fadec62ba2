//! The forward panel's probe views of a causal LM's run: what the worker read from the pass (the
//! logit lens, massive activations, one layer's attention, the super weights) and the cursor the
//! keys move over it.

use crate::families::probe::LayerMap;
use crate::families::probe::super_weight::SuperWeight;

/// What the family panel shows below its heading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProbeMode {
    /// The block table.
    #[default]
    Blocks,
    /// The logit lens: layers × positions.
    Lens,
    /// One layer's head: queries × keys.
    Attention,
    /// The super weights (a cursor row each), then each boundary's massive activations.
    Outliers,
}

impl ProbeMode {
    /// The next view `p` shows.
    #[must_use]
    pub fn next(self) -> Self {
        match self {
            Self::Blocks => Self::Lens,
            Self::Lens => Self::Attention,
            Self::Attention => Self::Outliers,
            Self::Outliers => Self::Blocks,
        }
    }
}

/// Where the probe views stand: the view, the attention layer and head, and the grid cursor
/// (lens: layer row, position column; attention: query row, key column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProbeCursor {
    /// The view.
    pub mode: ProbeMode,
    /// The attention layer shown (and the one the worker keeps whole).
    pub layer: usize,
    /// The attention head shown.
    pub head: usize,
    /// The cursor's row.
    pub row: usize,
    /// The cursor's column.
    pub col: usize,
}

impl ProbeCursor {
    /// Moves the cursor by (`rows`, `cols`) within a grid of `h` rows and `w` columns.
    pub fn step(&mut self, (h, w): (usize, usize), rows: isize, cols: isize) {
        self.row = self
            .row
            .saturating_add_signed(rows)
            .min(h.saturating_sub(1));
        self.col = self
            .col
            .saturating_add_signed(cols)
            .min(w.saturating_sub(1));
    }
}

/// One cell of the lens: a candidate token.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Its id.
    pub id: u32,
    /// Its text (raw; escaped where drawn).
    pub text: String,
    /// Its probability.
    pub prob: f32,
}

/// One row of the lens: a `hidden_states` boundary.
#[derive(Debug, Clone, PartialEq)]
pub struct LensLayer {
    /// The module whose output it reads.
    pub path: String,
    /// The top-k at each position of the text.
    pub positions: Vec<Vec<Cell>>,
}

/// One boundary's largest activation.
#[derive(Debug, Clone, PartialEq)]
pub struct MassiveRow {
    /// The module whose output it is.
    pub path: String,
    /// The largest `|value|`, its token position and channel.
    pub top: (f32, usize, usize),
    /// The median `|value|`.
    pub median: f64,
    /// Whether it is massive (above 100 and 1,000× the median).
    pub flagged: bool,
}

/// What the worker read from a causal LM's probed pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Probes {
    /// The text of each position.
    pub tokens: Vec<String>,
    /// The lens, embeddings first.
    pub lens: Vec<LensLayer>,
    /// Massive activations per boundary.
    pub massive: Vec<MassiveRow>,
    /// The number of attention layers.
    pub layers: usize,
    /// The layer whose weights were kept, and its heads.
    pub attention: Option<(usize, LayerMap)>,
    /// The super weights the text shows (Llama-style MLPs), in layer order.
    pub super_weights: Vec<SuperWeight>,
}

impl Probes {
    /// The (rows, columns) of a view's grid.
    #[must_use]
    pub fn grid(&self, mode: ProbeMode) -> (usize, usize) {
        match mode {
            ProbeMode::Blocks => (0, 0),
            ProbeMode::Lens => (self.lens.len(), self.tokens.len()),
            ProbeMode::Attention => (self.tokens.len(), self.tokens.len()),
            ProbeMode::Outliers => (self.super_weights.len() + self.massive.len(), 1),
        }
    }

    /// The super weight the outliers view's cursor is on, else the one with the largest output:
    /// what `J` jumps to.
    #[must_use]
    pub fn super_weight(&self, cursor: ProbeCursor) -> Option<&SuperWeight> {
        let on = (cursor.mode == ProbeMode::Outliers)
            .then(|| self.super_weights.get(cursor.row))
            .flatten();
        on.or_else(|| {
            self.super_weights
                .iter()
                .max_by(|a, b| a.output_magnitude.total_cmp(&b.output_magnitude))
        })
    }

    /// The first lens layer whose top token at position `p` is the last layer's: where the
    /// model's own prediction there first comes out on top.
    #[must_use]
    pub fn first_layer_predicting(&self, p: usize) -> Option<usize> {
        let top = |l: &LensLayer| l.positions.get(p).and_then(|c| c.first()).map(|c| c.id);
        let last = top(self.lens.last()?)?;
        self.lens.iter().position(|l| top(l) == Some(last))
    }

    /// The number of heads of the kept layer.
    #[must_use]
    pub fn heads(&self) -> usize {
        self.attention.as_ref().map_or(0, |(_, m)| m.heads.len())
    }

    /// The weight of query `q` on key `k` in head `head` of the kept layer.
    #[must_use]
    pub fn weight(&self, head: usize, q: usize, k: usize) -> Option<f32> {
        let (_, map) = self.attention.as_ref()?;
        let w = map.heads.get(head)?.weights.as_ref()?;
        w.get(q * map.tokens + k).copied()
    }
}
