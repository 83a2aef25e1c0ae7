//! Minimal byte reader/writer used by the encodings: bounds-checked, never panics.

use crate::error::{Error, Result};

/// Appends encoded fields to a buffer.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
    /// Set when a length did not fit its field; see [`Writer::into_checked`].
    overflow: bool,
}

impl Writer {
    /// Bytes prefixed with a little-endian u16 length (CIRCL's framing); records an
    /// overflow instead of writing a wrong length.
    pub(crate) fn lp16_le(&mut self, b: &[u8]) {
        match u16::try_from(b.len()) {
            Ok(n) => {
                self.u16_le(n);
                self.bytes(b);
            }
            Err(_) => self.overflow = true,
        }
    }
    /// Frames a nested writer's output with [`Writer::lp16_le`], keeping its overflow.
    pub(crate) fn nested16_le(&mut self, inner: Writer) {
        self.overflow |= inner.overflow;
        self.lp16_le(&inner.buf);
    }
    /// A little-endian u16 count; records an overflow if it does not fit.
    pub(crate) fn count16_le(&mut self, n: usize) {
        match u16::try_from(n) {
            Ok(n) => self.u16_le(n),
            Err(_) => self.overflow = true,
        }
    }
    /// The buffer, or an error if some length did not fit its field.
    pub(crate) fn into_checked(self) -> Result<Vec<u8>> {
        if self.overflow {
            Err(Error::InvalidPolicy("too large for CIRCL's encoding"))
        } else {
            Ok(self.buf)
        }
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u16_be(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u16_le(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u32_le(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    /// A string of at most 255 bytes with a one-byte length (native version 1).
    pub(crate) fn str8(&mut self, s: &str) {
        debug_assert!(s.len() <= 255);
        self.u8(s.len() as u8);
        self.bytes(s.as_bytes());
    }
    /// A string of at most 65,535 bytes with a big-endian u16 length (native version 2).
    /// Callers pass only validated names and values, which fit.
    pub(crate) fn str16_be(&mut self, s: &str) {
        debug_assert!(s.len() <= usize::from(u16::MAX));
        self.u16_be(s.len() as u16);
        self.bytes(s.as_bytes());
    }
}

/// Consumes encoded fields from a byte slice.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

const SHORT: Error = Error::Malformed("unexpected end of input");

fn utf8(raw: &[u8]) -> Result<String> {
    String::from_utf8(raw.to_vec()).map_err(|_| Error::Malformed("string is not UTF-8"))
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.data.len() < n {
            return Err(SHORT);
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u16_be(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub(crate) fn u32_be(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(crate) fn u16_le(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub(crate) fn u32_le(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    /// A UTF-8 string with a one-byte length.
    pub(crate) fn str8(&mut self) -> Result<String> {
        let n = usize::from(self.u8()?);
        utf8(self.take(n)?)
    }
    /// A UTF-8 string with a big-endian u16 length.
    pub(crate) fn str16_be(&mut self) -> Result<String> {
        let n = usize::from(self.u16_be()?);
        utf8(self.take(n)?)
    }
    /// Bytes prefixed with a little-endian u16 length (CIRCL's framing).
    pub(crate) fn lp16_le(&mut self) -> Result<&'a [u8]> {
        let n = usize::from(self.u16_le()?);
        self.take(n)
    }
    /// Bytes prefixed with a little-endian u32 length (CIRCL's wide framing).
    pub(crate) fn lp32_le(&mut self) -> Result<&'a [u8]> {
        let n = usize::try_from(self.u32_le()?).map_err(|_| SHORT)?;
        self.take(n)
    }
    pub(crate) fn remaining(&self) -> usize {
        self.data.len()
    }
    /// Fails unless all input was consumed.
    pub(crate) fn finish(self) -> Result<()> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(Error::Malformed("trailing bytes"))
        }
    }
}
