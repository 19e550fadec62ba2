//! Untrusted bytes: whatever a file holds, the header reader answers with a header or an error,
//! never a panic, and a header it accepts never points outside the file.

use paramscope::io::safetensors::read_header;
use proptest::prelude::*;

/// A small valid file to mutate: two tensors and metadata.
fn valid_file() -> Vec<u8> {
    let header = br#"{"__metadata__":{"4.weight":"2.weight"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]}}"#;
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header);
    file.extend(std::iter::repeat_n(7u8, 22));
    file
}

fn check(file: &[u8]) {
    if let Ok(header) = read_header(file) {
        for entry in &header.tensors {
            assert!(entry.offsets.0 <= entry.offsets.1);
            assert!(
                header.data_start + entry.offsets.1 <= file.len(),
                "a tensor past the end"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn mutated_files_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let mut file = valid_file();
        for (at, byte) in edits {
            let at = at % file.len();
            file[at] = byte;
        }
        check(&file);
    }

    #[test]
    fn truncated_files_never_panic(cut in 0usize..200) {
        let file = valid_file();
        check(&file[..cut.min(file.len())]);
    }

    #[test]
    fn random_bytes_never_panic(file in proptest::collection::vec(any::<u8>(), 0..300)) {
        check(&file);
    }
}

#[test]
fn the_unmutated_file_is_valid() {
    let header = read_header(&valid_file()).unwrap();
    assert_eq!(header.tensors.len(), 2);
    assert_eq!(header.metadata["4.weight"], "2.weight");
}
