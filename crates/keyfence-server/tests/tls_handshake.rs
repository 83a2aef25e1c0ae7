//! Real TLS 1.3 handshakes over TCP on 127.0.0.1 through `PqAcceptor`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyfence_server::tls::{
    client_config, ensure_dev_pki, load_server_config, ClientGroups, KxMode, PkiPaths, PqAcceptor,
    TlsError,
};
use rustls::pki_types::ServerName;
use rustls::AlertDescription;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

struct Outcome {
    client: std::io::Result<(String, Option<Vec<u8>>)>,
    server: Result<&'static str, TlsError>,
}

/// Runs one handshake between a client offering `groups` and a `mode` server, then
/// exchanges one message each way when both sides succeed.
async fn handshake(pki: &PkiPaths, mode: KxMode, groups: ClientGroups, alpn: &[&[u8]]) -> Outcome {
    let server_config = load_server_config(pki, mode).expect("server config");
    let acceptor = PqAcceptor::new(server_config, mode);
    let mut client_cfg = (*client_config(&pki.ca_cert, groups).expect("client config")).clone();
    client_cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = TlsConnector::from(Arc::new(client_cfg));

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");

    let server = async {
        let (tcp, _) = listener.accept().await.expect("accept");
        let (mut tls, group) = acceptor.accept(tcp).await?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.expect("server read");
        assert_eq!(&buf, b"ping");
        tls.write_all(b"pong").await.expect("server write");
        tls.flush().await.expect("server flush");
        Ok(group)
    };
    let client = async {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").expect("server name");
        let mut tls = connector.connect(name, tcp).await?;
        let (_, conn) = tls.get_ref();
        let group = conn
            .negotiated_key_exchange_group()
            .and_then(|g| g.name().as_str())
            .unwrap_or("unknown")
            .to_owned();
        let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
        tls.write_all(b"ping").await?;
        tls.flush().await?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"pong");
        Ok((group, alpn))
    };
    let (server, client) = tokio::join!(server, client);
    Outcome { client, server }
}

fn dev_pki(dir: &Path) -> PkiPaths {
    ensure_dev_pki(dir).expect("dev pki")
}

#[tokio::test]
async fn hybrid_only_client_gets_x25519mlkem768_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dev_pki(dir.path());
    for mode in [KxMode::Default, KxMode::PostQuantumOnly] {
        let out = handshake(&pki, mode, ClientGroups::HybridOnly, &[]).await;
        assert_eq!(out.server.expect("server handshake"), "X25519MLKEM768");
        let (group, _) = out.client.expect("client handshake");
        assert_eq!(group, "X25519MLKEM768", "{mode:?}");
    }
}

#[tokio::test]
async fn default_client_gets_x25519mlkem768_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dev_pki(dir.path());
    for mode in [KxMode::Default, KxMode::PostQuantumOnly] {
        let out = handshake(&pki, mode, ClientGroups::Default, &[]).await;
        assert_eq!(out.server.expect("server handshake"), "X25519MLKEM768");
        assert_eq!(out.client.expect("client handshake").0, "X25519MLKEM768");
    }
}

#[tokio::test]
async fn classical_client_gets_x25519_in_default_mode() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dev_pki(dir.path());
    let out = handshake(&pki, KxMode::Default, ClientGroups::ClassicalOnly, &[]).await;
    assert_eq!(out.server.expect("server handshake"), "X25519");
    assert_eq!(out.client.expect("client handshake").0, "X25519");
}

/// Captures WARN-and-above events (message and fields) on the current thread.
#[derive(Clone, Default)]
struct WarnCapture(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for WarnCapture {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Line(String);
        impl tracing::field::Visit for Line {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!(" {}={:?}", field.name(), value));
            }
        }
        let mut line = Line(event.metadata().level().to_string());
        event.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// The TLS alert a rustls client received, if its handshake failed on one.
