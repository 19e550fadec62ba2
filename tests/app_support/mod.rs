//! What the app's tests share: an app on a demo at a fixed size, the worker run in the test's own
//! thread, and a screen rendered to text.

#![allow(
    dead_code,
    reason = "each test file uses a different part of the support"
)]

use paramscope::app::action::Action;
use paramscope::app::extras::Extras;
use paramscope::app::job::Runs;
use paramscope::app::job::{Job, OpenSpec, Opened, TrainingJob};
use paramscope::app::state::App;
use paramscope::app::theme::{ColorLevel, Theme};
use paramscope::app::update::{Effects, Options, receive, update};
use paramscope::app::work::Worker;
use paramscope::model::{Model, demos};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;

/// An app, and a worker that runs its jobs in the test's thread.
pub struct Harness {
    /// The app.
    pub app: App,
    /// The worker, keeping its forward plan across jobs as the real one does.
    pub worker: Worker,
    /// Jobs queued and not yet run (see [`Harness::hold`]).
    pub queued: Vec<Job>,
    /// Whether an update asked to quit.
    pub quit: bool,
}

impl std::ops::Deref for Harness {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

impl std::ops::DerefMut for Harness {
    fn deref_mut(&mut self) -> &mut App {
        &mut self.app
    }
}

/// The app on `demo:NAME` (seed 0) at 80x24 in truecolor.
pub fn demo(name: &str) -> Harness {
    with_model(
        demos::build(name, 0).expect("a demo"),
        &format!("demo:{name}"),
        None,
    )
}

/// The app on `model`, selecting `select` if given; the jobs of the start are left queued.
pub fn with_model(model: Model, source: &str, select: Option<&str>) -> Harness {
    with_theme(model, source, select, ColorLevel::TrueColor)
}

/// [`with_model`] in this many colours.
pub fn with_theme(model: Model, source: &str, select: Option<&str>, level: ColorLevel) -> Harness {
    let opened = Opened {
        model,
        notices: Vec::new(),
        extras: Extras::default(),
        runs: Runs::Chain,
    };
    start(opened, source, select, level)
}

/// The app on a file, opened as the app opens its `MODEL` argument (with its notices, metadata
/// and plain values), in truecolor.
pub fn open_file(path: &std::path::Path) -> Harness {
    open_file_with(path, None, ColorLevel::TrueColor)
}

/// [`open_file`] selecting `select` if given, in `level` colours; the start's jobs left queued.
pub fn open_file_with(path: &std::path::Path, select: Option<&str>, level: ColorLevel) -> Harness {
    let source = path.display().to_string();
    let spec = OpenSpec {
        model: source.clone(),
        arch: None,
        seed: 0,
    };
    let opened = paramscope::app::work::open::open(&spec).expect("the file opens");
    start(opened, &source, select, level)
}

fn start(opened: Opened, source: &str, select: Option<&str>, level: ColorLevel) -> Harness {
    let (app, fx) = App::new(
        opened.model,
        Options {
            source: source.to_owned(),
            select: select.map(str::to_owned),
            input: None,
            seed: 0,
            theme: Theme { level },
            size: (80, 24),
            notices: opened.notices,
            extras: opened.extras,
            runs: opened.runs,
        },
    )
    .expect("the app opens");
    let mut h = Harness {
        app,
        worker: Worker::default(),
        queued: Vec::new(),
        quit: false,
    };
    h.take(fx);
    h
}

impl Harness {
    /// Queues an update's effects.
    pub fn take(&mut self, fx: Effects) {
        self.queued.extend(fx.jobs);
        self.quit |= fx.quit;
    }

    /// One action, its jobs left queued (to look at them, or race them).
    pub fn hold(&mut self, action: Action) {
        let fx = update(&mut self.app, action);
        self.take(fx);
    }

    /// Runs every queued job to completion, feeding replies back (which may queue more jobs).
    pub fn work(&mut self) {
        while !self.queued.is_empty() {
            for job in std::mem::take(&mut self.queued) {
                let mut replies = Vec::new();
                self.worker.execute(job, &mut |r| replies.push(r));
                for reply in replies {
                    let fx = receive(&mut self.app, reply);
                    self.take(fx);
                }
            }
        }
    }

    /// The kinds of the queued jobs, in order.
    pub fn jobs(&self) -> Vec<&'static str> {
        self.queued
            .iter()
            .map(|job| match job {
                Job::Summarize { .. } => "summarize",
                Job::Forward { .. } => "forward",
                Job::Init { .. } => "init",
                Job::Zero { .. } => "zero",
                Job::Save { .. } => "save",
                Job::Load(_) => "load",
                Job::Compare { .. } => "compare",
                Job::Detail { .. } => "detail",
                Job::Family { .. } => "family",
                Job::Part { .. } => "part",
                Job::Training(TrainingJob::Optimizer { .. }) => "optimizer",
                Job::Training(TrainingJob::Trajectory { .. }) => "trajectory",
                Job::Training(TrainingJob::Checkpoint { .. }) => "checkpoint",
            })
            .collect()
    }
}

/// Sends actions, then does the worker's jobs here and hands their replies back.
pub fn send(h: &mut Harness, actions: &[Action]) {
    for &action in actions {
        h.hold(action);
        h.work();
    }
}

/// Types `text` into whatever field has the keyboard.
pub fn type_text(h: &mut Harness, text: &str) {
    for ch in text.chars() {
        send(h, &[Action::Type(ch)]);
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

/// The selected node's path.
pub fn selected_path(app: &App) -> &str {
    app.selected_path()
}

/// The values of parameter `name`.
pub fn values(app: &App, name: &str) -> Vec<f32> {
    let (_, id) = app.doc.model.find_param(name).unwrap();
    app.doc.model.store.get(id).to_f32_vec().unwrap()
}

/// Sends actions; every one leaves a screen that renders, at the size the app was told.
pub fn send_and_draw(app: &mut Harness, actions: &[Action]) {
    send(app, actions);
    let buf = render(app, app.screen.size.0, app.screen.size.1);
    assert_eq!(text(&buf).lines().count(), usize::from(app.screen.size.1));
}
