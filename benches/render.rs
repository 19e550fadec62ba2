//! Render time of the app's screen for a model of 10,000 tensors: it must stay well under 5 ms.

use paramscope::app::state::App;
use paramscope::app::theme::{ColorLevel, Theme};
use paramscope::app::update::Options;
use paramscope::model::demos::Builder;
use paramscope::model::{Model, Module, ModuleKind};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;

fn main() {
    divan::main();
}

/// 5,000 Linear(16, 16) layers in 100 blocks: 10,000 tensors.
fn big_model() -> Model {
    let mut builder = Builder::new(0);
    let mut root = Module::new("", ModuleKind::Sequential);
    for b in 0..100 {
        let mut block = Module::new(b.to_string(), ModuleKind::Sequential);
        for l in 0..50 {
            block.children.push(builder.linear(&l.to_string(), 16, 16));
        }
        root.children.push(block);
    }
    Model {
        root: root.into(),
        store: builder.store,
        metadata: std::collections::BTreeMap::new(),
    }
}

fn app(size: (u16, u16)) -> App {
    App::new(
        big_model(),
        Options {
            source: "bench".into(),
            select: None,
            input: None,
            seed: 0,
            theme: Theme {
                level: ColorLevel::TrueColor,
            },
            size,
            notices: Vec::new(),
            runs: paramscope::app::job::Runs::Chain,
            extras: paramscope::app::extras::Extras::default(),
        },
    )
    .expect("the model loads")
    .0
}

#[divan::bench(args = [(80, 24), (300, 100)])]
fn render_10k_tensors(bencher: divan::Bencher, size: (u16, u16)) {
    let app = app(size);
    let area = Rect::new(0, 0, size.0, size.1);
    let mut buf = Buffer::empty(area);
    bencher.bench_local(|| {
        (&app).render(area, &mut buf);
    });
}
