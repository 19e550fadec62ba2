//! Fuzzes the pickle machine and the flattening after it: any bytes give values or an error,
//! never a panic, a hang or an allocation beyond the caps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paramscope::io::pickle::{flatten, unpickle};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(unpickled) = unpickle(bytes, 0) {
        assert!(unpickled.end <= bytes.len());
        let _ = flatten(&unpickled);
    }
});
