//! Forwarding a request for a key fenced away from this node to a node that
//! satisfies the fence.
//!
//! The caller's original signed request goes as it came — method, path,
//! every header including `Authorization` and `X-Amz-Date`, the body bytes —
//! so the satisfying node verifies SigV4 itself and a forwarding node cannot
//! act for anyone. Only the host travels as HTTP/2's `:authority` (the value
//! the caller signed), and one header is added, [`FORWARDED_BY`], which the
//! receiver uses to refuse a second hop.
//!
//! Peers: the nodes the fence record names (those the authority gave the
//! fence's secret), approved, heard from within [`HEALTHY_WITHIN`], most
//! recently heard first (round-trip times are not measured yet). One HTTP/2
//! connection per peer, TLS 1.3 with X25519MLKEM768 only, reused by every
//! request in flight; a peer that cannot be reached within
//! [`CONNECT_TIMEOUT`] is skipped, so with none reachable the caller gets the
//! fence's error at once rather than a timeout.
//!
//! Not yet: node certificates (mutual TLS between nodes); the peer is
//! authenticated by the cluster's CA certificate only.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper::header::{HeaderName, HeaderValue, HOST};
use hyper::http::request::Parts;
use hyper::{Request, Response, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use keyfence_core::cluster::NodeState;
use keyfence_core::fence::{FenceId, FenceRecord};
use keyfence_core::{Clock, SystemClock};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::api::ApiError;
use crate::cluster::{Membership, POLL_INTERVAL};
use crate::metrics::Metrics;

/// Header a forwarding node adds: its name. A request carrying it is served
/// locally or refused, never forwarded again.
pub const FORWARDED_BY: &str = "x-keyfence-forwarded-by";

/// How long a forward waits to connect and handshake with one peer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a forwarded request may take at the peer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A peer counts as healthy if it wrote its heartbeat this recently.
pub const HEALTHY_WITHIN: Duration = Duration::from_secs(3 * POLL_INTERVAL.as_secs());

/// Forwards requests to satisfying peers over reused HTTP/2 connections.
pub struct Forwarder {
    cluster: Arc<Membership>,
    tls: Arc<rustls::ClientConfig>,
    metrics: Arc<Metrics>,
    connections: tokio::sync::Mutex<HashMap<String, SendRequest<Full<Bytes>>>>,
}

fn unavailable(fence: FenceId, detail: &str) -> ApiError {
    ApiError::new(
        "KeyUnavailableException",
        format!("The key is fenced ({fence}) away from this node and {detail}"),
    )
}

impl Forwarder {
    /// A forwarder for `cluster`'s node, trusting peers' certificates issued by
    /// the CA in `tls` (a client configuration limited to X25519MLKEM768).
    pub fn new(
        cluster: Arc<Membership>,
        tls: Arc<rustls::ClientConfig>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            cluster,
            tls,
            metrics,
            connections: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The healthy nodes other than this one that hold the fence's secret:
    /// (name, address), most recently heard from first.
    fn peers(&self, fence: FenceId) -> Result<Vec<(String, String)>, ApiError> {
        let internal = |e: String| {
            tracing::error!(error = %e, "reading the cluster store to forward");
            unavailable(fence, "the cluster store could not be read")
        };
        let store = self.cluster.store();
        let stored = store
            .fences()
            .map_err(|e| internal(e.to_string()))?
            .into_iter()
            .find(|f| f.id == fence)
            .ok_or_else(|| unavailable(fence, "the fence is unknown"))?;
        let record =
            FenceRecord::from_bytes(&stored.record).map_err(|e| internal(e.to_string()))?;
        let members = record.nodes();
        let now = SystemClock.now();
        let healthy_ms = HEALTHY_WITHIN.as_millis() as i64;
        let mut nodes: Vec<_> = store
            .nodes()
            .map_err(|e| internal(e.to_string()))?
            .into_iter()
            .filter(|n| {
                n.state == NodeState::Approved
                    && n.name != self.cluster.name()
                    && members.contains(&n.name.as_str())
                    && now.0 - n.last_contact.0 <= healthy_ms
            })
            .collect();
        nodes.sort_by_key(|n| std::cmp::Reverse(n.last_contact));
        Ok(nodes.into_iter().map(|n| (n.name, n.address)).collect())
    }

    /// The connection to `address`, opened if there is none or it has closed.
    async fn connection(&self, address: &str) -> Result<SendRequest<Full<Bytes>>, String> {
        let mut connections = self.connections.lock().await;
        if let Some(c) = connections.get(address) {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let connect = async {
            let tcp = TcpStream::connect(address)
                .await
                .map_err(|e| e.to_string())?;
            let _ = tcp.set_nodelay(true);
            let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
            let name = ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
            let tls = TlsConnector::from(Arc::clone(&self.tls))
                .connect(name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            let (sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                    .await
                    .map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "forwarding connection ended");
                }
            });
            Ok::<_, String>(sender)
        };
        let sender = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| format!("no answer within {CONNECT_TIMEOUT:?}"))??;
        connections.insert(address.to_owned(), sender.clone());
        Ok(sender)
    }

    /// Sends the original request to one peer; the peer's response as it came.
    async fn send(
        &self,
        address: &str,
        parts: &Parts,
        body: &Bytes,
    ) -> Result<Response<Full<Bytes>>, String> {
        let mut sender = self.connection(address).await?;
        let host = parts
            .headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| parts.uri.authority().map(|a| a.to_string()))
            .ok_or("the request names no host")?;
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri: Uri = format!("https://{host}{path}")
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| e.to_string())?;
        let mut req = Request::new(Full::new(body.clone()));
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = uri;
        for (name, value) in &parts.headers {
            if name != HOST {
                req.headers_mut().append(name.clone(), value.clone());
            }
        }
        req.headers_mut().insert(
            HeaderName::from_static(FORWARDED_BY),
            HeaderValue::from_str(self.cluster.name()).map_err(|e| e.to_string())?,
        );
        let exchange = async {
            sender.ready().await.map_err(|e| e.to_string())?;
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok::<_, String>(Response::from_parts(parts, Full::new(body)))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no response within {REQUEST_TIMEOUT:?}"))?
    }

    /// Forwards the original request for a key of `fence` to the first
    /// healthy satisfying peer that answers; the error names the fence if none does.
    pub async fn forward(
        &self,
        fence: FenceId,
        parts: &Parts,
        body: &Bytes,
        refusal: ApiError,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        let peers = self.peers(fence)?;
        for (name, address) in &peers {
            match self.send(address, parts, body).await {
                Ok(resp) => {
                    self.metrics.record_forward(name, "ok");
                    return Ok(resp);
                }
                Err(e) => {
                    self.metrics.record_forward(name, "unreachable");
                    tracing::warn!(peer = %name, %address, error = %e, "forwarding failed; trying the next node");
                    self.connections.lock().await.remove(address);
                }
            }
        }
        self.metrics.record_forward("none", "no_satisfying_node");
        Err(ApiError {
            message: format!(
                "{} (satisfying nodes tried: {})",
                refusal.message,
                peers.len()
            ),
            ..refusal
        })
    }
}

