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
//! fence's secret), approved, heard from within [`HEALTHY_WITHIN`], nearest
//! first. Nearness is the round-trip time this node measures to every peer
//! continuously ([`Forwarder::measure_peers`], every [`MEASURE_INTERVAL`]: a
//! `HEAD /` over the peer's HTTP/2 connection, smoothed); round trips within
//! the same [`TIE_BAND`] tie, and ties go to the peer with fewer of this
//! node's requests in flight. A peer whose last measurement or forward
//! failed comes last until it answers again; one not measured yet comes
//! after the measured ones. [`CONNECTIONS_PER_PEER`] HTTP/2 connections per
//! peer, taken in turn, TLS 1.3 with X25519MLKEM768 only, each carrying many
//! requests in flight; a peer that
//! cannot be reached within [`CONNECT_TIMEOUT`] is skipped, so with none
//! reachable the caller gets the fence's error at once rather than a timeout.
//!
//! Mutual TLS: the forwarding node presents its node certificate (issued by
//! the authority in its grant); the receiving node serves a request marked
//! [`FORWARDED_BY`] only if its connection presented exactly the certificate
//! in the current grant of the approved node it names
//! ([`check_forwarded_by`]), so a node that is not enrolled, or was removed,
//! cannot make node-to-node requests. The forwarder checks the peer's server
//! certificate against the cluster's CA.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CONNECTION, HOST, TE, TRANSFER_ENCODING, UPGRADE};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode, Uri};
use keyfence_core::cluster::NodeState;
use keyfence_core::fence::{FenceId, FenceRecord};
use keyfence_core::{Clock, SystemClock};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::api::ApiError;
use crate::cluster::{Membership, POLL_INTERVAL};
use crate::http::Connection;
use crate::metrics::Metrics;
use crate::tls::{NodeCertificate, PeerTls};

/// Header a forwarding node adds: its name. A request carrying it is served
/// locally or refused, never forwarded again.
pub const FORWARDED_BY: &str = "x-keyfence-forwarded-by";

/// How long a forward waits to connect and handshake with one peer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a forwarded request may take at the peer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A peer counts as healthy if it wrote its heartbeat this recently.
pub const HEALTHY_WITHIN: Duration = Duration::from_secs(3 * POLL_INTERVAL.as_secs());

/// How often this node measures its round trip to every peer.
pub const MEASURE_INTERVAL: Duration = Duration::from_secs(1);

/// Round-trip times within the same band of this width count as a tie.
pub const TIE_BAND: Duration = Duration::from_millis(1);

/// Weight of a new round-trip sample in the smoothed value (out of 8).
const SAMPLE_WEIGHT: u32 = 3;

/// What this node knows of its path to one peer.
#[derive(Default)]
struct PeerStats {
    /// Smoothed round-trip time; `None` until measured.
    rtt: Option<Duration>,
    /// The last measurement or forward failed.
    down: bool,
    /// This node's requests to the peer now in flight.
    in_flight: Arc<AtomicUsize>,
}

/// One candidate for a forward, with what ranks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The peer's name.
    pub name: String,
    /// Where it is reached.
    pub address: String,
    /// Smoothed round-trip time, if measured.
    pub rtt: Option<Duration>,
    /// Whether its last measurement or forward failed.
    pub down: bool,
    /// Requests to it in flight.
    pub in_flight: usize,
}

impl Candidate {
    /// Sort key: reachable first, then measured by round-trip band, then
    /// fewer in flight, then the exact round trip, then the name.
    fn rank(&self) -> (bool, u128, usize, Duration, &str) {
        let band = self
            .rtt
            .map_or(u128::MAX, |d| d.as_nanos() / TIE_BAND.as_nanos());
        (
            self.down,
            band,
            self.in_flight,
            self.rtt.unwrap_or(Duration::MAX),
            &self.name,
        )
    }
}

