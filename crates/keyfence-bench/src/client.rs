//! The benchmark's HTTP client: one hyper connection per TCP (optionally TLS)
//! connection, HTTP/1.1 keep-alive or HTTP/2, every request SigV4-signed.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use keyfence_server::sigv4::{payload_hash, Signer};
use keyfence_server::tls::{self, ClientGroups};
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use zeroize::Zeroizing;

/// The content type of the AWS JSON 1.1 protocol.
pub const AMZ_JSON: &str = "application/x-amz-json-1.1";

/// Where the node listens, parsed from `--endpoint`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `https` (TLS) or `http` (plain, for peers such as moto).
    pub tls: bool,
    /// Host as written (name or IP), used for SNI and certificate checks.
    pub host: String,
    /// `host:port`, the `Host` header / `:authority`.
    pub authority: String,
    /// The resolved address.
    pub addr: SocketAddr,
}

impl Endpoint {
    /// Parses `https://host:port` or `http://host:port`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let uri: Uri = s.parse().map_err(|e| format!("--endpoint {s:?}: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("--endpoint {s:?}: scheme must be https or http")),
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("--endpoint {s:?}: no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let authority = match uri.port_u16() {
            Some(p) if host.contains(':') => format!("[{host}]:{p}"),
            Some(p) => format!("{host}:{p}"),
            None => uri.authority().map(|a| a.to_string()).unwrap_or_default(),
        };
        let addr = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| format!("--endpoint {s:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("--endpoint {s:?}: host does not resolve"))?;
        Ok(Self {
            tls,
            host,
            authority,
            addr,
        })
    }

    /// The URL this endpoint was parsed from, normalized.
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.authority
        )
    }
}

/// The credential requests are signed with.
#[derive(Clone)]
pub struct Credential {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Zeroizing<String>,
    /// Region of the credential scope.
    pub region: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("region", &self.region)
            .finish()
    }
}

/// HTTP version spoken on each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.1 keep-alive: one request in flight per connection.
    Http1,
    /// HTTP/2 (ALPN `h2` over TLS, prior knowledge over plain TCP): many streams.
    Http2,
}

/// Everything needed to open connections and sign requests; cheap to clone.
#[derive(Clone)]
pub struct ClientContext {
    /// The node.
    pub endpoint: Endpoint,
    /// TLS configuration (with ALPN set); `None` for plain HTTP.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Signing credential.
    pub credential: Credential,
    /// HTTP version.
    pub version: HttpVersion,
    uri: Uri,
    host: HeaderValue,
    /// Connections reopened because the server had closed them.
    pub reconnects: Arc<std::sync::atomic::AtomicU64>,
}

impl ClientContext {
    /// A context for `endpoint`; `ca` is required for https.
    pub fn new(
        endpoint: Endpoint,
        ca: Option<&Path>,
        groups: ClientGroups,
        credential: Credential,
        version: HttpVersion,
    ) -> Result<Self, String> {
        let tls = if endpoint.tls {
            let ca = ca.ok_or("https endpoint: a CA certificate is needed (--ca or --data-dir)")?;
            Some(tls_config(ca, groups, version)?)
        } else {
            None
        };
        // HTTP/2 carries the authority in the URI; HTTP/1.1 uses origin form + Host.
        let uri = match version {
            HttpVersion::Http1 => Uri::from_static("/"),
            HttpVersion::Http2 => format!("{}/", endpoint.url())
                .parse()
                .map_err(|e| format!("endpoint URI: {e}"))?,
        };
        let host = HeaderValue::from_str(&endpoint.authority)
            .map_err(|e| format!("endpoint authority: {e}"))?;
        Ok(Self {
            endpoint,
            tls,
            credential,
            version,
            uri,
            host,
            reconnects: Arc::default(),
        })
    }

