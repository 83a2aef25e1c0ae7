//! Fuzz target `import_wrapping`: see `keyfence_fuzz::targets::import_wrapping`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyfence_fuzz::targets::import_wrapping(data));
