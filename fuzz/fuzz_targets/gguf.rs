//! Fuzzes the GGUF header reader: any bytes give a header or an error, never a panic, and an
//! accepted header's tensors lie inside the file and dequantize without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paramscope::io::gguf::read_header;
use paramscope::tensor::decode::decode_f64;

fuzz_target!(|file: &[u8]| {
    if let Ok(header) = read_header(file, paramscope::io::gguf::value::PREVIEW) {
        let mut values = Vec::new();
        for tensor in &header.tensors {
            assert!(tensor.range.end <= file.len());
            let numel = tensor.shape.iter().product::<usize>();
            let _ = decode_f64(tensor.dtype, &file[tensor.range.clone()], 0, numel.min(4096), &mut values);
        }
    }
});
