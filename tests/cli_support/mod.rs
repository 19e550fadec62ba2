//! What the tests that run the binary share: running it to its end, and reading its JSON.

#![allow(
    dead_code,
    reason = "each test file uses a different part of the support"
)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs `paramscope ARGS` and waits for it.
pub fn paramscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_paramscope"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Runs `paramscope ARGS`, which must succeed (else its stderr is the failure).
pub fn succeeded(args: &[&str]) -> Output {
    let out = paramscope(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What `paramscope ARGS` printed, as JSON, once it has succeeded (else its stderr is the failure).
pub fn stdout_json(args: &[&str]) -> serde_json::Value {
    serde_json::from_slice(&succeeded(args).stdout).expect("stdout is JSON")
}

/// The path of `tests/fixtures/NAME`, as a command-line argument.
pub fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}