/// Orders candidates nearest first (see [`Candidate`]'s ranking).
pub fn nearest_first(candidates: &mut [Candidate]) {
    candidates.sort_by(|a, b| a.rank().cmp(&b.rank()));
}

/// Forwards requests to satisfying peers over reused HTTP/2 connections.
pub struct Forwarder {
    cluster: Arc<Membership>,
    tls: PeerTls,
    /// The client configuration in use, with the node certificate it presents.
    client: Mutex<(Option<Arc<NodeCertificate>>, Arc<rustls::ClientConfig>)>,
    metrics: Arc<Metrics>,
    /// Open connections by peer address.
    connections: Mutex<HashMap<String, Arc<PeerConnections>>>,
    /// Path statistics by peer name.
    stats: Mutex<HashMap<String, PeerStats>>,
    /// Nodes and fence members, read from the store at most every [`DIRECTORY_TTL`].
    directory: Mutex<Option<Directory>>,
}

/// How long the forwarder's copy of the nodes and fence members is used
/// before the store is read again (the request path reads memory only); a
/// refresh that installs a change makes it re-read at once.
pub const DIRECTORY_TTL: Duration = Duration::from_millis(500);

/// The forwarder's copy of who is where.
struct Directory {
    read: Instant,
    /// [`Membership::changes`] when it was read.
    changes: u64,
    /// Healthy approved nodes other than this one: (name, address).
    nodes: Vec<(String, String)>,
    /// The nodes holding each fence's secret.
    members: HashMap<FenceId, Vec<String>>,
}

/// HTTP/2 connections kept open to each peer. Requests take them in turn:
/// one connection's reads, writes and TLS records are handled by one task,
/// which would cap forwarding at what one core does (and at the peer's
/// stream limit per connection), so a busy node spreads over several.
pub const CONNECTIONS_PER_PEER: usize = 4;

/// HTTP/2 flow-control window per forwarded answer (hyper's client default).
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;

/// HTTP/2 flow-control window per connection to a peer (hyper's client default).
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;

/// The connections to one peer: slots taken in turn, each opened when first
/// used (or found closed).
struct PeerConnections {
    slots: Vec<Slot>,
    next: AtomicUsize,
}

/// One connection to a peer, if open, and the lock held while opening it.
#[derive(Default)]
struct Slot {
    open: Mutex<Option<PeerConnection>>,
    opening: tokio::sync::Mutex<()>,
}

/// An open HTTP/2 connection to a peer, driven by a task of its own. A
/// forwarded request is sent and its answer read by the request's own task
/// through the `h2` crate (hyper's client would spawn a task per request and
/// pass the answer back through two channels).
#[derive(Clone)]
struct PeerConnection {
    sender: h2::client::SendRequest<Bytes>,
    /// Set by the driving task when the connection ends.
    closed: Arc<AtomicBool>,
}

impl Slot {
    fn get(&self) -> Option<PeerConnection> {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|c| !c.closed.load(Ordering::Acquire))
            .cloned()
    }
}

