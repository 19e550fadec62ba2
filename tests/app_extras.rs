//! What the app shows of a checkpoint besides its tensors: a GGUF file's metadata, whose arrays
//! open into their items, a pickle's plain values, a pickle's refused calls as a notice, and a
//! LoRA adapter's marks on its base.

mod app_support;

use app_support::{open_file, render, send, text};
use paramscope::app::action::Action;
use paramscope::app::state::Mode;
use std::path::{Path, PathBuf};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

/// Esc (dropping any filter), `/text`, then Enter: the tree keeps the matching rows.
fn filter(h: &mut app_support::Harness, needle: &str) {
    send(h, &[Action::Cancel, Action::StartFilter]);
    app_support::type_text(h, needle);
    send(h, &[Action::Submit]);
}

#[test]
fn gguf_metadata_lists_every_key_and_an_array_opens_into_its_items() {
    let mut h = open_file(&fixture("gguf/all_types.gguf"));
    filter(&mut h, "context_length");
    let screen = text(&render(&h.app, 100, 40));
    assert!(screen.contains("metadata ("), "{screen}");
    assert!(
        screen.contains("llama.context_length: u32 = 4096"),
        "{screen}"
    );
    filter(&mut h, "tokenizer.ggml.tokens");
    let screen = text(&render(&h.app, 100, 40));
    assert!(
        screen.contains("tokenizer.ggml.tokens: arr") && screen.contains("arr = [100 strings]"),
        "{screen}"
    );
    // The array's items are rows of their own, all 100 of them (the CLI keeps a preview of 8).
    filter(&mut h, "tokenizer.ggml.tokens[99]");
    let screen = text(&render(&h.app, 100, 40));
    assert!(screen.contains("[99] \"tok99\""), "{screen}");
}

#[test]
fn a_gguf_tensor_says_that_ggml_lists_its_dimensions_innermost_first() {
    let h = open_file(&fixture("gguf/all_types.gguf"));
    let first = app_support::selected_path(&h).to_owned();
    let shape = h.app.doc.model.find_param(&first).unwrap().1;
    let shape = h.app.doc.model.store.get(shape).shape().to_vec();
    let ggml: Vec<String> = shape.iter().rev().map(usize::to_string).collect();
    let screen = text(&render(&h.app, 120, 30));
    assert!(
        screen.contains(&format!("(ggml: {}, innermost first)", ggml.join("×"))),
        "{screen}"
    );
}

#[test]
fn a_training_checkpoint_lists_its_plain_values_and_the_value_pane_shows_one_whole() {
    let mut h = open_file(&fixture("pytorch_files/training.pt"));
    let screen = text(&render(&h.app, 100, 60));
    assert!(screen.contains("epoch = 7"), "{screen}");
    assert!(screen.contains("run = \"adam-small\""), "{screen}");
    filter(&mut h, "best_loss");
    assert_eq!(app_support::selected_path(&h), "best_loss");
    let screen = text(&render(&h.app, 100, 30));
    assert!(screen.contains(" value "), "{screen}");
    assert!(screen.contains("0.25"), "{screen}");
    // Nothing to re-initialize in a value: a message, not a dialog.
    send(&mut h, &[Action::OpenInit]);
    assert_eq!(h.app.mode, Mode::Browse);
}

#[test]
fn a_pickle_that_calls_os_system_is_named_in_a_notice_at_start() {
    let h = open_file(&fixture("pytorch_files/hostile.pt"));
    let Mode::Popup(popup) = &h.app.mode else {
        panic!("no notice: {:?}", h.app.mode)
    };
    assert!(!popup.error);
    assert!(
        popup.text.contains("the pickle names posix.system"),
        "{}",
        popup.text
    );
    assert!(popup.text.contains("paramscope did not"), "{}", popup.text);
    let screen = text(&render(&h.app, 80, 24));
    assert!(screen.contains("payload = <posix.system>"), "{screen}");
}

#[test]
fn the_filter_finds_a_token_by_its_text_and_esc_keeps_it_selected() {
    let mut h = open_file(&fixture("gguf/all_types.gguf"));
    send(&mut h, &[Action::StartFilter]);
    app_support::type_text(&mut h, "TOK42");
    assert_eq!(
        app_support::selected_path(&h),
        "tokenizer.ggml.tokens[42]",
        "the token's text is what the row shows"
    );
    send(&mut h, &[Action::Cancel]);
    assert_eq!(h.app.mode, Mode::Browse);
    assert_eq!(h.app.tree.filter(), "");
    assert_eq!(app_support::selected_path(&h), "tokenizer.ggml.tokens[42]");
    let screen = text(&render(&h.app, 100, 40));
    assert!(screen.contains("[42] \"tok42\""), "{screen}");
}

#[test]
fn a_gguf_adapter_marks_its_base_as_the_peft_folder_it_came_from_does() {
    use paramscope::app::job::OpenSpec;
    use paramscope::app::work::open::open_with_base;
    let opened = |adapter: &str, base: &str| {
        let spec = OpenSpec {
            model: fixture(adapter).display().to_string(),
            arch: None,
            seed: 0,
        };
        open_with_base(&spec, Some(&fixture(base).display().to_string())).unwrap()
    };
    let peft = opened("adapters/llama_gguf_lora", "gguf_run/llama_original");
    let gguf = opened("adapters/llama_gguf_lora.gguf", "gguf_run/llama_f32.gguf");
    assert_eq!(gguf.extras.adapted.len(), 11);
    assert_eq!(gguf.extras.adapted, peft.extras.adapted);
    assert!(
        gguf.notices
            .iter()
            .any(|n| n.contains("11 of 11 target modules adapted, 0 findings")),
        "{:?}",
        gguf.notices
    );
}
