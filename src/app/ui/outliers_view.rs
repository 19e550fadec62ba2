//! The outliers of a family run: the super weights the text shows (one cursor row each, `J`
//! selects the one under the cursor in the values grid), then each `hidden_states` boundary's
//! largest activation with its token and channel, `!` where massive. A list taller than the pane
//! pages with the cursor.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Widget};

use super::family_view::short;
use super::lens_view::{fit, page};
use crate::app::probe_view::{ProbeCursor, Probes};
use crate::app::state::App;
use crate::app::theme::Role;
use crate::families::probe::super_weight::THRESHOLD;
use crate::text::escape;

pub(super) fn render(
    app: &App,
    probes: &Probes,
    cursor: ProbeCursor,
    area: Rect,
    buf: &mut Buffer,
) {
    let t = app.screen.theme;
    let (dim, heading) = (t.style(Role::Dim), t.style(Role::Heading));
    // Every line, with the cursor row it is (headings are none).
    let mut lines: Vec<(Line, Option<usize>)> = vec![(
        Line::styled(
            format!("super weights (down_proj |out|>{THRESHOLD}) · J jumps"),
            heading,
        ),
        None,
    )];
    if probes.super_weights.is_empty() {
        lines.push((Line::styled("  none on this text", dim), None));
    }
    for (i, w) in probes.super_weights.iter().enumerate() {
        let expert = w.expert.map_or_else(String::new, |e| format!("e{e} "));
        let at = format!("{expert}[{},{}]", w.row, w.col);
        let text = format!(
            "{:>3} {at:<14} w {:>8}  |out| {:>7}",
            w.layer,
            short(f64::from(w.value)),
            short(f64::from(w.output_magnitude))
        );
        lines.push((Line::raw(text), Some(i)));
    }
    lines.push((
        Line::styled("massive: max|h| @ token, channel · median", heading),
        None,
    ));
    let first = probes.super_weights.len();
    for (i, m) in probes.massive.iter().enumerate() {
        let (value, token, channel) = m.top;
        let mark = if m.flagged { "!" } else { " " };
        let token = probes.tokens.get(token).map_or("", String::as_str);
        let text = format!(
            "{i:>3} {:>7}{mark} {} ch {channel:<5} med {}",
            short(f64::from(value)),
            fit(&format!("'{token}'"), 9),
            short(m.median)
        );
        lines.push((Line::raw(text), Some(first + i)));
    }
    let room = usize::from(area.height).saturating_sub(1).max(1);
    let at = lines
        .iter()
        .position(|(_, item)| *item == Some(cursor.row))
        .unwrap_or(0);
    let start = page(at, room);
    // The tensor a super weight is in, or the module a boundary is the output of.
    let footer = match probes.super_weights.get(cursor.row) {
        Some(w) => escape(&w.path),
        None => cursor
            .row
            .checked_sub(first)
            .and_then(|i| probes.massive.get(i))
            .map_or_else(Default::default, |m| escape(&m.path)),
    };
    let selected = t.style(Role::Selected);
    let mut shown: Vec<Line> = lines
        .into_iter()
        .skip(start)
        .take(room)
        .map(|(line, item)| {
            if item == Some(cursor.row) {
                line.patch_style(selected)
            } else {
                line
            }
        })
        .collect();
    shown.push(Line::styled(footer.into_owned(), dim));
    Paragraph::new(shown).render(area, buf);
}
