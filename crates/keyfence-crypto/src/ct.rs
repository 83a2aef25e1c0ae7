//! Constant-time comparison.

use subtle::ConstantTimeEq;

/// Compares two byte strings without a data-dependent early exit. Lengths are
/// not secret: strings of different length compare unequal at once.
pub fn eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn compares() {
        assert!(super::eq(b"abc", b"abc"));
        assert!(!super::eq(b"abc", b"abd"));
        assert!(!super::eq(b"abc", b"ab"));
    }
}
