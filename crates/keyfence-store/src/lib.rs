//! keyfence-store
