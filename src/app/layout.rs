//! Where each part of the screen goes, as pure functions of the terminal size, shared by the
//! render and by `update` (which needs page sizes to scroll).

use ratatui::layout::Constraint::{Fill, Length, Max};
use ratatui::layout::{Layout, Margin, Rect};

use super::format::wrap;
use super::forward_view::forward_head;
use super::keymap::help_lines;
use super::state::{App, Focus};
use crate::text::escape;

/// Terminals narrower than this show one pane at a time (the focused one).
pub const TWO_PANES_MIN_WIDTH: u16 = 60;
/// Rows of the tensor pane above its view: name, shape, three lines of stats, two of quantiles,
/// the view tabs.
pub const HEADER_ROWS: u16 = 8;
/// Rows of the module pane above its table: the repr (one line, more when wrapped is not worth
/// it), the count, and the table's heading.
pub const MODULE_ROWS_ABOVE: u16 = 3;
/// Width of one number in the values grid, its separating space included.
pub const CELL_WIDTH: u16 = 10;

/// The parts of the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    /// The title bar.
    pub title: Rect,
    /// The tree pane, when shown.
    pub tree: Option<Rect>,
    /// The tensor pane (or forward panel), when shown.
    pub right: Option<Rect>,
    /// The status bar.
    pub status: Rect,
}

/// Splits the screen: a title row, the panes, a status row. Any size works, down to 0x0; a
/// screen of one row shows the title (the status row is `Max(1)`, the first to give way).
#[must_use]
pub fn areas(area: Rect, focus: Focus) -> Areas {
    let [title, body, status] = area.layout(&Layout::vertical([Length(1), Fill(1), Max(1)]));
    if body.height == 0 {
        return Areas {
            title,
            tree: None,
            right: None,
            status,
        };
    }
    let (tree, right) = if area.width >= TWO_PANES_MIN_WIDTH {
        // In u32: 21 times a width of 3121 or more does not fit in u16.
        let tree_width = (u32::from(area.width) * 21 / 50).clamp(24, 72) as u16;
        let [tree, right] = body.layout(&Layout::horizontal([Length(tree_width), Fill(1)]));
        (Some(tree), Some(right))
    } else if focus == Focus::Tree {
        (Some(body), None)
    } else {
        (None, Some(body))
    };
    Areas {
        title,
        tree,
        right,
        status,
    }
}

/// The margin of a bordered pane: its inside is `area.inner(BORDER)`.
pub const BORDER: Margin = Margin::new(1, 1);

/// The tensor pane's inside split into its header and its view.
#[must_use]
pub fn tensor_split(inner: Rect) -> (Rect, Rect) {
    let [header, body] = inner.layout(&Layout::vertical([Length(HEADER_ROWS), Fill(1)]));
    (header, body)
}

/// `(slices, rows, columns)` of the matrix a tensor is shown as: a scalar is 1x1, a vector a
/// column, an N-D tensor its last two dimensions for each index of the leading ones.
#[must_use]
pub fn grid_dims(shape: &[usize]) -> (usize, usize, usize) {
    match shape {
        [] => (1, 1, 1),
        [n] => (1, *n, 1),
        [lead @ .., r, c] => (lead.iter().product(), *r, *c),
    }
}

/// How the values grid fits in `body`: the row-label width, and the rows and columns on screen.
#[must_use]
pub fn grid_page(body: Rect, rows: usize) -> (u16, usize, usize) {
    let digits = rows.saturating_sub(1).max(1).ilog10() as u16 + 1;
    let label = digits.max(3) + 1;
    let page_rows = usize::from(body.height.saturating_sub(1)).max(1);
    let page_cols = usize::from(body.width.saturating_sub(label) / CELL_WIDTH).max(1);
    (label, page_rows, page_cols)
}

/// The help screen's box: the whole screen but a margin.
#[must_use]
pub fn help_box(area: Rect) -> Rect {
    area.inner(Margin::new(2, 1))
}

/// The app's screen split into its parts.
#[must_use]
pub fn screen_areas(app: &App) -> Areas {
    areas(screen(app), app.focus)
}

/// The whole screen.
#[must_use]
pub fn screen(app: &App) -> Rect {
    Rect::new(0, 0, app.screen.size.0, app.screen.size.1)
}

/// Rows of the tree pane (at least 1).
#[must_use]
pub fn tree_page(app: &App) -> usize {
    screen_areas(app)
        .tree
        .map_or(1, |r| usize::from(r.inner(BORDER).height).max(1))
}

/// The view part of the tensor pane: where the grid, histogram or heatmap go.
#[must_use]
pub fn tensor_body(app: &App) -> Option<Rect> {
    let right = screen_areas(app).right?;
    Some(tensor_split(right.inner(BORDER)).1)
}

/// The forward panel's layer rows on screen (at least 1), with the panel where the tensor pane
/// is when it has the focus (narrow screens show one pane).
#[must_use]
pub fn forward_page(app: &App) -> usize {
    let Some(right) = areas(screen(app), Focus::Tensor).right else {
        return 1;
    };
    let body = right.inner(BORDER);
    let width = usize::from(body.width);
    let above = match app.doc.runs.family() {
        Some(checkpoint) => super::family_view::head(&app.forward, checkpoint, width).len(),
        None => forward_head(&app.forward, width).len(),
    };
    usize::from(body.height).saturating_sub(above).max(1)
}

/// Rows of the module table on screen (at least 1).
#[must_use]
pub fn module_page(app: &App) -> usize {
    screen_areas(app).right.map_or(1, |r| {
        usize::from(r.inner(BORDER).height.saturating_sub(MODULE_ROWS_ABOVE)).max(1)
    })
}

/// The help screen's lines on screen (at least 1), and the largest offset that still fills them.
#[must_use]
pub fn help_page(app: &App) -> (usize, usize) {
    let page = usize::from(help_box(screen(app)).inner(BORDER).height).max(1);
    (page, help_lines().len().saturating_sub(page))
}

/// Whether a message (raw, as the state holds it) fits the status bar once escaped.
#[must_use]
pub fn fits_status_bar(app: &App, text: &str) -> bool {
    let room = usize::from(app.screen.size.0).saturating_sub(3);
    escape(text).chars().count() <= room
}

/// The popup's box for `lines` lines of text, and its text width.
#[must_use]
pub fn popup_box(area: Rect, lines: usize) -> Rect {
    let width = area.width.saturating_sub(4).min(76);
    let height = (lines as u16)
        .saturating_add(3)
        .min(area.height.saturating_sub(2));
    centered(area, width, height)
}

/// The popup's text (raw, as the state holds it) escaped and wrapped to its box, and the lines
/// that fit on screen.
#[must_use]
pub fn popup_lines(area: Rect, text: &str) -> (Vec<String>, usize) {
    let width = usize::from(area.width.saturating_sub(4).min(76).saturating_sub(4));
    let lines = wrap(&escape(text), width);
    let page = usize::from(
        popup_box(area, lines.len())
            .inner(BORDER)
            .height
            .saturating_sub(1),
    )
    .max(1);
    (lines, page)
}

/// A box of at most `width` x `height` centred in `area`, an odd cell left over going below and
/// right. Ratatui's `Rect::centered` (`Flex::Center`) puts it above and left instead: every dialog
/// would move by a row, so this one stays.
#[must_use]
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}
