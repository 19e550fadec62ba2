//! The shards view: which file of a distributed checkpoint holds which chunk of the tensor, one
//! row a chunk: its offsets and sizes in the whole tensor, and its bytes in the file.

use std::collections::HashSet;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Row, Table, Widget};

use crate::app::format::counted;
use crate::app::state::App;
use crate::app::theme::Role;
use crate::tensor::Tensor;
use crate::text::escape;

pub(super) fn render(app: &App, tensor: &Tensor, body: Rect, buf: &mut Buffer) {
    let t = app.screen.theme;
    let shards = tensor.shards();
    let files: HashSet<&str> = shards.iter().map(|s| &*s.file).collect();
    let head = format!(
        "{} in {}",
        counted(shards.len(), "chunk"),
        counted(files.len(), "file")
    );
    Line::styled(head, t.style(Role::Dim)).render(body, buf);
    let table_area = Rect {
        y: body.y + 1,
        height: body.height.saturating_sub(1),
        ..body
    };
    // The heading takes a row; a last row says how many did not fit.
    let room = usize::from(table_area.height.saturating_sub(1));
    let shown = if shards.len() > room {
        room.saturating_sub(1)
    } else {
        shards.len()
    };
    let dims = |v: &[u64]| {
        let parts: Vec<String> = v.iter().map(u64::to_string).collect();
        format!("[{}]", parts.join(","))
    };
    let mut rows: Vec<[String; 4]> = shards[..shown]
        .iter()
        .map(|s| {
            [
                escape(&s.file).into_owned(),
                dims(&s.offsets),
                dims(&s.sizes),
                format!("{}..{}", s.bytes.start, s.bytes.end),
            ]
        })
        .collect();
    if shown < shards.len() {
        rows.push([
            format!("… {} more", shards.len() - shown),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    let headings = ["file", "offsets", "sizes", "bytes"];
    let widths: Vec<Constraint> = (0..4)
        .map(|i| {
            let widest = rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
            Constraint::Length(widest.max(headings[i].len()) as u16)
        })
        .collect();
    Table::new(rows.into_iter().map(Row::new), widths)
        .header(Row::new(headings).style(t.style(Role::Heading)))
        .column_spacing(1)
        .render(table_area, buf);
}
