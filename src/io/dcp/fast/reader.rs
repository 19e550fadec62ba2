//! The `.metadata` pickle's opcodes as the straight reading takes them: frame by frame, with the
//! memo of the strs and globals that later opcodes read back.

use super::super::machine::Class;
use super::super::memo::MAX_MEMO;
use crate::io::pickle::reader::{op, small_long};

/// A str's place in the pickle: its first byte and its length.
pub(super) type Span = (u32, u32);

/// What the memo keeps of a value: what later opcodes may read back and use (a str, a global),
/// or the mark of a container read here, which nothing may read back. Any other value is kept as
/// nothing: read back, it is a value of unknown kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kept {
    Str(Span),
    Class(Class),
    Taken,
    /// A value stored, of which nothing is kept.
    Unknown,
}

/// The memo: MEMOIZE numbers values in order, so an index below the count was stored.
pub(super) struct Memo {
    pub(super) len: u32,
    /// The kept values by index, ascending.
    pub(super) kept: Vec<(u32, Kept)>,
    /// The last looked up in each slot, by index: a chunk record reads back the same few names
    /// and globals, so a lookup is mostly one comparison.
    pub(super) recent: [(u32, Kept); 64],
}

impl Default for Memo {
    fn default() -> Self {
        Memo {
            len: 0,
            kept: Vec::new(),
            recent: [(u32::MAX, Kept::Unknown); 64],
        }
    }
}

impl Memo {
    /// MEMOIZE: the next index holds `kept` (nothing, for a value that need not be read back).
    pub(super) fn put(&mut self, kept: Option<Kept>) -> Option<()> {
        if self.len as usize >= MAX_MEMO {
            return None;
        }
        if let Some(kept) = kept {
            self.kept.push((self.len, kept));
        }
        self.len += 1;
        Some(())
    }

    /// What index `i` holds: `None` when nothing was stored there.
    pub(super) fn get(&mut self, i: u32) -> Option<Kept> {
        if i >= self.len {
            return None;
        }
        let slot = &mut self.recent[i as usize % 64];
        if slot.0 == i {
            return Some(slot.1);
        }
        let found = (self.kept.binary_search_by_key(&i, |&(j, _)| j).ok())
            .map_or(Kept::Unknown, |at| self.kept[at].1);
        *slot = (i, found);
        Some(found)
    }
}

/// The pickle's opcodes, frame by frame: an opcode and its argument lie inside one frame, and the
/// next frame starts where this one ends (as the pickler writes them; a short last stretch may be
/// unframed).
pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) pos: usize,
    /// Where the current frame ends (or the pickle, outside frames).
    pub(super) end: usize,
    pub(super) framed: bool,
    pub(super) memo: Memo,
}

