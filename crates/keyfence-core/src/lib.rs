//! keyfence-core
