//! The byte framing shared by every fencing format: bounds-checked, never panics.
//!
//! Every encoding starts with `"KF" ‖ type (1) ‖ version (1)`. Integers are
//! big-endian; byte strings carry a u32 length, text a u16 length; lists a u16
//! count. Decoders reject trailing bytes.

use zeroize::Zeroizing;

use super::FenceError;

/// Format version written by this build, for every type.
pub const FORMAT_VERSION: u8 = 1;

const MAGIC: &[u8; 2] = b"KF";

/// Type bytes of the encodings (documented in the module doc of `fence`).
pub(crate) mod ty {
    pub const NODE_PUBLIC: u8 = 0x10;
    pub const JOIN_REQUEST: u8 = 0x11;
    pub const NODE_GRANT: u8 = 0x12;
    pub const FENCE_RECORD: u8 = 0x13;
    pub const NODE_IDENTITY: u8 = 0x14;
    pub const AUTHORITY: u8 = 0x15;
    pub const WRAPPED_KEY: u8 = 0x16;
    pub const AUTHORITY_PUBLIC: u8 = 0x17;
}

/// Appends fields to a buffer that is wiped on drop (some encodings are secret).
pub(crate) struct Writer {
    buf: Zeroizing<Vec<u8>>,
}

impl Writer {
    /// A writer that starts with the header of `ty`.
    pub(crate) fn new(ty: u8) -> Self {
        Self::with_version(ty, FORMAT_VERSION)
    }
    /// A writer for `version` of a type that has several.
    pub(crate) fn with_version(ty: u8, version: u8) -> Self {
        let mut buf = Zeroizing::new(Vec::with_capacity(256));
        buf.extend_from_slice(MAGIC);
        buf.push(ty);
        buf.push(version);
        Self { buf }
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    /// Byte string with a u32 length. Every value written here is far below 4 GiB
    /// (keys, ciphertexts of keys); a larger one would be a programming error, so
    /// the length saturates and the decoder then refuses the record.
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        self.raw(b);
    }
    /// Text with a u16 length (names and policies, both bounded far below).
    pub(crate) fn text(&mut self, s: &str) {
        self.u16(u16::try_from(s.len()).unwrap_or(u16::MAX));
        self.raw(s.as_bytes());
    }
    /// A list count (lists here are bounded by the number of nodes or generations).
    pub(crate) fn count(&mut self, n: usize) {
        self.u16(u16::try_from(n).unwrap_or(u16::MAX));
    }
    /// The encoding of a public value.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        std::mem::take(&mut *self.buf)
    }
    /// The encoding of a secret value.
    pub(crate) fn finish_secret(self) -> Zeroizing<Vec<u8>> {
        self.buf
    }
}

/// Reads fields; every failure is [`FenceError::Malformed`] naming the format.
pub(crate) struct Reader<'a> {
    what: &'static str,
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Checks the header of `ty` and positions after it.
    pub(crate) fn new(what: &'static str, ty: u8, bytes: &'a [u8]) -> Result<Self, FenceError> {
        Self::versioned(what, ty, FORMAT_VERSION, bytes).map(|(r, _)| r)
    }
    /// Like [`Self::new`] for a type with versions 1 to `newest`; returns the version.
    pub(crate) fn versioned(
        what: &'static str,
        ty: u8,
        newest: u8,
        bytes: &'a [u8],
    ) -> Result<(Self, u8), FenceError> {
        let mut r = Self { what, rest: bytes };
        if r.take(2)? != MAGIC || r.u8()? != ty {
            return Err(r.bad("not this type of record"));
        }
        let version = r.u8()?;
        if version == 0 || version > newest {
            return Err(FenceError::UnsupportedVersion { what, version });
        }
        Ok((r, version))
    }
    pub(crate) fn bad(&self, reason: &'static str) -> FenceError {
        FenceError::Malformed {
            what: self.what,
            reason,
        }
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], FenceError> {
        if self.rest.len() < n {
            return Err(self.bad("truncated"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], FenceError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, FenceError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, FenceError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, FenceError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], FenceError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub(crate) fn text(&mut self) -> Result<&'a str, FenceError> {
        let n = usize::from(self.u16()?);
        let b = self.take(n)?;
        std::str::from_utf8(b).map_err(|_| self.bad("text is not UTF-8"))
    }
    pub(crate) fn count(&mut self) -> Result<usize, FenceError> {
        Ok(usize::from(self.u16()?))
    }
    /// Refuses trailing bytes.
    pub(crate) fn finish(self) -> Result<(), FenceError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.bad("trailing bytes"))
        }
    }
}
