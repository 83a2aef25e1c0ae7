//! Connections on the API port: the cap (shedding the oldest idle connection
//! first), the idle timeout, the HTTP settings sized to the request budget,
//! an HTTP/1.1 connection's buffers given back while it idles, and the
//! accept-error backoff.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::http::{self, AppState};
use crate::limits::{Limits, HTTP2_WINDOW_BYTES, MAX_HEADER_BYTES};
use crate::metrics::Metrics;
use crate::tls::PqAcceptor;

/// One open connection as the tracker sees it.
#[derive(Debug)]
struct ConnState {
    /// Requests in flight.
    active: AtomicUsize,
    /// When the last request ended (or the connection opened), in
    /// milliseconds since the tracker's epoch.
    last_active_ms: AtomicU64,
    /// Told to close (shed to make room).
    close: Notify,
}

/// The open connections of one listener, and the cap on them.
#[derive(Debug)]
pub struct ConnTracker {
    cap: usize,
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
    shed: AtomicU64,
    refused: AtomicU64,
    closed: AtomicU64,
    metrics: Arc<Metrics>,
}

/// A connection's place in the tracker; leaving it (drop) frees the place.
#[derive(Debug)]
pub struct ConnSlot {
    tracker: Arc<ConnTracker>,
    id: u64,
    state: Arc<ConnState>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.tracker.lock().remove(&self.id);
        self.tracker.closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Marks a request in flight on a connection until dropped.
struct Busy(Arc<ConnState>, Arc<ConnTracker>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0
            .last_active_ms
            .store(self.1.now_ms(), Ordering::Relaxed);
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnTracker {
    /// A tracker admitting at most `cap` connections at once, counting what
    /// it sheds and refuses in `metrics`.
    pub fn new(cap: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            shed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            metrics,
        })
    }

    /// Connections that have ended so far (closed, timed out or shed).
    pub fn closed_count(&self) -> u64 {
        self.closed.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        // The map stays consistent even if a holder panicked: every update is one call.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().len()
    }

    /// Connections closed so far to make room for new ones.
    pub fn shed_count(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }

    /// Connections refused so far because every open one was busy.
    pub fn refused_count(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Tells the connection idle longest to close and frees its place;
    /// false if every connection has a request in flight.
    fn shed_oldest_idle(open: &mut HashMap<u64, Arc<ConnState>>) -> bool {
        let oldest = open
            .iter()
            .filter(|(_, c)| c.active.load(Ordering::Relaxed) == 0)
            .min_by_key(|(_, c)| c.last_active_ms.load(Ordering::Relaxed))
            .map(|(id, _)| *id);
        match oldest.and_then(|id| open.remove(&id)) {
            Some(conn) => {
                conn.close.notify_one();
                true
            }
            None => false,
        }
    }

    /// Closes the oldest idle connection (after an accept failed for want of
    /// file descriptors); false if none is idle.
    pub fn shed_one(&self) -> bool {
        let shed = Self::shed_oldest_idle(&mut self.lock());
        if shed {
            self.shed.fetch_add(1, Ordering::Relaxed);
            self.metrics.record_shed("out_of_fds");
        }
        shed
    }

    /// A place for a new connection: at the cap, the oldest idle connection is
    /// closed to make room; if every connection is busy, `None`.
    pub fn admit(self: &Arc<Self>) -> Option<ConnSlot> {
        let mut open = self.lock();
        if open.len() >= self.cap {
            if !Self::shed_oldest_idle(&mut open) {
                self.refused.fetch_add(1, Ordering::Relaxed);
                self.metrics.record_refused_connection();
                return None;
            }
            self.shed.fetch_add(1, Ordering::Relaxed);
            self.metrics.record_shed("at_cap");
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState {
            active: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(self.now_ms()),
            close: Notify::new(),
        });
        open.insert(id, Arc::clone(&state));
        Some(ConnSlot {
            tracker: Arc::clone(self),
            id,
            state,
        })
    }
}

impl ConnSlot {
    fn busy(&self) -> Busy {
        self.state.active.fetch_add(1, Ordering::Relaxed);
        Busy(Arc::clone(&self.state), Arc::clone(&self.tracker))
    }

    /// Returns once the connection has had no request in flight for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = Duration::from_millis(self.state.last_active_ms.load(Ordering::Relaxed));
            let quiet = self.tracker.epoch.elapsed().saturating_sub(last);
            if self.state.active.load(Ordering::Relaxed) == 0 && quiet >= idle {
                return;
            }
            tokio::time::sleep(idle.saturating_sub(quiet).max(Duration::from_millis(100))).await;
        }
    }
}

/// After this long with no request in flight, an HTTP/1.1 connection gives
/// its HTTP buffers back (hyper's read and write buffers, about 34 KiB) and
/// waits for the next request holding only its TLS state.
const RELEASE_HTTP_BUFFERS_AFTER: Duration = Duration::from_secs(1);

