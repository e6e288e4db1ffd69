//! Jute's binary encoding, as `BinaryInputArchive`/`BinaryOutputArchive` define it:
//! big-endian integers, one byte per boolean, and `int32` length prefixes on buffers,
//! strings and vectors where `-1` means null.
//!
//! Every length is checked against what is left of the frame before anything is
//! allocated, so a hostile length can never make us reserve more than the frame holds.

use crate::error::{DecodeError, DecodeErrorKind, DecodeResult};

/// A cursor over one frame's bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Offset of the next byte to read, from the start of the buffer given to `new`.
    pub fn offset(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The bytes not read yet, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Consumes and returns everything not read yet (for bodies kept as raw bytes).
    pub fn read_rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    pub fn error(&self, field: &'static str, kind: DecodeErrorKind) -> DecodeError {
        DecodeError {
            field,
            offset: self.pos,
            kind,
        }
    }

    /// Fails unless the whole buffer was consumed: a record followed by junk is malformed.
    pub fn finish(&self, field: &'static str) -> DecodeResult<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.error(field, DecodeErrorKind::TrailingBytes(n))),
        }
    }

    fn take(&mut self, field: &'static str, n: usize) -> DecodeResult<&'a [u8]> {
        if self.remaining() < n {
            return Err(self.error(
                field,
                DecodeErrorKind::Truncated {
                    needed: n,
                    available: self.remaining(),
                },
            ));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn take_array<const N: usize>(&mut self, field: &'static str) -> DecodeResult<[u8; N]> {
        let bytes = self.take(field, N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub fn read_u8(&mut self, field: &'static str) -> DecodeResult<u8> {
        Ok(self.take_array::<1>(field)?[0])
    }

    pub fn read_bool(&mut self, field: &'static str) -> DecodeResult<bool> {
        Ok(self.read_u8(field)? != 0)
    }

    pub fn read_i32(&mut self, field: &'static str) -> DecodeResult<i32> {
        Ok(i32::from_be_bytes(self.take_array(field)?))
    }

    pub fn read_i64(&mut self, field: &'static str) -> DecodeResult<i64> {
        Ok(i64::from_be_bytes(self.take_array(field)?))
    }

    /// Reads a length prefix; `None` for jute's null (-1). A length that could not fit in
    /// the rest of the frame (at `min_item_size` bytes per item) is rejected up front.
    pub fn read_len(
        &mut self,
        field: &'static str,
        min_item_size: usize,
    ) -> DecodeResult<Option<usize>> {
        let start = self.pos;
        let len = self.read_i32(field)?;
        if len == -1 {
            return Ok(None);
        }
        let fits = usize::try_from(len)
            .ok()
            .filter(|n| n.saturating_mul(min_item_size.max(1)) <= self.remaining());
        match fits {
            Some(n) => Ok(Some(n)),
            None => Err(DecodeError {
                field,
                offset: start,
                kind: DecodeErrorKind::BadLength(i64::from(len)),
            }),
        }
    }

    /// A jute `buffer`; null is `None`.
    pub fn read_buffer_opt(&mut self, field: &'static str) -> DecodeResult<Option<Vec<u8>>> {
        match self.read_len(field, 1)? {
            None => Ok(None),
            Some(n) => Ok(Some(self.take(field, n)?.to_vec())),
        }
    }

    /// A jute `ustring`; null is `None`.
    pub fn read_string_opt(&mut self, field: &'static str) -> DecodeResult<Option<String>> {
        let start = self.pos;
        match self.read_len(field, 1)? {
            None => Ok(None),
            Some(n) => {
                let bytes = self.take(field, n)?;
                match std::str::from_utf8(bytes) {
                    Ok(s) => Ok(Some(s.to_owned())),
                    Err(_) => Err(DecodeError {
                        field,
                        offset: start,
                        kind: DecodeErrorKind::BadUtf8,
                    }),
                }
            }
        }
    }

    /// A jute `vector`: `item` decodes one element; null is `None`. `min_item_size` is
    /// the smallest encoding of one element, used to bound the count before allocating.
    pub fn read_vec_opt<T>(
        &mut self,
        field: &'static str,
        min_item_size: usize,
        mut item: impl FnMut(&mut Self) -> DecodeResult<T>,
    ) -> DecodeResult<Option<Vec<T>>> {
        match self.read_len(field, min_item_size)? {
            None => Ok(None),
            Some(n) => {
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push(item(self)?);
                }
                Ok(Some(out))
            }
        }
    }
    /// A jute `buffer` where null is read as empty: for fields no real peer sends null.
    pub fn read_buffer(&mut self, field: &'static str) -> DecodeResult<Vec<u8>> {
        Ok(self.read_buffer_opt(field)?.unwrap_or_default())
    }

    /// A jute `ustring` where null is read as empty (an empty path is as invalid to
    /// ZooKeeper as a null one, so nothing is lost but the exact bytes of a request no
    /// real client sends).
    pub fn read_string(&mut self, field: &'static str) -> DecodeResult<String> {
        Ok(self.read_string_opt(field)?.unwrap_or_default())
    }

    /// A jute `vector` where null is read as empty.
    pub fn read_vec<T>(
        &mut self,
        field: &'static str,
        min_item_size: usize,
        item: impl FnMut(&mut Self) -> DecodeResult<T>,
    ) -> DecodeResult<Vec<T>> {
        Ok(self
            .read_vec_opt(field, min_item_size, item)?
            .unwrap_or_default())
    }
}

/// Appends jute encodings to a growable buffer.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn write_u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn write_bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }

    pub fn write_i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn write_i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Writes a length prefix. Lengths above `i32::MAX` cannot be expressed in jute and
    /// are a caller bug (frames are capped far below that by `jute.maxbuffer`).
    pub fn write_len(&mut self, len: Option<usize>) {
        let n = match len {
            None => -1,
            Some(n) => i32::try_from(n).unwrap_or(i32::MAX),
        };
        self.write_i32(n);
    }

    pub fn write_buffer_opt(&mut self, v: Option<&[u8]>) {
        self.write_len(v.map(<[u8]>::len));
        if let Some(b) = v {
            self.buf.extend_from_slice(b);
        }
    }

    pub fn write_buffer(&mut self, v: &[u8]) {
        self.write_buffer_opt(Some(v));
    }

    pub fn write_string_opt(&mut self, v: Option<&str>) {
        self.write_buffer_opt(v.map(str::as_bytes));
    }

    pub fn write_string(&mut self, v: &str) {
        self.write_buffer(v.as_bytes());
    }

    pub fn write_vec_opt<T>(&mut self, v: Option<&[T]>, mut item: impl FnMut(&mut Self, &T)) {
        self.write_len(v.map(<[T]>::len));
        for x in v.unwrap_or(&[]) {
            item(self, x);
        }
    }

    pub fn write_vec<T>(&mut self, v: &[T], item: impl FnMut(&mut Self, &T)) {
        self.write_vec_opt(Some(v), item);
    }
}

/// A jute record: something with one binary encoding.
pub trait Record: Sized {
    fn decode(r: &mut Reader<'_>) -> DecodeResult<Self>;
    fn encode(&self, w: &mut Writer);

    /// Decodes a record that must fill `bytes` exactly.
    fn from_bytes(bytes: &[u8]) -> DecodeResult<Self> {
        let mut r = Reader::new(bytes);
        let v = Self::decode(&mut r)?;
        r.finish("end of record")?;
        Ok(v)
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_lengths_are_rejected_before_allocation() {
        // A vector claiming i32::MAX elements in a 4-byte frame.
        let bytes = i32::MAX.to_be_bytes();
        let mut r = Reader::new(&bytes);
        let err = r
            .read_vec_opt("children", 4, |r| r.read_i32("x"))
            .unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::BadLength(i64::from(i32::MAX)));
        assert_eq!(err.offset, 0);
        assert_eq!(err.field, "children");
    }

    #[test]
    fn negative_lengths_other_than_null_are_rejected() {
        let bytes = (-2i32).to_be_bytes();
        let err = Reader::new(&bytes).read_buffer_opt("data").unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::BadLength(-2));
    }

    #[test]
    fn null_and_empty_are_distinct() {
        let mut w = Writer::new();
        w.write_buffer_opt(None);
        w.write_buffer_opt(Some(b""));
        let bytes = w.into_inner();
        assert_eq!(bytes, [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        let mut r = Reader::new(&bytes);
        assert_eq!(r.read_buffer_opt("a").unwrap(), None);
        assert_eq!(r.read_buffer_opt("b").unwrap(), Some(vec![]));
        assert!(r.is_empty());
    }

    #[test]
    fn truncation_names_field_and_offset() {
        let bytes = [0u8, 0, 0, 1, 0, 0];
        let mut r = Reader::new(&bytes);
        r.read_i32("xid").unwrap();
        let err = r.read_i64("zxid").unwrap_err();
        assert_eq!(err.field, "zxid");
        assert_eq!(err.offset, 4);
        assert_eq!(
            err.kind,
            DecodeErrorKind::Truncated {
                needed: 8,
                available: 2
            }
        );
    }
}
