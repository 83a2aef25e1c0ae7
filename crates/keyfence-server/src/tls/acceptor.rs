//! Accepting TLS connections, with post-quantum-only mode enforced on the ClientHello.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::Acceptor;
use rustls::{NamedGroup, ServerConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use super::config::is_hybrid;
use super::{KxMode, TlsError};
use crate::log_limit::LogLimiter;

/// A plaintext TLS record carrying a fatal `insufficient_security` (71) alert: content
/// type alert (21), legacy version TLS 1.2, length 2, level fatal (2), description 71.
/// Before the ServerHello no keys exist, so TLS 1.3 sends alerts in the clear.
const INSUFFICIENT_SECURITY_ALERT: [u8; 7] = [21, 3, 3, 0, 2, 2, 71];

/// The first byte of every TLS connection: a handshake record (content type 22).
const TLS_HANDSHAKE_RECORD: u8 = 22;

/// Default upper bound for one TLS handshake in [`PqAcceptor::accept`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts TLS connections, enforcing [`KxMode::PostQuantumOnly`] on the ClientHello.
#[derive(Clone)]
pub struct PqAcceptor {
    config: Arc<ServerConfig>,
    mode: KxMode,
    handshake_timeout: Duration,
    /// One line per client address per minute about refused classical clients.
    refusal_log: Arc<LogLimiter>,
    /// One line per client address per minute about plain HTTP on the TLS port.
    plain_http_log: Arc<LogLimiter>,
}

impl fmt::Debug for PqAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PqAcceptor")
            .field("mode", &self.mode)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl PqAcceptor {
    /// An acceptor completing handshakes with `config` (normally from
    /// [`load_server_config`] with the same `mode`) and a handshake timeout of
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub fn new(config: Arc<ServerConfig>, mode: KxMode) -> Self {
        PqAcceptor {
            config,
            mode,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            refusal_log: Arc::new(LogLimiter::per_minute()),
            plain_http_log: Arc::new(LogLimiter::per_minute()),
        }
    }

    /// Replaces the handshake timeout.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The key-exchange mode this acceptor enforces.
    pub fn mode(&self) -> KxMode {
        self.mode
    }

    /// Performs the TLS handshake on `tcp`.
    ///
    /// The ClientHello is read first. In [`KxMode::PostQuantumOnly`], a client that
    /// offers no hybrid ML-KEM group is answered with TLS's `insufficient_security`
    /// alert (71) and refused with [`TlsError::ClassicalOnlyClient`]; a `warn` line names
    /// the groups it offered, at most once per client address per minute. A connection
    /// whose first byte is not a TLS handshake record (plain `http://`) leaves a one-line
    /// hint, as rate-limited. On success, returns the stream and the name of the
    /// negotiated group (e.g. `"X25519MLKEM768"`).
    pub async fn accept(
        &self,
        tcp: TcpStream,
    ) -> Result<(TlsStream<TcpStream>, &'static str), TlsError> {
        let peer = tcp.peer_addr().ok();
        match tokio::time::timeout(self.handshake_timeout, self.handshake(tcp, peer)).await {
            Ok(result) => result,
            Err(_) => Err(TlsError::HandshakeTimeout(self.handshake_timeout)),
        }
    }

    async fn handshake(
        &self,
        tcp: TcpStream,
        peer: Option<std::net::SocketAddr>,
    ) -> Result<(TlsStream<TcpStream>, &'static str), TlsError> {
        let mut first = [0u8; 1];
        if matches!(tcp.peek(&mut first).await, Ok(1))
            && first[0] != TLS_HANDSHAKE_RECORD
            && first[0].is_ascii_uppercase()
            && may_log(&self.plain_http_log, peer)
        {
            tracing::warn!(
                peer = %describe_peer(peer),
                "plain HTTP on the TLS port: this port speaks HTTPS only, use an https:// endpoint"
            );
        }
        let start = LazyConfigAcceptor::new(Acceptor::default(), tcp)
            .await
            .map_err(TlsError::Handshake)?;

        if self.mode == KxMode::PostQuantumOnly {
            let hello = start.client_hello();
            let offered = hello.named_groups().unwrap_or(&[]);
            if !offered.iter().copied().any(is_hybrid) {
                let offered = describe_groups(offered);
                if may_log(&self.refusal_log, peer) {
                    tracing::warn!(
                        peer = %describe_peer(peer),
                        offered = %offered,
                        "refusing TLS client without post-quantum key exchange"
                    );
                }
                // rustls itself would answer a failed group negotiation with
                // handshake_failure, which clients report like a certificate problem;
                // insufficient_security says what is wrong. Best effort: the client
                // may already be gone.
                let mut tcp = start.io;
                let _ = tcp.write_all(&INSUFFICIENT_SECURITY_ALERT).await;
                let _ = tcp.shutdown().await;
                return Err(TlsError::ClassicalOnlyClient { offered });
            }
        }

        let stream = start
            .into_stream(Arc::clone(&self.config))
            .await
            .map_err(TlsError::Handshake)?;
        let group = stream
            .get_ref()
            .1
            .negotiated_key_exchange_group()
            .map(|g| g.name());
        match group {
            Some(group) if self.mode == KxMode::PostQuantumOnly && !is_hybrid(group) => {
                // Only reachable if the acceptor was given a configuration that allows
                // classical groups; strict mode still holds.
                let offered = group_name(group);
                tracing::warn!(peer = %describe_peer(peer), negotiated = %offered, "refusing classical key exchange in post-quantum-only mode");
                Err(TlsError::ClassicalOnlyClient { offered })
            }
            Some(group) => Ok((stream, group.as_str().unwrap_or("unknown"))),
            None => Ok((stream, "unknown")),
        }
    }
}

/// Whether `limiter` lets a line about `peer` be logged now.
fn may_log(limiter: &LogLimiter, peer: Option<std::net::SocketAddr>) -> bool {
    limiter.allow(peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.ip()))
}

fn describe_peer(peer: Option<std::net::SocketAddr>) -> String {
    peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string())
}

fn group_name(group: NamedGroup) -> String {
    match group.as_str() {
        Some(name) => name.to_owned(),
        None => format!("0x{:04x}", u16::from(group)),
    }
}

fn describe_groups(groups: &[NamedGroup]) -> String {
    if groups.is_empty() {
        return "none".to_owned();
    }
    groups
        .iter()
        .map(|g| group_name(*g))
        .collect::<Vec<_>>()
        .join(", ")
}