/// The HTTP settings of the API port: one builder for HTTP/1.1 connections
/// (ALPN `http/1.1`), one for HTTP/2 and for clients that named no protocol.
pub struct HttpBuilders {
    http1: http1::Builder,
    auto: auto::Builder<TokioExecutor>,
}

/// The HTTP/1.1 and HTTP/2 settings of the API port.
pub fn http_builders(limits: &Limits) -> HttpBuilders {
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(4 * MAX_HEADER_BYTES);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(4 * MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .initial_stream_window_size(HTTP2_WINDOW_BYTES)
        .initial_connection_window_size(HTTP2_WINDOW_BYTES)
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_send_buf_size(HTTP2_WINDOW_BYTES as usize);
    HttpBuilders {
        http1,
        auto: builder,
    }
}

/// What ended a connection with an error.
type ServeError = Box<dyn std::error::Error + Send + Sync>;

/// Serves one accepted connection until it ends, goes idle for
/// `limits.idle_timeout`, or is shed.
pub async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    slot: ConnSlot,
    acceptor: Arc<PqAcceptor>,
    state: Arc<AppState>,
    builders: Arc<HttpBuilders>,
    idle_timeout: Duration,
) {
    let slot = Arc::new(slot);
    let metrics = Arc::clone(&state.metrics);
    // The handshake and each HTTP layer are boxed, so that what a connection
    // holds while it idles is its TLS state and a small task, not the largest
    // state any of them ever needed.
    let work = async {
        let accepted = Box::pin(async move {
            let (tls, group) = acceptor.accept(tcp).await?;
            Ok::<_, crate::tls::TlsError>((Box::new(tls), group))
        });
        let (tls, group) = match accepted.await {
            Ok(ok) => ok,
            Err(e) => {
                state.metrics.record_handshake_failure(e.metric_reason());
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
        };
        state.metrics.record_handshake(group);
        tracing::debug!(%peer, group, "TLS connection established");
        let info = Arc::new(http::Connection::new(peer, tls.get_ref().1, group));
        let http1_by_alpn = tls.get_ref().1.alpn_protocol() == Some(b"http/1.1".as_slice());
        let (service_slot, state) = (Arc::clone(&slot), Arc::clone(&state));
        // Boxed so that hyper's HTTP/1.1 connection can be taken apart between
        // requests (`poll_without_shutdown` needs an `Unpin` future).
        let service = service_fn(move |req| {
            let busy = service_slot.busy();
            let (state, info) = (Arc::clone(&state), Arc::clone(&info));
            Box::pin(async move {
                let reply = http::handle(state, info, req).await;
                drop(busy);
                reply
            })
        });
        let served = if http1_by_alpn {
            serve_http1(tls, service, &builders.http1, &slot).await
        } else {
            Box::pin(builders.auto.serve_connection(TokioIo::new(tls), service)).await
        };
        if let Err(e) = served {
            if e.downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_timeout)
            {
                // hyper's only timer here is the header read timeout.
                metrics.record_timeout("header");
            }
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    };
    tokio::select! {
        () = work => {}
        () = slot.idle_for(idle_timeout) => {
            metrics.record_timeout("idle");
            tracing::debug!(%peer, "idle connection closed");
        }
        () = slot.state.close.notified() => {
            tracing::debug!(%peer, "idle connection shed to make room");
        }
    }
}

/// Serves an HTTP/1.1 connection, giving hyper's buffers back whenever it has
/// had no request in flight for [`RELEASE_HTTP_BUFFERS_AFTER`]: hyper is asked
/// to stop after what it is doing (nothing reaches the client: no header, no
/// close), the TLS stream and any bytes hyper read ahead are taken back, and
/// the next request's first byte is awaited with a one-byte buffer; then a new
/// hyper connection serves from there, starting with the bytes taken back.
/// Waiting for a first byte is bounded by the idle timeout, which the caller
/// enforces (as for a connection that has not sent its first request yet);
/// from the first byte on, hyper's header read timeout applies.
async fn serve_http1<S, F, B>(
    tls: Box<tokio_rustls::server::TlsStream<TcpStream>>,
    service: S,
    builder: &http1::Builder,
    slot: &ConnSlot,
) -> Result<(), ServeError>
where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<B>,
            Future = F,
        > + Unpin,
    S::Error: Into<ServeError>,
    F: Future<Output = Result<hyper::Response<B>, S::Error>> + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<ServeError>,
{
    let mut io = ReadAhead {
        ahead: Bytes::new(),
        inner: tls,
    };
    let mut service = service;
    loop {
        if io.ahead.is_empty() {
            let mut first = [0u8; 1];
            if io.inner.read(&mut first).await? == 0 {
                return Ok(()); // the client closed an idle connection
            }
            io.ahead = Bytes::copy_from_slice(&first);
        }
        let mut conn = Box::new(builder.serve_connection(TokioIo::new(io), service));
        let mut released = false;
        loop {
            let done = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx));
            if released {
                done.await?;
                break;
            }
            tokio::select! {
                result = done => {
                    result?;
                    break;
                }
                () = slot.idle_for(RELEASE_HTTP_BUFFERS_AFTER) => {
                    Pin::new(&mut *conn).graceful_shutdown();
                    released = true;
                }
            }
        }
        let parts = conn.into_parts();
        let (mut inner, read_buf) = (parts.io.into_inner(), parts.read_buf);
        if !released {
            // hyper ended the connection itself (the client sent
            // `Connection: close`, or closed): close the TLS stream too, as
            // far as the client still listens.
            let _ = inner.inner.shutdown().await;
            return Ok(());
        }
        if !read_buf.is_empty() {
            inner.ahead = [read_buf, inner.ahead].concat().into();
        }
        io = inner;
        service = parts.service;
    }
}

