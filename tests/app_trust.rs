//! Issue 20's cases in the app: a folder of several checkpoints offers them in the picker, when
//! opened with `o` as when named on the command line (the CLI names the same choices).

mod app_support;

use std::fs;
use std::path::Path;

use app_support::{send, type_text};
use paramscope::app::action::Action;
use paramscope::app::picker;
use paramscope::app::state::Mode;
use paramscope::app::work::open::open;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A folder holding two checkpoints and no index.
fn two_checkpoints() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(fixture("zoo.safetensors"), dir.path().join("a.safetensors")).unwrap();
    fs::copy(fixture("gguf/all_types.gguf"), dir.path().join("b.gguf")).unwrap();
    dir
}

#[test]
fn opening_a_folder_of_several_checkpoints_offers_them_in_the_picker() {
    let dir = two_checkpoints();
    let choices: Vec<String> = ["a.safetensors", "b.gguf"]
        .iter()
        .map(|n| dir.path().join(n).display().to_string())
        .collect();
    let mut h = app_support::demo("mlp");
    send(&mut h, &[Action::OpenModels]);
    type_text(&mut h, &dir.path().display().to_string());
    send(&mut h, &[Action::Submit]);
    let Mode::Open(p) = &h.app.mode else {
        panic!("no picker: {:?} {:?}", h.app.mode, h.app.message);
    };
    assert_eq!(p.choices, choices);
    assert_eq!(h.app.doc.source, "demo:mlp", "nothing opened yet");
    // The second one, picked.
    send(&mut h, &[Action::Down, Action::Submit]);
    assert_eq!(h.app.mode, Mode::Browse);
    assert_eq!(h.app.doc.source, choices[1]);
}

#[test]
fn the_error_of_a_folder_of_several_names_the_picker_choices() {
    let dir = two_checkpoints();
    let spec = paramscope::app::job::OpenSpec {
        model: dir.path().display().to_string(),
        arch: None,
        seed: 0,
    };
    let Err(err) = open(&spec) else {
        panic!("a folder of two checkpoints opened");
    };
    assert_eq!(
        picker::several(&err).unwrap(),
        [
            dir.path().join("a.safetensors").display().to_string(),
            dir.path().join("b.gguf").display().to_string()
        ]
    );
}
