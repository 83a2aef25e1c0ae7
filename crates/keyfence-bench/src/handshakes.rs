//! The `handshakes` workload: TLS 1.3 handshakes per second with classical
//! X25519 against hybrid X25519MLKEM768, and the size of each ClientHello; full
//! handshakes, or (`--resume`) handshakes resumed with a session ticket.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hdrhistogram::Histogram;
use keyfence_server::tls::ClientGroups;
use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use super::client::{self, Endpoint, HttpVersion};
use super::runner::{histogram, HIST_MAX_US};

/// The two groups compared, in report order.
pub const GROUPS: [(ClientGroups, &str); 2] = [
    (ClientGroups::ClassicalOnly, "X25519"),
    (ClientGroups::HybridOnly, "X25519MLKEM768"),
];

/// The longest stretch one group runs before the other takes over: the groups
/// alternate (ABBA…) so that drifting background load hits both alike.
const SEGMENT: Duration = Duration::from_secs(2);

/// One group's figures.
pub struct GroupResult {
    /// The group offered (the only one).
    pub group: &'static str,
    /// Completed connection cycles (TCP connect, full handshake, close).
    pub handshakes: u64,
    /// Time spent running this group.
    pub elapsed: Duration,
    /// Handshake latency (TCP connect to handshake complete), microseconds.
    pub latency: Histogram<u64>,
    /// Failures by type.
    pub errors: BTreeMap<String, u64>,
    /// Size of the first TLS record the client writes: the ClientHello.
    pub client_hello_bytes: usize,
    /// Bytes the client sent until its handshake completed (one connection).
    pub handshake_bytes_sent: u64,
    /// Bytes the client received until its handshake completed (one connection).
    pub handshake_bytes_received: u64,
    /// CPU time of the load generator while this group ran.
    pub client_cpu: Duration,
    /// CPU time of the node while this group ran (with its pid).
    pub node_cpu: Option<Duration>,
}

impl GroupResult {
    fn empty(group: &'static str) -> Self {
        Self {
            group,
            handshakes: 0,
            elapsed: Duration::ZERO,
            latency: histogram(),
            errors: BTreeMap::new(),
            client_hello_bytes: 0,
            handshake_bytes_sent: 0,
            handshake_bytes_received: 0,
            client_cpu: Duration::ZERO,
            node_cpu: None,
        }
    }

    /// Connection attempts: completed handshakes and failures.
    pub fn attempts(&self) -> u64 {
        self.handshakes + self.errors.values().sum::<u64>()
    }

    /// Handshakes per second.
    pub fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.handshakes as f64 / s
        } else {
            0.0
        }
    }
}

/// A client configuration offering only `groups`, with session resumption off so
/// that every connection does a full handshake.
pub fn handshake_config(
    ca: &std::path::Path,
    groups: ClientGroups,
) -> Result<Arc<ClientConfig>, String> {
    let base = client::tls_config(ca, groups, HttpVersion::Http1)?;
    let mut config = (*base).clone();
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// The bytes of the client's first flight, i.e. its ClientHello record(s), taken
/// from rustls before any connection is made.
pub fn client_hello_size(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
) -> Result<usize, String> {
    let mut conn =
        rustls::ClientConnection::new(config, name).map_err(|e| format!("ClientHello: {e}"))?;
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out)
            .map_err(|e| format!("ClientHello: {e}"))?;
    }
    Ok(out.len())
}

/// Full handshakes or resumed ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every connection runs a full handshake (certificate, signature).
    Full,
    /// Every connection resumes with a ticket from the previous one of the same
    /// worker (each worker keeps its own session cache and makes one unmeasured
    /// full handshake first); a connection that is not resumed is an error.
    Resumed,
}

