//! The pickle opcodes paramscope knows, and a cursor over the pickle's bytes that checks every
//! length against what is left before taking it.

use super::{Error, Problem};

/// Opcode bytes, as `pickletools` names them (protocols 0 to 5).
pub mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const FLOAT: u8 = b'F';
    pub const INT: u8 = b'I';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const LONG: u8 = b'L';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const PERSID: u8 = b'P';
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
    pub const STRING: u8 = b'S';
    pub const BINSTRING: u8 = b'T';
    pub const SHORT_BINSTRING: u8 = b'U';
    pub const UNICODE: u8 = b'V';
    pub const BINUNICODE: u8 = b'X';
    pub const APPEND: u8 = b'a';
    pub const BUILD: u8 = b'b';
    pub const GLOBAL: u8 = b'c';
    pub const DICT: u8 = b'd';
    pub const EMPTY_DICT: u8 = b'}';
    pub const APPENDS: u8 = b'e';
    pub const GET: u8 = b'g';
    pub const BINGET: u8 = b'h';
    pub const INST: u8 = b'i';
    pub const LONG_BINGET: u8 = b'j';
    pub const LIST: u8 = b'l';
    pub const EMPTY_LIST: u8 = b']';
    pub const OBJ: u8 = b'o';
    pub const PUT: u8 = b'p';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const SETITEM: u8 = b's';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const BINFLOAT: u8 = b'G';
    pub const PROTO: u8 = 0x80;
    pub const NEWOBJ: u8 = 0x81;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const EMPTY_SET: u8 = 0x8f;
    pub const ADDITEMS: u8 = 0x90;
    pub const FROZENSET: u8 = 0x91;
    pub const NEWOBJ_EX: u8 = 0x92;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
    pub const BYTEARRAY8: u8 = 0x96;
}

/// The longest text line a protocol-0 opcode may take (a module or class name, a decimal number).
const MAX_LINE: usize = 4096;

/// A position in a pickle's bytes. `base` is where the pickle starts in its file, so that errors
/// name file offsets.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: usize,
    /// The offset of the opcode being run, for errors.
    pub op_at: usize,
    /// The opcode being run, for errors.
    pub op: u8,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`, which begin at `base` in their file.
    #[must_use]
    pub fn new(bytes: &'a [u8], base: usize) -> Self {
        Reader {
            bytes,
            pos: 0,
            base,
            op_at: base,
            op: 0,
        }
    }

    /// The file offset just past what was read.
    #[must_use]
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// An error at the current opcode.
    #[must_use]
    pub fn error(&self, problem: Problem) -> Error {
        Error {
            offset: self.op_at,
            opcode: self.op,
            problem,
            foreign: Vec::new(),
        }
    }

    /// Reads the next opcode and remembers it for errors.
    pub fn opcode(&mut self) -> Result<u8, Error> {
        self.op_at = self.offset();
        self.op = 0;
        if self.pos == self.bytes.len() {
            return Err(self.error(Problem::NoStop));
        }
        let [op] = self.take(1)? else { unreachable!() };
        self.op = *op;
        Ok(*op)
    }

    /// The next `n` bytes, or an error when fewer are left.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                self.error(Problem::Truncated {
                    wanted: n,
                    left: self.bytes.len() - self.pos,
                })
            })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Takes `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.array::<1>()?[0])
    }

    /// A little-endian u16.
    pub fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// A little-endian u32.
    pub fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A little-endian length of 4 or 8 bytes, as usize.
    pub fn len_u64(&mut self) -> Result<usize, Error> {
        let n = u64::from_le_bytes(self.array()?);
        usize::try_from(n).map_err(|_| self.error(Problem::Absurd(n)))
    }

    /// A line ending in `\n` (without it), for the text opcodes.
    pub fn line(&mut self) -> Result<&'a [u8], Error> {
        let rest = &self.bytes[self.pos..];
        let window = &rest[..rest.len().min(MAX_LINE)];
        let n = window
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.error(Problem::NoNewline))?;
        let line = &rest[..n];
        self.pos += n + 1;
        Ok(line)
    }
}

/// LONG1/LONG4's little-endian two's complement, when it fits in 64 bits.
#[must_use]
pub fn small_long(bytes: &[u8]) -> Option<i64> {
    if bytes.len() > 8 {
        return None;
    }
    let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
    let mut buf = if negative { [0xff; 8] } else { [0; 8] };
    buf[..bytes.len()].copy_from_slice(bytes);
    Some(i64::from_le_bytes(buf))
}
