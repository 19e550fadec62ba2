//! Refusing work that cannot fit in memory before allocating any of it: a file or an argument that
//! asks for 400 GB gets one line saying so, instead of an abort inside the allocator.
//!
//! Three caps, each named when it is met: one per [`Kind`] of allocation (a 100-byte architecture
//! text must not build 16 GiB of parameters however much memory is free), the memory the kernel
//! says is available (`MemAvailable`), and three quarters of the machine's memory for the whole
//! process, counting what it already holds (`VmRSS`), so that allocations which each fit cannot
//! together take the machine.

use std::fmt;

use thiserror::Error;

/// What an allocation holds; each kind has its own cap ([`Kind::cap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The parameters of a model built from an architecture text.
    Parameters,
    /// A forward pass's activations.
    Activations,
    /// Values decoded or made for a view (a random batch, a Δ of two tensors).
    Values,
}

impl Kind {
    /// The most bytes one allocation of this kind may take: far above what any real use needs,
    /// far below what a hostile number asks.
    #[must_use]
    pub fn cap(self) -> u64 {
        match self {
            // A billion f32 parameters: more than any print(model) text is built for.
            Kind::Parameters => 4 << 30,
            Kind::Activations => 16 << 30,
            Kind::Values => 8 << 30,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Parameters => "parameters",
            Kind::Activations => "activations",
            Kind::Values => "values",
        })
    }
}

/// Which cap an allocation met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// The count overflows 64 bits.
    Overflow,
    /// The cap on its kind.
    Kind(u64),
    /// The memory the kernel says is available.
    Available(u64),
    /// The share of the machine's memory the process may hold, and what it holds already.
    Process {
        /// The most the process may hold.
        limit: u64,
        /// What it holds now.
        held: u64,
    },
}

/// Work that needs more memory than a cap allows.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{what} needs {} of {of}; {}", Size(*.needed), cap_text(*.cap, *.of))]
pub struct TooBig {
    /// What would be allocated: "the forward pass", "the architecture".
    pub what: &'static str,
    /// What the bytes hold.
    pub of: Kind,
    /// The bytes needed; `None` when the count overflows 64 bits.
    pub needed: Option<u64>,
    /// The cap met.
    pub cap: Cap,
}

fn cap_text(cap: Cap, of: Kind) -> String {
    match cap {
        Cap::Overflow => "that is more than any machine holds".to_owned(),
        Cap::Kind(limit) => format!("that is over the cap of {} on {of}", Size(Some(limit))),
        Cap::Available(bytes) => format!("only {} of memory is available", Size(Some(bytes))),
        Cap::Process { limit, held } => format!(
            "this process already holds {}, and may hold at most {} (three quarters of the machine's memory)",
            Size(Some(held)),
            Size(Some(limit))
        ),
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

/// What the machine and the process say now: `MemAvailable`, `MemTotal` and `VmRSS`, each if known.
fn memory() -> Memory {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    Memory {
        available: kib_field(&meminfo, "MemAvailable:"),
        total: kib_field(&meminfo, "MemTotal:"),
        held: kib_field(&status, "VmRSS:").unwrap_or(0),
    }
}

/// The figures the caps are judged by.
#[derive(Debug, Clone, Copy)]
struct Memory {
    available: Option<u64>,
    total: Option<u64>,
    held: u64,
}

/// A `NAME:  N kB` line of a /proc file, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Refuses `needed` bytes of `of` (`None`: more than 64 bits count) when they meet a cap.
pub fn check(what: &'static str, of: Kind, needed: Option<u64>) -> Result<(), TooBig> {
    check_against(what, of, needed, memory())
}

fn check_against(
    what: &'static str,
    of: Kind,
    needed: Option<u64>,
    memory: Memory,
) -> Result<(), TooBig> {
    let refuse = |cap| {
        Err(TooBig {
            what,
            of,
            needed,
            cap,
        })
    };
    let Some(n) = needed else {
        return refuse(Cap::Overflow);
    };
    if n > of.cap() {
        return refuse(Cap::Kind(of.cap()));
    }
    match memory.available {
        Some(available) if n > available => return refuse(Cap::Available(available)),
        // Without /proc/meminfo, the allocator is the judge; isize::MAX is its hard limit.
        None if isize::try_from(n).is_err() => return refuse(Cap::Overflow),
        _ => {}
    }
    if let Some(total) = memory.total {
        let limit = total / 4 * 3;
        if memory.held.saturating_add(n) > limit {
            return refuse(Cap::Process {
                limit,
                held: memory.held,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: u64 = 1_000_000_000;

    fn machine(available: u64, total: u64, held: u64) -> Memory {
        Memory {
            available: Some(available),
            total: Some(total),
            held,
        }
    }

    #[test]
    fn reads_meminfo_and_status_fields() {
        let meminfo =
            "MemTotal:       16000000 kB\nMemFree:  100 kB\nMemAvailable:    8000000 kB\n";
        assert_eq!(kib_field(meminfo, "MemAvailable:"), Some(8_192_000_000));
        assert_eq!(kib_field(meminfo, "MemTotal:"), Some(16_384_000_000));
        assert_eq!(kib_field("MemTotal: 1 kB\n", "MemAvailable:"), None);
        assert!(memory().held > 0, "a running test holds some memory");
    }

    #[test]
    fn too_much_is_one_line_naming_the_cap_met() {
        let err = check_against(
            "the forward pass",
            Kind::Activations,
            Some(10 * GB),
            machine(8 * GB, 32 * GB, 0),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the forward pass needs 10.0 GB of activations; only 8.0 GB of memory is available"
        );
        let overflow = check_against("the architecture", Kind::Parameters, None, machine(1, 1, 0))
            .unwrap_err();
        assert!(
            overflow.to_string().contains("more than 18 EB"),
            "{overflow}"
        );
        assert!(check_against("x", Kind::Values, Some(10), machine(10, 100, 0)).is_ok());
        let no_meminfo = Memory {
            available: None,
            total: None,
            held: 0,
        };
        assert!(check_against("x", Kind::Values, Some(10), no_meminfo).is_ok());
    }

    #[test]
    fn each_kind_has_its_cap_whatever_is_free() {
        // Linear(0 -> 2^31): 2^31 f32 biases, 8 GiB, on a machine with 1 TB free.
        let err = check_against(
            "the architecture",
            Kind::Parameters,
            Some(4 << 31),
            machine(1000 * GB, 1024 * GB, 0),
        )
        .unwrap_err();
        assert_eq!(err.cap, Cap::Kind(4 << 30));
        assert_eq!(
            err.to_string(),
            "the architecture needs 8.6 GB of parameters; that is over the cap of 4.3 GB on parameters"
        );
    }

    #[test]
    fn what_the_process_holds_counts() {
        // 6 GB fits the 8 GB available, but not beside the 10 GB held on a 20 GB machine.
        let err = check_against(
            "the forward pass",
            Kind::Activations,
            Some(6 * GB),
            machine(8 * GB, 20 * GB, 10 * GB),
        )
        .unwrap_err();
        assert_eq!(
            err.cap,
            Cap::Process {
                limit: 15 * GB,
                held: 10 * GB
            }
        );
        assert!(err.to_string().contains("already holds 10.0 GB"), "{err}");
        assert!(
            check_against(
                "the forward pass",
                Kind::Activations,
                Some(4 * GB),
                machine(8 * GB, 20 * GB, 10 * GB)
            )
            .is_ok()
        );
    }
}
