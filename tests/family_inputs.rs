//! What a family's inputs can do to the process: hostile `tokenizer.json` files (made by
//! `tests/fixtures/tokenizer_hostile/make.py`, whose expected.json says what the reference
//! tokenizers library does with each) and sequences longer than the config's positions. Each is
//! one line and exit 1, never a panic or an abort.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use paramscope::families::tokenize::TextTokenizer;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn expected() -> Value {
    let text = fs::read_to_string(fixture("tokenizer_hostile/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A folder holding `name` as its tokenizer.json.
fn folder_with(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    fs::copy(fixture(&format!("tokenizer_hostile/{name}")), &path).unwrap();
    (dir, path)
}

/// The error opening `name`, or encoding "AB a" with it.
fn tokenizer_error(name: &str) -> (String, PathBuf, tempfile::TempDir) {
    let (dir, path) = folder_with(name);
    let err = match TextTokenizer::open(dir.path()) {
        Ok(tokenizer) => tokenizer.encode("AB a").unwrap_err(),
        Err(err) => err,
    };
    (err.to_string(), path, dir)
}

#[test]
fn a_real_charsmap_passes_the_checks_and_encodes_as_the_reference() {
    let want = &expected()["valid.json"]["ids"];
    let (dir, _) = folder_with("valid.json");
    let tokenizer = TextTokenizer::open(dir.path()).unwrap();
    for (text, ids) in want.as_object().unwrap() {
        let ids: Vec<u32> = ids
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(tokenizer.encode(text).unwrap(), ids, "{text}");
    }
}

#[test]
fn charsmaps_the_crate_would_trip_on_are_refused_first() {
    let expected = expected();
    for (name, said) in [
        (
            "charsmap_prefix_past_end.json",
            "precompiled_charsmap: the trie claims 4294967292 bytes, but 1028 follow the length prefix",
        ),
        (
            "charsmap_short.json",
            "precompiled_charsmap: 2 bytes is shorter than its 4-byte length prefix",
        ),
        (
            "charsmap_empty_trie.json",
            "precompiled_charsmap: the trie is empty",
        ),
        (
            "charsmap_trie_cut.json",
            "precompiled_charsmap: trie node 64 reads units past the trie's 128",
        ),
        (
            "charsmap_value_past_end.json",
            "precompiled_charsmap: a replacement starts at byte 2 of the 1-byte normalized strings, past their end or inside a character",
        ),
        (
            "charsmap_value_mid_char.json",
            "precompiled_charsmap: a replacement starts at byte 2 of the 4-byte normalized strings, past their end or inside a character",
        ),
        (
            "deep_nesting.json",
            "arrays and objects nest more than 32 deep",
        ),
    ] {
        let (err, path, _dir) = tokenizer_error(name);
        assert_eq!(err, format!("{}: {said}", path.display()), "{name}");
        // The reference (the same crate) panics on every charsmap here.
        if name.starts_with("charsmap") {
            assert_eq!(expected[name]["reference"], "panic", "{name}");
        }
    }
}

#[test]
fn a_panic_nothing_foresaw_is_an_error_naming_the_file() {
    let want = &expected()["template_undefined_special.json"];
    assert_eq!(want["reference"], "panic");
    let (err, path, _dir) = tokenizer_error("template_undefined_special.json");
    assert_eq!(
        err,
        format!(
            "{}: the tokenizers crate failed while encoding: {}",
            path.display(),
            want["message"].as_str().unwrap()
        )
    );
}

/// A copy of the `family` fixture folder, with `tokenizer` (a tokenizer_hostile file) as its
/// tokenizer.json when given, and `max_position_embeddings` set to `positions` when given.
fn family_folder(
    family: &str,
    tokenizer: Option<&str>,
    positions: Option<u64>,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_folder(&fixture(&format!("families/{family}")), dir.path());
    if let Some(name) = tokenizer {
        fs::copy(
            fixture(&format!("tokenizer_hostile/{name}")),
            dir.path().join("tokenizer.json"),
        )
        .unwrap();
    }
    if let Some(positions) = positions {
        let path = dir.path().join("config.json");
        let mut config: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        config["max_position_embeddings"] = positions.into();
        fs::write(&path, config.to_string()).unwrap();
    }
    dir
}

/// Copies `from`'s files and folders into `to`.
fn copy_folder(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            fs::create_dir(&target).unwrap();
            copy_folder(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Runs `forward` on `folder` with `args` after; the exit code and stderr.
fn forward(folder: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_paramscope"))
        .arg("forward")
        .arg(folder)
        .args(args)
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn the_cli_says_a_hostile_tokenizer_in_one_line() {
    for name in ["charsmap_trie_cut.json", "template_undefined_special.json"] {
        let dir = family_folder("gpt2", Some(name), None);
        let (code, stderr) = forward(dir.path(), &["--text", "a b"]);
        assert_eq!(code, Some(1), "{name}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains("tokenizer.json: "),
            "{name}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
}

#[test]
fn a_sequence_longer_than_the_configs_positions_is_refused_in_every_family() {
    // Llama's family is given 16 positions; BERT and GPT-2 keep their position tables' 64 and 32
    // (config.json must match the table).
    for (family, positions, set) in [
        ("llama", 16, true),
        ("mistral", 16, true),
        ("qwen2", 16, true),
        ("bert", 64, false),
        ("gpt2", 32, false),
    ] {
        let dir = family_folder(family, None, set.then_some(positions));
        let ids: Vec<String> = (1..=positions + 1).map(|i| i.to_string()).collect();
        let (code, stderr) = forward(dir.path(), &["--tokens", &ids.join(",")]);
        assert_eq!(code, Some(1), "{family}: {stderr}");
        assert_eq!(
            stderr,
            format!(
                "error: {} tokens is more than the model's {positions} positions (max_position_embeddings in config.json)\n",
                positions + 1
            ),
            "{family}"
        );
        let (code, stderr) = forward(dir.path(), &["--tokens", &ids[..ids.len() - 1].join(",")]);
        assert_eq!(code, Some(0), "{family}: {stderr}");
    }
}
