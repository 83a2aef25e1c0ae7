//! keyfence node: PQ TLS transport, AWS KMS JSON 1.1 API, SigV4 and metrics.
pub mod metrics;
pub mod sigv4;
pub mod tls;
