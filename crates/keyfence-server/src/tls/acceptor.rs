//! Accepting TLS connections, with post-quantum-only mode enforced on the ClientHello.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::Acceptor;
use rustls::{NamedGroup, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use super::config::is_hybrid;
use super::{KxMode, TlsError};

/// Default upper bound for one TLS handshake in [`PqAcceptor::accept`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts TLS connections, enforcing [`KxMode::PostQuantumOnly`] on the ClientHello.
#[derive(Clone)]
pub struct PqAcceptor {
    config: Arc<ServerConfig>,
    mode: KxMode,
    handshake_timeout: Duration,
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
    /// offers no hybrid ML-KEM group is logged once at `warn` with the groups it offered,
    /// answered with a TLS `handshake_failure` alert, and refused with
    /// [`TlsError::ClassicalOnlyClient`]. On success, returns the stream and the name of
    /// the negotiated group (e.g. `"X25519MLKEM768"`).
    pub async fn accept(
        &self,
        tcp: TcpStream,
    ) -> Result<(TlsStream<TcpStream>, &'static str), TlsError> {
        let peer = tcp
            .peer_addr()
            .map_or_else(|_| "unknown".to_owned(), |a| a.to_string());
        match tokio::time::timeout(self.handshake_timeout, self.handshake(tcp, peer)).await {
            Ok(result) => result,
            Err(_) => Err(TlsError::HandshakeTimeout(self.handshake_timeout)),
        }
    }

    fn config_is_strict(&self) -> bool {
        self.config
            .crypto_provider()
            .kx_groups
            .iter()
            .all(|g| is_hybrid(g.name()))
    }

    async fn handshake(
        &self,
        tcp: TcpStream,
        peer: String,
    ) -> Result<(TlsStream<TcpStream>, &'static str), TlsError> {
        let start = LazyConfigAcceptor::new(Acceptor::default(), tcp)
            .await
            .map_err(TlsError::Handshake)?;

        if self.mode == KxMode::PostQuantumOnly {
            let hello = start.client_hello();
            let offered = hello.named_groups().unwrap_or(&[]);
            if !offered.iter().copied().any(is_hybrid) {
                let offered = describe_groups(offered);
                tracing::warn!(
                    peer = %peer,
                    offered = %offered,
                    "refusing TLS client without post-quantum key exchange"
                );
                // With a hybrid-only configuration, completing the handshake makes
                // rustls send a handshake_failure alert (the outcome is known to be an
                // error). A configuration that also allows classical groups must not
                // complete, so the connection is simply dropped.
                if self.config_is_strict() {
                    let _ = start.into_stream(Arc::clone(&self.config)).await;
                }
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
                tracing::warn!(peer = %peer, negotiated = %offered, "refusing classical key exchange in post-quantum-only mode");
                Err(TlsError::ClassicalOnlyClient { offered })
            }
            Some(group) => Ok((stream, group.as_str().unwrap_or("unknown"))),
            None => Ok((stream, "unknown")),
        }
    }
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
