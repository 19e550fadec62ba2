//! Reading the start of files whose header length is only known once its first bytes are in: one read of a
//! guess, then one more for the rest (safetensors: 8 bytes of length, then the JSON) or reads that double
//! (GGUF, whose tensor table ends where parsing says). Many files' heads are read in parallel, at most
//! [`MAX_PARALLEL`] at a time, so a 30-shard repo costs about one round trip, not thirty.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{ByteSource, SourceError, read_range};

/// A file's head, or why it could not be read.
pub type Head = Result<Vec<u8>, SourceError>;

/// Files whose heads are read at once.
pub const MAX_PARALLEL: usize = 32;

/// What a parser says about a head it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The head holds everything.
    Enough,
    /// The header ends at this byte (exclusive): read up to it.
    Until(u64),
    /// Unknown yet: read more (twice as much).
    More,
}

/// The first bytes of `source`: `first` of them, then as many as `need` asks, never past `cap` bytes or
/// the file's end. Returns the bytes read (possibly more than the header).
pub fn read_head(
    source: &dyn ByteSource,
    first: u64,
    cap: u64,
    need: &dyn Fn(&[u8]) -> Need,
) -> Result<Vec<u8>, SourceError> {
    let limit = cap.min(source.len());
    let mut head = read_range(source, 0..first.min(limit))?;
    loop {
        let have = head.len() as u64;
        let want = match need(&head) {
            Need::Enough => return Ok(head),
            Need::Until(end) => end,
            Need::More => have.saturating_mul(2).max(1),
        };
        if want <= have {
            return Ok(head);
        }
        if have >= limit {
            // The parser wants more than the cap or the file allows: it will say what is wrong.
            return Ok(head);
        }
        let more = read_range(source, have..want.min(limit))?;
        head.extend_from_slice(&more);
    }
}

/// What a safetensors head needs: its first 8 bytes are the header's length.
#[must_use]
pub fn safetensors_need(head: &[u8]) -> Need {
    match head.get(..8) {
        Some(len) => {
            let n = u64::from_le_bytes(len.try_into().expect("8 bytes"));
            Need::Until(n.saturating_add(8))
        }
        None => Need::Enough,
    }
}

/// `read_head` on every source, `MAX_PARALLEL` at a time; results in the sources' order.
pub fn read_heads(
    sources: &[Arc<dyn ByteSource>],
    first: u64,
    cap: u64,
    need: &(dyn Fn(&[u8]) -> Need + Sync),
) -> Vec<Head> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Head>>> = sources.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..sources.len().min(MAX_PARALLEL) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(source) = sources.get(i) else { break };
                    let result = read_head(&**source, first, cap, need);
                    if let Ok(mut slot) = slots[i].lock() {
                        *slot = Some(result);
                    }
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|slot| {
            slot.into_inner().ok().flatten().unwrap_or_else(|| {
                Err(SourceError::BadReply {
                    name: String::new(),
                    what: "a reader thread stopped".to_owned(),
                })
            })
        })
        .collect()
}
