//! Committed fixtures as the test binaries find them: a file of a fixture folder, and the
//! `expected.json` its generator wrote beside the files.

use std::path::PathBuf;

use serde_json::{Map, Value};

/// `tests/fixtures/FOLDER/NAME`.
pub fn path(folder: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(folder)
        .join(name)
}

/// The object in `tests/fixtures/FOLDER/expected.json`, by key.
pub fn expected(folder: &str) -> Map<String, Value> {
    let text = std::fs::read_to_string(path(folder, "expected.json")).unwrap();
    match serde_json::from_str::<Value>(&text).unwrap() {
        Value::Object(map) => map,
        other => panic!("{folder}/expected.json is not an object: {other}"),
    }
}