impl PeerConnections {
    fn new() -> Self {
        Self {
            slots: (0..CONNECTIONS_PER_PEER).map(|_| Slot::default()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The next slot in turn.
    fn slot(&self) -> &Slot {
        &self.slots[self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()]
    }
}

/// Counts a request in flight to a peer for as long as it lives.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn unavailable(fence: FenceId, detail: &str) -> ApiError {
    ApiError::new(
        "KeyUnavailableException",
        format!("The key is fenced ({fence}) away from this node and {detail}"),
    )
}

impl Forwarder {
    /// A forwarder for `cluster`'s node, trusting peers' server certificates
    /// issued by the CA in `tls` and presenting this node's certificate once
    /// its grant carries one.
    pub fn new(
        cluster: Arc<Membership>,
        tls: PeerTls,
        metrics: Arc<Metrics>,
    ) -> Result<Self, crate::tls::TlsError> {
        let anonymous = tls.anonymous()?;
        Ok(Self {
            cluster,
            client: Mutex::new((None, anonymous)),
            tls,
            metrics,
            connections: Mutex::new(HashMap::new()),
            stats: Mutex::new(HashMap::new()),
            directory: Mutex::new(None),
        })
    }

    /// The client configuration presenting this node's current certificate;
    /// `true` if it changed (then open connections presented another one).
    fn client_config(&self) -> Result<(Arc<rustls::ClientConfig>, bool), String> {
        let current = self.cluster.certificate();
        let mut client = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let same = match (&client.0, &current) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            let config = match &current {
                Some(cert) => self.tls.presenting(cert),
                None => self.tls.anonymous(),
            }
            .map_err(|e| e.to_string())?;
            *client = (current, config);
        }
        Ok((Arc::clone(&client.1), !same))
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, HashMap<String, PeerStats>> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a round-trip sample to `peer` (`None`: it did not answer).
    fn record(&self, peer: &str, sample: Option<Duration>) {
        let mut stats = self.stats();
        let s = stats.entry(peer.to_owned()).or_default();
        match sample {
            Some(d) => {
                s.down = false;
                s.rtt = Some(match s.rtt {
                    None => d,
                    Some(old) => (old * (8 - SAMPLE_WEIGHT) + d * SAMPLE_WEIGHT) / 8,
                });
            }
            None => s.down = true,
        }
    }

    /// The smoothed round-trip time to `peer`, if measured and it answered last time.
    pub fn round_trip(&self, peer: &str) -> Option<Duration> {
        self.stats()
            .get(peer)
            .filter(|s| !s.down)
            .and_then(|s| s.rtt)
    }

    fn in_flight(&self, peer: &str) -> InFlight {
        let counter = Arc::clone(&self.stats().entry(peer.to_owned()).or_default().in_flight);
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter)
    }

    /// The approved nodes other than this one heard from within
    /// [`HEALTHY_WITHIN`], with `filter` deciding by name.
    fn healthy_nodes(
        &self,
        filter: impl Fn(&str) -> bool,
    ) -> Result<Vec<(String, String)>, keyfence_core::StoreError> {
        let now = SystemClock.now();
        let healthy_ms = HEALTHY_WITHIN.as_millis() as i64;
        Ok(self
            .cluster
            .store()
            .nodes()?
            .into_iter()
            .filter(|n| {
                n.state == NodeState::Approved
                    && n.name != self.cluster.name()
                    && filter(&n.name)
                    && now.0 - n.last_contact.0 <= healthy_ms
            })
            .map(|n| (n.name, n.address))
            .collect())
    }

    /// Measures the round trip to every healthy approved peer once: a
    /// `HEAD /` (the status page) over its HTTP/2 connection, timed from
    /// sending to the response head; the connection is opened first if need
    /// be, outside the timing.
    pub async fn measure_once(&self) {
        let peers = match self.healthy_nodes(|_| true) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "reading the cluster store to measure peers");
                return;
            }
        };
        for (name, address) in peers {
            let sample = self.ping(&address).await;
            if let Err(e) = &sample {
                tracing::debug!(peer = %name, %address, error = %e, "round-trip measurement failed");
                self.drop_connections(&address);
            }
            self.record(&name, sample.ok());
        }
    }

    async fn ping(&self, address: &str) -> Result<Duration, String> {
        let peer = self.connection(address).await?;
        let uri: Uri = format!("https://{address}/")
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| e.to_string())?;
        let mut req = Request::new(());
        *req.method_mut() = Method::HEAD;
        *req.uri_mut() = uri;
        let exchange = async {
            let mut sender = peer.sender.ready().await.map_err(|e| e.to_string())?;
            let started = Instant::now();
            let (answer, _) = sender.send_request(req, true).map_err(|e| e.to_string())?;
            answer.await.map_err(|e| e.to_string())?;
            Ok::<_, String>(started.elapsed())
        };
        tokio::time::timeout(CONNECT_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no answer within {CONNECT_TIMEOUT:?}"))?
    }

    /// Measures every peer every [`MEASURE_INTERVAL`], for ever (the node's task).
    pub async fn measure_peers(self: Arc<Self>) {
        let mut tick = tokio::time::interval(MEASURE_INTERVAL);
        loop {
            tick.tick().await;
            self.measure_once().await;
        }
    }

    /// The healthy nodes other than this one that hold `fence`'s secret:
    /// (name, address); `None` if the fence is unknown. Read from the store at
    /// most every [`DIRECTORY_TTL`] (and when the fence is not known yet).
    fn directory(&self, fence: FenceId) -> Result<Option<Vec<(String, String)>>, String> {
        let mut cached = self.directory.lock().unwrap_or_else(|p| p.into_inner());
        let changes = self.cluster.changes();
        let fresh = cached.as_ref().is_some_and(|d| {
            d.read.elapsed() < DIRECTORY_TTL
                && d.changes == changes
                && d.members.contains_key(&fence)
        });
        if !fresh {
            let mut members = HashMap::new();
            for stored in self.cluster.store().fences().map_err(|e| e.to_string())? {
                let record = FenceRecord::from_bytes(&stored.record).map_err(|e| e.to_string())?;
                members.insert(
                    record.id(),
                    record.nodes().iter().map(|n| n.to_string()).collect(),
                );
            }
            *cached = Some(Directory {
                read: Instant::now(),
                changes,
                nodes: self.healthy_nodes(|_| true).map_err(|e| e.to_string())?,
                members,
            });
        }
        let directory = cached.as_ref().expect("just filled");
        Ok(directory.members.get(&fence).map(|members: &Vec<String>| {
            directory
                .nodes
                .iter()
                .filter(|(name, _)| members.contains(name))
                .cloned()
                .collect()
        }))
    }

    /// The healthy nodes other than this one that hold the fence's secret,
    /// nearest first.
    pub fn peers(&self, fence: FenceId) -> Result<Vec<Candidate>, ApiError> {
        let internal = |e: String| {
            tracing::error!(error = %e, "reading the cluster store to forward");
            unavailable(fence, "the cluster store could not be read")
        };
        let nodes = self
            .directory(fence)
            .map_err(|e| internal(e.to_string()))?
            .ok_or_else(|| unavailable(fence, "the fence is unknown"))?;
        let mut candidates: Vec<Candidate> = {
            let stats = self.stats();
            nodes
                .into_iter()
                .map(|(name, address)| {
                    let s = stats.get(&name);
                    Candidate {
                        rtt: s.and_then(|s| s.rtt),
                        down: s.is_some_and(|s| s.down),
                        in_flight: s.map_or(0, |s| s.in_flight.load(Ordering::Relaxed)),
                        name,
                        address,
                    }
                })
                .collect()
        };
        nearest_first(&mut candidates);
        Ok(candidates)
    }

    /// Forgets every connection to `address` (it failed; the next request
    /// opens a new one).
    fn drop_connections(&self, address: &str) {
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(address);
    }

    /// A connection to `address` (the next of its [`CONNECTIONS_PER_PEER`]
    /// in turn), opened if there is none or it has closed.
    async fn connection(&self, address: &str) -> Result<PeerConnection, String> {
        let (tls, changed) = self.client_config()?;
        let peer = {
            let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
            if changed {
                connections.clear();
            }
            Arc::clone(
                connections
                    .entry(address.to_owned())
                    .or_insert_with(|| Arc::new(PeerConnections::new())),
            )
        };
        let slot = peer.slot();
        if let Some(c) = slot.get() {
            return Ok(c);
        }
        // Rare, and a large future (TCP, TLS and HTTP/2 handshakes): boxed so
        // that it does not make every forwarded request's future as large.
        Box::pin(open(slot, address, tls)).await
    }

    /// Sends the original request to the node at `address` (with this
    /// node's name in [`FORWARDED_BY`], over its mutual-TLS connection); the
    /// peer's response as it came.
    pub async fn relay(
        &self,
        address: &str,
        parts: &Parts,
        body: &Bytes,
    ) -> Result<Response<Full<Bytes>>, String> {
        let peer = self.connection(address).await?;
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
        let mut req = Request::new(());
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = uri;
        for (name, value) in &parts.headers {
            if !is_left_out_of_http2(name) {
                req.headers_mut().append(name.clone(), value.clone());
            }
        }
        req.headers_mut().insert(
            HeaderName::from_static(FORWARDED_BY),
            HeaderValue::from_str(self.cluster.name()).map_err(|e| e.to_string())?,
        );
        let exchange = async {
            let mut sender = peer.sender.ready().await.map_err(|e| e.to_string())?;
            let (answer, mut sending) = sender
                .send_request(req, body.is_empty())
                .map_err(|e| e.to_string())?;
            if !body.is_empty() {
                sending
                    .send_data(body.clone(), true)
                    .map_err(|e| e.to_string())?;
            }
            let (head, mut receiving) = answer.await.map_err(|e| e.to_string())?.into_parts();
            let mut chunks: Vec<Bytes> = Vec::new();
            while let Some(chunk) = receiving.data().await {
                let chunk = chunk.map_err(|e| e.to_string())?;
                let _ = receiving.flow_control().release_capacity(chunk.len());
                chunks.push(chunk);
            }
            let body = match chunks.len() {
                1 => chunks.pop().unwrap_or_default(),
                _ => Bytes::from(chunks.concat()),
            };
            Ok::<_, String>(Response::from_parts(head, Full::new(body)))
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
        // A peer too busy to take the request, kept in case every peer is.
        let mut busy = None;
        for Candidate { name, address, .. } in &peers {
            let sent = {
                let _counted = self.in_flight(name);
                self.relay(address, parts, body).await
            };
            match sent {
                Ok(resp) if resp.status() == StatusCode::SERVICE_UNAVAILABLE => {
                    // Refused before it was executed (sealed, or out of
                    // request budget): the next satisfying node may serve it.
                    self.metrics.record_forward(name, "unavailable");
                    tracing::warn!(peer = %name, "a satisfying node could not take a forwarded request; trying the next node");
                    let (head, answer) = resp.into_parts();
                    let Ok(answer) = answer.collect().await.map(|c| c.to_bytes());
                    if is_throttling(&answer) {
                        busy = Some(Response::from_parts(head, Full::new(answer)));
                    }
                }
                Ok(resp) => {
                    self.metrics.record_forward(name, "ok");
                    return Ok(resp);
                }
                Err(e) => {
                    self.metrics.record_forward(name, "unreachable");
                    self.record(name, None);
                    tracing::warn!(peer = %name, %address, error = %e, "forwarding failed; trying the next node");
                    self.drop_connections(address);
                }
            }
        }
        if let Some(resp) = busy {
            return Ok(resp);
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

/// Opens the connection of `slot` to `address` unless another request
/// opened it meanwhile.
async fn open(
    slot: &Slot,
    address: &str,
    tls: Arc<rustls::ClientConfig>,
) -> Result<PeerConnection, String> {
    let _opening = slot.opening.lock().await;
    if let Some(c) = slot.get() {
        return Ok(c); // another request opened it meanwhile
    }
    let connect = async {
        let tcp = TcpStream::connect(address)
            .await
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
        let name = ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
        let tls = TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        // The windows hyper's client used before: a forwarded answer is
        // read as it arrives, so they bound memory, not speed.
        let (sender, conn) = h2::client::Builder::new()
            .enable_push(false)
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .handshake(tls)
            .await
            .map_err(|e| e.to_string())?;
        let closed = Arc::new(AtomicBool::new(false));
        let ended = Arc::clone(&closed);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "forwarding connection ended");
            }
            ended.store(true, Ordering::Release);
        });
        Ok::<_, String>(PeerConnection { sender, closed })
    };
    let sender = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| format!("no answer within {CONNECT_TIMEOUT:?}"))??;
    *slot.open.lock().unwrap_or_else(|p| p.into_inner()) = Some(sender.clone());
    Ok(sender)
}

