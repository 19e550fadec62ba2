//! What the app's tests share: an app on a demo at a fixed size, the worker run in the test's own
//! thread, and a screen rendered to text.

use paramscope::app::action::Action;
use paramscope::app::state::App;
use paramscope::app::ui::theme::{ColorLevel, Theme};
use paramscope::app::update::{Options, receive, update};
use paramscope::app::worker;
use paramscope::model::{Model, demos};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;

/// The app on `demo:NAME` (seed 0) at 80x24 in truecolor.
pub fn demo(name: &str) -> App {
    with_model(
        demos::build(name, 0).expect("a demo"),
        &format!("demo:{name}"),
        None,
    )
}

/// The app on `model`, selecting `select` if given.
pub fn with_model(model: Model, source: &str, select: Option<&str>) -> App {
    App::new(
        model,
        Options {
            source: source.to_owned(),
            choices: vec!["demo:mlp".into(), "demo:rgnet".into(), "demo:shared".into()],
            select: select.map(str::to_owned),
            input: None,
            seed: 0,
            theme: Theme {
                level: ColorLevel::TrueColor,
            },
            size: (80, 24),
        },
    )
    .expect("the app opens")
}

/// Sends actions, then does the worker's jobs here and hands their replies back.
pub fn send(app: &mut App, actions: &[Action]) {
    for &action in actions {
        update(app, action);
        work(app);
    }
}

/// Runs every queued job to completion, feeding replies back (which may queue more jobs).
pub fn work(app: &mut App) {
    while !app.outbox.is_empty() {
        for job in std::mem::take(&mut app.outbox) {
            let mut replies = Vec::new();
            worker::execute(job, &mut |r| replies.push(r));
            for reply in replies {
                receive(app, reply);
            }
        }
    }
}

/// The screen at `w` x `h`.
pub fn render(app: &App, w: u16, h: u16) -> Buffer {
    let area = Rect::new(0, 0, w, h);
    let mut buf = Buffer::empty(area);
    app.render(area, &mut buf);
    buf
}

/// The screen's characters, one line per row (every glyph the app draws is one column wide).
pub fn text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        for x in area.left()..area.right() {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

/// The row of the screen holding `needle`, and its column.
pub fn find(buf: &Buffer, needle: &str) -> Option<(u16, u16)> {
    text(buf).lines().enumerate().find_map(|(y, line)| {
        line.find(needle)
            .map(|byte| (line[..byte].chars().count() as u16, y as u16))
    })
}
