//! Untrusted bytes: whatever a file holds, the header reader answers with a header or an error,
//! never a panic, and a header it accepts never points outside the file; any names, whatever
//! their length, depth or Unicode, list with nothing a terminal would obey.

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
    agrees_with_reference(file);
}

/// Our reader (its own one-pass parse for plain headers) gives the reference crate's verdict and
/// the same tensors; it refuses more only for a name given twice, which JSON parsers let pass.
fn agrees_with_reference(file: &[u8]) {
    let ours = read_header(file);
    match (ours, safetensors::SafeTensors::read_metadata(file)) {
        (Ok(header), Ok((length, reference))) => {
            assert_eq!(header.data_start, 8 + length);
            assert_eq!(header.tensors.len(), reference.tensors().len());
            for entry in &header.tensors {
                let info = reference.info(&entry.name).expect("the same names");
                assert_eq!(entry.dtype.name(), info.dtype.to_string());
                assert_eq!(entry.shape, info.shape);
                assert_eq!(entry.offsets, info.data_offsets);
            }
            let metadata = reference.metadata().clone().unwrap_or_default();
            assert_eq!(header.metadata.len(), metadata.len());
            assert!(
                metadata
                    .iter()
                    .all(|(k, v)| header.metadata.get(k) == Some(v))
            );
        }
        (Ok(_), Err(e)) => panic!("accepted a file the reference refuses ({e})"),
        (Err(e), Ok(_)) => assert!(e.to_string().contains("twice"), "refused a valid file: {e}"),
        (Err(_), Err(_)) => {}
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

/// A file of `header` and `data` zero bytes.
fn file_of(header: &str, data: usize) -> Vec<u8> {
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.resize(file.len() + data, 0);
    file
}

#[test]
fn odd_but_valid_headers_read_as_the_reference_reads_them() {
    let entry = r#""dtype":"F32","shape":[1],"data_offsets":[0,4]"#;
    for header in [
        // Escapes in a name and in a field name, an extra field, a null or repeated metadata.
        format!(r#"{{"a\u002eb":{{{entry}}}}}"#),
        r#"{"a":{"dt\u0079pe":"F32","shape":[1],"data_offsets":[0,4]}}"#.to_owned(),
        format!(r#"{{"a":{{{entry},"extra":[1,{{}}]}}}}"#),
        format!(r#"{{"__metadata__":null,"a":{{{entry}}}}}"#),
        format!(r#"{{"__metadata__":{{"k":"1","k":"2"}},"a":{{{entry}}}}}"#),
        format!(r#"  {{"a":{{{entry}}}}}  "#),
        // Refused: a duplicate field, a missing one, a dtype of another format, a short file.
        format!(r#"{{"a":{{{entry},"dtype":"F16"}}}}"#),
        r#"{"a":{"dtype":"F32","shape":[1]}}"#.to_owned(),
        r#"{"a":{"dtype":"Q4_K","shape":[32],"data_offsets":[0,4]}}"#.to_owned(),
        format!(r#"{{"a":{{{entry}}},"b":{{"dtype":"U8","shape":[],"data_offsets":[4,5]}}}}"#),
    ] {
        for data in [4, 5] {
            agrees_with_reference(&file_of(&header, data));
        }
    }
    let names = read_header(&file_of(&format!(r#"{{"a\u002eb":{{{entry}}}}}"#), 4)).unwrap();
    assert_eq!(names.tensors[0].name, "a.b");
}

#[test]
fn the_unmutated_file_is_valid() {
    let header = read_header(&valid_file()).unwrap();
    assert_eq!(header.tensors.len(), 2);
    assert_eq!(header.metadata["4.weight"], "2.weight");
}

/// One character from each class a hostile name may carry: printable ASCII, C0/C1 controls and
/// DEL, bidi controls, format characters (Cf), line/paragraph separators, wide CJK, combining
/// marks, emoji, and the characters the formats give meaning to (`.`, `"`, `\`, `(`, `)`, `:`).
fn name_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range('a', 'z'),
        1 => proptest::char::range('0', '9'),
        1 => proptest::char::range('\u{0}', '\u{1f}'),
        1 => proptest::char::range('\u{7f}', '\u{9f}'),
        1 => prop::sample::select(vec!['\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}']),
        1 => prop::sample::select(vec!['\u{200b}', '\u{200d}', '\u{ad}', '\u{feff}', '\u{e0041}']),
        1 => prop::sample::select(vec!['\u{2028}', '\u{2029}']),
        1 => prop::sample::select(vec!['日', '本', '\u{301}', '😀', '.', '"', '\\', '(', ')', ':', ' ']),
    ]
}

/// A dotted name: 1 to 300 segments (past the 256-level bound), each up to 12 characters.
fn name() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::collection::vec(name_char(), 1..12), 1..300).prop_map(
        |segments| {
            segments
                .into_iter()
                .map(|s| s.into_iter().collect::<String>())
                .collect::<Vec<_>>()
                .join(".")
        },
    )
}

/// `paramscope tree FILE [--json]` through the library, as the binary runs it.
fn tree(path: &std::path::Path, json: bool) -> String {
    use clap::Parser as _;
    let mut args = vec!["paramscope", "tree", path.to_str().unwrap()];
    if json {
        args.push("--json");
    }
    let cli = paramscope::cli::Cli::try_parse_from(args).unwrap();
    paramscope::cli::run(cli.command.unwrap()).unwrap().stdout
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any names list, in text and JSON, with nothing a terminal obeys, and read back from JSON
    /// exactly as they were written.
    #[test]
    fn hostile_names_list_safely(names in proptest::collection::btree_set(name(), 1..6)) {
        use paramscope::tensor::Tensor;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("names.safetensors");
        let tensor = Tensor::from_f32(vec![1], &[0.5]);
        let tensors: Vec<(String, &Tensor)> = names.iter().map(|n| (n.clone(), &tensor)).collect();
        paramscope::io::safetensors::save(&path, &tensors, &std::collections::BTreeMap::new()).unwrap();
        let text = tree(&path, false);
        let raw: Vec<char> = text.chars().filter(|&c| c != '\n' && paramscope::text::is_unsafe(c)).collect();
        prop_assert!(raw.is_empty(), "raw {:?}", raw);
        let json = tree(&path, true);
        prop_assert!(!json.chars().any(|c| c != '\n' && paramscope::text::is_unsafe(c)));
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let listed: std::collections::BTreeSet<String> = value["params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        prop_assert_eq!(listed, names);
    }
}

#[test]
fn a_very_long_name_lists_aligned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.safetensors");
    let tensor = paramscope::tensor::Tensor::from_f32(vec![1], &[0.5]);
    let long = "\u{200d}".repeat(70_000);
    let tensors = vec![(long.clone(), &tensor), ("b".to_owned(), &tensor)];
    paramscope::io::safetensors::save(&path, &tensors, &std::collections::BTreeMap::new()).unwrap();
    let text = tree(&path, false);
    // Widths are counted on the escaped text, so the short name is padded to the long one.
    let escaped = "\\u{200d}".repeat(70_000);
    let long_row = text.lines().find(|l| l.contains(&escaped)).unwrap();
    let short_row = text.lines().find(|l| l.starts_with("  b ")).unwrap();
    assert_eq!(long_row.find("[1]"), short_row.find("[1]"));
}
