//! What a comparison adds to the screen: each tree row's `rel_l2` as a log-scaled bar and a
//! number (a word where there is no figure), and the tensor pane's lines of figures. The views
//! themselves are the ordinary ones, drawn on B's tensor or on Δ.

use ratatui::text::{Line, Span};

use crate::app::compare::{Comparison, Mark, Side};
use crate::app::format::num;
use crate::app::job::{DetailKey, Summary};
use crate::app::state::App;
use crate::app::theme::Role;
use crate::compare::diff::Status;
use crate::tensor::Tensor;

/// Columns of a row's mark: a bar, a space, a number.
pub const MARK_COLS: usize = 10;
/// Cells of the bar.
const BAR_CELLS: usize = 3;
/// The smallest `rel_l2` the bar shows; it fills at 1 (B as far from A as A from zero).
const BAR_FLOOR_LOG10: f64 = -6.0;
/// Left parts of a cell, one to eight eighths.
const EIGHTHS: [char; 8] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉', '█'];

/// The bar of `rel`, on a log scale from 1e-6 (empty) to 1 (full).
#[must_use]
pub fn bar(rel: f64) -> String {
    // Zero and NaN (which the number beside it names) draw empty.
    let fraction = if rel > 0.0 {
        ((rel.log10() - BAR_FLOOR_LOG10) / -BAR_FLOOR_LOG10).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let eighths = (fraction * (BAR_CELLS * 8) as f64).round() as usize;
    (0..BAR_CELLS)
        .map(|cell| match eighths.saturating_sub(cell * 8).min(8) {
            0 => ' ',
            n => EIGHTHS[n - 1],
        })
        .collect()
}

/// A `rel_l2` in at most six columns: `0`, `3.5e-3`, `nan`.
#[must_use]
pub fn short(rel: f64) -> String {
    if rel == 0.0 || !rel.is_finite() {
        num(rel)
    } else {
        format!("{rel:.1e}")
    }
}

/// A cosine in six decimals, or as `1 − ε` when that would round to 1 (a cast, a tiny step).
#[must_use]
pub fn cosine(c: f64) -> String {
    if c < 1.0 && c > 0.999_999 {
        format!("1 − {:.1e}", 1.0 - c)
    } else {
        format!("{c:.6}")
    }
}

/// A row's mark in [`MARK_COLS`] columns.
pub(super) fn mark_spans(app: &App, mark: Mark) -> Vec<Span<'static>> {
    let t = app.screen.theme;
    match mark {
        Mark::Rel(rel) => vec![
            Span::styled(bar(rel), t.style(Role::Bar)),
            Span::styled(
                format!(" {:>w$}", short(rel), w = MARK_COLS - BAR_CELLS - 1),
                t.style(if rel.is_nan() { Role::Bad } else { Role::Dim }),
            ),
        ],
        Mark::Word(status) => vec![Span::styled(
            format!("{:>MARK_COLS$}", status.name()),
            t.style(Role::Bad),
        )],
    }
}

/// The tensor pane's two lines of figures for node `node`: rel_l2 and cosine, then max|Δ| and
/// the identical share; or why there are none.
pub(super) fn figure_lines(app: &App, c: &Comparison, node: usize) -> Vec<Line<'static>> {
    let t = app.screen.theme;
    let label = |text: &'static str| Span::styled(text, t.style(Role::Dim));
    let Some(e) = c.entry(node) else {
        return vec![Line::styled("not compared", t.style(Role::Dim))];
    };
    let status = Span::styled(
        e.status.name(),
        t.style(if e.status == Status::Same {
            Role::Good
        } else {
            Role::Bad
        }),
    );
    let Some(f) = &e.figures else {
        let why = match e.status {
            Status::OnlyA => "  B has no tensor of this name".to_owned(),
            Status::Shape => format!("  B's shape {:?}", e.shape.1.clone().unwrap_or_default()),
            _ => format!(
                "  B's dtype {}",
                e.dtype.1.map_or("?".to_owned(), |d| d.to_string())
            ),
        };
        return vec![Line::from(vec![
            label("vs B "),
            status,
            Span::styled(why, t.style(Role::Dim)),
        ])];
    };
    vec![
        Line::from(vec![
            label("vs B "),
            status,
            label("  rel_l2 "),
            Span::raw(short(f.rel_l2)),
            label("  cos "),
            Span::raw(cosine(f.cosine)),
        ]),
        Line::from(vec![
            label("max|Δ| "),
            Span::raw(num(f.max_abs_diff)),
            label("  identical "),
            Span::raw(format!("{:.1}%", f.identical_fraction * 100.0)),
        ]),
    ]
}

/// What the view draws on the B or Δ side of `key`'s tensor: the tensor and its summary once the
/// worker sent them, else why not yet.
pub(super) fn side_of(c: &Comparison, key: DetailKey) -> Result<(&Tensor, &Summary), &'static str> {
    let Some((asked, detail)) = &c.detail else {
        return Err("B has no tensor of this name");
    };
    if *asked != key {
        return Err("computing…");
    }
    let Some(detail) = detail else {
        return Err("computing…");
    };
    let (tensor, summary) = match c.side {
        Side::Delta => {
            let (delta, summary) = detail.delta.as_ref().map_err(|no| no.why())?;
            (delta, summary)
        }
        _ => (&detail.b, &detail.b_summary),
    };
    match summary {
        Ok(s) => Ok((tensor, s)),
        Err(_) => Err("B's values do not decode"),
    }
}

#[cfg(test)]
mod tests {
    use super::{bar, cosine, short};

    #[test]
    fn the_bar_is_log_scaled_from_a_millionth_to_one() {
        assert_eq!(bar(0.0), "   ");
        assert_eq!(bar(f64::NAN), "   ");
        assert_eq!(bar(1e-7), "   ");
        assert_eq!(bar(1e-3), "█▌ ", "half way: 12 of 24 eighths");
        assert_eq!(bar(1.0), "███");
        assert_eq!(bar(40.0), "███");
        assert_eq!(cosine(0.998_764_29), "0.998764");
        assert_eq!(cosine(1.0 - 2.5e-8), "1 − 2.5e-8");
        assert_eq!(cosine(1.0), "1.000000");
        assert_eq!(
            (short(0.0), short(0.049_78), short(f64::NAN)),
            ("0".into(), "5.0e-2".into(), "nan".into())
        );
    }
}
