//! A real client for a real node: TLS (rustls, chosen key-exchange groups),
//! HTTP/1.1 (hyper) and SigV4 signing, one connection per call.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use keyfence_server::config::Config;
use keyfence_server::sigv4::{self, SigningParams};
use keyfence_server::tls::{self, ClientGroups};
use keyfence_server::Node;
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A node on ephemeral loopback ports in `dir`.
pub async fn start_node(dir: &Path, post_quantum: bool) -> Node {
    start_node_with(dir, post_quantum, Default::default()).await
}

/// A node on ephemeral loopback ports in `dir`, with `limits` on its API port.
pub async fn start_node_with(
    dir: &Path,
    post_quantum: bool,
    limits: keyfence_server::limits::Limits,
) -> Node {
    // The node's own log lines (an internal error's detail among them) go to
    // the test's captured output, shown when a test fails.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("keyfence=info")
        .try_init();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        region: "us-east-1".into(),
        also_serves: Vec::new(),
        post_quantum,
        credentials: Vec::new(),
        principals: Default::default(),
        node: None,
        default_fence: None,
        store: keyfence_server::config::StoreLocation::DataDir,
        max_staleness: std::time::Duration::from_secs(60),
        feed_retention: std::time::Duration::from_secs(900),
        audit: Default::default(),
        limits,
        root: Default::default(),
    };
    Node::start(config).await.expect("node starts")
}

/// Credentials to sign with.
#[derive(Clone)]
pub struct Signer {
    pub access_key_id: String,
    pub secret: String,
    pub region: String,
    pub time: SystemTime,
}

impl Signer {
    /// The node's development credential.
    pub fn of(node: &Node) -> Self {
        let c = node.data_dir.load_credentials().unwrap().remove(0);
        Self {
            access_key_id: c.access_key_id.clone(),
            secret: c.secret_access_key.to_string(),
            region: "us-east-1".into(),
            time: SystemTime::now(),
        }
    }
}

/// A response: status, body, and the group the handshake negotiated.
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
    pub group: &'static str,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The AWS error code, if this is an error.
    pub fn error_code(&self) -> Option<String> {
        self.json()["__type"].as_str().map(str::to_string)
    }
}

pub struct Client {
    pub addr: SocketAddr,
    pub config: Arc<rustls::ClientConfig>,
}

impl Client {
    pub fn new(node: &Node, groups: ClientGroups) -> Self {
        Self {
            addr: node.api_addr,
            config: tls::client_config(&node.data_dir.pki.ca_cert, groups).unwrap(),
        }
    }

    /// A TLS connection to the node.
    pub async fn connect(&self) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| e.to_string())?;
        TlsConnector::from(Arc::clone(&self.config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))
    }

    /// Sends one request; `signer` None sends it unsigned.
    pub async fn send(
        &self,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        signer: Option<(&Signer, &str)>,
    ) -> Result<Reply, String> {
        let tls = self.connect().await?;
        let group = tls
            .get_ref()
            .1
            .negotiated_key_exchange_group()
            .map(|g| g.name().as_str().unwrap_or("?"))
            .unwrap_or("none");
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut builder = Request::post(format!("https://localhost:{}/", self.addr.port()));
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let (mut parts, ()) = builder.body(()).unwrap().into_parts();
        if let Some((s, service)) = signer {
            sigv4::sign(
                &mut parts,
                &body,
                &SigningParams {
                    access_key_id: &s.access_key_id,
                    secret_access_key: &s.secret,
                    region: &s.region,
                    service,
                    time: s.time,
                },
            )
            .unwrap();
        }
        self.send_parts(parts, body, sender, group).await
    }

    /// Sends `parts` (already signed, or tampered with after signing) and `body`.
    pub async fn send_signed(
        &self,
        parts: hyper::http::request::Parts,
        body: Vec<u8>,
    ) -> Result<Reply, String> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| e.to_string())?;
        let tls = TlsConnector::from(Arc::clone(&self.config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        self.send_parts(parts, body, sender, "?").await
    }

    async fn send_parts(
        &self,
        parts: hyper::http::request::Parts,
        body: Vec<u8>,
        mut sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        group: &'static str,
    ) -> Result<Reply, String> {
        let resp = sender
            .send_request(Request::from_parts(parts, Full::new(Bytes::from(body))))
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Reply {
            status,
            body,
            group,
        })
    }

    /// A signed KMS call.
    pub async fn kms(&self, signer: &Signer, operation: &str, body: Value) -> Reply {
        let target = format!("TrentService.{operation}");
        self.send(
            &[
                ("x-amz-target", &target),
                ("content-type", "application/x-amz-json-1.1"),
            ],
            serde_json::to_vec(&body).unwrap(),
            Some((signer, "kms")),
        )
        .await
        .expect("request completes")
    }
}

/// GET /metrics from the node.
pub async fn scrape(node: &Node) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(node.metrics_addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// GETs `/` over a fresh TLS connection: (status, content type, body).
pub async fn get_root(client: &Client) -> (u16, String, String) {
    let tcp = tokio::net::TcpStream::connect(client.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::clone(&client.config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(format!("https://localhost:{}/", client.addr.port()))
        .header("host", "localhost")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// Signs `parts` and `body` as a KMS request of `signer`'s.
pub fn sign_parts(parts: &mut hyper::http::request::Parts, body: &[u8], signer: &Signer) {
    sigv4::sign(
        parts,
        body,
        &SigningParams {
            access_key_id: &signer.access_key_id,
            secret_access_key: &signer.secret,
            region: &signer.region,
            service: "kms",
            time: signer.time,
        },
    )
    .unwrap();
}
