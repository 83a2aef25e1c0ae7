//! Fuzz target `abe_policy`: see `keyfence_fuzz::targets::abe_policy`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyfence_fuzz::targets::abe_policy(data));
