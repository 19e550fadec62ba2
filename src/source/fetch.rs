//! Reading the start of files whose header length is only known once its first bytes are in: one read of a
//! guess, then one more for the rest (safetensors: 8 bytes of length, then the JSON) or reads that double
//! (GGUF, whose tensor table ends where parsing says). Many files are read in parallel ([`try_each`]), at
//! most [`MAX_PARALLEL`] at a time, so a 30-shard repo costs about one round trip, not thirty.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{ByteSource, SourceError, read_range};

/// Files (or tensors) read at once.
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

/// `work` on every item, at most [`MAX_PARALLEL`] at a time, the results in the items' order: so that
/// thirty shards' heads, or a model's tensors, cost about one round trip rather than one each. The
/// first failure stops handing out items and is returned.
pub fn try_each<T: Sync, R: Send, E: Send>(
    items: &[T],
    work: &(dyn Fn(&T) -> Result<R, E> + Sync),
) -> Result<Vec<R>, E> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    let failure = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..items.len().min(MAX_PARALLEL) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    match work(item) {
                        Ok(result) => {
                            if let Ok(mut slot) = slots[i].lock() {
                                *slot = Some(result);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut first) = failure.lock() {
                                first.get_or_insert(e);
                            }
                            next.store(items.len(), Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    if let Ok(Some(e)) = failure.into_inner() {
        return Err(e);
    }
    Ok(slots
        .into_iter()
        .filter_map(|slot| slot.into_inner().ok().flatten())
        .collect())
}
