//! The zip layout: `<name>/data.pkl` (the pickle), `<name>/data/<key>` (each storage, stored
//! uncompressed), `<name>/byteorder`, `<name>/version`; a TorchScript archive adds `code/` and
//! `constants.pkl`. The `zip` crate reads the central directory (through the map, or the ranges a
//! remote file's [`Store`] fetched); each entry's bytes then lie after its local header.

use std::collections::HashMap;
use std::ops::Range;

use zip::{CompressionMethod, ZipArchive};

use super::foreign::Foreign;
use super::record::{Header, Record};
use super::store::{ReadSeek, Store};
use super::{Contents, Error, assemble};
use crate::io::pickle;

/// The zip archive as the reader holds it.
type Zip<'a> = ZipArchive<Box<dyn ReadSeek + 'a>>;

/// Opens a zip-layout file from `store`. Every pickle the archive holds is run, for the foreign
/// globals it names; the tensors come from the `data.pkl` torch would load.
pub(super) fn open(store: &Store, foreign: &mut Foreign) -> Result<Contents, Error> {
    let zip = ZipArchive::new(store.zip_reader())
        .map_err(|e| Error::Layout(format!("not a readable zip archive (truncated?): {e}")))?;
    if zip.has_duplicate_names() {
        return Err(Error::DuplicateEntry);
    }
    let names: HashMap<&[u8], usize> = zip
        .file_names_raw()
        .enumerate()
        .map(|(i, name)| (name, i))
        .collect();
    let range = |index: usize, what: &str| store.span(&entry(&zip, index, what)?);
    let bytes = |span: &Range<u64>| store.read(span.clone());
    let is_pickle = |n: &[u8]| {
        n.strip_suffix(b"/data.pkl")
            .or_else(|| n.strip_suffix(b"/constants.pkl"))
            .is_some_and(|folder| !folder.contains(&b'/'))
    };
    // Any pickle torch may load (another folder's data.pkl, a TorchScript constants.pkl) is run
    // for the globals it names; its values are not shown.
    let mut pickles: Vec<(&[u8], usize)> = names
        .iter()
        .filter(|(n, _)| is_pickle(n))
        .map(|(n, i)| (*n, *i))
        .collect();
    pickles.sort_unstable_by_key(|&(_, i)| i);
    let loaded = loaded_pickle(&zip, &names)?;
    for &(name, index) in &pickles {
        if name != loaded {
            let span = range(index, &String::from_utf8_lossy(name))?;
            foreign.unpickle(&bytes(&span)?, span.start as usize)?;
        }
    }

    let prefix = &loaded[..loaded.len() - b"data.pkl".len()];
    let named = |suffix: &str| -> Option<usize> {
        let mut name = prefix.to_vec();
        name.extend_from_slice(suffix.as_bytes());
        names.get(name.as_slice()).copied()
    };
    let big_endian = match named("byteorder") {
        Some(i) => match &*bytes(&range(i, "byteorder")?)? {
            b"little" => false,
            b"big" => true,
            other => {
                // Raw: the message is escaped once, where it is printed.
                return Err(Error::Layout(format!(
                    "byteorder says \"{}\", not little or big",
                    String::from_utf8_lossy(other)
                )));
            }
        },
        None => false,
    };
    let pickle_range = range(names[loaded], "data.pkl")?;
    let unpickled = foreign.unpickle(&bytes(&pickle_range)?, pickle_range.start as usize)?;
    let mut code_files: Vec<(usize, String)> = names
        .iter()
        .filter_map(|(n, &i)| {
            let code = n.strip_prefix(prefix)?.strip_prefix(b"code/")?;
            code.ends_with(b".py")
                .then(|| (i, String::from_utf8_lossy(code).into_owned()))
        })
        .collect();
    code_files.sort_unstable();
    let torchscript = named("constants.pkl").is_some() || !code_files.is_empty();
    if torchscript {
        // A TorchScript archive's own classes (`__torch__.…`) are defined by its code files, and
        // `torch.jit._pickle` rebuilds its lists: torch.jit.load runs those, and they are named
        // as its code instead.
        foreign.retain(|g| !g.starts_with("__torch__.") && !g.starts_with("torch.jit._pickle."));
    }

    let mut record = |s: &pickle::Storage| -> Result<Record, Error> {
        let what = format!("storage {}", s.key);
        let index = named(&format!("data/{}", s.key)).ok_or_else(|| {
            Error::Layout(format!(
                "{what} is missing: the archive has no {}data/{}",
                String::from_utf8_lossy(prefix),
                s.key
            ))
        })?;
        entry(&zip, index, &what)
    };
    let mut contents = assemble(&unpickled, store, &mut record, big_endian)?;
    contents.torchscript = torchscript;
    contents.code_files = code_files.into_iter().map(|(_, name)| name).collect();
    Ok(contents)
}

/// The `<name>/data.pkl` torch loads: the one in the folder of the archive's first entry (torch's
/// reader takes the archive's name from it), else the first by name.
fn loaded_pickle<'a>(
    zip: &'a Zip<'_>,
    names: &HashMap<&'a [u8], usize>,
) -> Result<&'a [u8], Error> {
    let candidates = || {
        names.keys().copied().filter(|n| {
            n.strip_suffix(b"/data.pkl")
                .is_some_and(|folder| !folder.contains(&b'/'))
        })
    };
    let first_folder = zip
        .file_names_raw()
        .next()
        .and_then(|n| n.split(|&b| b == b'/').next());
    let in_first = candidates().find(|n| Some(&n[..n.len() - b"/data.pkl".len()]) == first_folder);
    in_first
        .or_else(|| candidates().min())
        .ok_or_else(|| Error::Layout(not_torch(names.keys().copied()).into()))
}

/// What a zip without `<name>/data.pkl` is. One whose members all end in `.npy` up to a NUL byte
/// is a numpy `.npz` (numpy reads a name up to its NUL) that the npz reader refused for that byte.
fn not_torch<'a>(names: impl Iterator<Item = &'a [u8]>) -> &'static str {
    let names: Vec<&[u8]> = names.collect();
    let npy_before_nul = |n: &[u8]| {
        n.split(|&b| b == 0)
            .next()
            .is_some_and(|stem| stem.ends_with(b".npy"))
    };
    if names.iter().any(|n| n.contains(&0)) && names.iter().all(|n| npy_before_nul(n)) {
        "a numpy .npz archive with a NUL byte inside a member name (numpy reads the name only up to it), which paramscope refuses rather than guess the array's name"
    } else {
        "a zip archive without <name>/data.pkl: not a torch.save file (a numpy .npz?)"
    }
}
/// Entry `index` as a record: its local header, which the central directory points to, then its
/// bytes. Compressed entries are refused: torch stores everything uncompressed, and only a stored
/// entry can be read in place or by range.
fn entry(zip: &Zip<'_>, index: usize, what: &str) -> Result<Record, Error> {
    let bad = |why: String| Error::Layout(format!("{what}: {why}"));
    let entry = zip.by_index_data(index).map_err(|e| bad(e.to_string()))?;
    if entry.compression() != CompressionMethod::Stored {
        return Err(bad(format!(
            "the entry is compressed ({}); torch.save stores entries uncompressed and paramscope maps them in place, so this archive was repacked: re-save it with torch.save",
            entry.compression()
        )));
    }
    if entry.encrypted() {
        return Err(bad("the entry is encrypted".into()));
    }
    Ok(Record {
        at: entry.header_start(),
        header: Header::Zip {
            name_len: entry.name_raw().len() as u64,
        },
        len: entry.size(),
        what: what.to_owned(),
    })
}
