//! `.npy` arrays of f32 (version 1.0, little-endian, C order): numpy's own format for inputs and outputs.

use std::io::{self, Read as _};
use std::path::Path;

use ndarray::{ArrayD, IxDyn};

use super::atomic::write_atomically;

/// Writes `array` as `<f4` in C order.
pub fn write(path: &Path, array: &ArrayD<f32>) -> io::Result<()> {
    let shape = match array.shape() {
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // numpy pads the header with spaces so that the data starts on a 64-byte boundary.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let header_len = u16::try_from(header.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "shape too long for .npy"))?;
    write_atomically(
        path,
        |w| {
            w.write_all(b"\x93NUMPY\x01\x00")?;
            w.write_all(&header_len.to_le_bytes())?;
            w.write_all(header.as_bytes())?;
            for v in array {
                w.write_all(&v.to_le_bytes())?;
            }
            Ok(())
        },
        |temp| read(temp).map(drop),
    )
    .map_err(io::Error::other)
}

/// Reads a `.npy` of f32 or f64 (little-endian, C order) as f32.
pub fn read(path: &Path) -> Result<ArrayD<f32>, String> {
    // Only a regular file: a FIFO would block and /dev/zero stream forever.
    let mut bytes = Vec::new();
    super::small_file::open_regular(path)
        .map_err(|e| e.to_string())
        .and_then(|mut f| f.read_to_end(&mut bytes).map_err(|e| e.to_string()))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn parse(bytes: &[u8]) -> Result<ArrayD<f32>, String> {
    let rest = bytes
        .strip_prefix(b"\x93NUMPY")
        .ok_or("not a .npy file (no \\x93NUMPY magic)")?;
    let (&[major, _minor], rest) = rest
        .split_first_chunk::<2>()
        .ok_or("truncated .npy header")?;
    let (header_len, rest) = match major {
        1 => {
            let (len, rest) = rest
                .split_first_chunk::<2>()
                .ok_or("truncated .npy header")?;
            (usize::from(u16::from_le_bytes(*len)), rest)
        }
        2 | 3 => {
            let (len, rest) = rest
                .split_first_chunk::<4>()
                .ok_or("truncated .npy header")?;
            (u32::from_le_bytes(*len) as usize, rest)
        }
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = rest.get(..header_len).ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "the .npy header is not text")?;
    let data = &rest[header_len..];
    let field = |key: &str| -> Result<&str, String> {
        let start = header
            .find(&format!("'{key}':"))
            .ok_or_else(|| format!("the .npy header has no {key}"))?
            + key.len()
            + 3;
        Ok(header[start..].trim_start())
    };
    let descr = field("descr")?;
    let width = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        let end = descr.find(',').unwrap_or(descr.len());
        return Err(format!(
            "input dtype {} is not supported; save it as float32 (np.float32) or float64",
            &descr[..end]
        ));
    };
    if field("fortran_order")?.starts_with("True") {
        return Err(
            "Fortran-ordered arrays are not supported; save np.ascontiguousarray(x)".into(),
        );
    }
    let shape_text = field("shape")?;
    let shape_text = shape_text
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or("cannot read the .npy shape")?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| format!("bad dimension {s:?} in the .npy shape"))
        })
        .collect::<Result<_, _>>()?;
    let numel = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or("the .npy shape overflows")?;
    if numel.checked_mul(width) != Some(data.len()) {
        return Err(format!(
            "the .npy data holds {} bytes, its shape {shape:?} needs {}",
            data.len(),
            numel.saturating_mul(width)
        ));
    }
    let values: Vec<f32> = if width == 4 {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8")) as f32)
            .collect()
    };
    ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_other_dtypes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        let a = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1.0, -2.5, 3.0, 0.0, 5.5, f32::MAX])
            .unwrap();
        write(&path, &a).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            (10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize) % 64,
            0
        );
        assert_eq!(read(&path).unwrap(), a);
        let mut int_npy = bytes.clone();
        let at = int_npy.windows(3).position(|w| w == b"<f4").unwrap();
        int_npy[at..at + 3].copy_from_slice(b"<i4");
        assert!(
            parse(&int_npy)
                .unwrap_err()
                .contains("'<i4' is not supported")
        );
        assert!(
            parse(&bytes[..bytes.len() - 1])
                .unwrap_err()
                .contains("needs 24")
        );
        assert!(parse(b"hello").unwrap_err().contains("not a .npy"));
    }
}
