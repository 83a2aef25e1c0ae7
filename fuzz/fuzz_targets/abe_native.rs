//! Fuzz target `abe_native`: see `keyfence_fuzz::targets::abe_native`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyfence_fuzz::targets::abe_native(data));