/// Headers a forwarded request leaves behind: HTTP/2 carries the host as
/// `:authority` and refuses HTTP/1.1's connection-specific headers (as
/// hyper's client did, they are dropped; the AWS SDKs do not sign them).
fn is_left_out_of_http2(name: &HeaderName) -> bool {
    [HOST, CONNECTION, TRANSFER_ENCODING, UPGRADE, TE].contains(name)
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// Whether a peer's answer (its body) is a `ThrottlingException` (the
/// client should retry) rather than another refusal made before the
/// request ran.
fn is_throttling(answer: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(answer)
        .is_ok_and(|v| v["__type"] == "ThrottlingException")
}

/// Refuses a request marked as forwarded by node `from` unless its connection
/// presented exactly the node certificate of `from`'s current grant (an
/// approved node). Checked before anything else is done with the request.
pub fn check_forwarded_by(
    cluster: Option<&Membership>,
    conn: &Connection,
    from: &HeaderValue,
) -> Result<(), ApiError> {
    let from = from.to_str().unwrap_or("?");
    let refuse = |why: &str| {
        ApiError::new(
            "AccessDeniedException",
            format!("Node-to-node request from {from} refused: {why}"),
        )
    };
    let cluster = cluster.ok_or_else(|| refuse("this node is not in a cluster"))?;
    let presented = conn
        .peer_certificate
        .as_deref()
        .ok_or_else(|| refuse("the connection presented no node certificate"))?;
    if !cluster.is_node_certificate(from, presented) {
        return Err(refuse(
            "the connection's certificate is not the node certificate of an approved node of that name",
        ));
    }
    Ok(())
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
    let Some(fence) = refusal.fence else {
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

    fn candidate(name: &str, rtt_us: Option<u64>, down: bool, in_flight: usize) -> Candidate {
        Candidate {
            name: name.into(),
            address: format!("{name}:1"),
            rtt: rtt_us.map(Duration::from_micros),
            down,
            in_flight,
        }
    }

    fn order(mut c: Vec<Candidate>) -> Vec<String> {
        nearest_first(&mut c);
        c.into_iter().map(|c| c.name).collect()
    }

    #[test]
    fn a_busy_peer_is_told_from_a_sealed_one_by_its_answer() {
        use crate::api::messages;
        assert!(is_throttling(
            &messages::request_budget_exhausted().json_body()
        ));
        assert!(!is_throttling(&messages::node_sealed().json_body()));
        assert!(!is_throttling(b"not json"));
        assert!(!is_throttling(b""));
    }

    #[test]
    fn peers_are_ranked_by_round_trip_then_load() {
        // Nearest first by round trip.
        assert_eq!(
            order(vec![
                candidate("far", Some(30_000), false, 0),
                candidate("near", Some(400), false, 0),
            ]),
            ["near", "far"]
        );
        // Within one band (a tie), fewer in flight first, even if a bit slower.
        assert_eq!(
            order(vec![
                candidate("busy", Some(200), false, 5),
                candidate("idle", Some(700), false, 1),
                candidate("far", Some(2_500), false, 0),
            ]),
            ["idle", "busy", "far"]
        );
        // Unmeasured after measured; down last whatever its round trip.
        assert_eq!(
            order(vec![
                candidate("down", Some(100), true, 0),
                candidate("new", None, false, 0),
                candidate("slow", Some(90_000), false, 9),
            ]),
            ["slow", "new", "down"]
        );
    }
}
