//! keyfence fuzz targets, shared by the libFuzzer binaries and the corpus
//! replay test of `cargo test`.

pub mod targets;
