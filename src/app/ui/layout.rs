//! Where each part of the screen goes, as pure functions of the terminal size, shared by the
//! render and by `update` (which needs page sizes to scroll).

use ratatui::layout::Rect;

use crate::app::state::Focus;

/// Terminals narrower than this show one pane at a time (the focused one).
pub const TWO_PANES_MIN_WIDTH: u16 = 60;
/// Rows of the tensor pane above its view: name, shape, three lines of stats, view tabs.
pub const HEADER_ROWS: u16 = 6;
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

/// Splits the screen: a title row, the panes, a status row. Any size works, down to 0x0.
#[must_use]
pub fn areas(area: Rect, focus: Focus) -> Areas {
    let title = Rect {
        height: area.height.min(1),
        ..area
    };
    let status = Rect {
        y: area.bottom().saturating_sub(1).max(title.bottom()),
        height: area.height.saturating_sub(1).min(1),
        ..area
    };
    let body = Rect {
        y: title.bottom(),
        height: area.height.saturating_sub(title.height + status.height),
        ..area
    };
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
        let tree = Rect {
            width: tree_width,
            ..body
        };
        let right = Rect {
            x: body.x + tree_width,
            width: body.width - tree_width,
            ..body
        };
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

/// The inside of a bordered pane.
#[must_use]
pub fn inner(r: Rect) -> Rect {
    Rect {
        x: r.x.saturating_add(1),
        y: r.y.saturating_add(1),
        width: r.width.saturating_sub(2),
        height: r.height.saturating_sub(2),
    }
}

/// The tensor pane's inside split into its header and its view.
#[must_use]
pub fn tensor_split(inner: Rect) -> (Rect, Rect) {
    let header = Rect {
        height: inner.height.min(HEADER_ROWS),
        ..inner
    };
    let body = Rect {
        y: header.bottom(),
        height: inner.height - header.height,
        ..inner
    };
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

/// The first row (or column) to show so that `cursor` stays on a page of `page` rows starting
/// near `offset`: the view moves only when the cursor would leave it.
#[must_use]
pub fn follow(offset: usize, cursor: usize, page: usize) -> usize {
    let page = page.max(1);
    if cursor < offset {
        cursor
    } else if cursor >= offset + page {
        cursor + 1 - page
    } else {
        offset
    }
}

/// The help screen's box: the whole screen but a margin.
#[must_use]
pub fn help_box(area: Rect) -> Rect {
    Rect {
        x: area.x + area.width.min(2),
        y: area.y + area.height.min(1),
        width: area.width.saturating_sub(4),
        height: area.height.saturating_sub(2),
    }
}

/// Output rows the forward panel shows above its layer table.
pub const FORWARD_OUTPUT_ROWS: usize = 4;

/// Lines of the forward panel above its layer table, for an output of `output_rows` rows: the
/// input, the progress while `running`, the output's shape, its first rows, how many rows in all
/// when some are not shown, and the table's heading.
#[must_use]
pub fn forward_rows_above(running: bool, output_rows: usize) -> usize {
    1 + usize::from(running)
        + 1
        + output_rows.min(FORWARD_OUTPUT_ROWS)
        + usize::from(output_rows > FORWARD_OUTPUT_ROWS)
        + 1
}

/// A box of at most `width` x `height` centred in `area`.
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
