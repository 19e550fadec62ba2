//! The `.metadata` reader against damaged copies of a real one: every truncation and every byte
//! changed, each an error or a reading, never a panic.

use super::metadata;

/// A `.metadata` written by `dcp.save` on four gloo ranks (tests/fixtures/dcp/make.py).
fn real() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/dcp/four_ranks/.metadata"
    );
    std::fs::read(path).unwrap()
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = real();
    let whole = metadata::read(&bytes).unwrap();
    assert!(whole.entries.len() >= 3 && whole.foreign.is_empty());
    for n in 0..bytes.len() {
        assert!(metadata::read(&bytes[..n]).is_err(), "{n} bytes read");
    }
}

#[test]
fn every_changed_byte_is_an_error_or_a_reading() {
    let mut bytes = real();
    let mut read = 0;
    for i in 0..bytes.len() {
        for flip in [0x01, 0x80, 0xff] {
            bytes[i] ^= flip;
            read += usize::from(metadata::read(&bytes).is_ok());
            bytes[i] ^= flip;
        }
    }
    // Most changes land in a number or a name and still read; the rest fail with a line.
    assert!(read > 0 && read < 3 * bytes.len(), "{read}");
}

/// BINUNICODE `text`.
fn text(text: &str) -> Vec<u8> {
    let mut out = vec![b'X'];
    out.extend((text.len() as u32).to_le_bytes());
    out.extend(text.as_bytes());
    out
}

/// GLOBAL `module.name`, then an empty tuple and NEWOBJ: an object of that class.
fn object(module: &str, name: &str) -> Vec<u8> {
    [format!("c{module}\n{name}\n").as_bytes(), b")\x81"].concat()
}

/// A `.metadata` of one tensor `w` in one chunk whose offsets tuple is memoized inside its
/// record and read back as the storage index's offset, with `extra` as one more field.
fn hand_made(extra: &[u8]) -> Vec<u8> {
    const M: &str = "torch.distributed.checkpoint.metadata";
    [
        b"\x80\x02".to_vec(),
        object(M, "Metadata"),
        b"}(".to_vec(),
        text("state_dict_metadata"),
        b"}(".to_vec(),
        text("w"),
        object(M, "TensorStorageMetadata"),
        b"}(".to_vec(),
        text("properties"),
        object(M, "TensorProperties"),
        b"ctorch\nfloat32\n\x85b".to_vec(),
        text("size"),
        b"K\x02\x85".to_vec(),
        text("chunks"),
        b"](".to_vec(),
        object(M, "ChunkStorageMetadata"),
        b"}(".to_vec(),
        text("offsets"),
        b"K\x00\x85q\x01".to_vec(),
        text("sizes"),
        b"K\x02\x85ub".to_vec(),
        b"eubu".to_vec(),
        text("storage_data"),
        b"}(".to_vec(),
        object(M, "MetadataIndex"),
        b"}(".to_vec(),
        text("fqn"),
        text("w"),
        text("offset"),
        b"h\x01ub".to_vec(),
        object("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
        b"}(".to_vec(),
        text("relative_path"),
        text("f"),
        text("offset"),
        b"K\x00".to_vec(),
        text("length"),
        b"K\x08ub".to_vec(),
        b"u".to_vec(),
        extra.to_vec(),
        b"ub.".to_vec(),
    ]
    .concat()
}

#[test]
fn a_value_read_back_from_a_dropped_record_is_kept() {
    // The chunk record's state is dropped at its BUILD; the tuple read back must not be.
    let pickle = hand_made(b"");
    let read = metadata::read(&pickle).unwrap_or_else(|e| panic!("{e}"));
    let [(name, metadata::Entry::Tensor(t))] = &read.entries[..] else {
        panic!("{:?}", read.entries);
    };
    assert_eq!((name.as_str(), &t.size[..]), ("w", &[2][..]));
    let chunk = &t.chunks[0];
    assert_eq!((&chunk.offsets[..], &chunk.sizes[..]), (&[0][..], &[2][..]));
    assert_eq!((chunk.location.file, chunk.location.length), ("f", 8));
}

#[test]
fn a_foreign_global_is_named_and_never_called() {
    let extra = [
        text("planner_data"),
        b"cos\nsystem\n".to_vec(),
        text("ls"),
        b"\x85R".to_vec(),
    ];
    let pickle = hand_made(&extra.concat());
    let read = metadata::read(&pickle).unwrap();
    assert_eq!(read.foreign, ["os.system"]);
    assert_eq!(read.entries.len(), 1);
}
