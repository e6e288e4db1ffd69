//! The little big-endian encoding shared by the Txn log format and snapshots. Every read
//! is bounds-checked; lengths are checked against the bytes that remain, so corrupt
//! input yields an error, never a panic or a huge allocation.

use rookery_wire::{Acl, Id};

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("truncated input at byte {0}")]
    Truncated(usize),
    #[error("length {len} at byte {at} exceeds the remaining input")]
    BadLength { at: usize, len: u64 },
    #[error("invalid UTF-8 string at byte {0}")]
    BadUtf8(usize),
}

/// The length that stands for null data.
const NULL_LEN: u32 = u32::MAX;

#[derive(Debug, Default)]
pub(crate) struct Enc {
    pub(crate) buf: Vec<u8>,
}

impl Enc {
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn len(&mut self, n: usize) {
        // Lengths beyond u32 cannot come from a valid tree (jute.maxbuffer is far below).
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.buf.extend_from_slice(b);
    }
    /// Znode data, where null differs from empty: null is jute's length -1 (u32::MAX),
    /// a length no version ever wrote for real bytes (it would fail the length check).
    pub(crate) fn opt_bytes(&mut self, b: Option<&[u8]>) {
        match b {
            Some(b) => self.bytes(b),
            None => self.u32(NULL_LEN),
        }
    }
    pub(crate) fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    pub(crate) fn acl(&mut self, acl: &[Acl]) {
        self.len(acl.len());
        for a in acl {
            self.i32(a.perms);
            self.str(&a.id.scheme);
            self.str(&a.id.id);
        }
    }
}

#[derive(Debug)]
pub(crate) struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Dec { buf, pos: 0 }
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub(crate) fn position(&self) -> usize {
        self.pos
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.remaining() < n {
            return Err(CodecError::Truncated(self.pos));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.arr()?))
    }
    pub(crate) fn i32(&mut self) -> Result<i32, CodecError> {
        Ok(i32::from_be_bytes(self.arr()?))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(i64::from_be_bytes(self.arr()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.arr()?))
    }
    /// A count of items each at least `min_item` bytes long.
    pub(crate) fn count(&mut self, min_item: usize) -> Result<usize, CodecError> {
        let at = self.pos;
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item.max(1)) > self.remaining() {
            return Err(CodecError::BadLength { at, len: n as u64 });
        }
        Ok(n)
    }
    pub(crate) fn bytes(&mut self) -> Result<Vec<u8>, CodecError> {
        let n = self.count(1)?;
        Ok(self.take(n)?.to_vec())
    }
    /// Reads what [`Enc::opt_bytes`] wrote.
    pub(crate) fn opt_bytes(&mut self) -> Result<Option<Vec<u8>>, CodecError> {
        if self.buf.get(self.pos..self.pos + 4) == Some(&NULL_LEN.to_be_bytes()[..]) {
            self.pos += 4;
            return Ok(None);
        }
        self.bytes().map(Some)
    }
    pub(crate) fn str(&mut self) -> Result<String, CodecError> {
        let at = self.pos;
        let b = self.bytes()?;
        String::from_utf8(b).map_err(|_| CodecError::BadUtf8(at))
    }
    pub(crate) fn acl(&mut self) -> Result<Vec<Acl>, CodecError> {
        let n = self.count(12)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let perms = self.i32()?;
            let scheme = self.str()?;
            let id = self.str()?;
            v.push(Acl::new(perms, Id::new(scheme, id)));
        }
        Ok(v)
    }
}
