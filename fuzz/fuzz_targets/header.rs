//! Fuzzes the safetensors header reader: any bytes give a header or an error, never a panic, and
//! an accepted header never points outside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paramscope::io::safetensors::read_header;

fuzz_target!(|file: &[u8]| {
    if let Ok(header) = read_header(file) {
        for entry in &header.tensors {
            assert!(header.data_start + entry.offsets.1 <= file.len());
        }
    }
});