/// A stream with bytes already read from it put back in front.
struct ReadAhead<T> {
    ahead: Bytes,
    inner: T,
}

impl<T: AsyncRead + Unpin> AsyncRead for ReadAhead<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.ahead.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = this.ahead.len().min(buf.remaining());
        buf.put_slice(&this.ahead.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ReadAhead<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Accept failures: backs off (10 ms doubling to 1 s) and logs at most once
/// per interval, with the number of failures since the last line.
#[derive(Debug)]
pub struct AcceptErrors {
    interval: Duration,
    backoff: Duration,
    last_log: Option<Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    const FIRST_BACKOFF: Duration = Duration::from_millis(10);
    const MAX_BACKOFF: Duration = Duration::from_secs(1);

    /// Logs at most once per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            backoff: Self::FIRST_BACKOFF,
            last_log: None,
            unlogged: 0,
        }
    }

    /// Records a failure; returns how long to wait before accepting again and
    /// whether to log now (with the count of failures the line stands for).
    pub fn failed(&mut self, now: Instant) -> (Duration, Option<u64>) {
        self.unlogged += 1;
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(Self::MAX_BACKOFF);
        let due = self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= self.interval);
        if due {
            self.last_log = Some(now);
            let n = std::mem::take(&mut self.unlogged);
            (wait, Some(n))
        } else {
            (wait, None)
        }
    }

    /// Records a success: the backoff starts over.
    pub fn succeeded(&mut self) {
        self.backoff = Self::FIRST_BACKOFF;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_idle_connection_is_shed() {
        let metrics = Metrics::new();
        let tracker = ConnTracker::new(2, Arc::clone(&metrics));
        let a = tracker.admit().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let b = tracker.admit().unwrap();
        let busy_b = b.busy();
        let c = tracker.admit().expect("a is idle and is shed");
        assert_eq!(tracker.open(), 2);
        assert_eq!(tracker.shed_count(), 1);
        assert!(!tracker.lock().contains_key(&a.id), "the oldest idle went");
        let busy_c = c.busy();
        assert!(tracker.admit().is_none(), "everyone busy: refused");
        assert_eq!(tracker.refused_count(), 1);
        let text = metrics.encode();
        assert!(
            text.contains(r#"keyfence_connections_shed_total{reason="at_cap"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("keyfence_connections_refused_total 1"),
            "{text}"
        );
        assert!(!tracker.shed_one(), "nothing idle to shed");
        drop((busy_b, busy_c));
        drop(c);
        assert_eq!(tracker.open(), 1);
        drop(a); // already shed: dropping frees nothing else
        assert_eq!(tracker.open(), 1);
        drop(b);
        assert_eq!(tracker.open(), 0);
    }

    #[test]
    fn accept_errors_back_off_and_log_once_per_interval() {
        let mut errors = AcceptErrors::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let (w1, log1) = errors.failed(t0);
        assert_eq!((w1, log1), (Duration::from_millis(10), Some(1)));
        let mut logged = 0;
        let mut waits = Vec::new();
        for i in 1..200 {
            let (w, log) = errors.failed(t0 + Duration::from_millis(50 * i));
            waits.push(w);
            logged += u64::from(log.is_some());
        }
        assert_eq!(logged, 0, "199 failures within 10 s: no further line");
        assert_eq!(*waits.last().unwrap(), Duration::from_secs(1));
        assert_eq!(errors.failed(t0 + Duration::from_secs(11)).1, Some(200));
        errors.succeeded();
        assert_eq!(
            errors.failed(t0 + Duration::from_secs(12)).0,
            Duration::from_millis(10)
        );
    }
}