impl<'a> Reader<'a> {
    #[inline]
    pub(super) fn peek(&mut self) -> Option<u8> {
        if self.pos >= self.end {
            self.next_frame()?;
        }
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    pub(super) fn op(&mut self) -> Option<u8> {
        let op = self.peek()?;
        self.pos += 1;
        Some(op)
    }

    /// Takes `op` if it is next.
    #[inline]
    pub(super) fn eat(&mut self, op: u8) -> Option<bool> {
        let next = self.peek()? == op;
        self.pos += usize::from(next);
        Some(next)
    }

    #[inline]
    pub(super) fn expect(&mut self, op: u8) -> Option<()> {
        (self.op()? == op).then_some(())
    }

    /// `n` argument bytes, inside the frame.
    #[inline]
    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.end)?;
        let taken = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(taken)
    }

    #[inline]
    pub(super) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    #[inline]
    pub(super) fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    /// `n` bytes of a str: where they are.
    #[inline]
    pub(super) fn span(&mut self, n: usize) -> Option<Span> {
        let at = self.pos;
        self.take(n)?;
        // The pickle is shorter than 4 GiB (checked in `read`).
        Some((at as u32, n as u32))
    }

    /// The bytes of a str read before.
    pub(super) fn text(&self, (at, n): Span) -> &'a [u8] {
        let at = at as usize;
        self.bytes.get(at..at + n as usize).unwrap_or_default()
    }

    /// MEMOIZE, if next, keeping `kept` for the value just read.
    #[inline]
    pub(super) fn memoize(&mut self, kept: Option<Kept>) -> Option<()> {
        if self.eat(op::MEMOIZE)? {
            self.memo.put(kept)?;
        }
        Some(())
    }

    /// A str, or a str or global read back, and its MEMOIZE.
    #[inline(always)]
    #[expect(
        clippy::inline_always,
        reason = "two per storage record read from a template: inlined there, opening a 16,000-chunk checkpoint runs 4% fewer instructions with `int`"
    )]
    pub(super) fn named(&mut self) -> Option<Kept> {
        let kept = match self.op()? {
            op::SHORT_BINUNICODE => {
                let n = self.u8()?;
                Kept::Str(self.span(usize::from(n))?)
            }
            op::BINUNICODE => {
                let n = u32::from_le_bytes(self.array()?);
                Kept::Str(self.span(n as usize)?)
            }
            op::BINGET => {
                let i = self.u8()?;
                self.memo.get(u32::from(i))?
            }
            op::LONG_BINGET => {
                let i = u32::from_le_bytes(self.array()?);
                self.memo.get(i)?
            }
            _ => return None,
        };
        // Read back, only a str or a global is one.
        if matches!(kept, Kept::Taken | Kept::Unknown) {
            return None;
        }
        self.memoize(Some(kept))?;
        Some(kept)
    }

    /// A str (new or read back).
    #[inline]
    pub(super) fn string(&mut self) -> Option<Span> {
        match self.named()? {
            Kept::Str(span) => Some(span),
            _ => None,
        }
    }

    /// A non-negative int that fits in 64 bits.
    #[inline(always)]
    #[expect(
        clippy::inline_always,
        reason = "nine per chunk of a 2-D tensor: see `named`"
    )]
    pub(super) fn int(&mut self) -> Option<u64> {
        Some(match self.op()? {
            op::BININT1 => u64::from(self.u8()?),
            op::BININT2 => u64::from(u16::from_le_bytes(self.array()?)),
            op::BININT => u64::try_from(i32::from_le_bytes(self.array()?)).ok()?,
            op::LONG1 => {
                let n = self.u8()?;
                u64::try_from(small_long(self.take(usize::from(n))?)?).ok()?
            }
            _ => return None,
        })
    }

    /// At the end of a frame: the next one, which starts there, or the unframed rest.
    #[cold]
    pub(super) fn next_frame(&mut self) -> Option<()> {
        if !self.framed || self.pos != self.end {
            return None;
        }
        if self.bytes.get(self.pos) != Some(&op::FRAME) {
            // The pickler leaves a last stretch of under four bytes unframed.
            self.framed = false;
            self.end = self.bytes.len();
            return (self.pos < self.end).then_some(());
        }
        let header = self.bytes.get(self.pos + 1..self.pos + 9)?;
        let len = usize::try_from(u64::from_le_bytes(header.try_into().ok()?)).ok()?;
        let start = self.pos + 9;
        let end = start
            .checked_add(len)
            .filter(|&end| len > 0 && end <= self.bytes.len())?;
        self.pos = start;
        self.end = end;
        Some(())
    }
}

/// Whether `a` and `b` hold the same bytes: a record's runs and names are short (a run between
/// two ints is empty), compared a word at a time without a call.
#[inline]
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().unwrap_or_default());
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            if word(a, i) != word(b, i) {
                return false;
            }
            i += 8;
        }
        // The last word, overlapping the one before.
        return word(a, n - 8) == word(b, n - 8);
    }
    // Under a word: the first and last four bytes (or two, or the one), overlapping.
    let half = |s: &[u8], i: usize| u32::from_le_bytes(s[i..i + 4].try_into().unwrap_or_default());
    let quarter =
        |s: &[u8], i: usize| u16::from_le_bytes(s[i..i + 2].try_into().unwrap_or_default());
    match n {
        4.. => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        2.. => quarter(a, 0) == quarter(b, 0) && quarter(a, n - 2) == quarter(b, n - 2),
        1 => a[0] == b[0],
        _ => true,
    }
}

/// Whether two offsets are the same, compared without a call.
#[inline]
pub(super) fn same_dims(a: &[u64], b: &[u64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

#[cfg(test)]
mod tests {
    use super::same;

    /// Every length up to a few words: equal bytes are the same, and any one byte changed, or one
    /// byte fewer, is not.
    #[test]
    fn same_tells_every_changed_byte() {
        let a: Vec<u8> = (0..40).collect();
        for n in 0..=a.len() {
            // A copy: equal bytes elsewhere, as a template's run and the record it is matched with.
            let copy = a[..n].to_vec();
            assert!(same(&a[..n], &copy), "length {n}");
            for i in 0..n {
                let mut b = copy.clone();
                b[i] ^= 0x5a;
                assert!(!same(&a[..n], &b), "length {n}, byte {i}");
            }
            if n > 0 {
                assert!(!same(&a[..n], &a[..n - 1]), "length {n}");
            }
        }
    }
}
