//! What the forward panel shows for a chain of layers above its layer table, as a pure function
//! of the state shared by the screen and by paging (a family checkpoint's is `family_view`).

use crate::app::format::{num, wrap};
use crate::app::job::Input;
use crate::app::state::ForwardPanel;
use crate::text::escape;

/// Output rows the forward panel shows above its layer table.
pub const FORWARD_OUTPUT_ROWS: usize = 4;

/// A line of the forward panel above its layer table. The screen draws these, and the panel's
/// paging counts them, so the two cannot disagree.
#[derive(Debug, Clone, PartialEq)]
pub enum ForwardLine {
    /// Where the input comes from.
    Input(String),
    /// Layers done and in all, while a run is on the worker.
    Running(usize, usize),
    /// One wrapped line of the error of the last run.
    Error(String),
    /// The output's shape.
    Output(Vec<usize>),
    /// One row of the output's first values.
    Values(String),
    /// How many rows the output has, when not all are shown.
    More(usize),
    /// The layer table's heading.
    Heading,
}

/// The forward panel's lines above its layer table, for a panel `width` columns wide.
#[must_use]
pub fn forward_head(panel: &ForwardPanel, width: usize) -> Vec<ForwardLine> {
    let input = match &panel.input {
        Input::Random { batch, seed } => format!("torch.rand({batch}, in) · seed {seed}"),
        Input::File { name, array } => format!("{} {:?}", escape(name), array.shape()),
    };
    let mut lines = vec![ForwardLine::Input(input)];
    if let Some((done, all)) = panel.running {
        lines.push(ForwardLine::Running(done, all));
    }
    match &panel.result {
        None => {}
        Some(Err(e)) => lines.extend(
            wrap(&escape(&e.to_string()), width)
                .into_iter()
                .map(ForwardLine::Error),
        ),
        Some(Ok(result)) => {
            let output = &result.output;
            lines.push(ForwardLine::Output(output.shape().to_vec()));
            let cols = output.shape().last().copied().unwrap_or(1).max(1);
            let rows = output.len() / cols;
            let per_line = (width / 10).max(1);
            // Only the rows shown are read, however big the batch.
            let values: Vec<f32> = output
                .iter()
                .take(FORWARD_OUTPUT_ROWS * cols)
                .copied()
                .collect();
            for row in values.chunks(cols).take(FORWARD_OUTPUT_ROWS) {
                let cells: Vec<String> = row
                    .iter()
                    .take(per_line)
                    .map(|v| format!("{:>9}", num(f64::from(*v))))
                    .collect();
                let more = if row.len() > per_line { " …" } else { "" };
                lines.push(ForwardLine::Values(format!("{}{more}", cells.join(" "))));
            }
            if rows > FORWARD_OUTPUT_ROWS {
                lines.push(ForwardLine::More(rows));
            }
            lines.push(ForwardLine::Heading);
        }
    }
    lines
}