    /// Opens one connection (TCP, TLS if https, HTTP handshake).
    pub async fn connect(&self) -> Result<Connection, ClientError> {
        let tcp = TcpStream::connect(self.endpoint.addr)
            .await
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            Some(config) => {
                let name = server_name(&self.endpoint.host)?;
                let stream = TlsConnector::from(Arc::clone(config))
                    .connect(name, tcp)
                    .await
                    .map_err(|e| ClientError::Tls(e.to_string()))?;
                self.handshake(stream).await
            }
            None => self.handshake(tcp).await,
        }
    }

    async fn handshake<S>(&self, stream: S) -> Result<Connection, ClientError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(stream);
        match self.version {
            HttpVersion::Http1 => {
                let (sender, conn) = http1::handshake(io)
                    .await
                    .map_err(|e| ClientError::Connect(e.to_string()))?;
                tokio::spawn(conn);
                Ok(Connection {
                    ctx: self.clone(),
                    sender: Sender::H1(sender),
                    signer: self.signer(),
                })
            }
            HttpVersion::Http2 => {
                let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                    .handshake(io)
                    .await
                    .map_err(|e| ClientError::Connect(e.to_string()))?;
                tokio::spawn(conn);
                Ok(Connection {
                    ctx: self.clone(),
                    sender: Sender::H2(sender),
                    signer: self.signer(),
                })
            }
        }
    }

    /// A signer for this context's credential (service `kms`).
    pub fn signer(&self) -> Signer {
        let c = &self.credential;
        Signer::new(&c.access_key_id, &c.secret_access_key, &c.region, "kms")
    }

    /// A KMS request for `target` (`TrentService.Encrypt`) with `body`, whose hex
    /// SHA-256 is `payload_hash`, signed now.
    pub fn request(
        &self,
        signer: &mut Signer,
        target: &HeaderValue,
        payload_hash: &str,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let (mut parts, ()) = Request::post(self.uri.clone())
            .body(())
            .map_err(|e| ClientError::Sign(e.to_string()))?
            .into_parts();
        let headers = &mut parts.headers;
        if self.version == HttpVersion::Http1 {
            // HTTP/2 carries the host as :authority (the URI), which is signed instead.
            headers.insert(HOST, self.host.clone());
        }
        headers.insert(HeaderName::from_static("x-amz-target"), target.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(AMZ_JSON));
        signer
            .sign_with_payload_hash(&mut parts, payload_hash, SystemTime::now())
            .map_err(|e| ClientError::Sign(e.to_string()))?;
        Ok(Request::from_parts(parts, Full::new(body)))
    }
}

/// The TLS client configuration: the node's CA, the chosen groups, ALPN for `version`.
pub fn tls_config(
    ca: &Path,
    groups: ClientGroups,
    version: HttpVersion,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let base = tls::client_config(ca, groups).map_err(|e| format!("TLS client config: {e}"))?;
    let mut config = (*base).clone();
    config.alpn_protocols = match version {
        HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
        HttpVersion::Http2 => vec![b"h2".to_vec()],
    };
    Ok(Arc::new(config))
}

/// The TLS server name for `host` (a DNS name or an IP address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, ClientError> {
    ServerName::try_from(host.to_string()).map_err(|e| ClientError::Tls(e.to_string()))
}

/// Why a request did not produce an HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// TCP connect or HTTP handshake failed.
    Connect(String),
    /// The TLS handshake failed.
    Tls(String),
    /// The request could not be built or signed.
    Sign(String),
    /// The connection failed while the request was in flight.
    Transport(String),
    /// No response within the per-request timeout.
    Timeout,
}

impl ClientError {
    /// A short error type for the error table.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::Connect(_) => "ConnectError",
            ClientError::Tls(_) => "TlsError",
            ClientError::Sign(_) => "SigningError",
            ClientError::Transport(_) => "TransportError",
            ClientError::Timeout => "Timeout",
        }
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect(e) => write!(f, "connect: {e}"),
            ClientError::Tls(e) => write!(f, "TLS: {e}"),
            ClientError::Sign(e) => write!(f, "signing: {e}"),
            ClientError::Transport(e) => write!(f, "transport: {e}"),
            ClientError::Timeout => write!(f, "timed out"),
        }
    }
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// One HTTP connection. For HTTP/2, [`Connection::stream`] gives more handles onto
/// the same connection, each a concurrent stream.
pub struct Connection {
    ctx: ClientContext,
    sender: Sender,
    signer: Signer,
}

