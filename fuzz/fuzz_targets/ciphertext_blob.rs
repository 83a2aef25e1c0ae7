//! Fuzz target `ciphertext_blob`: see `keyfence_fuzz::targets::ciphertext_blob`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyfence_fuzz::targets::ciphertext_blob(data));
