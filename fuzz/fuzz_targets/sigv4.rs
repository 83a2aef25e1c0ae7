//! Fuzz target `sigv4`: see `keyfence_fuzz::targets::sigv4_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyfence_fuzz::targets::sigv4_request(data));
