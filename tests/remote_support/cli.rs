//! Running the binary against the fake as a user would, and reading what came back.

use std::path::Path;
use std::process::{Command, Output};

use super::FakeHub;

/// `paramscope ARGS` with only the environment given: the fake Hub as the endpoint, `home` as HOME (so
/// both caches start empty there), no proxy, no token unless `env` sets one.
pub fn run(fake: &FakeHub, home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_paramscope"));
    command
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("HF_ENDPOINT", &fake.endpoint)
        .env("NO_PROXY", "*")
        .env("PARAMSCOPE_HTTP_TIMEOUT", "10");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("the binary runs")
}

/// The stdout of a run that succeeded.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The stderr of a run that failed with exit 1.
pub fn failed(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Every request line the fake saw, in order.
pub fn log(fake: &FakeHub) -> Vec<String> {
    fake.stats().log.lock().unwrap().clone()
}

/// The CDN's request lines, in order.
pub fn cdn_log(fake: &FakeHub) -> Vec<String> {
    log(fake)
        .into_iter()
        .filter(|l| l.starts_with("Cdn"))
        .collect()
}

/// Requests to both origins.
pub fn total(fake: &FakeHub) -> u64 {
    fake.requests() + fake.cdn_requests()
}