fn received_alert(err: &std::io::Error) -> Option<AlertDescription> {
    match err.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

#[tokio::test]
async fn classical_client_is_refused_in_post_quantum_only_mode() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dev_pki(dir.path());
    let capture = WarnCapture::default();
    let out = {
        // #[tokio::test] runs on one thread, so the thread-local default sees the
        // acceptor's events.
        let _guard = tracing::subscriber::set_default(capture.clone());
        handshake(
            &pki,
            KxMode::PostQuantumOnly,
            ClientGroups::ClassicalOnly,
            &[],
        )
        .await
    };
    let err = out.client.expect_err("client must fail");
    assert_eq!(
        received_alert(&err),
        Some(AlertDescription::InsufficientSecurity),
        "client must see insufficient_security, got: {err}"
    );
    match out.server {
        Err(ref e @ TlsError::ClassicalOnlyClient { ref offered }) => {
            assert_eq!(offered, "X25519, secp256r1, secp384r1");
            assert_eq!(e.metric_reason(), "classical_only");
        }
        other => panic!("expected ClassicalOnlyClient, got {other:?}"),
    }
    let lines = capture.0.lock().unwrap().clone();
    assert_eq!(lines.len(), 1, "exactly one warning: {lines:?}");
    assert!(lines[0].starts_with("WARN"), "{lines:?}");
    assert!(
        lines[0].contains("offered=X25519, secp256r1, secp384r1"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_retrying_classical_client_leaves_one_warning_per_minute() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dev_pki(dir.path());
    let config = load_server_config(&pki, KxMode::PostQuantumOnly).unwrap();
    let acceptor = PqAcceptor::new(config, KxMode::PostQuantumOnly);
    let connector =
        TlsConnector::from(client_config(&pki.ca_cert, ClientGroups::ClassicalOnly).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let capture = WarnCapture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    for _ in 0..3 {
        let server = async {
            let (tcp, _) = listener.accept().await.unwrap();
            acceptor.accept(tcp).await.map(|(_, group)| group)
        };
        let client = async {
            let tcp = TcpStream::connect(addr).await.unwrap();
            connector
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .map(|_| ())
        };
        let (server, client) = tokio::join!(server, client);
        let err = client.expect_err("refused");
        assert_eq!(
            received_alert(&err),
            Some(AlertDescription::InsufficientSecurity)
        );
        assert!(matches!(server, Err(TlsError::ClassicalOnlyClient { .. })));
    }
    let lines = capture.0.lock().unwrap().clone();
    assert_eq!(lines.len(), 1, "one line for three refusals: {lines:?}");
}

#[tokio::test]
async fn alpn_negotiates_h2_then_http11() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dev_pki(dir.path());
    let out = handshake(
        &pki,
        KxMode::Default,
        ClientGroups::Default,
        &[b"http/1.1", b"h2"],
    )
    .await;
    out.server.expect("server handshake");
    assert_eq!(out.client.expect("client").1.as_deref(), Some(&b"h2"[..]));
    let out = handshake(&pki, KxMode::Default, ClientGroups::Default, &[b"http/1.1"]).await;
    out.server.expect("server handshake");
    assert_eq!(
        out.client.expect("client").1.as_deref(),
        Some(&b"http/1.1"[..])
    );
}

#[tokio::test]
async fn silent_client_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dev_pki(dir.path());
    let config = load_server_config(&pki, KxMode::PostQuantumOnly).unwrap();
    let acceptor = PqAcceptor::new(config, KxMode::PostQuantumOnly)
        .with_handshake_timeout(Duration::from_millis(200));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _idle = TcpStream::connect(addr).await.unwrap();
    let (tcp, _) = listener.accept().await.unwrap();
    let err = acceptor.accept(tcp).await.expect_err("must time out");
    assert!(matches!(err, TlsError::HandshakeTimeout(_)), "{err:?}");
    assert_eq!(err.metric_reason(), "timeout");
}

#[tokio::test]
async fn plaintext_client_is_a_tls_error() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dev_pki(dir.path());
    let config = load_server_config(&pki, KxMode::Default).unwrap();
    let acceptor = PqAcceptor::new(config, KxMode::Default);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = async {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut sink = Vec::new();
        let _ = tcp.read_to_end(&mut sink).await;
    };
    let server = async {
        let (tcp, _) = listener.accept().await.unwrap();
        acceptor.accept(tcp).await
    };
    let capture = WarnCapture::default();
    let ((), result) = {
        let _guard = tracing::subscriber::set_default(capture.clone());
        tokio::join!(client, server)
    };
    let err = result.expect_err("plaintext must fail");
    assert!(matches!(err, TlsError::Handshake(_)), "{err:?}");
    assert_eq!(err.metric_reason(), "tls_error");
    let lines = capture.0.lock().unwrap().clone();
    assert_eq!(lines.len(), 1, "one hint: {lines:?}");
    assert!(
        lines[0].contains("plain HTTP") && lines[0].contains("https://"),
        "{lines:?}"
    );
}

#[test]
fn ensure_dev_pki_is_idempotent_and_keys_are_private() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested").join("data");
    let first = ensure_dev_pki(&data).expect("create");
    assert_eq!(first, PkiPaths::in_dir(&data));
    let files = [
        &first.ca_cert,
        &first.ca_key,
        &first.server_cert,
        &first.server_key,
    ];
    let before: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    for key in [&first.ca_key, &first.server_key] {
        let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key.display());
    }
    let ca_pem = String::from_utf8(before[0].clone()).unwrap();
    assert!(ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let key_pem = String::from_utf8(before[1].clone()).unwrap();
    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));

    let second = ensure_dev_pki(&data).expect("reuse");
    assert_eq!(first, second);
    let after: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert_eq!(before, after, "existing files must be reused unchanged");
    // No temporary files are left behind.
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 4);
}

