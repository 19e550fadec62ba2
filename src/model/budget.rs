//! Refusing work that cannot fit in memory before allocating any of it: a file or an argument that
//! asks for 400 GB gets one line saying so, instead of an abort inside the allocator.

use std::fmt;

use thiserror::Error;

/// Work that needs more memory than the machine has free (or more bytes than a `u64` counts).
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{what} needs {} of {of}; {}", Size(*.needed), available_text(*.available))]
pub struct TooBig {
    /// What would be allocated: "the forward pass", "the architecture".
    pub what: &'static str,
    /// What the bytes hold: "activations", "parameters".
    pub of: &'static str,
    /// The bytes needed; `None` when the count overflows 64 bits.
    pub needed: Option<u64>,
    /// The bytes available, when the system says.
    pub available: Option<u64>,
}

fn available_text(available: Option<u64>) -> String {
    match available {
        Some(bytes) => format!("only {} of memory is available", Size(Some(bytes))),
        None => "that is more than any machine holds".to_owned(),
    }
}

/// A byte count in decimal units, as `free -h --si` writes them.
struct Size(Option<u64>);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(bytes) = self.0 else {
            return f.write_str("more than 18 EB");
        };
        let units = ["bytes", "kB", "MB", "GB", "TB", "PB", "EB"];
        let mut value = bytes as f64;
        let mut unit = 0;
        while value >= 1000.0 && unit + 1 < units.len() {
            value /= 1000.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{bytes} bytes")
        } else if value >= 100.0 {
            write!(f, "{value:.0} {}", units[unit])
        } else {
            write!(f, "{value:.1} {}", units[unit])
        }
    }
}

/// Bytes of `elements` values of `bytes_each` bytes, `None` on overflow.
#[must_use]
pub fn bytes_of(elements: Option<u64>, bytes_each: u64) -> Option<u64> {
    elements?.checked_mul(bytes_each)
}

/// The memory the kernel says can be allocated without swapping (`MemAvailable`), if it says.
#[must_use]
pub fn available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    meminfo_available(&text)
}

fn meminfo_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Refuses `needed` bytes (`None`: more than 64 bits count) when they exceed what is available.
pub fn check(what: &'static str, of: &'static str, needed: Option<u64>) -> Result<(), TooBig> {
    check_against(what, of, needed, available())
}

fn check_against(
    what: &'static str,
    of: &'static str,
    needed: Option<u64>,
    available: Option<u64>,
) -> Result<(), TooBig> {
    let fits = match (needed, available) {
        (None, _) => false,
        (Some(n), Some(a)) => n <= a,
        // Without /proc/meminfo, the allocator is the judge; isize::MAX is its hard limit.
        (Some(n), None) => isize::try_from(n).is_ok(),
    };
    if fits {
        Ok(())
    } else {
        Err(TooBig {
            what,
            of,
            needed,
            available,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mem_available() {
        let meminfo =
            "MemTotal:       16000000 kB\nMemFree:  100 kB\nMemAvailable:    8000000 kB\n";
        assert_eq!(meminfo_available(meminfo), Some(8_192_000_000));
        assert_eq!(meminfo_available("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn too_much_is_one_line_with_both_figures() {
        let err = check_against(
            "the forward pass",
            "activations",
            Some(400_000_000_000),
            Some(12_300_000_000),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the forward pass needs 400 GB of activations; only 12.3 GB of memory is available"
        );
        let overflow = check_against("the architecture", "parameters", None, Some(1)).unwrap_err();
        assert!(
            overflow.to_string().contains("more than 18 EB"),
            "{overflow}"
        );
        assert!(check_against("x", "y", Some(10), Some(10)).is_ok());
        assert!(check_against("x", "y", Some(10), None).is_ok());
    }
}
