//! Escaping happens at the edge only: names, paths and metadata from files travel raw through the
//! program (errors and warnings included) and are escaped where text meets the terminal or JSON.
//! This test reads `src/` and fails when `text::escape` (or `escape_lines`, `escape_json`) is
//! named in any other file, so that a new call inside a codec, an error or a warning is caught.

use std::path::{Path, PathBuf};

/// The edges: where text meets the terminal or JSON (a folder ends in `/`), and why.
const EDGES: &[(&str, &str)] = &[
    ("src/text.rs", "the escaping itself"),
    ("src/main.rs", "the binary's error line and its stdout"),
    (
        "src/cli/",
        "each subcommand's printed output, the CLI's printing and its JSON writer",
    ),
    ("src/app/ui/", "the app's rendering into its buffer"),
    (
        "src/io/fault/sigbus.rs",
        "the SIGBUS handler's one line, escaped when the map is registered: a handler cannot allocate",
    ),
];

/// Files outside the edge that still escape: to be moved to the edge. The list may only shrink.
const KNOWN_EXCEPTIONS: &[&str] = &[
    // to be moved to the edge: the app's status-bar text, view text and errors.
    "src/app/family_view.rs",
    // the chain panel's lines, split out of family_view.rs with their escapes.
    "src/app/forward_view.rs",
    "src/app/layout.rs",
    "src/app/terminal.rs",
];

/// The escaping functions of `crate::text`.
const ESCAPES: [&str; 3] = ["escape", "escape_lines", "escape_json"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `line` without a `//` comment (a `//` inside a word, as in `https://`, is kept).
fn code_of(line: &str) -> &str {
    let trimmed = line.trim_start();
    if trimmed.starts_with("//") {
        return "";
    }
    line.find(" //").map_or(line, |at| &line[..at])
}

/// Whether `code` names one of [`ESCAPES`] as a whole word that is not a method (`.escape_debug()`
/// and the like are std's, not ours).
fn names_an_escape(code: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    code.match_indices("escape").any(|(at, _)| {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| word(c) || c == '.') {
            return false;
        }
        let end = code[at..]
            .find(|c: char| !word(c))
            .map_or(code.len(), |n| at + n);
        ESCAPES.contains(&&code[at..end])
    })
}

/// Every `file:line` naming an escape, by file (relative to the crate, `/`-separated).
fn call_sites(root: &Path) -> Vec<(String, usize)> {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut sites = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if names_an_escape(code_of(line)) {
                sites.push((relative.clone(), n + 1));
            }
        }
    }
    sites
}

fn is_edge(file: &str) -> bool {
    EDGES.iter().any(|(edge, _)| {
        if edge.ends_with('/') {
            file.starts_with(edge)
        } else {
            file == *edge
        }
    })
}

#[test]
fn escaping_is_called_only_at_the_edge() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sites = call_sites(root);
    assert!(
        sites.iter().any(|(f, _)| f == "src/main.rs"),
        "the scan finds main's escape calls (else it finds nothing at all)"
    );
    let outside: Vec<String> = sites
        .iter()
        .filter(|(file, _)| !is_edge(file) && !KNOWN_EXCEPTIONS.contains(&file.as_str()))
        .map(|(file, line)| format!("{file}:{line}"))
        .collect();
    assert!(
        outside.is_empty(),
        "escaping outside the edge (keep names raw; escape where text meets the terminal or \
         JSON): {}",
        outside.join(", ")
    );
    // The list only shrinks: an exception that no longer escapes must leave it, so that it cannot
    // come back unnoticed.
    let stale: Vec<&str> = KNOWN_EXCEPTIONS
        .iter()
        .copied()
        .filter(|known| !sites.iter().any(|(file, _)| file == known))
        .collect();
    assert!(
        stale.is_empty(),
        "known exceptions that no longer escape: remove them from KNOWN_EXCEPTIONS: {}",
        stale.join(", ")
    );
}

#[test]
fn the_scan_tells_calls_from_other_words() {
    assert!(names_an_escape("    let s = escape(&name);"));
    assert!(names_an_escape("use crate::text::{escape, width};"));
    assert!(names_an_escape("        .map(escape_lines)"));
    assert!(names_an_escape("#[error(\"{}\", crate::text::escape(.0))]"));
    assert!(!names_an_escape("    let shown = name.escape_debug();"));
    assert!(!names_an_escape("    let escaped = unescape(&text);"));
    assert!(!names_an_escape(code_of("    // escape(&name) was here")));
    assert!(!names_an_escape(code_of(
        "    /// names are escaped where shown"
    )));
    assert!(!names_an_escape(code_of("    f(x); // escape(x) later")));
    assert!(is_edge("src/cli/tree.rs") && is_edge("src/app/ui/mod.rs"));
    assert!(!is_edge("src/io/npy.rs") && !is_edge("src/app/update/mod.rs"));
}
