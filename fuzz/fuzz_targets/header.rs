//! Fuzzes the safetensors header reader: any bytes give a header or an error, never a panic; an
//! accepted header never points outside the file; and the verdict is the reference crate's (our
//! one-pass reader of plain headers may refuse more only for a name given twice).
#![no_main]

use libfuzzer_sys::fuzz_target;
use paramscope::io::safetensors::read_header;

fuzz_target!(|file: &[u8]| {
    let ours = read_header(file);
    if let Ok(header) = &ours {
        for entry in &header.tensors {
            assert!(header.data_start + entry.offsets.1 <= file.len());
        }
    }
    match (ours, safetensors::SafeTensors::read_metadata(file)) {
        (Ok(header), Ok((length, reference))) => {
            assert_eq!(header.data_start, 8 + length);
            assert_eq!(header.tensors.len(), reference.tensors().len());
            for entry in &header.tensors {
                let info = reference.info(&entry.name).expect("the same names");
                assert_eq!(entry.shape, info.shape);
                assert_eq!(entry.offsets, info.data_offsets);
            }
        }
        (Ok(_), Err(e)) => panic!("accepted a file the reference refuses ({e})"),
        (Err(e), Ok(_)) => assert!(e.to_string().contains("twice"), "refused a valid file: {e}"),
        (Err(_), Err(_)) => {}
    }
});
