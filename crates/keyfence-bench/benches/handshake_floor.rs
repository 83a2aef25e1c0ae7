//! The floor of a TLS 1.3 handshake at the node, classical against hybrid
//! (issue 15's handshake goal: hybrid ≥ 0.9 × classical, full and resumed).
//!
//! Every handshake runs in memory, in one thread, with keyfence's own server
//! configuration ([`load_server_config`]: its certificate, its ticketer) and a
//! rustls client offering either X25519 only (`classical`) or X25519MLKEM768
//! first (`hybrid`, as current browsers and the AWS SDKs on rustls do). Only the
//! server's calls are timed (`iter_custom`): the CPU a node spends per handshake
//! with no sockets, no scheduler and no HTTP — what the wire figures of
//! `keyfence bench --workload handshakes` are read against.
//!
//! * `server_full/{classical,hybrid}`: a fresh client session each time;
//! * `server_resumed/{classical,hybrid}`: the client resumes with the ticket of
//!   its previous handshake (PSK with a fresh key exchange in the same group);
//! * `kx/{classical,hybrid}`: the server's key exchange alone
//!   (`SupportedKxGroup::start_and_complete` on a client share), the part of the
//!   difference that no server code can remove.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use keyfence_server::tls::{
    client_config, ensure_dev_pki, load_server_config, ClientGroups, KxMode,
};
use rustls::crypto::SupportedKxGroup;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use std::hint::black_box;

/// One flight each way: what the client has to send into the server, then
/// the server's answer into the client; the server's calls are added to
/// `server_time`.
fn pump(
    buf: &mut Vec<u8>,
    client: &mut ClientConnection,
    server: &mut ServerConnection,
    server_time: &mut Duration,
) {
    // Client to server.
    buf.clear();
    while client.wants_write() {
        client.write_tls(buf).expect("client writes");
    }
    let mut rd = buf.as_slice();
    let t = Instant::now();
    while !rd.is_empty() {
        server.read_tls(&mut rd).expect("server reads");
        server.process_new_packets().expect("server accepts");
    }
    // Server to client.
    let mut out = Vec::with_capacity(8192);
    while server.wants_write() {
        server.write_tls(&mut out).expect("server writes");
    }
    *server_time += t.elapsed();
    let mut rd = out.as_slice();
    while !rd.is_empty() {
        client.read_tls(&mut rd).expect("client reads");
        client.process_new_packets().expect("client accepts");
    }
}

/// One handshake to completion (and the tickets after it); returns the time
/// spent in the server's calls.
fn handshake(server_config: &Arc<ServerConfig>, client_config: &Arc<ClientConfig>) -> Duration {
    let name = ServerName::try_from("localhost").expect("name");
    let mut client = ClientConnection::new(Arc::clone(client_config), name).expect("client");
    let t = Instant::now();
    let mut server = ServerConnection::new(Arc::clone(server_config)).expect("server");
    let mut server_time = t.elapsed();
    let mut buf = Vec::with_capacity(8192);
    while client.is_handshaking() || server.is_handshaking() {
        pump(&mut buf, &mut client, &mut server, &mut server_time);
    }
    // The session tickets the server sends after the handshake: part of its
    // cost, and what the next resumption uses.
    pump(&mut buf, &mut client, &mut server, &mut server_time);
    black_box(server.negotiated_key_exchange_group());
    server_time
}

/// The group a handshake with `client_config` negotiates and whether it resumed.
fn negotiated(
    server_config: &Arc<ServerConfig>,
    client_config: &Arc<ClientConfig>,
) -> (String, bool) {
    let name = ServerName::try_from("localhost").expect("name");
    let mut client = ClientConnection::new(Arc::clone(client_config), name).expect("client");
    let mut server = ServerConnection::new(Arc::clone(server_config)).expect("server");
    let mut buf = Vec::new();
    let mut spent = Duration::ZERO;
    while client.is_handshaking() || server.is_handshaking() {
        pump(&mut buf, &mut client, &mut server, &mut spent);
    }
    pump(&mut buf, &mut client, &mut server, &mut spent);
    let group = server
        .negotiated_key_exchange_group()
        .and_then(|g| g.name().as_str())
        .unwrap_or("none")
        .to_owned();
    let resumed = matches!(
        client.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    (group, resumed)
}

fn handshakes(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = ensure_dev_pki(dir.path()).expect("dev PKI");
    let server_config = load_server_config(&pki, KxMode::Default).expect("server config");
    let clients = [
        ("classical", ClientGroups::ClassicalOnly, "X25519"),
        ("hybrid", ClientGroups::Default, "X25519MLKEM768"),
    ];

    let mut g = c.benchmark_group("server_full");
    for (label, groups, expect) in clients {
        let fresh = || {
            let mut config = (*client_config(&pki.ca_cert, groups).expect("client")).clone();
            config.resumption = rustls::client::Resumption::disabled();
            Arc::new(config)
        };
        let config = fresh();
        assert_eq!(
            negotiated(&server_config, &config),
            (expect.to_owned(), false)
        );
        g.bench_function(label, |b| {
            b.iter_custom(|n| (0..n).map(|_| handshake(&server_config, &config)).sum())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("server_resumed");
    for (label, groups, expect) in clients {
        // One client configuration: its session cache keeps the last tickets.
        let config = client_config(&pki.ca_cert, groups).expect("client");
        handshake(&server_config, &config);
        assert_eq!(
            negotiated(&server_config, &config),
            (expect.to_owned(), true)
        );
        g.bench_function(label, |b| {
            b.iter_custom(|n| (0..n).map(|_| handshake(&server_config, &config)).sum())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("kx");
    let groups: [(&str, &dyn SupportedKxGroup); 2] = [
        ("classical", rustls::crypto::aws_lc_rs::kx_group::X25519),
        (
            "hybrid",
            rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768,
        ),
    ];
    for (label, group) in groups {
        let client_share = group.start().expect("client share");
        let share = client_share.pub_key().to_vec();
        g.bench_function(label, |b| {
            b.iter(|| black_box(group.start_and_complete(black_box(&share)).expect("server")))
        });
    }
    g.finish();
}

criterion_group!(benches, handshakes);
criterion_main!(benches);
