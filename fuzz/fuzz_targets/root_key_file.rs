//! Fuzz target `root_key_file`: see `keyfence_fuzz::targets::root_key_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyfence_fuzz::targets::root_key_file(data));