/// Runs both groups for `duration` each, `concurrency` connections at a time,
/// alternating in segments of at most two seconds.
pub async fn run(
    endpoint: &Endpoint,
    ca: &std::path::Path,
    kind: Kind,
    concurrency: usize,
    duration: Duration,
    node_pid: Option<u32>,
    progress: Arc<AtomicU64>,
) -> Result<Vec<GroupResult>, String> {
    let cpu = |pid: &str| client::process_cpu_time(pid).ok();
    let node = node_pid.map(|p| p.to_string());
    let name = client::server_name(&endpoint.host).map_err(|e| e.to_string())?;
    let mut results = Vec::new();
    let mut configs = Vec::new();
    for (groups, label) in GROUPS {
        let config = handshake_config(ca, groups)?;
        results.push(GroupResult {
            client_hello_bytes: client_hello_size(Arc::clone(&config), name.clone())?,
            ..GroupResult::empty(label)
        });
        configs.push(config);
    }
    // One connector per worker and group, primed before anything is measured.
    let mut connectors = Vec::new();
    for (config, result) in configs.iter().zip(&results) {
        let mut per_worker = Vec::new();
        for _ in 0..concurrency.max(1) {
            per_worker.push(connector_for(config, kind, &name, endpoint.addr, result.group).await);
        }
        connectors.push(per_worker);
    }
    let rounds = duration.as_nanos().div_ceil(SEGMENT.as_nanos()).max(1) as u32;
    let segment = duration / rounds;
    for round in 0..rounds {
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for g in order {
            let (client0, node0) = (cpu("self"), node.as_deref().and_then(cpu));
            let r = segment_run(
                endpoint,
                (&connectors[g], kind),
                &name,
                results[g].group,
                segment,
                Arc::clone(&progress),
            )
            .await;
            let total = &mut results[g];
            if let (Some(a), Some(b)) = (cpu("self"), client0) {
                total.client_cpu += a.saturating_sub(b);
            }
            if let (Some(a), Some(b)) = (node.as_deref().and_then(cpu), node0) {
                total.node_cpu = Some(total.node_cpu.unwrap_or_default() + a.saturating_sub(b));
            }
            total.handshakes += r.handshakes;
            total.elapsed += r.elapsed;
            total.latency.add(&r.latency).expect("same bounds");
            for (k, n) in r.errors {
                *total.errors.entry(k).or_default() += n;
            }
            if total.handshake_bytes_sent == 0 {
                total.handshake_bytes_sent = r.handshake_bytes_sent;
                total.handshake_bytes_received = r.handshake_bytes_received;
            }
        }
    }
    Ok(results)
}

/// A worker's connector: the shared full-handshake configuration, or for
/// resumption a copy with a session cache of its own, primed by one full
/// handshake (not measured).
async fn connector_for(
    config: &Arc<ClientConfig>,
    kind: Kind,
    name: &ServerName<'static>,
    addr: std::net::SocketAddr,
    group: &str,
) -> TlsConnector {
    if kind == Kind::Full {
        return TlsConnector::from(Arc::clone(config));
    }
    let mut own = (**config).clone();
    own.resumption = Resumption::in_memory_sessions(4);
    let connector = TlsConnector::from(Arc::new(own));
    let _ = one_connection(&connector, name.clone(), addr, group, None).await;
    connector
}