/// A response: its status and body.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON (Null if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// `None` for a 2xx; otherwise the AWS error type (`__type`, without a
    /// `namespace#` prefix), or `HTTP <status>` when the body names none.
    pub fn error_type(&self) -> Option<String> {
        if (200..300).contains(&self.status) {
            return None;
        }
        Some(error_type(self.status, &self.body))
    }
}

/// The AWS error type of an error response body.
pub fn error_type(status: u16, body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match v["__type"].as_str().or_else(|| v["code"].as_str()) {
        Some(t) => t.rsplit('#').next().unwrap_or(t).to_string(),
        None => format!("HTTP {status}"),
    }
}

impl Connection {
    /// Another handle on this connection: a new stream for HTTP/2; `None` for HTTP/1.1.
    pub fn stream(&self) -> Option<Connection> {
        match &self.sender {
            Sender::H1(_) => None,
            Sender::H2(s) => Some(Connection {
                ctx: self.ctx.clone(),
                sender: Sender::H2(s.clone()),
                signer: self.signer.clone(),
            }),
        }
    }

    /// Signs and sends one request and reads the whole response; `payload_hash`
    /// is the hex SHA-256 of `body`.
    pub async fn call(
        &mut self,
        target: &HeaderValue,
        payload_hash: &str,
        body: Bytes,
    ) -> Result<Reply, ClientError> {
        let ready = match &mut self.sender {
            Sender::H1(s) => s.ready().await,
            Sender::H2(s) => s.ready().await,
        };
        if ready.is_err() {
            // The server closed the connection (e.g. `Connection: close` after each
            // response, as werkzeug-based servers do): open another, as SDKs do.
            // The time it takes is part of this request's latency.
            let fresh = self.ctx.connect().await?;
            self.sender = fresh.sender;
            self.ctx
                .reconnects
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let req = self
            .ctx
            .request(&mut self.signer, target, payload_hash, body)?;
        let transport = |e: hyper::Error| ClientError::Transport(e.to_string());
        let resp = match &mut self.sender {
            Sender::H1(s) => {
                s.ready().await.map_err(transport)?;
                s.send_request(req).await.map_err(transport)?
            }
            Sender::H2(s) => {
                s.ready().await.map_err(transport)?;
                s.send_request(req).await.map_err(transport)?
            }
        };
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(transport)?
            .to_bytes();
        Ok(Reply { status, body })
    }

    /// A KMS call with a JSON body, for setup (not measured).
    pub async fn kms(&mut self, operation: &str, body: &Value) -> Result<Reply, ClientError> {
        self.json(&format!("TrentService.{operation}"), body).await
    }

    /// A call of `target` (an `X-Amz-Target` such as `KeyfenceAdmin.ListNodes`)
    /// with a JSON body, within 30 s.
    pub async fn json(&mut self, target: &str, body: &Value) -> Result<Reply, ClientError> {
        let target = HeaderValue::from_str(target).map_err(|e| ClientError::Sign(e.to_string()))?;
        let body = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
        let hash = payload_hash(&body);
        tokio::time::timeout(Duration::from_secs(30), self.call(&target, &hash, body))
            .await
            .map_err(|_| ClientError::Timeout)?
    }
}

/// Reads `process_resident_memory_bytes` from a Prometheus endpoint
/// (`http://127.0.0.1:9464` or `…/metrics`).
pub async fn resident_memory(metrics_url: &str) -> Result<u64, String> {
    let uri: Uri = metrics_url
        .parse()
        .map_err(|e| format!("--metrics {metrics_url:?}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("--metrics {metrics_url:?}: must be an http:// URL"));
    }
    let host = uri.host().ok_or("--metrics: no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let path = match uri.path() {
        "" | "/" => "/metrics",
        p => p,
    };
    let fetch = async {
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("{metrics_url}: {e}"))?;
        let (mut sender, conn) = http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = Request::get(path)
            .header(HOST, format!("{host}:{port}"))
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>(String::from_utf8_lossy(&body).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .map_err(|_| format!("{metrics_url}: timed out"))??;
    parse_resident_memory(&text)
        .ok_or_else(|| format!("{metrics_url}: no process_resident_memory_bytes sample"))
}

/// The value of `process_resident_memory_bytes` in a Prometheus text exposition.
pub fn parse_resident_memory(text: &str) -> Option<u64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let rest = l.strip_prefix("process_resident_memory_bytes")?;
        let rest = rest.strip_prefix(' ').or_else(|| {
            // Labels: `name{...} value`.
            rest.strip_prefix('{')
                .and_then(|r| r.split_once('}'))
                .map(|(_, v)| v)
        })?;
        let v: f64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(v as u64)
    })
}

