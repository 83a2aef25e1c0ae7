//! Fuzz target `config_files`: see `keyfence_fuzz::targets::config_files`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyfence_fuzz::targets::config_files(data));
