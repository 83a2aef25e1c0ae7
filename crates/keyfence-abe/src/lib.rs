//! Ciphertext-policy attribute-based encryption for keyfence (work in progress).
