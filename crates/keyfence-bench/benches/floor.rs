//! The floor of one Encrypt request: the work no implementation can skip, in one
//! thread, with no I/O (issue 15). Every step is the real code or the real
//! primitive keyfence uses:
//!
//! 1. `sigv4_verify`: [`keyfence_server::sigv4::verify`] of a real signed request
//!    (canonical request, its SHA-256, the string to sign and one HMAC under the
//!    cached signing key; the body's SHA-256);
//! 2. `parse_json`: the request body into a typed struct (base64 plaintext decoded);
//! 3. `derive_and_seal`: [`keyfence_crypto::blob::seal`]: a fresh salt, the HKDF
//!    per-request key and AES-256-GCM over 256 bytes;
//! 4. `reply_json`: the response document (base64 ciphertext blob, key ARN);
//! 5. `tls_records`: the HTTP/1.1 request sealed by a rustls client and opened by a
//!    rustls server, the response sealed by the server and opened by the client
//!    (both sides, in memory; the node's share is the open of the request and the
//!    seal of the response, about half);
//!
//! `floor` runs 1–5 back to back: the figure node CPU per Encrypt is read against.
//! `handler_in_process` runs keyfence's own KMS handler (JSON in, JSON out, the
//! real key cache over a real SQLite store, no authorization) for comparison.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::SystemTime;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::http::request::Parts;
use hyper::Request;
use keyfence_crypto::SymmetricKey;
use keyfence_server::sigv4::{self, Credential, CredentialStore, Signer};
use keyfence_server::tls::{
    client_config, ensure_dev_pki, load_server_config, ClientGroups, KxMode,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection};
use serde::{Deserialize, Serialize};
use std::hint::black_box;
use zeroize::Zeroizing;

const ACCESS_KEY_ID: &str = "AKIAFLOORBENCH000001";
const SECRET: &str = "floorbenchsecretfloorbenchsecret0000000";
const REGION: &str = "us-east-1";
const KEY_ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/0b2cbd3c-4a1f-4b7e-9d6c-5f1e2a3b4c5d";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptRequest {
    key_id: String,
    plaintext: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptReply<'a> {
    ciphertext_blob: String,
    key_id: &'a str,
    encryption_algorithm: &'static str,
}

/// A signed Encrypt request as a client sends it: its parts, body and the
/// HTTP/1.1 bytes on the wire.
struct Signed {
    parts: Parts,
    body: Vec<u8>,
    wire: Vec<u8>,
}