#[test]
fn ensure_dev_pki_reissues_server_cert_under_existing_ca() {
    let dir = tempfile::tempdir().unwrap();
    let first = ensure_dev_pki(dir.path()).unwrap();
    let ca_before = std::fs::read(&first.ca_cert).unwrap();
    let server_before = std::fs::read(&first.server_cert).unwrap();
    std::fs::remove_file(&first.server_cert).unwrap();
    std::fs::remove_file(&first.server_key).unwrap();
    // The chain check inside ensure_dev_pki proves the new leaf chains to the old CA.
    let second = ensure_dev_pki(dir.path()).expect("reissue");
    assert_eq!(std::fs::read(&second.ca_cert).unwrap(), ca_before);
    assert_ne!(std::fs::read(&second.server_cert).unwrap(), server_before);
}

#[test]
fn ensure_dev_pki_refuses_half_pairs_and_foreign_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ensure_dev_pki(dir.path()).unwrap();
    std::fs::remove_file(&pki.server_key).unwrap();
    let err = ensure_dev_pki(dir.path()).expect_err("half pair");
    assert!(matches!(err, TlsError::IncompletePki { .. }), "{err:?}");

    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let pa = ensure_dev_pki(a.path()).unwrap();
    let pb = ensure_dev_pki(b.path()).unwrap();
    std::fs::copy(&pb.ca_cert, &pa.ca_cert).unwrap();
    std::fs::copy(&pb.ca_key, &pa.ca_key).unwrap();
    let err = ensure_dev_pki(a.path()).expect_err("foreign CA");
    assert!(matches!(err, TlsError::PkiMismatch { .. }), "{err:?}");
    // The message names files, never key material.
    assert!(!err.to_string().contains("PRIVATE KEY"));
}

#[test]
fn load_server_config_rejects_missing_and_garbage_files() {
    let dir = tempfile::tempdir().unwrap();
    let pki = PkiPaths::in_dir(dir.path());
    let err = load_server_config(&pki, KxMode::Default).expect_err("missing");
    assert!(matches!(err, TlsError::Io { .. }), "{err:?}");
    std::fs::write(&pki.server_cert, b"not pem").unwrap();
    std::fs::write(&pki.server_key, b"not pem").unwrap();
    let err = load_server_config(&pki, KxMode::Default).expect_err("garbage");
    assert!(matches!(err, TlsError::Pem { .. }), "{err:?}");
}

#[tokio::test]
async fn strict_acceptor_refuses_classical_clients_even_with_a_permissive_config() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dev_pki(dir.path());
    // A Default-mode configuration handed to a PostQuantumOnly acceptor.
    let permissive = load_server_config(&pki, KxMode::Default).unwrap();
    let acceptor = PqAcceptor::new(permissive, KxMode::PostQuantumOnly);
    assert_eq!(acceptor.mode(), KxMode::PostQuantumOnly);
    let connector =
        TlsConnector::from(client_config(&pki.ca_cert, ClientGroups::ClassicalOnly).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = async {
        let (tcp, _) = listener.accept().await.unwrap();
        acceptor.accept(tcp).await.map(|(_, group)| group)
    };
    let client = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map(|_| ())
    };
    let (server, client) = tokio::join!(server, client);
    let err = client.expect_err("classical client must not get a session");
    assert_eq!(
        received_alert(&err),
        Some(AlertDescription::InsufficientSecurity),
        "{err}"
    );
    assert!(
        matches!(server, Err(TlsError::ClassicalOnlyClient { .. })),
        "{server:?}"
    );
}

#[tokio::test]
async fn classical_client_against_hybrid_only_config_is_a_tls_error() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dev_pki(dir.path());
    // A server that only speaks hybrid groups, used in Default mode (no ClientHello
    // check): a classical client fails inside rustls, reported as a TLS error.
    let strict = load_server_config(&pki, KxMode::PostQuantumOnly).unwrap();
    let acceptor = PqAcceptor::new(strict, KxMode::Default);
    let connector =
        TlsConnector::from(client_config(&pki.ca_cert, ClientGroups::ClassicalOnly).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = async {
        let (tcp, _) = listener.accept().await.unwrap();
        acceptor.accept(tcp).await.map(|(_, group)| group)
    };
    let client = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map(|_| ())
    };
    let (server, client) = tokio::join!(server, client);
    assert!(client.is_err());
    let err = server.expect_err("no common group");
    assert!(matches!(err, TlsError::Handshake(_)), "{err:?}");
    assert_eq!(err.metric_reason(), "tls_error");
}
