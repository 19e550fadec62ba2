//! The optimizer view: the state `torch.optim` keeps for the parameter (its class, step and
//! settings, statistics of each state tensor) and the update `step()` would make with a zero
//! gradient, with its ratio to the parameter: the effective step size.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Row, Table, Widget, Wrap};

use crate::app::format::{count, num, short};
use crate::app::job::Optimizer;
use crate::app::state::{App, OptimizerBlock};
use crate::app::theme::Role;
use crate::checkpoint::training::OptimizerKind;
use crate::model::ParamId;
use crate::tensor::stats::Stats;
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

/// A row of the statistics table: its label and how a tensor's statistics give its cell.
type Figure = (&'static str, fn(&Stats) -> String);

/// The settings on two lines, then a column of statistics per state tensor and one for the
/// update, then the update's ratio to the parameter.
fn block(app: &App, o: &Optimizer, body: Rect, buf: &mut Buffer) {
    let t = app.screen.theme;
    let (state, g) = (&o.next.state, &o.next.state.group);
    let step = state
        .step
        .map_or(String::new(), |s| format!(" · step {}", num(s)));
    let settings = match g.kind {
        OptimizerKind::Sgd => format!(
            "momentum {} · nesterov {} · wd {}",
            short(g.momentum),
            if g.nesterov { "yes" } else { "no" },
            short(g.weight_decay)
        ),
        _ => format!(
            "betas {}, {} · eps {} · wd {}",
            short(g.betas.0),
            short(g.betas.1),
            short(g.eps),
            short(g.weight_decay)
        ),
    };
    let mut lines = vec![
        Line::styled(
            format!("{}{step} · lr {}", g.kind.name(), short(g.lr)),
            t.style(Role::Heading),
        ),
        Line::styled(settings, t.style(Role::Dim)),
    ];
    let figures: [Figure; 6] = [
        ("mean", |s| short(s.mean)),
        ("std", |s| short(s.std)),
        ("min", |s| short(s.min)),
        ("max", |s| short(s.max)),
        ("NaN", |s| count(s.nan)),
        ("Inf", |s| count(s.inf)),
    ];
    let rows: Vec<Row> = figures
        .iter()
        .map(|(label, figure)| {
            let cells = o.stats.iter().map(|(_, stats)| match stats {
                Ok(s) => figure(s),
                Err(_) => "-".to_owned(),
            });
            let row = Row::new(std::iter::once((*label).to_owned()).chain(cells));
            // A NaN or Inf in a moment is what a loss spike leaves: said without colour too.
            let bad = matches!(*label, "NaN" | "Inf")
                && o.stats
                    .iter()
                    .any(|(_, s)| s.as_ref().is_ok_and(|s| s.nan + s.inf > 0));
            if bad {
                row.style(t.style(Role::Bad))
            } else {
                row
            }
        })
        .collect();
    let headings = std::iter::once("").chain(o.stats.iter().map(|(name, _)| *name));
    let widths: Vec<Constraint> = std::iter::once(Constraint::Length(4))
        .chain(o.stats.iter().map(|_| Constraint::Length(10)))
        .collect();
    lines.push(Line::raw(""));
    let top = lines.len() as u16;
    let table_rows = figures.len() as u16 + 1;
    Paragraph::new(lines).render(body, buf);
    Table::new(rows, widths)
        .header(Row::new(headings).style(t.style(Role::Heading)))
        .column_spacing(1)
        .render(
            Rect {
                y: body.y + top.min(body.height),
                height: body.height.saturating_sub(top).min(table_rows),
                ..body
            },
            buf,
        );
    let below = top + table_rows;
    Line::from(format!("‖update‖ / ‖param‖ = {}", short(o.next.ratio))).render(
        Rect {
            y: body.y + below.min(body.height),
            height: body.height.saturating_sub(below),
            ..body
        },
        buf,
    );
}
