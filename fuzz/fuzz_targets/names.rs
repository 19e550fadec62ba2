//! Fuzzes untrusted names and architecture texts: any text parses to a tree or an error, never a
//! panic or a stack overflow; what parses prints and parses back; and escaping leaves nothing a
//! terminal would obey.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paramscope::model::arch;
use paramscope::text::{escape, escape_json, is_unsafe};

fuzz_target!(|text: &str| {
    if let Ok(root) = arch::parse(text) {
        let printed = arch::print(&root);
        assert_eq!(arch::parse(&printed).map(|r| arch::print(&r)).ok(), Some(printed));
    }
    assert!(!escape(text).chars().any(is_unsafe));
    let literal = serde_json_string(text);
    assert!(!escape_json(&literal).chars().any(is_unsafe));
});

/// `text` as a JSON string literal, as serde_json writes one.
fn serde_json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
