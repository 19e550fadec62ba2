//! The `.metadata` reader against damaged copies of a real one: every truncation and every byte
//! changed, each an error or a reading, never a panic; and the straight reading against the
//! machine's on every fixture and every change made to it, the two the same wherever the straight
//! one reads.

use super::{fast, metadata, read_metadata};
use crate::io::pickle::reader::op;

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
    let whole = read_metadata(&bytes).unwrap();
    assert!(whole.entries.len() >= 3 && whole.foreign.is_empty());
    for n in 0..bytes.len() {
        assert!(read_metadata(&bytes[..n]).is_err(), "{n} bytes read");
    }
}

#[test]
fn every_changed_byte_is_an_error_or_a_reading() {
    let mut bytes = real();
    let mut read = 0;
    for i in 0..bytes.len() {
        for flip in [0x01, 0x80, 0xff] {
            bytes[i] ^= flip;
            read += usize::from(read_metadata(&bytes).is_ok());
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
    let read = read_metadata(&pickle).unwrap_or_else(|e| panic!("{e}"));
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
    let read = read_metadata(&pickle).unwrap();
    assert_eq!(read.foreign, ["os.system"]);
    assert_eq!(read.entries.len(), 1);
}

/// Every `.metadata` under tests/fixtures/dcp: torch's own, then the damaged ones.
fn fixtures() -> Vec<(String, Vec<u8>)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dcp");
    let mut found = Vec::new();
    for name in ["single", "two_ranks", "four_ranks"] {
        found.push(root.join(name).join(".metadata"));
    }
    let mut hostile: Vec<_> = std::fs::read_dir(root.join("hostile"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    hostile.sort();
    found.extend(hostile);
    found
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

/// The straight reading, where it reads `bytes`, is the machine's.
fn same_reading(bytes: &[u8], what: &str) -> bool {
    let Some(straight) = fast::read(bytes) else {
        return false;
    };
    match metadata::read_by_machine(bytes) {
        Ok(machine) => assert_eq!(straight, machine, "{what}"),
        Err(e) => panic!("{what}: read straight through, but the machine says {e}"),
    }
    true
}

#[test]
fn the_straight_reading_is_the_machines_on_every_fixture() {
    for (path, bytes) in fixtures() {
        let hostile = path.contains("hostile");
        let read = same_reading(&bytes, &path);
        // torch's own files are read straight through; of the damaged ones, those whose damage
        // only shows in the folder (a missing or escaping file, a transform, a range past the
        // end), and no other.
        let folder_only = ["missing_file", "escaping", "transform", "past_end"]
            .iter()
            .any(|n| path.contains(n));
        assert_eq!(read, !hostile || folder_only, "{path}");
    }
}

/// The length of the opcode at `at` with its argument (the opcodes torch's `.metadata` uses).
fn op_len(bytes: &[u8], at: usize) -> usize {
    let n = |k: usize| {
        let mut v = [0u8; 8];
        v[..k].copy_from_slice(&bytes[at + 1..at + 1 + k]);
        u64::from_le_bytes(v) as usize
    };
    1 + match bytes[at] {
        op::PROTO | op::BININT1 | op::BINGET | op::BINPUT => 1,
        op::BININT2 => 2,
        op::BININT | op::LONG_BINGET | op::LONG_BINPUT => 4,
        op::FRAME | op::BINFLOAT => 8,
        op::SHORT_BINUNICODE | op::SHORT_BINBYTES | op::LONG1 => 1 + n(1),
        op::BINUNICODE | op::BINBYTES => 4 + n(4),
        _ => 0,
    }
}

/// `bytes` with its frames taken out and new ones put in, each holding `per` opcodes (a last
/// stretch under four bytes left unframed, as the pickler does).
fn reframed(bytes: &[u8], per: usize) -> Vec<u8> {
    let ops = opcodes(bytes);
    let mut out = ops[0].to_vec(); // PROTO
    let groups: Vec<_> = ops[1..].chunks(per).collect();
    for (k, group) in groups.iter().enumerate() {
        let body = group.concat();
        if body.len() >= 4 || k + 1 < groups.len() {
            out.push(op::FRAME);
            out.extend((body.len() as u64).to_le_bytes());
        }
        out.extend(body);
    }
    out
}

#[test]
fn frames_anywhere_between_opcodes_read_the_same() {
    for (path, bytes) in fixtures().into_iter().take(3) {
        let whole = fast::read(&bytes).unwrap();
        for per in [1, 2, 3, 5, 8, 13, 64, 1 << 20] {
            let framed = reframed(&bytes, per);
            assert!(
                same_reading(&framed, &path),
                "{path}, {per} opcodes a frame"
            );
            assert_eq!(fast::read(&framed).unwrap(), whole, "{path}, {per} a frame");
        }
        // A FRAME inside a frame, or a frame running past the end, is left to the machine.
        let mut inside = bytes.clone();
        let at = bytes.len() / 2;
        let at = (at..bytes.len()).find(|&i| is_op_start(&bytes, i)).unwrap();
        inside.splice(
            at..at,
            [[op::FRAME].as_slice(), &9u64.to_le_bytes()].concat(),
        );
        assert!(fast::read(&inside).is_none(), "{path}");
        let mut long = bytes.clone();
        long[3..11].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        assert!(fast::read(&long).is_none(), "{path}");
    }
}

/// Whether an opcode starts at `i` of `bytes` (walking from the start).
fn is_op_start(bytes: &[u8], i: usize) -> bool {
    let mut at = 0;
    while at < i {
        at += op_len(bytes, at);
    }
    at == i
}

#[test]
fn every_damaged_copy_read_straight_through_is_read_as_the_machine_reads_it() {
    for (path, original) in fixtures().into_iter().take(3) {
        let mut bytes = original.clone();
        let mut straight = 0;
        for i in 0..bytes.len() {
            for flip in [0x01, 0x80, 0xff] {
                bytes[i] ^= flip;
                straight +=
                    usize::from(same_reading(&bytes, &format!("{path}, byte {i} ^ {flip}")));
                bytes[i] ^= flip;
            }
        }
        for n in 0..bytes.len() {
            assert!(!same_reading(&bytes[..n], &path), "{path}: {n} bytes read");
        }
        // Many changes (to a name, a number) still read straight through, and are compared.
        assert!(straight > bytes.len() / 4, "{path}: {straight}");
    }
}

/// The opcodes of `bytes` up to its STOP, frames left out.
fn opcodes(bytes: &[u8]) -> Vec<&[u8]> {
    let mut ops = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = op_len(bytes, at);
        if bytes[at] != op::FRAME {
            ops.push(&bytes[at..at + len]);
        }
        if bytes[at] == op::STOP {
            break;
        }
        at += len;
    }
    ops
}

#[test]
fn the_wider_encodings_of_the_same_values_read_the_same() {
    // BINGET as LONG_BINGET, SHORT_BINUNICODE as BINUNICODE, BININT1 as BININT2 and BININT, as
    // a pickle past 256 memo entries or 255-byte names writes them.
    for (path, bytes) in fixtures().into_iter().take(3) {
        let whole = fast::read(&bytes).unwrap();
        let wide: Vec<u8> = opcodes(&bytes)
            .into_iter()
            .flat_map(|o| match o[0] {
                op::BINGET => [&[op::LONG_BINGET][..], &u32::from(o[1]).to_le_bytes()].concat(),
                op::SHORT_BINUNICODE => [
                    &[op::BINUNICODE][..],
                    &(u32::from(o[1])).to_le_bytes(),
                    &o[2..],
                ]
                .concat(),
                op::BININT1 if o[1] % 2 == 0 => {
                    [&[op::BININT2][..], &u16::from(o[1]).to_le_bytes()].concat()
                }
                op::BININT1 => [&[op::BININT][..], &i32::from(o[1]).to_le_bytes()].concat(),
                _ => o.to_vec(),
            })
            .collect();
        assert!(same_reading(&wide, &path), "{path}");
        let wide = fast::read(&wide).unwrap();
        // The names borrow other bytes: compare what they say.
        assert_eq!(format!("{wide:?}"), format!("{whole:?}"), "{path}");
    }
}

#[test]
fn every_opcode_dropped_doubled_or_swapped_reads_as_the_machine_reads_it() {
    for (path, bytes) in fixtures().into_iter().take(3) {
        let ops = opcodes(&bytes);
        let mut straight = 0;
        for i in 1..ops.len() {
            let mut variants = Vec::new();
            let mut dropped = ops.clone();
            dropped.remove(i);
            variants.push(dropped);
            let mut doubled = ops.clone();
            doubled.insert(i, ops[i]);
            variants.push(doubled);
            if i + 1 < ops.len() {
                let mut swapped = ops.clone();
                swapped.swap(i, i + 1);
                variants.push(swapped);
            }
            for v in variants {
                straight += usize::from(same_reading(&v.concat(), &format!("{path}, opcode {i}")));
            }
        }
        assert!(straight > 0, "{path}");
    }
}

/// `DCP_METADATA=PATH cargo test --release -- --ignored`: the same comparison on a `.metadata`
/// outside the fixtures (a large one spans many frames and reads its memo back by 4-byte index).
#[test]
#[ignore = "needs DCP_METADATA"]
fn the_straight_reading_is_the_machines_on_a_given_file() {
    let path = std::env::var("DCP_METADATA").expect("DCP_METADATA");
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        same_reading(&bytes, &path),
        "{path} is not read straight through"
    );
}