async fn segment_run(
    endpoint: &Endpoint,
    (connectors, kind): (&[TlsConnector], Kind),
    name: &ServerName<'static>,
    group: &'static str,
    duration: Duration,
    progress: Arc<AtomicU64>,
) -> GroupResult {
    let expect = match kind {
        Kind::Full => rustls::HandshakeKind::Full,
        Kind::Resumed => rustls::HandshakeKind::Resumed,
    };
    let start = Instant::now();
    let end = start + duration;
    let mut tasks = Vec::new();
    for connector in connectors {
        let connector = connector.clone();
        let (name, addr, progress) = (name.clone(), endpoint.addr, Arc::clone(&progress));
        tasks.push(tokio::spawn(async move {
            let mut out = GroupResult::empty(group);
            let mut last = start;
            while Instant::now() < end {
                let t0 = Instant::now();
                let cycle = tokio::time::timeout(
                    Duration::from_secs(10),
                    one_connection(&connector, name.clone(), addr, group, Some(expect)),
                )
                .await;
                let now = Instant::now();
                last = now;
                match cycle {
                    Ok(Ok(c)) => {
                        out.handshakes += 1;
                        let us = (c.handshake_done - t0)
                            .as_micros()
                            .clamp(1, u128::from(HIST_MAX_US));
                        out.latency.saturating_record(us as u64);
                        out.handshake_bytes_sent = c.sent;
                        out.handshake_bytes_received = c.received;
                    }
                    Ok(Err(kind)) => *out.errors.entry(kind).or_default() += 1,
                    Err(_) => *out.errors.entry("Timeout".into()).or_default() += 1,
                }
                progress.fetch_add(1, Ordering::Relaxed);
            }
            out.elapsed = last - start;
            out
        }));
    }
    let mut total = GroupResult::empty(group);
    for t in tasks {
        match t.await {
            Ok(r) => {
                total.handshakes += r.handshakes;
                total.elapsed = total.elapsed.max(r.elapsed);
                total.latency.add(&r.latency).expect("same bounds");
                for (k, n) in r.errors {
                    *total.errors.entry(k).or_default() += n;
                }
                if r.handshake_bytes_sent > 0 {
                    total.handshake_bytes_sent = r.handshake_bytes_sent;
                    total.handshake_bytes_received = r.handshake_bytes_received;
                }
            }
            Err(e) => *total.errors.entry(format!("WorkerPanic: {e}")).or_default() += 1,
        }
    }
    total
}

struct Cycle {
    handshake_done: Instant,
    sent: u64,
    received: u64,
}

/// Connect, handshake, check the group (and the handshake kind, if `expect`),
/// then close politely: send close_notify and wait for the node to close, so the
/// node has finished with the connection before the next one is counted (and
/// the client has read the node's session tickets).
async fn one_connection(
    connector: &TlsConnector,
    name: ServerName<'static>,
    addr: std::net::SocketAddr,
    group: &str,
    expect: Option<rustls::HandshakeKind>,
) -> Result<Cycle, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|_| "ConnectError".to_string())?;
    let _ = tcp.set_nodelay(true);
    let mut tls = connector
        .connect(name, Counting::new(tcp))
        .await
        .map_err(|e| tls_error_kind(&e))?;
    let handshake_done = Instant::now();
    let (io, conn) = tls.get_ref();
    let (sent, received) = (io.sent, io.received);
    let negotiated = conn
        .negotiated_key_exchange_group()
        .and_then(|g| g.name().as_str())
        .unwrap_or("none");
    if negotiated != group {
        return Err(format!("WrongGroup({negotiated})"));
    }
    let kind = conn.handshake_kind();
    if expect.is_some() && kind != expect {
        return Err(format!("WrongHandshakeKind({kind:?})"));
    }
    tls.get_mut().1.send_close_notify();
    let _ = tls.flush().await;
    let mut buf = [0u8; 4096];
    loop {
        match tls.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Ok(Cycle {
        handshake_done,
        sent,
        received,
    })
}

fn tls_error_kind(e: &io::Error) -> String {
    let text = e.to_string();
    if text.contains("HandshakeFailure") || text.contains("handshake failure") {
        "TlsHandshakeFailure (refused by the node)".into()
    } else if e.kind() == io::ErrorKind::UnexpectedEof || e.kind() == io::ErrorKind::ConnectionReset
    {
        "TlsConnectionClosed".into()
    } else {
        "TlsError".into()
    }
}

/// Counts the bytes written to and read from a stream.
struct Counting<S> {
    inner: S,
    sent: u64,
    received: u64,
}

impl<S> Counting<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            sent: 0,
            received: 0,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            self.received += (buf.filled().len() - before) as u64;
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            self.sent += n as u64;
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
