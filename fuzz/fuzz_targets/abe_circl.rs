//! Fuzz target `abe_circl`: see `keyfence_fuzz::targets::abe_circl`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyfence_fuzz::targets::abe_circl(data));
