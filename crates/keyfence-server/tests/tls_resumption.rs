//! TLS 1.3 session resumption through `PqAcceptor`: a rustls client that
//! reconnects with a ticket skips the certificate, and the resumed connection
//! still runs the hybrid key exchange (strict mode included).

use std::sync::Arc;

use keyfence_server::tls::{
    client_config, ensure_dev_pki, load_server_config, ClientGroups, KxMode, PqAcceptor,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, HandshakeKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

/// What each side saw of one connection.
#[derive(Debug, PartialEq)]
struct Seen {
    server_kind: Option<HandshakeKind>,
    server_group: &'static str,
    client_kind: Option<HandshakeKind>,
    client_group: String,
}

/// One connection: handshake, one message each way (the client reads the
/// server's tickets with the reply), close.
async fn connect_once(
    listener: &TcpListener,
    acceptor: &PqAcceptor,
    connector: &TlsConnector,
) -> Seen {
    let addr = listener.local_addr().expect("addr");
    let server = async {
        let (tcp, _) = listener.accept().await.expect("accept");
        let (mut tls, group) = acceptor.accept(tcp).await.expect("server handshake");
        let kind = tls.get_ref().1.handshake_kind();
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.expect("server read");
        tls.write_all(b"pong").await.expect("server write");
        tls.shutdown().await.expect("server close");
        (kind, group)
    };
    let client = async {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("name");
        let mut tls = connector
            .connect(name, tcp)
            .await
            .expect("client handshake");
        tls.write_all(b"ping").await.expect("client write");
        let mut rest = Vec::new();
        let _ = tls.read_to_end(&mut rest).await;
        assert_eq!(rest, b"pong");
        let conn = tls.get_ref().1;
        let group = conn
            .negotiated_key_exchange_group()
            .and_then(|g| g.name().as_str())
            .unwrap_or("none")
            .to_owned();
        (conn.handshake_kind(), group)
    };
    let ((server_kind, server_group), (client_kind, client_group)) = tokio::join!(server, client);
    Seen {
        server_kind,
        server_group,
        client_kind,
        client_group,
    }
}

fn connector(config: Arc<ClientConfig>) -> TlsConnector {
    TlsConnector::from(config)
}

#[tokio::test]
async fn a_client_resumes_with_a_ticket_and_keeps_the_hybrid_group() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ensure_dev_pki(dir.path()).unwrap();
    for mode in [KxMode::Default, KxMode::PostQuantumOnly] {
        let acceptor = PqAcceptor::new(load_server_config(&pki, mode).unwrap(), mode);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        for groups in [ClientGroups::Default, ClientGroups::HybridOnly] {
            // One client configuration (one session cache), three connections.
            let tls = connector(client_config(&pki.ca_cert, groups).unwrap());
            let full = connect_once(&listener, &acceptor, &tls).await;
            let hybrid = "X25519MLKEM768".to_owned();
            assert_eq!(
                full,
                Seen {
                    server_kind: Some(HandshakeKind::Full),
                    server_group: "X25519MLKEM768",
                    client_kind: Some(HandshakeKind::Full),
                    client_group: hybrid.clone(),
                },
                "{mode:?} {groups:?}: first connection"
            );
            for n in 2..=3 {
                let resumed = connect_once(&listener, &acceptor, &tls).await;
                assert_eq!(
                    resumed,
                    Seen {
                        server_kind: Some(HandshakeKind::Resumed),
                        server_group: "X25519MLKEM768",
                        client_kind: Some(HandshakeKind::Resumed),
                        client_group: hybrid.clone(),
                    },
                    "{mode:?} {groups:?}: connection {n}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_classical_client_resumes_classically_on_the_default_node_only() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ensure_dev_pki(dir.path()).unwrap();
    let acceptor = PqAcceptor::new(
        load_server_config(&pki, KxMode::Default).unwrap(),
        KxMode::Default,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls = connector(client_config(&pki.ca_cert, ClientGroups::ClassicalOnly).unwrap());
    let full = connect_once(&listener, &acceptor, &tls).await;
    assert_eq!(full.server_kind, Some(HandshakeKind::Full));
    let resumed = connect_once(&listener, &acceptor, &tls).await;
    assert_eq!(resumed.server_kind, Some(HandshakeKind::Resumed));
    assert_eq!(resumed.server_group, "X25519");

    // A ticket from the default node does not open the strict node to a classical
    // client: the ClientHello is refused before the ticket is looked at.
    let strict = PqAcceptor::new(
        load_server_config(&pki, KxMode::PostQuantumOnly).unwrap(),
        KxMode::PostQuantumOnly,
    );
    let addr = listener.local_addr().unwrap();
    let server = async {
        let (tcp, _) = listener.accept().await.unwrap();
        strict.accept(tcp).await.map(|(_, g)| g)
    };
    let client = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        tls.connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map(|_| ())
    };
    let (server, client) = tokio::join!(server, client);
    assert!(
        matches!(
            server,
            Err(keyfence_server::tls::TlsError::ClassicalOnlyClient { .. })
        ),
        "{server:?}"
    );
    assert!(client.is_err());
}

#[tokio::test]
async fn tickets_of_one_node_do_not_resume_at_another() {
    // Each node draws its own ticket keys: a ticket is a full handshake elsewhere.
    let dir = tempfile::tempdir().unwrap();
    let pki = ensure_dev_pki(dir.path()).unwrap();
    let a = PqAcceptor::new(
        load_server_config(&pki, KxMode::Default).unwrap(),
        KxMode::Default,
    );
    let b = PqAcceptor::new(
        load_server_config(&pki, KxMode::Default).unwrap(),
        KxMode::Default,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls = connector(client_config(&pki.ca_cert, ClientGroups::Default).unwrap());
    assert_eq!(
        connect_once(&listener, &a, &tls).await.server_kind,
        Some(HandshakeKind::Full)
    );
    assert_eq!(
        connect_once(&listener, &b, &tls).await.server_kind,
        Some(HandshakeKind::Full)
    );
    assert_eq!(
        connect_once(&listener, &b, &tls).await.server_kind,
        Some(HandshakeKind::Resumed)
    );
}
