//! The optimizer view: the state `torch.optim` keeps for the parameter (its class, step and
//! settings, statistics of each state tensor) and the update `step()` would make with a zero
//! gradient, with its ratio to the parameter: the effective step size.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Row, Table, Widget, Wrap};

use crate::app::format::{num, short};
use crate::app::job::Optimizer;
use crate::app::state::{App, OptimizerBlock};
use crate::app::theme::Role;
use crate::checkpoint::training::OptimizerKind;
use crate::model::ParamId;
use crate::text::escape;

pub(super) fn render(app: &App, id: ParamId, body: Rect, buf: &mut Buffer) {
    let t = app.screen.theme;
    let key = (id, app.doc.model.store.version(id));
    let line = |text: &'static str| Line::styled(text, t.style(Role::Dim));
    match app.cache.optimizer.get(&key) {
        None | Some(OptimizerBlock::Asked) => {
            line("computing the next update…").render(body, buf);
        }
        Some(OptimizerBlock::Failed(e)) => {
            Paragraph::new(escape(&e.to_string()).into_owned())
                .style(t.style(Role::Bad))
                .wrap(Wrap { trim: false })
                .render(body, buf);
        }
        Some(OptimizerBlock::Ready(None)) => {
            line("the optimizer keeps no state for this tensor").render(body, buf);
        }
        Some(OptimizerBlock::Ready(Some(o))) => block(app, o, body, buf),
    }
}

/// The settings on two lines, the statistics in a table, the ratio under it.
fn block(app: &App, o: &Optimizer, body: Rect, buf: &mut Buffer) {
    let t = app.screen.theme;
    let (state, g) = (&o.next.state, &o.next.state.group);
    let step = state
        .step
        .map_or(String::new(), |s| format!(" · step {}", num(s)));
    let settings = match g.kind {
        OptimizerKind::Sgd => format!(
            "momentum {} · nesterov {} · decay {}",
            num(g.momentum),
            if g.nesterov { "yes" } else { "no" },
            short(g.weight_decay)
        ),
        _ => format!(
            "betas {}, {} · eps {} · decay {}",
            num(g.betas.0),
            num(g.betas.1),
            short(g.eps),
            short(g.weight_decay)
        ),
    };
    let head = vec![
        Line::styled(
            format!("{}{step} · lr {}", g.kind.name(), short(g.lr)),
            t.style(Role::Heading),
        ),
        Line::styled(settings, t.style(Role::Dim)),
    ];
    Paragraph::new(head).render(body, buf);
    let headings = ["", "mean", "std", "min", "max"];
    let mut bad = Vec::new();
    let rows: Vec<Row> = o
        .stats
        .iter()
        .map(|(name, stats)| {
            let cells = match stats {
                Ok(s) => {
                    if s.nan + s.inf > 0 {
                        bad.push(format!("{name}: {} NaN, {} Inf", s.nan, s.inf));
                    }
                    [s.mean, s.std, s.min, s.max].map(short)
                }
                Err(_) => ["-".to_owned(), String::new(), String::new(), String::new()],
            };
            let row = Row::new(std::iter::once((*name).to_owned()).chain(cells));
            if matches!(stats, Ok(s) if s.nan + s.inf > 0) {
                row.style(t.style(Role::Bad))
            } else {
                row
            }
        })
        .collect();
    let widths = [10, 8, 8, 8, 8].map(Constraint::Length);
    let table_rows = rows.len() as u16 + 1;
    Table::new(rows, widths)
        .header(Row::new(headings).style(t.style(Role::Heading)))
        .column_spacing(1)
        .render(
            Rect {
                y: body.y + 3,
                height: body.height.saturating_sub(3).min(table_rows),
                ..body
            },
            buf,
        );
    let mut tail = vec![Line::from(format!(
        "‖update‖ / ‖param‖ = {}",
        short(o.next.ratio)
    ))];
    tail.extend(bad.into_iter().map(|b| Line::styled(b, t.style(Role::Bad))));
    let below = 3 + table_rows + 1;
    Paragraph::new(tail).render(
        Rect {
            y: body.y + below.min(body.height),
            height: body.height.saturating_sub(below),
            ..body
        },
        buf,
    );
}
