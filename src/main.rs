//! The `paramscope` binary.

fn main() {}