/// Resident memory of a local process (`VmRSS` of `/proc/PID/status`), for peers
/// without a metrics endpoint.
pub fn process_resident_memory(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .find_map(|l| {
            let kb = l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim();
            kb.parse::<u64>().ok().map(|k| k * 1024)
        })
        .ok_or_else(|| format!("{path}: no VmRSS"))
}

/// CPU time (user + system, all threads, including exited ones) a local process
/// has used so far, from `/proc/PID/stat` (`self` for this process).
pub fn process_cpu_time(pid: &str) -> Result<Duration, String> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    // Fields after the parenthesized command name: state is field 3, utime 14, stime 15.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| format!("{path}: unexpected format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("{path}: unexpected format"))
    };
    // utime and stime are fields 14 and 15, i.e. indexes 11 and 12 after the name;
    // Linux reports them in USER_HZ = 100 ticks per second.
    let ticks = tick(11)? + tick(12)?;
    Ok(Duration::from_millis(ticks * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let e = Endpoint::parse("https://127.0.0.1:8443").unwrap();
        assert!(e.tls);
        assert_eq!(e.authority, "127.0.0.1:8443");
        assert_eq!(e.addr, "127.0.0.1:8443".parse().unwrap());
        let e = Endpoint::parse("http://localhost:5000/").unwrap();
        assert!(!e.tls);
        assert_eq!(e.host, "localhost");
        assert_eq!(e.authority, "localhost:5000");
        assert!(Endpoint::parse("ftp://x:1").is_err());
    }

    #[test]
    fn resident_memory_is_parsed() {
        let text = "# HELP process_resident_memory_bytes x\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 12345678\nother 1\n";
        assert_eq!(parse_resident_memory(text), Some(12_345_678));
        assert_eq!(
            parse_resident_memory("process_resident_memory_bytes{a=\"b\"} 4.5e3\n"),
            Some(4500)
        );
        assert_eq!(
            parse_resident_memory("process_resident_memory_bytes_total 3\n"),
            None
        );
        assert!(process_resident_memory(std::process::id()).unwrap() > 0);
        // Spin until the kernel reports 50 ms of CPU time used (on a loaded machine
        // that takes longer than 50 ms of wall time), within a generous deadline.
        let before = process_cpu_time("self").unwrap();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        let mut used = Duration::ZERO;
        while used < Duration::from_millis(50) && t.elapsed() < Duration::from_secs(20) {
            for _ in 0..100_000 {
                x = x.wrapping_add(std::hint::black_box(1));
            }
            used = process_cpu_time("self").unwrap() - before;
        }
        assert!(x > 0);
        assert!(used >= Duration::from_millis(50), "{used:?}");
    }

    #[test]
    fn error_types_drop_the_namespace() {
        assert_eq!(
            error_type(400, br#"{"__type":"com.amazonaws.kms#NotFoundException"}"#),
            "NotFoundException"
        );
        assert_eq!(
            error_type(
                400,
                br#"{"__type":"KMSInvalidStateException","message":"x"}"#
            ),
            "KMSInvalidStateException"
        );
        assert_eq!(error_type(502, b"<html>"), "HTTP 502");
    }
}
