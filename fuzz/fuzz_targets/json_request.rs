//! Fuzz target `json_request`: see `keyfence_fuzz::targets::json_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyfence_fuzz::targets::json_request(data));