fn signed_request(key_id: &str) -> Signed {
    let plaintext: Vec<u8> = (0..256u32).map(|i| (i * 31 + 7) as u8).collect();
    let body = serde_json::to_vec(&serde_json::json!({
        "KeyId": key_id,
        "Plaintext": B64.encode(&plaintext),
    }))
    .expect("JSON");
    let (mut parts, ()) = Request::post("/").body(()).expect("request").into_parts();
    parts
        .headers
        .insert(HOST, HeaderValue::from_static("127.0.0.1:8443"));
    parts.headers.insert(
        "x-amz-target",
        HeaderValue::from_static("TrentService.Encrypt"),
    );
    parts.headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    Signer::new(ACCESS_KEY_ID, SECRET, REGION, "kms")
        .sign(&mut parts, &body, SystemTime::now())
        .expect("signs");
    let mut wire = b"POST / HTTP/1.1\r\n".to_vec();
    for (name, value) in &parts.headers {
        wire.extend_from_slice(name.as_str().as_bytes());
        wire.extend_from_slice(b": ");
        wire.extend_from_slice(value.as_bytes());
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    wire.extend_from_slice(&body);
    Signed { parts, body, wire }
}

fn credentials() -> CredentialStore {
    CredentialStore::new([Credential {
        access_key_id: ACCESS_KEY_ID.into(),
        secret_access_key: Zeroizing::new(SECRET.into()),
        account_id: "111122223333".into(),
        user_name: "bench".into(),
    }])
    .expect("one credential")
}

/// A client and a server connection with a completed TLS 1.3 handshake
/// (hybrid X25519MLKEM768), talking through memory.
struct TlsPair {
    client: ClientConnection,
    server: ServerConnection,
    buf: Vec<u8>,
}

impl TlsPair {
    fn new(dir: &std::path::Path) -> Self {
        let pki = ensure_dev_pki(dir).expect("dev PKI");
        let server_config = load_server_config(&pki, KxMode::Default).expect("server config");
        let client_config = client_config(&pki.ca_cert, ClientGroups::Default).expect("client");
        let name = ServerName::try_from("localhost").expect("name");
        let mut pair = TlsPair {
            client: ClientConnection::new(client_config, name).expect("client"),
            server: ServerConnection::new(server_config).expect("server"),
            buf: Vec::with_capacity(1 << 16),
        };
        while pair.client.is_handshaking() || pair.server.is_handshaking() {
            pair.client_to_server();
            pair.server_to_client();
        }
        assert_eq!(
            pair.server
                .negotiated_key_exchange_group()
                .and_then(|g| g.name().as_str()),
            Some("X25519MLKEM768")
        );
        // Drain the session tickets the server sent after the handshake.
        pair.server_to_client();
        pair
    }

    fn client_to_server(&mut self) {
        self.buf.clear();
        while self.client.wants_write() {
            self.client.write_tls(&mut self.buf).expect("write");
        }
        let mut rd = self.buf.as_slice();
        while !rd.is_empty() {
            self.server.read_tls(&mut rd).expect("read");
            self.server.process_new_packets().expect("server accepts");
        }
    }

    fn server_to_client(&mut self) {
        self.buf.clear();
        while self.server.wants_write() {
            self.server.write_tls(&mut self.buf).expect("write");
        }
        let mut rd = self.buf.as_slice();
        while !rd.is_empty() {
            self.client.read_tls(&mut rd).expect("read");
            self.client.process_new_packets().expect("client accepts");
        }
    }

    /// The request sealed by the client and opened by the server, the reply
    /// sealed by the server and opened by the client.
    fn round_trip(&mut self, request: &[u8], reply: &[u8], scratch: &mut Vec<u8>) {
        self.client.writer().write_all(request).expect("write");
        self.client_to_server();
        scratch.clear();
        read_all(&mut self.server.reader(), scratch);
        assert_eq!(scratch.len(), request.len());
        self.server.writer().write_all(reply).expect("write");
        self.server_to_client();
        scratch.clear();
        read_all(&mut self.client.reader(), scratch);
        assert_eq!(scratch.len(), reply.len());
    }
}

fn read_all(reader: &mut impl Read, out: &mut Vec<u8>) {
    let mut chunk = [0u8; 4096];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// The HTTP/1.1 reply as the node sends it, around `body`.
fn http_reply(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\n\
         x-amzn-requestid: 6f1c2a3b-4d5e-6f70-0000-000000000001\r\n\
         content-length: {}\r\ndate: Tue, 01 Dec 2026 04:00:00 GMT\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Steps 2–4: the body in, the reply document out.
fn encrypt_body(backing: &SymmetricKey, body: &[u8]) -> Vec<u8> {
    let req: EncryptRequest = serde_json::from_slice(body).expect("parses");
    let plaintext = Zeroizing::new(B64.decode(&req.plaintext).expect("base64"));
    let blob = keyfence_crypto::blob::seal(backing, [7; 16], 1, b"", &plaintext).expect("seals");
    serde_json::to_vec(&EncryptReply {
        ciphertext_blob: B64.encode(blob.to_bytes()),
        key_id: &req.key_id,
        encryption_algorithm: "SYMMETRIC_DEFAULT",
    })
    .expect("JSON")
}

fn floor(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let creds = credentials();
    let signed = signed_request(KEY_ARN);
    let now = SystemTime::now();
    // The first verify derives and caches the signing key, as a node's first request does.
    sigv4::verify(&signed.parts, &signed.body, &creds, now).expect("verifies");
    assert_eq!(creds.cached_signing_keys(), 1);
    let backing = SymmetricKey::generate().expect("key");
    let reply = encrypt_body(&backing, &signed.body);
    let reply_wire = http_reply(&reply);
    let mut tls = TlsPair::new(dir.path());
    let mut scratch = Vec::with_capacity(4096);

    let mut g = c.benchmark_group("encrypt_floor");
    g.bench_function("sigv4_verify", |b| {
        b.iter(|| sigv4::verify(black_box(&signed.parts), &signed.body, &creds, now).unwrap())
    });
    g.bench_function("parse_json", |b| {
        b.iter(|| {
            let req: EncryptRequest = serde_json::from_slice(black_box(&signed.body)).unwrap();
            Zeroizing::new(B64.decode(&req.plaintext).unwrap())
        })
    });
    let plaintext: Vec<u8> = (0..256u32).map(|i| (i * 31 + 7) as u8).collect();
    g.bench_function("derive_and_seal", |b| {
        b.iter(|| {
            keyfence_crypto::blob::seal(&backing, [7; 16], 1, b"", black_box(&plaintext))
                .unwrap()
                .to_bytes()
        })
    });
    let blob = keyfence_crypto::blob::seal(&backing, [7; 16], 1, b"", &plaintext)
        .unwrap()
        .to_bytes();
    g.bench_function("reply_json", |b| {
        b.iter(|| {
            serde_json::to_vec(&EncryptReply {
                ciphertext_blob: B64.encode(black_box(&blob)),
                key_id: KEY_ARN,
                encryption_algorithm: "SYMMETRIC_DEFAULT",
            })
            .unwrap()
        })
    });
    g.bench_function("tls_records_both_sides", |b| {
        b.iter(|| tls.round_trip(black_box(&signed.wire), &reply_wire, &mut scratch))
    });
    g.bench_function("floor", |b| {
        b.iter(|| {
            sigv4::verify(black_box(&signed.parts), &signed.body, &creds, now).unwrap();
            let reply = encrypt_body(&backing, &signed.body);
            tls.round_trip(&signed.wire, &http_reply(&reply), &mut scratch);
        })
    });
    g.finish();
    handler_in_process(c, dir.path());
}

/// keyfence's KMS handler for Encrypt, in process: the real operation table,
/// typed parse, key resolution through the key cache, envelope seal and the
/// reply document serialized as the node does (`serde_json::to_vec` of the
/// handler's value). No authorization, no HTTP, no TLS.
fn handler_in_process(c: &mut Criterion, dir: &std::path::Path) {
    use keyfence_core::{Kms, LocalRootKey, SystemClock};
    let store = keyfence_store::SqliteStore::open(&dir.join("keyfence.db")).expect("store");
    let root = LocalRootKey::new(SymmetricKey::generate().expect("root"));
    let kms = Kms::open(Arc::new(store), &root, Arc::new(SystemClock), REGION).expect("kms");
    let account = "111122223333";
    let key = kms
        .create_key(account, keyfence_core::service::CreateKeyInput::default())
        .expect("key");
    let signed = signed_request(&key.arn());
    let op = keyfence_server::api::kms::operation("Encrypt").expect("row");
    let handle = || {
        let value = keyfence_server::api::kms::handle(&kms, account, op, &signed.body).unwrap();
        serde_json::to_vec(&value).unwrap()
    };
    assert!(handle().starts_with(b"{\"CiphertextBlob\":"));
    let mut g = c.benchmark_group("encrypt_keyfence");
    g.bench_function("handler_in_process", |b| b.iter(handle));
    g.finish();
}

criterion_group!(benches, floor);
criterion_main!(benches);
