//! The zip layout: `<name>/data.pkl` (the pickle), `<name>/data/<key>` (each storage, stored
//! uncompressed), `<name>/byteorder`, `<name>/version`; a TorchScript archive adds `code/` and
//! `constants.pkl`. The `zip` crate reads the central directory; each entry's bytes are then a range
//! of the file's map, found from its local header.

use std::collections::HashMap;
use std::fs::File;
use std::io::Cursor;
use std::sync::Arc;

use memmap2::Mmap;
use zip::{CompressionMethod, ZipArchive};

use super::views::{Backing, swap_unit};
use super::{Contents, Error, assemble, read_at};
use crate::io::pickle;

/// Opens a zip-layout file mapped as `map`; `shown` names it in warnings.
pub(super) fn open(map: &Arc<Mmap>, file: &File, shown: &str) -> Result<Contents, Error> {
    let zip = ZipArchive::new(Cursor::new(&map[..]))
        .map_err(|e| Error::Layout(format!("not a readable zip archive (truncated?): {e}")))?;
    let names: HashMap<&[u8], usize> = zip
        .file_names_raw()
        .enumerate()
        .map(|(i, name)| (name, i))
        .collect();
    let pickle_name = names
        .keys()
        .filter(|n| {
            n.strip_suffix(b"/data.pkl")
                .is_some_and(|folder| !folder.contains(&b'/'))
        })
        .min()
        .copied()
        .ok_or_else(|| {
            Error::Layout(
                "a zip archive without <name>/data.pkl: not a torch.save file (a numpy .npz?)"
                    .into(),
            )
        })?;
    let prefix = &pickle_name[..pickle_name.len() - b"data.pkl".len()];
    let entry = |suffix: &str| -> Option<usize> {
        let mut name = prefix.to_vec();
        name.extend_from_slice(suffix.as_bytes());
        names.get(name.as_slice()).copied()
    };
    let range = |index: usize, what: &str| entry_range(&zip, file, map.len(), index, what);

    let big_endian = match entry("byteorder") {
        Some(i) => match &map[range(i, "byteorder")?] {
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
    let pickle_range = range(names[pickle_name], "data.pkl")?;
    let unpickled = pickle::unpickle(&map[pickle_range.clone()], pickle_range.start)?;
    let torchscript = entry("constants.pkl").is_some()
        || names
            .keys()
            .any(|n| n.starts_with(prefix) && n[prefix.len()..].starts_with(b"code/"));

    let mut cache: HashMap<String, Arc<[u8]>> = HashMap::new();
    let mut storage = |s: &pickle::Storage| -> Result<Backing, Error> {
        let what = format!("storage {}", s.key);
        let index = entry(&format!("data/{}", s.key)).ok_or_else(|| {
            Error::Layout(format!(
                "{what} is missing: the archive has no {}data/{}",
                String::from_utf8_lossy(prefix),
                s.key
            ))
        })?;
        let span = range(index, &what)?;
        let backing = Backing::Mapped(Arc::clone(map), span);
        if !big_endian {
            return Ok(backing);
        }
        let swapped =
            cache
                .entry(s.key.clone())
                .or_insert_with(|| match backing.swapped(swap_unit(s)) {
                    Backing::Owned(bytes) => bytes,
                    Backing::Mapped(..) => unreachable!("swapped bytes are owned"),
                });
        Ok(Backing::Owned(Arc::clone(swapped)))
    };
    let mut contents = assemble(&unpickled, shown, &mut storage, map.len())?;
    contents.torchscript = torchscript;
    if torchscript {
        let note = if contents.tensors.is_empty() {
            "a TorchScript archive (torch.jit.save) with no parameters paramscope can list without running its code"
        } else {
            "a TorchScript archive (torch.jit.save): its parameters are listed, its code is not run"
        };
        contents.warnings.push(format!("{shown}: {note}"));
    }
    Ok(contents)
}

/// The bytes of entry `index` within the map: after its local header, which the central directory
/// points to. Compressed entries are refused: torch stores everything uncompressed, and only a
/// stored entry can be mapped in place.
fn entry_range(
    zip: &ZipArchive<Cursor<&[u8]>>,
    file: &File,
    file_len: usize,
    index: usize,
    what: &str,
) -> Result<std::ops::Range<usize>, Error> {
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
    let header = usize::try_from(entry.header_start()).map_err(|_| bad("bad offset".into()))?;
    let local = read_at::<30>(file, header)
        .filter(|h| h.starts_with(b"PK\x03\x04"))
        .ok_or_else(|| bad("its local header is missing (a truncated or damaged zip)".into()))?;
    let name_len = usize::from(u16::from_le_bytes([local[26], local[27]]));
    let extra_len = usize::from(u16::from_le_bytes([local[28], local[29]]));
    let size = usize::try_from(entry.size()).map_err(|_| bad("absurd size".into()))?;
    let start = header + 30 + name_len + extra_len;
    let end = start
        .checked_add(size)
        .filter(|&end| end <= file_len)
        .ok_or_else(|| {
            bad(format!(
                "its {size} bytes at offset {start} run past the end of the file ({file_len} bytes; truncated?)"
            ))
        })?;
    Ok(start..end)
}