/// What the HTTP layer does with a refused KMS request: forward it if it was
/// refused because its key is fenced away from this node (and it was not
/// forwarded here already), else answer the refusal.
pub async fn on_refusal(
    forwarder: Option<&Forwarder>,
    parts: &Parts,
    body: &Bytes,
    refusal: ApiError,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let Some(fence) =
        crate::api::messages::fenced_elsewhere_fence(&refusal).map(FenceId::from_bytes)
    else {
        return Err(refusal);
    };
    if let Some(from) = parts.headers.get(FORWARDED_BY) {
        let from = from.to_str().unwrap_or("?");
        return Err(ApiError {
            message: format!("{} (forwarded by {from}; one hop at most)", refusal.message),
            ..refusal
        });
    }
    match forwarder {
        Some(f) => f.forward(fence, parts, body, refusal).await,
        None => Err(refusal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::messages;

    #[test]
    fn the_refusal_names_the_fence_it_is_forwarded_for() {
        let fence = FenceId::of_policy("region: EU").unwrap();
        let refusal = messages::fenced_elsewhere("arn:k", &fence.to_string(), "region: EU");
        assert_eq!(
            messages::fenced_elsewhere_fence(&refusal),
            Some(*fence.as_bytes())
        );
        let other = ApiError::new("NotFoundException", refusal.message.clone());
        assert_eq!(messages::fenced_elsewhere_fence(&other), None);
        let garbled = ApiError::new("KeyUnavailableException", "(fence-zz)");
        assert_eq!(messages::fenced_elsewhere_fence(&garbled), None);
    }
}
