//! What the forward panel shows for a family checkpoint, as pure functions of the state shared by
//! the screen and by paging: the lines above the block table, and each row's text and bar.

use crate::app::format::{middle_ellipsis, wrap};
use crate::app::job::FamilyCheckpoint;
use crate::app::job::{ForwardResult, LayerStats};
use crate::app::state::ForwardPanel;
use crate::text::escape;

/// Columns of one number in the block table.
const NUMBER: usize = 7;
/// The fewest cells the bar gets.
const MIN_BAR: usize = 4;
/// The widest the path column gets.
const MAX_PATH: usize = 24;

/// A line of the panel above its block table.
#[derive(Debug, Clone, PartialEq)]
pub enum FamilyLine {
    /// The text run (or to run), shortened to fit.
    Text(String),
    /// The model type, the token count and the output's shape.
    About(String),
    /// Blocks done and in all, while a run is on the worker.
    Running(usize, usize),
    /// One wrapped line of the last run's error.
    Error(String),
    /// One wrapped line of the most likely next tokens.
    Next(String),
    /// One wrapped line of the greedy continuation.
    Then(String),
    /// One wrapped line of the experts the last token went to, per layer.
    Experts(String),
    /// A sentence embedding's norm.
    Norm(f64),
    /// The table's heading.
    Heading(String),
}

/// The lines above the block table, for a panel `width` columns wide.
#[must_use]
pub fn head(panel: &ForwardPanel, checkpoint: &FamilyCheckpoint, width: usize) -> Vec<FamilyLine> {
    let room = width.saturating_sub(6).max(1);
    let text = escape(&panel.text);
    let shown = if text.chars().count() > room {
        let cut: String = text.chars().take(room.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        text.into_owned()
    };
    let mut lines = vec![FamilyLine::Text(shown)];
    let kind = checkpoint.config.model_type.as_deref().map_or_else(
        || format!("{:?}", checkpoint.family),
        |t| escape(t).into_owned(),
    );
    let about = match &panel.result {
        Some(Ok(result)) => format!(
            "{kind} · {} tokens · output {:?}",
            result.input_shape.last().copied().unwrap_or(0),
            result.output.shape()
        ),
        _ => format!("{kind} · e edits the text"),
    };
    lines.push(FamilyLine::About(about));
    if let Some((done, all)) = panel.running {
        lines.push(FamilyLine::Running(done, all));
    }
    match &panel.result {
        None => {}
        Some(Err(e)) => lines.extend(
            wrap(&escape(&e.to_string()), width)
                .into_iter()
                .map(FamilyLine::Error),
        ),
        Some(Ok(result)) => {
            if !result.next.is_empty() {
                let next: Vec<String> = result
                    .next
                    .iter()
                    .map(|t| format!("\"{}\" {:.1}%", escape(&t.text), 100.0 * t.prob))
                    .collect();
                let joined = format!("next {}", next.join("  "));
                lines.extend(wrap(&joined, width).into_iter().map(FamilyLine::Next));
            }
            if let Some(said) = &result.said {
                let then = format!("then {}", escape(&said.continuation));
                lines.extend(wrap(&then, width).into_iter().map(FamilyLine::Then));
            }
            let experts = result.said.as_ref().map_or(&[][..], |s| &s.experts[..]);
            if experts.iter().any(|e| !e.is_empty()) {
                let per_layer: Vec<String> = experts
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| !e.is_empty())
                    .map(|(i, e)| format!("{i}:{e:?}"))
                    .collect();
                let joined = format!("experts {}", per_layer.join(" "));
                lines.extend(wrap(&joined, width).into_iter().map(FamilyLine::Experts));
            }
            if let Some(norm) = result.embedding_norm {
                lines.push(FamilyLine::Norm(norm));
            }
            let (path, _) = columns(result, width);
            lines.push(FamilyLine::Heading(format!(
                "{:<path$} {:>NUMBER$} {:>NUMBER$} {:>NUMBER$}",
                "block", "mean", "std", "absmax"
            )));
        }
    }
    lines
}

/// The path column's width and the bar's, for a panel `width` columns wide.
#[must_use]
pub fn columns(result: &ForwardResult, width: usize) -> (usize, usize) {
    let numbers = 3 * (NUMBER + 1) + 1;
    let longest = result
        .layers
        .iter()
        .map(|l| escape(&l.path).chars().count())
        .max()
        .unwrap_or(0)
        .clamp(5, MAX_PATH);
    let path = longest.min(width.saturating_sub(numbers + MIN_BAR)).max(1);
    (path, width.saturating_sub(path + numbers).max(1))
}

/// The largest absmax of the rows, which fills a bar.
#[must_use]
pub fn scale(result: &ForwardResult) -> f64 {
    result
        .layers
        .iter()
        .map(|l| l.absmax)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
}

/// A row's text before its bar: path, mean, std, absmax.
#[must_use]
pub fn row(layer: &LayerStats, path: usize) -> String {
    format!(
        "{:<path$} {:>NUMBER$} {:>NUMBER$} {:>NUMBER$} ",
        middle_ellipsis(&escape(&layer.path), path),
        short(centred(layer.mean, layer.absmax)),
        short(layer.std),
        short(layer.absmax),
    )
}

/// A mean below f32's rounding of the layer's largest value (a LayerNorm's output is centred) is
/// 0: its digits, and even its sign, are noise that changes with the order of a sum.
fn centred(mean: f64, absmax: f64) -> f64 {
    if mean.abs() <= absmax * f64::from(f32::EPSILON) {
        0.0
    } else {
        mean
    }
}

/// A bar of `width` cells filled to `fraction`, in eighths of a cell (plain characters, so it
/// shows without colour too).
#[must_use]
pub fn bar(fraction: f64, width: usize) -> String {
    const EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        1.0
    };
    let eighths = (fraction * (width * 8) as f64).round() as usize;
    let mut out = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        out.push(EIGHTHS[eighths % 8]);
    }
    out
}

/// A value in at most 7 characters (8 for a tiny negative one).
#[must_use]
pub fn short(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        format!("{v}")
    } else if v == 0.0 {
        "0".into()
    } else if !(1e-2..1e4).contains(&a) {
        format!("{v:.1e}")
    } else if a < 10.0 {
        format!("{v:.4}")
    } else if a < 100.0 {
        format!("{v:.3}")
    } else if a < 1000.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::{bar, short};

    #[test]
    fn numbers_fit_seven_columns_and_bars_count_eighths() {
        for v in [
            0.0, -0.012_345, 3.5, -99.999, 512.25, 9999.0, 1.5e-7, -2.5e9,
        ] {
            assert!(short(v).chars().count() <= 8, "{v}: {}", short(v));
        }
        assert_eq!(short(-0.5), "-0.5000");
        assert_eq!(bar(1.0, 3), "███");
        assert_eq!(bar(0.5, 3), "█▌");
        assert_eq!(bar(0.0, 3), "");
        assert_eq!(bar(f64::NAN, 2), "██");
    }
}
